"""Checking one target: a thin layer over Hypothesis.

Hypothesis draws batch plans (`gradfuzz.strategies.plans`) in short rounds; each plan is
expanded to a batch, screened, evaluated by the engine and judged by the oracle
(`gradfuzz.judging`). Every verdict is folded into the run's `Findings` (nothing is raised)
so one run finds every kind of failure; the first time a new kind appears, the round raises
so that Hypothesis shrinks the plan to the simplest batch that still shows it, and that
batch's simplest example becomes the representative (then `gradfuzz.shrinking` finishes the
job element by element). ``hypothesis.target`` steers generation towards larger errors.

`TargetCheck` holds one run's state, as HypoFuzz's per-target runner does; `check_target` is
the function front ends call. The check returns its findings (with store rows); writing them
is the caller's business.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import target as hypothesis_target
from hypothesis.errors import HypothesisException

from gradfuzz.batching import example_bounded_batch
from gradfuzz.boundaries import bisect, differing_pairs
from gradfuzz.categories import Category, Family
from gradfuzz.diagnosis import describe_in_derivatives
from gradfuzz.engine import probe, second_order_missing
from gradfuzz.expansion import PLAN_FIELDS, Expansion, expansion_for
from gradfuzz.findings import Findings, failure_signatures
from gradfuzz.judging import Judge
from gradfuzz.options import CheckOptions
from gradfuzz.oracle import FAILURE, Judgement, check_contract
from gradfuzz.plans import Plan, tangents
from gradfuzz.probes import (
    check_plain_second_order,
    check_repeatability,
    isolate_hang,
    isolate_raising,
    probe_candidates,
    probe_somewhere,
    record_contract,
    record_exception,
    simple_example,
    split_off_domain_errors,
)
from gradfuzz.report import CheckReport, Finding
from gradfuzz.screen import JudgingQuota, ScreenResult, Unscreened
from gradfuzz.shrinking import shrink_elements
from gradfuzz.simplicity import simplicity
from gradfuzz.spec import ArgSpec
from gradfuzz.store import FailureStore, RecordStatus
from gradfuzz.strategies import plans
from gradfuzz.target import Target
from gradfuzz.values import Batch, Evaluation, OutOfMemory, TargetRaised, summarize_error
from gradfuzz.warm import WarmCache
from gradfuzz.watchdog import Hang, Watchdog

PLANS_PER_ROUND = 25
SHRINK_SHARE = 0.25  # at most this share of the budget goes to shrinking
BISECT_SHARE = 0.1  # bisection signs at most this share of the examples the run evaluates
BISECT_PAIRS = 32  # segments bisected per round
BISECT_SAMPLE = 256  # examples whose branch signatures are compared per round
PLAN_BYTES = 8 * (len(PLAN_FIELDS) + 1)  # what a screened batch sends to the device: the plan and its size


class _Timings(dict):
    """Seconds per stage of the fuzzing loop."""

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self[stage] = self.get(stage, 0.0) + now - since
        return now


@dataclass
class _BatchOutcome:
    """One batch: how many examples it had, the judged ones with their verdicts."""

    size: int  # examples in the batch (expanded on the device when screened: only the judged come back)
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


def _store_error_in(error: BaseException):
    """The store's own error (a full disk) inside what Hypothesis raised, if any: a write that failed, then
    failed again differently ("failed earlier"), reaches us as a FlakyFailure group, not as itself."""
    from gradfuzz.store import StoreError

    if isinstance(error, StoreError):
        return error
    for inner in getattr(error, "exceptions", None) or ():
        found = _store_error_in(inner)
        if found is not None:
            return found
    return None


def _raise_new_failure(signature: str, plan: Plan, evaluation: Evaluation, judgement: Judgement) -> None:
    # One raise site: Hypothesis tells bugs apart by where they are raised.
    raise _NewFailure(signature, plan, evaluation, judgement)


EAGER_FIRST_BATCH = 16  # examples in a first eager batch: a Python call each
HANG_ISOLATION_BUDGET = 15.0  # seconds past a hang that looking for the culprit example may take
PROBE_HANG_SECONDS = 60.0  # the first eager call may take this long (or the budget) before it is a hang
# A verdict whatever the budget: a check (not a campaign slice) whose warm-up (probing, tracing, compiling) ate its
# budget still judges this many examples (or its max_examples), for at most MINIMUM_GRACE seconds past the budget
# or past the end of the warm-up, whichever is later (a series that traces for 100 s of a 15 s budget is judged too).
MINIMUM_EXAMPLES = 256
# Below this many examples (max_examples) no screen is traced: a unit-test-sized check judges every example in
# less time than tracing and compiling the screen takes (about 2 s of a first check's 5).
SCREEN_MIN_EXAMPLES = 4096
MINIMUM_GRACE = 30.0


class TargetCheck:
    """One run of one target at one set of specs: its budget, counters and findings.

    ``run()`` probes and compiles the target (through ``warm``), then fuzzes in Hypothesis
    rounds until the budget, the example count or ``should_stop`` ends it, and returns a
    `CheckReport` whose ``records`` hold the store rows. Arguments as `check_target`'s.
    """

    def __init__(self, target: Target, specs: Sequence[ArgSpec], options: CheckOptions = CheckOptions(), *,
                 warm: WarmCache | None = None, on_progress: Callable[[CheckReport], None] | None = None,
                 plan_strategy: Callable[[int], object] | None = None, should_stop: Callable[[], bool] | None = None,
                 run_id: str | None = None):
        self.options = options
        self.slice_of_many = options.slice_of_many  # a campaign or sweep slice: see `CheckOptions`
        self.target, self.specs = target, tuple(specs)
        self.budget, self.max_examples = options.budget, options.max_examples
        self.seed = int(options.seed) if options.seed is not None else int(np.random.default_rng().integers(2**31))
        self.shrink, self.jit, self.order, self.modes = options.shrink, options.jit, options.order, options.modes
        batch_size = options.batch_size
        if batch_size is None and options.max_examples is not None:
            batch_size = example_bounded_batch(self.specs, options.max_examples)
        self.batch_size = batch_size
        self.on_progress, self.plan_strategy = on_progress, plan_strategy
        self.stop_at_first_failure, self.should_stop = options.stop_at_first_failure, should_stop
        self.warm = warm if warm is not None else WarmCache()
        self.run_id = run_id or uuid.uuid4().hex
        self.findings = Findings(target.name, self.specs, custom_gradient=target.has_custom_gradient)
        self.report = CheckReport(target=target.name, specs=self.specs)
        self.timings = _Timings()
        # Counters
        self.examples = 0
        self.skipped = 0
        self.disagreed = 0  # examples the screen found disagreeing with autodiff (or not finite)
        self.judged = 0  # examples the oracle judged in full
        self.signed = 0  # examples whose branch signature bisection computed
        self.moved_bytes = 0  # host↔device traffic of the batches: plans and results, judged examples
        self.warmup = 0.0  # seconds spent probing and compiling before the first batch
        self.recent: Plan | None = None  # the last batch's plan (bisection signs the start of its batch)
        # Shrinking: the signature being shrunk, the best plan so far, its batch size, and until when
        self._shrinking: tuple[str, Plan, int] | None = None
        self._shrink_until = 0.0
        self._pace = (0.0, 0)  # the last batch: when it started, its size (the sizer's clock)
        self.store: FailureStore | None = None  # given: each failure is appended as soon as it is found
        self._written: set[tuple] = set()  # (id(), category, explanation, count) of what the store holds
        self._ids_written: set[str] = set()  # every record id appended by this run
        self._groups_seen = 0

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> CheckReport:
        self.watchdog = Watchdog()
        try:
            return self._run()
        finally:
            self.watchdog.close()

    def _run(self) -> CheckReport:
        self.started = time.monotonic()
        self.deadline = self.started + self.budget
        self.sizer = self.warm.sizer(self.target, self.specs, self.batch_size)
        try:  # the first eager call runs outside any batch: a target stuck there must not take the run
            structure, first = self.watchdog.run(lambda: probe_somewhere(self.target, self.specs, self.findings, self.seed),
                                                 max(PROBE_HANG_SECONDS, self.budget))
        except Hang as hang:
            first = [x[0] for x in probe_candidates(self.specs, self.seed)]
            record_exception(self.findings, TargetRaised("forward (first eager call)", hang), first, self.seed)
            return self._finish(None)
        if structure is None:
            return self._finish(None)
        violations = check_contract(self.specs, structure)
        shown = simple_example(self.target, self.specs, first) if violations else first
        for violation in violations:
            record_contract(self.findings, violation, shown, self.seed)
        self._persist()
        try:
            self.evaluator = self.warm.evaluator(self.target, self.specs, structure, self.jit, self.order)
            if self.evaluator.stats.strategy.startswith("eager"):
                self.sizer.start_small(EAGER_FIRST_BATCH)
            self.second_missing = second_order_missing(self.target, first) if self.evaluator.order == 2 else []
            self.findings.gradient_specs = self.evaluator.gradient_specs
        except Exception as error:  # tracing the batched functions failed
            record_exception(self.findings, TargetRaised("tracing", error), first, self.seed)
            return self._finish(None)
        self.judge = self.warm.judge(self.target, self.specs, structure, jit=self.jit, order=self.order)
        self.points = self.findings.points = self.judge.points
        self.branches = self.warm.branches(self.target, self.specs, structure)
        self.pool = self.warm.pool(self.target, self.specs)
        try:
            self.watchdog.run(lambda: check_repeatability(self.findings, self.evaluator, structure, self.seed, self.modes))
            if self.order == 2 and self.evaluator.order == 1 and self.target.forward is None:
                # No reference forward to differentiate twice: what the first-order gradient's differences show.
                self.watchdog.run(lambda: check_plain_second_order(self.findings, self.target, self.specs, first, self.seed))
        except Hang:
            pass  # the batches will meet the stuck input again, and the watchdog records it then
        if self.max_examples is not None and self.max_examples < SCREEN_MIN_EXAMPLES:
            self.screen = Unscreened(f"a check of {self.max_examples:,} examples judges every one (tracing the screen "
                                     "would cost more than it saves)")
        else:
            self.screen = self.warm.screen(self.evaluator, self.points)
        self.quota = JudgingQuota()
        self.warmup = time.monotonic() - self.started
        if self.slice_of_many and self.deadline - time.monotonic() < self.budget / 2:
            # A campaign slice whose first contact with the target (tracing, compiling) ate its budget
            # still fuzzes for half of it: else a target that is slow to get ready never gets going.
            self.deadline = time.monotonic() + self.budget / 2
        self._fuzz_in_rounds()
        if not self.slice_of_many and 0 < self.examples <= self.skipped and self.findings.first_failure is None:
            # Every input outside the forward's domain: no gradient was checked, so this is no pass.
            self.report.error = (f"every one of the {self.examples:,} examples was outside the forward's domain (it returned "
                                 "NaN or ±inf, or raised), so no gradient was checked. Give each argument a range where "
                                 "the forward is defined, e.g. -i 'float64[]@0.1..100' (a spec's @LO..HI) for a logarithm.")
        if not self.slice_of_many and self.examples == 0 and self.findings.first_failure is None:
            # Passing on no evidence would be a false "pass": say why nothing ran.
            self.report.error = (f"no example was evaluated: getting ready (probing, choosing how to batch the target, "
                                 f"tracing) took {self.warmup:.1f} s of the {self.budget:.0f} s budget, and no batch "
                                 f"finished within {MINIMUM_GRACE:.0f} s after that. Give it a larger budget "
                                 f"(--budget {max(60, 4 * round(self.warmup + self.budget)):.0f}s, or budget= in Python), "
                                 "or smaller inputs.")
        self.judge.relabel_branches(self.findings)
        confirm_as_replayed(self.findings, self.judge, self.watchdog)
        describe_in_derivatives(self.findings, self.evaluator)
        self.report.engine = self._engine_facts()
        return self._finish(self.evaluator.device)

    def exhausted(self) -> bool:
        if self.stop_at_first_failure and self.findings.first_failure is not None:
            return True
        if self.should_stop is not None and self.should_stop():
            return True
        if self.max_examples is not None and self.examples >= self.max_examples:
            return True
        now = time.monotonic()
        if now >= self.deadline and not self.slice_of_many and self.examples < MINIMUM_EXAMPLES \
                and now < max(self.deadline, self.started + self.warmup) + MINIMUM_GRACE and self.findings.first_failure is None \
                and not any(g.representative.kind == "failure" for g in self.findings.groups.values()):
            return False  # the budget went on getting ready: judge a minimum before giving a verdict
        return now >= self.deadline

    def _fuzz_in_rounds(self) -> None:
        n_points = max(len(p) for p in self.points)
        fuzz = settings(
            max_examples=PLANS_PER_ROUND, deadline=None, database=None, derandomize=False,
            suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet, report_multiple_bugs=False,
            phases=[Phase.generate, Phase.target, Phase.shrink] if self.shrink else [Phase.generate, Phase.target],
        )(given((self.plan_strategy or plans)(n_points))(self._test_plan))
        round_number = 0
        while not self.exhausted():
            round_seed = self.seed * 1_000_003 + round_number
            # Bisection's share is counted in examples signed, not seconds: a time share would bisect
            # less on a slower machine, fill the pool differently and draw other inputs.
            if self.branches.available and BISECT_SHARE > 0 and (round_number == 0 or self.signed <= BISECT_SHARE * self.examples):
                tick = time.perf_counter()
                self._bisect_round(round_seed)
                self.timings.add("bisect", tick)
            self._shrinking = None
            try:
                hypothesis_seed(round_seed)(fuzz)()
            except _NewFailure as found:
                self.findings.adopt_shrunk(found.signature, found.plan, found.evaluation, found.judgement, self.seed)
                tick = time.perf_counter()
                shrink_elements(self.findings, self.judge, found.signature, found.plan, self.seed,
                                self.exhausted)
                self.timings.add("shrink", tick)
            except HypothesisException as error:
                # Shrinking could not replay a new failure (e.g. a target that is itself
                # nondeterministic): keep the unshrunk representative already collected.
                # Anything else is a bug in gradfuzz and must not pass silently.
                stored = _store_error_in(error)
                if stored is not None:
                    raise stored from None  # the store failed: the run ends with the store's message
                if not _only_new_failures(error):
                    raise
            round_number += 1

    def _test_plan(self, plan: Plan) -> None:
        """Hypothesis' test function: one plan, one batch."""
        if self._shrinking is not None:  # shrinking: raise iff the plan still shows the failure
            self._replay_while_shrinking(plan)
            return
        if self.exhausted():
            return
        count = self.sizer.size if self.max_examples is None else max(0, min(self.sizer.size, self.max_examples - self.examples))
        # The sizer is fed whole intervals between batch starts: per-plan costs outside the batch
        # (Hypothesis drawing the plan, progress) are what larger batches amortise.
        batch_started = time.perf_counter()
        previous_start, previous_count = self._pace
        if previous_count:
            self.sizer.record(previous_count, batch_started - previous_start)
        self._pace = (batch_started, count)
        outcome = self._evaluate_plan(plan, count, self.timings)
        if outcome is None:
            return
        self.recent = plan
        self.examples += outcome.size
        self.skipped += outcome.skipped
        self.disagreed += outcome.disagreed
        self.judged += outcome.rows.size
        tick = time.perf_counter()
        new = []
        for evaluation, judgement in outcome.judged:
            failing = judgement.outcome == FAILURE
            if self.findings.first_failure is None and failing.any():
                row = int(outcome.rows[int(np.argmax(failing))])
                self.findings.first_failure = self.examples - outcome.size + row + 1
            signatures = self.findings.collect(evaluation, judgement, plan, self.seed, outcome.weights)
            new.extend((signature, evaluation, judgement) for signature in signatures)
        tick = self.timings.add("collect", tick)
        if new or len(self.findings.groups) != self._groups_seen:
            self._persist()
            self.timings.add("store", tick)
        hypothesis_target(float(np.log10(1.0 + min(outcome.score, 1e300))), label="log10 error")
        if self.on_progress is not None:
            self.on_progress(self._snapshot())
        if new and self.shrink:
            signature, evaluation, judgement = new[0]
            self._shrinking = (signature, plan, outcome.size)
            self._shrink_until = min(self.deadline, time.monotonic() + SHRINK_SHARE * self.budget)
            _raise_new_failure(signature, plan, evaluation, judgement)

    def _replay_while_shrinking(self, plan: Plan) -> None:
        signature, best, count = self._shrinking
        if time.monotonic() > self._shrink_until and plan != best:
            return
        tick = time.perf_counter()
        # Shrinking does not spend the example budget; its time counts as "shrink" only.
        outcome = self._evaluate_plan(plan, count, _Timings(), complete=True)
        self.timings.add("shrink", tick)
        for evaluation, judgement in outcome.judged if outcome is not None else []:
            if signature in failure_signatures(judgement):
                self._shrinking = (signature, plan, count)
                _raise_new_failure(signature, plan, evaluation, judgement)

    def _watchdog_limit(self) -> float:
        """The watchdog's limit, but never far past the budget: a batch still running 10 s after the
        deadline is stopped waiting for (it would break the budget's promise either way)."""
        return min(self.watchdog.limit, max(self.watchdog.min_seconds, self.deadline - time.monotonic() + 10.0))

    def _generate(self, plan: Plan, count: int) -> Batch:
        """A plan's batch on the host: inputs and cotangents, the bits the screen expands on the device
        (tangents come later, for judged examples only)."""
        inputs, cotangents = self._expansion().expand(plan, count, self.pool.examples)
        return Batch(inputs, cotangents, [])

    def _expansion(self) -> Expansion:
        structure = self.evaluator.structure
        return expansion_for(self.specs, self.points, list(zip(structure.output_shapes, structure.output_dtypes)))

    def _evaluate_plan(self, plan: Plan, count: int, timings: _Timings, complete: bool = False) -> _BatchOutcome | None:
        """Expand, screen and judge one batch. With the screen, the plan is expanded and screened on
        the device in one call, and the oracle judges only the examples `JudgingQuota` picks from
        those the screen flagged (``complete``: while shrinking, the first and worst of every kind);
        without it, the batch is expanded on the host and every example is judged."""
        if count == 0:
            return None
        tick = time.perf_counter()
        screened, batch = None, None
        screen = self.screen
        try:
            if screen.available:
                try:
                    uploaded = screen.expansion.uploaded_bytes
                    screened = self.watchdog.run(lambda: screen.planned(plan, count, self.pool.examples),
                                                 self._watchdog_limit())
                    self.moved_bytes += screen.expansion.uploaded_bytes - uploaded  # a new boundary pool
                except (OutOfMemory, Hang):
                    raise
                except Exception as error:  # e.g. XLA cannot compile the comparison on this device
                    if screen.runs == 0:
                        screen.reason = f"screen failed: {summarize_error(error)[:200]}"
                    # Else a run-time error of this batch's inputs (a singular matrix): judge it in full.
                tick = timings.add("screen", tick)
            if screened is None:
                batch = self._generate(plan, count)
                rows, weights, subset = np.arange(count), None, batch
                self.moved_bytes += _nbytes(batch.inputs, batch.cotangents)
            else:
                self.moved_bytes += PLAN_BYTES + screened.bytes_returned
                rows, weights = self.quota.choose(screened, complete)
                if rows.size == 0:
                    return _BatchOutcome(count, [], rows, weights, screened)
                subset = screened.judged(rows)
            subset.tangents = tangents(np.random.default_rng([plan.seed, 2]), subset.inputs)
            tick = timings.add("generate", tick)
            evaluation = self.watchdog.run(lambda: self.evaluator.evaluate(subset), self._watchdog_limit())
            self.moved_bytes += _nbytes(subset.inputs, subset.cotangents, subset.tangents, evaluation.outputs,
                                        evaluation.custom, evaluation.reference or [], [evaluation.phi])
        except Hang as hang:
            # Looking for the example that hangs may overrun the budget a little, not unboundedly.
            isolation_deadline = max(self.deadline, time.monotonic() + HANG_ISOLATION_BUDGET)
            whole = batch if batch is not None else self._generate(plan, count)
            isolate_hang(self.findings, self.evaluator, self.watchdog, whole, hang, self.seed, isolation_deadline)
            self.examples += 1
            return None
        except OutOfMemory:
            self.sizer.out_of_memory()
            return None
        except TargetRaised:
            runs = split_off_domain_errors(self.findings, self.evaluator, self.target, subset, self.seed)
            if runs is None:  # an `exception` finding, recorded
                self.examples += 1
                return None
            if runs.size == 0:  # every example outside the forward's domain: counted, skipped
                self.examples += count
                self.skipped += subset.size
                return None
            self.skipped += subset.size - runs.size  # outside the forward's domain, like a NaN forward
            subset, rows = subset.select(runs), rows[runs]
            weights = None if weights is None else weights[runs]
            try:
                evaluation = self.evaluator.evaluate(subset)
            except TargetRaised:  # raising on inputs that ran a moment ago: not a domain
                isolate_raising(self.findings, self.evaluator, self.target, subset, self.seed)
                return None
        tick = timings.add("evaluate", tick)
        scale = screened.scale if screened is not None else None
        judged = [(evaluation, self.judge.batch(evaluation, scale))]
        if self.evaluator.order == 2:
            judged.append(self.judge.second_order(evaluation, self.second_missing))
        timings.add("judge", tick)
        return _BatchOutcome(count, judged, rows, weights, screened)

    def _bisect_round(self, seed: int) -> None:
        """Compare the branch signatures of a sample of examples (the last batch's, or a fresh
        mixed batch before the first) and bisect pairs that differ down to the switch."""
        rng = np.random.default_rng(seed)
        # The start of the last batch, expanded again on the host (the same bits), or a fresh mixed batch.
        plan = self.recent or Plan(seed=seed, weights=(1, 1, 1, 1))
        sample = self._expansion().expand(plan, BISECT_SAMPLE, self.pool.examples)[0]

        def signed(inputs: Sequence[np.ndarray]) -> np.ndarray:
            self.signed += len(inputs[0])
            return self.branches(inputs)

        try:
            pairs = differing_pairs(signed(sample), rng, BISECT_PAIRS)
            if len(pairs):
                self.pool.add(bisect([x[pairs[:, 0]] for x in sample], [x[pairs[:, 1]] for x in sample], self.specs, signed))
        except Exception:  # a signature that cannot be evaluated on some inputs leaves the pool as it is
            return

    # -- the report ---------------------------------------------------------------------------

    def _engine_facts(self) -> dict:
        evaluator = self.evaluator
        return {
            **self.sizer.describe(),
            "order": evaluator.order,
            "jit": evaluator.jit,
            "time_split": {stage: round(seconds, 4) for stage, seconds in self.timings.items()},
            "bytes_per_example": round(self.moved_bytes / max(self.examples, 1), 3),
            "traces": evaluator.stats.traces,
            "fallbacks": evaluator.stats.fallbacks,
            "strategy": evaluator.stats.strategy,
            "strategy_seconds": round(evaluator.stats.choose_seconds, 3),
            "differences_dtype": evaluator.fd_dtype,
            "device": evaluator.device,
            "points_of_interest": [[float(p) for p in ps] for ps in self.points],
            "outputs": [[list(shape), dtype] for shape, dtype in zip(evaluator.structure.output_shapes,
                                                                    evaluator.structure.output_dtypes)],
            "branch_switches_found": self.pool.switches if self.branches.available else None,
            "screen": {"used": self.screen.available, "why_not": self.screen.reason, "traces": self.screen.traces},
            "seed": self.seed,
        }

    def _snapshot(self) -> CheckReport:
        report = self.report
        report.examples, report.skipped, report.seconds = self.examples, self.skipped, time.monotonic() - self.started
        report.disagreed, report.judged = self.disagreed, self.judged
        report.warmup_seconds = self.warmup
        return self.findings.fill(report)

    def _persist(self) -> None:
        """Append the failures found so far that the store lacks: a check killed by Ctrl-C, SIGKILL or
        the OOM killer keeps what it found (their final form is appended when the run ends)."""
        self._groups_seen = len(self.findings.groups)
        if self.store is None:
            return
        found = [g.representative for g in self.findings.groups.values()
                 if g.representative.kind == "failure"
                 and (id(g.representative), g.representative.category, g.representative.explanation,
                      max(1, round(g.count))) not in self._written]
        for finding in found:
            finding.count = max(1, round(self.findings.groups[finding.signature].count))
        rows = self._records(found, self.evaluator.device if hasattr(self, "evaluator") else "")
        self.store.append_failures(rows)
        self._ids_written.update(row["id"] for row in rows)

    def _records(self, failures: Sequence[Finding], device: str) -> list[dict]:
        return self.findings.records(failures, fingerprint=self.target.fingerprint, device=device or "", run_id=self.run_id,
                                     reference_target=self.target.reference_target,
                                     variables=[(v.name, v.numpy()) for v in self.target.variables],
                                     written=self._written if self.store is not None else None)

    def _finish(self, device: str | None) -> CheckReport:
        report = self._snapshot()
        report.records = self._records(report.failures, device)
        if self.store is not None:
            if report.records:
                self.store.append_failures(report.records)
            self._ids_written.update(row["id"] for row in report.records)
            # A record written while the run went on whose group then folded into another (one cause, one
            # finding) is no finding of this run: superseded, so every reader sees what the run reported.
            final = self.findings.record_ids()
            for record_id in sorted(self._ids_written - final):
                self.store.mark(record_id, RecordStatus.SUPERSEDED)
            report.stored = len(final)  # records written = records read
        return report


def confirm_as_replayed(findings: Findings, judge: Judge, watchdog: Watchdog | None = None) -> None:
    """Keep as a value failure's examples only those that fail the same way judged as replay judges
    them (a batch of one, `Judge.example`): a batched kernel may round a cancelling grad_fn's last bits
    otherwise, and a stored example must reproduce. The group keeps its count; when no example
    confirms, it keeps its representative (the run's evidence stands, and says so in the count)."""
    for group in findings.groups.values():
        category = group.representative.category
        if not category.is_failure or category.family is not Family.VALUE:
            continue
        confirmed = []
        for example in group.examples():
            if not example.cotangents:
                continue

            def replayed(e: Finding = example, c: Category = category) -> tuple:
                return judge.example(e.inputs, e.cotangents, e.tangents, c)

            try:
                _, failing = watchdog.run(replayed) if watchdog is not None else replayed()
            except Exception:  # raising or hanging here is recorded where those inputs are drawn themselves
                continue
            if any(category.absorbs(v.category) for v in failing):
                confirmed.append(example)
        if not confirmed:
            continue
        kept = {id(f) for f in confirmed}  # (identity: findings hold arrays)
        if id(group.representative) not in kept:
            group.representative = min(confirmed, key=lambda f: simplicity(f.inputs))
            group.representative.category = category
        if id(group.worst) not in kept:
            group.worst = max(confirmed, key=lambda f: np.nan_to_num(f.abs_error, nan=-1.0))
        group.regions = {label: f for label, f in group.regions.items() if id(f) in kept}


def _nbytes(*groups: Sequence[np.ndarray]) -> int:
    return sum(np.asarray(a).nbytes for group in groups for a in group)


def check_example(target: Target, specs: Sequence[ArgSpec], inputs: Sequence[np.ndarray], *, seed: int = 0,
                  order: int = 1, warm: WarmCache | None = None, probed: bool = True) -> CheckReport:
    """Check one given example (``gradfuzz.assert_gradient``): the contract, then the same engine,
    oracle and diagnosis as a fuzzing run, on exactly these inputs with a cotangent and tangent drawn
    from ``seed``. A report of one example, with the same findings and explanations a run gives.
    ``warm`` (a cache the caller keeps) holds the compiled `Judge` across calls, and the structure the
    first call probed (``probed=False`` probes again)."""
    warm = warm if warm is not None else WarmCache()
    findings = Findings(target.name, tuple(specs), custom_gradient=target.has_custom_gradient)
    report = CheckReport(target=target.name, specs=tuple(specs))
    inputs = [np.asarray(x, dtype=spec.numpy_dtype) for x, spec in zip(inputs, specs)]
    # Warm: the structure an earlier call's eager probe learnt (outputs, None gradients, the contract) stands
    # for this one, so the example goes straight to the compiled evaluator; anything it raises is asked of the
    # probe again below, so an exception is named as a first call names it. Eager targets are always probed.
    known = warm.fact(WarmCache.key(target, specs, "structure", order)) if probed else None
    try:
        structure = known if known is not None else probe(target, specs, inputs)
    except TargetRaised as raised:
        record_exception(findings, raised, inputs, seed)
        report.examples = 1
        return findings.fill(report)
    for violation in check_contract(specs, structure):
        record_contract(findings, violation, inputs, seed)
    judge = warm.judge(target, specs, structure, order=order)  # compiled once per target and shape
    evaluator = judge.evaluator
    if known is None and not evaluator.stats.strategy.startswith("eager"):
        warm.fact(WarmCache.key(target, specs, "structure", order), lambda: structure)
    findings.gradient_specs = evaluator.gradient_specs
    findings.points = judge.points
    outputs = list(zip(structure.output_shapes, structure.output_dtypes))
    # The first row's cotangents depend on the seed and the outputs only: expanded once per seed.
    cotangents = warm.fact(WarmCache.key(target, specs, "cotangents", structure, seed), lambda: expansion_for(
        specs, findings.points, outputs).expand(Plan(seed=seed), 1)[1])
    batch = Batch([x[None] for x in inputs], [v.copy() for v in cotangents],
                  tangents(np.random.default_rng([seed, 2]), [x[None] for x in inputs]))
    try:
        evaluation = evaluator.evaluate(batch)
    except TargetRaised as raised:
        if known is not None:  # the probe was skipped: judge this example as a first call would
            return check_example(target, specs, inputs, seed=seed, order=order, warm=warm, probed=False)
        record_exception(findings, raised, inputs, seed, cotangents=batch.cotangents, tangents=batch.tangents)
        report.examples = 1
        return findings.fill(report)
    judged = [(evaluation, judge.batch(evaluation))]
    if order == 2:
        judged.append(judge.second_order(evaluation, second_order_missing(target, inputs)))
    for evaluated, judgement in judged:
        for signature in findings.collect(evaluated, judgement, Plan(seed=seed), seed):
            # As a run does: show it at the simplest input that fails the same way (0, ±1, short decimals).
            shrink_elements(findings, judge, signature, Plan(seed=seed), seed, lambda: False)
    judge.relabel_branches(findings)
    describe_in_derivatives(findings, evaluator)
    report.examples, report.judged = 1, 1
    report.skipped = int(judged[0][1].skipped)
    return findings.fill(report)


def check_target(target: Target, specs: Sequence[ArgSpec], options: CheckOptions | None = None, *,
                 store: FailureStore | None = None, warm: WarmCache | None = None,
                 on_progress: Callable[[CheckReport], None] | None = None, plan_strategy: Callable[[int], object] | None = None,
                 should_stop: Callable[[], bool] | None = None, run_id: str | None = None) -> CheckReport:
    """Fuzz one target for ``options.budget`` seconds (or ``options.max_examples`` examples); see
    `TargetCheck` and `CheckOptions` (what to do, built once by the caller).

    The rest is the caller's context: ``store`` (each failure appended as soon as it is found; the
    final form at the end), ``warm`` (compiled work reused across checks), ``on_progress`` (a report
    snapshot after every batch), ``plan_strategy(n_points)`` (replaces `gradfuzz.strategies.plans`;
    benchmarks compare against plain uniform sampling), ``should_stop`` (asked between batches; the
    check then ends normally, keeping what it found) and ``run_id`` (the store rows' run id).

    ``report.records`` holds the store rows; with ``store`` they are also appended there.
    """
    check = TargetCheck(target, specs, options or CheckOptions(), warm=warm, on_progress=on_progress,
                        plan_strategy=plan_strategy, should_stop=should_stop, run_id=run_id)
    check.store = store
    return check.run()
