"""The screen: a compiled first pass, so the oracle only judges what needs judging.

The numpy oracle costs about a microsecond per example and a full evaluation
(five references, finite differences) several times the ceiling's work. Most
examples need neither: they agree with autodiff to the last few ULPs. The
screen computes, in one ``tf.function`` call per batch, the custom VJP and
the autodiff reference VJP (float64, and at the argument's dtype for the
calibration) and applies the oracle's first test in the graph: does the custom
gradient agree with autodiff within the self-calibrated tolerance? Its
tolerance is never looser than the oracle's (`SCREEN_SLACK`), so an example it
passes the oracle would pass too; the test ``tests/test_screen.py`` holds it to that.

Examples it flags are summarised per *key* — which argument holds the worst
element, whether custom or reference is non-finite there, the decade of
error/tolerance, and the input region of that element among the points of
interest — with a count, the first and the worst example. `JudgingQuota` then
picks which of them the oracle judges in full (with differences, forward mode
and neighbours): the first and worst of every key until the key has been
judged `JUDGED_PER_KEY` times, afterwards only a key's new worst (twice as far
out), and every key again every `REVISIT_EVERY` batches. A target that fails
everywhere is judged on a few hundred examples per kind, not on millions, and a
rare kind (a thin region, another argument, a NaN) is a new key and is judged
the first time it shows.

Only custom-gradient targets with real arguments are screened at first order;
plain TF functions (no autodiff reference to screen against), complex
arguments and second-order checks take the full path for every example.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gradfuzz._tf import tf, trial_trace
from gradfuzz.dtypes import info_for
from gradfuzz.engine import Evaluator
from gradfuzz.expansion import PLAN_FIELDS, POOL_CAPACITY, Expansion, expansion_for, plan_vector
from gradfuzz.oracle import TOLERANCES, GradientScale
from gradfuzz.plans import Plan
from gradfuzz.values import Batch, OutOfMemory, summarize_error
from gradfuzz.watchdog import beacon

# The screen computes the oracle's tolerance; halving it keeps the screen strictly inside the
# oracle's, whatever last bits the oracle's own evaluation of the example rounds differently.
SCREEN_SLACK = 0.5
# 0 disagrees, 1 custom not finite, 2 reference not finite, 3 agrees but sits on a point of
# interest (the oracle's differences may see a kink there: worth a `kink` note).
KINDS = 4
DECADES = 16  # error/tolerance in [10^d, 10^(d+1)), d = 0..15 (15: beyond, or infinite)
ROW_LIMIT = 2**31 - 1  # rows are int32
CHUNK_ELEMENTS = 1 << 18  # gradient elements per compiled comparison (the batch is padded to whole chunks)
TYPICAL_SAMPLE = 256  # rows whose |reference| give the batch's typical gradient size
TYPICAL_ELEMENTS = 4096  # at most this many of their elements

JUDGED_PER_KEY = 4  # batches in which each key's first and worst example are judged in full
WORSE_FACTOR = 2.0  # afterwards, a key's worst is judged again when this much further out
REVISIT_EVERY = 16  # and every this many batches, every key is judged again


@dataclass
class ScreenResult:
    """One batch through the screen. Per-key arrays hold only the keys present."""

    size: int
    flags: np.ndarray | None  # bool per example, within the domain: disagrees with autodiff, is not finite, or
    # agrees but sits on a point of interest (None when the batch was expanded in the graph: it stays there)
    disagreed: int  # flagged examples that disagree with autodiff or are not finite (not merely on a point)
    skipped: int  # examples outside the domain (forward not finite)
    score: float  # largest finite error/tolerance (what Hypothesis' target() steers by)
    scale: GradientScale  # per argument: median |reference| of a sample of the batch, largest |reference|
    keys: np.ndarray
    counts: np.ndarray  # flagged examples per key
    first: np.ndarray  # batch row of each key's first example
    worst: np.ndarray  # batch row of each key's largest error/tolerance
    worst_ratio: np.ndarray
    # With a plan expanded in the graph: the rows that can be judged (every key's first and worst),
    # ascending, and their inputs and cotangents — all of the batch that leaves the device.
    candidate_rows: np.ndarray | None = None
    candidates: Batch | None = None

    def judged(self, rows: np.ndarray) -> Batch:
        """The examples at these batch rows (all among `candidate_rows`), without tangents."""
        at = np.searchsorted(self.candidate_rows, rows)
        return self.candidates.select(at)

    @property
    def bytes_returned(self) -> int:
        """Bytes this result brought back from the device."""
        arrays = [self.keys, self.counts, self.first, self.worst, self.worst_ratio]
        arrays += [] if self.flags is None else [self.flags]
        if self.candidates is not None:
            arrays += [self.candidate_rows, *self.candidates.inputs, *self.candidates.cotangents]
        return sum(np.asarray(a).nbytes for a in arrays)


def screen_unavailable(evaluator: Evaluator) -> str | None:
    """Why this evaluator's targets cannot be screened (None: they can)."""
    if evaluator.target.forward is None:
        return "no autodiff reference (plain TF function): every example is judged against differences"
    if evaluator.order != 1:
        return "second-order checks judge every example"
    structure = evaluator.structure
    for a, spec in enumerate(evaluator.gradient_specs):
        if spec.is_complex:
            return "complex arguments are judged in full"
        shape = structure.gradient_shapes[a] if a < len(structure.gradient_shapes) else None
        if spec.differentiable and shape is not None and tuple(shape) != spec.shape:
            return "a gradient's shape differs from its argument's"
    return None


@dataclass
class Unscreened:
    """Where no screen is built (a check of few examples): every example is judged in full."""

    reason: str
    traces: int = 0
    runs: int = 0
    available: bool = False


class Screen:
    """The compiled first pass for one evaluator; ``points`` are its arguments' points of
    interest (the input regions of the keys)."""

    def __init__(self, evaluator: Evaluator, points: Sequence[Sequence[float]]):
        self.evaluator = evaluator
        self.reason = screen_unavailable(evaluator)  # None while the screen is in use
        self.traces = 0
        self.runs = 0  # batches screened
        self._drawn_points = [[float(v) for v in p] for p in points]  # as the expansion aims at them
        self._points = [np.unique(np.asarray(p, dtype=np.float64)) for p in points]
        self._regions = 2 * max((len(p) for p in self._points), default=0) + 1
        self._segments = len(evaluator.gradient_specs) * KINDS * DECADES * self._regions
        elements = max(1, sum(s.size for s in evaluator.gradient_specs))
        self._chunk = max(16, CHUNK_ELEMENTS // elements)
        self._body = None
        self._function = None  # on host batches (traced when first called)
        self._planned = None  # on plans expanded in the graph
        if self.available:
            try:
                with trial_trace():
                    self._body = self._build()
                    self._planned = self._trace_planned()
            except Exception as error:  # the full path still checks every example
                self.reason = f"screen could not be traced: {summarize_error(error)[:200]}"

    @property
    def available(self) -> bool:
        return self.reason is None

    def __call__(self, batch: Batch) -> ScreenResult:
        """Screen a batch that is on the host (tests, and batches given as arrays): flags per example."""
        if self._function is None:
            self._function = self._trace_on_batches()
        with tf.device(self.evaluator.device):
            return self._run(batch.size, lambda: self._function([tf.constant(a) for a in batch.inputs],
                                                                [tf.constant(v) for v in batch.cotangents]))

    def planned(self, plan: Plan, size: int, pool: Sequence[np.ndarray] | None = None) -> ScreenResult:
        """Expand ``plan`` into ``size`` examples on the evaluator's device and screen them in the same
        call: only the plan goes in, and only the summary and the candidate examples come back."""
        expansion = self.expansion
        # Expanded on the device: a supervisor gets the plan, and its first row from the host (only when supervised).
        beacon("screened batch", size=size, plan=plan, example=lambda: expansion.expand(plan, 1, pool))
        with tf.device(self.evaluator.device):
            pool_tensors, count = expansion.pool_tensors(pool)
            return self._run(size, lambda: self._planned(tf.constant(plan_vector(plan)), tf.constant(size, tf.int64),
                                                         pool_tensors, count))

    def _run(self, size: int, call) -> ScreenResult:
        try:
            raw = call()
        except tf.errors.ResourceExhaustedError as error:
            raise OutOfMemory(size) from error
        raw = {name: tf.nest.map_structure(lambda t: t.numpy(), value) for name, value in raw.items()}
        self.runs += 1
        candidates = None
        if "candidate_rows" in raw:
            candidates = Batch(list(raw["candidate_inputs"]), list(raw["candidate_cotangents"]), [])
        return ScreenResult(
            size=size, flags=raw.get("flags"), disagreed=int(raw["disagreed"]), skipped=int(raw["skipped"]),
            score=float(raw["score"]),
            scale=GradientScale(tuple(float(t) for t in raw["typical"]), tuple(float(t) for t in raw["largest"])),
            keys=raw["keys"], counts=raw["counts"], first=raw["first"], worst=raw["worst_row"], worst_ratio=raw["worst_ratio"],
            candidate_rows=raw.get("candidate_rows"), candidates=candidates,
        )

    @property
    def expansion(self) -> Expansion:
        structure = self.evaluator.structure
        return expansion_for(self.evaluator.specs, self._drawn_points,
                             list(zip(structure.output_shapes, structure.output_dtypes)))

    def _trace_on_batches(self):
        evaluator, structure = self.evaluator, self.evaluator.structure
        signature = [
            [tf.TensorSpec([None, *s.shape], s.numpy_dtype) for s in evaluator.specs],
            [tf.TensorSpec([None, *shape], dtype) for dtype, shape in zip(structure.output_dtypes, structure.output_shapes)],
        ]
        body = self._body

        def screen(xs, vs):
            self.traces += 1  # Python side effect: runs once per trace, never per call
            return body(xs, vs, flags=True)

        # Calling the concrete function skips tf.function's argument binding, a measurable share of a call.
        return tf.function(screen, input_signature=signature).get_concrete_function()

    def _trace_planned(self):
        expansion, body = self.expansion, self._body
        specs = self.evaluator.specs

        def screen(plan, size, pool, pool_count):
            self.traces += 1
            xs, vs = expansion.batch(plan, size, pool, pool_count)
            result = body(xs, vs, flags=False)
            # Every key's first and worst row: what the judging quota may pick, gathered here so that
            # no other part of the batch leaves the device.
            rows, _ = tf.unique(tf.concat([result["first"], result["worst_row"]], 0))
            rows = tf.sort(rows)
            return {**result, "candidate_rows": rows,
                    "candidate_inputs": [tf.gather(x, rows) for x in xs],
                    "candidate_cotangents": [tf.gather(v, rows) for v in vs]}

        signature = [tf.TensorSpec([len(PLAN_FIELDS)], tf.int64), tf.TensorSpec([], tf.int64),
                     [tf.TensorSpec([POOL_CAPACITY, *s.shape], s.numpy_dtype) for s in specs], tf.TensorSpec([], tf.int64)]
        return tf.function(screen, input_signature=signature).get_concrete_function()

    # -- the graph ----------------------------------------------------------------------
    def _build(self):
        evaluator = self.evaluator
        specs, judged = evaluator.specs, evaluator.gradient_specs
        structure = evaluator.structure
        custom_vjp = evaluator.batched("custom VJP")
        reference64 = evaluator.batched("reference VJP (float64)")
        native = evaluator.batched("reference VJP")
        # Per judged argument, at the precision it is judged in (the lower of the argument's and its
        # gradient's, as the oracle does) and with SCREEN_SLACK applied: the share of |g| the ULP
        # floor allows, the absolute floor, and the calibration factor.
        limits = []
        for a, spec in enumerate(judged):
            if not spec.differentiable:
                limits.append(None)
                continue
            gradient_dtype = structure.gradient_dtypes[a] if a < len(structure.gradient_dtypes) else None
            info = min(spec.info, info_for(gradient_dtype or spec.dtype) or spec.info, key=lambda i: i.mantissa_bits)
            tol = TOLERANCES[info.name]
            # floor ULPs of |g| (the ULP is its binade's power of two times 2⁻ᵐ, as `DTypeInfo.ulp`).
            limits.append(_Limit(info.tiny, SCREEN_SLACK * tol.floor_ulps * 2.0 ** -info.mantissa_bits,
                                 SCREEN_SLACK * tol.absolute_floor, SCREEN_SLACK * tol.calibration_factor))
        points = [tf.constant(p, tf.float64) for p in self._points]
        regions, segments = self._regions, self._segments

        def wide(tensors):
            return [tf.cast(t, tf.float64) if spec.differentiable else t for t, spec in zip(tensors, specs)]

        # Arguments whose worst element's region goes into the key (drawn, with points of interest).
        located = [a for a, limit in enumerate(limits) if limit is not None and a < len(specs) and self._points[a].size]
        chunk = self._chunk

        def region_of(value, points):
            """As `gradfuzz.regions.Region.of`: 2i+1 on the i-th point, 2i between points i-1 and i."""
            below = tf.reduce_sum(tf.cast(points[None, :] < value[:, None], tf.int32), axis=1)
            return 2 * below + tf.cast(tf.reduce_any(tf.equal(points[None, :], value[:, None]), axis=1), tf.int32)

        def compare(offset, valid, xs, ys, custom, reference, calibration=None):
            """One chunk of `chunk` rows (rows ≥ ``valid`` are padding). Per example the key (-1: plain
            pass) and error/tolerance; returned per key: count, first and worst row, worst error."""
            batch = chunk
            zero, infinity = tf.constant(0.0, tf.float64), tf.constant(np.inf, tf.float64)
            rows = offset + tf.range(batch)
            domain = rows < valid
            for y in ys:
                domain &= tf.reduce_all(tf.reshape(tf.math.is_finite(y), [batch, -1]), axis=1)
            worst, location, region, kind = [], [], [], []
            hits, hit_regions = [], []  # per located argument: an element on a point, and that point's region
            for a, limit in enumerate(limits):
                n = int(np.prod(judged[a].shape))
                if limit is None or n == 0:
                    continue
                gc = tf.reshape(tf.cast(custom[a], tf.float64), [batch, n])
                gr = tf.reshape(tf.cast(reference[a], tf.float64), [batch, n])
                spread = None
                if calibration:  # how far autodiff at the argument's dtype is from float64 (not finite: 0)
                    spread = tf.abs(tf.reshape(tf.cast(calibration[a], tf.float64), [batch, n]) - gr)
                    spread = tf.reduce_max(tf.where(spread < infinity, spread, zero), axis=1, keepdims=True)
                ratio = limit.ratio(gc, gr, spread)
                # One reduction for both kinds: 2 where only the custom gradient is not finite, 1 where only
                # the reference is not; a row's maximum says which it has (custom first).
                finite_c, finite_r = tf.math.is_finite(gc), tf.math.is_finite(gr)
                lone = tf.reduce_max(tf.cast(finite_r & ~finite_c, tf.int32) * 2 + tf.cast(finite_c & ~finite_r, tf.int32), axis=1)
                kind.append(tf.where(tf.equal(lone, 2), 1, tf.where(tf.equal(lone, 1), 2, 0)))
                worst.append(tf.reduce_max(ratio, axis=1))
                location.append(a)
                if a in located:  # the region of the worst element among the points of interest
                    x = tf.reshape(tf.cast(xs[located.index(a)], tf.float64), [batch, n])
                    index = tf.range(n)[None, :]
                    # The first element at the row's worst (a plain reduction: XLA's argmax is a slow tuple reduce).
                    at_worst = tf.reduce_min(tf.where(ratio >= worst[-1][:, None], index, n), axis=1)
                    value = x[:, 0] if n == 1 else tf.gather(x, tf.minimum(at_worst, n - 1), batch_dims=1)
                    region.append(region_of(value, points[a]))
                    if n == 1:  # the worst element is the only one: its region says whether it is on a point
                        hits.append(tf.equal(region[-1] % 2, 1))
                        hit_regions.append(region[-1])
                    else:
                        on_point = tf.zeros([batch, n], tf.bool)
                        for p in range(int(points[a].shape[0])):
                            on_point |= tf.equal(x, points[a][p])
                        first_on = tf.reduce_min(tf.where(on_point, index, n), axis=1)
                        hits.append(first_on < n)
                        on_value = tf.gather(x, tf.minimum(first_on, n - 1), batch_dims=1)
                        hit_regions.append(region_of(on_value, points[a]))
                else:  # variables are not drawn: no region
                    region.append(tf.zeros([batch], tf.int32))
            if not worst:  # nothing comparable (all arguments zero-size or not differentiable)
                zeros = tf.zeros([batch], tf.int32)
                worst, location, region, kind = tf.zeros([batch], tf.float64), zeros, zeros, zeros
            elif len(worst) == 1:
                worst, location, region, kind = worst[0], tf.fill([batch], location[0]), region[0], kind[0]
            else:
                which = tf.argmax(tf.stack(worst, axis=1), axis=1, output_type=tf.int32)
                pick = lambda values: tf.gather(tf.stack(values, axis=1), which, batch_dims=1)  # noqa: E731
                worst, location, region, kind = pick(worst), tf.gather(location, which), pick(region), pick(kind)
            if hits:  # agreeing examples with an element on a point of interest go on as kind 3
                on = (worst <= 1.0) & (kind == 0) & tf.reduce_any(tf.stack(hits, axis=1), axis=1)
                first_hit = tf.argmax(tf.cast(tf.stack(hits, axis=1), tf.int32), axis=1, output_type=tf.int32)
                kind = tf.where(on, 3, kind)
                location = tf.where(on, tf.gather(tf.constant(located, tf.int32), first_hit), location)
                region = tf.where(on, tf.gather(tf.stack(hit_regions, axis=1), first_hit, batch_dims=1), region)
            flagged = domain & ((worst > 1.0) | (kind > 0))
            decade = tf.cast(tf.clip_by_value(tf.floor(_log10(worst)), 0.0, DECADES - 1.0), tf.int32)
            key = ((location * KINDS + kind) * DECADES + decade) * regions + region
            key = tf.where(flagged, key, -1)  # negative ids are dropped by the segment ops
            # One scatter-max finds each key's worst example: the error/tolerance's float32 bits
            # (monotone for non-negative floats) above the complement of the row (ties: first row).
            packed = tf.bitwise.left_shift(tf.cast(tf.bitcast(tf.cast(worst, tf.float32), tf.int32), tf.int64), 32) \
                + tf.cast(ROW_LIMIT - rows, tf.int64)
            finite = domain & tf.math.is_finite(worst)
            return {
                "counts": tf.math.unsorted_segment_sum(tf.ones([batch], tf.int32), key, segments),
                "first": tf.math.unsorted_segment_min(rows, key, segments),
                "worst": tf.math.unsorted_segment_max(tf.where(flagged, packed, -1), key, segments),
                "flags": flagged,
                "disagreed": tf.reduce_sum(tf.cast(flagged & (kind < 3), tf.int32)),
                "skipped": tf.reduce_sum(tf.cast(~domain & (rows < valid), tf.int32)),
                # Hypothesis' target(): the largest finite error in units of the tolerance.
                "score": tf.reduce_max(tf.where(finite, worst, tf.zeros_like(worst))),
            }

        # AutoGraph is left to the target's own code (as in the evaluator): converting these
        # helpers, plain Python loops over arguments, cost more than a second per target.
        compare = tf.function(compare, jit_compile=True, autograph=False)
        output_signature = {
            "counts": tf.TensorSpec([segments], tf.int32), "first": tf.TensorSpec([segments], tf.int32),
            "worst": tf.TensorSpec([segments], tf.int64),
            "flags": tf.TensorSpec([chunk], tf.bool), "disagreed": tf.TensorSpec([], tf.int32),
            "skipped": tf.TensorSpec([], tf.int32),
            "score": tf.TensorSpec([], tf.float64),
        }

        @tf.autograph.experimental.do_not_convert
        def in_chunks(batch, *tensors):
            """XLA compiles per shape: pad the batch to whole chunks, so it compiles once."""
            count = (batch + chunk - 1) // chunk

            def split(t):
                t = tf.pad(t, [[0, count * chunk - batch]] + [[0, 0]] * (t.shape.rank - 1))
                return tf.reshape(t, tf.concat([[count, chunk], tf.shape(t)[1:]], 0))

            offsets = tf.range(count) * chunk
            per_chunk = tf.map_fn(lambda e: compare(e[0], batch, *e[1:]), (offsets, *tf.nest.map_structure(split, tensors)),
                                  fn_output_signature=output_signature)
            worst = tf.reduce_max(per_chunk["worst"], axis=0)
            return {
                "counts": tf.reduce_sum(per_chunk["counts"], axis=0), "first": tf.reduce_min(per_chunk["first"], axis=0),
                "worst_row": ROW_LIMIT - tf.cast(tf.bitwise.bitwise_and(worst, 0xFFFFFFFF), tf.int32),
                "worst_ratio": tf.bitcast(tf.cast(tf.bitwise.right_shift(worst, 32), tf.int32), tf.float32),
                "flags": tf.reshape(per_chunk["flags"], [-1])[:batch],
                **{name: tf.reduce_sum(per_chunk[name]) for name in ("disagreed", "skipped")},
                "score": tf.reduce_max(per_chunk["score"]),
            }

        def screen(xs, vs, flags: bool):
            ys, custom = custom_vjp([xs, vs])
            vs64 = [tf.cast(v, tf.float64) for v in vs]
            reference = reference64([wide(xs), vs64]) if reference64 is not None else native([xs, vs])
            # At float64 the reference is its own calibration (no spread): nothing to pass.
            calibration = native([xs, vs]) if (native is not None and reference64 is not None) else []
            batch = tf.shape(xs[0])[0]
            result = in_chunks(batch, [xs[a] for a in located], ys, custom, reference, calibration)
            present = tf.reshape(tf.where(result["first"] < batch), [-1])
            magnitudes = [tf.abs(tf.cast(reference[a], tf.float64)) if limit is not None and int(np.prod(judged[a].shape))
                          else None for a, limit in enumerate(limits)]
            zero = tf.constant(0.0, tf.float64)
            typical = [zero if m is None else _median_of_sample(m, batch) for m in magnitudes]
            largest = [zero if m is None else tf.reduce_max(tf.where(tf.math.is_finite(m), m, zero)) for m in magnitudes]
            return {
                **{name: tf.gather(result[name], present) for name in ("counts", "first", "worst_row", "worst_ratio")},
                "keys": present, **{name: result[name] for name in ("disagreed", "skipped", "score")},
                **({"flags": result["flags"]} if flags else {}),
                "typical": tf.stack(typical) if typical else tf.zeros([0], tf.float64),
                "largest": tf.stack(largest) if largest else tf.zeros([0], tf.float64),
            }

        return screen


@dataclass(frozen=True)
class _Limit:
    """The screen's tolerance for one argument, at the precision it is judged in, with
    `SCREEN_SLACK` applied: the oracle's max(calibration_factor·spread, floor_ulps·ulp(g),
    absolute_floor), computed the same way in float64."""

    tiny: float  # the judged dtype's smallest normal (below it the ULP is constant)
    ulp_share: float  # slack · floor_ulps · 2⁻ᵐ: the allowed error per unit of |g|'s binade
    absolute_floor: float
    factor: float  # slack · calibration_factor

    def ratio(self, gc: tf.Tensor, gr: tf.Tensor, spread: tf.Tensor | None = None) -> tf.Tensor:
        """|gc − gr| / tolerance per element; NaN (NaN or inf on either side) counts as infinitely
        far, equal values (inf == inf) as agreeing."""
        zero, infinity = tf.constant(0.0, tf.float64), tf.constant(np.inf, tf.float64)
        allowed = tf.constant(self.absolute_floor, tf.float64)
        if spread is not None:
            allowed = tf.maximum(self.factor * spread, self.absolute_floor)
        tolerance = tf.maximum(allowed, self.ulp_share * _binade(tf.maximum(tf.abs(gr), self.tiny)))
        ratio = tf.abs(gc - gr) / tolerance
        return tf.where(ratio <= infinity, ratio, tf.where(tf.equal(gc, gr), zero, infinity))


def _binade(magnitude: tf.Tensor) -> tf.Tensor:
    """The power of two at or below a positive float64 (its exponent bits; inf for inf and NaN):
    exact, where log2 and floor are CPU-dispatched."""
    exponent_bits = tf.bitwise.bitwise_and(tf.bitcast(magnitude, tf.int64), tf.constant(0x7FF0000000000000, tf.int64))
    return tf.bitcast(exponent_bits, tf.float64)


def _log10(x: tf.Tensor) -> tf.Tensor:
    return tf.math.log(x) / np.log(10.0)


@tf.autograph.experimental.do_not_convert
def _median_of_sample(magnitudes: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
    """np.median of the finite values of a strided sample of rows, at most `TYPICAL_ELEMENTS` of
    their elements (the oracle's typical size; sorting every element of 256 matrices cost more
    than the comparison)."""
    stride = tf.maximum(1, batch // TYPICAL_SAMPLE)
    sample = tf.reshape(magnitudes[::stride], [-1])
    sample = tf.reshape(sample[:: tf.maximum(1, tf.size(sample) // TYPICAL_ELEMENTS)], [-1])
    sample = tf.sort(tf.boolean_mask(sample, tf.math.is_finite(sample)))
    count = tf.size(sample)

    def middle():  # inside the cond: gathering from an empty sample would fail
        return (tf.gather(sample, (count - 1) // 2) + tf.gather(sample, count // 2)) / 2

    return tf.cond(count > 0, middle, lambda: tf.constant(0.0, tf.float64))


@dataclass
class JudgingQuota:
    """Which flagged examples the oracle judges in full (see the module docstring)."""

    judged: dict[int, int] = field(default_factory=dict)  # key -> batches it was judged in
    best: dict[int, float] = field(default_factory=dict)  # key -> largest error/tolerance judged
    batches: int = 0

    def choose(self, result: ScreenResult, complete: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Batch rows to judge, ascending, and how many of the batch's flagged examples each stands
        for (its key's count, shared by the key's judged rows). ``complete`` (while shrinking)
        takes the first and worst of every key."""
        self.batches += 1
        revisit = complete or self.batches % REVISIT_EVERY == 0
        chosen: dict[int, float] = {}
        for key, count, first, worst, ratio in zip(result.keys.tolist(), result.counts.tolist(), result.first.tolist(),
                                                   result.worst.tolist(), result.worst_ratio.tolist()):
            times = self.judged.get(key, 0)
            if revisit or times < JUDGED_PER_KEY:
                rows = {first, worst}
                self.judged[key] = times + 1
                self.best[key] = max(self.best.get(key, 0.0), ratio)
            elif ratio > WORSE_FACTOR * self.best[key]:
                rows = {worst}
                self.best[key] = ratio
            else:
                continue
            chosen.update((row, count / len(rows)) for row in rows)
        rows = np.array(sorted(chosen), dtype=np.int64)
        return rows, np.array([chosen[row] for row in rows.tolist()], dtype=np.float64)
