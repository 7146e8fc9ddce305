"""tf.math.cumprod: the gradient is wrong when the input holds a zero.

TensorFlow 2.21 (tensorflow/tensorflow#119430). The registered gradient divides by the input,
div_no_nan(cumsum(cumprod(x)·dy, reverse), x), which returns 0 wherever x is 0: for
x = [2, 0, 3] and the loss sum(cumprod(x)) = x0 + x0·x1 + x0·x1·x2, ∂/∂x1 = x0 + x0·x2 = 8,
but TensorFlow returns 0. The right gradient is computed exactly (fractions, product rule:
∂/∂x_k Σ_i Π_{j≤i} x_j = Σ_{i≥k} Π_{j≤i, j≠k} x_j).

    python scripts/bugs/tf_cumprod.py   # exit 0: the bug reproduces; 3: it does not
"""
import sys
from fractions import Fraction
from math import prod

import numpy as np
import tensorflow as tf


def target(x):
    return tf.math.cumprod(x)


def exact_gradient(x):
    x = [Fraction(v) for v in x]
    n = len(x)
    return [sum(prod(x[j] for j in range(i + 1) if j != k) for i in range(k, n)) for k in range(n)]


def main() -> int:
    point = [2.0, 0.0, 3.0]
    x = tf.constant(point, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(target(x))
    got = tape.gradient(loss, x).numpy()
    want = exact_gradient(point)

    print(f"gradient of sum(tf.math.cumprod(x)) at x = {point}, float32, TensorFlow {tf.__version__}")
    print(f"  TensorFlow {got.tolist()}")
    print(f"  true       {[float(w) for w in want]}  (exact arithmetic)")
    bug = not np.allclose(got, [float(w) for w in want], rtol=1e-6)
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
