"""gradfuzz.check on the seed article's examples and on planted bugs of every contract category."""

import json

import numpy as np
import pytest
import tensorflow as tf

import gradfuzz
from gradfuzz.target import load_target
from tests.conftest import EXAMPLES, TARGETS
from tests.targets import planted


def seed(name: str):
    return load_target(f"{EXAMPLES / 'seed_ops.py'}:{name}").fn


def test_seed_my_op_is_an_approximation():
    report = gradfuzz.check(seed("my_op"), inputs=["float64[]"], max_examples=4096, seed=1)
    assert not report.ok and report.verdict == "fail"
    assert [f.category for f in report.failures] == ["approximation"]
    failure = report.failures[0]
    # The evidence is all there: input, custom and reference values, error figures, explanation.
    x = float(failure.inputs[0])
    assert failure.custom[0] is not None and failure.reference[0] is not None
    assert failure.rel_error > 1e-8 and failure.ulp_error > 1e6
    assert "finite-difference" in failure.explanation and "central differences" in failure.explanation.lower()
    assert np.isclose(float(failure.reference[0]) / float(failure.cotangents[0]), np.cos(x))
    with pytest.raises(gradfuzz.GradientCheckFailed) as raised:
        report.raise_if_failed()
    assert isinstance(raised.value, AssertionError) and "approximation" in str(raised.value)


def test_seed_my_op_fixed_passes():
    report = gradfuzz.check(seed("my_op_fixed"), max_examples=8192, seed=1)
    assert report.ok, [f.explanation for f in report.failures]
    report.raise_if_failed()


def test_seed_branched_op_passes_with_a_kink_note_at_zero():
    report = gradfuzz.check(seed("branched_op"), inputs=["float32[]"], max_examples=4096, seed=2)
    assert report.ok, [f.explanation for f in report.failures]
    kinks = [n for n in report.notes if n.category == "kink"]
    assert kinks and float(kinks[0].inputs[0]) == 0.0


def test_seed_type_mismatch_op_explains_the_float32_forward():
    report = gradfuzz.check(seed("type_mismatch_op"), inputs=["float64[]"], max_examples=2048, seed=3)
    assert [f.category for f in report.failures] == ["dtype"]
    assert "returns float32 for float64 inputs" in report.failures[0].explanation


@pytest.mark.slow
def test_a_correct_custom_gradient_never_fails_over_10000_examples():
    softplus = load_target(f"{EXAMPLES / 'stable_ops.py'}:softplus").fn
    report = gradfuzz.check(softplus, max_examples=10_240, seed=4)
    assert report.examples == 10_240
    assert report.ok, [f.explanation for f in report.failures]


def test_plain_tensorflow_functions_are_checked_against_differences():
    report = gradfuzz.check(tf.math.sin, inputs=["float64[3]"], max_examples=2048, seed=5)
    assert report.ok, [f.explanation for f in report.failures]
    kinked = gradfuzz.check(tf.abs, inputs=["float32[3]@-2..2"], max_examples=2048, seed=5)
    assert kinked.ok, [f.explanation for f in kinked.failures]
    assert any(n.category == "kink" for n in kinked.notes)


@pytest.mark.parametrize(
    "fn, specs, category",
    [
        (planted.broadcast_not_reduced, ["float64[3]", "float64[]"], "shape"),
        (planted.float32_gradient, ["float64[]"], "dtype"),
        (planted.forgets_scale, ["float32[]", "float32[]"], "missing-gradient"),
        (planted.nan_at_zero, ["float64[]@0..10"], "non-finite"),
        (planted.grad_raises, ["float32[]"], "exception"),
    ],
)
def test_each_contract_bug_gets_its_category(fn, specs, category):
    report = gradfuzz.check(fn, inputs=specs, max_examples=2048, seed=6)
    assert category in {f.category for f in report.failures}
    assert report.failures[0].category == category, [f.category for f in report.failures]


def test_a_forward_that_raises_is_a_recorded_exception_not_a_crash():
    report = gradfuzz.check(planted.forward_raises, inputs=["float32[]"], max_examples=64, seed=7)
    (failure,) = report.failures
    assert failure.category == "exception" and "this target always fails" in failure.explanation


def test_a_forward_raising_on_part_of_the_range_is_a_domain_note_and_fuzzing_goes_on():
    """The forward's own run-time check (tf.debugging, tf.linalg.inv of a singular matrix) marks its
    domain, as a NaN forward does: those inputs are skipped with a `domain` note saying how many and
    where, and the examples of the same batches that run are judged. A gradient that raises stays an
    `exception` failure (test_each_contract_bug_gets_its_category)."""
    report = gradfuzz.check(planted.forward_raises_above_50, inputs=["float32[]@0..100"], max_examples=8192, seed=8)
    assert report.failures == []
    (note,) = [n for n in report.notes if n.category == "domain"]
    # Counted: every example the batched evaluation raised on (vectorised, TensorFlow checks some of them).
    assert float(note.inputs[0]) >= 50 and "did not hold" in note.explanation and note.count >= 20
    assert report.skipped == note.count and report.examples > 1000, "fuzzing continues on inputs where the target runs"


def test_thin_threshold_mismatch_is_found():
    report = gradfuzz.check(planted.threshold_mismatch, inputs=["float32[]@-10..10"], max_examples=8192, seed=9)
    assert not report.ok
    assert all(0 < f.inputs[0] <= np.float32(1e-3) for f in report.failures), [f.inputs for f in report.failures]


def test_max_examples_is_exact_and_the_same_seed_reproduces_the_run():
    first = gradfuzz.check(seed("my_op"), max_examples=3000, seed=11, shrink=False, batch_size=512)
    second = gradfuzz.check(seed("my_op"), max_examples=3000, seed=11, shrink=False, batch_size=512)
    assert first.examples == second.examples == 3000
    assert first.failures[0].inputs[0].tobytes() == second.failures[0].inputs[0].tobytes()


def test_no_retracing_after_warm_up():
    report = gradfuzz.check(seed("my_op_fixed"), max_examples=20_000, seed=12)
    assert report.examples == 20_000
    assert report.engine["traces"] == 1


def test_store_argument_writes_failures(tmp_path):
    from gradfuzz.store import FailureStore

    gradfuzz.check(seed("my_op"), max_examples=1024, seed=13, store=tmp_path)
    stored = FailureStore(tmp_path).read().failures
    assert stored and {f.category for f in stored} == {"approximation"}


def test_bad_arguments_to_check_are_clear():
    with pytest.raises(gradfuzz.TargetError, match="one spec per argument"):
        gradfuzz.check(planted.broadcast_not_reduced, inputs=["float64[3]"])
    with pytest.raises(gradfuzz.TargetError, match="no input specs"):
        gradfuzz.check(planted.grad_raises)
    with pytest.raises(gradfuzz.SpecError):
        gradfuzz.check(planted.grad_raises, inputs=["float32"])


def test_second_order_catches_a_gradient_that_is_not_differentiable(tmp_path):
    from gradfuzz.replay import replay_store
    from gradfuzz.store import FailureStore
    from tests.corpus.bugs import not_differentiable_gradient

    first_only = gradfuzz.check(not_differentiable_gradient, max_examples=2048, seed=31)
    assert first_only.ok, "first order is right: only the second-order check can see this bug"
    report = gradfuzz.check(not_differentiable_gradient, max_examples=2048, seed=31, order=2, store=tmp_path)
    assert [f.category for f in report.failures] == ["higher-order"]
    assert "Hessian-vector product" in report.failures[0].explanation
    with FailureStore(tmp_path) as store:
        results, _ = replay_store(store)
    assert {r.status for r in results} == {"reproduced"}


def test_second_order_of_a_correct_gradient_passes():
    report = gradfuzz.check(seed("my_op_fixed"), max_examples=4096, seed=32, order=2)
    assert report.ok and report.engine["order"] == 2


def test_integer_and_boolean_arguments_pass_through_unchecked():
    @tf.custom_gradient
    def signed_scale(x, n, flip):
        sign = tf.where(flip, -tf.ones_like(x), tf.ones_like(x))
        return sign * x * tf.cast(n, x.dtype), lambda dy: (dy * sign * tf.cast(n, x.dtype), None, None)

    @tf.custom_gradient
    def off_by_one(x, n):
        return x * tf.cast(n, x.dtype), lambda dy: (dy * tf.cast(n + 1, x.dtype), None)

    report = gradfuzz.check(signed_scale, inputs=["float32[3]", "int32[]@0..5", "bool[3]"], max_examples=2048, seed=41)
    assert report.ok, [f.explanation for f in report.failures]
    plain = gradfuzz.check(lambda x, i: tf.reduce_sum(tf.gather(x, i)), inputs=["float32[5]", "int32[2]@0..4"],
                           max_examples=2048, seed=41)
    assert plain.ok, [f.explanation for f in plain.failures]
    buggy = gradfuzz.check(off_by_one, inputs=["float64[]", "int64[]@-3..3"], max_examples=2048, seed=41)
    assert "mismatch" in {f.category for f in buggy.failures}
    assert buggy.failures[0].inputs[1].dtype == np.int64
    with pytest.raises(gradfuzz.TargetError, match="no floating-point argument"):
        gradfuzz.check(lambda n: n * 2, inputs=["int32[]"])


def test_execution_modes_are_compared(tmp_path):

    @tf.custom_gradient
    def mode_dependent(x):
        # Python-side branching on the execution mode: eager and tf.function disagree.
        return tf.sin(x), lambda dy: dy * tf.cos(x) * (1.0 if tf.executing_eagerly() else 1.5)

    report = gradfuzz.check(mode_dependent, inputs=["float64[]"], max_examples=1024, seed=51,
                            modes=("eager", "function"), store=tmp_path)
    modes = [f for f in report.failures if f.category == "nondeterminism"]
    assert modes and "eager mode" in modes[0].explanation
    clean = gradfuzz.check(seed("my_op_fixed"), max_examples=1024, seed=51, modes=("eager", "function", "xla"))
    assert clean.ok, [f.explanation for f in clean.failures]


def test_nondeterminism_replays(tmp_path):
    from gradfuzz.replay import replay_store
    from gradfuzz.store import FailureStore
    from tests.corpus.bugs import noisy_gradient

    report = gradfuzz.check(noisy_gradient, max_examples=1024, seed=52, store=tmp_path)
    assert report.failures[0].category == "nondeterminism"
    with FailureStore(tmp_path) as store:
        results, _ = replay_store(store)
    assert {r.status for r in results if r.failure.category == "nondeterminism"} == {"reproduced"}


KERNEL = tf.Variable([1.5, -2.0, 0.5], dtype=tf.float32, name="kernel")


@tf.custom_gradient
def scaled_by_kernel(x):
    return x * KERNEL, lambda dy, variables=None: (dy * KERNEL, [dy * x])


@tf.custom_gradient
def kernel_gradient_doubled(x):
    return x * KERNEL, lambda dy, variables=None: (dy * KERNEL, [2 * dy * x])


@tf.custom_gradient
def kernel_gradient_missing(x):
    return x * KERNEL, lambda dy, variables=None: (dy * KERNEL, [None])


def test_gradients_of_variables_read_by_the_target_are_checked(tmp_path):
    from gradfuzz.replay import replay_store
    from gradfuzz.store import FailureStore

    assert gradfuzz.check(scaled_by_kernel, inputs=["float32[3]"], max_examples=2048, seed=61).ok
    doubled = gradfuzz.check(kernel_gradient_doubled, inputs=["float32[3]"], max_examples=2048, seed=61, store=tmp_path)
    failure = doubled.failures[0]  # the primary (most frequent) category
    assert failure.category == "mismatch" and "variable 'kernel:0'" in failure.explanation
    missing = gradfuzz.check(kernel_gradient_missing, inputs=["float32[3]"], max_examples=2048, seed=61)
    assert [f.category for f in missing.failures] == ["missing-gradient"]
    with FailureStore(tmp_path) as store:
        results, _ = replay_store(store)
    assert results and {r.status for r in results} == {"reproduced"}


def test_forward_mode_reference_falls_back_per_part_and_reaches_the_evidence():
    report = gradfuzz.check(seed("branched_op"), inputs=["float32[]"], max_examples=1024, seed=71)
    fallbacks = report.engine["fallbacks"]
    # TF 2.21: pfor cannot convert a taped tf.cond, for the VJP of the forward and for its JVP;
    # only those parts run with map_fn, the custom VJP stays vectorised.
    assert "forward JVP" in fallbacks and "custom VJP" not in fallbacks
    buggy = gradfuzz.check(seed("my_op"), max_examples=512, seed=71)
    assert "Forward-mode autodiff of the forward (no grad_fn) gives derivative" in buggy.failures[0].explanation


def test_complex_gradients_follow_tensorflows_convention():
    """TF's gradient of the real loss Re⟨v, f⟩ is ∂/∂x + i·∂/∂y: conj(f'(z))·v for holomorphic f."""
    from tests.corpus.bugs import complex_gradient_not_conjugated
    from tests.corpus.correct import complex_modulus_squared, complex_square

    assert gradfuzz.check(complex_square, max_examples=2048, seed=81).ok
    assert gradfuzz.check(complex_modulus_squared, max_examples=2048, seed=81).ok
    assert gradfuzz.check(tf.math.exp, inputs=["complex128[2]@-3..3"], max_examples=2048, seed=81).ok
    report = gradfuzz.check(complex_gradient_not_conjugated, max_examples=2048, seed=81)
    assert report.failures[0].category == "mismatch"
    assert "j" in report.failures[0].explanation  # complex values are shown as complex numbers


def test_a_user_supplied_reference_replaces_the_unwrapped_forward(tmp_path):
    from gradfuzz.replay import replay_store
    from gradfuzz.store import FailureStore

    def sin_reference(x):
        return tf.math.sin(x)

    # A plain TF function with a reference: TF's registered gradient is judged against it.
    assert gradfuzz.check(tf.math.sin, inputs=["float64[]"], reference=sin_reference, max_examples=1024, seed=91).ok

    def wrong_reference(x):
        return tf.math.sin(2 * x) / 2  # same value near 0 only: a different function

    report = gradfuzz.check(tf.math.sin, inputs=["float64[]"], reference=wrong_reference, max_examples=1024, seed=91,
                            store=tmp_path)
    assert not report.ok and "autodiff of the forward" in report.failures[0].explanation
    with FailureStore(tmp_path) as store:
        assert {r.status for r in replay_store(store)[0]} == {"target-missing"}  # local functions cannot be reloaded


def test_plain_functions_get_a_forward_mode_reference():
    report = gradfuzz.check(tf.math.sqrt, inputs=["float32[]@0..100"], max_examples=2048, seed=92)
    assert report.ok
    assert not any(n.category == "inconclusive" for n in report.notes), "forward mode decides where differences cannot"


def test_shape_families_find_bugs_that_only_some_shapes_show():
    squeezed = gradfuzz.check(planted.squeezes_gradient, inputs=["float32[n,3]"], max_examples=3072, seed=10)
    assert [f.category for f in squeezed.failures] == ["shape"]
    assert [np.shape(f.inputs[0]) for f in squeezed.failures] == [(1, 3)], "only n = 1 squeezes away a dimension"
    assert [v["inputs"] for v in squeezed.engine["variants"]] == [["float32[3,3]@-100..100"], ["float32[1,3]@-100..100"],
                                                                  ["float32[0,3]@-100..100"]]

    unreduced = gradfuzz.check(planted.broadcast_add_unreduced, inputs=["float32[*]", "float32[*]"], max_examples=4096, seed=10)
    assert unreduced.failures and {f.category for f in unreduced.failures} == {"shape"}

    reduced = gradfuzz.check(planted.broadcast_add, inputs=["float32[*]", "float32[*]"], max_examples=4096, seed=10)
    assert reduced.ok, [f.explanation for f in reduced.failures]
    assert len(reduced.engine["variants"]) >= 3 and reduced.examples >= 4000


def test_cli_checks_every_shape_of_a_family(cli):
    result = cli("check", f"{TARGETS / 'planted.py'}:squeezes_gradient", "--input", "float32[n,3]", "--max-examples", "1024",
                 "--seed", "3", "--format", "json")
    assert result.exit_code == 1
    reports = json.loads(result.stdout)["targets"]
    assert [r["inputs"] for r in reports] == [["float32[3,3]@-100..100"], ["float32[1,3]@-100..100"], ["float32[0,3]@-100..100"]]
    assert [r["verdict"] for r in reports] == ["pass", "fail", "pass"]


def test_the_stored_input_is_shrunk_element_by_element():
    fn, specs = planted.first_element_scaled_above_one, ["float64[8]@-50..50"]
    unshrunk = gradfuzz.check(fn, inputs=specs, max_examples=4096, seed=12, shrink=False)
    shrunk = gradfuzz.check(fn, inputs=specs, max_examples=4096, seed=12)
    assert unshrunk.failures and shrunk.failures
    assert np.count_nonzero(unshrunk.failures[0].inputs[0]) > 1, "without shrinking the example is busy"
    (x,) = shrunk.failures[0].inputs
    assert np.count_nonzero(x) == 1 and x[0] > 1, x
    assert float(f"{x[0]:.1g}") == x[0], f"the value is simple: {x[0]!r}"


def test_a_declared_surrogate_is_checked_for_its_contract_not_its_values():
    @gradfuzz.surrogate("straight-through estimator of round(x)")
    @tf.custom_gradient
    def straight_through(x):
        return tf.round(x), lambda dy: dy

    report = gradfuzz.check(straight_through, inputs=["float32[3]@-2..2"], max_examples=512, seed=1)
    assert report.ok, [(f.category, f.explanation[:200]) for f in report.failures]
    assert "surrogate" in {n.category for n in report.notes}

    @gradfuzz.surrogate("straight-through, but NaN")
    @tf.custom_gradient
    def not_finite(x):
        return tf.round(x), lambda dy: dy * tf.math.log(tf.abs(x) - 5.0)  # NaN for |x| < 5

    report = gradfuzz.check(not_finite, inputs=["float32[3]@-2..2"], max_examples=512, seed=1)
    assert [f.category for f in report.failures][:1] == ["non-finite"]
    with pytest.raises(gradfuzz.TargetError, match="needs a reason"):
        gradfuzz.surrogate("")


@pytest.mark.slow
def test_a_target_whose_forward_mode_cannot_trace_in_a_loop_is_still_judged():
    """tf.nn.ctc_loss with dense labels (TensorFlow's ctc_ops.ctc_loss_dense: a tf.custom_gradient over a
    while loop) has no forward-mode rule for the SymbolicGradient inside its loop: the batch function
    cannot trace with a forward JVP. Before, `check` raised a StagingError; forward mode is optional
    evidence, so the check goes on without it and judges every example."""

    def ctc(logits):  # [T=5, B=2, C=4], time major, blank 0; the second sequence is padded after 3 frames
        return tf.nn.ctc_loss(labels=tf.constant([[1, 2], [3, 0]]), logits=logits, label_length=tf.constant([2, 1]),
                              logit_length=tf.constant([5, 3]), logits_time_major=True, blank_index=0)

    report = gradfuzz.check(ctc, inputs=["float32[5,2,4]@-3..3"], max_examples=64, seed=0)
    assert report.error is None and report.judged == 64 and report.failures == []
    assert report.engine["fallbacks"]["forward JVP"].startswith("not used")


def test_last_bits_that_differ_between_runs_are_rounding_not_nondeterminism():
    """A multithreaded reduction may sum in another order on each call: the last bits differ, the value does
    not (PyTorch's nondet_tol). Stood in for by a relative wobble of 1e-15 (a few ULPs): no `nondeterminism`
    failure. Before: any bitwise difference was one (a deterministic special function failed on it)."""

    @tf.custom_gradient
    def wobbly_last_bits(x):
        wobble = 1.0 + 1e-15 * tf.random.uniform(tf.shape(x), -1.0, 1.0, dtype=x.dtype)
        return tf.sin(x), lambda dy: dy * tf.cos(x) * wobble

    report = gradfuzz.check(wobbly_last_bits, inputs=["float64[4]"], max_examples=512, seed=0)
    assert not [f for f in report.failures if f.category == "nondeterminism"], [f.explanation for f in report.failures]


def _bias_tanh_capturing_b(x, b):
    """A plain wrapper around a custom gradient whose gradient does not differentiate in b (as NVlabs/stylegan2
    dnnlib/tflib/ops/fused_bias_act.py's second-order kernel, which b is not an input of; re-implemented with
    tf.stop_gradient): its first order is right, its second order with respect to b is None."""

    @tf.custom_gradient
    def fused(x, b):
        def grad(dy):
            d = dy * (1 - tf.square(tf.tanh(x + tf.stop_gradient(b))))
            return d, d

        return tf.tanh(x + b), grad

    return 0.5 * fused(x, b)


@pytest.mark.slow
def test_a_plain_functions_second_order_that_is_none_where_the_gradient_changes_is_found_and_replays(tmp_path):
    """order=2 on a plain function (no reference forward to differentiate twice): before, second order was not
    checked at all. The gradient with respect to x changes with b (tanh'(x + b)), yet TensorFlow's second-order
    gradient in b is None: `higher-order`, and replay repeats the observation."""
    from gradfuzz.replay import replay_store
    from gradfuzz.store import FailureStore

    report = gradfuzz.check(_bias_tanh_capturing_b, inputs=["float64[3]@-2..2", "float64[3]@-1..1"], order=2,
                            max_examples=256, seed=0, store=tmp_path)
    found = [f for f in report.failures if f.category == "higher-order"]
    assert found and found[0].argument == 1, [f.explanation for f in report.failures]
    with FailureStore(tmp_path) as store:
        results, _ = replay_store(store)
    assert {r.status for r in results if r.failure.category == "higher-order"} == {"reproduced"}


@pytest.mark.slow
def test_a_plain_functions_second_order_that_is_none_because_the_gradient_is_constant_passes():
    """A None second order is right where the gradient does not change (a linear function), and a plain function
    whose second order TensorFlow computes is not flagged either."""
    linear = gradfuzz.check(lambda x, b: 3.0 * x - b, inputs=["float64[3]", "float64[3]"], order=2, max_examples=128, seed=0)
    smooth = gradfuzz.check(lambda x, b: tf.tanh(x + b), inputs=["float64[3]", "float64[3]"], order=2, max_examples=128, seed=0)
    assert linear.ok and smooth.ok, [f.explanation for f in linear.failures + smooth.failures]
