"""tf.linalg.det: the gradient raises on a singular matrix; the derivative there is the adjugate.

TensorFlow 2.21. det is a polynomial, so ∂det/∂A = adj(A)ᵀ everywhere, singular matrices included
(rank n-1: a nonzero adjugate; lower rank: 0). TensorFlow's gradient computes det·A⁻ᵀ with
matrix_inverse, which raises InvalidArgumentError "Input is not invertible". The right value is
the transposed adjugate (cofactors, exact in mpmath). Found by scripts/label_sweep.py.

    python scripts/bugs/tf_det_singular.py   # exit 0: the bug reproduces; 3: it does not
"""
import sys

import mpmath as mp
import numpy as np
import tensorflow as tf


def target(a):
    return tf.linalg.det(a)


def cofactors(a):
    n = len(a)
    return [[(-1) ** (i + j) * mp.det(mp.matrix([[a[r][c] for c in range(n) if c != j] for r in range(n) if r != i]))
             for j in range(n)] for i in range(n)]


def main() -> int:
    a = [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]]  # rank 2
    true = np.array(cofactors(a), dtype=float)
    x = tf.constant(a, tf.float64)
    try:
        with tf.GradientTape() as tape:
            tape.watch(x)
            d = tf.linalg.det(x)
        g = tape.gradient(d, x).numpy()
        bug = not np.allclose(g, true)
        print(f"tf.linalg.det gradient at a rank-2 matrix: TensorFlow\n{g}\ntrue (cofactors)\n{true}")
    except tf.errors.InvalidArgumentError as error:
        reason = "Input is not invertible" if "not invertible" in str(error) else str(error).splitlines()[0]
        print(f"tf.linalg.det gradient at a rank-2 matrix raises {type(error).__name__}: {reason}")
        print(f"true (cofactors, mpmath):\n{true}")
        bug = True
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
