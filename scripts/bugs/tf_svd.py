"""tf.linalg.svd: the gradient is wrong when singular values repeat (the identity matrix).

TensorFlow 2.21 (tensorflow/tensorflow#17476, open since 2018). Rebuilding a matrix from its
SVD, f(A) = U·diag(s)·Vᴴ, is the identity map, so the gradient of ⟨C, f(A)⟩ is exactly C at
every A, whichever singular vectors the decomposition picks. TensorFlow's SVD gradient has
1/(s_j² - s_i²) factors that it zeroes where singular values are equal, so at A = I (all
three singular values 1) the off-diagonal part of the gradient is lost. With C = [[0, 1, 2],
[3, 4, 5], [6, 7, 8]] it returns diag(0, 4, 8) instead of C (exact arithmetic: f is the
identity). At a matrix with distinct singular values it returns C, as it should.

    python scripts/bugs/tf_svd.py   # exit 0: the bug reproduces; 3: it does not
"""
import sys

import numpy as np
import tensorflow as tf


def target(a):
    s, u, v = tf.linalg.svd(a)
    return tf.matmul(u * s[..., None, :], v, adjoint_b=True)


def gradient(a, c):
    a = tf.constant(a, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(a)
        loss = tf.reduce_sum(c * target(a))
    return tape.gradient(loss, a).numpy()


def main() -> int:
    c = np.arange(9.0).reshape(3, 3)
    got = gradient(np.eye(3), c)
    control = gradient(np.array([[2.0, 1.0, 0.0], [0.0, 1.5, 0.5], [1.0, 0.0, 1.0]]), c)

    print(f"gradient of <C, U diag(s) V^H> (tf.linalg.svd of A) at A = I, float64, TensorFlow {tf.__version__}")
    print(f"  TensorFlow {got.tolist()}")
    print(f"  true       {c.tolist()}  (exact: f(A) = A, so the gradient is C)")
    print(f"  (at a matrix with distinct singular values TensorFlow gives {np.round(control, 12).tolist()})")
    bug = not np.allclose(got, c, atol=1e-9)
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
