"""tf.linalg.eigh_tridiagonal: the gradient of the eigenvalues is wrong (it runs through the bisection).

TensorFlow 2.21. For a symmetric tridiagonal T with distinct eigenvalues λ_k and unit eigenvectors
u_k, ∂λ_k/∂α_i = u_k[i]² and ∂λ_k/∂β_i = 2·u_k[i]·u_k[i+1]. TensorFlow registers no gradient for
eigh_tridiagonal; autodiff goes through its bisection iterations and returns other numbers
(e.g. zeros for some diagonal entries). The right values: eigenvectors from mpmath (50 digits).
Found by scripts/label_sweep.py.

    python scripts/bug_candidates/tf_eigh_tridiagonal.py   # exit 0: the bug reproduces; 3: it does not
"""
import sys

import mpmath as mp
import numpy as np
import tensorflow as tf


def target(alpha, beta):
    return tf.linalg.eigh_tridiagonal(alpha, beta)  # the eigenvalues, ascending


def main() -> int:
    alpha, beta = [0.3, -1.2, 0.7, 1.9], [0.5, 1.1, 0.4]
    weights = [1.0, 2.0, 3.0, 4.0]  # the loss Σ_k w_k λ_k (eigenvalues ascending)
    a, b = tf.constant(alpha, tf.float64), tf.constant(beta, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch([a, b])
        loss = tf.reduce_sum(tf.linalg.eigh_tridiagonal(a, b) * tf.constant(weights, tf.float64))
    ga, gb = (g.numpy() for g in tape.gradient(loss, [a, b]))

    mp.mp.dps = 50
    t = mp.matrix(4, 4)
    for i in range(4):
        t[i, i] = alpha[i]
    for i in range(3):
        t[i, i + 1] = t[i + 1, i] = beta[i]
    values, vectors = mp.eigsy(t)
    order = sorted(range(4), key=lambda k: values[k])
    true_a = [float(sum(w * vectors[i, k] ** 2 for w, k in zip(weights, order))) for i in range(4)]
    true_b = [float(sum(w * 2 * vectors[i, k] * vectors[i + 1, k] for w, k in zip(weights, order))) for i in range(3)]
    print(f"d/dalpha: TensorFlow {np.round(ga, 6).tolist()}\n          true       {np.round(true_a, 6).tolist()}")
    print(f"d/dbeta:  TensorFlow {np.round(gb, 6).tolist()}\n          true       {np.round(true_b, 6).tolist()}")
    bug = not (np.allclose(ga, true_a, rtol=1e-6) and np.allclose(gb, true_b, rtol=1e-6))
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
