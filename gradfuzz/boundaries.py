"""Where branches switch: points of interest from the graph, and boundary bisection.

**Graph constants.** Tracing the custom VJP (forward and grad_fn together) and
collecting the floating-point constants of the graph — including nested
``If``/``While`` bodies, which live in the graph's function library — finds
thresholds such as the ``0`` in ``x > 0`` or the ``0.001`` step of a
finite-difference gradient. Inputs near these values are where branches switch
and where approximations show.

**Branch signatures and bisection.** A constant says where a branch switches only
when the comparison sees the input directly. For ``x * y > 1`` or
``sin(x) > 0.3`` the switch lies elsewhere in input space. `BranchSignature`
records, per example, which side of every comparison, select, cond predicate and
kink (relu, abs, sign, maximum/minimum, clip, floor/ceil/round) the forward *and*
the custom gradient take; `bisect` walks the segment between two examples with
different signatures down to adjacent representable inputs on either side of the
switch. Those pairs become a pool that plans draw from (`Plan.boundary`). This
also maps constants back to input space wherever the path from the input is
monotone along the segment, without inverting anything symbolically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from gradfuzz._tf import tf, trial_trace
from gradfuzz.plans import fit, step_ulps
from gradfuzz.spec import ArgSpec
from gradfuzz.target import Target

MAX_POINTS = 32
_ALWAYS = (0.0, 1.0, -1.0)
# Where an op is singular, ends its domain or switches, though the graph holds no such constant:
# poles of tan and of the gamma family (0 and the negative integers), the half-integers where
# round/rint switch and the integers where floor/ceil jump (a few; the branch-signature bisection
# finds the others), the ends of acos/asin/atanh/acosh/log1p/igamma/betainc's domains, zeta's pole.
# (0 and ±1, the ends of log, sqrt, pow's base and every denominator, are always points.)
_OP_POINTS = {
    "Tan": (np.pi / 2, -np.pi / 2, 3 * np.pi / 2),
    "Round": (0.5, -0.5, 1.5, 2.5), "Rint": (0.5, -0.5, 1.5, 2.5),
    "Floor": (2.0, -2.0, 3.0), "Ceil": (2.0, -2.0, 3.0),
    "Acos": (1.0, -1.0), "Asin": (1.0, -1.0), "Atanh": (1.0, -1.0), "Acosh": (1.0,), "Log1p": (-1.0,),
    "Lgamma": (0.0, -1.0, -2.0, -3.0), "Digamma": (0.0, -1.0, -2.0, -3.0), "Polygamma": (0.0, -1.0, -2.0),
    "Igamma": (0.0,), "Igammac": (0.0,), "Betainc": (0.0, 1.0), "Zeta": (1.0,),
}


def graph_constants(target: Target, specs: Sequence[ArgSpec]) -> list[float]:
    """Scalar float constants in the traced custom VJP, most common first."""

    def vjp(*xs):
        with tf.GradientTape() as tape:
            tape.watch(xs)
            ys = [y for y in tf.nest.flatten(target.fn(*xs)) if getattr(y, "dtype", tf.int32).is_floating or getattr(y, "dtype", tf.int32).is_complex]
        return tape.gradient(ys, xs)

    signature = [tf.TensorSpec(s.shape, s.numpy_dtype) for s in specs]
    try:
        with trial_trace():
            graph_def = tf.function(vjp).get_concrete_function(*signature).graph.as_graph_def()
    except Exception:
        return []  # the probe reports why the target cannot be traced
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes.extend(function.node_def)
    counts: dict[float, int] = {}
    for node in nodes:
        for value in _OP_POINTS.get(node.op, ()):  # kinks and poles no constant names
            counts[value] = counts.get(value, 0) + 1
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


# -- branch signatures -------------------------------------------------------------------

_COMPARISONS = {"Greater", "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual"}
_SIGN_OF_INPUT = {"Relu", "Relu6", "LeakyRelu", "Elu", "Selu", "Abs", "Sign"}
_ROUNDING = {"Floor", "Ceil", "Round", "Rint"}


def _branch_bits(op) -> list:
    """The tensors that say which side of a branch ``op`` is on (empty: not a branching op)."""
    if op.type in _COMPARISONS:
        return [op.outputs[0]]
    if op.type in ("Select", "SelectV2"):
        return [op.inputs[0]]
    if op.type in ("If", "StatelessIf"):
        return [op.inputs[0]]
    if op.type in _SIGN_OF_INPUT:
        x = op.inputs[0]
        bits = [x > 0, x < 0]
        return bits + ([x < 6] if op.type == "Relu6" else [])
    if op.type in ("Maximum", "Minimum"):
        return [op.inputs[0] > op.inputs[1], op.inputs[0] < op.inputs[1]]
    if op.type == "ClipByValue":
        return [op.inputs[0] < op.inputs[1], op.inputs[0] > op.inputs[2]]
    if op.type in _ROUNDING:
        return [op.outputs[0]]
    return []


class BranchSignature:
    """Per example, a float64 vector: the side of every branch the forward and grad_fn take.

    Built by tracing the custom VJP once per example inside ``vectorized_map`` and
    returning, as extra outputs, the branch-deciding tensors of the ops that trace
    created. Comparisons inside ``tf.cond``/``tf.while_loop`` bodies are not seen
    (their predicates are). ``available`` is False when the target has no branches
    (or the signature cannot be traced), and then bisection is skipped.
    """

    def __init__(self, target: Target, specs: Sequence[ArgSpec], output_dtypes: Sequence[str],
                 output_shapes: Sequence[Sequence[int]]):
        self.specs = tuple(specs)
        self._function = None
        self.branch_free = False  # traced, and neither the forward nor grad_fn decides anything by branch
        if any(s.is_complex for s in specs) or not any(s.differentiable for s in specs):
            return
        ones = [(tf.as_dtype(d), tuple(shape)) for d, shape in zip(output_dtypes, output_shapes)]
        empty = [False]

        def per_example(xs):
            graph = tf.compat.v1.get_default_graph()
            before = len(graph.get_operations())
            floats = [x for x, spec in zip(xs, specs) if spec.differentiable]
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(floats)
                ys = [y for y in tf.nest.flatten(target.fn(*xs))
                      if getattr(y, "dtype", tf.int32).is_floating or getattr(y, "dtype", tf.int32).is_complex]
            tape.gradient(ys, floats, output_gradients=[tf.ones(shape, dtype) for dtype, shape in ones][:len(ys)])
            bits = []
            for op in graph.get_operations()[before:]:
                for tensor in _branch_bits(op):
                    bits.append(tf.reshape(tf.cast(tensor, tf.float64), [-1]))
            if not bits:
                empty[0] = True
                return tf.zeros([1], tf.float64)
            return tf.concat(bits, 0)

        signature = [tf.TensorSpec([None, *s.shape], s.numpy_dtype) for s in specs]
        for batched in (lambda xs: tf.vectorized_map(per_example, xs, fallback_to_while_loop=True),
                        lambda xs: tf.map_fn(per_example, xs, fn_output_signature=tf.TensorSpec([None], tf.float64))):
            try:
                function = tf.function(batched, input_signature=[signature])
                with trial_trace():
                    function.get_concrete_function()
            except Exception:
                continue
            if not empty[0]:
                self._function = function
            self.branch_free = empty[0]
            return

    @property
    def available(self) -> bool:
        return self._function is not None

    def __call__(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """``[B, K]`` signatures; NaN sides (a NaN input) compare equal to each other."""
        values = self._function([tf.constant(x) for x in inputs]).numpy()
        return np.nan_to_num(values, nan=-7.0)


# -- bisection (pure numpy) ------------------------------------------------------------------


def differing_pairs(signatures: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """Up to ``count`` index pairs ``[P, 2]`` of examples whose signatures differ, each pair
    across a different bit where possible (so one batch yields several distinct switches)."""
    if len(signatures) < 2:
        return np.zeros((0, 2), np.int64)
    varying = np.flatnonzero((signatures != signatures[:1]).any(axis=0))
    pairs = []
    for bit in rng.permutation(varying)[:count]:
        values = signatures[:, bit]
        i = rng.integers(len(values))
        others = np.flatnonzero(values != values[i])
        pairs.append((i, rng.choice(others)))
    while 0 < len(pairs) < count and varying.size:
        i = rng.integers(len(signatures))
        others = np.flatnonzero((signatures != signatures[i]).any(axis=1))
        if others.size:
            pairs.append((i, rng.choice(others)))
        else:
            break
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def bisect(start: Sequence[np.ndarray], end: Sequence[np.ndarray], specs: Sequence[ArgSpec],
           branches: Callable[[Sequence[np.ndarray]], np.ndarray], steps: int = 64) -> list[np.ndarray]:
    """Walk each segment ``start[k] → end[k]`` (batched over k) to the first switch of its branch signature.

    Returns ``2P`` examples per argument: the last point with ``start``'s branch signature, then the
    first point past the switch — adjacent representable inputs when the switch is sharp.
    Integer and boolean arguments stay at ``start``'s values.
    """
    def at(t: np.ndarray) -> list[np.ndarray]:
        points = []
        for a, b, spec in zip(start, end, specs):
            if not spec.differentiable:
                points.append(a)
                continue
            shape = (-1,) + (1,) * (a.ndim - 1)
            wide = a.astype(np.float64) + t.reshape(shape) * (b.astype(np.float64) - a.astype(np.float64))
            points.append(fit_rows(wide, spec))
        return points

    pairs = len(start[0])
    lo, hi = np.zeros(pairs), np.ones(pairs)
    reference = branches(at(lo))
    for _ in range(steps):
        middle = (lo + hi) / 2
        same = (branches(at(middle)) == reference).all(axis=1)
        lo, hi = np.where(same, middle, lo), np.where(same, hi, middle)
        below, above = at(lo), at(hi)
        if all(_within_one_ulp(x, y, spec) for x, y, spec in zip(below, above, specs) if spec.differentiable):
            break
    return [np.concatenate([x, y]) for x, y in zip(at(lo), at(hi))]


def axis_switches(branches: Callable[[Sequence[np.ndarray]], np.ndarray], inputs: Sequence[np.ndarray],
                  specs: Sequence[ArgSpec], argument: int, element: int) -> list[float]:
    """Where the branch signature changes when only one element moves, on each side of it.

    From the element's value x, distances growing by powers of two (one batched call) find the
    first change on each side, then `bisect` narrows it to adjacent floats. Returns the values
    of the element just past each switch — the boundaries a diagnosis can name even where no
    graph constant lies (x·y > 1 seen along x is a switch at 1/y).
    """
    spec = specs[argument]
    if not spec.differentiable or spec.is_complex:
        return []
    flat = np.asarray(inputs[argument]).reshape(-1)
    x = float(flat[element])
    base = branches([np.asarray(a)[None] for a in inputs])[0]
    start = max(abs(x), 1.0) * 2.0**-40
    found = []
    for direction in (-1.0, 1.0):
        candidates = np.clip(x + direction * start * 2.0 ** np.arange(64), spec.low, spec.high)
        rows = [np.repeat(np.asarray(a)[None], len(candidates), 0) for a in inputs]
        moved = rows[argument].reshape(len(candidates), -1)
        moved[:, element] = candidates
        rows[argument] = fit_rows(moved.reshape(rows[argument].shape), spec)
        differs = np.flatnonzero((branches(rows) != base).any(axis=1))
        if not differs.size:
            continue
        k = int(differs[0])
        before = [np.asarray(a)[None] for a in inputs] if k == 0 else [r[k - 1:k] for r in rows]
        after = [r[k:k + 1] for r in rows]
        ends = bisect(before, after, specs, branches)
        found.append(float(np.asarray(ends[argument][1]).reshape(-1)[element]))
    return found


def fit_rows(values: np.ndarray, spec: ArgSpec) -> np.ndarray:
    """`gradfuzz.strategies.fit` (clip, round to the dtype) for a batch ``[B, *shape]``."""
    return fit(np.asarray(values, dtype=np.float64).reshape(len(values), -1), spec).reshape(np.shape(values))


def _within_one_ulp(x: np.ndarray, y: np.ndarray, spec: ArgSpec) -> bool:
    info = spec.info
    flat_x, flat_y = x.reshape(-1).astype(info.numpy), y.reshape(-1).astype(info.numpy)
    up, down = step_ulps(flat_x, 1, info), step_ulps(flat_x, -1, info)
    return bool(np.all((flat_y == flat_x) | (flat_y == up) | (flat_y == down)))
