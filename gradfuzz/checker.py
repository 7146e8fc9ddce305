"""Checking one target: a thin layer over Hypothesis.

Hypothesis draws batch plans (`gradfuzz.strategies.plans`) in short rounds;
each plan is expanded to a batch, evaluated by the engine and judged by the
oracle. Every verdict is collected (nothing is raised) so one run finds
every kind of failure; the first time a new kind appears, the round raises
so that Hypothesis shrinks the plan to the simplest batch that still shows
it, and that batch's simplest example becomes the stored representative.
``hypothesis.target`` steers generation towards larger errors.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import target as hypothesis_target
from hypothesis.errors import HypothesisException

from gradfuzz.boundaries import BranchSignature, axis_switches, bisect, differing_pairs, points_for
from gradfuzz.diagnosis import branch_boundary, mode_disagreements, nondeterministic
from gradfuzz.engine import (
    Batch,
    Evaluation,
    Evaluator,
    OutOfMemory,
    Structure,
    TargetRaised,
    probe,
    second_order_missing,
    select_evaluation,
    summarize_error,
)
from gradfuzz.oracle import (
    CATEGORIES,
    CATEGORY_CODE,
    FAILURE,
    NOTE_CATEGORIES,
    Judgement,
    Verdict,
    check_contract,
    explain,
    judge,
    judge_second_order,
)
from gradfuzz.report import CheckReport, Finding
from gradfuzz.screen import JudgingQuota, Screen, ScreenResult
from gradfuzz.simplicity import batch_simplicity, simplicity
from gradfuzz.spec import ArgSpec
from gradfuzz.store import FailureStore, failure_row
from gradfuzz.strategies import Plan, cotangents, directions, expand, plans, tangents
from gradfuzz.target import Target

PLANS_PER_ROUND = 25
MAX_BATCH = 1024
ELEMENTS_PER_BATCH = 1 << 16  # keeps large-tensor batches within a modest memory budget
SHRINK_SHARE = 0.25  # at most this share of the budget goes to shrinking
BISECT_SHARE = 0.1  # bisection signs at most this share of the examples the run evaluates
PLANS_PER_EXAMPLE_BUDGET = 16  # an example-bounded run spreads max_examples over at least this many plans
BISECT_PAIRS = 32  # segments bisected per round
BISECT_SAMPLE = 256  # examples whose branch signatures are compared per round
POOL_SIZE = 4096  # boundary examples kept per target (the newest)


def parse_duration(text: str | float | int | None) -> float | None:
    """``"30s"``, ``"5m"``, ``"1.5h"``, ``"250ms"`` or a number of seconds.

    >>> parse_duration("5m")
    300.0
    """
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(ms|s|m|h|d)?\s*", text)
    if not match:
        raise ValueError(f"Cannot read the duration {text!r}: use a number with a unit, e.g. 30s, 5m, 2h, 1d or 500ms.")
    return float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}[match[2]]


def batch_size_for(specs: Sequence[ArgSpec], elements_budget: int = ELEMENTS_PER_BATCH) -> int:
    """The largest power of two up to MAX_BATCH whose batch stays within the element budget."""
    elements = max(1, sum(s.size for s in specs))
    size = MAX_BATCH
    while size > 16 and size * elements > elements_budget:
        size //= 2
    return size


def example_bounded_batch(specs: Sequence[ArgSpec], max_examples: int) -> int:
    """The fixed batch size of a run bounded by ``max_examples``: a power of two giving at least
    `PLANS_PER_EXAMPLE_BUDGET` plans, within 16 and the memory budget. Fixed, not grown while
    throughput improves, so such a run draws the same batches on a fast and a slow machine.

    >>> from gradfuzz.spec import parse_spec
    >>> example_bounded_batch([parse_spec("float32[]")], 2048), example_bounded_batch([parse_spec("float32[]")], 100)
    (128, 16)
    """
    wanted = max(16, max_examples // PLANS_PER_EXAMPLE_BUDGET)
    return min(1 << (wanted.bit_length() - 1), BatchSizer(specs).limit)


class BatchSizer:
    """Grow the batch while throughput improves; halve it when the device runs out of memory.

    Each size is measured over `SAMPLES` batches (median examples/s); the next doubling is
    kept only if it is at least `GAIN` times faster, within a memory budget of
    `MAX_ELEMENTS` argument elements and `MAX_EXAMPLES` examples per batch. A fixed size (``--batch-size``) disables
    growth, which also makes a seeded run reproducible batch for batch.
    """

    SAMPLES = 3
    GAIN = 1.05
    MAX_ELEMENTS = 1 << 22
    MAX_EXAMPLES = 1 << 18  # keeps a batch's latency (deadlines, shrink steps) to a fraction of a second

    def __init__(self, specs: Sequence[ArgSpec], fixed: int | None = None):
        self.size = fixed or batch_size_for(specs)
        elements = max(1, sum(s.size for s in specs))
        self.limit = fixed or max(self.size, min(self.MAX_EXAMPLES, self.MAX_ELEMENTS // elements))
        self.growing = fixed is None
        self.rates: dict[int, list[float]] = {}
        self.halvings: list[int] = []

    def record(self, count: int, seconds: float) -> None:
        if not self.growing or count != self.size or seconds <= 0:
            return
        samples = self.rates.setdefault(self.size, [])
        samples.append(count / seconds)
        if len(samples) < self.SAMPLES:
            return
        previous = self.rates.get(self.size // 2)
        if previous and len(previous) >= self.SAMPLES and np.median(samples) < self.GAIN * np.median(previous):
            self.size //= 2  # the last doubling did not pay: settle on the smaller size
            self.growing = False
        elif self.size * 2 <= self.limit:
            self.size *= 2
        else:
            self.growing = False

    def out_of_memory(self) -> None:
        self.halvings.append(self.size)
        self.size = max(1, self.size // 2)
        self.limit = self.size
        self.growing = False

    def describe(self) -> dict:
        return {
            "batch_size": self.size,
            "batch_sizes_tried": {size: round(float(np.median(rates)), 1) for size, rates in sorted(self.rates.items())},
            "out_of_memory_halvings": self.halvings,
        }


class WarmCache:
    """Compiled evaluators, points of interest and settled batch sizes, kept across checks.

    A campaign worker checks the same targets again and again in short slices; with a
    cache, only the first slice of a target pays for tracing and batch-size search.
    """

    def __init__(self) -> None:
        self._items: dict[tuple, object] = {}

    @staticmethod
    def key(target: Target, specs: Sequence[ArgSpec], *extra: object) -> tuple:
        return (target.name, target.fingerprint, tuple(str(s) for s in specs), *extra)

    def _get(self, key: tuple, build: Callable[[], object]):
        if key not in self._items:
            self._items[key] = build()
        return self._items[key]

    def evaluator(self, target: Target, specs: Sequence[ArgSpec], structure: Structure, jit: bool, order: int) -> Evaluator:
        return self._get(self.key(target, specs, "evaluator", structure, jit, order),
                         lambda: Evaluator(target, specs, structure, jit=jit, order=order))

    def points(self, target: Target, specs: Sequence[ArgSpec]) -> list:
        return self._get(self.key(target, specs, "points"), lambda: points_for(target, specs))

    def sizer(self, target: Target, specs: Sequence[ArgSpec], fixed: int | None) -> BatchSizer:
        return self._get(self.key(target, specs, "sizer", fixed), lambda: BatchSizer(specs, fixed))

    def signature(self, target: Target, specs: Sequence[ArgSpec], structure: Structure) -> BranchSignature:
        return self._get(self.key(target, specs, "signature", structure),
                         lambda: BranchSignature(target, specs, structure.output_dtypes, structure.output_shapes))

    def screen(self, evaluator: Evaluator, points: Sequence[Sequence[float]]) -> Screen:
        key = self.key(evaluator.target, evaluator.specs, "screen", evaluator.structure, evaluator.order)
        return self._get(key, lambda: Screen(evaluator, points))

    def pool(self, target: Target, specs: Sequence[ArgSpec]) -> BoundaryPool:
        """Examples either side of branch switches found so far (kept across checks)."""
        return self._get(self.key(target, specs, "pool"), BoundaryPool)


@dataclass
class BoundaryPool:
    """The newest `POOL_SIZE` examples found on either side of a branch switch."""

    examples: list[np.ndarray] | None = None  # per argument, [P, *shape]
    switches: int = 0  # bisections that ended at a switch, ever

    def add(self, found: list[np.ndarray]) -> None:
        self.switches += len(found[0]) // 2
        merged = found if self.examples is None else [np.concatenate([old, new]) for old, new in zip(self.examples, found)]
        self.examples = [m[-POOL_SIZE:] for m in merged]


class _Timings(dict):
    """Seconds per stage of the fuzzing loop."""

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self[stage] = self.get(stage, 0.0) + now - since
        return now


@dataclass
class _Group:
    """All examples of one signature seen in a run."""

    representative: Finding
    worst: Finding
    count: int = 1
    shrunk: bool = False
    regions: dict[str, Finding] = field(default_factory=dict)  # one example per input region seen

    def examples(self) -> list[Finding]:
        """The examples worth storing: representative, worst, and one per further region."""
        chosen = [self.representative]
        if self.worst is not self.representative:
            chosen.append(self.worst)
        for finding in self.regions.values():
            if all(finding.region != other.region for other in chosen):
                chosen.append(finding)
        return chosen


@dataclass
class _Run:
    target: Target
    specs: tuple[ArgSpec, ...]
    deadline: float
    max_examples: int | None
    examples: int = 0
    skipped: int = 0
    warmup: float = 0.0  # seconds spent probing and compiling before the first batch
    points: list = field(default_factory=list)  # points of interest per argument
    judged_specs: tuple = ()  # arguments, then the variables the target reads
    first_failure: int | None = None  # examples evaluated up to and including the first failing one
    groups: dict[str, _Group] = field(default_factory=dict)
    run_id: str = ""
    recent: list | None = None  # a sample of the last batch's inputs (for bisection)
    disagreed: int = 0  # examples the screen found disagreeing with autodiff (or not finite)
    judged: int = 0  # examples the oracle judged in full
    signed: int = 0  # examples whose branch signature bisection computed

    stop_at_first_failure: bool = False
    should_stop: Callable[[], bool] | None = None  # asked between batches (a campaign's clean stop)

    def exhausted(self) -> bool:
        if self.stop_at_first_failure and self.first_failure is not None:
            return True
        if self.should_stop is not None and self.should_stop():
            return True
        return time.monotonic() >= self.deadline or (self.max_examples is not None and self.examples >= self.max_examples)


@dataclass
class _Judged:
    """One batch: every example generated, the judged ones with their verdicts."""

    batch: Batch  # the whole batch (tangents only for judged examples)
    judged: list[tuple[Evaluation, Judgement]]  # first order, and second order with order=2
    rows: np.ndarray  # batch row of each judged example
    weights: np.ndarray | None  # flagged examples each judged one stands for (None: itself only)
    screened: ScreenResult | None  # None: every example was judged

    @property
    def skipped(self) -> int:
        return self.screened.skipped if self.screened is not None else (self.judged[0][1].skipped if self.judged else 0)

    @property
    def disagreed(self) -> int:
        return self.screened.disagreed if self.screened is not None else 0

    @property
    def score(self) -> float:
        """What Hypothesis' target() maximises: the error in units of the tolerance (screen) or in ULPs."""
        if self.screened is not None:
            return self.screened.score
        return self.judged[0][1].worst_ulps if self.judged else 0.0


class _NewFailure(Exception):
    """Raised inside a Hypothesis round so that it shrinks the plan that showed a new failure kind."""

    def __init__(self, signature: str, plan: Plan, evaluation: Evaluation, judgement: Judgement):
        super().__init__(signature)
        self.signature, self.plan, self.evaluation, self.judgement = signature, plan, evaluation, judgement


def _only_new_failures(error: BaseException) -> bool:
    """Is this Hypothesis error about our own `_NewFailure` signals (and nothing else)?"""
    if isinstance(error, _NewFailure):
        return True
    inner = getattr(error, "exceptions", None)
    if inner:
        return all(_only_new_failures(e) for e in inner)
    cause = error.__cause__ or error.__context__
    return cause is not None and _only_new_failures(cause)


def _raise_new_failure(signature: str, plan: Plan, evaluation: Evaluation, judgement: Judgement) -> None:
    # One raise site: Hypothesis tells bugs apart by where they are raised.
    raise _NewFailure(signature, plan, evaluation, judgement)


def check_target(
    target: Target,
    specs: Sequence[ArgSpec],
    *,
    budget: float = 30.0,
    max_examples: int | None = None,
    seed: int | None = None,
    store: FailureStore | None = None,
    shrink: bool = True,
    batch_size: int | None = None,
    jit: bool = False,
    on_progress: Callable[[CheckReport], None] | None = None,
    plan_strategy: Callable[[int], object] | None = None,
    stop_at_first_failure: bool = False,
    order: int = 1,
    modes: Sequence[str] = ("function",),
    warm: WarmCache | None = None,
    should_stop: Callable[[], bool] | None = None,
    run_id: str | None = None,
) -> CheckReport:
    """Fuzz one target for ``budget`` seconds (or ``max_examples`` examples).

    ``plan_strategy(n_points)`` replaces `gradfuzz.strategies.plans` (benchmarks use it to
    compare against plain uniform sampling); ``stop_at_first_failure`` ends the run as soon
    as an example fails (for measuring how soon a bug is found).

    ``order=2`` also checks the gradient of the custom gradient (Hessian-vector products).
    ``modes`` (any of "eager", "function", "xla") compares execution modes on one batch.
    ``batch_size`` fixes the batch size (default: `example_bounded_batch` with ``max_examples``,
    otherwise grown while throughput improves);
    ``jit`` compiles the batch function with XLA where the target allows it.

    Campaigns pass ``warm`` (compiled functions reused across calls), ``should_stop``
    (asked between batches; the check then ends normally, keeping what it found) and
    ``run_id`` (the store rows' run id). ``report.records`` always holds the store rows;
    ``store`` also appends them.
    """
    specs = tuple(specs)
    started = time.monotonic()
    seed = int(seed) if seed is not None else int(np.random.default_rng().integers(2**31))
    report = CheckReport(target=target.name, specs=specs)
    run = _Run(target, specs, deadline=started + budget, max_examples=max_examples,
               stop_at_first_failure=stop_at_first_failure, should_stop=should_stop, run_id=run_id or uuid.uuid4().hex)
    warm = warm if warm is not None else WarmCache()
    if batch_size is None and max_examples is not None:
        batch_size = example_bounded_batch(specs, max_examples)
    sizer = warm.sizer(target, specs, batch_size)
    timings = _Timings()
    structure, first = _probe_somewhere(run, seed)
    if structure is None:
        return _finish(report, run, started, store, None)
    for violation in check_contract(specs, structure):
        _record_contract(run, violation, target, first, structure, seed)

    try:
        evaluator = warm.evaluator(target, specs, structure, jit, order)
        second_missing = second_order_missing(target, first) if evaluator.order == 2 else []
        run.judged_specs = evaluator.judged_specs
    except Exception as error:  # tracing the batched functions failed
        _record_exception(run, TargetRaised("tracing", error), first, seed)
        return _finish(report, run, started, store, None)
    points = run.points = warm.points(target, specs)
    signature = warm.signature(target, specs, structure)
    pool = warm.pool(target, specs)
    _check_repeatability(run, evaluator, structure, points, seed, modes)
    screen = warm.screen(evaluator, points)
    run.warmup = time.monotonic() - started
    n_points = max(len(p) for p in points)
    shrink_until = [0.0]
    shrinking: dict[str, object] = {}

    output_dtypes = [np.dtype(_np(d)) for d in structure.output_dtypes]
    quota = JudgingQuota()
    pace = {"start": 0.0, "count": 0}  # the last batch: when it started, its size

    def generate(plan: Plan, count: int) -> Batch:
        """A plan's batch: inputs and cotangents (tangents come later, for judged examples only)."""
        inputs = expand(plan, specs, points, count, boundary=pool.examples)
        rng = np.random.default_rng([plan.seed, 1])
        return Batch(inputs, cotangents(rng, count, structure.output_shapes, output_dtypes), [])

    def evaluate_plan(plan: Plan, count: int, timings: _Timings, complete: bool = False) -> _Judged | None:
        """Generate, screen and judge one batch. With the screen, the oracle judges only the
        examples `JudgingQuota` picks from those the screen flagged (``complete``: while
        shrinking, the first and worst of every kind); without it, every example."""
        if count == 0:
            return None
        tick = time.perf_counter()
        screened = None
        try:
            batch = generate(plan, count)
            tick = timings.add("generate", tick)
            if screen.available:
                try:
                    screened = screen(batch)
                except OutOfMemory:
                    raise
                except Exception as error:  # e.g. XLA cannot compile the comparison on this device
                    screen.reason = f"screen failed: {summarize_error(error)[:200]}"
                tick = timings.add("screen", tick)
            rows, weights = (np.arange(count), None) if screened is None else quota.choose(screened, complete)
            if rows.size == 0:
                return _Judged(batch, [], rows, weights, screened)
            subset = batch if screened is None else batch.select(rows)
            subset.tangents = tangents(np.random.default_rng([plan.seed, 2]), subset.inputs)
            tick = timings.add("generate", tick)
            evaluation = evaluator.evaluate(subset)
        except OutOfMemory:
            sizer.out_of_memory()
            return None
        except TargetRaised:
            _isolate_raising(run, evaluator, batch, plan, seed)
            return None
        tick = timings.add("evaluate", tick)
        typical = screened.typical if screened is not None else None
        judged = [(evaluation, judge_batch(evaluator, evaluation, target, points, typical))]
        if evaluator.order == 2:
            judged.append(judge_second_order_batch(evaluator, evaluation, second_missing))
        timings.add("judge", tick)
        return _Judged(batch, judged, rows, weights, screened)

    @settings(
        max_examples=PLANS_PER_ROUND, deadline=None, database=None, derandomize=False,
        suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet, report_multiple_bugs=False,
        phases=[Phase.generate, Phase.target, Phase.shrink] if shrink else [Phase.generate, Phase.target],
    )
    @given((plan_strategy or plans)(n_points))
    def fuzz(plan: Plan) -> None:
        if "signature" in shrinking:  # shrinking: raise iff the plan still shows the failure
            if time.monotonic() > shrink_until[0] and plan != shrinking["best"]:
                return
            tick = time.perf_counter()
            # Shrinking does not spend the example budget; its time counts as "shrink" only.
            outcome = evaluate_plan(plan, shrinking["count"], _Timings(), complete=True)
            timings.add("shrink", tick)
            for pair in outcome.judged if outcome is not None else []:
                if shrinking["signature"] in _failure_signatures(pair[1]):
                    shrinking["best"] = plan
                    _raise_new_failure(shrinking["signature"], plan, *pair)
            return
        if run.exhausted():
            return
        size = sizer.size
        count = size if max_examples is None else max(0, min(size, max_examples - run.examples))
        # The sizer is fed whole intervals between batch starts: per-plan costs outside the batch
        # (Hypothesis drawing the plan, progress) are what larger batches amortise.
        batch_started = time.perf_counter()
        if pace["count"]:
            sizer.record(pace["count"], batch_started - pace["start"])
        pace.update(start=batch_started, count=count)
        outcome = evaluate_plan(plan, count, timings)
        if outcome is None:
            return
        run.recent = [x[:BISECT_SAMPLE] for x in outcome.batch.inputs]
        run.examples += outcome.batch.size
        run.skipped += outcome.skipped
        run.disagreed += outcome.disagreed
        run.judged += outcome.rows.size
        tick = time.perf_counter()
        new = []
        for pair in outcome.judged:
            failing = pair[1].outcome == FAILURE
            if run.first_failure is None and failing.any():
                row = int(outcome.rows[int(np.argmax(failing))])
                run.first_failure = run.examples - outcome.batch.size + row + 1
            new.extend((signature, pair) for signature in _collect(run, *pair, plan, seed, outcome.weights))
        timings.add("collect", tick)
        hypothesis_target(float(np.log10(1.0 + min(outcome.score, 1e300))), label="log10 error")
        if on_progress is not None:
            on_progress(_snapshot(report, run, started))
        if new and shrink:
            signature, pair = new[0]
            shrinking.update(signature=signature, best=plan, count=outcome.batch.size)
            shrink_until[0] = min(run.deadline, time.monotonic() + SHRINK_SHARE * budget)
            _raise_new_failure(signature, plan, *pair)

    round_number = 0
    while not run.exhausted():
        # Bisection's share is counted in examples signed, not seconds: a time share would bisect
        # less on a slower machine, fill the pool differently and draw other inputs.
        if signature.available and BISECT_SHARE > 0 and (round_number == 0 or run.signed <= BISECT_SHARE * run.examples):
            tick = time.perf_counter()
            _bisect_round(run, signature, pool, seed * 1_000_003 + round_number)
            timings.add("bisect", tick)
        shrinking.clear()
        try:
            hypothesis_seed(seed * 1_000_003 + round_number)(fuzz)()
        except _NewFailure as found:
            _adopt_shrunk(run, found, seed)
            tick = time.perf_counter()
            _shrink_elements(run, evaluator, found.signature, found.plan, seed)
            timings.add("shrink", tick)
        except HypothesisException as error:
            # Shrinking could not replay a new failure (e.g. a target that is itself
            # nondeterministic): keep the unshrunk representative already collected.
            # Anything else is a bug in gradfuzz and must not pass silently.
            if not _only_new_failures(error):
                raise
        round_number += 1
        if round_number > 1_000_000:  # pragma: no cover - defensive: a budget always ends a run
            break
    if target.has_custom_gradient:
        _diagnose_branches(run, evaluator, points, signature)
    report.engine = {
        **sizer.describe(),
        "order": evaluator.order,
        "jit": evaluator.jit,
        "time_split": {stage: round(seconds, 4) for stage, seconds in timings.items()},
        "traces": evaluator.stats.traces,
        "fallbacks": evaluator.stats.fallbacks,
        "differences_dtype": evaluator.fd_dtype,
        "device": evaluator.device,
        "points_of_interest": [[float(p) for p in ps] for ps in points],
        "branch_switches_found": pool.switches if signature.available else None,
        "screen": {"used": screen.available, "why_not": screen.reason, "traces": screen.traces},
        "seed": seed,
    }
    return _finish(report, run, started, store, evaluator.device)


def judge_batch(evaluator: Evaluator, evaluation: Evaluation, target: Target, points: Sequence[Sequence[float]],
                typical: Sequence[float] | None = None) -> Judgement:
    """Judge a batch; where it fails, look a few ULPs to either side before calling it a bug
    (a custom gradient at a kink may legitimately differ from autodiff). ``typical`` is the
    per-argument gradient scale of the batch the examples were picked from (see `judge`)."""
    judgement = judge(evaluation, evaluator.judged_specs, evaluator.structure, has_reference=target.has_custom_gradient,
                      typical=typical)
    # Approximations (small, smooth errors) are looked at again only where a kink is possible:
    # the differences see one, or an element sits on a point of interest. Re-evaluating every
    # example of a uniformly wrong gradient would quadruple the cost.
    approximation = judgement.category == CATEGORY_CODE["approximation"]
    if approximation.any():
        approximation &= judgement.kink | _on_points(evaluation.batch.inputs, evaluator.specs, points)
    suspect = np.isin(judgement.category, (CATEGORY_CODE["branch"], CATEGORY_CODE["mismatch"])) | approximation
    # A reference-wrong note can be a kink the differences straddle: look at it again as well.
    suspect = (suspect & (judgement.outcome == FAILURE)) | (judgement.category == CATEGORY_CODE["reference-wrong"])
    indices = np.flatnonzero(suspect)
    if not indices.size:
        return judgement
    try:
        neighbours = evaluator.neighbours(evaluation.batch, indices)
    except TargetRaised:
        return judgement  # raising near x is recorded when such inputs are drawn themselves
    # Judge only the suspects again (with their neighbourhoods), on the batch's own scales.
    neighbours.indices = np.arange(indices.size)
    again = judge(select_evaluation(evaluation, indices), evaluator.judged_specs, evaluator.structure,
                  has_reference=target.has_custom_gradient, neighbours=neighbours, typical=typical or judgement.typical or None)
    judgement.update(indices, again)
    return judgement


PROBE_ATTEMPTS = 8


def _bisect_round(run: _Run, signature: BranchSignature, pool: BoundaryPool, seed: int) -> None:
    """Compare the branch signatures of a sample of examples (the last batch's, or a fresh
    mixed batch before the first) and bisect pairs that differ down to the switch."""
    rng = np.random.default_rng(seed)
    sample = run.recent or expand(Plan(seed=seed, weights=(1, 1, 1, 1)), run.specs, run.points, BISECT_SAMPLE)

    def signed(inputs: Sequence[np.ndarray]) -> np.ndarray:
        run.signed += len(inputs[0])
        return signature(inputs)

    try:
        signatures = signed(sample)
        pairs = differing_pairs(signatures, rng, BISECT_PAIRS)
        if len(pairs):
            found = bisect([x[pairs[:, 0]] for x in sample], [x[pairs[:, 1]] for x in sample], run.specs, signed)
            pool.add(found)
    except Exception:
        return


def _probe_somewhere(run: _Run, seed: int) -> tuple[Structure | None, list[np.ndarray]]:
    """Probe the target eagerly on a few inputs (random, then special values) until one
    runs. Inputs on which it raises are recorded as `exception` findings; the run
    goes on with the structure learned from the first input that worked."""
    candidates = expand(Plan(seed=seed, weights=(1, 0, 1, 0)), run.specs, [[] for _ in run.specs], PROBE_ATTEMPTS)
    for k in range(PROBE_ATTEMPTS):
        example = [x[k] for x in candidates]
        try:
            return probe(run.target, run.specs, example), example
        except TargetRaised as raised:
            _record_exception(run, raised, example, seed)
    return None, []


def judge_second_order_batch(evaluator: Evaluator, evaluation: Evaluation, missing: Sequence[int]) -> tuple[Evaluation, Judgement]:
    """Second order, with a look a few ULPs to either side of the examples that fail."""
    hvp, judgement = judge_second_order(evaluation, evaluator.specs, evaluator.structure, missing)
    indices = np.flatnonzero(judgement.outcome == FAILURE)
    if not indices.size:
        return hvp, judgement
    try:
        neighbours = evaluator.neighbours(evaluation.batch, indices)
    except TargetRaised:
        return hvp, judgement
    return judge_second_order(evaluation, evaluator.specs, evaluator.structure, missing, neighbours)


def _on_points(inputs: Sequence[np.ndarray], specs: Sequence[ArgSpec], points: Sequence[Sequence[float]]) -> np.ndarray:
    """Per example: some element lies within a few ULPs of a point of interest."""
    size = inputs[0].shape[0]
    hit = np.zeros(size, dtype=bool)
    for x, spec, arg_points in zip(inputs, specs, points):
        if not spec.differentiable or spec.is_complex:
            continue
        values = np.asarray(x, dtype=np.float64).reshape(size, -1)
        for point in arg_points:
            reach = max(64 * float(spec.info.ulp(np.float64(point))), 4 * spec.info.tiny)
            hit |= np.any(np.abs(values - point) <= reach, axis=1)
    return hit


def _np(dtype_name: str):
    from gradfuzz.dtypes import DTYPES

    return DTYPES[dtype_name].numpy if dtype_name in DTYPES else np.dtype(dtype_name)


def _signature(verdict: Verdict) -> str:
    """Coarse identity of a finding: its category and the argument it concerns."""
    return _signature_of(verdict.category, -1 if verdict.argument is None else verdict.argument)


def _signature_of(category: str, argument: int) -> str:
    if category in NOTE_CATEGORIES:  # notes are grouped by kind only
        argument = -1
    return f"{category}|arg{argument if argument >= 0 else '*'}"


def _group_indices(judgement: Judgement, outcome: int | None = None) -> dict[str, np.ndarray]:
    """Flagged (or, given ``outcome``, only such) example indices per signature.

    Vectorised on integer keys: a failing batch flags every one of its examples."""
    flagged = judgement.flagged() if outcome is None else np.flatnonzero(judgement.outcome == outcome)
    if not flagged.size:
        return {}
    arguments = np.where(np.isin(judgement.category[flagged], _NOTE_CODES), -1, judgement.argument[flagged])
    keys = judgement.category[flagged].astype(np.int64) * 1024 + arguments + 1
    unique, inverse = np.unique(keys, return_inverse=True)
    return {
        _signature_of(CATEGORIES[int(key // 1024)], int(key % 1024) - 1): flagged[inverse.reshape(-1) == k]
        for k, key in enumerate(unique)
    }


_NOTE_CODES = [CATEGORY_CODE[name] for name in NOTE_CATEGORIES]


def _failure_signatures(judgement: Judgement) -> set[str]:
    return set(_group_indices(judgement, FAILURE))


def _finding(verdict: Verdict, evaluation: Evaluation, run: _Run, plan: Plan | None, seed: int) -> Finding:
    i = verdict.index
    reference = evaluation.reference or [None] * len(evaluation.custom)
    return Finding(
        target=run.target.name, kind=verdict.outcome, category=verdict.category,
        explanation=explain(verdict, run.judged_specs or run.specs, evaluation),
        inputs=[np.array(x[i]) for x in evaluation.batch.inputs],
        cotangents=[np.array(v[i]) for v in evaluation.batch.cotangents],
        tangents=[np.array(w[i]) for w in evaluation.batch.tangents],
        custom=[np.array(g[i]) for g in evaluation.custom],
        reference=[None if r is None else np.array(r[i]) for r in reference],
        reference_name=verdict.reference_name, argument=verdict.argument, element=verdict.element,
        custom_value=verdict.custom, reference_value=verdict.reference, abs_error=verdict.abs_error,
        rel_error=verdict.rel_error, ulp_error=verdict.ulp_error, signature=_signature(verdict),
        plan=json.dumps(asdict(plan)) if plan is not None else "", seed=seed, evidence=dict(verdict.evidence),
        region=_region_of_verdict(verdict, evaluation, run.points),
    )


MAX_REGIONS = 8


def region_label(value: float, points: Sequence[float]) -> str:
    """Where a value lies among the points of interest: "=0" on one, "(0, 1)" between two.

    >>> region_label(0.5, [0.0, 1.0, -1.0])
    '(0, 1)'
    """
    ordered = sorted(points)
    value += 0.0  # -0.0 and 0.0 are one point
    if value in ordered:
        return f"={value:g}"
    below = [p for p in ordered if p < value]
    above = [p for p in ordered if p > value]
    return f"({below[-1] if below else -np.inf:g}, {above[0] if above else np.inf:g})"


def _region_of_verdict(verdict: Verdict, evaluation: Evaluation, points: Sequence[Sequence[float]]) -> str:
    if verdict.argument is None or not points or verdict.argument >= len(evaluation.batch.inputs) \
            or np.iscomplexobj(evaluation.batch.inputs[verdict.argument]):
        return "*"  # inner-product verdicts, variables (not drawn) and complex arguments: no region
    value = float(np.asarray(evaluation.batch.inputs[verdict.argument][verdict.index]).reshape(-1)[verdict.element or 0])
    return region_label(value, points[verdict.argument])


def _simplest(indices: np.ndarray, ranks: tuple[np.ndarray, np.ndarray]) -> int:
    nonzero, magnitude = ranks
    order = np.lexsort((magnitude[indices], nonzero[indices]))
    return int(indices[order[0]])


def _collect(run: _Run, evaluation: Evaluation, judgement: Judgement, plan: Plan, seed: int,
             weights: np.ndarray | None = None) -> list[str]:
    """Fold a batch's verdicts into the run's groups; return signatures of new failure kinds.

    Only the batch's simplest and worst example of each signature become `Finding`s. ``weights``
    (from the screen) says how many flagged examples each judged one stands for: group counts
    estimate how widespread a kind is, not how often the oracle happened to look at it.
    """
    new = []
    ranks = batch_simplicity(evaluation.batch.inputs)
    for signature, indices in _group_indices(judgement).items():
        simplest = judgement.verdict(_simplest(indices, ranks))
        errors = np.nan_to_num(judgement.abs_error[indices], nan=-1.0)
        worst = judgement.verdict(int(indices[np.argmax(errors)]))
        group = run.groups.get(signature)
        if group is None:
            representative = _finding(simplest, evaluation, run, plan, seed)
            worst_finding = representative if worst.index == simplest.index else _finding(worst, evaluation, run, plan, seed)
            group = run.groups[signature] = _Group(representative, worst_finding, count=_count(indices, weights))
            group.regions[representative.region] = representative
            _note_regions(group, indices, judgement, evaluation, run, plan, seed)
            if simplest.outcome == "failure":
                new.append(signature)
            continue
        group.count += _count(indices, weights)
        if len(group.regions) < MAX_REGIONS:
            _note_regions(group, indices, judgement, evaluation, run, plan, seed)
        if worst.abs_error > group.worst.abs_error or (np.isnan(group.worst.abs_error) and not np.isnan(worst.abs_error)):
            group.worst = _finding(worst, evaluation, run, plan, seed)
        candidate = (int(ranks[0][simplest.index]), float(ranks[1][simplest.index]))
        if not group.shrunk and candidate < simplicity(group.representative.inputs):
            group.representative = _finding(simplest, evaluation, run, plan, seed)
    return new


def _count(indices: np.ndarray, weights: np.ndarray | None) -> float:
    return float(len(indices) if weights is None else np.sum(weights[indices]))


def _note_regions(group: _Group, indices: np.ndarray, judgement: Judgement, evaluation: Evaluation, run: _Run,
                  plan: Plan, seed: int) -> None:
    """Keep the first example of each input region this group has not been seen in yet."""
    argument = int(judgement.argument[indices[0]])
    if argument < 0 or argument >= len(evaluation.batch.inputs) or group.representative.kind != "failure" \
            or np.iscomplexobj(evaluation.batch.inputs[argument]):
        return
    values = np.asarray(evaluation.batch.inputs[argument], dtype=np.float64).reshape(evaluation.batch.size, -1)
    elements = np.maximum(judgement.element[indices], 0)
    seen: set[str] = set(group.regions)
    for index, value in zip(indices, values[indices, elements]):
        label = region_label(float(value), run.points[argument])
        if label not in seen:
            seen.add(label)
            group.regions[label] = _finding(judgement.verdict(int(index)), evaluation, run, plan, seed)
            if len(group.regions) >= MAX_REGIONS:
                return


def _adopt_shrunk(run: _Run, found: _NewFailure, seed: int) -> None:
    """Take the simplest example of the shrunk plan's batch as the group's representative."""
    group = run.groups.get(found.signature)
    if group is None:
        return
    indices = _group_indices(found.judgement).get(found.signature)
    if indices is not None:
        ranks = batch_simplicity(found.evaluation.batch.inputs)
        best = _simplest(indices, ranks)
        if (int(ranks[0][best]), float(ranks[1][best])) <= simplicity(group.representative.inputs):
            group.representative = _finding(found.judgement.verdict(best), found.evaluation, run, found.plan, seed)
    group.shrunk = True


SHRINK_PASSES = 24  # element-wise simplification steps per failure kind
SHRINK_ELEMENTS = 64  # examples with more elements are left as the plan shrink made them


def _shrink_elements(run: _Run, evaluator: Evaluator, signature: str, plan: Plan, seed: int) -> None:
    """Simplify the representative element by element while it keeps failing the same way.

    Hypothesis shrinks the *plan*; this pass finishes the job on the one stored example:
    each step evaluates, in one batch, every single-element change to a simpler value (0, ±1,
    ±2, the integer part, the nearest integer, 1–3 significant digits, half the value) and keeps
    the simplest that
    still shows ``signature`` — fewest non-zero elements, then fewest significant digits, then
    smallest magnitudes. The stored input is the result, as raw bits.
    """
    group = run.groups.get(signature)
    if group is None or group.representative.kind != "failure" or run.exhausted():
        return
    current = group.representative
    specs = evaluator.specs
    if any(s.is_complex for s in specs) or sum(np.asarray(x).size for x in current.inputs) > SHRINK_ELEMENTS:
        return
    for _ in range(SHRINK_PASSES):
        rows = _element_candidates(current.inputs, specs)
        if not rows:
            break
        count = len(rows)
        batch = Batch([np.stack([row[a] for row in rows]) for a in range(len(specs))],
                      [np.repeat(np.asarray(v)[None], count, 0) for v in current.cotangents],
                      [np.repeat(np.asarray(w)[None], count, 0) for w in current.tangents])
        try:
            evaluation = evaluator.evaluate(batch)
        except (TargetRaised, OutOfMemory):
            break
        judgement = judge_batch(evaluator, evaluation, run.target, run.points)
        still = _group_indices(judgement, FAILURE).get(signature)
        if still is None:
            break
        best = min(still, key=lambda i: _shrink_order([x[i] for x in batch.inputs]))
        if _shrink_order([x[best] for x in batch.inputs]) >= _shrink_order(current.inputs):
            break
        current = _finding(judgement.verdict(int(best)), evaluation, run, plan, seed)
    group.representative = current


def _element_candidates(inputs: Sequence[np.ndarray], specs: Sequence[ArgSpec]) -> list[list[np.ndarray]]:
    """Every copy of the example with one element replaced by a simpler value in its range."""
    rows = []
    for a, (x, spec) in enumerate(zip(inputs, specs)):
        if not spec.differentiable:
            continue
        flat = np.asarray(x).reshape(-1)
        for e, value in enumerate(flat.astype(np.float64)):
            if not np.isfinite(value):
                continue
            sign = 1.0 if value >= 0 else -1.0
            options = {0.0, sign, 2 * sign, float(np.trunc(value)), float(np.round(value)), float(f"{value / 2:.1g}")}
            options |= {float(f"{value:.{digits}g}") for digits in (1, 2, 3)}
            for option in sorted(options, key=abs):
                cast = np.asarray(option, dtype=flat.dtype)
                if option == value or not spec.low <= float(cast) <= spec.high or _digits(float(cast)) > _digits(value):
                    continue
                changed = flat.copy()
                changed[e] = cast
                rows.append([*(np.asarray(y) for y in inputs[:a]), changed.reshape(np.shape(x)),
                             *(np.asarray(y) for y in inputs[a + 1:])])
    return rows


def _digits(value: float) -> int:
    """Significant decimal digits needed to write ``value`` exactly (as a float64)."""
    if value == 0 or not np.isfinite(value):
        return 0
    return next((d for d in range(1, 18) if float(f"{value:.{d}g}") == value), 17)


def _shrink_order(inputs: Sequence[np.ndarray]) -> tuple[int, int, float]:
    """`simplicity` with significant digits between its two keys: fewest non-zero elements,
    then fewest digits, then smallest magnitudes."""
    nonzero, magnitude = simplicity(inputs)
    digits = sum(_digits(float(v)) for x in inputs for v in np.asarray(x, dtype=np.float64).reshape(-1))
    return nonzero, digits, magnitude


def _isolate_raising(run: _Run, evaluator: Evaluator, batch: Batch, plan: Plan, seed: int) -> None:
    """The batch raised: bisect it down to one example that raises, and record that one
    (with the stage — forward or gradient — found by probing it eagerly)."""
    suspect, raised = batch, None
    while suspect.size > 1:
        half = suspect.size // 2
        first, second = suspect.select(slice(0, half)), suspect.select(slice(half, suspect.size))
        try:
            evaluator.evaluate(first)
            suspect = second
        except TargetRaised as error:
            suspect, raised = first, error
    try:
        evaluator.evaluate(suspect)
    except TargetRaised as error:
        raised = error
    else:
        raised = TargetRaised("batched evaluation", RuntimeError(
            f"a batch of {batch.size} raised ({summarize_error(raised.error) if raised else 'unknown error'}) "
            "but no single example of it did"))
        suspect = batch.select(0)
    inputs = [x[0] for x in suspect.inputs]
    try:
        probe(run.target, run.specs, inputs)
    except TargetRaised as eager:
        raised = eager  # names the stage: forward or custom gradient
    _record_exception(run, raised, inputs, seed, cotangents=suspect.cotangents, tangents=suspect.tangents)
    run.examples += 1


def _record_exception(run: _Run, raised: TargetRaised, inputs: list[np.ndarray], seed: int,
                      cotangents: list | None = None, tangents: list | None = None) -> None:
    explanation = (
        f"The target's {raised.stage} raised {summarize_error(raised.error)[:400]}. "
        f"Inputs that make the {raised.stage} raise are recorded so the failure replays; "
        "fix the target or narrow the input range (@LO..HI) to its domain."
    )
    signature = f"exception|{type(raised.error).__name__}"
    group = run.groups.get(signature)
    if group is not None:
        group.count += 1
        return
    finding = Finding(
        target=run.target.name, kind="failure", category="exception", explanation=explanation,
        inputs=[np.asarray(x) for x in inputs],
        cotangents=[np.asarray(v[0]) for v in cotangents] if cotangents else [],
        tangents=[np.asarray(w[0]) for w in tangents] if tangents else [],
        signature=signature, seed=seed, evidence={},
    )
    finding.reference_name = raised.stage
    run.groups[signature] = _Group(finding, finding, shrunk=True)


REPEATABILITY_EXAMPLES = 256
BRANCH_CANDIDATES = ("mismatch", "approximation", "branch")


def _check_repeatability(run: _Run, evaluator: Evaluator, structure: Structure, points, seed: int,
                         modes: Sequence[str] = ()) -> None:
    """Evaluate one batch twice: a custom gradient that changes bits between calls is
    `nondeterminism` (random ops or unordered reductions in grad_fn). With ``modes``,
    also compare eager and XLA execution with the compiled batch."""
    plan = Plan(seed=seed, weights=(1, 1, 1, 1))
    inputs = expand(plan, run.specs, points, REPEATABILITY_EXAMPLES)
    cotangents, tangents = directions(np.random.default_rng([seed, 2]), inputs, structure.output_shapes,
                                      [np.dtype(_np(d)) for d in structure.output_dtypes])
    batch = Batch(inputs, cotangents, tangents)
    if len(modes) > 1:
        try:
            disagreements = mode_disagreements(evaluator, batch, modes)
        except TargetRaised:
            disagreements = {}
        for mode, (indices, other) in disagreements.items():
            i = int(indices[0])
            _record_nondeterminism(
                run, batch, i, seed, other, evaluator.evaluate(batch.select(i)).custom, "the compiled tf.function",
                int(indices.size), mode,
                f"The custom gradient depends on how TensorFlow runs it: in {mode} mode it differs from the "
                f"compiled tf.function batch by more than rounding ({indices.size} of the examples compared). "
                "Look for Python-side state, tf.py_function or numpy in grad_fn, or ops whose "
                f"{'eager' if mode == 'eager' else 'XLA'} kernels behave differently.",
            )
    differing = nondeterministic(evaluator, batch)
    if differing is None or not differing.size:
        return
    i = int(differing[0])
    first, second = evaluator.evaluate(batch.select(i)), evaluator.evaluate(batch.select(i))
    _record_nondeterminism(
        run, batch, i, seed, [g[0][None].repeat(batch.size, 0) for g in first.custom], second.custom, "a second evaluation",
        int(differing.size), None,
        f"Evaluating the same inputs twice gave different custom gradients ({differing.size} of "
        f"{batch.size} examples differ bitwise; e.g. {np.asarray(first.custom[0]).ravel()[:3].tolist()} then "
        f"{np.asarray(second.custom[0]).ravel()[:3].tolist()}). A gradient check, and training, cannot be "
        "reproduced: look for random ops, unseeded sampling or order-dependent reductions in grad_fn.",
    )


def _record_nondeterminism(run: _Run, batch: Batch, index: int, seed: int, custom: list, reference: list,
                           reference_name: str, count: int, mode: str | None, explanation: str) -> None:
    """One `nondeterminism` finding: ``custom`` holds the batch's gradients in the odd run or
    mode (row ``index`` is shown), ``reference`` the single example's gradients to compare."""
    finding = Finding(
        target=run.target.name, kind="failure", category="nondeterminism", explanation=explanation,
        inputs=[np.array(x[index]) for x in batch.inputs], cotangents=[np.array(v[index]) for v in batch.cotangents],
        tangents=[np.array(w[index]) for w in batch.tangents], custom=[np.array(g[index]) for g in custom],
        reference=[np.array(g[0]) for g in reference], reference_name=reference_name, count=count,
        signature=f"nondeterminism|{mode or 'repeat'}", seed=seed, region=f"mode={mode}" if mode else "*",
    )
    run.groups[finding.signature] = _Group(finding, finding, count=count, shrunk=True)


def _diagnose_branches(run: _Run, evaluator: Evaluator, points, branches: BranchSignature | None = None) -> None:
    """Re-label failures whose custom value is the derivative across a nearby boundary as
    `branch`, and merge the groups that thereby become one. Candidate boundaries: where the
    branch signature switches along the failing element (found by bisection), then the
    argument's points of interest."""
    for signature, group in list(run.groups.items()):
        finding = group.representative
        if (finding.kind != "failure" or finding.category not in BRANCH_CANDIDATES or finding.argument is None
                or finding.argument >= len(evaluator.specs) or evaluator.specs[finding.argument].is_complex):
            continue
        candidates = list(points[finding.argument])
        if branches is not None and branches.available:
            try:
                candidates = axis_switches(branches, finding.inputs, evaluator.specs, finding.argument,
                                           finding.element or 0) + candidates
            except Exception:
                pass
        boundary = branch_boundary(evaluator, finding.inputs, finding.cotangents, finding.tangents,
                                   finding.custom[finding.argument], finding.reference_value, finding.argument,
                                   finding.element or 0, candidates)
        if boundary is None:
            continue
        x = float(np.asarray(finding.inputs[finding.argument]).reshape(-1)[finding.element or 0])
        finding.category = "branch"
        finding.explanation = (
            f"The custom gradient uses the formula of the other side of a boundary. The forward switches at "
            f"{boundary.point:.9g}; at x = {x!r} (argument {finding.argument}) the custom gradient "
            f"{finding.custom_value:.9g} is not the derivative there ({finding.reference_name}: "
            f"{finding.reference_value:.9g}) but the one just across the boundary (at {boundary.across!r}: "
            f"{boundary.derivative_across:.9g}). grad_fn switches branches at a different point than the "
            f"forward, somewhere between {boundary.point:.9g} and {x!r}: compare their conditions."
        )
        new_signature = _signature_of("branch", finding.argument)
        del run.groups[signature]
        group.representative.signature = new_signature
        existing = run.groups.get(new_signature)
        if existing is None:
            run.groups[new_signature] = group
            continue
        existing.count += group.count
        if simplicity(finding.inputs) < simplicity(existing.representative.inputs):
            existing.representative = finding
        if group.worst.abs_error > existing.worst.abs_error:
            existing.worst = group.worst
    for group in run.groups.values():  # the worst example travels with its group's category
        if group.worst is not group.representative:
            group.worst.category = group.representative.category
            group.worst.signature = group.representative.signature


def _record_contract(run: _Run, violation, target: Target, inputs: list[np.ndarray], structure: Structure, seed: int) -> None:
    signature = f"{violation.category}|arg{'*' if violation.argument is None else violation.argument}|contract"
    finding = Finding(
        target=target.name, kind="failure", category=violation.category, explanation=violation.explanation,
        inputs=[np.asarray(x) for x in inputs], argument=violation.argument, signature=signature, seed=seed,
        reference_name="gradient contract",
    )
    run.groups[signature] = _Group(finding, finding, shrunk=True)


def _snapshot(report: CheckReport, run: _Run, started: float) -> CheckReport:
    report.examples, report.skipped, report.seconds = run.examples, run.skipped, time.monotonic() - started
    report.disagreed, report.judged = run.disagreed, run.judged
    report.first_failure_at = run.first_failure
    report.warmup_seconds = run.warmup
    report.failures = [g.representative for g in run.groups.values() if g.representative.kind == "failure"]
    report.notes = [g.representative for g in run.groups.values() if g.representative.kind == "note"]
    for group in run.groups.values():
        group.representative.count = max(1, round(group.count))
        group.representative.worst = group.worst if group.worst is not group.representative else None
    return report


def _finish(report: CheckReport, run: _Run, started: float, store: FailureStore | None, device: str | None) -> CheckReport:
    _snapshot(report, run, started)
    # Specific causes first; a `branch` finding names the boundary that often explains the mismatches too.
    order = {c: i for i, c in enumerate(("exception", "nondeterminism", "shape", "dtype", "missing-gradient", "non-finite",
                                         "branch"))}
    report.failures.sort(key=lambda f: (order.get(f.category, 99), -f.count))
    if report.failures:
        rows = []
        groups = {g.representative.signature: g for g in run.groups.values()}
        for finding in report.failures:
            group = groups.get(finding.signature)
            examples = group.examples() if group is not None else [finding]
            for example in examples:
                example.count = finding.count
                example.category, example.signature = finding.category, finding.signature
                rows.append(failure_row(example, target=run.target.name, fingerprint=run.target.fingerprint,
                                        specs=[str(s) for s in run.specs], device=device or "", run_id=run.run_id,
                                        reference_target=run.target.reference_name))
        report.records = rows
        if store is not None:
            store.append_failures(rows)
            report.stored = len(rows)
    return report
