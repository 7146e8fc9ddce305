"""One way to plan a check: budgets and example counts mean the same in the CLI, the API, gates and campaigns."""

import json

import tensorflow as tf

import gradfuzz
from gradfuzz.planning import DEFAULT_BUDGET, EXAMPLE_COUNT_SAFETY_NET, CheckRequest, plan_checks
from gradfuzz.target import describe_callable
from tests.conftest import TARGETS


@tf.custom_gradient
def doubled(x):
    return 2.0 * x, lambda dy: 2.0 * dy


def test_a_request_is_shared_evenly_among_its_shape_variants_and_adds_up():
    target = describe_callable(doubled)
    planned = plan_checks([CheckRequest((target,), ("float32[n,3]",), budget=30.0, max_examples=1000, weight=3.0)])
    assert [p.specs[0].shape for p in planned] == [(3, 3), (1, 3), (0, 3)]
    assert [p.max_examples for p in planned] == [334, 333, 333]  # exactly 1000 in all
    assert [p.budget for p in planned] == [10.0] * 3 and [p.weight for p in planned] == [1.0] * 3


def test_a_budget_not_given_is_a_default_or_a_safety_net_for_an_example_count():
    target = describe_callable(doubled)
    (plain,) = plan_checks([CheckRequest((target,), ("float32[]",))])
    (counted,) = plan_checks([CheckRequest((target,), ("float32[]",), max_examples=100)])
    (given,) = plan_checks([CheckRequest((target,), ("float32[]",), budget=5.0, max_examples=100)])
    assert plain.budget is None and plain.seconds == DEFAULT_BUDGET
    assert counted.seconds == EXAMPLE_COUNT_SAFETY_NET and given.seconds == 5.0


def test_max_examples_means_the_same_in_the_cli_and_the_api(cli):
    target = f"{TARGETS / 'planted.py'}:squeezes_gradient"
    result = cli("check", target, "-i", "float32[n,3]", "--max-examples", "600", "--seed", "1", "--format", "json")
    document = json.loads(result.stdout)
    assert sum(t["examples"] for t in document["targets"]) == 600, [t["examples"] for t in document["targets"]]
    report = gradfuzz.check(target, inputs=["float32[n,3]"], max_examples=600, seed=1)
    assert report.examples == 600
