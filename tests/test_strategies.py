import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradfuzz.dtypes import DTYPES
from gradfuzz.spec import parse_spec
from gradfuzz.strategies import Plan, expand, near, plans, special_values, step_ulps


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
    rng = np.random.default_rng(0)
    values = near([1.0], spec, rng, 2000, ulps=8, rel_exp=12, focus=1).astype(np.float64)
    assert (values < 1.0).any() and (values > 1.0).any() and (values == 1.0).any()
    # Half are ULP steps (at most 8 away); the others a relative distance of at most 1e-12 → rounds to ≤ 8 ulps too.
    distance_in_ulps = np.abs(values - 1.0) / np.spacing(np.float32(1.0))
    assert distance_in_ulps.max() <= 16


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
    from gradfuzz.strategies import _structured_matrices

    spec = parse_spec("float64[4,4]@-2..2")
    matrices = _structured_matrices(spec, np.random.default_rng(0), 200)
    assert matrices.shape == (200, 4, 4) and np.all(np.abs(matrices) <= 2)
    ranks = [np.linalg.matrix_rank(m) for m in matrices]
    assert 1 in ranks and 4 in ranks, "rank-deficient and full-rank matrices"
    assert any(np.allclose(m, np.eye(4)) for m in matrices), "the identity"
    assert any(np.allclose(m, m.T) and np.all(np.linalg.eigvalsh(m) > 0) and not np.allclose(m, np.diag(np.diag(m)))
               for m in matrices), "symmetric positive definite"
    assert any(np.allclose(m @ m.T, np.eye(4), atol=1e-6) and not np.allclose(m, np.diag(np.diag(m))) for m in matrices), \
        "orthogonal"
    (batch,) = expand(Plan(seed=1, weights=(1, 0, 0, 0)), [spec], [[0.0]], 64)
    assert any(np.linalg.matrix_rank(m) == 1 for m in batch), "plans reach them through the special-value region"


# -- the same seed draws the same bits on every machine -------------------------------------------

_DRAW_EVERYTHING = """
import hashlib, numpy as np
from gradfuzz.dtypes import DTYPES
from gradfuzz.spec import parse_spec
from gradfuzz.strategies import Plan, cotangents, expand, tangents
specs = [parse_spec(s) for s in ("float32[4,4]@-100..100", "float64[6]@0.01..50", "float16[3]@-10..10", "bfloat16[]")]
digest = hashlib.sha256()
for seed in range(60):
    plan = Plan(seed=seed, weights=(1, 1, 1, 1), ulps=seed * 997, rel_exp=1 + seed % 12, sparsity=seed % 4, boundary=2)
    pool = [np.repeat(np.asarray(x[:2]), 3, axis=0) for x in expand(Plan(seed=seed + 1), specs, [[]] * 4, 2)]
    batch = expand(plan, specs, [[0.0, 1.0, -1.0, 30.0], [1.0, 2.5], [], []], 48, boundary=pool)
    rng = np.random.default_rng(seed)
    for x in [*batch, *tangents(rng, batch), *cotangents(rng, 48, [(3,)], [np.float32])]:
        digest.update(np.asarray(x).tobytes())
    digest.update(DTYPES["float32"].ulp(batch[1]).tobytes())
print(digest.hexdigest(), hashlib.sha256(np.exp(np.linspace(-700.0, 700.0, 100_003))).hexdigest())
"""


def test_one_seed_draws_the_same_inputs_whatever_the_vector_unit():
    """numpy dispatches exp/log/BLAS to AVX-512, AVX2 or baseline kernels that differ in the last
    bit. Generation must not use them, or one seed draws different inputs on different CPUs."""
    import subprocess
    import sys

    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    def draw(disabled: list[str]) -> tuple[str, str]:
        env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(disabled)}
        out = subprocess.run([sys.executable, "-c", _DRAW_EVERYTHING], env=env, capture_output=True, text=True, check=True)
        return tuple(out.stdout.split())

    present = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    if not present:
        pytest.skip("this CPU has no dispatched numpy kernels to switch off")
    native, baseline = draw([]), draw(present)
    assert native[0] == baseline[0], "generation depends on the CPU's vector unit"
    if native[1] == baseline[1]:
        pytest.skip("numpy's exp gives the same bits with and without its dispatched kernels on this CPU")


def test_special_values_also_come_together():
    """pow(x, y) breaks only at x = y = 0, max(x, y) only at ties: a third of the special-value
    examples put one value in every element, a third repeat the first argument in the others."""
    specs = [parse_spec("float64[]@0..3"), parse_spec("float64[]@0..3")]
    x, y = expand(Plan(seed=3, weights=(1, 0, 0, 0)), specs, [[], []], 3000)
    assert np.mean((x == 0) & (y == 0)) > 0.07, "independent draws alone give about 4%"
    assert np.mean(x == y) > 0.5
    (v,) = expand(Plan(seed=3, weights=(1, 0, 0, 0)), [parse_spec("float32[4]@-2..2")], [[]], 3000)
    assert np.mean(np.all(v == 0, axis=1)) > 0.05, "all zeros at once: the origin of a norm, a product's zeros"
