"""tf.math.xdivy: ∂/∂x is 0 at x = 0; the derivative of x/y there is 1/y.

TensorFlow 2.21 (tensorflow/tensorflow#127238). xdivy(x, y) = x/y (0 when x = 0) is smooth in x
for y ≠ 0, so ∂/∂x = 1/y everywhere, x = 0 included. TensorFlow's registered gradient masks it
with `x != 0` and returns 0 there. The right value comes from mpmath (50 digits): the
derivative of x/y in x at x = 0.

    python scripts/bugs/tf_xdivy.py   # exit 0: the bug reproduces; 3: it does not
"""
import sys

import mpmath as mp
import numpy as np
import tensorflow as tf


def target(x, y):
    return tf.math.xdivy(x, y)


def main() -> int:
    x, y = tf.constant(0.0), tf.constant(2.0)
    with tf.GradientTape() as tape:
        tape.watch([x, y])
        z = target(x, y)
    dx, dy = (float(g) for g in tape.gradient(z, [x, y]))

    mp.mp.dps = 50
    true_dx = mp.diff(lambda t: t / 2, 0)  # = 1/2
    true_dy = mp.diff(lambda t: 0 / t, 2)  # = 0

    print(f"tf.math.xdivy(x, y) at x = 0, y = 2, float32, TensorFlow {tf.__version__}")
    print(f"  d/dx: TensorFlow {dx!r:<12} true {mp.nstr(true_dx, 15)}  (mpmath, d/dx x/2)")
    print(f"  d/dy: TensorFlow {dy!r:<12} true {mp.nstr(true_dy, 15)}")
    bug = not np.isclose(dx, float(true_dx), rtol=1e-5)
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
