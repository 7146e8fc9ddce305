"""Replay: re-run stored failures from their stored bits and say what became of them.

Each failure is re-evaluated on exactly the stored inputs, cotangents and
tangents (decoded bit for bit), against the target's *current* code. Status:

* ``reproduced`` — it still fails (with the same category, or the one named);
* ``fixed`` — it no longer fails; the store records when and where it was fixed;
* ``flaky (k of n)`` — with ``--repeat n``, it reproduced in only k runs;
* ``target-missing`` — the target cannot be loaded any more (renamed, deleted);
  the other failures still run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import numpy as np

from gradfuzz.categories import Category, gradient_label
from gradfuzz.diagnosis import (
    jacobian_entry,
    mode_disagreements,
    nondeterministic,
)
from gradfuzz.durations import parse_duration
from gradfuzz.engine import Evaluator, probe
from gradfuzz.oracle import check_contract
from gradfuzz.probes import unreachable_second_order
from gradfuzz.spec import SpecError, parse_specs
from gradfuzz.store import FailureStore, RecordStatus, StoredFailure
from gradfuzz.target import Target, TargetError, load_target, with_reference
from gradfuzz.values import Batch, TargetRaised, describe_inputs, numbers, summarize_error
from gradfuzz.warm import WarmCache
from gradfuzz.watchdog import Hang, Watchdog

REPLAY_HANG_SECONDS = 30.0  # an example whose probe has not returned by then replays as a hang


class ReplayStatus(StrEnum):
    REPRODUCED = "reproduced"  # it still fails (with the same category, or the one named)
    FIXED = "fixed"  # it no longer fails
    FLAKY = "flaky"  # with --repeat: reproduced in some runs only
    TARGET_MISSING = "target-missing"  # the target (or its stored specs) cannot be loaded any more

    @property
    def failing(self) -> bool:
        """Does this outcome fail a replay, a gate or a regression test?"""
        return self in (ReplayStatus.REPRODUCED, ReplayStatus.FLAKY)


@dataclass
class ReplayResult:
    failure: StoredFailure
    status: ReplayStatus
    detail: str
    categories_now: list[str]
    reproduced: int = 0  # with --repeat: how many runs reproduced it
    runs: int = 1

    @property
    def failing(self) -> bool:
        """Does this fail a replay or gate? Reproducing does; so does an open failure whose target can no
        longer be loaded (renaming a buggy target must not pass the gate), as in the regression tests."""
        return self.status.failing or (self.status == ReplayStatus.TARGET_MISSING and self.failure.status != RecordStatus.FIXED)

    def to_json(self) -> dict:
        f = self.failure
        return {
            "id": f.id, "target": f.target, "category": f.category, "status": self.status,
            "reproduced": self.reproduced, "runs": self.runs,
            "detail": self.detail, "categories_now": self.categories_now,
            "recorded": f.time.isoformat(), "inputs": [np.asarray(x, dtype=np.float64).tolist() for x in f.inputs],
        }


def restore_variables(target: Target, failure: StoredFailure) -> None:
    """Give the target's trainable variables (a layer's weights, created by the probe) the values
    they had when the failure was recorded: a layer rebuilt by its factory starts from new random
    weights. Raises ValueError when they no longer fit (the layer changed)."""
    if not failure.variables:
        return
    if len(target.variables) != len(failure.variables):
        raise ValueError(f"the target now reads {len(target.variables)} trainable variables, the record holds "
                         f"{len(failure.variables)} ({', '.join(failure.variable_names)}): the layer changed since")
    for variable, name, value in zip(target.variables, failure.variable_names, failure.variables):
        if tuple(variable.shape) != value.shape:
            raise ValueError(f"variable {name!r} now has shape {list(variable.shape)}, the record {list(value.shape)}: "
                             "the layer changed since")
        variable.assign(value)


# Replaying imports the code a record names: a store is as trusted as code. By default only code in the
# working directory (and TensorFlow's own functions) is imported; `--trust-store` lifts that.
TRUSTED_PACKAGES = frozenset({"tensorflow", "keras", "tf_keras", "gradfuzz"})


def untrusted(name: str, trusted_names: frozenset[str] = frozenset()) -> str | None:
    """Why the target (or reference) ``name`` a record holds may not be imported, or None if it may:
    a file or module in the working directory, a TensorFlow function, or a name in ``trusted_names``
    (a gate's config targets). Finds a module's file without importing anything."""
    import importlib.util
    from pathlib import Path

    if not name or name in trusted_names:
        return None
    where = name.rpartition(":")[0] or name
    root = Path.cwd().resolve()
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where).resolve()
        return None if path.is_relative_to(root) else f"the file {path} lies outside the working directory {root}"
    top = where.split(".")[0]
    if top in TRUSTED_PACKAGES:
        return None
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    origin = None if spec is None else (spec.origin if spec.has_location else next(iter(spec.submodule_search_locations or []), None))
    if origin is not None and Path(origin).resolve().is_relative_to(root):
        return None
    return f"the module {top} is not in the working directory {root}"


class Replayer:
    """Replays records, loading each target and compiling each evaluator once.

    ``trust_store`` imports whatever a record names; by default only what `untrusted` allows."""

    def __init__(self, *, trust_store: bool = False, trusted_names: frozenset[str] = frozenset()) -> None:
        self._targets: dict[tuple[str, str], Target | str] = {}
        self.warm = WarmCache()  # the one cache of compiled work: a Judge per target, specs and structure
        self.trust_store, self.trusted_names = trust_store, trusted_names

    def target(self, failure: StoredFailure) -> Target | str:
        """The record's target (with its reference), loaded once — or why it cannot be."""
        key = (failure.target, failure.reference_target)
        if key not in self._targets:
            self._targets[key] = self._load(failure)
        return self._targets[key]

    def _load(self, failure: StoredFailure) -> Target | str:
        if not self.trust_store:
            for name in (failure.target, failure.reference_target):
                reason = untrusted(name, self.trusted_names)
                if reason is not None:
                    return (f"not imported: {reason}. A store is as trusted as code; replay from the project's "
                            "directory, or pass --trust-store if you trust whoever wrote this store")
        try:
            return with_reference(load_target(failure.target), failure.reference_target or None)
        except TargetError as error:
            return str(error)

    def context(self, failure: StoredFailure) -> tuple[Target, tuple, Evaluator, list] | str:
        """The loaded target, its specs, a compiled evaluator and its points of interest for a
        stored failure — or why they cannot be had."""
        target = self.target(failure)
        if isinstance(target, str):
            return target
        try:
            specs = parse_specs(failure.specs)
            structure = probe(target, specs, [np.asarray(x) for x in failure.inputs])
            restore_variables(target, failure)
        except (SpecError, TargetRaised, ValueError) as error:
            return str(error)
        judge = self.warm.judge(target, specs, structure)
        return target, specs, judge.evaluator, judge.points

    def replay(self, failure: StoredFailure, repeat: int = 1) -> ReplayResult:
        """``repeat`` > 1 re-runs the failure that many times: ``flaky (k of n)`` when it
        reproduces only sometimes."""
        results = [_replay_one(failure, self.target(failure), self.warm) for _ in range(max(1, repeat))]
        if repeat <= 1 or results[0].status == ReplayStatus.TARGET_MISSING:
            return results[0]
        hits = [r for r in results if r.status == ReplayStatus.REPRODUCED]
        if 0 < len(hits) < len(results):
            return ReplayResult(failure, ReplayStatus.FLAKY, f"reproduced {len(hits)} of {len(results)} times. {hits[0].detail}".strip(),
                                hits[0].categories_now, reproduced=len(hits), runs=len(results))
        chosen = hits[0] if hits else results[0]
        chosen.reproduced, chosen.runs = len(hits), len(results)
        return chosen


def replay_store(store: FailureStore, *, target_filter: str | None = None, since: datetime | None = None,
                 repeat: int = 1, on_result: Callable[[ReplayResult], None] | None = None,
                 replayer: Replayer | None = None) -> tuple[list[ReplayResult], list[str]]:
    """Replay every stored failure (optionally of one target, or recorded since a time);
    mark the fixed ones, reopen the ones that fail again."""
    read = store.read()
    replayer = replayer or Replayer()
    results = []
    for failure in read.failures:
        if target_filter and failure.target != target_filter:
            continue
        if since is not None and failure.time < since:
            continue
        result = replayer.replay(failure, repeat)
        if result.status == ReplayStatus.FIXED and failure.status != RecordStatus.FIXED:
            store.mark(failure.id, RecordStatus.FIXED)
        elif result.status.failing and failure.status == RecordStatus.FIXED:
            store.mark(failure.id, RecordStatus.OPEN)  # a regression: fixed once, failing again
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results, read.problems


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO date or time ("2026-11-28", "2026-11-28T10:00"), or an age ("2h", "3d")."""
    now = now or datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text)
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        return now - timedelta(seconds=parse_duration(text))
    except ValueError:
        raise ValueError(f"Cannot read --since {text!r}: give a date (2026-11-28), a time (2026-11-28T10:00) "
                         "or an age (90m, 2h, 3d).") from None


def _replay_one(failure: StoredFailure, target: Target | str, warm: WarmCache) -> ReplayResult:
    if isinstance(target, str):
        return ReplayResult(failure, ReplayStatus.TARGET_MISSING, f"cannot load {failure.target}: {target}", [])
    try:
        specs = parse_specs(failure.specs)
    except SpecError as error:
        return ReplayResult(failure, ReplayStatus.TARGET_MISSING, f"stored specs unreadable: {error}", [])
    inputs = [np.asarray(x) for x in failure.inputs]
    try:
        # Under a watchdog: a recorded hang must replay as one, not hang the replay.
        with Watchdog() as watchdog:
            structure = watchdog.run(lambda: probe(target, specs, inputs), REPLAY_HANG_SECONDS)
    except TargetRaised as raised:
        return _result(failure, [Category.EXCEPTION], f"the {raised.stage} raised {summarize_error(raised.error)}")
    except Hang as hang:
        return _result(failure, [Category.EXCEPTION], f"the target {hang}")
    try:
        restore_variables(target, failure)
    except ValueError as error:
        return ReplayResult(failure, ReplayStatus.TARGET_MISSING, f"cannot restore the stored weights: {error}", [])
    now = sorted({v.category for v in check_contract(specs, structure)})
    if failure.category == Category.HIGHER_ORDER and target.forward is None and not failure.cotangents:
        # A plain function's second order: repeat the observation (None, while the gradient changes with it).
        try:
            unreachable = [a for a, _, _ in unreachable_second_order(target, inputs, specs, failure.tangents)]
        except Exception as error:  # the target raising here is what replay reports
            return _result(failure, [*now, Category.EXCEPTION], f"the target raised {summarize_error(error)}")
        again = failure.argument in unreachable
        return _result(failure, [*now, *([Category.HIGHER_ORDER] if again else [])],
                       f"the second-order gradient of argument {failure.argument} is still None" if again else "")
    if failure.category == Category.EXCEPTION and not failure.cotangents:
        return _result(failure, now, "the target ran without raising" if not now else "")
    if not failure.cotangents:  # a contract failure: the probe is the whole check
        return _result(failure, now, "")
    shapes_now = [tuple(s) for s in structure.output_shapes]
    if [tuple(np.shape(v)) for v in failure.cotangents] != shapes_now:
        return _result(failure, now or [Category.SHAPE], f"the target's output shapes changed to {shapes_now}")
    order = 2 if failure.category == Category.HIGHER_ORDER else 1
    judge = warm.judge(target, specs, structure, order=order)
    batch = Batch.of_example(inputs, failure.cotangents, failure.tangents)
    if failure.category == Category.NONDETERMINISM:  # repeat the observation that made it one
        mode = _nondeterminism_mode(failure)
        try:
            if mode:
                differs = bool(mode_disagreements(judge.evaluator, batch, ("function", mode)))
            else:
                differing = nondeterministic(judge.evaluator, batch)
                differs = differing is not None and differing.size > 0
        except TargetRaised as raised:
            return _result(failure, [*now, Category.EXCEPTION], f"the {raised.stage} raised {summarize_error(raised.error)}")
        return _result(failure, [*now, *([Category.NONDETERMINISM] if differs else [])],
                       "the custom gradient still differs between evaluations" if differs else "")
    try:
        _, failing = judge.example(inputs, failure.cotangents, failure.tangents, Category.parse(failure.category))
    except TargetRaised as raised:
        return _result(failure, [*now, Category.EXCEPTION], f"the {raised.stage} raised {summarize_error(raised.error)}")
    categories = {*now, *(v.category for v in failing)}
    now = sorted(categories)
    detail = ""
    if failing:
        v = failing[0]
        shown, reference = numbers(v.custom, v.reference)
        detail = (f"{gradient_label(target.has_custom_gradient)} {shown} vs {v.reference_name} {reference} "
                  f"(relative error {v.rel_error:.3g})")
        if v.argument is not None and 0 <= v.argument < len(specs):  # in derivatives, as the check said it
            entry = jacobian_entry(judge.evaluator, inputs, v.argument, v.element or 0)
            if entry is not None:
                detail = entry.sentence(describe_inputs(inputs))
    return _result(failure, now, detail)


def _nondeterminism_mode(failure: StoredFailure) -> str:
    """The execution mode a `nondeterminism` record was seen in ("" for a repeat in one mode): its
    signature's last part (records written before 0.2 carried it as the region ``mode=…``)."""
    if failure.region.startswith("mode="):
        return failure.region.removeprefix("mode=")
    detail = failure.signature.partition("|")[2]
    return "" if detail in ("", "repeat") else detail


def _result(failure: StoredFailure, now: list[Category], detail: str) -> ReplayResult:
    now = sorted(set(now))
    if not now:
        return ReplayResult(failure, ReplayStatus.FIXED, detail or "no failure on the stored input", now)
    stored = Category.parse(failure.category)
    if stored is not None and any(stored.absorbs(c) for c in now):  # the run's fold: a side effect shows its cause
        now = sorted({stored, *(c for c in now if not stored.absorbs(c))})
    if failure.category in now:
        return ReplayResult(failure, ReplayStatus.REPRODUCED, detail, now, reproduced=1)
    return ReplayResult(failure, ReplayStatus.REPRODUCED, f"now fails as {', '.join(now)}. {detail}".strip(), now, reproduced=1)
