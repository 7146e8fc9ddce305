"""What a check returns: findings with their evidence, per target.

`Finding` is the public record of one distinct problem (a failure) or
observation (a note): the representative input, custom and reference
values, error figures and a plain-language explanation. `CheckReport` holds
them for one target; `raise_if_failed` turns a report into an assertion for
pytest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradfuzz.categories import Category, Kind
from gradfuzz.spec import ArgSpec


class GradientCheckFailed(AssertionError):
    """Raised by `CheckReport.raise_if_failed`; the message lists every failure."""


@dataclass
class Finding:
    target: str
    category: Category  # decides its kind (failure or note); a stored name is read as the enum
    explanation: str
    inputs: list[np.ndarray]
    cotangents: list[np.ndarray] = field(default_factory=list)
    tangents: list[np.ndarray] = field(default_factory=list)
    custom: list[np.ndarray | None] = field(default_factory=list)  # custom VJP per argument
    reference: list[np.ndarray | None] = field(default_factory=list)  # reference VJP per argument
    reference_name: str = ""
    argument: int | None = None
    element: int | None = None
    custom_value: float = float("nan")
    reference_value: float = float("nan")
    abs_error: float = float("nan")
    rel_error: float = float("nan")
    ulp_error: float = float("nan")
    count: int = 1  # examples in this run that shared the signature (screened runs: estimated, see screen.py)
    signature: str = ""
    plan: str = ""
    seed: int | None = None
    evidence: dict[str, float] = field(default_factory=dict)
    worst: Finding | None = None  # the largest-error example of the same signature, if different
    region: str = "*"  # where the failing element lies among the points of interest, e.g. "(0, 1)"
    record_id: str = ""  # its store record's id once written: a later, final form is written under the same id
    regions_seen: list[str] = field(default_factory=list)  # every input region its kind was seen in (not only `region`)

    def __post_init__(self) -> None:
        self.category = Category(self.category)

    @property
    def kind(self) -> Kind:
        """Failure or note: the category's (`gradfuzz.categories.RULES`), never decided apart from it."""
        return Category(self.category).kind

    def to_json(self) -> dict[str, Any]:
        data = {
            "kind": self.kind,
            "category": self.category,
            "count": self.count,
            "signature": self.signature,
            "region": self.region,
            "inputs": [_jsonable(x) for x in self.inputs],
            "custom": [_jsonable(x) for x in self.custom],
            "reference": [_jsonable(x) for x in self.reference],
            "reference_name": self.reference_name,
            "argument": self.argument,
            "element": self.element,
            "custom_value": _number(self.custom_value),
            "reference_value": _number(self.reference_value),
            "abs_error": _number(self.abs_error),
            "rel_error": _number(self.rel_error),
            "ulp_error": _number(self.ulp_error),
            "evidence": {k: _number(v) for k, v in self.evidence.items()},
            "explanation": self.explanation,
        }
        if self.worst is not None:
            data["worst"] = {k: data_ for k, data_ in self.worst.to_json().items() if k not in ("worst",)}
        return data


@dataclass
class CheckReport:
    """The result of checking one target."""

    target: str
    specs: tuple[ArgSpec, ...]
    examples: int = 0
    skipped: int = 0  # examples where the forward was not finite (outside the domain)
    disagreed: int = 0  # examples the screen found disagreeing with autodiff beyond tolerance (or not finite)
    judged: int = 0  # examples the oracle judged in full (all of them when there is no screen)
    seconds: float = 0.0
    warmup_seconds: float = 0.0  # probing and compiling, before the first batch
    first_failure_at: int | None = None  # examples evaluated until the first failing one (inclusive)
    failures: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)
    engine: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # set when the target could not be checked at all
    stored: int = 0
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)  # store rows of the failures

    @property
    def ok(self) -> bool:
        return not self.failures and self.error is None

    @property
    def verdict(self) -> str:
        if self.error is not None:
            return "error"
        return "pass" if not self.failures else "fail"

    @property
    def examples_per_second(self) -> float:
        """Throughput once compiled (warm-up excluded)."""
        fuzzing = self.seconds - self.warmup_seconds
        return self.examples / fuzzing if fuzzing > 0 else 0.0

    @classmethod
    def merge(cls, reports: list[CheckReport]) -> CheckReport:
        """One report for the shape variants of one target (``engine["variants"]`` keeps each)."""
        first = reports[0]
        merged = cls(target=first.target, specs=first.specs)
        seen = 0
        for report in reports:
            if merged.first_failure_at is None and report.first_failure_at is not None:
                merged.first_failure_at = seen + report.first_failure_at
            seen += report.examples
            merged.examples += report.examples
            merged.skipped += report.skipped
            merged.disagreed += report.disagreed
            merged.judged += report.judged
            merged.seconds += report.seconds
            merged.warmup_seconds += report.warmup_seconds
            merged.failures += report.failures
            merged.notes += report.notes
            merged.stored += report.stored
            merged.records += report.records
            merged.error = merged.error or report.error
        merged.engine = {"variants": [{"inputs": [str(s) for s in r.specs], **r.engine} for r in reports]}
        return merged

    def raise_if_failed(self) -> None:
        __tracebackhide__ = True  # a failing test shows its own line and this message, not gradfuzz's source
        if self.ok:
            return
        if self.error is not None:
            raise GradientCheckFailed(f"{self.target}: could not be checked: {self.error}")
        lines = [f"{self.target}: {len(self.failures)} gradient failure(s) in {self.examples} examples"]
        for finding in self.failures:
            lines.append(f"  [{finding.category}] ×{finding.count}: {finding.explanation}")
        raise GradientCheckFailed("\n".join(lines))

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "inputs": [str(s) for s in self.specs],
            "verdict": self.verdict,
            "examples": self.examples,
            "skipped_outside_domain": self.skipped,
            "disagreed_at_screen": self.disagreed,
            "judged_in_full": self.judged,
            "seconds": round(self.seconds, 3),
            "warmup_seconds": round(self.warmup_seconds, 3),
            "first_failure_at": self.first_failure_at,
            "examples_per_second": round(self.examples_per_second, 1),
            "failures": [f.to_json() for f in self.failures],
            "notes": [f.to_json() for f in self.notes],
            "engine": self.engine,
            "error": self.error,
            "stored": self.stored,
        }


def _number(value: float | str) -> float | str | None:
    if value is None or isinstance(value, str):  # contract evidence is text ("float32")
        return value
    value = float(value)
    return value if np.isfinite(value) else str(value)


def _jsonable(array: np.ndarray | None) -> Any:
    if array is None:
        return None
    values = np.asarray(array).astype(np.float64)
    if values.ndim == 0:
        return _number(values)
    return [_jsonable(v) for v in values]
