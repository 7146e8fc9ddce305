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
from gradfuzz.engine import Evaluator
from gradfuzz.findings import Findings
from gradfuzz.oracle import TOLERANCES
from gradfuzz.values import Batch, TargetRaised

BRANCH_CANDIDATES = ("mismatch", "approximation", "branch")  # categories a boundary may explain
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


def relabel_branches(findings: Findings, evaluator: Evaluator, branches: BranchSignature | None) -> None:
    """Re-label failures whose custom value is the derivative across a nearby boundary as
    `branch`, naming the boundary, and merge the groups that thereby become one."""
    for signature, group in list(findings.groups.items()):
        finding = group.representative
        if (finding.kind != "failure" or finding.category not in BRANCH_CANDIDATES or finding.argument is None
                or finding.argument >= len(evaluator.specs) or evaluator.specs[finding.argument].is_complex):
            continue
        element = finding.element or 0
        candidates = boundary_candidates(evaluator, branches, finding.inputs, finding.argument, element,
                                         findings.points[finding.argument])
        boundary = branch_boundary(evaluator, finding.inputs, finding.cotangents, finding.tangents,
                                   finding.custom[finding.argument], finding.reference_value, finding.argument,
                                   element, candidates)
        if boundary is None:
            continue
        x = float(np.asarray(finding.inputs[finding.argument]).reshape(-1)[element])
        findings.relabel(signature, "branch", (
            f"The custom gradient uses the formula of the other side of a boundary. The forward switches at "
            f"{boundary.point:.9g}; at x = {x!r} (argument {finding.argument}) the custom gradient "
            f"{finding.custom_value:.9g} is not the derivative there ({finding.reference_name}: "
            f"{finding.reference_value:.9g}) but the one just across the boundary (at {boundary.across!r}: "
            f"{boundary.derivative_across:.9g}). grad_fn switches branches at a different point than the "
            f"forward, somewhere between {boundary.point:.9g} and {x!r}: compare their conditions."
        ))


def _reference_element(evaluator: Evaluator, inputs, cotangents, tangents, argument: int, element: int,
                       value: float) -> float | None:
    """The reference gradient's element when that input element is set to ``value``."""
    moved = [np.array(a, copy=True) for a in inputs]
    flat = moved[argument].reshape(-1)
    flat[element] = value
    moved[argument] = flat.reshape(np.shape(inputs[argument]))
    batch = Batch([m[None] for m in moved], [np.asarray(v)[None] for v in cotangents],
                  [np.asarray(w, dtype=np.float64)[None] for w in tangents])
    try:
        evaluation = evaluator.evaluate(batch)
    except TargetRaised:
        return None
    if evaluation.reference is None:
        return None
    there = float(np.asarray(evaluation.reference[argument], dtype=np.float64).reshape(-1)[element])
    return there if np.isfinite(there) else None


MODES = ("eager", "function", "xla")
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


def nondeterministic(evaluator: Evaluator, batch: Batch) -> np.ndarray | None:
    """Indices of examples whose custom gradient differs bitwise between two evaluations
    of the same batch (None if the target raised)."""
    try:
        first, second = evaluator.evaluate(batch), evaluator.evaluate(batch)
    except TargetRaised:
        return None
    differs = np.zeros(batch.size, dtype=bool)
    for a, b in zip(first.custom, second.custom):
        a8 = np.ascontiguousarray(a).reshape(batch.size, -1).view(np.uint8)
        b8 = np.ascontiguousarray(b).reshape(batch.size, -1).view(np.uint8)
        differs |= np.any(a8 != b8, axis=1)
    return np.flatnonzero(differs)
