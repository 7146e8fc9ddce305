"""Hypothesis strategies for gradient fuzzing (installed as ``gradfuzz.strategies``).

Hypothesis draws a small `Plan` — which region of input space to aim at, how
far from a point of interest, a seed — and `expand` turns it into a whole
batch with vectorised numpy. Drawing every element through Hypothesis would
be far too slow for batches of thousands; drawing the plan keeps Hypothesis
in charge of exploration (``target()``) and of shrinking: a shrunk plan aims
at special values and exact points of interest, which yields simple inputs.

>>> from gradfuzz.spec import parse_spec
>>> spec = parse_spec("float32[]@-10..10")
>>> batch = expand(Plan(seed=1, weights=(0, 1, 0, 0)), [spec], [[0.0, 1.0]], size=4)
>>> batch[0].dtype, batch[0].shape
(dtype('float32'), (4,))

This module imports no TensorFlow: strategies are pure numpy and Hypothesis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from gradfuzz.dtypes import DTypeInfo
from gradfuzz.spec import ArgSpec

REGIONS = ("special", "near", "uniform", "log-scale")


@dataclass(frozen=True)
class Plan:
    """What one batch aims at. Small on purpose: Hypothesis shrinks it.

    weights: relative share of examples per region in `REGIONS` (all zero: special values only).
    focus:   0 aims each element at a random point of interest; k > 0 at point k-1 only.
    ulps:    half-width, in units in the last place, of the neighbourhood around a point.
    rel_exp: relative neighbourhoods reach up to 10**-rel_exp around a point.
    sparsity: a share sparsity/4 of the elements of multi-element arguments is exactly zero.
    boundary: a share boundary/8 of the examples comes from the run's pool of bisected branch
              switches (`gradfuzz.boundaries.bisect`), moved a few ULPs; none while it is empty.
    """

    seed: int
    weights: tuple[int, int, int, int] = (1, 1, 1, 1)
    focus: int = 0
    ulps: int = 4
    rel_exp: int = 4
    sparsity: int = 0
    boundary: int = 0


def plans(points: int = 0) -> st.SearchStrategy[Plan]:
    """Strategy for batch plans; ``points`` is how many points of interest there are.

    Every field shrinks towards the simplest batch: seed 0, special values, the
    first point of interest, zero ULPs away.
    """
    return st.builds(
        Plan,
        seed=st.integers(0, 2**32 - 1),
        weights=st.tuples(*[st.integers(0, 4)] * len(REGIONS)),
        focus=st.integers(0, max(points, 0)),
        ulps=st.integers(0, 2**20),
        rel_exp=st.integers(1, 12),
        sparsity=st.integers(0, 3),
        boundary=st.integers(0, 4),
    )


DEFAULT_POINTS = (0.0, 1.0, -1.0)  # where `tensors` seeks boundaries unless told others
SIMPLE_VALUES = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 10.0, -10.0)  # shrink targets, simplest first


def tensors(spec: str | ArgSpec, points: Sequence[float] = DEFAULT_POINTS) -> st.SearchStrategy[np.ndarray]:
    """Inputs for one argument, drawn the way a gradfuzz run draws them: a `Plan` (special values,
    ULP neighbourhoods of ``points``, log-scale and uniform values, sparsity) expanded to one array
    of the spec's dtype and shape. Shrinks towards special values and exact points of interest.

    >>> from hypothesis import given
    >>> @given(tensors("float32[3]@-1..1"))
    ... def test_shape(x):
    ...     assert x.shape == (3,) and x.dtype == np.float32 and np.all(np.abs(x) <= 1)
    >>> test_shape()
    """
    from gradfuzz.spec import parse_spec

    spec = parse_spec(spec) if isinstance(spec, str) else spec
    chosen = [float(p) for p in points if spec.low <= p <= spec.high]
    drawn = plans(len(chosen)).map(lambda plan: expand(plan, [spec], [chosen], 1)[0][0])
    # First, arrays of values a person would write: Hypothesis shrinks towards this branch, so a
    # failure that also shows at 0, ±1, 2 or 0.5 is reported there, not at the subnormal it was found at.
    simple = [v for v in SIMPLE_VALUES if spec.low <= v <= spec.high] or [float(fit(np.array([0.0]), spec)[0])]
    size = int(np.prod(spec.shape, dtype=np.int64))
    plain = st.lists(st.sampled_from(simple), min_size=size, max_size=size).map(
        lambda values: np.asarray(values, dtype=np.float64).astype(spec.numpy_dtype).reshape(spec.shape))
    return st.one_of(plain, drawn)


def special_values(spec: ArgSpec) -> np.ndarray:
    """Values that break gradients, restricted to the spec's range: ±0, ±1, the
    smallest normal and subnormal, the range ends and their neighbours.

    >>> from gradfuzz.spec import parse_spec
    >>> special_values(parse_spec("float64[]@0..2"))[:4]
    array([0. , 1. , 0.5, 2. ])
    """
    info, low, high = spec.info, spec.low, spec.high
    candidates = [0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, low, high, info.tiny, -info.tiny,
                  info.smallest_subnormal, -info.smallest_subnormal]
    values = [v for v in candidates if low <= v <= high]
    ends = np.array([low, high], dtype=info.numpy)
    inward = np.array([step_ulps(ends[:1], 1, info)[0], step_ulps(ends[1:], -1, info)[0]], dtype=info.numpy)
    values.extend(float(v) for v in inward if low <= float(v) <= high)
    unique = list(dict.fromkeys(values))
    if low <= 0.0 <= high:
        unique.append(-0.0)  # dict.fromkeys merges -0.0 into 0.0; keep both signs of zero
    return np.array(unique, dtype=info.numpy)


def near(points: Sequence[float], spec: ArgSpec, rng: np.random.Generator, count: int,
         ulps: int, rel_exp: int, focus: int = 0) -> np.ndarray:
    """``count`` values on both sides of the given points: half a few ULPs away
    (log-uniform up to ``ulps``), half a relative distance up to ``10**-rel_exp``.
    """
    info = spec.info
    pts = np.asarray(points if len(points) else [0.0], dtype=np.float64)

    def centres(n: int) -> np.ndarray:
        return np.full(n, pts[(focus - 1) % len(pts)]) if focus else pts[rng.integers(len(pts), size=n)]

    def signs(n: int) -> np.ndarray:
        return np.where(rng.random(n) < 0.5, -1.0, 1.0)

    # Each value is, at random, a whole number of ULP steps away or a relative distance away;
    # each kind is drawn only for the values that use it.
    by_ulps = rng.random(count) < 0.5
    stepped_count = int(np.count_nonzero(by_ulps))
    steps = log_uniform_integers(rng, ulps, stepped_count) * signs(stepped_count).astype(np.int64)
    stepped = step_ulps(centres(stepped_count).astype(info.numpy), steps, info)
    relative_count = count - stepped_count
    relative = log_uniform(rng, info.eps, max(10.0**-rel_exp, info.eps), relative_count)
    centre = centres(relative_count)
    # Around 0 "relative" means absolute: tiny-scaled offsets would be subnormals (ULP steps and
    # special values cover those), and arithmetic on subnormals is ~100x slower on x86.
    scaled = centre + signs(relative_count) * relative * np.where(centre == 0, 1.0, np.abs(centre))
    values = np.empty(count)
    values[by_ulps] = stepped
    values[~by_ulps] = scaled
    return fit(values, spec)


def expand(plan: Plan, specs: Sequence[ArgSpec], points: Sequence[Sequence[float]], size: int,
           boundary: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """Turn a plan into a batch: one ``[size, *shape]`` array per argument.

    ``boundary`` is the pool of examples found on either side of branch switches (one
    ``[P, *shape]`` array per argument); ``plan.boundary`` says how much of the batch uses it.
    """
    rng = np.random.default_rng(plan.seed)
    weights = plan.weights if sum(plan.weights) else (1, 0, 0, 0)
    # Region of each example, in proportion to the (small, integer) weights: a table lookup is
    # several times faster than rng.choice with probabilities.
    table = np.repeat(np.arange(len(REGIONS), dtype=np.int8), weights)
    regions = table[rng.integers(len(table), size=size)]
    batch = []
    for spec, arg_points in zip(specs, points):
        if not spec.differentiable:
            batch.append(_pass_through(spec, rng, size))
            continue
        if spec.is_complex:  # real and imaginary parts drawn independently from the component's regions
            parts = [_expand_real(plan, spec.component, arg_points, regions, rng, size) for _ in range(2)]
            batch.append((parts[0] + 1j * parts[1].astype(np.float64)).astype(spec.numpy_dtype).reshape(size, *spec.shape))
            continue
        values = _expand_real(plan, spec, arg_points, regions, rng, size).reshape(size, *spec.shape)
        if _square(spec):
            # Half of the special-value examples become structured matrices (identity, diagonal
            # with ties, rank-deficient, orthogonal, symmetric positive definite).
            rows = np.flatnonzero((regions == 0) & (rng.random(size) < 0.5))
            if rows.size:
                values[rows] = _structured_matrices(spec, rng, rows.size)
        batch.append(values)
    _joint_special_values(batch, specs, np.flatnonzero(regions == 0), rng)
    if boundary is not None and plan.boundary and len(boundary[0]):
        rows = np.flatnonzero(rng.random(size) < plan.boundary / 8)
        for arg, replacement in enumerate(around(boundary, specs, rng, rows.size, plan.ulps)):
            batch[arg][rows] = replacement
    return batch


JOINT_VALUES = (0.0, 1.0, -1.0, 0.5, 2.0, -0.5)


def _joint_special_values(batch: list[np.ndarray], specs: Sequence[ArgSpec], rows: np.ndarray,
                          rng: np.random.Generator) -> None:
    """Special values together: where a gradient breaks only when several elements are special at
    once (pow(x, y) at x = y = 0, igamma(a, x) at a = 1 and x = 0, a product with two zeros, ties)
    independent draws rarely meet. Of the special-value examples, a third get one common value in
    every real element of every argument (where each range allows it), and a third (with two or
    more arguments of one shape) repeat the first such argument's values in the others (x = y)."""
    real = [a for a, spec in enumerate(specs) if spec.differentiable and not spec.is_complex]
    if not rows.size or sum(specs[a].size for a in real) < 2:
        return
    kind = rng.integers(3, size=rows.size)
    common = rows[kind == 0]
    if common.size:
        allowed = [v for v in JOINT_VALUES if all(specs[a].low <= v <= specs[a].high for a in real)]
        if allowed:
            value = rng.choice(np.array(allowed), size=common.size)
            for a in real:
                shape = (common.size, *specs[a].shape)
                batch[a][common] = fit(np.broadcast_to(value.reshape(-1, *[1] * len(specs[a].shape)), shape), specs[a])
    equal = rows[kind == 1]
    first = real[0] if real else None
    for a in real[1:]:
        if equal.size and specs[a].shape == specs[first].shape:
            batch[a][equal] = fit(batch[first][equal].astype(np.float64), specs[a])


def around(pool: Sequence[np.ndarray], specs: Sequence[ArgSpec], rng: np.random.Generator, count: int,
           ulps: int = 64) -> list[np.ndarray]:
    """``count`` examples drawn from ``pool`` (whole examples, all arguments together, so a
    joint boundary such as x·y = 1 is kept), each float element left exactly as it is or moved
    log-uniformly up to min(``ulps``, 1024) units in the last place to either side."""
    picks = rng.integers(len(pool[0]), size=count)
    reach = min(max(ulps, 1), 1024)
    drawn = []
    for values, spec in zip(pool, specs):
        chosen = np.array(values[picks])
        if spec.differentiable and not spec.is_complex and chosen.size:
            flat = chosen.reshape(-1)
            steps = log_uniform_integers(rng, reach, flat.size)
            steps *= rng.choice([-1, 1], size=flat.size) * (rng.random(flat.size) < 0.5)
            chosen = fit(step_ulps(flat, steps, spec.info).astype(np.float64), spec).reshape(chosen.shape)
        drawn.append(chosen)
    return drawn


def _square(spec: ArgSpec) -> bool:
    return len(spec.shape) >= 2 and spec.shape[-1] == spec.shape[-2] and spec.shape[-1] > 0


MATRIX_KINDS = ("identity", "diagonal with ties", "rank-deficient", "orthogonal", "symmetric positive definite")


def _structured_matrices(spec: ArgSpec, rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` arrays of the spec's shape whose trailing square matrices are structured, scaled
    into the range (where a matrix gradient's special cases live: ties, singularity, symmetry)."""
    n = spec.shape[-1]
    batch_shape = (count, *spec.shape[:-2])
    kinds = rng.integers(len(MATRIX_KINDS), size=batch_shape)
    eye = np.broadcast_to(np.eye(n), (*batch_shape, n, n))
    gaussian = rng.standard_normal((*batch_shape, n, n))
    # A Householder reflection I - 2uuᵀ/(uᵀu): orthogonal, built without LAPACK (see "exact draws").
    u = gaussian[..., :, :1]
    orthogonal = np.eye(n) - 2 * _matmul(u, np.swapaxes(u, -1, -2)) / _matmul(np.swapaxes(u, -1, -2), u)
    diagonal = np.eye(n) * rng.choice([-1.0, 0.0, 1.0, 2.0], size=(*batch_shape, 1, n))[..., :1, :]  # repeated entries
    ties = np.eye(n) * np.repeat(rng.choice([0.5, 1.0, 2.0], size=(*batch_shape, 1, 1)), n, axis=-1)
    diagonal = np.where(rng.random((*batch_shape, 1, 1)) < 0.5, ties, diagonal)
    low_rank = _matmul(gaussian[..., :, :1], gaussian[..., :1, :])  # rank one
    spd = _matmul(gaussian, np.swapaxes(gaussian, -1, -2)) / n + np.eye(n) * 1e-3
    options = np.stack([eye, diagonal, low_rank, orthogonal, spd])  # [kinds, *batch, n, n]
    chosen = np.take_along_axis(options, kinds[None, ..., None, None], axis=0)[0]
    bound = min(abs(spec.low), abs(spec.high)) if spec.low < 0 < spec.high else max(abs(spec.low), abs(spec.high))
    peak = np.maximum(np.abs(chosen).max(axis=(-1, -2), keepdims=True), 1e-300)
    scaled = np.where(peak > bound, chosen * (bound / peak), chosen)
    return fit(scaled.reshape(count, -1), spec).reshape(count, *spec.shape)


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b summed in a fixed order with elementwise operations (BLAS kernels differ per CPU)."""
    total = a[..., :, :1] * b[..., :1, :]
    for k in range(1, a.shape[-1]):
        total = total + a[..., :, k : k + 1] * b[..., k : k + 1, :]
    return total


def _expand_real(plan: Plan, spec: ArgSpec, points: Sequence[float], regions: np.ndarray,
                 rng: np.random.Generator, size: int) -> np.ndarray:
    """``[size, n]`` values of a real spec, each example from its assigned region."""
    n = spec.size
    values = np.empty((size, n), dtype=np.float64)
    for region in range(len(REGIONS)):
        rows = np.flatnonzero(regions == region)
        if rows.size:
            values[rows] = _draw(region, plan, spec, points, rng, rows.size * n).reshape(rows.size, n)
    if plan.sparsity and n > 1:
        dense = np.isin(regions, (2, 3))[:, None]
        np.putmask(values, dense & (rng.random((size, n), dtype=np.float32) < plan.sparsity / 4), 0.0)
    return fit(values, spec)


def directions(rng: np.random.Generator, inputs: Sequence[np.ndarray],
               output_shapes: Sequence[tuple[int, ...]], output_dtypes: Sequence[np.dtype]) -> tuple[list, list]:
    """Random cotangents (output dtype) and tangents (float64, scaled by ``max(1, |x|)``)."""
    return cotangents(rng, inputs[0].shape[0], output_shapes, output_dtypes), tangents(rng, inputs)


def cotangents(rng: np.random.Generator, size: int, output_shapes: Sequence[tuple[int, ...]],
               output_dtypes: Sequence[np.dtype]) -> list[np.ndarray]:
    """Random cotangents ``v``, one ``[size, *shape]`` array per output, in its dtype: magnitudes
    uniform in [0.5, 1) with random signs (complex: both parts so). Bounded away from zero, so no
    element of ``v`` hides an error, and cheaper to draw than normals; every batch needs them."""
    drawn = []
    for shape, dtype in zip(output_shapes, output_dtypes):
        dtype = np.dtype(dtype)
        parts = 2 if dtype.kind == "c" else 1
        u = rng.random((parts, size, *shape))
        u = np.copysign(0.5, u - 0.5) + (u - 0.5)  # [0, 1) -> (-1, -0.5) ∪ [0.5, 1)
        values = u[0] + 1j * u[1] if parts == 2 else u[0]
        drawn.append(values.astype(dtype))
    return drawn


def tangents(rng: np.random.Generator, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Standard normal tangents ``w`` scaled by ``max(1, |x|)``, float64 (complex128 for complex
    arguments; zeros for integer and boolean ones, which are not perturbed).

    Scaling tangents with the input's magnitude makes one finite-difference step
    a relative perturbation for large inputs and an absolute one near zero.
    """
    return [
        _normal(rng, x.shape, complex_=x.dtype.kind == "c") * np.maximum(1.0, np.abs(x))
        if x.dtype.kind in "fc" or x.dtype.name == "bfloat16"
        else np.zeros(x.shape)
        for x in inputs
    ]


def _normal(rng: np.random.Generator, shape: tuple[int, ...], complex_: bool) -> np.ndarray:
    values = rng.standard_normal(shape)
    return values + 1j * rng.standard_normal(shape) if complex_ else values


def step_ulps(values: np.ndarray, steps: np.ndarray | int, info: DTypeInfo) -> np.ndarray:
    """Move each value ``steps`` representable numbers up (or down, if negative), exactly.

    Works on the bit patterns, so it is exact for every dtype including bfloat16:

    >>> from gradfuzz.dtypes import DTYPES
    >>> step_ulps(np.array([1.0], np.float32), 1, DTYPES["float32"])[0] == np.nextafter(np.float32(1), np.float32(2))
    np.True_
    """
    values = np.asarray(values, dtype=info.numpy)
    bits = values.view(info.bits).astype(np.uint64)
    width = 8 * info.bits.itemsize
    magnitude_mask = np.uint64((1 << (width - 1)) - 1)
    negative = (bits >> np.uint64(width - 1)).astype(bool)
    magnitude = (bits & magnitude_mask).astype(np.int64)
    # Map the sign-magnitude encoding onto a monotone integer line (-0 and +0 both to 0).
    ordered = np.where(negative, -magnitude, magnitude)
    limit = int(np.asarray(info.max, dtype=info.numpy).view(info.bits))
    moved = np.clip(ordered + np.asarray(steps, dtype=np.int64), -limit, limit)
    sign_bit = np.uint64(1 << (width - 1))
    back = np.where(moved < 0, np.abs(moved).astype(np.uint64) | sign_bit, moved.astype(np.uint64))
    back = back.astype(info.bits)
    return back.view(info.numpy)


def _pass_through(spec: ArgSpec, rng: np.random.Generator, size: int) -> np.ndarray:
    """Integer and boolean arguments: their range's ends, 0 and ±1 often, uniform otherwise."""
    shape = (size, *spec.shape)
    if spec.dtype == "bool":
        return rng.random(shape) < 0.5
    low, high = int(spec.low), int(spec.high)
    values = rng.integers(low, high, size=shape, endpoint=True)
    specials = np.array([v for v in (0, 1, -1, low, high) if low <= v <= high])
    pick = rng.random(shape) < 0.25
    values[pick] = rng.choice(specials, size=int(pick.sum()))
    return values.astype(spec.numpy_dtype)


def _draw(region: int, plan: Plan, spec: ArgSpec, points: Sequence[float], rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` float64 values from one region of `REGIONS`."""
    if region == 0:
        return rng.choice(special_values(spec).astype(np.float64), size=count)
    if region == 1:
        return near(points, spec, rng, count, plan.ulps, plan.rel_exp, plan.focus)
    if region == 2:
        return rng.uniform(spec.low, spec.high, size=count)
    return _log_scale(spec, rng, count)


# -- exact draws ------------------------------------------------------------------------------
# Generation uses only correctly rounded arithmetic (+, -, *, /, ldexp, integer ops): numpy's
# exp/log/expm1 and BLAS/LAPACK kernels are dispatched per CPU (AVX-512, AVX2, ...) and differ in
# the last bit, which would make one seed draw different inputs on different machines.


def log_uniform_integers(rng: np.random.Generator, high: int, count: int) -> np.ndarray:
    """``count`` integers in [0, high], log-uniform: k + 1 falls in each binade [2^b, 2^(b+1))
    of [1, high + 1] equally often, uniformly within it. Exact on every machine.

    >>> k = log_uniform_integers(np.random.default_rng(0), 1000, 10_000)
    >>> int(k.min()), int(k.max()), bool(np.mean(k < 32) > 0.4)
    (0, 1000, True)
    """
    top = int(high) + 1
    binade = rng.integers(0, top.bit_length(), size=count)
    low = np.left_shift(np.int64(1), binade)
    return rng.integers(low, np.minimum(2 * low, top + 1)) - 1


def log_uniform(rng: np.random.Generator, low: float, high: float, count: int) -> np.ndarray:
    """``count`` magnitudes in [low, high] (0 < low ≤ high), log-uniform at the granularity of
    binades: a uniform binary exponent, then a uniform mantissa in [1, 2). Exact on every machine.

    >>> m = log_uniform(np.random.default_rng(0), 1e-30, 1e3, 10_000)
    >>> bool(m.min() >= 1e-30 and m.max() <= 1e3 and np.mean(m < 1e-14) > 0.4)
    True
    """
    _, first = np.frexp(low)  # low = f·2^first with f in [0.5, 1)
    _, last = np.frexp(high)
    exponents = rng.integers(first - 1, last, size=count)  # [2^e, 2^(e+1)) binades meeting [low, high]
    return np.clip(np.ldexp(1.0 + rng.random(count), exponents), low, high)


def _log_scale(spec: ArgSpec, rng: np.random.Generator, count: int) -> np.ndarray:
    """Magnitudes spread evenly over the exponent range up to the spec's bound."""
    top = max(abs(spec.low), abs(spec.high))
    magnitudes = log_uniform(rng, spec.info.tiny, top, count)
    if spec.low >= 0:
        return magnitudes
    if spec.high <= 0:
        return -magnitudes
    return np.where(rng.random(count) < 0.5, -magnitudes, magnitudes)


def fit(values: np.ndarray, spec: ArgSpec) -> np.ndarray:
    """Clip into the range, then round to the dtype (clipping again after rounding)."""
    info = spec.info
    rounded = np.clip(values, spec.low, spec.high).astype(info.numpy)
    low, high = np.asarray(spec.low, info.numpy), np.asarray(spec.high, info.numpy)
    if float(low) < spec.low:
        low = step_ulps(low.reshape(1), 1, info)[0]
    if float(high) > spec.high:
        high = step_ulps(high.reshape(1), -1, info)[0]
    if low != 0 and high != 0:  # rounding may have crossed a bound: clip again, in place
        return np.clip(rounded, low, high, out=rounded)
    # np.clip with a ±0.0 bound would rewrite the sign of zeros drawn; keep it.
    return np.where(rounded < low, low, np.where(rounded > high, high, rounded)).astype(info.numpy)


__all__ = ["REGIONS", "Plan", "around", "cotangents", "directions", "expand", "fit", "near", "plans", "special_values",
           "step_ulps", "tangents"]
