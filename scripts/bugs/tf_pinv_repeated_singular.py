"""tf.linalg.pinv: the gradient is wrong at matrices with repeated (or nearly repeated) singular values.

TensorFlow 2.21. At a full-rank matrix pinv(A) = A⁻¹, which is smooth there, so the VJP of
⟨V, pinv(A)⟩ is -A⁻ᵀ V A⁻ᵀ, whatever the singular values are. TensorFlow builds pinv from
tf.linalg.svd and differentiates through the SVD gradient, whose F matrix holds
1/(s_j² - s_i²) through _SafeReciprocal(x) = x/(x² + 1e-20): for equal singular values that is 0
instead of the (cancelling) infinite terms, so the off-diagonal part of the gradient is dropped.
At the 3x3 identity TensorFlow's VJP is -diag(V) instead of -V (relative error 1); at diag(2, 2, 1),
2·I and an orthogonal matrix it is also wrong; at diag(1 + 1e-12, 1) (distinct but close singular
values) the off-diagonal entry is -0.0004 instead of -1. At diag(3, 2, 1) and a random matrix it is
right (≤ 1e-15). The truth comes from mpmath (50 digits): central differences of the mpmath
inverse, checked against the closed form -A⁻ᵀ V A⁻ᵀ. Flagged by gradfuzz; confirmed here without it.

    python scripts/bugs/tf_pinv_repeated_singular.py   # exit 0: the bug reproduces; 3: it does not
"""
import sys

import mpmath as mp
import numpy as np
import tensorflow as tf


def target(a):
    return tf.linalg.pinv(a)


def tf_vjp(a, v):
    x = tf.constant(a, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(tf.constant(v, tf.float64) * tf.linalg.pinv(x))
    return tape.gradient(y, x).numpy()


def mp_vjp(a, v, h=mp.mpf("1e-25")):
    """Central differences of <V, A^-1> at 50 digits (pinv = inverse at a full-rank matrix)."""
    n = len(a)
    g = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            e = mp.matrix(n, n)
            e[i, j] = h
            d = mp.inverse(mp.matrix(a) + e) - mp.inverse(mp.matrix(a) - e)
            g[i, j] = float(mp.fsum(d[r, c] * v[r][c] for r in range(n) for c in range(n)) / (2 * h))
    return g


def main() -> int:
    mp.mp.dps = 50
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    cases = [("identity", np.eye(3), True), ("diag(2,2,1)", np.diag([2.0, 2.0, 1.0]), True),
             ("2*identity", 2 * np.eye(3), True), ("orthogonal", q, True),
             ("diag(3,2,1) (control)", np.diag([3.0, 2.0, 1.0]), False),
             ("random (control)", rng.standard_normal((3, 3)), False)]
    bug = False
    for name, a, expect_bug in cases:
        worst = 0.0
        for _ in range(3):
            v = rng.standard_normal((3, 3))
            g, true = tf_vjp(a, v), mp_vjp(a.tolist(), v.tolist())
            ai = np.linalg.inv(a)
            assert np.allclose(true, -ai.T @ v @ ai.T, rtol=1e-12, atol=1e-13)  # mpmath = closed form
            worst = max(worst, np.max(np.abs(g - true)) / np.max(np.abs(true)))
        print(f"pinv VJP at {name:22s} max relative error of TensorFlow vs mpmath: {worst:.2e}")
        if expect_bug:
            bug |= worst > 1e-6
    v = np.zeros((3, 3))
    v[0, 1] = 1.0
    print(f"identity, V = e_01: TensorFlow\n{tf_vjp(np.eye(3), v)}\ntrue (-V)\n{mp_vjp(np.eye(3).tolist(), v.tolist())}")
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
