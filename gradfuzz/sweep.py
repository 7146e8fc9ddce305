"""``gradfuzz sweep MODULE...``: check every public differentiable function of a module.

For a library's release job: ``gradfuzz sweep tensorflow.math tensorflow.nn`` or ``gradfuzz sweep
mypkg.ops``. Each public callable of each module (private names, classes, modules, non-callables
and callables imported from other packages left out; a second name for an object already seen is
listed as an alias) gets its input specs from, in order:

1. ``@gradfuzz.inputs(...)`` on the function (the author's word);
2. the table gradfuzz ships for TensorFlow's public API (`gradfuzz.sweep_table`), found by name or,
   for an alias such as ``tf.nn.softmax``, by the object;
3. its signature: up to three required arguments that look like tensors get ``float32[3]@-5..5``
   and ``float64[3]@-5..5``, if one eager call on such inputs returns a floating-point tensor.

What cannot be checked — integer or boolean outputs, random or stateful ops, functions without a
registered gradient, arguments it cannot guess — is listed with the reason. The rest run through
`gradfuzz.planning.plan_checks` and `gradfuzz.checker.check_target`, one function after another,
each with its budget shared by its dtype and shape variants; failures go to the store as for
``check``. The sweep's state is rewritten (atomically) to ``STORE/sweep.json`` after every function,
so ``--resume`` continues a killed sweep; a function that was running when the process died is not
re-run but listed as an error with the command that reproduces it.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import json
import os
import sys
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from gradfuzz.store import write_atomically
from gradfuzz.sweep_table import TABLE, Entry, full_name, short_name

STATE_FILE = "sweep.json"
STATE_VERSION = 1
GUESS_DOMAIN = "-5..5"
GUESS_DTYPES = ("float32", "float64")
GUESS_MAX_ARGUMENTS = 3
# Parameter names that hold sizes, axes, options or functions, not tensors to differentiate.
_NOT_TENSORS = {"axis", "axes", "k", "n", "num", "size", "shape", "dtype", "name", "seed", "padding", "strides", "stride",
                "ksize", "rate", "data_format", "perm", "block_size", "frame_length", "frame_step", "fn", "func", "f",
                "callback", "mode", "ord", "keepdims", "training", "num_segments", "segment_ids", "indices", "ids",
                "labels_length", "window_shape", "pooling_type", "equation"}

PASS, FAIL, ERROR, NOT_RUN, SKIPPED, PENDING, RUNNING = "pass", "fail", "error", "not-run", "skipped", "pending", "running"


class SweepError(ValueError):
    """A sweep that cannot start: a module that does not import, a state that cannot be resumed."""


@dataclass
class SweepItem:
    """One public callable of a swept module, and how (or why not) it is checked."""

    function: str  # its public name, tf./tfp. for TensorFlow's ("tf.math.sin", "mypkg.ops.swish")
    source: str = ""  # where its specs come from: "declared", "table", "signature"; "" when skipped
    target: str = ""  # the loadable target name checked (what the store records)
    variants: list[list[str]] = field(default_factory=list)  # spec strings per dtype/shape variant
    skip: str | None = None  # why it is not checked
    note: str = ""
    obj: Any = field(default=None, repr=False, compare=False)


# -- enumeration ---------------------------------------------------------------------------------


def import_module(name: str):
    """Import a module by dotted name (``tf.math`` and ``tfp.math`` spelled short are accepted)."""
    dotted = full_name(name)
    if os.getcwd() not in sys.path and "" not in sys.path:  # `gradfuzz sweep mypkg` from the project's directory
        sys.path.append(os.getcwd())
    try:
        module = _import_or_attribute(dotted)
    except ImportError as error:
        raise SweepError(f"Cannot import the module {name!r}: {error}. Name an installed module by its dotted "
                         "name, e.g. tensorflow.math or mypkg.ops (the current directory is on the path).") from None
    except Exception as error:  # the module raised while importing
        raise SweepError(f"Importing {name!r} raised {type(error).__name__}: {error}. Fix the module, then sweep again.") from None
    if not inspect.ismodule(module):
        raise SweepError(f"{name!r} is not a module.")
    return module


def _import_or_attribute(dotted: str):
    """``importlib.import_module``, or a package's lazily loaded submodule attribute
    (``tensorflow_probability.math`` is an attribute of the package, not an importable module)."""
    try:
        return importlib.import_module(dotted)
    except ImportError:
        parent, _, attribute = dotted.rpartition(".")
        if not parent:
            raise
        value = getattr(_import_or_attribute(parent), attribute, None)
        if not inspect.ismodule(value):
            raise
        return value


def public_callables(module) -> list[tuple[str, Any]]:
    """(name, object) of a module's public functions: no private names, classes, modules or
    non-callables, and nothing imported from another top-level package."""
    package = module.__name__.split(".")[0]
    found = []
    for name in sorted(dir(module)):
        if name.startswith("_"):
            continue
        try:
            value = getattr(module, name)
        except Exception:  # a lazy attribute that fails to load
            continue
        if inspect.ismodule(value) or inspect.isclass(value) or not callable(value):
            continue
        origin = getattr(value, "__module__", None) or ""
        if origin and origin.split(".")[0] != package:
            continue  # imported from elsewhere (numpy, functools, another library): not this package's API
        found.append((name, value))
    return found


def enumerate_modules(modules: Sequence[str], match: Sequence[str] = (), dtypes: Sequence[str] = ()) -> list[SweepItem]:
    """Every public callable of ``modules`` (in order, aliases once) with its specs or a skip reason.
    ``match``: glob patterns on the public name (``tf.math.log*``); ``dtypes``: keep only variants
    whose first checked argument has one of these dtypes."""
    loaded = [(name, import_module(name)) for name in modules]
    by_object = _table_by_object([m.__name__ for _, m in loaded])
    seen: dict[int, str] = {}
    items = []
    for requested, module in loaded:
        prefix = short_name(full_name(requested))  # as the user names it (tfp.math, not tfp.python.math)
        for attr, value in public_callables(module):
            label = f"{prefix}.{attr}"
            if match and not any(fnmatch.fnmatchcase(label, pattern) or fnmatch.fnmatchcase(attr, pattern)
                                 for pattern in match):
                continue
            if id(value) in seen:
                items.append(SweepItem(label, skip=f"alias of {seen[id(value)]} (checked once)"))
                continue
            seen[id(value)] = label
            item = describe(label, module.__name__, attr, value, by_object)
            if dtypes and item.skip is None:
                item.variants = [v for v in item.variants if _first_dtype(v) in dtypes]
                if not item.variants:
                    item.skip = f"no variant of dtype {', '.join(dtypes)}"
            items.append(item)
    return items


def describe(label: str, module: str, attr: str, value: Any, by_object: dict[int, str] | None = None) -> SweepItem:
    """How the sweep checks one callable: declared specs, a table entry, or its signature."""
    declared = getattr(value, "__gradfuzz_inputs__", None)
    if declared:
        if not any(_differentiable(spec) for spec in declared):
            return SweepItem(label, skip=f"declares no floating-point argument ({', '.join(map(str, declared))}): "
                                         "nothing to differentiate")
        return SweepItem(label, "declared", f"{module}:{attr}", [list(map(str, declared))], obj=value)
    table_name = label if label in TABLE else (by_object or {}).get(id(value))
    if table_name is not None:
        entry: Entry = TABLE[table_name]
        if entry.skip is not None:
            return SweepItem(label, skip=entry.skip, note=entry.note)
        note = entry.note if table_name == label else f"as {table_name}" + (f"; {entry.note}" if entry.note else "")
        return SweepItem(label, "table", f"gradfuzz.sweep_targets:{table_name}", [list(v) for v in entry.variants()],
                         note=note, obj=value)
    specs, reason = guess_specs(value)
    if specs is None:
        return SweepItem(label, skip=reason)
    variants = [[f"{dtype}[3]@{GUESS_DOMAIN}" for _ in specs] for dtype in GUESS_DTYPES]
    problem = probe_guess(value, len(specs))
    if problem is not None:
        return SweepItem(label, skip=problem)
    return SweepItem(label, "signature", f"{module}:{attr}", variants, note=f"guessed from ({', '.join(specs)})", obj=value)


def guess_specs(fn: Callable) -> tuple[list[str] | None, str]:
    """The names of the arguments to draw, from the signature; or None and why not."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None, "no readable signature, no @gradfuzz.inputs and no table entry: give @gradfuzz.inputs(...)"
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty and p.name != "name"]
    required_keywords = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    if required_keywords:
        return None, f"needs keyword argument(s) it cannot guess ({', '.join(required_keywords)}): give @gradfuzz.inputs(...)"
    if not required:
        return None, "takes no required argument: nothing to draw (declare inputs with @gradfuzz.inputs(...))"
    not_tensors = [p.name for p in required if p.name in _NOT_TENSORS or p.name.endswith(("_fn", "_size", "_shape"))
                   or p.annotation in (int, str, bool, "int", "str", "bool")]
    if not_tensors or len(required) > GUESS_MAX_ARGUMENTS:
        names = ", ".join(not_tensors or [p.name for p in required])
        return None, f"needs arguments it cannot guess ({names}): declare its inputs with @gradfuzz.inputs(...)"
    return [p.name for p in required], ""


def probe_guess(fn: Callable, count: int) -> str | None:
    """One eager call on guessed inputs: None if it returns a floating-point tensor, else why not."""
    from gradfuzz._tf import tf

    values = [tf.constant(np.linspace(-1.3, 1.7, 3) + 0.1 * i, dtype=tf.float32) for i in range(count)]
    try:
        result = fn(*values)
    except Exception as error:  # a guess the function rejects
        message = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        return f"rejects guessed inputs float32[3] ({type(error).__name__}: {message}): declare them with @gradfuzz.inputs(...)"
    flat = [t for t in tf.nest.flatten(result) if hasattr(t, "dtype")]
    if not any(tf.as_dtype(t.dtype).is_floating or tf.as_dtype(t.dtype).is_complex for t in flat):
        return INTEGER_RESULT
    return None


INTEGER_RESULT = "returns no floating-point tensor (integer or boolean output): nothing to differentiate"


def _table_by_object(module_names: Iterable[str]) -> dict[int, str]:
    """Table entries by the object they name, for the swept modules' packages (aliases such as
    tf.nn.softmax = tf.math.softmax find their entry). Only packages already imported are resolved."""
    from gradfuzz.sweep_targets import resolve

    packages = {name.split(".")[0] for name in module_names}
    found: dict[int, str] = {}
    for name in TABLE:
        if full_name(name).split(".")[0] not in packages:
            continue
        try:
            found.setdefault(id(resolve(name)), name)
        except (ImportError, AttributeError):
            continue
    return found


def _differentiable(spec) -> bool:
    from gradfuzz.spec import PASS_THROUGH

    text = str(spec)
    return text.split("[", 1)[0] not in PASS_THROUGH


def _first_dtype(variant: Sequence[str]) -> str:
    return variant[0].split("[", 1)[0] if variant else ""


# -- running ---------------------------------------------------------------------------------------


@dataclass
class SweepRow:
    """One function's line in the sweep's table (and in sweep.json)."""

    function: str
    verdict: str  # pass, fail, error, not-run, skipped (pending/running while the sweep runs)
    source: str = ""
    target: str = ""
    inputs: list[list[str]] = field(default_factory=list)
    reason: str = ""
    note: str = ""
    findings: list[dict[str, Any]] = field(default_factory=list)  # category, count, where, explanation
    notes: list[str] = field(default_factory=list)  # note categories
    examples: int = 0
    examples_per_second: float = 0.0
    seconds: float = 0.0
    stored: int = 0
    reproduce: str = ""

    @property
    def categories(self) -> list[str]:
        return list(dict.fromkeys(f["category"] for f in self.findings))


@dataclass
class Sweep:
    """A sweep's state: what ``STORE/sweep.json`` holds."""

    modules: list[str]
    rows: list[SweepRow]
    budget_per_function: float | None
    max_examples: int | None
    seed: int
    store: Path
    match: list[str] = field(default_factory=list)
    dtypes: list[str] = field(default_factory=list)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    status: str = "running"  # running, finished, interrupted
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    sessions: int = 1

    # -- verdicts --------------------------------------------------------------------------------

    def count(self, verdict: str) -> int:
        return sum(row.verdict == verdict for row in self.rows)

    @property
    def failed(self) -> bool:
        return any(row.verdict == FAIL for row in self.rows)

    @property
    def all_passed(self) -> bool:
        """Every function that was to be checked was checked and passed (skipped ones aside)."""
        return all(row.verdict in (PASS, SKIPPED) for row in self.rows)

    def summary(self) -> str:
        parts = [f"{self.count(v)} {v}" for v in (PASS, FAIL, ERROR, NOT_RUN, SKIPPED, PENDING) if self.count(v)]
        return f"{len(self.rows)} function(s): " + ", ".join(parts)

    # -- persistence -----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "sweep": self.id, "status": self.status, "modules": self.modules,
                "match": self.match, "dtypes": self.dtypes, "budget_per_function_seconds": self.budget_per_function,
                "max_examples_per_function": self.max_examples, "seed": self.seed, "store": str(self.store),
                "started": self.started, "updated": datetime.now(UTC).isoformat(timespec="seconds"),
                "sessions": self.sessions, "summary": {v: self.count(v) for v in (PASS, FAIL, ERROR, NOT_RUN, SKIPPED)},
                "functions": [asdict(row) for row in self.rows]}

    def checkpoint(self) -> None:
        write_atomically(self.store / STATE_FILE, json.dumps(self.to_json(), indent=2, default=str, allow_nan=False))

    @classmethod
    def load(cls, path: Path) -> Sweep:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise SweepError(f"No sweep to resume: {path} does not exist. Start one without --resume.") from None
        except (OSError, json.JSONDecodeError) as error:
            raise SweepError(f"{path} is not a readable sweep state ({error}); start a new sweep without --resume.") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise SweepError(f"{path} is not a sweep state of version {STATE_VERSION}; start a new sweep without --resume.")
        try:
            rows = [SweepRow(**row) for row in data["functions"]]
            return cls(modules=data["modules"], rows=rows, budget_per_function=data["budget_per_function_seconds"],
                       max_examples=data["max_examples_per_function"], seed=data["seed"], store=Path(data["store"]),
                       match=data.get("match", []), dtypes=data.get("dtypes", []), id=data["sweep"], status=data["status"],
                       started=data["started"], sessions=data.get("sessions", 1))
        except (KeyError, TypeError) as error:
            raise SweepError(f"{path} is missing {error}: not a gradfuzz sweep state, or damaged.") from None


def new_sweep(modules: Sequence[str], items: Sequence[SweepItem], *, store: Path, budget_per_function: float | None,
              max_examples: int | None, seed: int | None, match: Sequence[str] = (), dtypes: Sequence[str] = ()) -> Sweep:
    rows = [SweepRow(item.function, SKIPPED if item.skip else PENDING, item.source, item.target, item.variants,
                     item.skip or "", item.note, reproduce=_reproduce(item)) for item in items]
    seed = int(np.random.default_rng().integers(2**31)) if seed is None else seed
    return Sweep(list(modules), rows, budget_per_function, max_examples, seed, Path(store), list(match), list(dtypes))


def resume_sweep(store: Path, modules: Sequence[str]) -> Sweep:
    """The sweep checkpointed in ``store``; a function that was running when the process died is an
    error (it may crash the process again), listed with the command that reproduces it."""
    sweep = Sweep.load(Path(store) / STATE_FILE)
    if list(modules) != sweep.modules:
        raise SweepError(f"{store}/{STATE_FILE} is a sweep of {', '.join(sweep.modules)}, not {', '.join(modules)}. "
                         "Resume with the same modules, or start a new sweep without --resume.")
    if sweep.status == "finished" and not any(row.verdict in (PENDING, RUNNING, NOT_RUN) for row in sweep.rows):
        raise SweepError(f"The sweep in {store}/{STATE_FILE} already finished. Start a new one without --resume.")
    for row in sweep.rows:
        if row.verdict == RUNNING:
            row.verdict = ERROR
            row.reason = ("the sweep process died while checking it (a crash, the OOM killer or kill -9); not re-run. "
                          f"Reproduce it alone with: {row.reproduce}")
        elif row.verdict == NOT_RUN and row.reason.startswith("interrupted"):
            row.verdict, row.reason = PENDING, ""
    sweep.store = Path(store)
    sweep.status = "running"
    sweep.sessions += 1
    return sweep


def set_aside(store: Path) -> str | None:
    """Keep an earlier sweep's state as ``sweep-<id>.json``; returns the new name, if any."""
    path = Path(store) / STATE_FILE
    if not path.exists():
        return None
    try:
        old = json.loads(path.read_text()).get("sweep", "unreadable")
    except (OSError, json.JSONDecodeError, AttributeError):
        old = "unreadable"
    kept = path.with_name(f"sweep-{old}.json")
    path.replace(kept)
    return kept.name


def run_sweep(sweep: Sweep, *, store=None, stop_requested: Callable[[], bool] = lambda: False,
              on_start: Callable[[int, SweepRow], None] | None = None,
              on_result: Callable[[int, SweepRow], None] | None = None, checkpoint: bool = True) -> Sweep:
    """Check every pending function in turn; the state is checkpointed before and after each."""
    from gradfuzz.checker import check_target
    from gradfuzz.options import CheckOptions
    from gradfuzz.planning import CheckRequest, plan_checks
    from gradfuzz.report import CheckReport
    from gradfuzz.spec import SpecError
    from gradfuzz.target import TargetError, load_target

    if checkpoint:
        sweep.checkpoint()
    for index, row in enumerate(sweep.rows):
        if row.verdict != PENDING:
            continue
        if stop_requested():
            row.verdict, row.reason = NOT_RUN, "interrupted before it ran (--resume continues)"
            continue
        row.verdict = RUNNING
        if checkpoint:
            sweep.checkpoint()
        if on_start is not None:
            on_start(index, row)
        started = time.monotonic()
        try:
            target = load_target(row.target)
            share = None if sweep.budget_per_function is None else sweep.budget_per_function / len(row.inputs)
            examples = _split(sweep.max_examples, len(row.inputs))
            planned = plan_checks([CheckRequest((target,), tuple(variant), share, count)
                                   for variant, count in zip(row.inputs, examples)])
        except (TargetError, SpecError) as error:
            message = str(error)
            row.verdict = SKIPPED if "no floating-point argument" in message else ERROR
            row.reason = message
        else:
            seed = function_seed(sweep.seed, row.function)
            reports = []
            try:
                for plan in planned:
                    if stop_requested():
                        break
                    reports.append(check_target(plan.target, plan.specs,
                                                CheckOptions(seed=seed, slice_of_many=True).for_check(plan.seconds, plan.max_examples),
                                                store=store, should_stop=stop_requested))
            except KeyboardInterrupt:  # a second Ctrl-C: stop at once, but leave a state --resume can continue
                row.verdict, row.reason = NOT_RUN, "interrupted while it ran (--resume runs it again)"
                sweep.status = "interrupted"
                if checkpoint:
                    sweep.checkpoint()
                raise
            except Exception as error:  # gradfuzz's own trouble with one function must not end a release job's sweep
                row.verdict, row.reason = ERROR, f"checking it raised {type(error).__name__}: {error}"
            else:
                _fold(row, CheckReport.merge(reports) if reports else None, len(reports) < len(planned) or stop_requested())
        row.seconds = round(time.monotonic() - started, 3)
        if checkpoint:
            sweep.checkpoint()
        if on_result is not None:
            on_result(index, row)
    sweep.status = "interrupted" if stop_requested() else "finished"
    if checkpoint:
        sweep.checkpoint()
    return sweep


def function_seed(seed: int, function: str) -> int:
    """A function's seed: stable across runs and resumes, distinct per function."""
    return int(np.random.SeedSequence([seed, zlib.crc32(function.encode())]).generate_state(1)[0] & 0x7FFFFFFF)


def _fold(row: SweepRow, report, interrupted: bool) -> None:
    if report is None:
        row.verdict, row.reason = NOT_RUN, "interrupted before it ran (--resume continues)"
        return
    row.examples, row.examples_per_second, row.stored = report.examples, round(report.examples_per_second, 1), report.stored
    row.findings = [{"category": str(f.category), "count": int(f.count), "where": f.region or "",
                     "explanation": f.explanation} for f in report.failures]
    row.notes = list(dict.fromkeys(str(f.category) for f in report.notes))
    if report.error is not None:
        row.verdict, row.reason = ERROR, report.error
    elif report.failures:
        row.verdict = FAIL
    elif report.examples == 0:
        row.verdict = NOT_RUN
        row.reason = ("interrupted before an example was evaluated (--resume continues)" if interrupted else
                      f"no example was evaluated: getting ready took {report.warmup_seconds:.1f} s; give it a larger "
                      "--budget-per-function")
    else:
        row.verdict = PASS
        if interrupted:
            row.reason = "interrupted: checked only part of its budget"


def _split(total: int | None, parts: int) -> list[int | None]:
    if total is None:
        return [None] * parts
    base, extra = divmod(total, parts)
    return [max(1, base + (k < extra)) for k in range(parts)]


def _reproduce(item: SweepItem) -> str:
    if item.skip or not item.variants:
        return ""
    return " ".join(["gradfuzz check", f"'{item.target}'", *(f"--input '{spec}'" for spec in item.variants[0])])


# -- output ----------------------------------------------------------------------------------------


def inputs_text(row: SweepRow) -> str:
    return "; ".join(", ".join(variant) for variant in row.inputs)


def findings_text(row: SweepRow) -> str:
    if row.findings:
        counts: dict[str, int] = {}
        for finding in row.findings:
            counts[finding["category"]] = counts.get(finding["category"], 0) + finding["count"]
        return ", ".join(f"{category} ×{count:,}" for category, count in counts.items())
    return row.reason if row.verdict in (SKIPPED, ERROR, NOT_RUN) else "-"


def to_markdown(sweep: Sweep) -> str:
    lines = [f"# gradfuzz sweep of {', '.join(sweep.modules)}", "",
             f"{sweep.summary()}; budget per function {_budget_text(sweep)}, seed {sweep.seed}, store `{sweep.store}`.", "",
             "| function | inputs (dtypes/shapes) | verdict | findings / reason | examples | examples/s |",
             "|---|---|---|---|---:|---:|"]
    for row in sweep.rows:
        cells = [f"`{row.function}`", _md(inputs_text(row)) or "-", row.verdict, _md(findings_text(row)),
                 f"{row.examples:,}" if row.examples else "-",
                 f"{row.examples_per_second:,.0f}" if row.examples_per_second else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(sweep: Sweep, paths: Sequence[Path]) -> None:
    """``.md`` (or ``.markdown``) gets the markdown table, anything else the JSON."""
    for path in paths:
        path = Path(path)
        text = to_markdown(sweep) if path.suffix.lower() in (".md", ".markdown") else json.dumps(
            sweep.to_json(), indent=2, default=str, allow_nan=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def rich_table(sweep: Sweep, *, title: str | None = None):
    from rich.markup import escape
    from rich.table import Table

    colours = {PASS: "green", FAIL: "red", ERROR: "red", NOT_RUN: "yellow", SKIPPED: "dim", PENDING: "dim", RUNNING: "cyan"}
    table = Table(title=title or f"gradfuzz sweep of {', '.join(sweep.modules)} — {sweep.summary()}")
    for column, justify in (("function", "left"), ("inputs (dtypes/shapes)", "left"), ("verdict", "left"),
                            ("findings / reason", "left"), ("examples", "right"), ("examples/s", "right")):
        table.add_column(column, justify=justify, overflow="fold")
    for row in sweep.rows:
        colour = colours.get(row.verdict, "white")
        table.add_row(escape(row.function), escape(inputs_text(row)) or "-", f"[{colour}]{row.verdict}[/]",
                      escape(findings_text(row)), f"{row.examples:,}" if row.examples else "-",
                      f"{row.examples_per_second:,.0f}" if row.examples_per_second else "-")
    return table


def progress_line(index: int, total: int, row: SweepRow) -> str:
    width = len(str(total))
    detail = findings_text(row) if row.verdict != PASS else f"{row.examples:,} examples ({row.examples_per_second:,.0f}/s)"
    return f"[{index + 1:>{width}}/{total}] {row.function}  {row.verdict}  {detail}  ({row.seconds:.1f} s)"


def _budget_text(sweep: Sweep) -> str:
    if sweep.max_examples is not None:
        return f"{sweep.max_examples:,} examples" + (f" / {sweep.budget_per_function:g} s" if sweep.budget_per_function else "")
    return f"{sweep.budget_per_function:g} s" if sweep.budget_per_function else "default"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
