"""What a batch aims at: the `Plan` Hypothesis draws, and the exact facts its expansion uses.

Hypothesis draws a small `Plan` — which region of input space to aim at, how far from a
point of interest, a seed — and `gradfuzz.expansion` turns it into a whole batch in
TensorFlow, on the device that evaluates it. Drawing every element through Hypothesis would
be far too slow for batches of thousands; drawing the plan keeps Hypothesis in charge of
exploration (``target()``) and of shrinking: a shrunk plan aims at special values and exact
points of interest, which yields simple inputs.

This module is the description (no TensorFlow): the plan, its strategy, the special values
of a spec, and exact numpy helpers (ULP steps, fitting into a range) that shrinking, the
boundary bisection and the oracle's neighbours use on single examples.
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


def is_square(spec: ArgSpec) -> bool:
    return len(spec.shape) >= 2 and spec.shape[-1] == spec.shape[-2] and spec.shape[-1] > 0


JOINT_VALUES = (0.0, 1.0, -1.0, 0.5, 2.0, -0.5)  # values special examples share across elements
MATRIX_KINDS = ("identity", "diagonal with ties", "rank-deficient", "orthogonal", "symmetric positive definite")


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


# -- exact helpers ------------------------------------------------------------------------------
# Generation uses only correctly rounded arithmetic (+, -, *, /, ldexp, integer ops): numpy's
# exp/log/expm1 and BLAS/LAPACK kernels are dispatched per CPU (AVX-512, AVX2, ...) and differ in
# the last bit, which would make one seed draw different inputs on different machines.


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
