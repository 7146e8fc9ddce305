"""The oracle: numbers in, verdicts out. Pure numpy, no TensorFlow.

For each example the custom VJP ``g_c = J_cᵀv`` is compared with

* the reference VJP ``g_r`` (autodiff of the unwrapped forward, float64 when
  possible) element by element, with a tolerance calibrated on how far the
  same reference computed at the argument's own dtype is from float64 — "is
  the custom gradient much worse than an honest one at this dtype?" — and a
  floor of a few ULPs;
* central differences of ``φ(τ) = ⟨v, f(x + τw)⟩`` via the inner-product
  (adjoint) test ``⟨w, g_c⟩ ≈ ⟨v, J w⟩``, with a Richardson error estimate;
  they arbitrate when the custom gradient and autodiff disagree;
* one-sided differences of ``φ``: at a kink the left and right derivatives
  differ at every step size, and any value between them is a valid
  (Clarke) subgradient, so it is a ``kink`` note, not a failure.

Per-dtype constants live in `TOLERANCES`; see docs/ARCHITECTURE.md for the math.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from types import SimpleNamespace

import numpy as np

from gradfuzz.categories import TENSORFLOW_GRADIENT, Category, Kind, gradient_label
from gradfuzz.dtypes import DTypeInfo, info_for
from gradfuzz.spec import ArgSpec
from gradfuzz.values import FD_OFFSETS, Evaluation, Neighbours, Structure, describe_inputs, error_summary, numbers

# Judgement.category holds indices into this (0: passed); one code per category, in the enum's order.
CATEGORIES: tuple[Category | None, ...] = (None, *Category)
CATEGORY_CODE: dict[Category, int] = {c: code for code, c in enumerate(CATEGORIES) if c is not None}


@dataclass(frozen=True)
class Tolerance:
    floor_ulps: float  # disagreements below this many ULPs are never failures
    calibration_factor: float  # the custom gradient may be this much worse than autodiff at the same dtype
    confirm_relative: float  # when differences cannot arbitrate, a relative error above this still fails
    absolute_floor: float  # ≈ eps·√tiny: differences this small come from intermediate underflow
    # Differences alone (a plain function) claim nothing below this relative error: φ's own rounding can
    # exceed eps·|φ| (log(1 + δ) rounds at 1, not at its result: eps/δ relative), and they estimate it
    # from |φ|. At float64, 1e-6 covers δ down to 2e-10 (log-sum-exp of [0, -18.6, -30, ...] has δ = 8e-9
    # and differences 1.2e-8 off TensorFlow's exact softmax); float32's 1e-4 covers δ down to 1e-3.
    differences_confirm: float


TOLERANCES: dict[str, Tolerance] = {
    "float16": Tolerance(floor_ulps=4, calibration_factor=10, confirm_relative=1e-2, absolute_floor=7.6e-6, differences_confirm=1e-2),
    "bfloat16": Tolerance(floor_ulps=4, calibration_factor=10, confirm_relative=5e-2, absolute_floor=8.5e-22, differences_confirm=5e-2),
    "float32": Tolerance(floor_ulps=16, calibration_factor=10, confirm_relative=1e-4, absolute_floor=1.3e-26, differences_confirm=1e-4),
    "float64": Tolerance(floor_ulps=256, calibration_factor=10, confirm_relative=1e-9, absolute_floor=3.3e-170, differences_confirm=1e-6),
}
TOLERANCES["complex64"], TOLERANCES["complex128"] = TOLERANCES["float32"], TOLERANCES["float64"]  # per component
FLOAT64_MANTISSA = 52
APPROXIMATION_MAX_RELATIVE = 0.05  # larger errors are not "approximations"
KINK_STEP_RATIO = 0.6  # curvature's one-sided jump halves with the step; a kink's does not
SINGULAR_GROWTH = 1.5  # a pole's difference quotients grow ~2× per halving (√|x|'s cusp 1.41×: a kink)
KINK_JUMP_RELATIVE = 1e-3  # a gradient jump this small against the example's largest element is smooth variation
STRADDLE_RELATIVE = 1e-6  # a settled one-sided jump this large (relative) is a kink within the step
FD_SAFETY = 4.0  # multiples of the difference error estimate that count as agreement
CLAIM_MARGIN = 4.0  # examples shown and stored for a failure are, where the run has them, this far past the tolerance


@dataclass(frozen=True)
class GradientScale:
    """Per argument, how large the reference gradient is across a batch.

    ``typical`` (the median |reference|) is what "approximation" is judged against, so an error
    stays an approximation near a zero of the gradient. ``largest`` (the largest finite
    |reference|) bounds the terms the gradient's computation sums: at float64, where no wider
    reference calibrates autodiff, gaps below a few ULPs of it are rounding (see `judge`).
    """

    typical: tuple[float, ...]
    largest: tuple[float, ...]

    @classmethod
    def of(cls, gradients: Sequence[np.ndarray | None]) -> GradientScale:
        """The scale of a batch's reference gradients (None: an argument without one)."""
        typical, largest = [], []
        for g in gradients:
            finite = np.abs(np.asarray(g)[np.isfinite(g)]) if g is not None else np.zeros(0)
            typical.append(float(np.median(finite)) if finite.size else 0.0)
            largest.append(float(finite.max()) if finite.size else 0.0)
        return cls(tuple(typical), tuple(largest))


@dataclass
class Verdict:
    """One example that did not simply pass, with its evidence."""

    index: int  # position in the batch
    category: Category  # its kind (failure or note) is the category's
    argument: int | None  # argument holding the worst element (None: inner-product only)
    element: int | None  # flat index of the worst element in that argument
    custom: float  # custom value at the worst element (or ⟨w, g_c⟩)
    reference: float  # reference value there (or the reference inner product)
    reference_name: str  # which reference disagreed
    abs_error: float
    rel_error: float
    ulp_error: float
    evidence: dict[str, float] = field(default_factory=dict)

    @property
    def kind(self) -> Kind:
        return self.category.kind


class Outcome(IntEnum):
    """An example's outcome, as stored in `Judgement.outcome` (int8)."""

    PASS = 0
    FAILURE = 1
    NOTE = 2
    SKIPPED = 3  # outside the domain: the forward is not finite there


PASS, FAILURE, NOTE, SKIPPED = Outcome.PASS, Outcome.FAILURE, Outcome.NOTE, Outcome.SKIPPED


@dataclass
class Judgement:
    """A batch's verdicts as arrays (one entry per example); `Verdict` objects are built
    only on demand, because a failing batch of thousands would spend its time there."""

    outcome: np.ndarray  # int8: PASS, FAILURE, NOTE or SKIPPED (outside the domain)
    category: np.ndarray  # int8 codes into CATEGORIES (0: pass)
    argument: np.ndarray  # int, -1: inner-product only
    element: np.ndarray  # int, -1: inner-product only
    custom: np.ndarray
    reference: np.ndarray
    reference_name: np.ndarray  # str objects
    abs_error: np.ndarray
    rel_error: np.ndarray
    ulp_error: np.ndarray
    evidence: dict[str, np.ndarray]
    worst_ulps: float  # largest finite ULP error seen (for Hypothesis' target())
    kink: np.ndarray  # bool: the differences see a non-differentiable point
    scale: GradientScale | None = None  # the batch's gradient scale (None: judged against differences only)

    def update(self, indices: np.ndarray, other: Judgement) -> None:
        """Overwrite the verdicts of ``indices`` with ``other``'s (a judgement of that subset)."""
        for name in ("outcome", "category", "argument", "element", "custom", "reference", "reference_name",
                     "abs_error", "rel_error", "ulp_error", "kink"):
            mine = np.array(getattr(self, name))  # a copy: some arrays are read-only broadcast views
            mine[indices] = getattr(other, name)
            setattr(self, name, mine)
        for name, values in other.evidence.items():
            mine = np.array(self.evidence[name])
            mine[indices] = values
            self.evidence[name] = mine
        self.worst_ulps = max(self.worst_ulps, other.worst_ulps)

    @property
    def passed(self) -> int:
        return int(np.sum(self.outcome == PASS))

    @property
    def skipped(self) -> int:
        return int(np.sum(self.outcome == SKIPPED))

    def flagged(self) -> np.ndarray:
        """Indices of failures and notes."""
        return np.flatnonzero((self.outcome == FAILURE) | (self.outcome == NOTE))

    def verdict(self, index: int) -> Verdict:
        a, element = int(self.argument[index]), int(self.element[index])
        return Verdict(
            index=int(index), category=CATEGORIES[int(self.category[index])],
            argument=None if a < 0 else a, element=None if a < 0 else element,
            custom=float(self.custom[index]), reference=float(self.reference[index]),
            reference_name=str(self.reference_name[index]), abs_error=float(self.abs_error[index]),
            rel_error=float(self.rel_error[index]), ulp_error=float(self.ulp_error[index]),
            evidence={k: float(v[index]) for k, v in self.evidence.items()},
        )

    @property
    def verdicts(self) -> list[Verdict]:
        return [self.verdict(i) for i in self.flagged()]

    @property
    def failures(self) -> list[Verdict]:
        return [self.verdict(i) for i in np.flatnonzero(self.outcome == FAILURE)]


@dataclass
class _Differences:
    """Finite-difference estimates of ⟨v, J w⟩ per example."""

    central: np.ndarray  # Richardson-extrapolated central difference
    error: np.ndarray  # its error estimate (truncation + rounding)
    left: np.ndarray
    right: np.ndarray
    kink: np.ndarray  # bool: one-sided derivatives differ at every step
    usable: np.ndarray  # bool: finite and not straddling a kink
    noise: np.ndarray  # rounding error of one-sided differences
    settled_jump: np.ndarray  # |R - L| with each side extrapolated to a zero step (curvature removed)
    singular: np.ndarray  # bool: a pole or a jump of f within the step (both one-sided derivatives grow as it shrinks)
    side_error: np.ndarray  # what curvature still owes the one-sided derivatives (their change from the full step)


def differences(phi: np.ndarray, phi_scale: np.ndarray, step: float, eps: float) -> _Differences:
    """Central, Richardson and one-sided differences of φ sampled at `FD_OFFSETS`·step."""
    at = {offset: phi[k] for k, offset in enumerate(FD_OFFSETS)}
    half = step / 2
    with np.errstate(all="ignore"):
        # Each φ(τ) is rounded at its own size: at a tiny x, φ(x ± h) can be far larger than φ(x)
        # (x·sin x near 0), so the rounding estimate takes the largest φ sampled, not φ(x) alone.
        sampled = np.max(np.abs(np.where(np.isfinite(phi), phi, 0.0)), axis=0)
        phi_scale = np.maximum(phi_scale, sampled)
        d_full = (at[1.0] - at[-1.0]) / (2 * step)
        d_half = (at[0.5] - at[-0.5]) / (2 * half)
        central = (4 * d_half - d_full) / 3
        rounding = 4 * eps * phi_scale / half
        error = np.abs(d_half - d_full) + rounding
        right_half, left_half = (at[0.5] - at[0.0]) / half, (at[0.0] - at[-0.5]) / half
        right_full, left_full = (at[1.0] - at[0.0]) / step, (at[0.0] - at[-1.0]) / step
        jump_half, jump_full = right_half - left_half, right_full - left_full
        finite = np.all(np.isfinite(phi), axis=0)

        # Near a pole (a numerically singular matrix's inverse) every difference quotient grows like
        # 1/step: both one-sided derivatives about double when the step halves. A kink's stay put,
        # and a smooth side's change by curvature·step, which shrinks them at a zero of f'.
        def grows(fine, coarse):  # an overflowing quotient on both steps counts as growing
            return (np.abs(fine) > SINGULAR_GROWTH * np.abs(coarse)) | (np.isinf(fine) & np.isinf(coarse))

        # Above φ's own rounding (not the input-rounding term: near a pole that is as large as φ' itself).
        phi_noise = 64 * eps * sampled / half
        # f itself jumping at x grows a one-sided quotient the same way, whatever the central one does
        # (atan2 at (0, 0), x/y or a solve at an all-zero input: φ(0) apart from both sides; the Q of a
        # rank-deficient matrix's QR flipping on one side): no derivative exists there for any gradient
        # to match or miss.
        singular = finite & (
            (grows(right_half, right_full) & (np.abs(right_half) > phi_noise))
            | (grows(left_half, left_full) & (np.abs(left_half) > phi_noise))
        )
        kink = (
            finite
            & ~singular
            & (np.abs(jump_half) > KINK_STEP_RATIO * np.abs(jump_full))
            & (np.abs(jump_half) > 16 * rounding)
            & (np.abs(jump_half) > 1e-6 * (np.abs(right_half) + np.abs(left_half)))
        )
        # Each one-sided derivative is f' + c·τ on a smooth side: 2·D(h/2) - D(h) removes c. Their gap is
        # a kink's jump, or nothing (a polynomial whose one-sided terms are pure curvature).
        settled_jump = np.abs((2 * right_half - right_full) - (2 * left_half - left_full))
        side_error = np.maximum(np.abs(right_half - right_full), np.abs(left_half - left_full))
    return _Differences(central, error, left_half, right_half, kink, finite & ~kink & ~singular, rounding, settled_jump,
                        singular, side_error)


# -- the ladders: ordered rules, the first that holds decides ------------------------------------


class _Facts(SimpleNamespace):
    """Per-example boolean arrays a ladder's rules read (named, so the tables read as sentences)."""


@dataclass(frozen=True)
class Rule:
    """One rung: where ``when`` holds and no earlier rung decided, the example gets ``outcome`` and
    ``category`` (None with PASS: it passed). ``reference`` names the evidence that decided, where it
    is not the ladder's own reference."""

    when: Callable[[_Facts], np.ndarray]
    outcome: Outcome
    category: Category | None = None
    reference: str | None = None


def _decide(rules: Sequence[Rule], facts: _Facts, domain_ok: np.ndarray, reference: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run a ladder: (outcome, category code, reference name) per example. Every example in the
    domain is decided by some rung (each ladder ends with one that always holds), so PASS is a
    decision, never "undecided"."""
    size = domain_ok.shape[0]
    outcome = np.where(domain_ok, PASS, SKIPPED).astype(np.int8)
    category = np.zeros(size, dtype=np.int8)
    reference_name = np.full(size, reference, dtype=object)
    open_ = domain_ok.copy()
    for rule in rules:
        hit = open_ & np.asarray(rule.when(facts), dtype=bool)
        if not hit.any():
            continue
        outcome[hit] = rule.outcome
        category[hit] = CATEGORY_CODE[rule.category] if rule.category is not None else 0
        if rule.reference is not None:
            reference_name[hit] = rule.reference
        open_ &= ~hit
    assert not open_.any(), "a ladder must decide every example in the domain"
    return outcome, category, reference_name


def straddles_a_kink(fd: _Differences) -> np.ndarray:
    """The one-sided differences settle on two different values (a jump the curvature terms do not
    explain: ``settled_jump``) that does not persist at every step (else it is ``kink``): the step
    straddles a kink near x, not at it."""
    with np.errstate(all="ignore"):
        # (A smooth side's settled value differs from f' by O(step²), far below this.)
        jump = (fd.settled_jump > STRADDLE_RELATIVE * (np.abs(fd.left) + np.abs(fd.right))) & (fd.settled_jump > 16 * fd.noise)
        return ~fd.kink & ~fd.singular & jump  # (a pole's or a jump's quotients settle on nothing)


def _always(f: _Facts) -> np.ndarray:
    return np.ones(np.shape(f.kink), dtype=bool)


# A custom gradient against autodiff of its forward (and differences and forward mode as arbiters).
AGAINST_REFERENCE: tuple[Rule, ...] = (
    Rule(lambda f: f.custom_nonfinite, FAILURE, Category.NON_FINITE),  # also at a kink: NaN is no subgradient
    Rule(lambda f: f.disagree & f.missing, FAILURE, Category.MISSING_GRADIENT),
    Rule(lambda f: ~f.disagree & ~f.reference_nonfinite & f.kink, NOTE, Category.KINK, "one-sided differences"),
    Rule(lambda f: ~f.disagree & ~f.reference_nonfinite, PASS),
    # Disagreeing with autodiff is excused only *at* a kink (the gradient jumps within a few ULPs).
    # Lying between the one-sided differences alone is not enough: x may be merely within a step of
    # the kink, where autodiff is exact and a wrong branch is a real, thin-region bug.
    Rule(lambda f: f.in_hull | (f.within_kink & f.at_kink), NOTE, Category.KINK, "gradients either side"),
    # Differences that straddle a kink x is merely near (not at) do not decide: where autodiff and
    # forward mode, both exact at x, agree with each other, they judge the custom gradient
    # (mismatch or approximation below; `relabel_branches` still names a wrong-side formula).
    # At a kink, forward mode through the forward (no grad_fn) picks one derivative per element, as the
    # forward's ops define them there: a custom gradient equal to it is a valid subgradient, even where
    # several elements at their kinks make the valid set wider than the one-sided differences.
    Rule(lambda f: (f.kink | f.at_kink) & f.custom_matches_jvp, NOTE, Category.KINK, "forward-mode JVP"),
    Rule(lambda f: f.kink & ~(f.reference_matches_jvp & ~f.at_kink), FAILURE, Category.BRANCH),
    Rule(lambda f: f.custom_matches_fd & ~f.reference_matches_fd, NOTE, Category.REFERENCE_WRONG, "central differences"),
    Rule(lambda f: ~f.usable & f.custom_matches_jvp & ~f.reference_matches_jvp, NOTE, Category.REFERENCE_WRONG,
         "forward-mode JVP"),
    Rule(lambda f: f.fd_resolves & f.small, FAILURE, Category.APPROXIMATION),
    Rule(lambda f: f.fd_resolves, FAILURE, Category.MISMATCH),
    # The differences cannot tell, but forward mode sides with autodiff: the custom gradient is wrong.
    Rule(lambda f: ~f.usable & f.reference_matches_jvp & ~f.custom_matches_jvp & ~f.reference_nonfinite & f.small,
         FAILURE, Category.APPROXIMATION),
    Rule(lambda f: ~f.usable & f.reference_matches_jvp & ~f.custom_matches_jvp & ~f.reference_nonfinite,
         FAILURE, Category.MISMATCH),
    Rule(lambda f: ~f.reference_nonfinite & f.confirmed & f.small, FAILURE, Category.APPROXIMATION),
    Rule(lambda f: ~f.reference_nonfinite & f.confirmed, FAILURE, Category.MISMATCH),
    Rule(_always, NOTE, Category.INCONCLUSIVE),
)

# A plain function's registered gradient against differences (and forward mode where they cannot judge).
AGAINST_DIFFERENCES: tuple[Rule, ...] = (
    Rule(lambda f: ~f.custom_finite & f.overflow_plausible, NOTE, Category.INCONCLUSIVE),
    # Not finite where the differences (or both one-sided ones, at a kink) are: non-finite, kink or not.
    # NaN where even one one-sided derivative is finite (a domain boundary, x^y at (0, 0)) is one too;
    # an infinite gradient there may be the truth (√x at 0), so only NaN.
    Rule(lambda f: ~f.custom_finite & (f.central_finite | (f.kink & f.one_sided_finite) | f.nan_beside_a_finite_side),
         FAILURE, Category.NON_FINITE),
    Rule(lambda f: f.within_kink | f.in_hull, NOTE, Category.KINK),
    # Outside the one-sided range by less than the differences' own error: another kink a part of a step
    # away bends one side (a leaky ReLU of x + b with two elements near zero), so no claim.
    Rule(lambda f: f.kink & f.within_kink_error, NOTE, Category.INCONCLUSIVE,
         "one-sided differences (outside their range by less than their own error)"),
    Rule(lambda f: f.kink, FAILURE, Category.BRANCH),
    Rule(lambda f: f.usable & f.within_allowed, PASS),
    Rule(lambda f: f.usable & f.missing, FAILURE, Category.MISSING_GRADIENT),  # one cause, one finding
    # A kink within one step of x (several elements near theirs at once, say): the central difference
    # mixes the sides, and a gradient between them, or equal to forward mode's at x, is no evidence
    # of a bug (with several kinks the valid range is wider than the one-sided differences).
    Rule(lambda f: f.straddled & (f.between | f.jvp_agrees), NOTE, Category.INCONCLUSIVE,
         "one-sided differences (a kink within one step of x)"),
    # Outside them, the claim is that of a gradient belonging to no side of a kink within a step: a
    # `branch`, which the looks along other directions then test against every piece around x
    # (the central difference, a mix of the sides, is no reference for a `mismatch`).
    Rule(lambda f: f.straddled & f.resolved & ~f.within_allowed, FAILURE, Category.BRANCH),
    Rule(lambda f: f.usable & ~f.resolved, PASS),
    Rule(lambda f: f.usable & f.small, FAILURE, Category.APPROXIMATION),
    Rule(lambda f: f.usable, FAILURE, Category.MISMATCH),
    Rule(lambda f: f.jvp_agrees, PASS),
    Rule(_always, NOTE, Category.INCONCLUSIVE),
)


def judge(evaluation: Evaluation, specs: Sequence[ArgSpec], structure: Structure, *, has_reference: bool,
          neighbours: Neighbours | None = None, floor: np.ndarray | None = None,
          scale: GradientScale | None = None) -> Judgement:
    """Turn one batch's numbers into verdicts (only non-passing examples get one).

    With ``neighbours`` (gradients a few ULPs to either side, see
    `gradfuzz.engine.Evaluator.neighbours`), a custom gradient inside their hull
    at a point where the gradient jumps is a valid subgradient: a ``kink`` note.
    ``floor`` is an extra absolute tolerance per example (the second-order check scales it
    from the first-order gradient). ``scale`` fixes the batch's gradient scale (when judging a
    subset of a batch again); by default it is this batch's.
    """
    size = evaluation.batch.size
    gradients = evaluation.reference if has_reference and evaluation.reference is not None else evaluation.custom
    # Rounding x + τw perturbs φ by about eps·Σ|x·∂φ/∂x|; count it with the rounding of φ itself.
    with np.errstate(all="ignore"):
        input_scale = sum(
            np.sum(np.nan_to_num(np.abs(_flat64(x, size) * _flat64(g, size)), posinf=0.0), axis=1)
            for x, g, shape, spec in zip(evaluation.batch.inputs, gradients, structure.gradient_shapes, specs)
            if spec.differentiable and (shape is None or np.size(g) == np.size(x))
        )
        input_scale = np.broadcast_to(np.asarray(input_scale, dtype=np.float64), (size,))
    rounding_scale = evaluation.phi_scale + input_scale
    fd = differences(evaluation.phi, rounding_scale, evaluation.fd_step, evaluation.fd_eps)
    tangents = evaluation.batch.tangents
    comparable = [
        spec.differentiable and (structure.gradient_shapes[a] is None or tuple(structure.gradient_shapes[a]) == spec.shape)
        for a, spec in enumerate(specs)
    ]
    custom = [_flat64(g, size) if ok else None for g, ok in zip(evaluation.custom, comparable)]
    w = [_flat64(t, size) for t in tangents]
    with np.errstate(all="ignore"):
        custom_ip = sum(_ip(c, t) for c, t in zip(custom, w) if c is not None)
        custom_ip = np.broadcast_to(np.asarray(custom_ip, dtype=np.float64), (size,))
    domain_ok = np.ones(size, dtype=bool)
    for y in evaluation.outputs:
        domain_ok &= np.all(np.isfinite(_flat64(y, size)), axis=1)

    fine_agrees = np.zeros(size, dtype=bool)
    if neighbours is not None and neighbours.indices.size:
        rows = neighbours.indices
        fine = differences(neighbours.fine_phi, neighbours.fine_phi_scale + input_scale[rows], evaluation.fd_step, evaluation.fd_eps)
        coarse_kink = fd.kink[rows].copy()
        if not has_reference:
            # Near (not at) a kink the normal step straddles it: trust the finer differences there.
            # (With an autodiff reference, the reference at x itself decides instead.)
            with np.errstate(all="ignore"):
                agrees = fine.usable & (np.abs(custom_ip[rows] - fine.central) <= FD_SAFETY * fine.error + _ip_floor(specs, custom, w, rows))
                coarse_agrees = np.abs(custom_ip[rows] - fd.central[rows]) <= FD_SAFETY * fd.error[rows]
            fine_agrees[rows] = agrees & ~coarse_agrees
            # Finer differences that straddle a kink too: the point is at one, whatever the step.
            fd.kink[rows] |= fine.kink
            fd.usable[rows] &= ~fine.kink
        _prefer_clean_fine_differences(fd, fine, rows, coarse_kink)
    at_kink = np.zeros(size, dtype=bool)  # the gradient jumps within a few ULPs of x
    in_hull = fine_agrees | _inside_neighbour_hull(
        evaluation, specs, custom, neighbours, has_reference and evaluation.reference is not None, fd.kink, at_kink
    )
    if has_reference and evaluation.reference is not None:
        return _judge_against_reference(evaluation, specs, structure, custom, w, custom_ip, fd, domain_ok, in_hull, at_kink,
                                        floor, scale)
    missing = [a for a, spec in enumerate(specs) if spec.differentiable and structure.gradient_dtypes[a] is None]
    return _judge_against_differences(evaluation, specs, custom, w, custom_ip, fd, domain_ok, in_hull, missing, floor)


def _prefer_clean_fine_differences(fd: _Differences, fine: _Differences, rows: np.ndarray, coarse_kink: np.ndarray) -> None:
    """Where the normal step sees a kink that a 64× finer step does not, the finer differences
    judge instead. A kink's jump stays the same at every step; a jump the finer step does not see
    came from the function's curvature (a polynomial whose one-sided terms cancel at one step:
    `tf.reduce_prod` with two zeros) or from a kink x is merely near. Either way x itself is smooth,
    and only clean differences may arbitrate. Clean means: the finer one-sided derivatives, each
    extrapolated to a zero step, agree to a small part of the jump the normal step saw (a kink just
    inside the finer step, as in a near-tie of maxima, leaves them apart).

    A coarse kink whose jump the finer step sees reversed, or where it sees a pole, is no kink
    either: the differences cannot judge there, and only exact references may."""
    with np.errstate(invalid="ignore"):
        allowed = np.maximum(3 * FD_SAFETY * fine.noise, 0.01 * np.abs(fd.right[rows] - fd.left[rows]))
        clean = fine.usable & (fine.settled_jump <= allowed)
        # A kink at x shows a jump of the same sign at every step (its size may change: a near-tie of
        # maxima the finer step does not reach). A jump the finer step sees with the other sign, or a
        # pole it sees, came from a step too coarse for x (a matrix whose entries are smaller than the
        # step: its singular point lies inside it). Such differences cannot judge.
        reversed_kink = fine.kink & ((fine.right - fine.left) * (fd.right[rows] - fd.left[rows]) < 0)
    smooth = fd.kink[rows] & clean
    unjudgeable = coarse_kink & ~clean & (reversed_kink | fine.singular)
    fd.kink[rows[unjudgeable]] = False
    fd.usable[rows[unjudgeable]] = False
    if not smooth.any():
        return
    chosen = rows[smooth]
    for name in ("central", "error", "left", "right", "kink", "usable", "noise", "settled_jump", "singular", "side_error"):
        getattr(fd, name)[chosen] = getattr(fine, name)[smooth]


def equals_a_piece(custom_ip: np.ndarray, normal: _Differences, fine: _Differences, floor: np.ndarray) -> np.ndarray:
    """Per direction d: ⟨g, d⟩ equals the one-sided derivative along d or along -d, i.e. g is the
    gradient of the piece of the function that d (or -d) enters from x.

    At a point where several kinks meet (ties among several elements, blocks of an isotonic
    regression merging) the valid gradients are those of every piece around x, and the one-sided
    derivatives along a single direction bound only two of them; a third piece's gradient is no
    bug. A wrong gradient matches no piece along any direction (bar a measure-zero coincidence).
    The finer step (``fine``) keeps the segment inside the piece the direction enters; what its
    one-sided derivative still owes to curvature is about 1/63 of how far it moved from the normal
    step's, which the tolerance allows (twice)."""
    with np.errstate(all="ignore"):
        matched = np.zeros(np.shape(custom_ip), dtype=bool)
        for side_fine, side_normal in ((fine.right, normal.right), (fine.left, normal.left)):
            tol = FD_SAFETY * np.maximum(fine.noise, normal.noise) + floor + 2 * np.abs(side_normal - side_fine) / 63
            matched |= np.isfinite(side_fine) & (np.abs(custom_ip - side_fine) <= tol)
    return matched & ~fine.singular & ~normal.singular


def gradient_of_a_piece(inputs: Sequence[np.ndarray], custom: Sequence[np.ndarray | None], directions: Sequence[np.ndarray],
                        specs: Sequence[ArgSpec], normal: Evaluation, fine: Evaluation, fine_ratio: float) -> np.ndarray:
    """Per row (an example repeated once per direction): the gradient ``custom`` is that of the piece
    the row's direction enters (`equals_a_piece`). ``normal`` and ``fine`` evaluated the rows with
    the directions as tangents, ``fine`` with them ``fine_ratio`` times smaller."""
    size = normal.batch.size
    flat = [None if c is None else _flat64(c, size) for c in custom]
    d = [_flat64(t, size) for t in directions]
    with np.errstate(all="ignore"):
        ip = sum(_ip(c, t) for c, t in zip(flat, d) if c is not None)
        input_scale = sum(np.sum(np.abs(_flat64(x, size) * c), axis=1) for x, c in zip(inputs, flat) if c is not None)
    rows = np.arange(size)
    floor = _ip_floor(specs, flat, d, rows)
    at_normal = differences(normal.phi, normal.phi_scale + input_scale, normal.fd_step, normal.fd_eps)
    at_fine = differences(fine.phi * fine_ratio, fine.phi_scale + input_scale, normal.fd_step, normal.fd_eps)
    return equals_a_piece(np.asarray(ip, dtype=np.float64), at_normal, at_fine, floor)


ONE_KINK_MAX_ELEMENTS = 16  # elements whose jumps one kink's normal may combine (2^15 sign patterns)


def one_kink_explains(totals: np.ndarray, jumps: np.ndarray, ratios: np.ndarray, tolerance: np.ndarray) -> np.ndarray:
    """Per example: the jumps right - left of the one-sided derivatives fit one kink. ``jumps``
    [examples, n]: along each element alone (moved by its own w_c); ``totals`` [examples, m]: along
    m directions d (w first), whose elements are ``ratios`` [examples, m, n] = d_c / w_c.

    A single kink (one surface through x, the gradient jumping by a·n across it) makes the jump
    along any d equal a·|n·d|: every element's jump has a's sign, and the jump along d is
    |Σ ±|jump_c|·d_c/w_c| with one choice of signs for every d. Only then do the one-sided
    derivatives along w bound every valid gradient. Several kinks within one step of x (elements
    of a leaky ReLU of x + b all near zero) fit no choice of signs for every direction, and one
    direction's one-sided derivatives are then no evidence."""
    explained = np.zeros(totals.shape[0], dtype=bool)
    for row in range(totals.shape[0]):
        visible = np.abs(jumps[row]) > tolerance[row]
        seen = jumps[row][visible]
        if seen.size <= 1:
            explained[row] = True
            continue
        sign = np.sign(seen[0])
        if seen.size > ONE_KINK_MAX_ELEMENTS or np.any(np.sign(seen) != sign) or np.any(totals[row] * sign < -np.sum(tolerance[row])):
            continue
        patterns = (np.arange(2 ** (seen.size - 1))[:, None] >> np.arange(seen.size - 1)) & 1  # the first sign fixed
        signs = np.concatenate([np.ones((patterns.shape[0], 1)), 1 - 2 * patterns], axis=1)  # [patterns, seen]
        scaled = np.abs(seen)[None, :] * ratios[row][:, visible]  # [directions, seen]
        predicted = np.abs(signs @ scaled.T)  # [patterns, directions]
        allowed = np.abs(ratios[row][:, visible]) @ tolerance[row][visible] + 0.05 * np.abs(totals[row])
        explained[row] = bool(np.any(np.all(np.abs(predicted - np.abs(totals[row])) <= allowed, axis=1)))
    return explained


def jumps_along(inputs: Sequence[np.ndarray], custom: Sequence[np.ndarray | None], directions: Sequence[np.ndarray],
                specs: Sequence[ArgSpec], normal: Evaluation) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the jump right - left of the one-sided derivatives along the row's direction, and
    what rounding allows in it."""
    size = normal.batch.size
    flat = [None if c is None else _flat64(c, size) for c in custom]
    d = [_flat64(t, size) for t in directions]
    with np.errstate(all="ignore"):
        input_scale = sum(np.sum(np.abs(_flat64(x, size) * c), axis=1) for x, c in zip(inputs, flat) if c is not None)
    fd = differences(normal.phi, normal.phi_scale + input_scale, normal.fd_step, normal.fd_eps)
    tolerance = 2 * FD_SAFETY * fd.noise + _ip_floor(specs, flat, d, np.arange(size))
    return np.where(np.isfinite(fd.right - fd.left), fd.right - fd.left, 0.0), tolerance


def _ip_floor(specs, custom, w, rows) -> np.ndarray:
    """What rounding at the argument dtype allows in ⟨w, g⟩: floor ULPs of Σ|w·g|."""
    info = _narrowest(specs)
    with np.errstate(all="ignore"):
        scale = sum(np.sum(np.abs(c[rows] * t[rows]), axis=1) for c, t in zip(custom, w) if c is not None)
    return TOLERANCES[info.name].floor_ulps * info.ulp(np.asarray(scale, dtype=np.float64))


def _inside_neighbour_hull(ev: Evaluation, specs, custom, neighbours: Neighbours | None, has_reference: bool,
                           fd_kink: np.ndarray, at_kink: np.ndarray) -> np.ndarray:
    """Per example: the custom gradient lies in the hull of the gradients at x - δ,
    x (reference only) and x + δ, element by element, and x is at or near a
    non-differentiable point: the hull is not a point, or the differences straddle a kink."""
    size = ev.batch.size
    result = np.zeros(size, dtype=bool)
    if neighbours is None or neighbours.indices.size == 0:
        return result
    rows = neighbours.indices
    inside = np.ones(rows.size, dtype=bool)
    jumps = np.zeros(rows.size, dtype=bool)
    for a, spec in enumerate(specs):
        if custom[a] is None or spec.is_complex:  # no kink neighbourhoods for complex arguments
            continue
        tol = TOLERANCES[spec.dtype]
        gc = custom[a][rows]
        minus = neighbours.minus[a].reshape(rows.size, -1)
        plus = neighbours.plus[a].reshape(rows.size, -1)
        stack = [minus, plus] + ([_flat64(ev.reference[a], size)[rows]] if has_reference else [])
        with np.errstate(all="ignore"):
            # fmin/fmax skip NaN: autodiff of a norm is 0/0 at the origin, yet the gradients either
            # side still span the subdifferential.
            low, high = np.fmin.reduce(stack), np.fmax.reduce(stack)
            slack = np.maximum(tol.floor_ulps * spec.info.ulp(np.maximum(np.abs(low), np.abs(high))), tol.absolute_floor)
            inside &= np.all((gc >= low - slack) & (gc <= high + slack), axis=1)
            # A jump is judged against the example's largest gradient element: a kink's is a sizable part of
            # it (relu 1, a tie among n maxima 1/n), while 64 ULPs of x move a smooth gradient by far less
            # (x/‖x‖ at ‖x‖ = 1e-19 turns by ~1e-5 of itself; an element near 0 flipping from -2e-19 to
            # 2e-19 beside elements of 0.4 is no kink either).
            largest = np.max(np.fmax(np.abs(low), np.abs(high)), axis=1, keepdims=True, initial=0.0)
            jumped = high - low > np.maximum(slack, KINK_JUMP_RELATIVE * largest)
            jumps |= np.any(jumped, axis=1)
    result[rows] = inside & (jumps | fd_kink[rows])
    at_kink[rows] = jumps
    return result


def _judge_against_reference(ev, specs, structure, custom, w, custom_ip, fd, domain_ok, in_hull, at_kink,
                             floor=None, scale: GradientScale | None = None) -> Judgement:
    size = ev.batch.size
    if scale is None:
        scale = GradientScale.of([_flat64(g, size) if c is not None else None for g, c in zip(ev.reference, custom)])
    worst_ratio = np.zeros(size)  # error / tolerance of the worst element
    worst_at = np.full((size, 2), -1)
    errors = np.zeros((size, 3))  # abs, rel, ulps at the worst element
    typical = np.zeros(size)  # typical gradient magnitude of the worst element's argument
    values = np.zeros((size, 2), dtype=np.complex128)  # custom, reference there (complex for complex arguments)
    custom_nonfinite = np.zeros(size, bool)
    reference_nonfinite = np.zeros(size, bool)
    missing = np.zeros(size, bool)
    reference_ip = np.zeros(size)
    ip_tolerance = np.zeros(size)
    for a, spec in enumerate(specs):
        if custom[a] is None or custom[a].shape[1] == 0:  # zero-size: nothing to compare (the contract still is)
            continue
        # A gradient returned in a lower precision than its argument (a `dtype` finding of
        # its own) is judged at that precision, so its rounding is not reported twice.
        info = min(spec.info, info_for(structure.gradient_dtypes[a] or spec.dtype) or spec.info, key=lambda i: i.mantissa_bits)
        tol = TOLERANCES[info.name]
        gc = custom[a]
        gr = _flat64(ev.reference[a], size)
        gn = _flat64(ev.reference_native[a], size) if ev.reference_native is not None else gr
        with np.errstate(all="ignore"):
            # A true gradient beyond the judged dtype's range is ±inf there, correctly rounded.
            overflowed = np.isinf(gc) & (np.abs(gr) > info.max) & (np.sign(gc) == np.sign(gr))
            same = (gc == gr) | (np.isnan(gc) & np.isnan(gr)) | overflowed
            diff = np.where(same, 0.0, np.abs(gc - gr))
            calibration = np.where(np.isfinite(gn - gr), np.abs(gn - gr), 0.0)
            # Normwise per example: rounding errors land on elements at random (a dot
            # product's error scales with Σ|aᵢbᵢ|, not with its result), so an honest
            # implementation's largest error in the example is the yardstick for every element.
            calibration = np.max(calibration, axis=1, keepdims=True) if calibration.shape[1] else calibration
            tolerance = np.maximum(
                np.maximum(tol.calibration_factor * calibration, tol.floor_ulps * info.ulp(gr)), tol.absolute_floor
            )
            if spec.info.mantissa_bits >= FLOAT64_MANTISSA:
                # No wider reference calibrates autodiff at float64, and its result may be far smaller
                # than the terms it summed (autodiff of x + log1p(expm1(-2x)/2) sums 1 - 1 near 0, where
                # tanh x is exact): gaps below a few ULPs of the largest gradient the batch shows for this
                # argument are below what the computation resolves.
                tolerance = np.maximum(tolerance, tol.floor_ulps * info.ulp(np.float64(scale.largest[a])))
            if floor is not None:
                tolerance = np.maximum(tolerance, floor[:, None])
            ratio = np.where(np.isfinite(diff), diff / tolerance, np.inf)
            ratio = np.where(same, 0.0, ratio)
            if a < len(w):  # variables are compared element-wise only (they are not perturbed)
                reference_ip += _ip(np.where(np.isfinite(gr), gr, 0.0), w[a])
                ip_tolerance += np.sum(np.abs(w[a]) * np.where(np.isfinite(tolerance), tolerance, 0.0), axis=1)
        custom_nonfinite |= np.any(~np.isfinite(gc) & np.isfinite(gr) & ~overflowed, axis=1)
        reference_nonfinite |= np.any(~np.isfinite(gr) & np.isfinite(gc), axis=1)
        if structure.gradient_dtypes[a] is None:
            missing |= np.any(ratio > 1, axis=1)
        element = np.argmax(np.nan_to_num(ratio, nan=np.inf, posinf=np.finfo(float).max), axis=1)
        rows = np.arange(size)
        elem_ratio = ratio[rows, element]
        better = elem_ratio > worst_ratio
        worst_ratio = np.where(better, elem_ratio, worst_ratio)
        worst_at[better] = np.stack([np.full(size, a), element], axis=1)[better]
        c, r = gc[rows, element], gr[rows, element]
        with np.errstate(all="ignore"):
            abs_err = np.abs(c - r)
            figures = np.stack([abs_err, abs_err / np.maximum(np.abs(r), info.tiny), abs_err / info.ulp(r)], axis=1)
        errors[better] = figures[better]
        values[better] = np.stack([c, r], axis=1)[better]
        typical[better] = scale.typical[a]

    disagree = worst_ratio > 1
    with np.errstate(all="ignore"):
        fd_tol = FD_SAFETY * fd.error + ip_tolerance
        custom_vs_fd = np.abs(custom_ip - fd.central)
        reference_vs_fd = np.abs(reference_ip - fd.central)
        fd_resolves = fd.usable & (np.abs(custom_ip - reference_ip) > fd_tol)
        custom_matches_fd = fd.usable & (custom_vs_fd <= fd_tol)
        reference_matches_fd = fd.usable & (reference_vs_fd <= fd_tol)
        # Forward mode (no grad_fn involved, no step): exact up to rounding, so it arbitrates
        # where the differences cannot (singularities, noisy or straddled steps).
        has_jvp = np.isfinite(ev.jvp) if ev.jvp is not None else np.zeros(size, dtype=bool)
        jvp = ev.jvp if ev.jvp is not None else np.full(size, np.nan)
        jvp_tol = 2 * ip_tolerance + 1e-12 * np.abs(jvp)
        custom_matches_jvp = has_jvp & (np.abs(custom_ip - jvp) <= jvp_tol)
        reference_matches_jvp = has_jvp & (np.abs(reference_ip - jvp) <= jvp_tol)
        low, high = np.minimum(fd.left, fd.right), np.maximum(fd.left, fd.right)
        slack = FD_SAFETY * fd.noise + ip_tolerance
        # Between the one-sided derivatives along w: the support-function test of a subgradient
        # (exact for max-type kinks, where the box of neighbouring gradients is too small).
        within_kink = fd.kink & (custom_ip >= low - slack) & (custom_ip <= high + slack)

    rel = errors[:, 1]
    # "Small" is judged against the gradient's typical size in this batch, so an
    # approximation error stays one near a zero of the gradient (cos x at π/2).
    with np.errstate(all="ignore"):
        rel_to_scale = errors[:, 0] / np.maximum(np.abs(values[:, 1]), np.maximum(typical, 1e-300))
    values = np.real(values) if not any(s.is_complex for s in specs) else values
    confirm_by_argument = np.array([TOLERANCES[spec.dtype].confirm_relative if spec.differentiable else 0.0 for spec in specs] + [0.0])
    facts = _Facts(
        custom_nonfinite=custom_nonfinite, reference_nonfinite=reference_nonfinite, disagree=disagree, missing=missing,
        kink=fd.kink, usable=fd.usable, in_hull=in_hull, within_kink=within_kink, at_kink=at_kink,
        fd_resolves=fd_resolves, custom_matches_fd=custom_matches_fd, reference_matches_fd=reference_matches_fd,
        custom_matches_jvp=custom_matches_jvp, reference_matches_jvp=reference_matches_jvp,
        small=rel_to_scale <= APPROXIMATION_MAX_RELATIVE,
        confirmed=rel > confirm_by_argument[worst_at[:, 0]],  # -1 (no element) picks the trailing 0.0
    )
    outcome, category, reference_name = _decide(AGAINST_REFERENCE, facts, domain_ok, f"autodiff of the forward ({ev.reference_dtype})")

    located = (worst_at[:, 0] >= 0) & disagree
    ulps = errors[:, 2][domain_ok & np.isfinite(errors[:, 2])]
    return Judgement(
        outcome=outcome, category=category, argument=np.where(located, worst_at[:, 0], -1),
        element=np.where(located, worst_at[:, 1], -1), custom=np.real(values[:, 0]), reference=np.real(values[:, 1]),
        reference_name=reference_name, abs_error=errors[:, 0], rel_error=errors[:, 1], ulp_error=errors[:, 2],
        evidence={**_evidence(custom_ip, fd, reference_ip=reference_ip), "forward_jvp": jvp, "margin": worst_ratio},
        worst_ulps=float(ulps.max()) if ulps.size else 0.0,
        kink=fd.kink, scale=scale,
    )


def _judge_against_differences(ev, specs, custom, w, custom_ip, fd, domain_ok, in_hull, missing=(), floor=None) -> Judgement:
    """Plain TF functions: their registered gradient against differences only. ``missing``: arguments
    whose gradient is None (read as zero): a disagreement then is `missing-gradient`. ``floor`` (per
    example, per gradient element) allows floor·Σ|w| more in ⟨g, w⟩."""
    size = ev.batch.size
    info = _narrowest(specs)
    tol = TOLERANCES[info.name]
    with np.errstate(all="ignore"):
        scale = sum(np.sum(np.abs(c * t), axis=1) for c, t in zip(custom, w) if c is not None)
        scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), (size,))
        allowed = FD_SAFETY * fd.error + tol.floor_ulps * info.ulp(scale)
        if floor is not None:
            allowed = allowed + floor * sum(np.sum(np.abs(t), axis=1) for t in w)
        gap = np.abs(custom_ip - fd.central)
        rel = gap / np.maximum(np.abs(fd.central), info.tiny)
        ulps = gap / info.ulp(fd.central)
        low, high = np.minimum(fd.left, fd.right), np.maximum(fd.left, fd.right)
        # The one-sided derivatives are quotients over a half step: each still carries the curvature of its
        # side (x a hair beside the kink, its own side's derivative is the truth, up to that).
        slack = FD_SAFETY * fd.noise + tol.floor_ulps * info.ulp(scale) + 2 * np.nan_to_num(fd.side_error, posinf=0.0)
        within_kink = fd.kink & (custom_ip >= low - slack) & (custom_ip <= high + slack)
        unclean = FD_SAFETY * fd.error
        within_kink_error = fd.kink & (custom_ip >= low - slack - unclean) & (custom_ip <= high + slack + unclean)
        straddled = straddles_a_kink(fd)
        between = np.isfinite(custom_ip) & (custom_ip >= low - slack) & (custom_ip <= high + slack)
    # Forward mode (TF's own JVP rules): where the differences cannot judge, agreement with it passes.
    jvp = ev.jvp if ev.jvp is not None else np.full(size, np.nan)
    with np.errstate(all="ignore"):
        jvp_agrees = (custom_ip == jvp) | (  # equal infinities at a singularity agree too
            np.isfinite(jvp) & (np.abs(custom_ip - jvp) <= 2 * tol.floor_ulps * info.ulp(scale) + 1e-12 * np.abs(jvp))
        )
    # (Not beside a pole: there one-sided quotients are finite at any step while the truth overflows.)
    facts = _Facts(
        custom_finite=np.isfinite(custom_ip), kink=fd.kink, usable=fd.usable, in_hull=in_hull, within_kink=within_kink,
        central_finite=fd.usable & np.isfinite(fd.central),
        one_sided_finite=np.isfinite(fd.left) & np.isfinite(fd.right),
        nan_beside_a_finite_side=np.isnan(custom_ip) & (np.isfinite(fd.left) | np.isfinite(fd.right)) & ~fd.singular,
        # An infinite gradient between one-sided derivatives that grow as the step shrinks (a pole) may be
        # the truth overflowing, as may one beside derivatives already within a factor of the dtype's range.
        overflow_plausible=np.isinf(custom_ip) & (fd.singular | (np.maximum(np.abs(fd.left), np.abs(fd.right)) > np.sqrt(info.max))),
        within_allowed=gap <= allowed, missing=np.full(size, bool(missing)), small=rel <= APPROXIMATION_MAX_RELATIVE,
        jvp_agrees=jvp_agrees, straddled=straddled, between=between, within_kink_error=within_kink_error,
        # Differences are the only reference here, and φ's own rounding can exceed eps·|φ| (log(1 + tiny)
        # rounds at 1, not at its result): below the dtype's confirmation level no claim is made.
        resolved=gap > tol.differences_confirm * np.maximum(np.abs(fd.central), scale),
    )
    name = "central differences (float64, Richardson)" if ev.fd_dtype == "float64" else f"central differences ({ev.fd_dtype})"
    outcome, category, _ = _decide(AGAINST_DIFFERENCES, facts, domain_ok, name)
    finite = ulps[domain_ok & np.isfinite(ulps) & fd.usable]
    return Judgement(
        outcome=outcome, category=category, argument=np.full(size, -1), element=np.full(size, -1),
        custom=np.asarray(custom_ip, dtype=np.float64), reference=fd.central, reference_name=np.full(size, name, dtype=object),
        abs_error=gap, rel_error=rel, ulp_error=ulps,
        evidence={**_evidence(custom_ip, fd), "forward_jvp": jvp, "margin": gap / np.maximum(allowed, np.finfo(float).tiny)},
        worst_ulps=float(finite.max()) if finite.size else 0.0, kink=fd.kink,
    )


def _evidence(custom_ip, fd: _Differences, reference_ip=None) -> dict[str, np.ndarray]:
    evidence = {
        "custom_inner_product": np.asarray(custom_ip, dtype=np.float64),
        "differences": fd.central,
        "differences_error": fd.error,
        "left_derivative": fd.left,
        "right_derivative": fd.right,
    }
    if reference_ip is not None:
        evidence["reference_inner_product"] = reference_ip
    return evidence


def _narrowest(specs: Sequence[ArgSpec]) -> DTypeInfo:
    """The least precise floating-point argument's dtype: what the check can promise."""
    return min((s.info for s in specs if s.differentiable), key=lambda i: i.mantissa_bits)


def _flat64(array: np.ndarray, size: int) -> np.ndarray:
    """float64 (complex128 for complex values), one row per example."""
    array = np.asarray(array)
    return array.astype(np.complex128 if np.iscomplexobj(array) else np.float64).reshape(size, -1)


def _ip(gradient: np.ndarray, tangent: np.ndarray) -> np.ndarray:
    """Re Σ conj(g)·w per row: the directional derivative ⟨w, g⟩ under TF's complex convention."""
    return np.real(np.sum(np.conj(gradient) * tangent, axis=1))


# -- precision ------------------------------------------------------------------------

PRECISION_DIGITS = 2.0  # default: precision findings lose at least this many digits (100 ULPs)
PRECISION_RECOVERY = 1e-3  # at float64 a precision error shrinks by ~eps64/eps32 ≈ 2e-9; a wrong formula's does not


def judge_precision(judgement: Judgement, rows: np.ndarray, custom: Sequence[np.ndarray], wide: Sequence[np.ndarray],
                    reference: Sequence[np.ndarray], specs: Sequence[ArgSpec], digits: float = PRECISION_DIGITS,
                    neighbours: tuple[Sequence[np.ndarray], Sequence[np.ndarray]] | None = None) -> None:
    """Value failures (``rows``) whose error vanishes when the same grad_fn runs at float64
    (``wide``): the formula is right and loses precision at the argument's dtype. They become
    `precision` failures if they lose at least ``digits`` decimal digits (log10 of the error in
    ULPs), and pass below that. In place; ``custom``, ``wide`` and ``reference`` hold those rows.

    "Vanishes" means: at most `PRECISION_RECOVERY` of the error at the argument's dtype, or within
    float64 rounding of the largest gradient the batch shows (where float64 cancels too). With
    ``neighbours`` (grad_fn at float64 one ULP of the argument's dtype below and above x), it must
    also vary smoothly there — x's value within a tenth of that error of their midpoint; a jump
    between them is a branch decided differently at float64, not a loss of precision.
    """
    size = judgement.outcome.size
    float64 = TOLERANCES["float64"]
    native_error = np.zeros(rows.size)
    wide_error = np.zeros(rows.size)
    wide_value = np.full(rows.size, np.nan)
    for a, spec in enumerate(specs):
        if a >= len(wide) or not spec.differentiable or np.size(custom[a]) != np.size(reference[a]):
            continue
        r = _flat64(reference[a], rows.size)
        with np.errstate(all="ignore"):
            native_error = np.fmax(native_error, np.max(np.abs(_flat64(custom[a], rows.size) - r), axis=1, initial=0.0))
            rounding = float64.floor_ulps * info_for("float64").ulp(np.float64(judgement.scale.largest[a])) if judgement.scale else 0.0
            wide_error = np.fmax(wide_error, np.max(np.maximum(np.abs(_flat64(wide[a], rows.size) - r) - rounding, 0.0), axis=1,
                                                    initial=0.0))
        located = judgement.argument[rows] == a
        if located.any():
            element = judgement.element[rows][located]
            wide_value[located] = _flat64(wide[a], rows.size)[located, element].real
    recovered = np.isfinite(native_error) & np.isfinite(wide_error) & (wide_error <= PRECISION_RECOVERY * native_error)
    if neighbours is not None:
        below, above = neighbours
        for a in range(min(len(below), len(above), len(wide))):
            if not np.size(below[a]) == np.size(above[a]) == np.size(wide[a]):
                continue
            with np.errstate(all="ignore"):
                midpoint = (_flat64(below[a], rows.size) + _flat64(above[a], rows.size)) / 2
                off = np.max(np.abs(_flat64(wide[a], rows.size) - midpoint), axis=1, initial=0.0)
            recovered &= off <= 0.1 * native_error
    with np.errstate(all="ignore"):
        lost = np.log10(np.maximum(judgement.ulp_error[rows], 1.0))
    for name, values in (("custom_float64", wide_value), ("digits_lost", lost)):
        column = np.array(judgement.evidence.get(name, np.full(size, np.nan)), dtype=np.float64)
        column[rows[recovered]] = values[recovered]
        judgement.evidence[name] = column
    judgement.category[rows[recovered & (lost >= digits)]] = CATEGORY_CODE[Category.PRECISION]
    below = rows[recovered & (lost < digits)]
    judgement.outcome[below], judgement.category[below] = PASS, 0


def judge_plain_rounding(judgement: Judgement, rows: np.ndarray, wide_ip: np.ndarray) -> None:
    """A plain function's value failures (``rows``, judged against differences) where the same
    gradient computed at float64 (``wide_ip``: its ⟨w, g⟩) agrees with the differences: the formula
    is right and its rounding at the argument's dtype made the gap — TensorFlow's own computation,
    which may sum terms far larger than its result (softmax's s·(v − Σsv)). That computation at the
    argument's dtype is the yardstick custom gradients are calibrated against (`reference_native`),
    so its own rounding is no claim: those examples pass, with the digits lost in the evidence. In place."""
    central, custom = judgement.reference[rows], judgement.custom[rows]
    with np.errstate(all="ignore"):
        native_error = np.abs(custom - central)
        wide_error = np.abs(wide_ip - central)
        lost = np.log10(np.maximum(judgement.ulp_error[rows], 1.0))
    # Recovered: the float64 twin sits within what the differences resolve (their own error), far
    # closer than the argument's dtype got; a wrong formula stays as far off at any precision.
    resolvable = FD_SAFETY * np.asarray(judgement.evidence.get("differences_error", np.zeros(judgement.outcome.size)))[rows]
    recovered = (np.isfinite(native_error) & np.isfinite(wide_error)
                 & (wide_error <= np.maximum(PRECISION_RECOVERY * native_error, resolvable)) & (wide_error < 0.1 * native_error))
    column = np.array(judgement.evidence.get("digits_lost", np.full(judgement.outcome.size, np.nan)), dtype=np.float64)
    column[rows[recovered]] = lost[recovered]
    judgement.evidence["digits_lost"] = column
    passed = rows[recovered]
    judgement.outcome[passed], judgement.category[passed] = PASS, 0


# -- second order ---------------------------------------------------------------------


def judge_second_order(evaluation: Evaluation, specs: Sequence[ArgSpec], structure: Structure,
                       missing: Sequence[int] = (), neighbours: Neighbours | None = None) -> tuple[Evaluation, Judgement]:
    """Judge H·w through the custom gradient against autodiff's Hessian-vector product.

    Same element-wise, self-calibrated comparison as first order, without differences
    (there are none of the gradient); every failure is `higher-order`. ``missing`` lists
    arguments whose second-order gradient is None. Returns the evaluation the verdicts
    refer to (custom and reference replaced by the HVPs) and the judgement.
    """
    size = evaluation.batch.size
    hvp = Evaluation(
        batch=evaluation.batch, outputs=evaluation.outputs, custom=evaluation.custom_hvp,
        reference=evaluation.reference_hvp, reference_native=evaluation.reference_hvp_native,
        reference_dtype=evaluation.reference_dtype, phi=np.full_like(evaluation.phi, np.nan),
        phi_scale=np.zeros(size), fd_step=evaluation.fd_step, fd_dtype=evaluation.fd_dtype, fd_eps=evaluation.fd_eps,
    )
    second = Structure(structure.output_dtypes, structure.output_shapes,
                       tuple(None if a in missing else d for a, d in enumerate(structure.gradient_dtypes)),
                       structure.gradient_shapes)
    hull = None
    if neighbours is not None and neighbours.minus_hvp is not None:
        # At a kink autodiff's second derivative is one side's (or neither's): the hull decides.
        hull = Neighbours(neighbours.indices, neighbours.minus_hvp, neighbours.plus_hvp,
                          fine_phi=np.full((len(FD_OFFSETS), neighbours.indices.size), np.nan),
                          fine_phi_scale=np.zeros(neighbours.indices.size))
    # H·w is judged on the scale of what was summed to produce it, not on its result: a
    # gradient of size |g| differentiated along w sums terms of size |g|·|w| (softmax's
    # p·(w − ⟨p, w⟩) at p ≈ 1 cancels two such terms), so rounding leaves floor_ulps ·
    # ulp(max|g| · max|w|) whatever the input's magnitude. (Dividing by |x| assumed power
    # laws; for exp-like gradients it made honest float32 rounding a failure.)
    with np.errstate(all="ignore"):
        def largest(arrays) -> np.ndarray:
            flat = [np.nan_to_num(np.abs(np.asarray(a, dtype=np.float64).reshape(size, -1)), posinf=0.0) for a in arrays]
            return np.maximum.reduce([f.max(axis=1, initial=0.0) for f in flat])

        g = largest(evaluation.reference or evaluation.custom)
        w = largest(evaluation.batch.tangents)
    info = _narrowest(specs)
    floor = TOLERANCES[info.name].floor_ulps * info.ulp(g * w)
    judgement = judge(hvp, specs, second, has_reference=True, neighbours=hull, floor=floor)
    failing = judgement.outcome == FAILURE
    judgement.category[failing] = CATEGORY_CODE[Category.HIGHER_ORDER]
    judgement.outcome[judgement.outcome == NOTE] = PASS  # kinks and the like are first-order matters
    judgement.reference_name[:] = f"Hessian-vector product of autodiff of the forward ({evaluation.reference_dtype})"
    return hvp, judgement


# -- contract checks (from the eager probe) ------------------------------------------


@dataclass
class ContractViolation:
    category: Category  # SHAPE, DTYPE or MISSING_GRADIENT
    argument: int | None
    explanation: str
    contract: dict[str, str] = field(default_factory=dict)  # what was declared, what came back (shown by reports)


def check_contract(specs: Sequence[ArgSpec], structure: Structure) -> list[ContractViolation]:
    """Gradient dtype and shape must equal the input's; the forward must not compute
    in a lower precision than its inputs (the seed article's type mismatch)."""
    violations = []
    for a, spec in enumerate(specs):
        if not spec.differentiable:
            continue
        shape, dtype = structure.gradient_shapes[a], structure.gradient_dtypes[a]
        if shape is not None and tuple(shape) != spec.shape:
            violations.append(ContractViolation(Category.SHAPE, a, (
                f"The gradient for argument {a} has shape {list(shape)} but the argument has shape "
                f"{list(spec.shape)}. TensorFlow accepts this silently; downstream code then "
                "broadcasts or mis-sums it. A broadcast argument's gradient must be summed over the "
                "broadcast axes (tf.reduce_sum(..., axis, keepdims) then tf.reshape to the input shape)."
            ), {"contract": f"gradient shape of argument {a}", "expected": str(list(spec.shape)), "returned": str(list(shape))}))
        if dtype is not None and dtype != spec.dtype:
            violations.append(ContractViolation(Category.DTYPE, a, (
                f"The gradient for argument {a} is {dtype} but the argument is {spec.dtype}. "
                f"TensorFlow passes it on unchanged, so optimizers and accumulators see {dtype} "
                f"values for a {spec.dtype} variable. Cast the gradient to the input's dtype "
                "(tf.cast(grad, x.dtype)) or compute it there."
            ), {"contract": f"gradient dtype of argument {a}", "expected": spec.dtype, "returned": dtype,
                "digits_lost": _digits(spec.info.eps / 2, (info_for(dtype) or spec.info).eps / 2)}))
    # Against the narrowest input: mixing float32 and float64 inputs may rightly give float32.
    narrowest = min((s for s in specs if s.differentiable), key=lambda s: s.info.mantissa_bits)
    for dtype in structure.output_dtypes:
        out = info_for(dtype)
        if out is not None and out.mantissa_bits < narrowest.info.mantissa_bits:
            violations.append(ContractViolation(Category.DTYPE, None, (
                f"The forward returns {dtype} for {narrowest.dtype} inputs: it computes in {dtype} "
                f"internally, so its result carries only {dtype} precision (relative error up to "
                f"{out.eps / 2:.1e}, against {narrowest.info.eps / 2:.1e} for {narrowest.dtype}), while "
                f"the gradient is {structure.gradient_dtypes[specs.index(narrowest)] or 'None'} and "
                "describes the exact function, not the rounded one. Compute the forward in the "
                "input's dtype, or declare the lower-precision contract explicitly."
            ), {"contract": "forward output dtype", "expected": narrowest.dtype, "returned": dtype,
                "digits_lost": _digits(narrowest.info.eps / 2, out.eps / 2)}))
            break
    return violations


def _digits(fine: float, coarse: float) -> str:
    """Decimal digits lost going from relative precision ``fine`` to ``coarse``."""
    return f"{max(0.0, np.log10(coarse / fine)):.1f} of {-np.log10(fine):.1f}"


def explain(verdict: Verdict, specs: Sequence[ArgSpec], evaluation: Evaluation, custom_gradient: bool = True) -> str:
    """One paragraph naming the evidence: where, which reference, by how much.

    For a scalar function the probe (v, w) is divided out: it speaks of derivatives, with one-sided
    ones left and right along x (`along_x`). ``custom_gradient`` False (a plain function): the gradient
    checked is TensorFlow's registered one, and the text names it so (`categories.gradient_label`).
    Numbers are `values.numbers` (two different values never print alike) and errors
    `values.error_summary` (an exact-0 reference reads "from exactly 0", not a relative error)."""
    where = _describe_input(evaluation, verdict.index, specs)
    verdict = along_x(verdict, evaluation)
    e = verdict.evidence
    # For scalar-to-scalar functions, divide the probe (v, w) out: users think in derivatives.
    unit = _probe_unit(evaluation, verdict.index)
    name = "derivative" if unit else "directional derivative ⟨v, J w⟩"
    gradient = "custom gradient" if custom_gradient else TENSORFLOW_GRADIENT  # the noun
    label = gradient_label(custom_gradient)  # before its number

    def d(*values: float) -> list[str]:
        """Inner products as the text shows them, side by side (`values.numbers`)."""
        return numbers(*(value / unit if unit else value for value in values))

    parts = [verdict.category.lead(custom_gradient)]
    if verdict.category in (Category.KINK, Category.BRANCH):
        has_reference = "reference_inner_product" in e
        left, right, custom, *reference = d(e["left_derivative"], e["right_derivative"], e["custom_inner_product"],
                                            *([e["reference_inner_product"]] if has_reference else []))
        reference_text = f", autodiff of the forward {reference[0]}" if has_reference else ""
        parts.append(
            f"At {where}: left {name} {left}, right {right} "
            f"(one-sided differences in {evaluation.fd_dtype}); {gradient} {custom}{reference_text}."
        )
        return " ".join(parts)
    if verdict.argument is not None:
        spec = specs[verdict.argument]
        at = (spec.label or f"argument {verdict.argument}") + (f", element {verdict.element}" if spec.size > 1 else "")
        custom_value, reference_value = verdict.custom, verdict.reference
        if spec.is_complex:  # the verdict's scalar figures hold real parts; show the complex values
            pick = lambda arrays: complex(np.asarray(arrays[verdict.argument][verdict.index]).reshape(-1)[verdict.element or 0])  # noqa: E731
            custom_value, reference_value = pick(evaluation.custom), pick(evaluation.reference)
        custom, reference = numbers(custom_value, reference_value)
        error = error_summary(verdict.abs_error, verdict.rel_error, verdict.ulp_error, spec.dtype, reference_value)
        parts.append(f"At {where} ({at}): {label} {custom} vs {verdict.reference_name} {reference} (error {error}).")
    else:
        custom, reference = d(verdict.custom, verdict.reference)
        # The error in the numbers' own units: a derivative's, when the probe is divided out.
        error = error_summary(verdict.abs_error / abs(unit) if unit else verdict.abs_error, verdict.rel_error, None, "", verdict.reference)
        owner = f"custom {name}" if custom_gradient else f"TensorFlow's {name}"
        parts.append(f"At {where}: {owner} {custom} vs {verdict.reference_name} {reference} (error {error}).")
    if np.isfinite(e.get("custom_float64", np.nan)) and verdict.argument is not None:
        spec = specs[verdict.argument]
        total = (spec.info.mantissa_bits + 1) * np.log10(2)
        same = "The same grad_fn" if custom_gradient else TENSORFLOW_GRADIENT
        parts.append(
            f"{same} at float64 gives {numbers(e['custom_float64'])[0]}: the formula is right, and at {spec.dtype} "
            f"it loses {min(e['digits_lost'], total):.1f} of {total:.1f} significant digits."
        )
    if np.isfinite(e.get("differences", np.nan)) and "reference_inner_product" in e:
        differences_text, custom, reference = d(e["differences"], e["custom_inner_product"], e["reference_inner_product"])
        parts.append(
            f"Central differences in {evaluation.fd_dtype} give {name} {differences_text} "
            f"(Richardson, ±{abs(e['differences_error'] / unit) if unit else e['differences_error']:.2g}); "
            f"{label} {custom}, autodiff {reference}."
        )
    if np.isfinite(e.get("forward_jvp", np.nan)):
        no_grad_fn = " (no grad_fn)" if custom_gradient else ""
        parts.append(f"Forward-mode autodiff of the forward{no_grad_fn} gives {name} {d(e['forward_jvp'])[0]}.")
    return " ".join(p for p in parts if p)


def along_x(verdict: Verdict, evaluation: Evaluation) -> Verdict:
    """``verdict`` with its one-sided derivatives in the order of x, as `explain` tells them (and the
    store keeps them, so evidence and text agree). The differences are one-sided along the probe's
    tangent w, and for a scalar function the explanation divides v·w out to speak of derivatives: where
    w < 0, the side w points to is x's left, so the pair is swapped (a kink with slope 2 left of it and 3
    right read "left derivative 3, right 2"). Elsewhere (a directional derivative) left and right are along w."""
    evidence = verdict.evidence
    if "left_derivative" not in evidence or _probe_unit(evaluation, verdict.index) is None:
        return verdict
    if not float(np.real(np.asarray(evaluation.batch.tangents[0][verdict.index]).reshape(-1)[0])) < 0:
        return verdict
    swapped = {**evidence, "left_derivative": evidence["right_derivative"], "right_derivative": evidence["left_derivative"]}
    return replace(verdict, evidence=swapped)


def _probe_unit(evaluation: Evaluation, index: int) -> float | None:
    """v·w when the target maps one scalar to one scalar, else None."""
    batch = evaluation.batch
    if len(batch.tangents) != 1 or len(batch.cotangents) != 1:
        return None
    w, v = np.asarray(batch.tangents[0][index]), np.asarray(batch.cotangents[0][index])
    if w.size != 1 or v.size != 1:
        return None
    unit = float(w.reshape(-1)[0]) * float(v.reshape(-1)[0])
    return unit if unit != 0 and np.isfinite(unit) else None


def _describe_input(evaluation: Evaluation, index: int, specs: Sequence[ArgSpec]) -> str:
    return describe_inputs([np.asarray(x[index]) for x in evaluation.batch.inputs])
