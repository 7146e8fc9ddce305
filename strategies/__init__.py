"""Hypothesis strategies for gradient fuzzing (installed as ``gradfuzz.strategies``).

Hypothesis draws a small `Plan` (`gradfuzz.plans`): which region of input space a batch aims
at, how far from a point of interest, a seed. `expand` turns it into a whole batch in
TensorFlow (`gradfuzz.expansion`, the one implementation the fuzzer's compiled screen uses
too). `tensors` is the same generation for your own ``@given`` tests.

>>> from gradfuzz.spec import parse_spec
>>> spec = parse_spec("float32[]@-10..10")
>>> batch = expand(Plan(seed=1, weights=(0, 1, 0, 0)), [spec], [[0.0, 1.0]], size=4)
>>> batch[0].dtype, batch[0].shape
(dtype('float32'), (4,))

Importing this module does not import TensorFlow; expanding a plan does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hypothesis import strategies as st

from gradfuzz.plans import DEFAULT_POINTS, REGIONS, SIMPLE_VALUES, Plan, fit, plans, special_values, step_ulps, tangents
from gradfuzz.spec import ArgSpec


def expand(plan: Plan, specs: Sequence[ArgSpec], points: Sequence[Sequence[float]], size: int,
           boundary: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """Turn a plan into a batch: one ``[size, *shape]`` array per argument.

    ``boundary`` is the pool of examples found on either side of branch switches (one
    ``[P, *shape]`` array per argument); ``plan.boundary`` says how much of the batch uses it.
    """
    from gradfuzz.expansion import expand as expand_in_tensorflow

    return expand_in_tensorflow(plan, specs, points, size, boundary)


def tensors(spec: str | ArgSpec, points: Sequence[float] = DEFAULT_POINTS) -> st.SearchStrategy[np.ndarray]:
    """Inputs for one argument, drawn the way a gradfuzz run draws them: a `Plan` (special values,
    ULP neighbourhoods of ``points``, log-scale and uniform values, sparsity) expanded to one array
    of the spec's dtype and shape. Shrinks towards special values and exact points of interest.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=20)
    ... @given(tensors("float32[3]@-1..1"))
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


__all__ = ["REGIONS", "Plan", "expand", "fit", "plans", "special_values", "step_ulps", "tangents", "tensors"]
