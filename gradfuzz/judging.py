"""Judging a batch: the oracle's verdicts, then a second look a few ULPs to either side of the
examples that fail (a custom gradient at a kink may legitimately differ from autodiff).

Used by the checker, replay and shrinking alike, so all three take the same look.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from gradfuzz.categories import Category
from gradfuzz.oracle import (
    CATEGORY_CODE,
    FAILURE,
    NOTE,
    GradientScale,
    Judgement,
    gradient_of_a_piece,
    judge,
    judge_plain_rounding,
    judge_precision,
    judge_second_order,
    jumps_along,
    one_kink_explains,
)
from gradfuzz.spec import ArgSpec
from gradfuzz.values import FINE_STEP, Batch, Evaluation, OutOfMemory, TargetRaised, select_evaluation

if TYPE_CHECKING:
    from gradfuzz.boundaries import BranchSignature
    from gradfuzz.engine import Evaluator
    from gradfuzz.target import Target


def as_surrogate(judgement: Judgement) -> Judgement:
    """A declared surrogate's value disagreements become `surrogate` notes."""
    # What a declared surrogate may differ in (the category's rules): the values, not the contract
    # (shape, dtype, None), finiteness or determinism.
    differs = (judgement.outcome == FAILURE) & np.isin(judgement.category, _codes(lambda c: c.surrogate_may_differ))
    judgement.outcome[differs] = NOTE
    judgement.category[differs] = CATEGORY_CODE[Category.SURROGATE]
    return judgement


def judge_batch(evaluator: Evaluator, evaluation: Evaluation, target: Target, points: Sequence[Sequence[float]],
                scale: GradientScale | None = None) -> Judgement:
    """`_judge_batch`, then precision losses told from wrong formulas (`diagnose_precision`), and a
    declared surrogate's value disagreements turned into notes."""
    judgement = _judge_batch(evaluator, evaluation, target, points, scale)
    if target.has_custom_gradient and not target.surrogate:
        diagnose_precision(evaluator, evaluation, judgement, target.precision_digits)
    elif not target.has_custom_gradient:
        diagnose_plain_rounding(evaluator, evaluation, judgement)
    return as_surrogate(judgement) if target.surrogate else judgement


def _codes(rule) -> list[int]:
    """The codes of the categories for which ``rule(category)`` holds."""
    return [code for category, code in CATEGORY_CODE.items() if rule(category)]


# Wrong values a precision loss may explain instead (`diagnose_precision`).
VALUE_FAILURES = _codes(lambda c: c.side_effect and c is not Category.PRECISION)


def diagnose_precision(evaluator: Evaluator, evaluation: Evaluation, judgement: Judgement, digits: float) -> None:
    """Run grad_fn again at float64 on the examples with wrong values: where its error vanishes
    there, the formula is right and loses precision at the argument's dtype (`judge_precision`)."""
    rows = np.flatnonzero((judgement.outcome == FAILURE) & np.isin(judgement.category, VALUE_FAILURES))
    if not rows.size or evaluation.reference is None:
        return
    # Also one ULP (of the argument's dtype) to either side: at float64 a comparison with a constant
    # can flip (x > 1e-3 where x is float32(1e-3)), which is a branch, not a precision loss; then
    # grad_fn at float64 jumps within those ULPs instead of varying smoothly.
    subset = evaluation.batch.select(rows)
    shifted = [subset.inputs, *([_next_ulp(x, spec, side) for x, spec in zip(subset.inputs, evaluator.specs)]
                                for side in (-np.inf, np.inf))]
    wide = evaluator.custom_at_float64(Batch([np.concatenate(parts) for parts in zip(*shifted)],
                                             [np.concatenate([v] * 3) for v in subset.cotangents], subset.tangents))
    if wide is None:
        return
    at, below, above = ([g[k * rows.size:(k + 1) * rows.size] for g in wide] for k in range(3))
    judge_precision(judgement, rows, [np.asarray(g)[rows] for g in evaluation.custom], at,
                    [np.asarray(g)[rows] for g in evaluation.reference], evaluator.gradient_specs, digits,
                    neighbours=(below, above))


def diagnose_plain_rounding(evaluator: Evaluator, evaluation: Evaluation, judgement: Judgement) -> None:
    """A plain function's wrong values, computed again at float64 (`judge_plain_rounding`)."""
    rows = np.flatnonzero((judgement.outcome == FAILURE) & np.isin(judgement.category, VALUE_FAILURES))
    differentiable = [spec for spec in evaluator.specs if spec.differentiable]
    if not rows.size or any(spec.is_complex for spec in differentiable) or all(spec.info.mantissa_bits >= 52 for spec in differentiable):
        return  # at float64 there is nothing wider to ask (complex arguments: not compared this way)
    subset = evaluation.batch.select(rows)
    wide = evaluator.custom_at_float64(subset)
    if wide is None:
        return
    wide_ip = np.zeros(rows.size)
    for g, w, spec in zip(wide, subset.tangents, evaluator.specs):
        if spec.differentiable and not spec.is_complex and np.size(g) == np.size(w):
            wide_ip += np.sum(np.asarray(g, np.float64).reshape(rows.size, -1) * np.asarray(w, np.float64).reshape(rows.size, -1), axis=1)
    judge_plain_rounding(judgement, rows, wide_ip)


def _next_ulp(x: np.ndarray, spec, toward: float) -> np.ndarray:
    """Each element one ULP of its own dtype toward ``toward`` (integer and boolean ones unchanged)."""
    if not spec.differentiable or spec.is_complex:
        return x
    return np.nextafter(x, np.asarray(toward, dtype=x.dtype))


def _judge_batch(evaluator: Evaluator, evaluation: Evaluation, target: Target, points: Sequence[Sequence[float]],
                 scale: GradientScale | None = None) -> Judgement:
    """Judge a batch; where it fails, look a few ULPs to either side before calling it a bug
    (a custom gradient at a kink may legitimately differ from autodiff). ``scale`` is the
    gradient scale of the batch the examples were picked from (see `judge`)."""
    floor = user_floor(evaluation, target)
    judgement = judge(evaluation, evaluator.gradient_specs, evaluator.structure, has_reference=target.has_custom_gradient,
                      scale=scale, floor=floor)
    # Approximations (small, smooth errors) are looked at again only where a kink is possible:
    # the differences see one, or an element sits on a point of interest. Re-evaluating every
    # example of a uniformly wrong gradient would quadruple the cost.
    smooth = np.isin(judgement.category, _codes(lambda c: c.smooth))
    if smooth.any():
        smooth &= judgement.kink | on_points(evaluation.batch.inputs, evaluator.specs, points)
    # Suspects: failures a kink may excuse, and reference-wrong notes (a kink the differences straddle).
    suspect = np.isin(judgement.category, _codes(lambda c: c.suspect and not c.smooth)) | smooth
    suspect &= (judgement.outcome == FAILURE) | (judgement.outcome == NOTE)
    indices = np.flatnonzero(suspect)
    if not indices.size:
        return judgement
    try:
        neighbours = evaluator.neighbours(evaluation.batch, indices)
    except TargetRaised:
        return judgement  # raising near x is recorded when such inputs are drawn themselves
    # Judge only the suspects again (with their neighbourhoods), on the batch's own scales.
    neighbours.indices = np.arange(indices.size)
    again = judge(select_evaluation(evaluation, indices), evaluator.gradient_specs, evaluator.structure,
                  has_reference=target.has_custom_gradient, neighbours=neighbours, scale=scale or judgement.scale,
                  floor=None if floor is None else floor[indices])
    judgement.update(indices, again)
    if not (target.has_custom_gradient and evaluation.reference is not None):
        look_along_other_directions(evaluator, evaluation, judgement)
    return judgement


# Against differences only, a `branch` claim rests on one direction w: the one-sided derivatives
# along w bound the valid gradients only where one kink passes near x. Where several meet (ties among
# elements, blocks of an isotonic regression merging, a leaky ReLU of x + b with every element near
# zero) the gradient of any piece around x is valid: look element by element, or along more
# directions for large arguments, before claiming.
PIECE_DIRECTIONS = 32  # a piece that is 1/24 of the directions around x (4 tied elements) is missed 0.4% of the time
PIECE_LOOK_EXAMPLES = 16  # failing examples looked at along directions per batch (a finding needs one)
COORDINATE_LOOK_MAX = 64  # arguments up to this many elements are looked at element by element


def look_along_other_directions(evaluator: Evaluator, evaluation: Evaluation, judgement: Judgement) -> None:
    """`branch` failures judged against differences: where the jumps element by element do not fit
    one kink, an `inconclusive` note (`_look_element_by_element`, arguments up to
    `COORDINATE_LOOK_MAX` elements); then, where the gradient is that of a piece another direction
    enters from x, a `kink` note. (A few random directions can fit one kink by chance: four tied
    elements of top_k. The piece look needs no such fit.)"""
    specs = evaluator.specs
    if any(spec.is_complex for spec in specs if spec.differentiable):
        return

    def still_claimed() -> np.ndarray:
        return np.flatnonzero((judgement.outcome == FAILURE) & (judgement.category == CATEGORY_CODE[Category.BRANCH]))

    rows = still_claimed()
    if rows.size and sum(int(np.prod(spec.shape)) for spec in specs if spec.differentiable) <= COORDINATE_LOOK_MAX:
        _look_element_by_element(evaluator, evaluation, judgement, rows)
        rows = still_claimed()
    if rows.size:
        _look_along_random_directions(evaluator, evaluation, judgement, rows[:PIECE_LOOK_EXAMPLES])


def _look_along_random_directions(evaluator: Evaluator, evaluation: Evaluation, judgement: Judgement, rows: np.ndarray) -> None:
    """Where the gradient is that of the piece some direction enters from x (`oracle.gradient_of_a_piece`),
    the claim becomes a `kink` note. The directions are the same for every example (a fixed seed,
    scaled element by element like w), so check and replay take the same look."""
    specs = evaluator.specs
    k = PIECE_DIRECTIONS
    subset = evaluation.batch.select(rows)
    noise = np.random.default_rng(0)
    draws = [noise.standard_normal((k, *spec.shape)) for spec in specs]
    inputs, cotangents, custom = _repeated(evaluation, rows, k)
    directions = [
        (np.abs(np.repeat(w, k, axis=0)) * np.tile(g, (rows.size,) + (1,) * (w.ndim - 1))).astype(w.dtype)
        if spec.differentiable else np.repeat(w, k, axis=0)
        for w, g, spec in zip(subset.tangents, draws, specs)
    ]
    try:
        normal = evaluator.evaluate(Batch(inputs, cotangents, directions))
        fine = evaluator.evaluate(Batch(inputs, cotangents, [d / FINE_STEP for d in directions]))
    except (TargetRaised, OutOfMemory):
        return  # no evidence either way: the claim stands as judged
    matched = gradient_of_a_piece(inputs, custom, directions, evaluator.gradient_specs, normal, fine, FINE_STEP)
    excused = rows[matched.reshape(rows.size, k).any(axis=1)]
    judgement.outcome[excused] = NOTE
    judgement.category[excused] = CATEGORY_CODE[Category.KINK]
    judgement.reference_name[excused] = "one-sided differences along other directions (several kinks meet at x)"


def _repeated(evaluation: Evaluation, rows: np.ndarray, count: int) -> tuple[list, list, list]:
    """The inputs, cotangents and comparable custom gradients of ``rows``, each row repeated ``count``
    times (one per direction a look moves it along)."""
    subset = evaluation.batch.select(rows)
    custom = [None if g is None or np.size(g) != np.size(x) else np.repeat(np.asarray(g)[rows], count, axis=0)
              for g, x in zip(evaluation.custom, evaluation.batch.inputs)]
    return ([np.repeat(x, count, axis=0) for x in subset.inputs], [np.repeat(v, count, axis=0) for v in subset.cotangents],
            custom)


ONE_KINK_CHECKS = 4  # random directions a single kink's fit must also predict (several kinks rarely do)


def _look_element_by_element(evaluator: Evaluator, evaluation: Evaluation, judgement: Judgement, rows: np.ndarray) -> None:
    """Move each element alone (by its own w), and along a few random directions: where the jumps
    seen that way do not fit one kink (`oracle.one_kink_explains`), several kinks lie within one
    step of x and the claim along w becomes an `inconclusive` note."""
    specs = evaluator.specs
    sizes = [int(np.prod(spec.shape)) if spec.differentiable else 0 for spec in specs]
    n, k = sum(sizes), ONE_KINK_CHECKS
    if n < 2:
        return
    subset = evaluation.batch.select(rows)
    w = np.concatenate([np.asarray(t, np.float64).reshape(rows.size, -1) for t, size in zip(subset.tangents, sizes) if size], axis=1)
    draws = np.random.default_rng(0).standard_normal((k, n))  # the same for every example: replay looks alike
    flat = np.concatenate([np.eye(n)[None] * w[:, None, :], np.abs(w)[:, None, :] * draws[None]], axis=1)  # [rows, n + k, n]
    ratios = np.concatenate([np.ones((rows.size, 1, n)), np.sign(w)[:, None, :] * draws[None]], axis=1)
    count = n + k
    directions, offset = [], 0
    for t, size, spec in zip(subset.tangents, sizes, specs):
        if size:
            directions.append(flat[:, :, offset:offset + size].reshape(rows.size * count, *spec.shape).astype(t.dtype))
        else:
            directions.append(np.zeros((rows.size * count, *np.shape(t)[1:]), dtype=t.dtype))
        offset += size
    inputs, cotangents, custom = _repeated(evaluation, rows, count)
    try:
        along = evaluator.evaluate(Batch(inputs, cotangents, directions))
    except (TargetRaised, OutOfMemory):
        return
    jumps, tolerance = jumps_along(inputs, custom, directions, evaluator.gradient_specs, along)
    jumps, tolerance = jumps.reshape(rows.size, count), tolerance.reshape(rows.size, count)
    along_w = (judgement.evidence["right_derivative"] - judgement.evidence["left_derivative"])[rows]
    totals = np.concatenate([along_w[:, None], jumps[:, n:]], axis=1)
    several = ~one_kink_explains(totals, jumps[:, :n], ratios, tolerance[:, :n])
    unsure = rows[several]
    judgement.outcome[unsure] = NOTE
    judgement.category[unsure] = CATEGORY_CODE[Category.INCONCLUSIVE]
    judgement.reference_name[unsure] = "one-sided differences element by element (several kinks within one step of x)"


def user_floor(evaluation: Evaluation, target: Target) -> np.ndarray | None:
    """The user's tolerance per example (``check(atol=, rtol=)``): atol + rtol·(the largest finite
    |gradient| of the example, reference or, for plain functions, TensorFlow's), or None."""
    if not (target.atol or target.rtol):
        return None
    size = evaluation.batch.size
    gradients = evaluation.reference if evaluation.reference is not None else evaluation.custom
    largest = np.zeros(size)
    with np.errstate(all="ignore"):
        for g in gradients:
            if g is not None and np.size(g):
                magnitude = np.abs(np.asarray(g)).astype(np.float64).reshape(size, -1)
                largest = np.maximum(largest, np.max(np.where(np.isfinite(magnitude), magnitude, 0.0), axis=1))
    return target.atol + target.rtol * largest


def judge_second_order_batch(evaluator: Evaluator, evaluation: Evaluation, missing: Sequence[int]) -> tuple[Evaluation, Judgement]:
    """Second order, with a look a few ULPs to either side of the examples that fail."""
    hvp, judgement = judge_second_order(evaluation, evaluator.specs, evaluator.structure, missing)
    indices = np.flatnonzero(judgement.outcome == FAILURE)
    if indices.size:
        try:
            neighbours = evaluator.neighbours(evaluation.batch, indices)
            hvp, judgement = judge_second_order(evaluation, evaluator.specs, evaluator.structure, missing, neighbours)
        except TargetRaised:
            pass
    return hvp, as_surrogate(judgement) if evaluator.target.surrogate else judgement


def on_points(inputs: Sequence[np.ndarray], specs: Sequence[ArgSpec], points: Sequence[Sequence[float]]) -> np.ndarray:
    """Per example: some element lies within a few ULPs of a point of interest."""
    size = inputs[0].shape[0]
    hit = np.zeros(size, dtype=bool)
    for x, spec, arg_points in zip(inputs, specs, points):
        if not spec.differentiable or spec.is_complex:
            continue
        values = np.asarray(x, dtype=np.float64).reshape(size, -1)
        for point in arg_points:
            reach = max(64 * float(spec.info.ulp(np.float64(point))), 4 * spec.info.tiny)
            hit |= np.any(np.abs(values - point) <= reach, axis=1)
    return hit


class Judge:
    """The only way a verdict is made. Given an evaluator, its target, the points of interest and
    (lazily) the branch signature, it judges a batch or one example: the oracle, neighbours a few
    ULPs away, precision, a declared surrogate, second order, and the branch look. `check`,
    `assert_gradient` (`check_example`), shrinking and `replay` all judge through one, so a stored
    failure replays to the category it was stored with."""

    def __init__(self, evaluator: Evaluator, points: Sequence[Sequence[float]],
                 branches: Callable[[], BranchSignature | None] | None = None):
        self.evaluator = evaluator
        self.target = evaluator.target
        self.points = points
        self._make_branches = branches  # traced on first use: most judged batches never need it
        self._branches: BranchSignature | None = None

    @property
    def branches(self) -> BranchSignature | None:
        if self._branches is None and self._make_branches is not None:
            self._branches, self._make_branches = self._make_branches(), None
        return self._branches

    def batch(self, evaluation: Evaluation, scale: GradientScale | None = None) -> Judgement:
        """First-order verdicts for every example of ``evaluation`` (see `judge_batch`)."""
        return judge_batch(self.evaluator, evaluation, self.target, self.points, scale)

    def second_order(self, evaluation: Evaluation, missing: Sequence[int]) -> tuple[Evaluation, Judgement]:
        return judge_second_order_batch(self.evaluator, evaluation, missing)

    def example(self, inputs: Sequence[np.ndarray], cotangents: Sequence[np.ndarray], tangents: Sequence[np.ndarray],
                stored: Category | None = None) -> tuple[Evaluation, list]:
        """Judge one example as replay does (a batch of one, its own cotangent and tangent): the
        evaluation and its failing verdicts, with the second order where ``stored`` is `higher-order`
        and the branch look where it is `branch` (a wrong-side value then reads as `branch`).
        Raises `TargetRaised` when the target raises there."""
        from gradfuzz.engine import second_order_missing

        evaluation = self.evaluator.evaluate(Batch.of_example(inputs, cotangents, tangents))
        failing = self.batch(evaluation).failures
        if stored == Category.HIGHER_ORDER and self.evaluator.order == 2:
            failing += self.second_order(evaluation, second_order_missing(self.target, list(inputs)))[1].failures
        if stored == Category.BRANCH:
            for v in failing:
                if v.category.branch_candidate and v.argument is not None and self.branch_look(
                        v.category, inputs, cotangents, tangents, evaluation.custom[v.argument][0], v.reference,
                        v.argument, v.element) is not None:
                    v.category = Category.BRANCH
        return evaluation, failing

    def branch_look(self, category, inputs, cotangents, tangents, custom, reference_value, argument, element):
        """The boundary across which the custom value is the derivative (`diagnosis.branch_look`), or None."""
        from gradfuzz.diagnosis import branch_look

        if not self.target.has_custom_gradient:
            return None
        return branch_look(self.evaluator, self.branches, self.points, category, inputs, cotangents, tangents, custom,
                           reference_value, argument, element)

    def relabel_branches(self, findings) -> None:
        """Name the boundary behind failures a wrong-side formula explains (`diagnosis.relabel_branches`)."""
        from gradfuzz.diagnosis import relabel_branches

        if self.target.has_custom_gradient:
            relabel_branches(findings, self.evaluator, self.branches)

