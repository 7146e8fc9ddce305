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


def test_a_run_that_evaluates_nothing_is_no_pass():
    """A budget spent getting ready leaves no evidence: the report says so instead of passing."""
    report = gradfuzz.check(any_kind.bessel_i0, budget=0.001, seed=5)
    assert report.examples == 0 and not report.ok and report.verdict == "error"
    assert "no example was evaluated" in report.error and "larger budget" in report.error


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
