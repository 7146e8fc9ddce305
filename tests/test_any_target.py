"""Targets that are awkward to batch get a verdict, not an `exception` (issue #15): the engine
chooses how to run each one and says so in the report."""

import pytest

import gradfuzz
from tests.corpus.matrix import primary
from tests.targets import any_kind


@pytest.mark.slow
def test_a_while_loop_series_runs_with_map_fn_and_passes():
    """pfor converts a tf.while_loop slowly (minutes for a series): the engine sees the loop in one
    example's graph and maps the examples instead."""
    report = gradfuzz.check(any_kind.bessel_i0, max_examples=256, seed=5)
    assert report.ok and report.examples >= 256, [(f.category, f.explanation[:300]) for f in report.failures]
    assert report.engine["strategy"].startswith("map_fn (a tf.while_loop")
    assert report.engine["strategy_seconds"] > 0


@pytest.mark.slow
@pytest.mark.parametrize(("name", "expected"), [("project_to_ball", "pass"), ("project_to_ball_unscaled", "mismatch")])
def test_a_gradient_computed_in_numpy_runs_eagerly_and_is_judged(name, expected):
    """grad_fn calls .numpy(): it cannot be traced, so it runs eagerly, example by example, and its
    values are judged like any other's (a wrong one is a `mismatch`, not an `exception`)."""
    report = gradfuzz.check(getattr(any_kind, name), max_examples=128, seed=5)
    assert report.engine["strategy"].startswith("eager, example by example (it cannot be traced")
    assert primary(report) == expected, [(f.category, f.explanation[:300]) for f in report.failures]


def test_a_run_that_evaluates_nothing_is_no_pass(monkeypatch):
    """A budget spent getting ready still judges a minimum of examples (issue #29); when not even that fits in the
    grace past the budget, there is no evidence: the report says so, and what to pass, instead of passing."""
    import gradfuzz.checker

    report = gradfuzz.check(any_kind.bessel_i0, budget=0.001, seed=5)
    assert report.ok and report.examples >= gradfuzz.checker.MINIMUM_EXAMPLES
    monkeypatch.setattr(gradfuzz.checker, "MINIMUM_GRACE", 0.0)
    report = gradfuzz.check(any_kind.bessel_i0, budget=0.001, seed=5)
    assert report.examples == 0 and not report.ok and report.verdict == "error"
    assert "no example was evaluated" in report.error and "larger budget (--budget" in report.error


@pytest.mark.slow
def test_a_keras_layer_is_checked_through_its_inputs_and_replayed_with_its_stored_weights(tmp_path):
    """`module:make_layer` names a factory; the layer's weights are stored with each failure, and
    replay (which builds a layer with new random weights) restores them."""
    from gradfuzz.replay import Replayer, replay_store
    from gradfuzz.store import FailureStore

    assert gradfuzz.check("tests/targets/any_kind.py:dense_swish", max_examples=512, seed=3).ok
    report = gradfuzz.check("tests/targets/any_kind.py:dense_swish_sign_error", max_examples=512, seed=3, store=tmp_path)
    assert primary(report) == "mismatch"
    with FailureStore(tmp_path) as store:
        stored = store.read().failures
        assert stored and all(len(f.variables) == 2 and f.variables[0].shape == (4, 3) for f in stored)
        results, problems = replay_store(store)
    assert not problems and {r.status for r in results} == {"reproduced"}
    target, *_ = Replayer().context(stored[0])  # a new layer from the factory, its weights restored
    assert [v.numpy().tobytes() for v in target.variables] == [v.tobytes() for v in stored[0].variables]


@pytest.mark.slow
def test_a_tf_cond_target_is_vectorised_and_judged_exactly():
    """pfor cannot convert autodiff through a tf.cond; the engine selects between both branches
    instead of mapping example by example (the seed's branched_op ran 100x slower that way), and
    repairs the examples where the unselected branch's derivative is not finite (0·∞)."""
    report = gradfuzz.check(any_kind.reciprocal_or_zero, max_examples=1024, seed=5)
    assert report.ok, [(f.category, f.explanation[:300]) for f in report.failures]
    leaked = [n for n in report.notes if n.category in ("reference-wrong", "inconclusive")]
    assert not leaked, "0·∞ from the unselected branch reached the verdicts"
    assert report.engine["strategy"].startswith("vectorized_map; tf.cond as a select of both branches for")
    assert "reference VJP (float64)" in report.engine["strategy"]
    assert not any(how.startswith("map_fn") for how in report.engine["fallbacks"].values())


@pytest.mark.slow
def test_a_batch_that_never_returns_is_a_hang_finding_and_the_run_goes_on(tmp_path):
    """The watchdog abandons a stuck batch, finds the example that hangs, records it as an
    `exception` (with the time waited), and the run returns within its budget plus a bounded grace;
    replay, under a watchdog of its own, reproduces the hang instead of hanging."""
    from gradfuzz.replay import replay_store
    from gradfuzz.store import FailureStore

    report = gradfuzz.check(any_kind.stalls_below_minus_50, budget="20s", seed=7, store=tmp_path)
    hangs = [f for f in report.failures if f.signature == "exception|Hang"]
    assert hangs and float(hangs[0].inputs[0]) < -50, [(f.category, f.explanation[:200]) for f in report.failures]
    assert "did not return within" in hangs[0].explanation and hangs[0].evidence["hang_seconds"] >= 10
    assert report.seconds < 20 + 30
    with FailureStore(tmp_path) as store:
        results, _ = replay_store(store)
    assert {r.status for r in results} == {"reproduced"}, [(r.status, r.detail) for r in results]


@pytest.mark.slow
def test_a_target_that_cannot_be_traced_leaves_tensorflow_as_it_found_it():
    """A failed tf.map_fn trace leaves a caching device on the thread's variable scope, after which
    every eager tf.recompute_grad raises; gradfuzz's failed traces must clean up after themselves."""
    import tensorflow as tf

    gradfuzz.check(any_kind.project_to_ball, max_examples=32, seed=5)
    assert tf.compat.v1.get_variable_scope().caching_device is None
    assert gradfuzz.check(tf.recompute_grad(lambda x: tf.sin(x) * x), inputs=["float64[3]@-5..5"], max_examples=256, seed=1).ok


def test_a_target_stuck_in_its_first_eager_call_is_a_hang_finding(monkeypatch):
    """The first probe runs outside any batch; before, a target stuck there hung `check` for good."""
    import gradfuzz.checker
    from tests.targets.campaign_ops import hangs_in_python

    monkeypatch.setattr(gradfuzz.checker, "PROBE_HANG_SECONDS", 2.0)
    monkeypatch.setenv("GRADFUZZ_TEST_ALLOW_HANG", "1")
    report = gradfuzz.check(hangs_in_python, inputs=["float64[]"], budget="1s", seed=3)
    monkeypatch.delenv("GRADFUZZ_TEST_ALLOW_HANG")  # lets the abandoned thread finish
    (hang,) = report.failures
    assert hang.category == "exception" and "did not return within 2 s" in hang.explanation
    assert hang.inputs, "recorded with the input it hung on, so it replays"
