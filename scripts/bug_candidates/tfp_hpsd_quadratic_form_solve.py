"""tfp.math.hpsd_quadratic_form_solve: ∂/∂rhs is wrong unless the upstream gradient is symmetric.

TensorFlow Probability 0.25. Y = Bᵀ A⁻¹ B is symmetric, so for a loss Σ V∘Y only sym(V) matters:
∂/∂B = A⁻¹ B (V + Vᵀ). TFP's custom gradient returns 2 A⁻¹ B V (right only for symmetric V), so
a non-symmetric cotangent — any loss that reads Y's entries unevenly, e.g. Y[0, 1] alone — gets a
wrong ∂/∂B; ∂/∂A is right. The right value: central differences of numpy's Bᵀ solve(A, B) at
float64 (step 1e-6; agreement ~1e-9), and the closed form A⁻¹ B (V + Vᵀ). Found by
scripts/label_sweep.py.

    python scripts/bug_candidates/tfp_hpsd_quadratic_form_solve.py   # exit 0: the bug reproduces; 3: it does not
"""
import sys

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp


def main() -> int:
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
    true = np.linalg.solve(a, b) @ (v + v.T)
    eps, numeric = 1e-6, np.zeros_like(b)
    for i in np.ndindex(b.shape):
        d = np.zeros_like(b)
        d[i] = eps
        up, down = (b + d).T @ np.linalg.solve(a, b + d), (b - d).T @ np.linalg.solve(a, b - d)
        numeric[i] = (np.sum(up * v) - np.sum(down * v)) / (2 * eps)
    print(f"d(Y[0,1])/dB: TFP\n{g}\ntrue A^-1 B (V + V^T)\n{true}\ncentral differences\n{numeric}")
    bug = not np.allclose(g, true, rtol=1e-6)
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
