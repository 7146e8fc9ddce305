"""Second looks at a finding, using the engine: which side of a boundary, and repeatability.

* `branch_boundary`: a custom gradient that is wrong at x but equals the reference
  derivative just across a nearby boundary (a point of interest) is using the other
  branch's formula: grad_fn switches at a different point than the forward. That is
  the `branch` category, with the boundary named.
* `boundary_candidates`: where to look — the switches of the branch signature along the failing
  element (found by bisection: curved and data-dependent boundaries), then the argument's
  points of interest. The checker (`relabel_branches`) and replay take the same look.
* `nondeterministic`: evaluating the same batch twice must give the same bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gradfuzz.boundaries import BranchSignature, axis_switches
from gradfuzz.categories import TENSORFLOW_GRADIENT, Category, gradient_label
from gradfuzz.engine import Evaluator
from gradfuzz.findings import Findings
from gradfuzz.options import EXECUTION_MODES
from gradfuzz.oracle import TOLERANCES
from gradfuzz.values import Batch, TargetRaised, describe_inputs, error_summary, numbers

ACROSS_ULPS = 64  # how far across a boundary the other side's derivative is read
MAX_BOUNDARIES = 4  # nearest points of interest tried


@dataclass(frozen=True)
class Boundary:
    point: float  # where the forward switches
    across: float  # the input just across it, where the reference matches the custom gradient
    derivative_across: float  # the reference gradient element there


def branch_boundary(evaluator: Evaluator, inputs: Sequence[np.ndarray], cotangents: Sequence[np.ndarray],
                    tangents: Sequence[np.ndarray], custom: np.ndarray, reference: float, argument: int, element: int,
                    points: Sequence[float]) -> Boundary | None:
    """The nearest boundary whose far side explains the custom value at x, if any: either the
    derivative just across it (a constant slope there) or the far side's derivative formula
    extrapolated to x. ``reference`` is the reference gradient element at x."""
    spec = evaluator.specs[argument]
    info, tol = spec.info, TOLERANCES[spec.dtype]
    x = float(np.asarray(inputs[argument]).reshape(-1)[element])
    wanted = float(np.asarray(custom).reshape(-1)[element])
    if not np.isfinite(wanted):
        return None
    def reference_at(value: float) -> float | None:
        if not spec.low <= value <= spec.high:
            return None
        return _reference_element(evaluator, inputs, cotangents, tangents, argument, element, value)

    for point in sorted(points, key=lambda p: abs(p - x))[:MAX_BOUNDARIES]:
        if point == x:
            continue
        toward_x = 1.0 if x > point else -1.0
        # At least a few smallest normals: from 0, a few ULPs would be subnormal and flush to zero.
        shift = max(ACROSS_ULPS * float(info.ulp(np.float64(point))), 4 * info.tiny)
        across = float(np.asarray(point - toward_x * shift, dtype=info.numpy))
        there, here = reference_at(across), reference_at(float(np.asarray(point + toward_x * shift, dtype=info.numpy)))
        if there is None or here is None or across == point:
            continue
        allowed = max(tol.floor_ulps * float(info.ulp(np.float64(max(abs(there), abs(wanted))))), tol.absolute_floor)
        if abs(there - here) > allowed and abs(wanted - there) <= allowed:
            return Boundary(point=point, across=across, derivative_across=there)  # the other side's constant slope
        # The other side's *formula* evaluated at x: extrapolate its derivative linearly from the
        # mirror images of x across the boundary (exact for linear and constant branches).
        distance = abs(x - point)
        near_mirror, far_mirror = reference_at(point - toward_x * distance), reference_at(point - toward_x * 2 * distance)
        if near_mirror is None or far_mirror is None:
            continue
        predicted = near_mirror + 2 * (near_mirror - far_mirror)
        # The other side's formula must explain (nearly all of) the error, not merely be close
        # to it: near zero every small value is "close".
        error = abs(wanted - reference)
        if abs(wanted - predicted) <= 0.01 * error and abs(predicted - reference) > 0.5 * error:
            return Boundary(point=point, across=point - toward_x * distance, derivative_across=near_mirror)
    return None


def boundary_candidates(evaluator: Evaluator, branches: BranchSignature | None, inputs: Sequence[np.ndarray],
                        argument: int, element: int, points: Sequence[float]) -> list[float]:
    """Boundaries worth trying for a failing element: none when the target decides nothing by branch;
    where the branch signature switches along it, when there is a signature; otherwise (it could not
    be traced) the argument's points of interest. (A point of interest
    where nothing switches is no boundary: trying it let a smooth function's far-side derivative
    "explain" an error by coincidence — a scale-invariant gradient such as x/‖x‖ has many matches.)"""
    if branches is not None and branches.branch_free:
        return []  # nothing in the forward or grad_fn switches: there is no boundary to blame
    if branches is not None and branches.available:
        try:
            return axis_switches(branches, inputs, evaluator.specs, argument, element)
        except Exception:  # a signature that cannot be evaluated here leaves the points of interest
            pass
    return list(points)


def branch_look(evaluator: Evaluator, branches: BranchSignature | None, points: Sequence[Sequence[float]], category,
                inputs: Sequence[np.ndarray], cotangents: Sequence[np.ndarray], tangents: Sequence[np.ndarray],
                custom: np.ndarray, reference_value: float, argument: int | None, element: int | None) -> Boundary | None:
    """The branch look, the one rule for the check and replay alike: for a failure a boundary may
    explain (its category's ``branch_candidate``), the boundary whose other side's derivative is the
    custom value; None when there is none (or the failure is not a candidate)."""
    if (not category.branch_candidate or argument is None or argument < 0 or argument >= len(evaluator.specs)
            or evaluator.specs[argument].is_complex):
        return None
    element = element or 0
    candidates = boundary_candidates(evaluator, branches, inputs, argument, element, points[argument])
    return branch_boundary(evaluator, inputs, cotangents, tangents, custom, reference_value, argument, element, candidates)


def relabel_branches(findings: Findings, evaluator: Evaluator, branches: BranchSignature | None) -> None:
    """Re-label failures whose custom value is the derivative across a nearby boundary as
    `branch`, naming the boundary, and merge the groups that thereby become one."""
    for signature, group in list(findings.groups.items()):
        finding = group.representative
        if not finding.category.branch_candidate or finding.argument is None:
            continue
        boundary = branch_look(evaluator, branches, findings.points, finding.category, finding.inputs, finding.cotangents,
                               finding.tangents, finding.custom[finding.argument], finding.reference_value,
                               finding.argument, finding.element)
        if boundary is None:
            continue
        element = finding.element or 0
        x = float(np.asarray(finding.inputs[finding.argument]).reshape(-1)[element])
        point, at, across = numbers(boundary.point, x, boundary.across)
        custom, here, there = numbers(finding.custom_value, finding.reference_value, boundary.derivative_across)
        which = f" of argument {finding.argument}" if len(finding.inputs) > 1 else ""
        findings.relabel(signature, Category.BRANCH, (
            f"The custom gradient uses the formula of the other side of a boundary. The forward switches at "
            f"{point}; at x = {at}{which} the custom gradient is {custom}, which is not the derivative there "
            f"({finding.reference_name}: {here}) but the one just across the boundary (at {across}: {there}). "
            f"grad_fn switches branches at a different point than the forward, somewhere between {point} and "
            f"{at}: compare their conditions."
        ))


def _reference_element(evaluator: Evaluator, inputs, cotangents, tangents, argument: int, element: int,
                       value: float) -> float | None:
    """The reference gradient's element when that input element is set to ``value``."""
    moved = [np.array(a, copy=True) for a in inputs]
    flat = moved[argument].reshape(-1)
    flat[element] = value
    moved[argument] = flat.reshape(np.shape(inputs[argument]))
    batch = Batch.of_example(moved, cotangents, tangents)
    try:
        evaluation = evaluator.evaluate(batch)
    except TargetRaised:
        return None
    if evaluation.reference is None:
        return None
    there = float(np.asarray(evaluation.reference[argument], dtype=np.float64).reshape(-1)[element])
    return there if np.isfinite(there) else None


MODES = EXECUTION_MODES  # (one list: gradfuzz.options)
EAGER_EXAMPLES = 32  # eager evaluation is slow: a sample is enough to see a mode difference


def mode_disagreements(evaluator: Evaluator, batch: Batch, modes: Sequence[str]) -> dict[str, tuple[np.ndarray, list]]:
    """Examples whose custom gradient in another execution mode differs from the compiled
    batch (``function``) by more than rounding: {mode: (indices, that mode's gradients)}.

    ``eager`` runs the target op by op on a sample; ``xla`` compiles the batch with XLA (a
    target XLA cannot compile is skipped, and the evaluator records why)."""
    from gradfuzz._tf import tf

    reference = evaluator.evaluate(batch).custom
    found: dict[str, tuple[np.ndarray, list]] = {}
    for mode in modes:
        if mode == "function":
            continue
        if mode == "eager":
            count = min(batch.size, EAGER_EXAMPLES)
            rows = []
            for i in range(count):
                xs = [tf.constant(x[i]) for x in batch.inputs]
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    tape.watch(xs)
                    ys = [y for y in tf.nest.flatten(evaluator.target.fn(*xs)) if y.dtype.is_floating or y.dtype.is_complex]
                grads = tape.gradient(ys, xs, output_gradients=[tf.constant(v[i]) for v in batch.cotangents])
                rows.append([np.zeros_like(x[i]) if g is None else g.numpy() for g, x in zip(grads, batch.inputs)])
            other = [np.stack([row[a] for row in rows]) for a in range(len(batch.inputs))]
            compared = [r[:count] for r in reference]
        elif mode == "xla":
            compiled = Evaluator(evaluator.target, evaluator.specs, evaluator.structure, jit=True)
            evaluation = compiled.evaluate(batch)
            if not compiled.jit:
                evaluator.stats.fallbacks["XLA mode"] = compiled.stats.fallbacks.get("XLA", "not available")
                continue
            other, compared = evaluation.custom, reference
        else:
            raise ValueError(f"unknown execution mode {mode!r}; choose from {', '.join(MODES)}")
        differs = np.zeros(len(compared[0]), dtype=bool)
        for a, spec in enumerate(evaluator.specs):
            if not spec.differentiable:
                continue
            tol = TOLERANCES[spec.dtype]
            wide = np.complex128 if spec.is_complex else np.float64
            mine = np.asarray(compared[a]).astype(wide).reshape(len(differs), -1)
            theirs = np.asarray(other[a]).astype(wide).reshape(len(differs), -1)
            with np.errstate(all="ignore"):
                allowed = np.maximum(tol.floor_ulps * spec.info.ulp(np.maximum(np.abs(mine), np.abs(theirs))), tol.absolute_floor)
                bad = ~((mine == theirs) | (np.isnan(mine) & np.isnan(theirs)) | (np.abs(mine - theirs) <= allowed))
            differs |= np.any(bad, axis=1)
        if differs.any():
            found[mode] = (np.flatnonzero(differs), other)
    return found


# Two evaluations of one input may differ in their last bits where a multithreaded reduction sums in
# another order: that is rounding, not nondeterminism (PyTorch's gradcheck has nondet_tol for it). Allowed:
# this many ULPs of the example's largest gradient element (a random op differs by the gradient's own size).
NONDETERMINISM_ULPS = 64


def nondeterministic(evaluator: Evaluator, batch: Batch) -> np.ndarray | None:
    """Indices of examples whose custom gradient differs between two evaluations of the same batch
    by more than rounding (`NONDETERMINISM_ULPS` of the example's largest gradient element; NaN
    against a number counts, NaN against NaN does not); None if the target raised."""
    try:
        first, second = evaluator.evaluate(batch), evaluator.evaluate(batch)
    except TargetRaised:
        return None
    differs = np.zeros(batch.size, dtype=bool)
    for a, b, spec in zip(first.custom, second.custom, evaluator.gradient_specs):
        wide = np.complex128 if np.iscomplexobj(a) else np.float64
        a64, b64 = (np.asarray(g).astype(wide).reshape(batch.size, -1) for g in (a, b))
        if a64.shape[1] == 0:
            continue
        with np.errstate(all="ignore"):
            magnitude = np.fmax(np.abs(a64), np.abs(b64))
            largest = np.max(np.where(np.isfinite(magnitude), magnitude, 0.0), axis=1, keepdims=True)
            info = spec.info if spec.differentiable else None
            allowed = NONDETERMINISM_ULPS * info.ulp(largest) if info is not None else 0.0
            same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64)) | (np.abs(a64 - b64) <= allowed)
        differs |= ~np.all(same, axis=1)
    return np.flatnonzero(differs)


# -- evidence in derivative terms ---------------------------------------------------------------

JACOBIAN_MAX_OUTPUTS = 1024  # output elements whose Jacobian row is evaluated (one batch row each)


@dataclass(frozen=True)
class JacobianEntry:
    """The exact entry ∂y[i]/∂x[j] behind a finding: what the custom gradient says, what the
    reference says, and by how much they differ (the headline numbers of a finding)."""

    output: str  # "y", "y[2, 1]", "output 1[3]"
    output_index: int  # its place among all output elements (outputs flattened and concatenated)
    wrt: str  # "x", "x[4]", "argument 1[0, 2]"
    custom: float
    reference: float
    reference_name: str
    abs_error: float
    rel_error: float
    ulp_error: float
    dtype: str
    column_agrees: bool  # the custom Jacobian column equals the reference's (then dy is mishandled)
    custom_gradient: bool = True  # False: a plain function, whose gradient is TensorFlow's own

    def sentence(self, where: str) -> str:
        entry = f"∂{self.output}/∂{self.wrt} at {where}"
        custom, reference = numbers(self.custom, self.reference)
        if self.reference == 0:  # relative errors and ULPs of an exact 0 measure only the smallest subnormal
            gradient = "the custom gradient" if self.custom_gradient else TENSORFLOW_GRADIENT
            text = f"{entry}: {self.reference_name} gives exactly 0; {gradient} gives {custom}."
        else:
            text = (f"{entry}: {gradient_label(self.custom_gradient)} {custom} vs {self.reference_name} {reference} "
                    f"(error {error_summary(self.abs_error, self.rel_error, self.ulp_error, self.dtype, self.reference)}).")
        if self.column_agrees:
            text += (" With dy = 1 on each output in turn the custom gradient is right: it goes wrong only for other "
                     "incoming gradients, so grad_fn ignores or mis-scales dy.")
        return text

    def evidence(self) -> dict[str, float | str]:
        return {"jacobian_entry": f"∂{self.output}/∂{self.wrt}", "jacobian_output_index": float(self.output_index),
                "jacobian_custom": self.custom,
                "jacobian_reference": self.reference, "jacobian_abs_error": self.abs_error,
                "jacobian_rel_error": self.rel_error, "jacobian_ulp_error": self.ulp_error}


def jacobian_entry(evaluator: Evaluator, inputs: Sequence[np.ndarray], argument: int, element: int) -> JacobianEntry | None:
    """Evaluate the Jacobian column ∂y/∂x[j] exactly, one output element at a time (one-hot cotangents,
    one batch), with custom and reference side by side, and return its worst entry. The reference is
    autodiff of the forward where there is one, else central differences along x[j]. None when
    the outputs are too many, the argument is not a real one, or the target raises."""
    from gradfuzz.oracle import differences

    specs, structure = evaluator.specs, evaluator.structure
    if not 0 <= argument < len(specs) or not specs[argument].differentiable or specs[argument].is_complex:
        return None
    sizes = [int(np.prod(shape, dtype=np.int64)) for shape in structure.output_shapes]
    count = sum(sizes)
    if count == 0 or count > JACOBIAN_MAX_OUTPUTS or any(np.dtype(d).kind == "c" for d in structure.output_dtypes):
        return None
    one_hot = np.eye(count)
    cotangents, start = [], 0
    for size, shape, dtype in zip(sizes, structure.output_shapes, structure.output_dtypes):
        cotangents.append(one_hot[:, start:start + size].reshape(count, *shape).astype(np.dtype(dtype)))
        start += size
    tangents = [np.zeros((count, *np.shape(x))) for x in inputs]
    tangents[argument].reshape(count, -1)[:, element] = 1.0
    batch = Batch([np.repeat(np.asarray(x)[None], count, axis=0) for x in inputs], cotangents, tangents)
    try:
        evaluation = evaluator.evaluate(batch)
    except TargetRaised:
        return None
    custom = np.asarray(evaluation.custom[argument], dtype=np.float64).reshape(count, -1)[:, element]
    if evaluation.reference is not None:
        reference = np.asarray(evaluation.reference[argument], dtype=np.float64).reshape(count, -1)[:, element]
        name = f"autodiff of the forward ({evaluation.reference_dtype})"
    else:
        reference = differences(evaluation.phi, evaluation.phi_scale, evaluation.fd_step, evaluation.fd_eps).central
        name = f"central differences ({evaluation.fd_dtype})"
    spec = specs[argument]
    info, tol = spec.info, TOLERANCES[spec.dtype]
    with np.errstate(all="ignore"):
        gap = np.where(custom == reference, 0.0, np.abs(custom - reference))
        scale = np.nanmax(np.abs(np.where(np.isfinite(reference), reference, 0.0))) if count else 0.0
        allowed = tol.floor_ulps * info.ulp(np.maximum(np.abs(reference), scale * 1e-3)) + tol.absolute_floor
        badness = np.where(np.isnan(gap), np.inf, gap / allowed)
    worst = int(np.argmax(badness))
    c, r, g = float(custom[worst]), float(reference[worst]), float(gap[worst])
    with np.errstate(all="ignore"):
        rel = g / max(abs(r), float(info.tiny))
        ulps = g / float(info.ulp(np.float64(r)))
    return JacobianEntry(
        output=_output_label(worst, sizes, structure.output_shapes), output_index=worst, wrt=_element_label(argument, element, spec.shape),
        custom=c, reference=r, reference_name=name, abs_error=g, rel_error=rel, ulp_error=ulps, dtype=spec.dtype,
        column_agrees=bool(np.all(badness <= 1.0)), custom_gradient=evaluator.target.has_custom_gradient,
    )


def _output_label(flat: int, sizes: Sequence[int], shapes: Sequence[tuple[int, ...]]) -> str:
    for number, (size, shape) in enumerate(zip(sizes, shapes)):
        if flat < size:
            base = "y" if len(sizes) == 1 else f"output {number}"
            return base + (f"[{', '.join(str(int(i)) for i in np.unravel_index(flat, shape))}]" if shape else "")
        flat -= size
    return "y"


def _element_label(argument: int, element: int, shape: tuple[int, ...]) -> str:
    base = "x" if argument == 0 else f"argument {argument}"
    return base + (f"[{', '.join(str(int(i)) for i in np.unravel_index(element, shape))}]" if shape else "")


def describe_in_derivatives(findings: Findings, evaluator: Evaluator) -> None:
    """Lead each value finding with the exact Jacobian entry at its worst element (`jacobian_entry`):
    the headline numbers become derivatives a person thinks in, and the random projections the run
    judged move to the evidence (``vjp_custom``, ``vjp_reference``)."""
    for group in findings.groups.values():
        for finding in group.examples():  # every stored example: triage may pick any as the simplest
            if not finding.category.derivative or finding.argument is None \
                    or finding.argument < 0 or finding.argument >= len(evaluator.specs):
                continue
            entry = jacobian_entry(evaluator, finding.inputs, finding.argument, finding.element or 0)
            if entry is None:
                continue
            apply_jacobian_entry(finding, entry)


def apply_jacobian_entry(finding, entry: JacobianEntry) -> None:
    """Put ``entry`` first in ``finding``'s numbers and explanation (the store, replay and reports read these)."""
    finding.evidence = {**finding.evidence, "vjp_custom": finding.custom_value, "vjp_reference": finding.reference_value,
                        **entry.evidence()}
    finding.custom_value, finding.reference_value = entry.custom, entry.reference
    finding.abs_error, finding.rel_error, finding.ulp_error = entry.abs_error, entry.rel_error, entry.ulp_error
    finding.reference_name = entry.reference_name
    head, _, rest = finding.explanation.partition(" At ")
    where = describe_inputs(finding.inputs)
    finding.explanation = f"{head} {entry.sentence(where)} In the check's own probe (random dy and direction): At {rest}" \
        if rest else f"{head} {entry.sentence(where)}"
