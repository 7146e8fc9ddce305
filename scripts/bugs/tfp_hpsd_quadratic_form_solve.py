"""tfp.math.hpsd_quadratic_form_solve: ∂/∂rhs is wrong unless the upstream gradient is symmetric.

TensorFlow Probability 0.25. Y = Bᵀ A⁻¹ B is symmetric, so for a loss Σ V∘Y only sym(V) matters:
∂/∂B = A⁻¹ B (V + Vᵀ). TFP's custom gradient returns 2 A⁻¹ B V (right only for symmetric V), so
a non-symmetric cotangent — any loss that reads Y's entries unevenly, e.g. Y[0, 1] alone — gets a
wrong ∂/∂B; ∂/∂A is right. The right value is exact: L(B) = Σ V∘(Bᵀ A⁻¹ B) is a quadratic in B,
so its central difference (L(B + E) - L(B - E))/2 is its derivative along E exactly, computed here
in `fractions` with an exact solve of A (the floats' exact values); it is checked against the
closed form A⁻¹ B (V + Vᵀ) in float64. Found by scripts/label_sweep.py.

    python scripts/bugs/tfp_hpsd_quadratic_form_solve.py   # exit 0: the bug reproduces; 3: it does not; 4: no TFP
"""
import sys
from fractions import Fraction

import numpy as np
import tensorflow as tf


def _tfp():
    try:
        import tensorflow_probability as tfp
    except ImportError:
        return None
    return tfp


def target(x, rhs):
    # x x^T + 3 I: a symmetric positive definite matrix for a drawn x (as the sweep table's "spd" does)
    a = tf.matmul(x, x, adjoint_b=True) + 3 * tf.eye(3, dtype=x.dtype)
    return _tfp().math.hpsd_quadratic_form_solve(a, rhs)


def exact_solve(a, b):
    """A⁻¹ B in exact rational arithmetic (Gauss-Jordan with Fractions)."""
    n, m = len(a), len(b[0])
    rows = [[Fraction(v) for v in a[i]] + [Fraction(v) for v in b[i]] for i in range(n)]
    for c in range(n):
        p = next(r for r in range(c, n) if rows[r][c] != 0)
        rows[c], rows[p] = rows[p], rows[c]
        rows[c] = [v / rows[c][c] for v in rows[c]]
        for r in range(n):
            if r != c and rows[r][c] != 0:
                rows[r] = [x - rows[r][c] * y for x, y in zip(rows[r], rows[c])]
    return [row[n:n + m] for row in rows]


def exact_loss(a, b, v):
    """Σ V∘(Bᵀ A⁻¹ B), exactly."""
    x = exact_solve(a, b)
    return sum(Fraction(v[i][j]) * sum(b[k][i] * x[k][j] for k in range(len(b))) for i in range(len(v)) for j in range(len(v)))


def exact_gradient(a, b, v):
    """∂L/∂B exactly: L is quadratic in B, so (L(B + E) - L(B - E))/2 is its derivative along E."""
    b = [[Fraction(x) for x in row] for row in b]
    g = np.zeros((len(b), len(b[0])))
    for i, j in np.ndindex(g.shape):
        up = [[x + (1 if (r, c) == (i, j) else 0) for c, x in enumerate(row)] for r, row in enumerate(b)]
        down = [[x - (1 if (r, c) == (i, j) else 0) for c, x in enumerate(row)] for r, row in enumerate(b)]
        g[i, j] = float((exact_loss(a, up, v) - exact_loss(a, down, v)) / 2)
    return g


def main() -> int:
    tfp = _tfp()
    if tfp is None:
        print("tensorflow_probability not installed")
        return 4
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, 3))
    a = x @ x.T + 3 * np.eye(3)  # symmetric positive definite
    b = rng.uniform(-5, 5, (3, 2))
    v = np.array([[0.0, 1.0], [0.0, 0.0]])  # the loss is Y[0, 1]
    bt = tf.constant(b)
    with tf.GradientTape() as tape:
        tape.watch(bt)
        loss = tf.reduce_sum(tfp.math.hpsd_quadratic_form_solve(tf.constant(a), bt) * v)
    g = tape.gradient(loss, bt).numpy()
    true = exact_gradient(a.tolist(), b.tolist(), v.tolist())
    closed = np.linalg.solve(a, b) @ (v + v.T)
    assert np.allclose(true, closed, rtol=1e-12, atol=1e-14)  # exact = closed form A^-1 B (V + V^T)
    print(f"d(Y[0,1])/dB: TFP\n{g}\ntrue (exact arithmetic, = A^-1 B (V + V^T))\n{true}")
    bug = not np.allclose(g, true, rtol=1e-6)
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
