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


# -- a verdict whatever the budget -----------------------------------------------------------------


def test_a_budget_eaten_by_warm_up_still_judges_a_minimum_of_examples():
    """The first call (the eager probe) takes longer than the whole 1 s budget. Before: 0 examples, an error."""
    import time

    from gradfuzz.checker import MINIMUM_EXAMPLES

    calls = []

    @tf.custom_gradient
    def slow_to_get_ready(x):
        if not calls:
            time.sleep(1.2)  # Python: runs on the first call only (the probe), never inside a batch
        calls.append(1)
        return tf.sin(x), lambda dy: dy * tf.cos(x)

    report = gradfuzz.check(slow_to_get_ready, inputs=["float64[3]"], budget=1.0, seed=0)
    assert report.error is None and report.verdict == "pass", report.error
    assert report.examples >= MINIMUM_EXAMPLES and report.warmup_seconds > 1.0


def test_a_warm_up_longer_than_budget_and_grace_still_judges_a_minimum(monkeypatch):
    """Warm-up past the budget *and* the grace after it (a library's series traced for 107 s of a 15 s budget):
    the minimum is judged after the warm-up ends. Before: 0 examples and an error, no verdict."""
    import time

    from gradfuzz import checker

    monkeypatch.setattr(checker, "MINIMUM_GRACE", 0.5)  # the grace, shrunk so the probe's sleep outlasts budget + grace
    calls = []

    @tf.custom_gradient
    def slower_than_budget_and_grace(x):
        if not calls:
            time.sleep(1.6)  # Python: the probe only
        calls.append(1)
        return tf.sin(x), lambda dy: dy * tf.cos(x)

    report = gradfuzz.check(slower_than_budget_and_grace, inputs=["float64[3]"], budget=1.0, seed=0)
    assert report.error is None and report.verdict == "pass", report.error
    assert report.examples >= checker.MINIMUM_EXAMPLES and report.warmup_seconds > 1.5


_LOG = "import tensorflow as tf\n\n\ndef log(x):\n    return tf.math.log(x)\n"


def test_an_error_verdict_is_explained_in_text_and_is_not_exit_1(cli, tmp_path, monkeypatch):
    """Every example outside the domain: no verdict on the gradient. Before: the reason only in JSON, exit 1 (the
    code for failures found)."""
    monkeypatch.setenv("GRADFUZZ_IN_PROCESS", "1")
    (tmp_path / "logs.py").write_text(_LOG)
    result = cli("check", "logs.py:log", "-i", "float64[3]@-10..-1", "--max-examples", "256", "--seed", "1")
    assert result.exit_code == 2, result.output
    text = " ".join(result.stdout.split())
    assert "ERROR" in text and "could not be checked: every one of the 256 examples was outside the forward's domain" in text
    assert "@LO..HI" in text


def test_progress_shows_warm_up_then_examples_elapsed_remaining_and_findings():
    from types import SimpleNamespace

    from rich.console import Console

    from gradfuzz.cli import _progress

    progress = _progress("examples/seed_ops.py:my_op", "text", budget=30.0)
    progress.started = __import__("time").monotonic()

    def shown() -> str:
        console = Console(width=200, record=True)
        console.print(progress)
        return console.export_text()

    assert "warming up (probing, tracing, compiling)" in shown() and "s left" in shown()
    progress.report = SimpleNamespace(examples=4096, examples_per_second=2048.0, failures=[None])
    text = shown()
    assert "4,096 examples checked" in text and "1 finding(s)" in text and "of 30 s" in text and "s left" in text


def test_a_campaign_target_that_never_ran_is_not_run_never_ok():
    from types import SimpleNamespace

    from rich.console import Console

    from gradfuzz.cli import _campaign_table

    def target(name, examples):
        return SimpleNamespace(ref=SimpleNamespace(name=name, inputs=("float64[]",)), seconds=float(examples > 0),
                               examples=examples, rate=0.0, slices=int(examples > 0), error=None, kinds={}, notes={},
                               failures_by_category=dict)

    state = SimpleNamespace(id="c", elapsed=1.0, budget=2.0, remaining=1.0, incidents=[],
                            targets=[target("ran.py:f", 1024), target("starved.py:g", 0)])
    console = Console(width=250, record=True)
    console.print(_campaign_table(state))
    rows = {line.split("│")[1].strip(): line for line in console.export_text().splitlines() if line.count("│") > 2}
    assert "ok" in rows["ran.py:f"] and "not run" in rows["starved.py:g"] and " ok " not in rows["starved.py:g"]


def test_check_of_a_file_target_sees_an_edit_outside_the_function(tmp_path, monkeypatch):
    """A file is loaded afresh per check, so the process-wide cache never serves the old module's function."""
    monkeypatch.chdir(tmp_path)
    source = ("import tensorflow as tf\n\nSCALE = {scale}\n\n\n@tf.custom_gradient\ndef f(x):\n"
              "    return x * x, lambda dy: dy * SCALE * x\n")
    (tmp_path / "scaled.py").write_text(source.format(scale=2.0))
    assert gradfuzz.check("scaled.py:f", inputs=["float64[2]"], max_examples=64, seed=0, shrink=False).ok
    (tmp_path / "scaled.py").write_text(source.format(scale=3.0))
    assert not gradfuzz.check("scaled.py:f", inputs=["float64[2]"], max_examples=64, seed=0, shrink=False).ok
