"""A newcomer's first hour (#29): the atol/rtol escape hatch, failures in pytest that show the
test's line and not gradfuzz's source, readable exported regression tests."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import gradfuzz
from tests.conftest import EXAMPLES

ROOT = EXAMPLES.parent


@tf.custom_gradient
def forward_difference_sin(x):
    """my_op of the seed article: sin's derivative by a forward difference (error ≤ 0.0005·|sin x| + 1.7e-7)."""
    def grad(dy):
        return dy * (tf.math.sin(x + 0.001) - tf.math.sin(x)) / 0.001
    return tf.math.sin(x), grad


def test_rtol_and_atol_widen_what_passes_like_gradchecks():
    x = np.float64(0.0)
    with pytest.raises(gradfuzz.GradientCheckFailed):
        gradfuzz.assert_gradient(forward_difference_sin, x)
    assert gradfuzz.assert_gradient(forward_difference_sin, x, rtol=1e-6).ok
    assert gradfuzz.assert_gradient(forward_difference_sin, x, atol=1e-6).ok
    with pytest.raises(gradfuzz.GradientCheckFailed):  # too tight a tolerance still fails (no stale cache)
        gradfuzz.assert_gradient(forward_difference_sin, x, rtol=1e-9)
    report = gradfuzz.check(forward_difference_sin, inputs=["float64[]@-3..3"], max_examples=512, seed=0, atol=1e-3)
    assert report.ok, [f.explanation for f in report.failures]
    assert not gradfuzz.check(forward_difference_sin, inputs=["float64[]@-3..3"], max_examples=512, seed=0).ok


def test_atol_applies_to_plain_functions_judged_against_differences():
    @tf.function
    def off(x):  # a plain function whose registered gradient is off by 1e-4 relative (a stop_gradient term)
        return x * x + 1e-4 * x * tf.stop_gradient(x)

    x = np.float64(1.5)
    with pytest.raises(gradfuzz.GradientCheckFailed):
        gradfuzz.assert_gradient(off, x)
    assert gradfuzz.assert_gradient(off, x, atol=1e-3).ok


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "1e-3", True])
def test_a_tolerance_that_is_not_a_finite_non_negative_number_is_refused(bad):
    with pytest.raises(ValueError, match="atol"):
        gradfuzz.assert_gradient(forward_difference_sin, np.float64(0.0), atol=bad)


def test_a_failing_assert_gradient_in_pytest_shows_the_test_not_gradfuzzs_source(tmp_path):
    (tmp_path / "test_user.py").write_text(textwrap.dedent(f"""
        import importlib.util
        import numpy as np
        import gradfuzz

        spec = importlib.util.spec_from_file_location("seed_ops", {str(EXAMPLES / "seed_ops.py")!r})
        seed_ops = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(seed_ops)

        def test_my_op():
            gradfuzz.assert_gradient(seed_ops.my_op, np.float64(0.5))

        def test_my_op_report():
            gradfuzz.check(seed_ops.my_op, max_examples=64, seed=0).raise_if_failed()
    """))
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path / "test_user.py")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    out = run.stdout
    assert run.returncode == 1, out + run.stderr
    assert "2 failed" in out
    assert "GradientCheckFailed" in out and "approximation" in out
    assert "gradfuzz.assert_gradient(seed_ops.my_op, np.float64(0.5))" in out  # the user's own line
    for source_line in ("raise GradientCheckFailed", "report.raise_if_failed()", "__tracebackhide__"):
        assert source_line not in out, out
    assert "gradfuzz/api.py" not in out and "gradfuzz/report.py" not in out, out


def test_exported_tests_write_inputs_as_exact_literals_and_replay_what_needs_more(tmp_path):
    import ast

    import ml_dtypes

    from gradfuzz.regression import literal, tensor, write_tests
    from gradfuzz.store import StoredFailure

    values = [np.float64(0.1) + np.float64(0.2), np.float32(1e-45), np.float16(0.1), np.float32(np.nan),
              np.array([[1.5, -2.0], [3.0, np.inf]], np.float32), np.zeros((0, 3), np.float32), np.array([1, 2], np.int32),
              np.arange(20.0), np.array([1 + 2j], np.complex64), np.array([1.5], ml_dtypes.bfloat16)]
    for value in values:
        text = literal(value)
        back = np.asarray(eval(text, {"np": np, "tensor": tensor, "float": float}))
        assert (back.dtype, back.shape, back.tobytes()) == (value.dtype, value.shape, np.asarray(value).tobytes()), text
    assert literal(np.float32(0.1)) == "np.float32(0.1)" and literal(np.float64(-0.5)) == "np.float64(-0.5)"
    assert literal(np.arange(20.0)).startswith("tensor('float64', [20], ")

    def failure(category, *inputs, **fields):
        return StoredFailure(id=f"{category}0000000", target="ops.py:f", category=category, specs=[],
                             inputs=list(inputs), cotangents=[np.float64(1.0)], tangents=[np.float64(1.0)], **fields)

    path = tmp_path / "test_out.py"
    write_tests([failure("mismatch", np.float32(2.5), np.array([1.0, 0.5], np.float32)),
                 failure("higher-order", np.float64(1.0), np.float64(2.0)),
                 failure("approximation", np.float64(3.0), np.float64(4.0), reference_target="ops.py:plain"),
                 failure("exception", np.float64(1.0)),
                 failure("mismatch", np.float64(1.0), variable_names=["w"], variables=[np.ones(2)])], path, ".gradfuzz")
    source = path.read_text()
    ast.parse(source)
    assert "@pytest.mark.parametrize('x, y', [\n    pytest.param(np.float32(2.5), np.array([1.0, 0.5], dtype=np.float32)" in source
    assert "gradfuzz.assert_gradient(f, x, y)\n" in source
    assert "gradfuzz.assert_gradient(f, x, y, order=2)" in source
    assert "gradfuzz.assert_gradient(f, x, y, reference='ops.py:plain')" in source
    assert source.count("pytest.param(") == 3 and "REPLAYED_CASES = json.loads(" in source  # exception, a layer's weights
    assert '\\"variables\\"' in source and '\\"category\\": \\"exception\\"' in source


def test_regions_read_in_words_in_the_check_output():
    """Before: "1,024 example(s) failing, in everywhere", "in =0"."""
    from gradfuzz.cli import in_words

    assert in_words("everywhere") == "everywhere"
    assert in_words("=0") == "at 0"
    assert in_words("=0, (2, inf)") == "at 0, in (2, inf)"
    assert in_words("[0, 1), (2, inf)") == "in [0, 1), in (2, inf)"


def test_the_html_report_does_not_say_custom_custom():
    """Before: a value finding without a Jacobian entry read "custom custom gradient element"."""
    from gradfuzz.html_report import _numbers
    from gradfuzz.store import StoredFailure
    from gradfuzz.triage import triage

    record = StoredFailure(id="a" * 32, target="ops.py:f", category="mismatch", specs=["float64[]"],
                           inputs=[np.float64(1.0)], cotangents=[np.float64(1.0)], tangents=[np.float64(1.0)],
                           reference_name="autodiff of the forward (float64)", custom_value=2.0, reference_value=1.0)
    rows = dict(_numbers(record, triage([record])[0]))
    assert "custom gradient element" in rows and not any("custom custom" in label for label in rows)
