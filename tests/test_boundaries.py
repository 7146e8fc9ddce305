"""Branch signatures and boundary bisection: switches found in input space, to the last ULP."""

import numpy as np
import pytest
import tensorflow as tf

import gradfuzz.checker as checker
from benchmarks.detection_targets import product_boundary, sin_product_boundary
from gradfuzz.boundaries import BranchSignature, bisect, differing_pairs
from gradfuzz.checker import check_target
from gradfuzz.options import CheckOptions
from gradfuzz.spec import parse_specs
from gradfuzz.strategies import Plan, expand, step_ulps
from gradfuzz.target import describe_callable, resolve_specs

SPECS = parse_specs(["float32[]@-10..10", "float32[]@-10..10"])


def signature_of(fn) -> BranchSignature:
    return BranchSignature(describe_callable(fn), SPECS, ["float32"], [()])


def test_signature_sees_forward_and_gradient_comparisons():
    signature = signature_of(product_boundary)
    assert signature.available
    x = np.array([0.5, 1.0005, 2.0], np.float32)
    rows = signature([x, np.ones(3, np.float32)])
    # x·y ≤ 1: below both; 1 < x·y ≤ 1.001: the forward's side only; above both.
    assert len({tuple(r) for r in rows}) == 3


def test_bisection_ends_on_adjacent_floats_either_side_of_a_curved_switch():
    signature = signature_of(sin_product_boundary)
    start = [np.array([0.1, -2.0], np.float32), np.array([1.0, -0.3], np.float32)]  # sin(x)·y < 0.5
    end = [np.array([1.5, -2.0], np.float32), np.array([2.0, -3.0], np.float32)]  # > 0.5005
    found = bisect(start, end, SPECS, signature)
    below, above = [x[:2] for x in found], [x[2:] for x in found]
    assert (signature(below) == signature(start)).all() and (signature(above) != signature(start)).any(axis=1).all()
    product = lambda xs: np.sin(xs[0].astype(np.float64)) * xs[1]  # noqa: E731
    assert np.all(np.abs(product(below) - 0.5) < 1e-5) and np.all(np.abs(product(above) - 0.5) < 1e-5)
    for lo, hi in zip(below, above):  # each argument within one ULP
        assert np.all((hi == lo) | (hi == step_ulps(lo, 1, SPECS[0].info)) | (hi == step_ulps(lo, -1, SPECS[0].info)))


def test_targets_without_branches_skip_bisection():
    @tf.custom_gradient
    def smooth(x, y):
        return x * tf.sin(y), lambda dy: (dy * tf.sin(y), dy * x * tf.cos(y))

    assert not signature_of(smooth).available


def test_differing_pairs_really_differ_and_pool_examples_are_used():
    rng = np.random.default_rng(0)
    signatures = rng.integers(0, 2, size=(64, 5)).astype(float)
    pairs = differing_pairs(signatures, rng, 8)
    assert len(pairs) == 8 and all((signatures[i] != signatures[j]).any() for i, j in pairs)
    assert len(differing_pairs(np.zeros((10, 3)), rng, 8)) == 0
    pool = [np.full(4, 3.0, np.float32), np.full(4, -2.0, np.float32)]
    batch = expand(Plan(seed=1, weights=(0, 0, 1, 0), boundary=4, ulps=8), SPECS, [[], []], 512, boundary=pool)
    from_pool = np.abs(batch[0] - 3.0) < 1e-5
    assert 0.3 < from_pool.mean() < 0.7, "boundary=4 puts half of the batch near the pool"
    assert np.all(np.abs(batch[1][from_pool] + 2.0) < 1e-5), "whole examples are drawn: arguments stay together"


@pytest.mark.slow
def test_bisection_finds_a_boundary_no_constant_points_at():
    target = describe_callable(sin_product_boundary)
    specs = resolve_specs(target, None)

    def first(share: float) -> int | None:
        original = checker.BISECT_SHARE
        checker.BISECT_SHARE = share
        try:
            report = check_target(target, specs, CheckOptions(max_examples=8192, seed=0, batch_size=256, shrink=False, budget=600,
                                                              stop_at_first_failure=True))
        finally:
            checker.BISECT_SHARE = original
        assert report.first_failure_at is None or report.failures[0].category == "branch"
        return report.first_failure_at

    with_bisection, without = first(0.1), first(-1.0)
    assert with_bisection is not None and with_bisection <= 2048
    assert without is None or without > 4 * with_bisection


def test_poles_and_rounding_switches_are_points_of_interest():
    from gradfuzz.boundaries import points_for

    (tan_points,) = points_for(describe_callable(tf.math.tan), parse_specs(["float64[]@-3..3"]))
    assert np.pi / 2 in tan_points and -np.pi / 2 in tan_points and 3 * np.pi / 2 not in tan_points  # outside the range
    (round_points,) = points_for(describe_callable(tf.math.round), parse_specs(["float32[]@-3..3"]))
    assert {0.5, -0.5, 1.5, -1.5, 2.5} <= set(round_points)


def test_branch_diagnosis_names_a_curved_switch_found_by_bisection():
    import re

    import gradfuzz

    report = gradfuzz.check(sin_product_boundary, max_examples=8192, seed=0)
    branch = [f for f in report.failures if f.category == "branch"]
    assert branch, [(f.category, f.explanation[:120]) for f in report.failures]
    for finding in branch:
        x, y = (float(v) for v in finding.inputs)
        switch = float(re.search(r"The forward switches at (\S+);", finding.explanation).group(1))
        # The named switch lies on the curve sin(x)·y = 0.5 (along argument 0, on whichever solution
        # branch is nearest: arcsin(0.5/y) or π − arcsin(0.5/y); along argument 1, y = 0.5/sin(x)).
        on_curve = np.sin(switch) * y if finding.argument == 0 else np.sin(x) * switch
        assert abs(on_curve - 0.5) < 1e-5, (finding.argument, x, y, switch)
