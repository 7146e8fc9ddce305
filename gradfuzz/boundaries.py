"""Points of interest read off the target's graph.

Tracing the custom VJP (forward and grad_fn together) and collecting the
floating-point constants of the graph — including nested ``If``/``While``
bodies, which live in the graph's function library — finds thresholds such
as the ``0`` in ``x > 0`` or the ``0.001`` step of a finite-difference
gradient. Inputs near these values are where branches switch and where
approximations show.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gradfuzz._tf import tf
from gradfuzz.spec import ArgSpec
from gradfuzz.target import Target

MAX_POINTS = 32
_ALWAYS = (0.0, 1.0, -1.0)


def graph_constants(target: Target, specs: Sequence[ArgSpec]) -> list[float]:
    """Scalar float constants in the traced custom VJP, most common first."""

    def vjp(*xs):
        with tf.GradientTape() as tape:
            tape.watch(xs)
            ys = [y for y in tf.nest.flatten(target.fn(*xs)) if getattr(y, "dtype", tf.int32).is_floating or getattr(y, "dtype", tf.int32).is_complex]
        return tape.gradient(ys, xs)

    signature = [tf.TensorSpec(s.shape, s.numpy_dtype) for s in specs]
    try:
        graph_def = tf.function(vjp).get_concrete_function(*signature).graph.as_graph_def()
    except Exception:
        return []  # the probe reports why the target cannot be traced
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes.extend(function.node_def)
    counts: dict[float, int] = {}
    for node in nodes:
        if node.op != "Const":
            continue
        tensor = node.attr["value"].tensor
        if not tf.as_dtype(tensor.dtype).is_floating:
            continue
        values = tf.make_ndarray(tensor).astype(np.float64).ravel()
        if values.size > 16:
            continue
        for value in values:
            if np.isfinite(value):
                counts[float(value)] = counts.get(float(value), 0) + 1
    return sorted(counts, key=lambda v: -counts[v])


def points_of_interest(constants: Sequence[float], spec: ArgSpec) -> list[float]:
    """Candidate boundary points for one argument: graph constants and their
    negatives (thresholds are often symmetric), plus 0 and ±1, inside the range."""
    points: list[float] = []
    for value in [*_ALWAYS, *constants, *(-c for c in constants)]:
        if spec.low <= value <= spec.high and value not in points:
            points.append(value)
    return points[:MAX_POINTS]


def points_for(target: Target, specs: Sequence[ArgSpec]) -> list[list[float]]:
    """Points of interest per argument (graph constants, their negatives, 0 and ±1)."""
    constants = graph_constants(target, specs)
    return [points_of_interest(constants, spec) for spec in specs]
