"""The screen: what it passes the oracle passes too; what it flags reaches the oracle."""

import numpy as np
import pytest
import tensorflow as tf

import gradfuzz
from examples.seed_ops import my_op, my_op_fixed
from gradfuzz.categories import Category
from gradfuzz.engine import probe
from gradfuzz.expansion import expansion_for
from gradfuzz.judging import judge_batch
from gradfuzz.oracle import CATEGORY_CODE, FAILURE, NOTE, GradientScale
from gradfuzz.screen import JUDGED_PER_KEY, REVISIT_EVERY, JudgingQuota, ScreenResult
from gradfuzz.strategies import Plan, expand, tangents
from gradfuzz.target import describe_callable, resolve_specs
from gradfuzz.values import Batch, TargetRaised
from gradfuzz.warm import WarmCache
from tests.corpus import bugs, correct

MIXED = [(1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (1, 1, 1, 1)]  # special, near points, uniform, all


def _screen_and_oracle(fn, size=512, regions=MIXED):
    """Screen flags and full-oracle judgement of the same batch (by default mixed: special
    values, near points of interest, uniform, log-scale) of one target."""
    target = describe_callable(fn)
    specs = resolve_specs(target, None)
    warm = WarmCache()
    points = warm.points(target, specs)
    inputs = [np.concatenate(parts) for parts in zip(*[
        expand(Plan(seed=seed, weights=weights, ulps=64), specs, points, size // len(regions))
        for seed, weights in enumerate(regions)
    ])]
    try:
        structure = probe(target, specs, [x[0] for x in inputs])
    except TargetRaised as raised:  # targets that raise on part of their domain are checked elsewhere
        pytest.skip(str(raised))
    evaluator = warm.evaluator(target, specs, structure, False, 1)
    screen = warm.screen(evaluator, points)
    if not screen.available:
        pytest.skip(screen.reason)
    rng = np.random.default_rng(0)
    outputs = list(zip(structure.output_shapes, structure.output_dtypes))
    _, cotangents = expansion_for(specs, points, outputs).expand(Plan(seed=0), len(inputs[0]))
    batch = Batch(inputs, cotangents, tangents(rng, inputs))
    try:
        result = screen(batch)
    except tf.errors.OpError as error:  # targets that raise on part of their domain are checked elsewhere
        pytest.skip(str(error)[:100])
    try:
        judgement = judge_batch(evaluator, evaluator.evaluate(batch), target, points)
    except TargetRaised as raised:  # targets that raise on part of their domain are checked elsewhere
        pytest.skip(str(raised))
    return screen, result, judgement


def _assert_conservative(result: ScreenResult, judgement):
    """Every example the screen passed is a pass (or a kink note) for the full oracle."""
    passed = ~result.flags
    failures = passed & (judgement.outcome == FAILURE)
    notes = passed & (judgement.outcome == NOTE) & (judgement.category != CATEGORY_CODE[Category.KINK])
    assert not failures.any(), f"the screen passed {failures.sum()} examples the oracle fails"
    assert not notes.any(), f"the screen passed {notes.sum()} examples the oracle notes"


@pytest.mark.parametrize("fn", [my_op, my_op_fixed, bugs.wrong_sign, bugs.truncated_series, correct.relu,
                                correct.logsumexp])
def test_what_the_screen_passes_the_oracle_passes(fn):
    screen, result, judgement = _screen_and_oracle(fn)
    assert screen.available, screen.reason
    _assert_conservative(result, judgement)
    # ...and it is not trivially conservative: flagged examples are the oracle's failures.
    failing = judgement.outcome == FAILURE
    if failing.any():
        assert result.flags[failing].all()


@pytest.mark.slow
@pytest.mark.corpus
@pytest.mark.parametrize("name", sorted(bugs.EXPECTED) + sorted(
    name for name, fn in vars(correct).items() if hasattr(fn, "__gradfuzz_inputs__")))
def test_screen_is_conservative_on_the_corpus(name):
    fn = getattr(bugs, name, None) or getattr(correct, name)
    _, result, judgement = _screen_and_oracle(fn)
    _assert_conservative(result, judgement)


def test_a_correct_gradient_is_screened_out_except_on_points_of_interest():
    _, uniform, judgement = _screen_and_oracle(my_op_fixed, regions=[(0, 0, 1, 0)])
    assert (judgement.outcome == FAILURE).sum() == 0
    assert uniform.flags.sum() <= 0.01 * uniform.size
    # Special values sit on points of interest: they go on to the oracle (a kink note is possible there).
    _, special, _ = _screen_and_oracle(my_op_fixed, regions=[(1, 0, 0, 0)])
    assert special.flags.sum() > 0.2 * special.size and special.disagreed == 0


def _result(keys, first, worst, ratio, counts=None, size=100) -> ScreenResult:
    flags = np.zeros(size, bool)
    flags[list(first) + list(worst)] = True
    return ScreenResult(size=size, flags=flags, disagreed=int(flags.sum()), skipped=0, score=0.0,
                        scale=GradientScale((1.0,), (1.0,)), keys=np.array(keys), counts=np.array(counts or [90] * len(keys)),
                        first=np.array(first), worst=np.array(worst),
                        worst_ratio=np.array(ratio, dtype=np.float64))


def _rows(quota, result, complete=False):
    return quota.choose(result, complete)[0].tolist()


def test_quota_judges_each_kind_a_few_times_then_only_new_extremes():
    quota = JudgingQuota()
    common = _result([7], [0], [5], [10.0])
    for _ in range(JUDGED_PER_KEY):
        assert _rows(quota, common) == [0, 5]
    assert _rows(quota, common) == []  # saturated
    assert _rows(quota, _result([7], [0], [9], [25.0])) == [9]  # more than twice as far out
    # A key never seen before is judged at once, however rare, next to a saturated one.
    rare = _result([7, 300], [0, 63], [5, 63], [10.0, 1e9])
    assert 63 in _rows(quota, rare)


def test_quota_weights_judged_examples_by_how_many_they_stand_for():
    rows, weights = JudgingQuota().choose(_result([7, 300], [0, 63], [5, 63], [10.0, 1e9], counts=[98, 1]))
    assert rows.tolist() == [0, 5, 63] and weights.tolist() == [49.0, 49.0, 1.0]


def test_quota_revisits_every_key_and_judges_everything_when_complete():
    quota = JudgingQuota()
    common = _result([7], [0], [5], [10.0])
    chosen = [len(_rows(quota, common)) for _ in range(2 * REVISIT_EVERY)]
    assert sum(size > 0 for size in chosen[JUDGED_PER_KEY:]) == 2  # the revisits
    assert _rows(quota, common, complete=True) == [0, 5]


def test_screened_check_counts_flagged_and_judged():
    report = gradfuzz.check(my_op, max_examples=65_536, batch_size=4096, seed=3)
    assert report.engine["screen"]["used"]
    assert report.disagreed == report.examples  # the finite-difference gradient is off everywhere
    assert 0 < report.judged < report.examples
    assert [f.category for f in report.failures] == ["approximation"]
    # The count estimates how many examples fail this way (each judged one stands for its key).
    assert report.judged < report.failures[0].count <= report.disagreed

    fixed = gradfuzz.check(my_op_fixed, max_examples=65_536, batch_size=4096, seed=3)
    # Nothing disagrees; examples on points of interest go on, and few of them are judged.
    assert fixed.ok and fixed.disagreed == 0 and fixed.judged < 0.01 * fixed.examples


def test_a_rare_failure_among_common_ones_is_found():
    # Off everywhere by 0.1% (an approximation) and by a factor 3 below -99.9 (0.05% of the range).
    @gradfuzz.inputs("float32[]@-100..100")
    @tf.custom_gradient
    def two_bugs(x):
        def grad(dy):
            return dy * tf.where(x < -99.9, 3.0, 1.001) * tf.cos(x)

        return tf.sin(x), grad

    report = gradfuzz.check(two_bugs, max_examples=200_000, batch_size=4096, seed=5)
    categories = {f.category for f in report.failures}
    assert "mismatch" in categories, [(f.category, f.region) for f in report.failures]
    assert report.judged < report.examples / 10


def _warm_screen(fn):
    target = describe_callable(fn)
    specs = resolve_specs(target, None)
    warm = WarmCache()
    points = warm.points(target, specs)
    structure = probe(target, specs, [np.zeros(s.shape, s.numpy_dtype) for s in specs])
    return warm.screen(warm.evaluator(target, specs, structure, False, 1), points)


def test_screen_traces_once_across_batch_sizes():
    screen = _warm_screen(my_op)
    for size in (1, 7, 100, 4096, 70000):  # 70000 rows: more than one compiled chunk of the expansion
        result = screen.planned(Plan(seed=size), size)
        assert result.size == size and result.counts.sum() <= size
    assert screen.traces == 1


@pytest.mark.parametrize("fn", [my_op, bugs.huber_switch_mismatch, bugs.wrong_only_at_zero])
def test_a_plan_screened_on_the_device_is_the_batch_the_host_expands(fn):
    """The device expands the plan and screens it in one call; only the candidates come back. They
    are the host expansion's rows bit for bit, and the host batch screens the same."""
    screen = _warm_screen(fn)
    plan, size = Plan(seed=11, weights=(1, 1, 1, 1), ulps=64), 3000
    on_device = screen.planned(plan, size)
    inputs, cotangents = screen.expansion.expand(plan, size)
    on_host = screen(Batch(inputs, cotangents, []))
    assert on_device.keys.tolist() == on_host.keys.tolist() and on_device.counts.tolist() == on_host.counts.tolist()
    assert on_device.first.tolist() == on_host.first.tolist() and on_device.worst.tolist() == on_host.worst.tolist()
    rows = on_device.candidate_rows
    assert set(rows.tolist()) == set(on_device.first.tolist()) | set(on_device.worst.tolist())
    for returned, expanded in zip([*on_device.candidates.inputs, *on_device.candidates.cotangents], [*inputs, *cotangents]):
        assert returned.tobytes() == expanded[rows].tobytes()
    assert on_device.flags is None and on_device.bytes_returned < on_host.bytes_returned


def test_plain_functions_and_second_order_are_not_screened():
    plain = gradfuzz.check(tf.math.softplus, inputs=["float32[]"], max_examples=2048)
    assert not plain.engine["screen"]["used"] and plain.judged == plain.examples
    second = gradfuzz.check(my_op_fixed, max_examples=2048, order=2)
    assert not second.engine["screen"]["used"] and second.judged == second.examples


def test_typical_size_is_the_median_of_finite_values_and_zero_without_any():
    from gradfuzz.screen import _median_of_sample

    median = tf.function(lambda values: _median_of_sample(tf.constant(values, tf.float64), tf.constant(len(values))))
    assert float(median([1.0, 2.0, 3.0, 4.0])) == np.median([1.0, 2.0, 3.0, 4.0])
    assert float(median([1.0, np.inf, 3.0, np.nan])) == 2.0
    assert float(median([np.nan] * 5)) == 0.0


def test_a_screened_check_moves_its_plans_not_its_batches():
    """Screened, a batch is expanded and judged on the device: per example, host↔device traffic is a
    fraction of a byte (plans, summaries, the few examples judged). Unscreened (a plain TF function),
    every example's input and cotangent cross over."""
    screened = gradfuzz.check(my_op_fixed, max_examples=2**16, seed=1)
    assert screened.engine["screen"]["used"] and screened.examples == 2**16
    assert screened.engine["bytes_per_example"] < 2.0, screened.engine["bytes_per_example"]
    plain = gradfuzz.check(tf.math.softplus, inputs=["float32[]"], max_examples=2**12, seed=1)
    assert not plain.engine["screen"]["used"] and plain.engine["bytes_per_example"] >= 8.0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_screen_tolerance_is_the_oracles_halved(dtype):
    """The screen's ULP is the oracle's (`DTypeInfo.ulp`) exactly — a lower bound would flag
    examples the oracle passes — so its tolerance is SCREEN_SLACK times the oracle's, down to
    subnormals, at powers of two and at inf."""
    from gradfuzz.dtypes import DTYPES
    from gradfuzz.oracle import TOLERANCES
    from gradfuzz.screen import SCREEN_SLACK, _Limit

    info, tol = DTYPES[dtype], TOLERANCES[dtype]
    limit = _Limit(info.tiny, SCREEN_SLACK * tol.floor_ulps * 2.0 ** -info.mantissa_bits,
                   SCREEN_SLACK * tol.absolute_floor, SCREEN_SLACK * tol.calibration_factor)
    rng = np.random.default_rng(0)
    magnitudes = np.concatenate([
        np.exp(rng.uniform(np.log(info.smallest_subnormal), np.log(info.max), 2000)),
        np.ldexp(1.0, np.arange(-60, 60)), np.nextafter(np.ldexp(1.0, np.arange(-60, 60)), 0.0),
        [info.tiny, info.smallest_subnormal, info.max, 0.0],
    ])
    gr = magnitudes * rng.choice([-1.0, 1.0], magnitudes.size)
    gap = 1e-3 * magnitudes + tol.absolute_floor  # the error whose ratio is compared
    oracle = np.maximum(tol.floor_ulps * info.ulp(gr), tol.absolute_floor)
    screen = limit.ratio(tf.constant(gr + gap), tf.constant(gr)).numpy()
    np.testing.assert_allclose(screen, np.abs((gr + gap) - gr) / (SCREEN_SLACK * oracle), rtol=1e-12)
    spread = tf.constant(np.full((1, 1), 1e-3))
    calibrated = limit.ratio(tf.constant([[2.0]], tf.float64), tf.constant([[1.0]], tf.float64), spread).numpy()
    assert calibrated[0, 0] == pytest.approx(1.0 / (SCREEN_SLACK * max(tol.calibration_factor * 1e-3, tol.floor_ulps * info.ulp(1.0))))
    infinite = limit.ratio(tf.constant([np.inf, np.inf, 1.0], tf.float64), tf.constant([np.inf, -np.inf, np.nan], tf.float64))
    assert infinite.numpy().tolist() == [0.0, np.inf, np.inf]


def test_a_unit_test_sized_check_traces_no_screen():
    """Below SCREEN_MIN_EXAMPLES a check judges every example: tracing and compiling the screen took about 2 s
    of a first check's 5 (benchmarks/latency.py's cold row), more than judging 100 examples in full."""
    from gradfuzz.checker import SCREEN_MIN_EXAMPLES

    small = gradfuzz.check(my_op_fixed, max_examples=SCREEN_MIN_EXAMPLES // 2, seed=1)
    assert not small.engine["screen"]["used"] and small.engine["screen"]["traces"] == 0
    assert small.judged == small.examples == SCREEN_MIN_EXAMPLES // 2 and small.ok
