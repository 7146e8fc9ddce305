import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradfuzz.dtypes import DTYPES
from gradfuzz.spec import parse_spec
from gradfuzz.strategies import Plan, expand, plans, special_values, step_ulps


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@given(data=st.data())
@settings(max_examples=200)
def test_step_ulps_matches_nextafter(dtype, data):
    info = DTYPES[dtype]
    value = data.draw(st.floats(width=8 * info.numpy.itemsize, allow_nan=False, allow_infinity=False))
    x = np.array([value], dtype=info.numpy)
    up, down = step_ulps(x, 1, info)[0], step_ulps(x, -1, info)[0]
    if abs(float(x[0])) < info.max:
        assert up == np.nextafter(x[0], info.numpy.type(np.inf))
        assert down == np.nextafter(x[0], info.numpy.type(-np.inf))


def test_step_ulps_is_exact_for_bfloat16():
    info = DTYPES["bfloat16"]
    one = np.array([1.0], dtype=info.numpy)
    assert float(step_ulps(one, 1, info)[0]) == 1.0 + 2.0**-7
    assert float(step_ulps(one, -1, info)[0]) == 1.0 - 2.0**-8


def test_special_values_stay_in_range_and_keep_both_zeros():
    spec = parse_spec("float32[]@-1..3")
    values = special_values(spec)
    assert values.dtype == np.float32
    assert np.all((values >= -1) & (values <= 3))
    assert {0.0, 1.0, -1.0, 3.0} <= set(values.tolist())
    assert np.any(np.signbit(values) & (values == 0)), "-0.0 must be drawn as well as +0.0"
    assert np.float32(np.finfo(np.float32).smallest_subnormal) in values


def test_special_values_respect_one_sided_ranges():
    values = special_values(parse_spec("float64[]@0.5..10"))
    assert values.min() >= 0.5 and 0.0 not in values


@given(plan=plans(points=3), spec_text=st.sampled_from(["float32[]@-10..10", "float16[2,3]@0..5", "bfloat16[4]", "float64[1]@-1e-3..1e-3"]))
@settings(max_examples=150, deadline=None)
def test_expanded_batches_have_the_spec_dtype_shape_and_range(plan, spec_text):
    spec = parse_spec(spec_text)
    (batch,) = expand(plan, [spec], [[0.0, 1.0, 0.001]], size=64)
    assert batch.dtype == spec.info.numpy
    assert batch.shape == (64, *spec.shape)
    values = batch.astype(np.float64)
    assert np.all(np.isfinite(values))
    assert np.all((values >= spec.low) & (values <= spec.high))


def test_near_reaches_both_sides_of_a_point_within_the_ulp_budget():
    spec = parse_spec("float32[]@-10..10")
    (batch,) = expand(Plan(seed=0, weights=(0, 1, 0, 0), focus=1, ulps=8, rel_exp=12), [spec], [[1.0]], 2000)
    values = batch.astype(np.float64)
    assert (values < 1.0).any() and (values > 1.0).any() and (values == 1.0).any()
    # Half are ULP steps (at most 8 away); the others a relative distance of at most 1e-12 → rounds to ≤ 8 ulps too.
    distance_in_ulps = np.abs(values - 1.0) / np.spacing(np.float32(1.0))
    assert distance_in_ulps.max() <= 16


@given(data=st.data(), dtype=st.sampled_from(["float16", "bfloat16", "float32", "float64"]))
@settings(max_examples=60, deadline=None)
def test_tensorflow_ulp_steps_match_the_exact_numpy_ones(data, dtype):
    from gradfuzz._tf import tf
    from gradfuzz.expansion import step_ulps as step_in_graph

    info = DTYPES[dtype]
    width = 8 * info.numpy.itemsize
    raw = data.draw(st.lists(st.integers(0, 2**width - 1), min_size=8, max_size=8))
    values = np.array(raw, dtype=np.uint64).astype(info.bits).view(info.numpy)
    values = values[np.isfinite(values.astype(np.float64))]
    steps = np.array(data.draw(st.lists(st.integers(-2000, 2000), min_size=len(values), max_size=len(values))), np.int64)
    moved = step_in_graph(tf.constant(values), tf.constant(steps), info).numpy()
    expected = np.where(steps == 0, values, step_ulps(values, steps, info))
    assert moved.view(info.bits).tolist() == expected.view(info.bits).tolist()


def test_the_simplest_plan_expands_to_special_values():
    spec = parse_spec("float64[]@-5..5")
    (batch,) = expand(Plan(seed=0, weights=(0, 0, 0, 0)), [spec], [[]], size=256)
    assert set(batch.tolist()) <= set(special_values(spec).tolist())


def test_expansion_is_deterministic_in_the_plan():
    spec = parse_spec("float32[3]")
    plan = Plan(seed=123, weights=(1, 2, 3, 4), sparsity=2)
    first, second = expand(plan, [spec], [[0.0]], 32), expand(plan, [spec], [[0.0]], 32)
    assert first[0].tobytes() == second[0].tobytes()


def test_sparsity_zeroes_elements_of_random_regions():
    spec = parse_spec("float32[16]")
    (batch,) = expand(Plan(seed=5, weights=(0, 0, 1, 0), sparsity=3), [spec], [[]], 64)
    assert 0.6 < np.mean(batch == 0) < 0.9


def test_square_matrix_specs_get_structured_matrices():
    spec = parse_spec("float64[4,4]@-2..2")
    (matrices,) = expand(Plan(seed=0, weights=(1, 0, 0, 0)), [spec], [[0.0]], 2000)
    assert matrices.shape == (2000, 4, 4) and np.all(np.abs(matrices) <= 2)
    ranks = [np.linalg.matrix_rank(m) for m in matrices]
    assert 1 in ranks and 4 in ranks, "rank-deficient and full-rank matrices"
    assert any(np.allclose(m, np.eye(4)) for m in matrices), "the identity"
    assert any(np.allclose(m, m.T) and np.all(np.linalg.eigvalsh(m) > 0) and not np.allclose(m, np.diag(np.diag(m)))
               for m in matrices), "symmetric positive definite"
    assert any(np.allclose(m @ m.T, np.eye(4), atol=1e-6) and not np.allclose(m, np.diag(np.diag(m))) for m in matrices), \
        "orthogonal"
    assert any(np.allclose(m, np.diag(np.diag(m))) and len(set(np.diag(m))) < 4 and not np.allclose(m, np.eye(4))
               for m in matrices), "diagonal with ties"


def test_a_batch_is_the_start_of_any_larger_batch_of_its_plan():
    """Rows depend on (plan, row) only: a batch of 100 is the first 100 rows of a batch of 5000
    (which spans several compiled chunks), so the host can expand any row the device drew."""
    from gradfuzz.expansion import Expansion

    specs = [parse_spec("float32[16,16]@-2..2"), parse_spec("int32[2]@-3..3")]
    expansion = Expansion(specs, [[0.0, 1.0], []], [((16, 16), "float32")])
    assert expansion.rows < 5000
    plan = Plan(seed=9, boundary=3)
    pool = [np.ones((5, 16, 16), np.float32), np.zeros((5, 2), np.int32)]
    big, small = expansion.expand(plan, 5000, pool), expansion.expand(plan, 100, pool)
    for whole, start in zip([*big[0], *big[1]], [*small[0], *small[1]]):
        assert whole[:100].tobytes() == start.tobytes()
    assert big[0][0].reshape(5000, -1)[:, 0].tolist().count(1.0) > 100, "boundary rows come from the pool"


# -- the same seed draws the same bits on every machine -------------------------------------------

_DRAW_EVERYTHING = """
import hashlib, numpy as np
from gradfuzz.expansion import Expansion
from gradfuzz.strategies import Plan, tangents
specs = [parse_spec(s) for s in ("float32[4,4]@-100..100", "float64[6]@0.01..50", "float16[3]@-10..10", "bfloat16[]")]
expansion = Expansion(specs, [[0.0, 1.0, -1.0, 30.0], [1.0, 2.5], [], []], [((3,), "float32")])
digest = hashlib.sha256()
for seed in range(30):
    plan = Plan(seed=seed, weights=(1, 1, 1, 1), ulps=seed * 997, rel_exp=1 + seed % 12, sparsity=seed % 4, boundary=2)
    pool = [np.repeat(np.asarray(x[:2]), 3, axis=0) for x in expansion.expand(Plan(seed=seed + 1), 2)[0]]
    inputs, cotangents = expansion.expand(plan, 48, pool)
    for x in [*inputs, *cotangents, *tangents(np.random.default_rng(seed), inputs)]:
        digest.update(np.asarray(x).tobytes())
print(digest.hexdigest())
""".replace("import hashlib", "from gradfuzz.spec import parse_spec\nimport hashlib")


def test_one_seed_draws_the_same_inputs_whatever_the_vector_unit():
    """Expansion is integer hashing, bit assembly and correctly rounded arithmetic, compiled by XLA:
    AVX-512 and AVX2 code must draw the same bits. (CPUs without FMA round the few fused
    products differently: see gradfuzz/expansion.py.)"""
    import subprocess
    import sys

    def draw(flags: str) -> str:
        env = {**os.environ, "XLA_FLAGS": flags, "TF_CPP_MIN_LOG_LEVEL": "2"}
        out = subprocess.run([sys.executable, "-c", _DRAW_EVERYTHING], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.split()[-1]

    cpuinfo = Path("/proc/cpuinfo")
    cpu = cpuinfo.read_text() if cpuinfo.exists() else ""
    if "avx512f" not in cpu or " fma" not in cpu:
        pytest.skip("this CPU has no wider vector unit than AVX2 to compare with")
    assert draw("") == draw("--xla_cpu_max_isa=AVX2"), "generation depends on the CPU's vector unit"


def test_special_values_also_come_together():
    """pow(x, y) breaks only at x = y = 0, max(x, y) only at ties: a third of the special-value
    examples put one value in every element, a third repeat the first argument in the others."""
    specs = [parse_spec("float64[]@0..3"), parse_spec("float64[]@0..3")]
    x, y = expand(Plan(seed=3, weights=(1, 0, 0, 0)), specs, [[], []], 3000)
    assert np.mean((x == 0) & (y == 0)) > 0.07, "independent draws alone give about 4%"
    assert np.mean(x == y) > 0.5
    (v,) = expand(Plan(seed=3, weights=(1, 0, 0, 0)), [parse_spec("float32[4]@-2..2")], [[]], 3000)
    assert np.mean(np.all(v == 0, axis=1)) > 0.05, "all zeros at once: the origin of a norm, a product's zeros"
