"""tf.nn.isotonic_regression: for a rank-1 input the gradient has shape (n, 1) and the wrong values.

TensorFlow 2.21 (tensorflow/tensorflow#127234). The op fits along the last axis and accepts a
rank-1 input, but its registered gradient (`_MeanAggregator` in nn_grad.py) splits the
incoming gradient along axis 0 as if it were a batch of rows: for shape (3,) every element
becomes a row of its own, so no averaging over the pooled blocks happens, and the result is
stacked to shape (3, 1). Here x = [1, 2, 3] with decreasing=True pools all three into one
block whose value is the mean, so y[0] = (x0 + x1 + x2)/3 and the exact gradient of y[0] is
[1/3, 1/3, 1/3] with shape (3,) (exact arithmetic). TensorFlow returns [[1], [0], [0]].
(With the cotangent [1, 1, 1] the values happen to be right, only the shape is wrong.)

    python scripts/bugs/tf_isotonic_regression.py   # exit 0: the bug reproduces; 3: it does not
"""
import sys
from fractions import Fraction

import numpy as np
import tensorflow as tf


def target(x):
    return tf.nn.isotonic_regression(x, decreasing=True)[0]


def main() -> int:
    x = tf.constant([1.0, 2.0, 3.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = target(x)
        loss = y[0]
    got = tape.gradient(loss, x).numpy()
    want = [Fraction(1, 3)] * 3  # y[0] is the block mean (x0 + x1 + x2) / 3

    print(f"gradient of tf.nn.isotonic_regression(x, decreasing=True)[0][0] at x = [1, 2, 3], "
          f"float32, TensorFlow {tf.__version__}")
    print(f"  forward {y.numpy().tolist()} (one pooled block: every output is the mean)")
    print(f"  TensorFlow shape {got.shape}, values {got.tolist()}")
    print(f"  true       shape (3,), values {[str(w) for w in want]}  (exact: d/dx (x0 + x1 + x2)/3)")
    bug = got.shape != (3,) or not np.allclose(got.ravel(), [float(w) for w in want])
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
