"""gradfuzz inside a Hypothesis user's own tests (issue #18): `gradfuzz.strategies.tensors` draws
inputs the way a run does, and `gradfuzz.assert_gradient` gives one example a check's verdict."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings

import gradfuzz
from gradfuzz.strategies import tensors
from tests.conftest import EXAMPLES


@tf.custom_gradient
def _sin(x):
    return tf.sin(x), lambda dy: dy * tf.cos(x)


@tf.custom_gradient
def _sin_wrong_below_minus_one(x):
    """cos x, except that below -1 the gradient forgets its sign: a thin-region bug for @given."""
    return tf.sin(x), lambda dy: dy * tf.where(x < -1, -tf.cos(x), tf.cos(x))


def test_tensors_draw_the_spec_and_aim_at_points_of_interest():
    drawn = []

    @settings(max_examples=200, database=None, suppress_health_check=list(HealthCheck))
    @given(tensors("float32[3]@-2..2"))
    def collect(x):
        assert x.shape == (3,) and x.dtype == np.float32 and np.all(np.abs(x) <= 2)
        drawn.append(x)

    collect()
    values = np.concatenate(drawn)
    assert np.any(values == 0) and np.any(values == 1) and np.any(values == -1), "special values and points"
    assert np.any(np.abs(np.abs(values) - 1) < 1e-5) & np.any((values != 0) & (np.abs(values) < 1e-20)), \
        "ULP neighbourhoods and log-scale draws"


def test_a_failure_is_shown_at_the_simplest_input_that_fails_the_same_way():
    """Hypothesis reports the input it shrank to (a plan's, perhaps 7.1e-45); the message also
    names the simplest input with the same failure, as a run's shrinking would."""
    with pytest.raises(gradfuzz.GradientCheckFailed) as raised:
        gradfuzz.assert_gradient(_sin_wrong_below_minus_one, np.float32(-2.7182817))
    message = str(raised.value)
    assert "given input (-2.7182817)" in message and "x = -2.0" in message, message


def test_assert_gradient_passes_a_right_gradient_and_returns_its_report():
    report = gradfuzz.assert_gradient(_sin, np.float32(0.5))
    assert report.ok and report.examples == 1


def test_assert_gradient_gives_the_verdict_and_message_a_check_gives():
    import importlib.util

    spec = importlib.util.spec_from_file_location("seed_ops", EXAMPLES / "seed_ops.py")
    seed_ops = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seed_ops)
    report = gradfuzz.check(seed_ops.my_op, inputs=["float64[]"], max_examples=512, seed=3)
    (finding,) = report.failures
    with pytest.raises(gradfuzz.GradientCheckFailed) as raised:
        gradfuzz.assert_gradient(seed_ops.my_op, finding.inputs[0])
    message = str(raised.value)
    assert f"[{finding.category}]" in message and finding.explanation.split(" At x")[0] in message


def test_a_users_given_test_finds_a_thin_region_bug():
    @settings(max_examples=300, database=None, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(tensors("float32[]@-3..3"))
    def test_gradient(x):
        gradfuzz.assert_gradient(_sin_wrong_below_minus_one, x)

    with pytest.raises(gradfuzz.GradientCheckFailed, match=r"\[(mismatch|branch)\]") as raised:
        test_gradient()
    assert "x = -2.0" in str(raised.value), "shown at an input a person would pick"


def test_assert_gradient_names_an_argument_it_cannot_check():
    with pytest.raises(TypeError, match="argument 0 has dtype"):
        gradfuzz.assert_gradient(_sin, np.array(["a"]))
