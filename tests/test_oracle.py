"""The oracle on hand-made numbers: no TensorFlow involved, every branch of the logic."""

import numpy as np

from gradfuzz.oracle import TOLERANCES, check_contract, differences, judge
from gradfuzz.spec import parse_spec
from gradfuzz.values import FD_OFFSETS, Batch, Evaluation, Neighbours, Structure

STEP = float(np.cbrt(np.finfo(np.float64).eps))
SPEC = parse_spec("float64[]@-10..10")
STRUCTURE = Structure(("float64",), ((),), ("float64",), ((),))


def evaluation(x, f, custom, reference, v=None, w=None):
    x = np.asarray(x, dtype=np.float64)
    v = np.ones_like(x) if v is None else np.asarray(v, dtype=np.float64)
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=np.float64)
    phi = np.stack([v * f(x + k * STEP * w) for k in FD_OFFSETS])
    return Evaluation(
        batch=Batch([x], [v], [w]), outputs=[f(x)], custom=[np.asarray(custom, dtype=np.float64)],
        reference=[np.asarray(reference, dtype=np.float64)], reference_native=[np.asarray(reference, dtype=np.float64)],
        reference_dtype="float64", phi=phi, phi_scale=np.abs(v * f(x)), fd_step=STEP, fd_dtype="float64",
        fd_eps=float(np.finfo(np.float64).eps),
    )


def categories(ev):
    return [(v.index, v.kind, v.category) for v in judge(ev, [SPEC], STRUCTURE, has_reference=True).verdicts]


def test_differences_tell_kinks_from_curvature():
    x = np.array([0.0, 0.3, 2.0])
    smooth = differences(np.stack([np.sin(x + k * STEP) for k in FD_OFFSETS]), np.ones(3), STEP, 2.2e-16)
    assert not smooth.kink.any()
    assert np.allclose(smooth.central, np.cos(x), rtol=1e-9)
    kinked = differences(np.stack([np.abs(x + k * STEP) for k in FD_OFFSETS]), np.ones(3), STEP, 2.2e-16)
    assert kinked.kink.tolist() == [True, False, False]
    assert (kinked.left[0], kinked.right[0]) == (-1.0, 1.0)


def test_a_correct_gradient_gets_no_verdict():
    x = np.linspace(-3, 3, 101)
    assert categories(evaluation(x, np.sin, np.cos(x), np.cos(x))) == []


def test_a_few_ulps_of_disagreement_is_not_a_failure():
    x = np.linspace(-3, 3, 101)
    off_by_ulps = np.cos(x) + 8 * np.spacing(np.cos(x))
    assert categories(evaluation(x, np.sin, off_by_ulps, np.cos(x))) == []


def test_finite_difference_gradients_are_approximations():
    x = np.linspace(-3, 3, 101)
    seed_article = (np.sin(x + 0.001) - np.sin(x)) / 0.001
    found = categories(evaluation(x, np.sin, seed_article, np.cos(x)))
    assert len(found) == 101 and {c for _, _, c in found} == {"approximation"}


def test_a_wrong_formula_is_a_mismatch():
    x = np.array([1.0, 2.0])
    assert categories(evaluation(x, np.sin, -np.cos(x), np.cos(x))) == [(0, "failure", "mismatch"), (1, "failure", "mismatch")]


def test_nan_where_the_reference_is_finite_is_non_finite():
    x = np.array([0.0, 1.0])
    custom = np.array([np.nan, 2.0])
    assert categories(evaluation(x, np.square, custom, 2 * x)) == [(0, "failure", "non-finite")]


def relu_neighbours(ev):
    """Autodiff of relu a few ULPs either side of 0: 0 on the left, 1 on the right."""
    return Neighbours(indices=np.array([0]), minus=[np.array([0.0])], plus=[np.array([1.0])],
                      fine_phi=ev.phi, fine_phi_scale=ev.phi_scale)


def test_a_valid_subgradient_at_a_kink_is_a_note():
    x = np.array([0.0])
    for subgradient in (0.0, 0.5, 1.0):
        ev = evaluation(x, lambda z: np.maximum(z, 0), [subgradient], [1.0])
        found = judge(ev, [SPEC], STRUCTURE, has_reference=True, neighbours=relu_neighbours(ev)).verdicts
        assert [(v.kind, v.category) for v in found] == [("note", "kink")], subgradient


def test_disagreeing_at_a_kink_is_suspect_until_the_neighbourhood_is_seen():
    ev = evaluation(np.array([0.0]), lambda z: np.maximum(z, 0), [0.5], [1.0])
    assert categories(ev) == [(0, "failure", "branch")]


def test_a_value_outside_the_one_sided_range_is_a_branch_failure():
    ev = evaluation(np.array([0.0]), lambda z: np.maximum(z, 0), [2.0], [1.0])
    found = judge(ev, [SPEC], STRUCTURE, has_reference=True, neighbours=relu_neighbours(ev)).verdicts
    assert [(v.kind, v.category) for v in found] == [("failure", "branch")]


def test_near_but_not_at_a_kink_the_other_branch_is_a_failure():
    """Within a difference step of the kink, autodiff at x is exact: the other side's slope is wrong."""
    x = np.array([1e-7])
    ev = evaluation(x, lambda z: np.where(z > 0, z * z, z), [1.0], 2 * x)
    neighbours = Neighbours(indices=np.array([0]), minus=[2 * x], plus=[2 * x], fine_phi=ev.phi, fine_phi_scale=ev.phi_scale)
    found = judge(ev, [SPEC], STRUCTURE, has_reference=True, neighbours=neighbours).verdicts
    assert [(v.kind, v.category) for v in found] == [("failure", "branch")]


def test_when_autodiff_is_wrong_and_differences_agree_with_the_custom_gradient():
    x = np.array([100.0])
    softplus = lambda z: np.logaddexp(0, z)  # noqa: E731
    sigmoid = 1 / (1 + np.exp(-x))
    found = categories(evaluation(x, softplus, sigmoid, [np.nan]))  # naive autodiff: inf/inf
    assert found == [(0, "note", "reference-wrong")]


def test_calibration_tolerates_what_autodiff_itself_gets_wrong_at_low_precision():
    x = np.array([1.0])
    ev = evaluation(x, np.sin, [np.cos(1.0) + 1e-7], np.cos(x))
    assert categories(ev) != []
    ev.reference_native = [np.array([np.cos(1.0) + 2e-7])]  # the honest float32-ish error is larger
    assert categories(ev) == []


def test_outside_the_domain_is_skipped():
    x = np.array([-1.0, 4.0])
    with np.errstate(invalid="ignore"):
        ev = evaluation(x, np.sqrt, [0.0, 0.25], [np.nan, 0.25])
    verdicts = judge(ev, [SPEC], STRUCTURE, has_reference=True)
    assert verdicts.skipped == 1 and verdicts.verdicts == []


def test_tolerance_table_covers_every_dtype():
    from gradfuzz.dtypes import COMPLEX_COMPONENT, DTYPES

    assert set(TOLERANCES) == set(DTYPES) | set(COMPLEX_COMPONENT)


def test_contract_checks():
    spec32, spec64 = parse_spec("float32[3]"), parse_spec("float64[]")
    broken = Structure(("float32",), ((3,),), ("float64", "float64"), ((3,), (3,)))
    found = [(v.category, v.argument) for v in check_contract([spec32, spec64], broken)]
    assert sorted(found) == [("dtype", 0), ("shape", 1)]
    downcast = Structure(("float32",), ((),), ("float64",), ((),))
    (violation,) = check_contract([spec64], downcast)
    assert violation.category == "dtype" and "float32" in violation.explanation


# The correct logsumexp (softmax gradient) at an input seen on an AVX2 machine with oneDNN off:
# its second-order gradient p·(w − ⟨p, w⟩) at p ≈ 0.89 cancels two terms of size |g|·|w| ≈ 27,
# leaving 1.9e-6 (one float32 ULP of 27) where the float64 answer is -1.7e-11. Honest rounding,
# whatever the input's magnitude; a 1e-3 error in the same place is a real second-order bug.
LSE_X = [-29.999998, -1.1754944e-38, 30.0, -0.5, -0.5, 0.0, 1.0, 0.0]
LSE_W = [-17.9955138542, -0.3505175281, -30.1168761599, 0.2905649145, -1.564119847, -0.9617679017, -2.3442540546, -0.030541412]
LSE_GRADIENT = [7.7910222221e-27, 8.3258402138e-14, 8.8973879814e-01, 5.0498773575e-14, 5.0498773575e-14, 8.3258402138e-14,
                2.2631980160e-13, 8.3258402138e-14]
LSE_HVP = [9.4437803086e-26, 2.4782994571e-12, -1.6673559325e-11, 1.5355384818e-12, 1.4418791760e-12, 2.4274077277e-12,
           6.2854943247e-12, 2.5049401573e-12]


def second_order_verdicts(custom_hvp):
    from gradfuzz.oracle import judge_second_order

    spec = parse_spec("float32[8]@-30..30")
    x = np.array([LSE_X], dtype=np.float32)
    gradient = np.array([LSE_GRADIENT])
    ev = Evaluation(
        batch=Batch([x], [np.array([0.8897388], np.float32)], [np.array([LSE_W])]), outputs=[np.array([30.1])],
        custom=[gradient.astype(np.float32)], reference=[gradient], reference_native=[gradient.astype(np.float32)],
        reference_dtype="float64", phi=np.zeros((len(FD_OFFSETS), 1)), phi_scale=np.ones(1), fd_step=STEP,
        fd_dtype="float64", fd_eps=float(np.finfo(np.float64).eps),
        custom_hvp=[np.array([custom_hvp], dtype=np.float32)], reference_hvp=[np.array([LSE_HVP])],
        reference_hvp_native=[np.array([LSE_HVP], dtype=np.float32)],
    )
    structure = Structure(("float32",), ((),), ("float32",), ((8,),))
    _, judgement = judge_second_order(ev, [spec], structure)
    return [v.category for v in judgement.failures]


def test_second_order_tolerance_is_the_size_of_what_was_summed_not_of_the_input():
    rounded = list(LSE_HVP)
    rounded[2] = -1.9073485e-06  # what the softmax gradient's own gradient gives in float32
    assert second_order_verdicts(rounded) == []
    wrong = list(LSE_HVP)
    wrong[2] = LSE_HVP[2] + 1e-3
    assert second_order_verdicts(wrong) == ["higher-order"]


def test_a_nan_gradient_is_non_finite_also_at_a_kink():
    # |x|^1.5 with the gradient 1.5·|x|^1.5/x: NaN at 0, where the differences see a kink-like cusp.
    x = np.array([0.0, 0.0])
    ev = evaluation(x, lambda t: np.abs(t) ** 1.5, [np.nan, np.nan], [0.0, 0.0])
    assert {c for _, _, c in categories(ev)} == {"non-finite"}
    plain = judge(ev, [SPEC], STRUCTURE, has_reference=False)
    assert {v.category for v in plain.failures} == {"non-finite"}


def test_a_none_gradient_of_a_plain_function_is_missing_gradient():
    # TensorFlow returned None (read as zero) for an argument the output depends on.
    x = np.linspace(-2, 2, 9)
    ev = evaluation(x, lambda t: 3 * t, np.zeros_like(x), np.zeros_like(x))
    missing = Structure(("float64",), ((),), (None,), ((),))
    assert {v.category for v in judge(ev, [SPEC], missing, has_reference=False).failures} == {"missing-gradient"}
    assert {v.category for v in judge(ev, [SPEC], STRUCTURE, has_reference=False).failures} == {"mismatch"}


def test_differences_count_rounding_at_the_size_of_every_sampled_value():
    # x·sin x at x ≈ -6e-21: φ(x ± h) ≈ h² dwarfs φ(x) ≈ x², so the differences carry rounding of
    # eps·h²/h — far above the gap to the exact gradient sin x + x·cos x ≈ 2x. Not a failure.
    x = np.array([-6.2e-21, 3.0e-19])
    ev = evaluation(x, lambda t: t * np.sin(t), np.sin(x) + x * np.cos(x), np.sin(x) + x * np.cos(x))
    assert judge(ev, [SPEC], STRUCTURE, has_reference=False).failures == []


def test_a_nan_gradient_at_a_domain_boundary_is_non_finite_but_an_infinite_one_may_be_true():
    # x·√x at 0: the forward is 0 and its right derivative 0; only the left side leaves the domain.
    x = np.array([0.0])
    with np.errstate(invalid="ignore"):
        nan = evaluation(x, lambda t: t * np.sqrt(t), [np.nan], [0.0])
        infinite = evaluation(x, np.sqrt, [np.inf], [np.inf])  # √x at 0: the derivative is +inf
    assert {v.category for v in judge(nan, [SPEC], STRUCTURE, has_reference=False).failures} == {"non-finite"}
    assert judge(infinite, [SPEC], STRUCTURE, has_reference=False).failures == []


def test_a_nan_reference_at_a_kink_does_not_hide_the_subdifferential():
    # ‖x‖ at the origin: autodiff gives 0/0 = NaN, the gradients either side span [-1, 1], and the
    # custom gradient 0 (the minimum-norm subgradient) is a valid one: a kink note, not a branch.
    ev = evaluation(np.array([0.0]), np.abs, [0.0], [np.nan])
    neighbours = Neighbours(indices=np.array([0]), minus=[np.array([-1.0])], plus=[np.array([1.0])], fine_phi=ev.phi,
                            fine_phi_scale=ev.phi_scale)
    found = judge(ev, [SPEC], STRUCTURE, has_reference=True, neighbours=neighbours).verdicts
    assert [(v.kind, v.category) for v in found] == [("note", "kink")]


def test_near_a_kink_agreeing_exact_references_outrank_straddling_differences():
    """As above (the other side's slope near a kink), but forward mode agrees with autodiff at x: the
    two exact references judge, so it is a mismatch (the branch diagnosis may then name the boundary)."""
    x = np.array([1e-7])
    ev = evaluation(x, lambda z: np.where(z > 0, z * z, z), [1.0], 2 * x)
    ev.jvp = 2 * x  # ⟨v, J w⟩ with v = w = 1
    neighbours = Neighbours(indices=np.array([0]), minus=[2 * x], plus=[2 * x], fine_phi=ev.phi, fine_phi_scale=ev.phi_scale)
    found = judge(ev, [SPEC], STRUCTURE, has_reference=True, neighbours=neighbours).verdicts
    assert [(v.kind, v.category) for v in found] == [("failure", "mismatch")]


def test_an_error_that_vanishes_at_float64_is_precision_and_one_that_stays_is_not():
    """log1pexp's 1 - 1/(1 + eˣ) at x = -10 in float32 (5,000 ULPs off, right at float64) is `precision`;
    a finite-difference gradient is as wrong at float64 (approximation); a loss of under 100 ULPs passes."""
    from gradfuzz.oracle import CATEGORIES, judge_precision

    spec32 = parse_spec("float32[]@-50..50")
    structure32 = Structure(("float32",), ((),), ("float32",), ((),))
    truth = np.array([4.5397868702434395e-05, 4.5397868702434395e-05, 0.25])
    custom = np.array([4.5418739e-05, 4.5418739e-05, 0.25 + 30 * 2.0**-25])  # 0.25 + 30 ULPs: 1.5 digits
    wide = np.array([4.5397868702434395e-05, 4.54e-05, 0.25])  # row 1: the error stays at float64
    ev = evaluation(np.array([-10.0, -10.0, 1.0]), lambda z: np.log1p(np.exp(z)), custom, truth)
    judgement = judge(ev, [spec32], structure32, has_reference=True)
    rows = np.flatnonzero(judgement.outcome == 1)
    assert rows.tolist() == [0, 1, 2]
    judge_precision(judgement, rows, [custom[rows]], [wide[rows]], [truth[rows]], [spec32])
    assert [CATEGORIES[c] for c in judgement.category] == ["precision", "approximation", None]
    assert judgement.outcome.tolist() == [1, 1, 0]
    assert 3.5 < judgement.evidence["digits_lost"][0] < 4 and np.isnan(judgement.evidence["digits_lost"][1])


# -- issue #14, class 3: errors on the scale of what was summed ------------------------------------


def _vector_evaluation(x, f, custom, reference, v, w, step=STEP):
    """One example of a vector function (rows: examples), φ sampled as the engine does."""
    x, w = np.asarray(x, np.float64)[None], np.asarray(w, np.float64)[None]
    phi = np.stack([[v * f(x[0] + k * step * w[0])] for k in FD_OFFSETS])
    return Evaluation(
        batch=Batch([x], [np.array([v])], [w]), outputs=[np.array([f(x[0])])], custom=[np.asarray(custom, np.float64)[None]],
        reference=None if reference is None else [np.asarray(reference, np.float64)[None]],
        reference_native=None if reference is None else [np.asarray(reference, np.float64)[None]],
        reference_dtype="float64", phi=phi[:, :, 0] if phi.ndim == 3 else phi, phi_scale=np.abs([v * f(x[0])]),
        fd_step=STEP, fd_dtype="float64", fd_eps=float(np.finfo(np.float64).eps),
    )


def test_a_polynomial_whose_one_sided_terms_cancel_at_one_step_is_no_kink():
    """tf.reduce_prod of [0, 1, 1e-11, 0] (two zeros: gradient 0, a smooth polynomial). At the normal step
    its one-sided derivatives' curvature terms cancel, so the jump does not halve and read as a kink
    (`branch`); a 64× finer step shows no jump, and its differences judge: 0 is right."""
    x, w, v = [0.0, 1.0, 1e-11, 0.0], [1.13864467, -0.57389715, 0.61052465, -0.06095828], 0.6120261
    spec = parse_spec("float64[4]@-3..3")
    structure = Structure(("float64",), ((),), ("float64",), ((4,),))
    ev = _vector_evaluation(x, np.prod, np.zeros(4), None, v, w)
    fine = _vector_evaluation(x, np.prod, np.zeros(4), None, v, np.asarray(w) / 64)
    plain = judge(ev, [spec], structure, has_reference=False)
    # The normal step alone sees a kink; the gradient lies outside its one-sided range by less than the
    # differences' own error (and their curvature), so that is a note (no claim), not yet a pass.
    assert plain.failures == [] and [v.category for v in plain.verdicts] in (["inconclusive"], ["kink"]), \
        "the normal step alone sees a kink"
    gradients = lambda z: np.array([np.prod(np.delete(z, k)) for k in range(4)])  # noqa: E731
    half = STEP / 2 * np.asarray(w)
    neighbours = Neighbours(indices=np.array([0]), minus=[gradients(np.asarray(x) - half)[None]],
                            plus=[gradients(np.asarray(x) + half)[None]], fine_phi=fine.phi * 64, fine_phi_scale=fine.phi_scale * 64)
    assert judge(ev, [spec], structure, has_reference=False, neighbours=neighbours).verdicts == []


def test_at_float64_gaps_below_the_rounding_of_the_largest_gradient_pass():
    """log cosh as x + log1p(expm1(-2x)/2) with the gradient tanh x: at x = -6e-170 autodiff of the forward
    sums 1 - 1 = 0 while tanh x is exact. The gap (6e-170) is far below one ULP of the gradients the batch
    shows (tanh 2 ≈ 0.96), so it is rounding; a real error of 1e-9 at x = 1e-7 still fails."""
    x = np.array([-6.275191672467747e-170, 2.0, 1e-7])
    log_cosh = lambda z: z + np.log1p(np.expm1(-2 * z) / 2)  # noqa: E731
    reference = np.array([0.0, np.tanh(2.0), np.tanh(1e-7)])
    custom = np.tanh(x) + np.array([0.0, 0.0, 1e-9])
    found = judge(evaluation(x, log_cosh, custom, reference), [SPEC], STRUCTURE, has_reference=True).verdicts
    assert [(v.index, v.kind) for v in found] == [(2, "failure")]


def test_a_smooth_but_fast_gradient_beside_a_kink_is_judged_by_the_exact_references():
    """custom_norm (x/(‖x‖ + 1e-19)) at ‖x‖ ≈ 1.7e-19, float32: the differences straddle the norm's
    origin, and 64 ULPs either side turn x/‖x‖ by ~1e-5 of itself. That is no jump (a kink's is a
    sizable part of the gradient), so autodiff and forward mode, agreeing at x, judge: `mismatch`, not
    `branch`."""
    spec = parse_spec("float32[3]@-3..3")
    structure = Structure(("float32",), ((1,),), ("float32",), ((3,),))
    x = np.array([[-1.00004055e-19, -1.07359752e-19, 9.99999193e-20]])
    w, v = np.array([[0.16407159, -0.73864753, 0.29763817]]), np.array([[-0.6924741]])
    reference = np.array([[0.39001423, 0.41870133, -0.3899981]])
    ev = Evaluation(
        batch=Batch([x], [v], [w]), outputs=[np.array([[1.7e-19]])], custom=[np.array([[0.6925022, 0.74343854, -0.6924736]])],
        reference=[reference], reference_native=[reference], reference_dtype="float64",
        phi=np.array([[-3.40946742e-06], [-1.70473371e-06], [-1.22954454e-19], [-1.70473371e-06], [-3.40946742e-06]]),
        phi_scale=np.array([1.2e-19]), fd_step=STEP, fd_dtype="float64", fd_eps=float(np.finfo(np.float64).eps),
        jvp=np.array([float(np.sum(reference * w))]),  # the reference VJP holds v already
    )
    neighbours = Neighbours(indices=np.array([0]), minus=[np.array([[0.39001644, 0.41870026, -0.38999703]])],
                            plus=[np.array([[0.39001201, 0.4187024, -0.38999916]])], fine_phi=ev.phi, fine_phi_scale=ev.phi_scale)
    found = judge(ev, [spec], structure, has_reference=True, neighbours=neighbours).verdicts
    assert [(v.kind, v.category) for v in found] == [("failure", "mismatch")]


def test_an_error_that_vanishes_because_a_branch_flips_at_float64_is_not_precision():
    """threshold_off_by_1e3 at x = float32(1e-3): at float64 `x > 1e-3` holds and grad_fn is right,
    but one float32 ULP below it flips back: grad_fn jumps there, so it is a branch, not precision."""
    from gradfuzz.oracle import CATEGORIES, judge_precision

    spec32 = parse_spec("float32[]@-10..10")
    structure32 = Structure(("float32",), ((),), ("float32",), ((),))
    x = np.float64(np.float32(1e-3))
    ev = evaluation(np.array([x]), lambda z: np.where(z > 0, z * z, z), [1.0], [2 * x])
    judgement = judge(ev, [spec32], structure32, has_reference=True)
    rows = np.flatnonzero(judgement.outcome == 1)
    judge_precision(judgement, rows, [np.array([1.0])], [np.array([2 * x])], [np.array([2 * x])], [spec32],
                    neighbours=([np.array([1.0])], [np.array([2 * x])]))
    assert CATEGORIES[judgement.category[0]] in ("approximation", "mismatch")


# -- issue #14: a singular point inside the step (tf.linalg.inv of near-singular matrices) ----------

_V = np.array([[0.88973879, 0.55713805], [0.80090809, 0.95651382]])


def _inverse_phi(z):
    return float(np.sum(_V * np.linalg.inv(z.reshape(2, 2))))


def _inverse_gradient(z):
    inverse = np.linalg.inv(z.reshape(2, 2))
    return (-(inverse.T @ _V @ inverse.T)).ravel()


def _plain_inverse_judgement(x, w, neighbours=False):
    spec = parse_spec("float64[4]@-2..2")
    structure = Structure(("float64",), ((),), ("float64",), ((4,),))
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    ev = _vector_evaluation(x, _inverse_phi, _inverse_gradient(x), None, 1.0, w)
    ev.jvp = np.array([float(_inverse_gradient(x) @ w)])  # forward mode: the same derivative, no step
    found = None
    if neighbours:
        fine = _vector_evaluation(x, _inverse_phi, _inverse_gradient(x), None, 1.0, w / 64)
        half = STEP / 2 * w
        found = Neighbours(indices=np.array([0]), minus=[_inverse_gradient(x - half)[None]],
                           plus=[_inverse_gradient(x + half)[None]], fine_phi=fine.phi * 64, fine_phi_scale=fine.phi_scale * 64)
    return judge(ev, [spec], structure, has_reference=False, neighbours=found)


def test_a_pole_inside_the_step_is_neither_a_kink_nor_a_mismatch():
    """The registered gradient of tf.linalg.inv (correct) at a numerically singular matrix: every
    difference quotient about doubles when the step halves (a pole inside it), so the differences
    cannot judge; forward mode, exact, agrees. Before: `mismatch` (custom 1e29 vs differences 1e11)."""
    poles = differences(np.stack([1 / (np.array([1e-12, -3e-13]) + k * STEP) for k in FD_OFFSETS]), np.ones(2), STEP, 2.2e-16)
    assert poles.singular.all() and not poles.kink.any() and not poles.usable.any()
    kinked = differences(np.stack([np.abs(np.array([0.0, 1e-7]) + k * STEP) for k in FD_OFFSETS]), np.ones(2), STEP, 2.2e-16)
    assert not kinked.singular.any() and kinked.kink.all()
    curved = differences(np.stack([np.array([0.0, 0.0]) + (k * STEP) ** 2 for k in FD_OFFSETS]), np.ones(2), STEP, 2.2e-16)
    assert not curved.singular.any()
    x, w = [-1.0, -1.0, -1.0, -1.0 - 4.44e-15], [-0.42530397, 1.782069, 2.2573952, 1.29879594]
    assert _plain_inverse_judgement(x, w).failures == []


def test_a_kink_the_finer_step_sees_otherwise_is_no_branch():
    """tf.linalg.inv at a matrix whose entries (1e-6) are smaller than the step: the normal step sees
    a jump, the 64× finer one a jump of the other sign. No kink is at x (the inverse is smooth
    there); the differences cannot judge and forward mode, agreeing, passes it. Before: `branch`.
    (The normal step alone now sees a one-sided quotient growing like 1/step, a pole inside it.)"""
    x, w = [-1.5266864e-06, 1.611102e-06, -1.7299515e-06, 1.987649e-06], [0.8838, 0.6798, -0.6402, -0.001]
    assert _plain_inverse_judgement(x, w).failures == [], "the normal step alone"
    assert _plain_inverse_judgement(x, w, neighbours=True).failures == []


def _relu6_failures(seeds: int, **judge_options) -> list:
    """TF's relu6 gradient (correct) at inputs with several elements within one difference step of
    the kink at 0, as joint special values put them: what the differences ladder claims."""
    spec = parse_spec("float32[4]@-8..8")
    structure = Structure(("float32",), ((),), ("float32",), ((4,),))
    relu6 = lambda z: float(np.sum(np.clip(z, 0.0, 6.0)))  # noqa: E731
    found = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        x = np.concatenate([[2.0], rng.choice([-1, 1], 3) * 10.0 ** rng.uniform(-7, -5, 3)])
        w = rng.standard_normal(4) * np.maximum(1.0, np.abs(x))
        v = rng.choice([-1, 1]) * rng.uniform(0.5, 1.0)
        gradient = ((x > 0) & (x < 6)).astype(np.float64)  # TF's: 1 inside (0, 6), 0 elsewhere, also at 0
        ev = _vector_evaluation(x, relu6, v * gradient, None, v, w)
        ev.jvp = np.array([v * float(gradient @ w)])  # forward mode agrees with it at x
        found += [(seed, v_.category) for v_ in judge(ev, [spec], structure, has_reference=False, **judge_options).failures]
    return found


def test_several_elements_within_a_step_of_a_kink_are_no_claim():
    """The differences straddle kinks near x (not at it): the central difference mixes both sides, and
    the gradient — right at x, and equal to forward mode there — is no evidence of a bug (score.py's
    relu6, clip_by_value and reduce_max controls were false alarms before)."""
    assert _relu6_failures(300) == []


def test_a_wrong_gradient_near_kinks_still_fails():
    """Near the same kinks, a wrong slope on an element far from them (5 instead of 1 at x = 2) leaves
    every value the kinks allow along w: the claim stands."""
    spec = parse_spec("float32[4]@-8..8")
    structure = Structure(("float32",), ((),), ("float32",), ((4,),))
    x = np.array([2.0, 1e-9, -3e-8, 0.5])
    w, v = np.array([0.7, -1.1, 0.4, 0.9]), 0.8
    gradient = ((x > 0) & (x < 6)).astype(np.float64)
    wrong = gradient * np.array([5.0, 1.0, 1.0, 1.0])
    ev = _vector_evaluation(x, lambda z: float(np.sum(np.clip(z, 0.0, 6.0))), v * wrong, None, v, w)
    ev.jvp = np.array([v * float(gradient @ w)])
    assert judge(ev, [spec], structure, has_reference=False).failures, "a wrong slope is not excused by nearby kinks"


def test_a_plain_function_error_below_the_confirmation_level_is_no_claim():
    """logsumexp at float64 with its largest element 0: log(1 + tiny) rounds at 1, not at its result,
    so the differences' rounding estimate (eps·|φ|) is too small and a gradient off by 1e-11 looked
    wrong (score.py's logsumexp control). Below float64's level for differences alone (1e-6) no claim
    is made; an error of 1e-4 is still claimed, every time."""
    spec = parse_spec("float64[5]@-50..50")
    structure = Structure(("float64",), ((),), ("float64",), ((5,),))
    lse = lambda z: float(np.log(np.sum(np.exp(z))))  # noqa: E731

    def claimed(relative: float) -> int:
        count = 0
        for seed in range(100):
            rng = np.random.default_rng(seed)
            x = np.concatenate([[0.0], -rng.uniform(10, 45, 4)])
            w, v = rng.standard_normal(5) * np.maximum(1.0, np.abs(x)), 0.7
            softmax = np.exp(x) / np.sum(np.exp(x))
            ev = _vector_evaluation(x, lse, v * softmax * (1 + relative), None, v, w)
            count += bool(judge(ev, [spec], structure, has_reference=False).failures)
        return count

    assert claimed(1e-11) == 0
    assert claimed(1e-8) == 0  # what log(1 + δ) rounding reaches at δ ≈ 2e-8 (seen at seed 1, 15 s)
    assert claimed(1e-4) == 100


def test_a_plain_functions_own_rounding_is_no_claim_but_a_wrong_formula_is():
    """TF's float32 softmax gradient sums terms far larger than ⟨v, J w⟩: off from the differences by
    ~10³ ULPs of it. The same gradient at float64 agrees with them, so that gap is the dtype's rounding of
    TensorFlow's own computation (the yardstick custom gradients are calibrated against): it passes. A
    formula that is as wrong at float64 stays a failure."""
    from gradfuzz.oracle import judge_plain_rounding

    spec = parse_spec("float32[4]@-10..10")
    structure = Structure(("float32",), ((4,),), ("float32",), ((4,),))
    x, w = np.array([9.999999, -2.0, -2.0, -0.5]), np.array([1.0, 0.5, -0.3, 2.0])
    v = np.array([0.7, -0.6, 0.9, 0.55])
    softmax = lambda z: np.exp(z - z.max()) / np.sum(np.exp(z - z.max()))  # noqa: E731
    exact = softmax(x) * (v - softmax(x) @ v)  # the VJP in float64
    rounded = exact + 1e-3 * np.abs(exact).max()  # what float32 cancellation can leave
    x2, w2 = x[None], w[None]
    phi = np.stack([[v @ softmax(x + k * STEP * w)] for k in FD_OFFSETS])
    ev = Evaluation(batch=Batch([x2], [v[None]], [w2]), outputs=[softmax(x)[None]], custom=[rounded[None]], reference=None,
                    reference_native=None, reference_dtype="float64", phi=phi, phi_scale=np.abs([v @ softmax(x)]), fd_step=STEP,
                    fd_dtype="float64", fd_eps=float(np.finfo(np.float64).eps))
    judgement = judge(ev, [spec], structure, has_reference=False)
    assert judgement.failures, "against the differences alone the rounded gradient fails"
    rows = np.flatnonzero(judgement.outcome == 1)
    judge_plain_rounding(judgement, rows, np.array([exact @ w]))
    assert judgement.failures == [], "its float64 twin agrees with the differences: rounding, no claim"
    wrong = judge(ev, [spec], structure, has_reference=False)
    judge_plain_rounding(wrong, rows, np.array([(2 * exact) @ w]))
    assert wrong.failures, "a formula wrong at float64 too is still claimed"


def _jumps_along(jump, w: np.ndarray, directions: np.ndarray):
    """What the element look measures for a function whose jump along d is ``jump(d)``: the jump
    along each element moved by its own w, and along w and ``directions`` (rows: d)."""
    n = w.size
    along_elements = np.array([jump(np.eye(n)[c] * w[c]) for c in range(n)])
    totals = np.array([jump(w)] + [jump(d) for d in directions])
    ratios = np.concatenate([np.ones((1, n)), directions / w], axis=0)
    return totals[None], along_elements[None], ratios[None], np.full((1, n), 1e-9)


def test_one_kink_through_x_fits_and_several_do_not():
    """max(x1, x2) at a tie has one kink (x1 = x2): the jump along d is |d1 - d2|, which the elements'
    jumps predict. relu(x1) + relu(x2) at (0, 0) has two: |d1| + |d2| fits no single kink, and a
    leaky ReLU of x + b with v of either sign gives jumps of both signs."""
    from gradfuzz.oracle import one_kink_explains

    w = np.array([0.7, 0.3])
    directions = np.abs(w) * np.random.default_rng(1).standard_normal((4, 2))
    assert one_kink_explains(*_jumps_along(lambda d: abs(d[0] - d[1]), w, directions)).all()
    assert not one_kink_explains(*_jumps_along(lambda d: abs(d[0]) + abs(d[1]), w, directions)).any()
    v = np.array([0.8, -0.6])  # φ = Σ v·leaky_relu(x + b) with x = (0, 0), b = 0: both elements at zero
    assert not one_kink_explains(*_jumps_along(lambda d: float(np.sum(0.8 * v * np.abs(d))), w, directions)).any()


def test_a_leaky_relu_of_x_plus_b_with_every_element_at_zero_is_no_branch():
    """StyleGAN2's fused bias + leaky ReLU (NVlabs/stylegan2 dnnlib/tflib/ops/fused_bias_act.py, act='lrelu',
    re-implemented) is a plain function; with x + b = 0 in every element, several kinks lie within one
    step of x, TensorFlow's gradient is that of one of the pieces around x (alpha on every element), and
    the one-sided differences along w bound only two pieces. Before: a `branch` failure for most seeds."""
    import tensorflow as tf

    import gradfuzz

    def lrelu_bias(x, b):
        return tf.nn.leaky_relu(x + b, alpha=0.2) * np.sqrt(2.0)

    x, b = np.zeros((2, 3), np.float32), np.zeros(3, np.float32)
    for seed in range(4):
        gradfuzz.assert_gradient(lrelu_bias, x, b, seed=seed)
    with __import__("pytest").raises(gradfuzz.GradientCheckFailed):
        # The same point with a gradient no piece has (slopes -0.2, outside [0.2, 1]): the claim stands.
        @tf.custom_gradient
        def doubled(x, b):
            y = lrelu_bias(x, b)

            def grad(dy):
                g = dy * np.sqrt(2.0) * tf.where(x + b > 0, 1.0, 0.2) * -1.0
                return g, tf.reduce_sum(g, axis=0)

            return y, grad

        gradfuzz.assert_gradient(doubled, x, b, seed=0)


def test_a_jump_of_the_function_itself_is_no_derivative_to_claim_against():
    """atan2(0, 0) (sweep, tf.math.atan2): φ(0) lies apart from both sides, so both one-sided
    quotients double as the step halves, while the central one need not (the sides sit alike). A
    jump from one side only (the Q of a rank-deficient QR flipping) does the same on that side.
    Neither is a kink or usable differences: TensorFlow's NaN there was a `non-finite` failure."""
    both = differences(np.stack([np.array([0.0 if k == 0 else -1.4 + 0.4 * (k > 0)]) for k in FD_OFFSETS]), np.ones(1), STEP, 2.2e-16)
    one = differences(np.stack([np.array([0.0 if k <= 0 else 2.0]) + k * STEP for k in FD_OFFSETS]), np.ones(1), STEP, 2.2e-16)
    for fd in (both, one):
        assert fd.singular.all() and not fd.usable.any() and not fd.kink.any()
    smooth = differences(np.stack([np.array([np.sin(1.0 + k * STEP)]) for k in FD_OFFSETS]), np.ones(1), STEP, 2.2e-16)
    assert not smooth.singular.any() and smooth.usable.all()


def test_one_sided_derivatives_carry_their_curvature():
    """x a hair left of a kink (bessel_i0e at -2.2e-308): the gradient is the left piece's, and the
    left quotient over half a step differs from it by the side's curvature, which `side_error` holds."""
    x = -2.2e-308
    f = lambda t: np.exp(-np.abs(t)) * (1 + t * t)  # noqa: E731 - a kink at 0, curved both sides
    fd = differences(np.stack([np.array([f(x + k * STEP)]) for k in FD_OFFSETS]), np.ones(1), STEP, 2.2e-16)
    assert fd.kink.all()
    assert abs(fd.left[0] - 1.0) > 8 * fd.noise[0]  # the raw quotient misses the truth by more than rounding
    assert abs(fd.left[0] - 1.0) <= 2 * fd.side_error[0]  # and by less than what curvature owes it


def test_four_tied_elements_of_top_k_are_no_branch():
    """tf.math.top_k(x, 2) at x = (0, 0, 0, 0, -1) (sweep): four tied elements, twelve pieces around x,
    and TensorFlow's gradient is one piece's (the first two indices). A few random directions fitted
    one kink by chance; the piece look then finds the piece. A gradient no piece has still fails."""
    import pytest
    import tensorflow as tf

    import gradfuzz

    def top2(x):
        return tf.math.top_k(x, k=2).values

    x = np.array([0.0, 0.0, 0.0, 0.0, -1.0])
    for seed in range(3):
        gradfuzz.assert_gradient(top2, x, seed=seed)

    @tf.custom_gradient
    def to_the_last(x):
        def grad(dy):  # the largest value's cotangent sent to the smallest element: no piece routes it so
            return tf.concat([tf.zeros_like(x[:-1]), dy[:1]], axis=0)

        return top2(x), grad

    with pytest.raises(gradfuzz.GradientCheckFailed):
        gradfuzz.assert_gradient(to_the_last, x, seed=0)
