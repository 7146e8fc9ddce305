"""Checks as fast as a unit test, and a verdict whatever the budget (issue #29).

Nothing here measures time: each test asserts the behaviour that makes a call fast (work reused,
not redone) or that gives a verdict (examples judged, an error that says why, an exit code).
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import gradfuzz  # noqa: E402
from gradfuzz.report import GradientCheckFailed  # noqa: E402


def _scaled_square(scale: float):
    """x², with a gradient of scale·x: right for scale 2. Every closure has one name and one source."""

    @tf.custom_gradient
    def square(x):
        return x * x, lambda dy: dy * scale * x

    return square


@pytest.fixture
def count_evaluators(monkeypatch):
    import gradfuzz.warm

    built = []
    original = gradfuzz.warm.Evaluator

    def counting(*args, **kwargs):
        built.append(args[0].name)
        return original(*args, **kwargs)

    monkeypatch.setattr(gradfuzz.warm, "Evaluator", counting)
    return built


def test_assert_gradient_never_shares_compiled_work_between_two_functions():
    right, wrong = _scaled_square(2.0), _scaled_square(2.5)
    x = np.array([1.5, -0.75])
    gradfuzz.assert_gradient(right, x)
    with pytest.raises(GradientCheckFailed, match=r"mismatch|approximation"):
        gradfuzz.assert_gradient(wrong, x)  # the same name and source, compiled on its own
    gradfuzz.assert_gradient(right, x)


def test_assert_gradient_warm_call_skips_the_probe_and_the_cotangent_expansion(monkeypatch):
    import gradfuzz.checker

    fn = _scaled_square(2.0)
    gradfuzz.assert_gradient(fn, np.array([0.5, 2.0]))
    calls = []
    monkeypatch.setattr(gradfuzz.checker, "probe", lambda *a, **k: calls.append("probe"))
    monkeypatch.setattr(gradfuzz.checker, "expansion_for", lambda *a, **k: calls.append("expansion"))
    for x in ([1.0, -3.0], [0.25, 7.0]):
        gradfuzz.assert_gradient(fn, np.array(x))
    assert calls == []


def test_assert_gradient_warm_call_names_an_exception_as_a_first_call_does():
    @tf.custom_gradient
    def guarded(x):
        def grad(dy):
            tf.debugging.assert_less(x, tf.constant(10.0, x.dtype), message="grad_fn refuses x >= 10")
            return dy * 2 * x

        return x * x, grad

    gradfuzz.assert_gradient(guarded, np.array([1.0, 2.0]))  # warms the cache
    with pytest.raises(GradientCheckFailed) as warm:
        gradfuzz.assert_gradient(guarded, np.array([1.0, 20.0]))
    from gradfuzz.checker import check_example
    from gradfuzz.spec import parse_specs
    from gradfuzz.target import describe_callable

    cold = check_example(describe_callable(guarded), parse_specs(["float64[2]"]), [np.array([1.0, 20.0])])
    assert [f.category for f in cold.failures] == ["exception"]
    assert "exception" in str(warm.value) and cold.failures[0].explanation in str(warm.value)


def test_check_reuses_compiled_work_per_function_and_never_across_functions(count_evaluators):
    fn = _scaled_square(2.0)
    first = gradfuzz.check(fn, inputs=["float64[3]"], max_examples=64, seed=0, shrink=False)
    assert first.ok and len(count_evaluators) == 1
    again = gradfuzz.check(fn, inputs=["float64[3]"], max_examples=64, seed=1, shrink=False)
    assert again.ok and again.examples == 64
    assert len(count_evaluators) == 1  # the second check of the function traced nothing new
    other = gradfuzz.check(_scaled_square(3.0), inputs=["float64[3]"], max_examples=64, seed=0, shrink=False)
    assert len(count_evaluators) == 2 and not other.ok  # same name and source, another function


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("arguments, message", [
    (["check", "no/such/file.py:f", "--input", "float64[]"], "No such file: 'no/such/file.py'"),
    (["check", "examples/seed_ops.py:my_op", "--input", "float64[3"], "Malformed input spec 'float64[3'"),
    (["check", "examples/seed_ops.py:my_op", "--modes", "fast"], "Unknown execution mode(s) fast"),
    (["check", "examples/seed_ops.py:my_op", "--reference", "gone.py:f"], "No such file: 'gone.py'"),
    (["check", ":my_op"], "names no module or file"),
])
def test_cli_usage_errors_come_before_tensorflow_and_the_worker(arguments, message):
    """A mistyped spec or path is exit 2 naming the fix, before TensorFlow (or ml_dtypes, most of a second) is
    imported and before a worker process is started."""
    import subprocess
    import sys

    program = ("import sys\nfrom gradfuzz.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
               "    print('exit', e.code, sorted(m for m in ('tensorflow', 'ml_dtypes', 'gradfuzz.supervisor') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", program, *arguments], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "exit 2 []", done.stdout + done.stderr
    assert message in " ".join(done.stderr.split()), done.stderr
