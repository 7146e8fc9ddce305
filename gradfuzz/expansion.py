"""Plans expanded into batches in TensorFlow, on the device that evaluates them.

A `gradfuzz.plans.Plan` says what a batch aims at; `Expansion` turns (plan, rows) into inputs
and cotangents inside a compiled function, so a batch never exists on the host unless asked
for: the screen expands, evaluates and compares in one call, and only the examples the oracle
judges come back. Host↔device traffic per batch is the plan (ten integers), not the batch.

**Randomness.** Every value is a pure function of (plan, row, element): a counter-based
generator — SplitMix64's finaliser applied to ``key + counter·γ``, the key derived from the
plan's seed and the purpose (region choice, argument, real or imaginary part), the counter
from the row and the element. So a batch of B rows is the first B rows of any larger batch of
the same plan, it can be expanded in chunks of any size, and the host can expand the same
rows again bit for bit (`Expansion.expand`). TensorFlow's Philox (``tf.random.stateless_*``)
would do too, but costs ~4 ns per 32-bit word on a CPU core (an element needs four), ten
times this hash once XLA fuses it.

**Exact arithmetic.** Values are assembled from bits (a binary exponent and a 52-bit
mantissa: log-uniform magnitudes, ULP neighbourhoods, cotangents) and moved in exact ULP steps
on the dtype's bit patterns; the transcendental functions, whose kernels differ per CPU, are
never used. The few products that are rounded (uniform draws, relative neighbourhoods,
structured matrices) are compiled by XLA, which fuses a product into a following sum where
the CPU has FMA (every x86-64 CPU since 2013, ARMv8, GPUs): draws are identical across
such machines, and always identical on one machine. Failures are stored as their exact bits,
so replay never depends on expanding again.

**Shapes.** XLA compiles per shape, so a chunk of `Expansion.rows` rows (about
`CHUNK_ELEMENTS` elements) is compiled once, and a batch is as many chunks as it needs,
cut to its size.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from gradfuzz._tf import tf
from gradfuzz.dtypes import DTypeInfo
from gradfuzz.plans import JOINT_VALUES, MATRIX_KINDS, REGIONS, Plan, fit, is_square, special_values
from gradfuzz.spec import ArgSpec

CHUNK_ELEMENTS = 1 << 18  # input elements per compiled chunk (~1 ms of expansion on one CPU core)
POOL_CAPACITY = 4096  # boundary examples a chunk can draw from (the pool is padded to this, one compiled shape)
POINT_CAPACITY = 256  # points of interest per argument the "near" region aims at (the first ones)
PLAN_FIELDS = ("seed", "special", "near", "uniform", "log-scale", "focus", "ulps", "rel_exp", "sparsity", "boundary")
MAX_ULPS = 1 << 40  # ULP neighbourhoods wider than this are clipped (a plan can say anything)
BOUNDARY_REACH = 1024  # boundary examples move at most this many ULPs

_GOLDEN = 0x9E3779B97F4A7C15  # γ of SplitMix64
_MIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
_MANTISSA = (1 << 52) - 1

# Streams of the generator: one key per purpose, argument and part.
_ROW, _ROW_POOL, _INPUT, _OUTPUT = 1, 2, 16, 1 << 20


def plan_vector(plan: Plan) -> np.ndarray:
    """The plan as the ten integers the compiled expansion takes (`PLAN_FIELDS`)."""
    return np.array([plan.seed, *plan.weights, plan.focus, plan.ulps, plan.rel_exp, plan.sparsity, plan.boundary],
                    dtype=np.int64)


# -- the generator ---------------------------------------------------------------------------------


def _signed(value: int) -> int:
    """A 64-bit pattern as the int64 holding it."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _shift_right(z: tf.Tensor, bits: int) -> tf.Tensor:
    """Logical shift of an int64's bits."""
    return tf.bitcast(tf.bitwise.right_shift(tf.bitcast(z, tf.uint64), tf.constant(bits, tf.uint64)), tf.int64)


def _mix(z: tf.Tensor) -> tf.Tensor:
    """SplitMix64's finaliser: a bijection of 64-bit words whose output bits all depend on every input bit."""
    z = tf.bitwise.bitwise_xor(z, _shift_right(z, 30)) * _signed(_MIX[0])
    z = tf.bitwise.bitwise_xor(z, _shift_right(z, 27)) * _signed(_MIX[1])
    return tf.bitwise.bitwise_xor(z, _shift_right(z, 31))


def _key(seed: tf.Tensor, stream: int) -> tf.Tensor:
    return _mix(seed * _signed(_GOLDEN) + stream)


def _words(key: tf.Tensor, counter: tf.Tensor) -> tf.Tensor:
    return _mix(key + counter * _signed(_GOLDEN))


def _field(word: tf.Tensor, shift: int, width: int) -> tf.Tensor:
    """Bits [shift, shift + width) of each word, as a non-negative int64."""
    return tf.bitwise.bitwise_and(_shift_right(word, shift), (1 << width) - 1)


def _below(word: tf.Tensor, shift: int, width: int, n) -> tf.Tensor:
    """An integer in [0, n) from ``width`` bits, as (bits·n) >> width: multiplications vectorise,
    64-bit division does not. Needs width + log2(n) < 63; the bias is below n/2^width."""
    return tf.bitwise.right_shift(_field(word, shift, width) * tf.maximum(tf.cast(n, tf.int64), 1), width)


def _unit(word: tf.Tensor) -> tf.Tensor:
    """A float64 in [0, 1) from the word's top 53 bits (exact)."""
    return tf.cast(_shift_right(word, 11), tf.float64) * 2.0**-53


def _binary(word: tf.Tensor, exponent: tf.Tensor) -> tf.Tensor:
    """(1 + m/2^52)·2^exponent with m the word's low 52 bits: exact, for normal exponents."""
    bits = tf.bitwise.bitwise_or(tf.bitwise.left_shift(exponent + 1023, 52), tf.bitwise.bitwise_and(word, _MANTISSA))
    return tf.bitcast(bits, tf.float64)


def _exponent(value: np.ndarray | float) -> int:
    """frexp's exponent: value = f·2^e with f in [0.5, 1)."""
    return int(np.frexp(value)[1])


def _log_uniform(mantissa: tf.Tensor, word: tf.Tensor, shift: int, low, high, first, last) -> tf.Tensor:
    """Magnitudes in [low, high], log-uniform by binades: a uniform exponent among the binades
    [2^e, 2^(e+1)) that meet the interval (``first``, ``last``: frexp exponents of the ends),
    then a uniform mantissa."""
    first, last = tf.cast(first, tf.int64), tf.cast(last, tf.int64)
    exponent = first - 1 + _below(word, shift, 24, last - first + 1)
    return tf.clip_by_value(_binary(mantissa, exponent), tf.cast(low, tf.float64), tf.cast(high, tf.float64))


def _log_uniform_integers(word: tf.Tensor, shift: int, top: tf.Tensor) -> tf.Tensor:
    """Integers in [0, top - 1], log-uniform: k + 1 falls in each binade of [1, top] equally often."""
    binades = _bit_length(top)
    binade = _below(word, shift, 16, binades)
    low = tf.bitwise.left_shift(tf.ones_like(binade), binade)
    span = tf.minimum(2 * low, top + 1) - low
    return low + _below(word, shift + 16, 22, span) - 1  # span ≤ 2^41: 22 bits place it within the binade


def _bit_length(n: tf.Tensor) -> tf.Tensor:
    """Bits needed for n ≥ 1 (exact below 2^53: the float64 exponent of n)."""
    bits = tf.bitcast(tf.cast(n, tf.float64), tf.int64)
    return tf.bitwise.right_shift(bits, 52) - 1022


# -- exact steps and fitting, in TensorFlow (as `gradfuzz.plans.step_ulps` and `fit`) -------------

_INT_OF_WIDTH = {2: tf.int16, 4: tf.int32, 8: tf.int64}


def step_ulps(values: tf.Tensor, steps: tf.Tensor, info: DTypeInfo) -> tf.Tensor:
    """Move each value ``steps`` representable numbers up (down if negative), on its bit pattern."""
    width = info.bits.itemsize * 8
    raw = tf.cast(tf.bitcast(values, _INT_OF_WIDTH[info.bits.itemsize]), tf.int64)  # sign-extended
    magnitude = tf.bitwise.bitwise_and(raw, (1 << (width - 1)) - 1)
    ordered = tf.where(raw < 0, -magnitude, magnitude)  # monotone in the value; ±0 → 0
    limit = int(np.asarray(info.max, dtype=info.numpy).view(info.bits))
    moved = tf.clip_by_value(ordered + steps, -limit, limit)
    # Back to the sign-magnitude pattern, as the signed integer of the dtype's width holding it.
    signed = tf.where(moved < 0, -moved + _signed_min(width), moved)
    stepped = tf.bitcast(tf.cast(signed, _INT_OF_WIDTH[info.bits.itemsize]), tf.as_dtype(info.numpy))
    return tf.where(tf.equal(steps, 0), values, stepped)  # unmoved values keep their bits (-0 stays -0)


def _signed_min(width: int) -> int:
    return -(1 << (width - 1))


def _fit(values: tf.Tensor, spec: ArgSpec) -> tf.Tensor:
    """Clip float64 values into the range and round to the dtype, clipping again with the
    dtype's own bounds (a ±0 bound keeps the sign of zeros drawn)."""
    dtype = tf.as_dtype(spec.info.numpy)
    ends = fit(np.array([spec.low, spec.high]), spec)  # the range's ends as the dtype holds them
    rounded = tf.cast(tf.clip_by_value(values, spec.low, spec.high), dtype)
    low, high = tf.constant(ends[0], dtype), tf.constant(ends[1], dtype)
    return tf.where(rounded < low, low, tf.where(rounded > high, high, rounded))


# -- the expansion -----------------------------------------------------------------------------------


class Expansion:
    """Plans → batches for one argument list (``specs``) with its points of interest, and, when
    ``outputs`` (shape, dtype) pairs are given, the cotangents for those outputs.

    ``batch(plan, size, pool)`` is for use inside a compiled function (the screen's);
    ``expand(plan, size, pool)`` returns numpy arrays, the same bits. The compiled chunks are
    shared: inputs by every expansion of the same specs (points are an argument, not a constant),
    cotangents by every expansion of the same outputs, so a process compiles each shape once.
    """

    def __init__(self, specs: Sequence[ArgSpec], points: Sequence[Sequence[float]],
                 outputs: Sequence[tuple[tuple[int, ...], str]] = ()):
        self.specs = tuple(specs)
        self.outputs = tuple((tuple(shape), str(dtype)) for shape, dtype in outputs)
        self._inputs = _shared(("inputs", self.specs), lambda: _InputChunks(self.specs))
        self._cotangents = _shared(("cotangents", self.outputs), lambda: _CotangentChunks(self.outputs)) if self.outputs else None
        self.rows = self._inputs.rows
        # Points of interest per argument, padded to POINT_CAPACITY (the first ones if there are more).
        padded, counts = [], []
        for a in range(len(self.specs)):
            chosen = np.asarray(points[a] if a < len(points) and len(points[a]) else [0.0], dtype=np.float64)[:POINT_CAPACITY]
            padded.append(np.pad(chosen, (0, POINT_CAPACITY - chosen.size)))
            counts.append(chosen.size)
        self._points = (padded, np.array(counts, dtype=np.int64))
        self._host = None
        self._pool_source, self._pool_tensors = None, None
        self.uploaded_bytes = 0  # boundary pools sent to the device (once per new pool)
        self._lock = threading.Lock()

    # -- entry points ---------------------------------------------------------------------
    def batch(self, plan: tf.Tensor, size: tf.Tensor, pool: Sequence[tf.Tensor], pool_count: tf.Tensor) -> tuple[list, list]:
        """Inputs ``[size, *shape]`` and cotangents ``[size, *shape]`` of a plan (graph code)."""
        size = tf.cast(size, tf.int64)
        points = [tf.constant(p) for p in self._points[0]]
        counts = tf.constant(self._points[1])
        inputs = self._inputs.batch(size, lambda first: self._inputs.chunk(plan, first, list(pool), pool_count, points, counts))
        cotangents = [] if self._cotangents is None else self._cotangents.batch(
            size, lambda first: self._cotangents.chunk(plan[0], first))
        return inputs, cotangents

    def expand(self, plan: Plan, size: int, pool: Sequence[np.ndarray] | None = None) -> tuple[list, list]:
        """A plan's inputs and cotangents as numpy arrays (the bits `batch` computes)."""
        with self._lock:
            if self._host is None:
                self._host = tf.function(self.batch, autograph=False)
            tensors, count = self.pool_tensors(pool)
            inputs, cotangents = self._host(tf.constant(plan_vector(plan)), tf.constant(size, tf.int64), tensors, count)
        return [x.numpy() for x in inputs], [v.numpy() for v in cotangents]

    def pool_tensors(self, pool: Sequence[np.ndarray] | None) -> tuple[list, tf.Tensor]:
        """The boundary pool padded to `POOL_CAPACITY` rows, kept as tensors while it is the same object."""
        if pool is not self._pool_source or self._pool_tensors is None:
            count = 0 if pool is None or not len(pool) else min(len(pool[0]), POOL_CAPACITY)
            padded = []
            for a, spec in enumerate(self.specs):
                block = np.zeros((POOL_CAPACITY, *spec.shape), dtype=spec.numpy_dtype)
                if count:
                    block[:count] = np.asarray(pool[a])[-count:]
                padded.append(tf.constant(block))
            self._pool_source, self._pool_tensors = pool, (padded, tf.constant(count, tf.int64))
            self.uploaded_bytes += sum(int(np.prod(t.shape)) * t.dtype.size for t in padded)
        return self._pool_tensors


def _rows_per_chunk(elements_per_row: int) -> int:
    """Rows per compiled chunk: about `CHUNK_ELEMENTS` elements, at most 2¹⁶ rows."""
    return max(1, min(1 << 16, CHUNK_ELEMENTS // max(1, elements_per_row)))


class _Chunked:
    """A compiled function of ``rows`` rows from a first row; a batch is as many as it needs, cut."""

    rows: int
    row_signature: list

    def batch(self, size: tf.Tensor, chunk) -> list:
        chunks = (size + self.rows - 1) // self.rows
        parts = tf.map_fn(chunk, tf.range(chunks) * self.rows, fn_output_signature=self.row_signature)
        return [tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], 0))[:size] for t in parts]


class _CotangentChunks(_Chunked):
    """Cotangents ``v`` per output, in its dtype: magnitudes uniform in [0.5, 1) with random signs
    (complex: both parts so). Bounded away from zero, so no element of ``v`` hides an error."""

    def __init__(self, outputs):
        self.outputs = outputs
        self.rows = _rows_per_chunk(sum(int(np.prod(shape, dtype=np.int64)) for shape, _ in outputs))
        self.row_signature = [tf.TensorSpec([self.rows, *shape], dtype) for shape, dtype in outputs]
        self.chunk = tf.function(self._chunk_rows, jit_compile=True, autograph=False,
                                 input_signature=[tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.int64)])

    def _chunk_rows(self, seed, first):
        rows = first + tf.range(self.rows, dtype=tf.int64)
        drawn = []
        for o, (shape, dtype) in enumerate(self.outputs):
            n = int(np.prod(shape, dtype=np.int64))
            counter = rows[:, None] * max(n, 1) + tf.range(n, dtype=tf.int64)[None, :]
            parts = []
            for part in range(2 if tf.as_dtype(dtype).is_complex else 1):
                word = _words(_key(seed, _OUTPUT + 2 * o + part), counter)
                magnitude = _binary(word, tf.fill(tf.shape(word), tf.constant(-1, tf.int64)))  # [0.5, 1)
                parts.append(tf.where(word < 0, -magnitude, magnitude))  # the sign: bit 63, not a mantissa bit
            values = tf.complex(parts[0], parts[1]) if len(parts) == 2 else parts[0]
            drawn.append(tf.cast(tf.reshape(values, [self.rows, *shape]), dtype))
        return drawn


class _InputChunks(_Chunked):
    """The inputs of ``rows`` rows of a plan, for one argument list (XLA)."""

    def __init__(self, specs):
        self.specs = specs
        self.rows = _rows_per_chunk(sum(s.size for s in self.specs))
        self.row_signature = [tf.TensorSpec([self.rows, *s.shape], s.numpy_dtype) for s in self.specs]
        self.real = [a for a, s in enumerate(self.specs) if s.differentiable and not s.is_complex]
        # A value every real argument's range holds, for the joint special values.
        self.joint = [v for v in JOINT_VALUES if all(self.specs[a].low <= v <= self.specs[a].high for a in self.real)]
        self.chunk = tf.function(self._chunk_rows, jit_compile=True, autograph=False, input_signature=[
            tf.TensorSpec([len(PLAN_FIELDS)], tf.int64), tf.TensorSpec([], tf.int64),
            [tf.TensorSpec([POOL_CAPACITY, *s.shape], s.numpy_dtype) for s in self.specs], tf.TensorSpec([], tf.int64),
            [tf.TensorSpec([POINT_CAPACITY], tf.float64) for _ in self.specs], tf.TensorSpec([len(self.specs)], tf.int64)])

    # -- one chunk (XLA) -------------------------------------------------------------------------
    def _chunk_rows(self, plan, first, pool, pool_count, points, point_counts):
        seed = plan[0]
        rows = first + tf.range(self.rows, dtype=tf.int64)
        row_word = _words(_key(seed, _ROW), rows)
        region = self._regions(plan[1:5], row_word)
        inputs = []
        for a, spec in enumerate(self.specs):
            if not spec.differentiable:
                inputs.append(self._pass_through(seed, a, spec, rows))
            elif spec.is_complex:  # real and imaginary parts drawn independently from the component's regions
                real, imaginary = (self._real(plan, a, part, spec.component, rows, region, points[a], point_counts[a])
                                   for part in (0, 1))
                inputs.append(tf.reshape(tf.complex(tf.cast(real, tf.float64), tf.cast(imaginary, tf.float64)),
                                         [self.rows, *spec.shape]))
                inputs[-1] = tf.cast(inputs[-1], spec.numpy_dtype)
            else:
                values = self._real(plan, a, 0, spec, rows, region, points[a], point_counts[a], fitted=False)
                if is_square(spec):
                    # Half of the special-value examples become structured matrices (built only when
                    # the plan draws special values: they cost more than the draws they replace).
                    chosen = tf.equal(region, 0) & tf.equal(_field(row_word, 16, 1), 1)
                    values = tf.cond(
                        tf.reduce_any(chosen),
                        lambda a=a, spec=spec, values=values, chosen=chosen: tf.where(
                            _rows_mask(chosen, values), self._structured(seed, a, spec, rows), values),
                        lambda values=values: values)
                inputs.append(values)
        inputs = self._joint_special_values(inputs, region, row_word)
        inputs = [_fit(x, spec) if a in self.real else x for a, (x, spec) in enumerate(zip(inputs, self.specs))]
        # Boundary examples only when the plan asks for them and the pool has some.
        inputs = tf.cond((plan[9] > 0) & (pool_count > 0),
                         lambda: self._from_pool(plan, seed, rows, row_word, list(inputs), pool, pool_count),
                         lambda: list(inputs))
        return inputs

    def _regions(self, weights, row_word):
        """Each row's region of `REGIONS`, in proportion to the plan's weights (all zero: special values)."""
        weights = tf.maximum(weights, 0)
        weights = tf.where(tf.reduce_sum(weights) > 0, weights, tf.constant([1, 0, 0, 0], tf.int64))
        bounds = tf.cumsum(weights)
        pick = _below(row_word, 0, 16, bounds[-1])  # weights ≤ a few thousand
        return tf.reduce_sum(tf.cast(pick[:, None] >= bounds[None, :len(REGIONS) - 1], tf.int64), axis=1)

    def _real(self, plan, a, part, spec, rows, region, points, count, fitted=True):
        """``[rows, *shape]`` float64 values of a real spec (a complex argument's part), each row
        from its region; fitted to the dtype unless the caller fits after more changes.

        Two words per element. ``mantissa``: a uniform draw's 53 bits, or a magnitude's mantissa
        (low 52), or an ULP step (bits 0-37). ``word``: special value 0-15, ULPs or relative 16,
        sign 17, point of interest 18-33, binary exponent 34-57, sparsity 58-59."""
        info, n = spec.info, spec.size
        counter = rows[:, None] * n + tf.range(n, dtype=tf.int64)[None, :]
        stream = _INPUT + 4 * a + 2 * part
        mantissa, word = _words(_key(plan[0], stream), counter), _words(_key(plan[0], stream + 1), counter)
        focus, ulps, rel_exp, sparsity = plan[5], plan[6], plan[7], plan[8]

        specials = tf.constant(special_values(spec).astype(np.float64))
        special = tf.gather(specials, _below(word, 0, 16, specials.shape[0]))

        # Near a point of interest: half a few ULPs away (log-uniform up to `ulps`), half a relative
        # distance up to 10^-rel_exp (around 0 an absolute one: relative offsets there are subnormals).
        index = tf.where(focus > 0, tf.fill(tf.shape(word), (focus - 1) % count), _below(word, 18, 16, count))
        centre = tf.gather(points, index)
        sign = 1.0 - 2.0 * tf.cast(_field(word, 17, 1), tf.float64)  # ±1
        top = tf.clip_by_value(ulps, 0, MAX_ULPS) + 1
        steps = _log_uniform_integers(mantissa, 0, top) * tf.cast(sign, tf.int64)
        stepped = tf.cast(step_ulps(tf.cast(centre, info.numpy), steps, info), tf.float64)
        tables = _relative_tables(info)
        k = tf.clip_by_value(rel_exp, 0, tables[0].shape[0] - 1)
        high, last = tf.gather(tables[0], k), tf.gather(tables[1], k)
        relative = _log_uniform(mantissa, word, 34, info.eps, high, _exponent(info.eps), last)
        scaled = centre + sign * relative * tf.where(tf.equal(centre, 0.0), tf.ones_like(centre), tf.abs(centre))
        near = tf.where(tf.equal(_field(word, 16, 1), 1), stepped, scaled)

        uniform = spec.low + (spec.high - spec.low) * _unit(mantissa)
        top_magnitude = max(abs(spec.low), abs(spec.high))
        magnitude = _log_uniform(mantissa, word, 34, info.tiny, top_magnitude, _exponent(info.tiny),
                                 _exponent(top_magnitude))
        if spec.low >= 0:
            log_scale = magnitude
        elif spec.high <= 0:
            log_scale = -magnitude
        else:
            log_scale = sign * magnitude

        by_row = region[:, None]
        values = tf.where(by_row == 0, special, tf.where(by_row == 1, near, tf.where(by_row == 2, uniform, log_scale)))
        if n > 1:  # a share sparsity/4 of the uniform and log-scale elements is exactly zero
            sparse = (by_row >= 2) & (_field(word, 58, 2) < sparsity)
            values = tf.where(sparse, tf.zeros_like(values), values)
        values = tf.reshape(values, [self.rows, *spec.shape])
        return _fit(values, spec) if fitted else values

    def _structured(self, seed, a, spec, rows):
        """Structured square matrices (`MATRIX_KINDS`), scaled into the range: where a matrix
        gradient's special cases live (ties, singularity, symmetry). Every kind is one form,
        diag(p) + c·u wᵀ, so a matrix costs a multiply-add per entry:

        identity p = 1, c = 0; diagonal with ties p = d, c = 0; rank one p = 0, c = 1, w = v;
        orthogonal (a Householder reflection) p = 1, c = -2/uᵀu, w = u; symmetric positive
        definite p = |v| + 0.001, c = 1, w = u."""
        n = spec.shape[-1]
        batch_shape = [self.rows, *spec.shape[:-2]]
        matrices = int(np.prod(spec.shape[:-2], dtype=np.int64))
        counter = rows[:, None] * (matrices * n) + tf.range(matrices * n, dtype=tf.int64)[None, :]
        word = tf.reshape(_words(_key(seed, _INPUT + 4 * a + 3), counter), [*batch_shape, n])
        per_matrix = _mix(word[..., 0])  # the matrix's own choices, independent of its entries
        u = 2.0 * _unit(word) - 1.0  # entries in [-1, 1)
        v = tf.cast(_field(word, 0, 26), tf.float64) * 2.0**-25 - 1.0  # from the low bits u does not use
        kind = _below(per_matrix, 0, 8, len(MATRIX_KINDS))[..., None]
        repeated = tf.gather(tf.constant([-1.0, 0.0, 1.0, 2.0], tf.float64), _field(word, 26, 2))
        tie = tf.gather(tf.constant([0.5, 1.0, 2.0], tf.float64), _below(per_matrix, 10, 4, 3))[..., None]
        diagonal = tf.where(tf.equal(_field(per_matrix, 14, 1), 1)[..., None], tie + 0.0 * u, repeated)
        ones = tf.ones_like(u)
        p = tf.where(tf.equal(kind, 0), ones, tf.where(tf.equal(kind, 1), diagonal, tf.where(
            tf.equal(kind, 2), 0.0 * u, tf.where(tf.equal(kind, 3), ones, tf.abs(v) + 0.001))))
        reflection = -2.0 / (_ordered_sum(u * u) + 1e-300)
        c = tf.where(kind[..., 0] <= 1, tf.zeros_like(reflection), tf.where(tf.equal(kind[..., 0], 3), reflection, 1.0 + 0.0 * reflection))
        w = tf.where(tf.equal(kind, 2), v, u)
        chosen = tf.linalg.diag(p) + (c[..., None, None] * u[..., :, None]) * w[..., None, :]
        bound = min(abs(spec.low), abs(spec.high)) if spec.low < 0 < spec.high else max(abs(spec.low), abs(spec.high))
        peak = tf.maximum(tf.reduce_max(tf.abs(chosen), axis=[-1, -2], keepdims=True), 1e-300)
        return tf.where(peak > bound, chosen * (bound / peak), chosen)

    def _joint_special_values(self, inputs, region, row_word):
        """Special values together (pow at (0, 0), a product with two zeros, ties): of the special
        rows, a third put one common value in every real element of every argument, a third repeat
        the first real argument in the others of its shape (x = y)."""
        if sum(self.specs[a].size for a in self.real) < 2:
            return inputs
        special = tf.equal(region, 0)
        kind = _below(row_word, 17, 8, 3)
        common = special & tf.equal(kind, 0)
        if self.joint:
            value = tf.gather(tf.constant(self.joint, tf.float64), _below(row_word, 25, 8, len(self.joint)))
            for a in self.real:
                x = inputs[a]
                shaped = tf.broadcast_to(tf.reshape(value, [-1] + [1] * (x.shape.rank - 1)), tf.shape(x))
                inputs[a] = tf.where(_rows_mask(common, x), shaped, x)
        equal = special & tf.equal(kind, 1)
        first = self.real[0] if self.real else None
        for a in self.real[1:]:
            if self.specs[a].shape == self.specs[first].shape:
                inputs[a] = tf.where(_rows_mask(equal, inputs[a]), inputs[first], inputs[a])
        return inputs

    def _from_pool(self, plan, seed, rows, row_word, inputs, pool, pool_count):
        """A share boundary/8 of the rows: whole examples from the pool of bisected branch
        switches (all arguments together, so a joint boundary is kept), each float element kept
        or moved log-uniformly up to min(ulps, 1024) ULPs to either side."""
        chosen = (_field(row_word, 33, 3) < plan[9]) & (pool_count > 0)
        pick = _below(_words(_key(seed, _ROW_POOL), rows), 0, 32, pool_count)
        reach = tf.clip_by_value(plan[6], 1, BOUNDARY_REACH)
        moved = []
        for a, (x, spec) in enumerate(zip(inputs, self.specs)):
            drawn = tf.gather(pool[a], pick)
            if a in self.real and spec.size:
                counter = rows[:, None] * spec.size + tf.range(spec.size, dtype=tf.int64)[None, :]
                word = tf.reshape(_words(_key(seed, _INPUT + 4 * a + 2), counter), [self.rows, *spec.shape])
                steps = _log_uniform_integers(word, 0, reach + 0 * word)
                steps *= (1 - 2 * _field(word, 60, 1)) * _field(word, 61, 1)  # ±1, and half of the elements unmoved
                drawn = step_ulps(drawn, tf.cast(steps, tf.int64), spec.info)
            moved.append(tf.where(_rows_mask(chosen, x), drawn, x))
        return moved

    def _pass_through(self, seed, a, spec, rows):
        """Integer and boolean arguments: their range's ends, 0 and ±1 often, uniform otherwise."""
        n = spec.size
        counter = rows[:, None] * n + tf.range(n, dtype=tf.int64)[None, :]
        word = _words(_key(seed, _INPUT + 4 * a), counter)
        if spec.dtype == "bool":
            return tf.reshape(tf.equal(_field(word, 0, 1), 1), [self.rows, *spec.shape])
        low, high = int(spec.low), int(spec.high)
        values = low + _below(word, 0, 30, high - low + 1)
        specials = tf.constant([v for v in (0, 1, -1, low, high) if low <= v <= high], tf.int64)
        values = tf.where(tf.equal(_field(word, 32, 2), 0), tf.gather(specials, _below(_mix(word), 0, 8, specials.shape[0])),
                          values)
        return tf.cast(tf.reshape(values, [self.rows, *spec.shape]), spec.numpy_dtype)


def _rows_mask(rows: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """A per-row condition shaped to broadcast against ``like`` ([rows, ...])."""
    return tf.reshape(rows, [-1] + [1] * (like.shape.rank - 1))


def _ordered_sum(values: tf.Tensor) -> tf.Tensor:
    """Sum over the last axis in a fixed order (a reduction's order is the compiler's choice)."""
    total = values[..., 0]
    for k in range(1, values.shape[-1]):
        total = total + values[..., k]
    return total


def _relative_tables(info: DTypeInfo) -> tuple[tf.Tensor, tf.Tensor]:
    """Per rel_exp k = 0..16: the relative neighbourhood's reach max(10^-k, eps) and its frexp exponent."""
    highs = np.maximum(10.0 ** -np.arange(17), info.eps)
    return tf.constant(highs), tf.constant([_exponent(h) for h in highs], tf.int64)


_CACHE: dict = {}
_CACHE_LOCK = threading.RLock()


def _shared(key, build):
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = build()
        return _CACHE[key]


def expansion_for(specs: Sequence[ArgSpec], points: Sequence[Sequence[float]],
                  outputs: Sequence[tuple[tuple[int, ...], str]] = ()) -> Expansion:
    """The `Expansion` of these specs, points and outputs, compiled once per process."""
    key = (tuple(specs), tuple(tuple(float(p) for p in ps) for ps in points),
           tuple((tuple(shape), str(dtype)) for shape, dtype in outputs))
    return _shared(key, lambda: Expansion(specs, points, outputs))


def expand(plan: Plan, specs: Sequence[ArgSpec], points: Sequence[Sequence[float]], size: int,
           boundary: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """A plan's batch of inputs as numpy arrays: one ``[size, *shape]`` array per argument."""
    return expansion_for(specs, points).expand(plan, size, boundary)[0]
