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
    """Before: "1,024 example(s) failing, in everywhere", "in =0"; `regions.describe` is the one owner of the words."""
    from gradfuzz.regions import describe

    assert describe(["(-inf, 0)", "=0", "(0, inf)"]) == "everywhere"
    assert describe(["=0"]) == "at 0"
    assert describe(["=0", "(2, inf)"]) == "at 0, in (2, inf)"
    assert describe(["=0", "(0, 1)", "(2, inf)"]) == "in [0, 1), in (2, inf)"
    assert describe(["(-1, 0)"]) == "in (-1, 0)"
    assert describe(["(-0.001, 0)", "(0, 0.001)"]) == "near 0"
    assert describe(["*"]) == "anywhere"


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


def test_the_html_report_names_tensorflows_gradient_and_shows_an_exact_zero_in_words():
    from gradfuzz.html_report import _numbers
    from gradfuzz.store import StoredFailure
    from gradfuzz.triage import triage

    record = StoredFailure(id="b" * 32, target="ops.py:f", category="mismatch", specs=["float32[]"],
                           inputs=[np.float32(-0.0)], cotangents=[np.float32(1.0)], tangents=[np.float32(1.0)],
                           reference_name="central differences (float64)", argument=0, element=0,
                           custom_value=3.2e-5, reference_value=0.0, abs_error=3.2e-5, rel_error=2.7e33, ulp_error=7e44,
                           evidence={"gradient": "TensorFlow's gradient", "jacobian_entry": "∂y/∂x"})
    rows = dict(_numbers(record, triage([record])[0]))
    assert rows["TensorFlow's gradient (∂y/∂x)"] == "3.2e-05" and rows["central differences (float64)"] == "0"
    assert rows["error"] == "3.2e-05 from exactly 0" and rows["input"] == "0.0", rows
    assert not any("custom" in label for label in rows)


# -- one consistent story per finding (#29): the explanation a person reads --------------------------


def _explanations(fn, spec="float32[]@-3..3", category=None, examples=512):
    report = gradfuzz.check(fn, inputs=[spec], max_examples=examples, seed=0)
    found = [f for f in [*report.failures, *report.notes] if category is None or f.category == category]
    assert found, [(f.category, f.explanation) for f in [*report.failures, *report.notes]]
    return found


def test_a_kink_names_its_left_derivative_on_the_left():
    """Before: "At x = 1.0: left derivative 3, right 2" for slope 2 left of 1 and 3 right of it
    (the differences are one-sided along the probe's tangent, which was negative)."""
    def plain(x):
        return tf.where(x < 1, 2 * x, 3 * x - 1)

    for finding in _explanations(plain, category="kink"):
        assert "left derivative 2, right 3 " in finding.explanation, finding.explanation
        assert finding.evidence["left_derivative"] / finding.evidence["right_derivative"] == pytest.approx(2 / 3, rel=1e-6)


def test_tensorflows_own_gradient_is_not_called_custom():
    """Before: a plain function's kink note read "The custom gradient lies between them ... custom gradient 3"."""
    def plain(x):
        return tf.where(x < 1, 2 * x, 3 * x - 1)

    for finding in _explanations(plain, category="kink"):
        assert "custom" not in finding.explanation, finding.explanation
        assert "TensorFlow's gradient lies between them" in finding.explanation
        assert "custom" not in str(finding.to_json()["explanation"])


def test_an_exact_zero_reference_reads_as_exactly_zero_not_a_relative_error():
    """Before: "custom 3.2e-05 vs autodiff of the forward (float64) 0 (error 3.2e-05, relative 2.7e+33, 7.1e+44 ULPs)"."""
    from gradfuzz.diagnosis import JacobianEntry

    entry = JacobianEntry(output="y", output_index=0, wrt="x", custom=3.2e-5, reference=0.0,
                          reference_name="autodiff of the forward (float64)", abs_error=3.2e-5, rel_error=2.7e33,
                          ulp_error=7.1e44, dtype="float32", column_agrees=False)
    text = entry.sentence("x = 0.0")
    assert text == "∂y/∂x at x = 0.0: autodiff of the forward (float64) gives exactly 0; the custom gradient gives 3.2e-05."

    @tf.custom_gradient
    def flat(x):
        return 0.0 * x, lambda dy: dy * 3.2e-5 * tf.ones_like(x)

    for finding in _explanations(flat, spec="float64[]@-3..3", category="mismatch"):
        lead, probe = finding.explanation.split(" In the check's own probe")
        assert "gives exactly 0; the custom gradient gives 3.2e-05" in lead and "ULPs" not in lead, finding.explanation
        assert "from exactly 0)." in probe and "ULPs" not in probe, probe  # the probe's dy·0 is exactly 0 too


def test_two_different_numbers_never_print_alike():
    """Before: "custom 0.5 vs autodiff of the forward (float64) 0.5 (error 4.66e-10, ...)"."""
    from gradfuzz.diagnosis import JacobianEntry
    from gradfuzz.values import numbers

    assert numbers(0.5, 0.5 + 2**-31) == ["0.5", "0.5000000005"]
    third, next_one = numbers(1 / 3, np.nextafter(1 / 3, 1.0))
    assert third != next_one and len(third) <= len(repr(1 / 3))
    assert numbers(2.0, 3.0) == ["2", "3"]
    entry = JacobianEntry(output="y", output_index=0, wrt="x", custom=0.5 + 2**-31, reference=0.5,
                          reference_name="autodiff of the forward (float64)", abs_error=2**-31, rel_error=2**-30,
                          ulp_error=2.0**22, dtype="float64", column_agrees=False)
    assert "custom 0.5000000005 vs autodiff of the forward (float64) 0.5 (" in entry.sentence("x = 1.0")


def test_negative_zero_shows_as_zero_and_is_stored_as_it_was():
    from gradfuzz.values import describe_inputs, short_value

    assert describe_inputs([np.float32(-0.0)]) == "x = 0.0" and short_value(np.float64(-0.0)) == "0.0"
    assert describe_inputs([np.array([-0.0, 1.5])]) == "x = [0.  1.5]"
    x = np.array([-0.0, 1.5])
    describe_inputs([x])
    assert np.signbit(x[0])  # display only: the array keeps its bits


# -- the text `oracle.explain` builds itself (#29, continued): one owner for numbers, sides and names ---


def _probe(x: float, w: float, v: float = 1.0):
    """One example of a scalar float32 function probed with dy = v along w (numbers only, no TensorFlow)."""
    from gradfuzz.spec import parse_spec
    from gradfuzz.values import FD_OFFSETS, Batch, Evaluation

    x, v = np.array([x], np.float32), np.array([v], np.float32)
    evaluation = Evaluation(batch=Batch([x], [v], [np.array([w])]), outputs=[x], custom=[np.zeros(1)], reference=[np.zeros(1)],
                            reference_native=None, reference_dtype="float64", phi=np.zeros((len(FD_OFFSETS), 1)),
                            phi_scale=np.ones(1), fd_step=1e-5, fd_dtype="float64", fd_eps=2.2e-16)
    return (parse_spec("float32[]"),), evaluation


def test_the_probe_paragraph_and_findings_without_a_jacobian_entry_print_numbers_like_the_lead():
    """Before: "In the check's own probe (random dy and direction): At x = 0.0 (argument 0): custom 3.2e-05 vs
    autodiff of the forward (float64) 0 (error 3.2e-05, relative 2.7e+33, 7.1e+44 ULPs of float32)", "custom 0.5 vs
    autodiff of the forward (float64) 0.5", and "custom derivative 3 vs central differences (float64, Richardson) 3
    (error 2e-09, …)" for derivatives 3 and 3.000000001 probed along w = 2 (the error in ⟨v, J w⟩'s units)."""
    from gradfuzz.categories import Category
    from gradfuzz.diagnosis import JacobianEntry, apply_jacobian_entry
    from gradfuzz.findings import Findings
    from gradfuzz.oracle import Verdict, explain

    specs, evaluation = _probe(0.0, 1.0)
    zero = Verdict(0, Category.MISMATCH, 0, 0, 3.2e-5, 0.0, "autodiff of the forward (float64)", 3.2e-5, 2.7e33, 7.1e44)
    text = explain(zero, specs, evaluation)
    assert text.endswith("At x = 0.0 (argument 0): custom 3.2e-05 vs autodiff of the forward (float64) 0 (error 3.2e-05 from exactly 0)."), text
    finding = Findings("t", specs).finding(zero, evaluation, None, 0)
    apply_jacobian_entry(finding, JacobianEntry(output="y", output_index=0, wrt="x", custom=3.2e-5, reference=0.0,
                                                reference_name="autodiff of the forward (float64)", abs_error=3.2e-5,
                                                rel_error=2.7e33, ulp_error=7.1e44, dtype="float32", column_agrees=False))
    probe = finding.explanation.split("In the check's own probe (random dy and direction): ")[1]
    assert probe == "At x = 0.0 (argument 0): custom 3.2e-05 vs autodiff of the forward (float64) 0 (error 3.2e-05 from exactly 0).", probe
    assert "ULPs" not in finding.explanation and "relative" not in finding.explanation

    specs, evaluation = _probe(1.0, 1.0)
    close = Verdict(0, Category.MISMATCH, 0, 0, 0.5 + 2**-31, 0.5, "autodiff of the forward (float64)", 2**-31, 2**-30, 2.0**22)
    assert "custom 0.5000000005 vs autodiff of the forward (float64) 0.5 (error 4.66e-10, relative 9.31e-10, " \
        "4.19e+06 ULPs of float32)." in explain(close, specs, evaluation)

    specs, evaluation = _probe(1.0, 2.0)  # no exact Jacobian entry: the inner product ⟨w, g⟩ over v·w = 2
    inner = Verdict(0, Category.MISMATCH, None, None, 6.0, 6.000000002, "central differences (float64, Richardson)", 2e-9, 3.3e-10, 0.0,
                    {"custom_inner_product": 6.0, "differences": 6.000000002, "differences_error": 1e-12})
    assert explain(inner, specs, evaluation).endswith(
        "At x = 1.0: custom derivative 3 vs central differences (float64, Richardson) 3.000000001 (error 1e-09, relative 3.3e-10).")
    nothing = Verdict(0, Category.MISMATCH, None, None, 6e-3, 0.0, "central differences (float64, Richardson)", 6e-3, 1e300, 0.0,
                      {"custom_inner_product": 6e-3, "differences": 0.0, "differences_error": 1e-12})
    assert explain(nothing, specs, evaluation).endswith(
        "At x = 1.0: custom derivative 0.003 vs central differences (float64, Richardson) 0 (error 0.003 from exactly 0).")


def _kink(w: float, v: float = 1.0):
    """A kink at x = 1 with slope 2 left of it and 3 right, as the one-sided differences along w see it."""
    from gradfuzz.categories import Category
    from gradfuzz.oracle import Verdict

    along_w = (3.0, 2.0) if w < 0 else (2.0, 3.0)  # left and right in τ of φ(τ) = v·f(x + τw), over v·w
    left, right = (s * v * w for s in along_w)
    return Verdict(0, Category.KINK, None, None, 2.5 * v * w, 2.5 * v * w, "central differences (float64, Richardson)", 0.0, 0.0, 0.0,
                   {"left_derivative": left, "right_derivative": right, "custom_inner_product": 2.5 * v * w,
                    "differences": 2.5 * v * w, "differences_error": 0.5})


@pytest.mark.parametrize("w, v", [(-0.5, 2.0), (-1.0, -1.0), (0.5, -2.0), (1.0, 1.0)])
def test_explain_itself_names_left_and_right_along_x_and_the_store_keeps_the_same(w, v):
    """Before: `oracle.explain` said "left derivative 3, right 2" for w < 0 (`findings._along_x` swapped the pair
    before calling it, so the text was right only through `Findings`)."""
    from gradfuzz.findings import Findings
    from gradfuzz.oracle import explain

    specs, evaluation = _probe(1.0, w, v)
    verdict = _kink(w, v)
    assert "At x = 1.0: left derivative 2, right 3 (one-sided differences in float64); custom gradient 2.5." \
        in explain(verdict, specs, evaluation)
    finding = Findings("t", specs).finding(verdict, evaluation, None, 0)
    assert "left derivative 2, right 3 " in finding.explanation
    unit = v * w  # the evidence stays in the probe's units, in the order the text tells
    assert (finding.evidence["left_derivative"] / unit, finding.evidence["right_derivative"] / unit) == (2.0, 3.0)


def test_explain_itself_names_tensorflows_gradient():
    """Before: `oracle.explain` wrote "custom" for every target and `categories.in_own_words` rewrote its text by
    regular expression afterwards ("TensorFlow's gradient derivative 2 vs …"; "give it a TensorFlow's gradient of
    its own" in advice about custom gradients)."""
    from gradfuzz import categories
    from gradfuzz.categories import Category
    from gradfuzz.oracle import Verdict, explain

    specs, evaluation = _probe(1.0, -1.0)
    kink = explain(_kink(-1.0), specs, evaluation, custom_gradient=False)
    assert kink.endswith("TensorFlow's gradient lies between them, so it is a valid subgradient; recorded as a note, not a failure. "
                         "At x = 1.0: left derivative 2, right 3 (one-sided differences in float64); TensorFlow's gradient 2.5."), kink
    specs, evaluation = _probe(1.0, 2.0)
    inner = Verdict(0, Category.MISMATCH, None, None, 4.0, 6.0, "central differences (float64, Richardson)", 2.0, 0.33, 0.0,
                    {"custom_inner_product": 4.0, "differences": 6.0, "differences_error": 1e-12, "forward_jvp": 6.0})
    text = explain(inner, specs, evaluation, custom_gradient=False)
    assert text == ("TensorFlow's gradient disagrees with the reference by more than an approximation would explain. At x = 1.0: "
                    "TensorFlow's derivative 2 vs central differences (float64, Richardson) 3 (error 1, relative 0.33). "
                    "Forward-mode autodiff of the forward gives derivative 3."), text
    argument = Verdict(0, Category.NON_FINITE, 0, 0, float("nan"), 3.0, "central differences (float64, Richardson)", float("nan"),
                       float("nan"), float("nan"))
    assert "(argument 0): TensorFlow's gradient nan vs central differences" in explain(argument, specs, evaluation, custom_gradient=False)
    assert "custom" not in text + kink
    for category in Category:
        assert "the custom gradient" not in category.lead(custom_gradient=False).lower(), category
        assert category.lead() == category.explanation
    assert "give it a custom gradient of its own" in Category.HIGHER_ORDER.lead(custom_gradient=False)
    assert not hasattr(categories, "in_own_words")  # the text is built with the right name: nothing rewrites it
