"""tf.math.bessel_i1 (and tf.math.special.bessel_i1): the gradient at x = 0 is 1; I1'(0) = 1/2.

TensorFlow 2.21. I1(x) = x/2 + x³/16 + ..., so I1'(0) = 1/2. TensorFlow's registered gradient
computes I0(x) - I1(x)/x and imputes 1.0 at x = 0 (its comment says "the correct gradient is
1.0"); the limit of I0(x) - I1(x)/x at 0 is 1 - 1/2 = 1/2. The right value comes from mpmath
(50 digits): the derivative of besseli(1, x) at 0. Found by scripts/label_sweep.py.

    python scripts/bugs/tf_bessel_i1.py   # exit 0: the bug reproduces; 3: it does not
"""
import sys

import mpmath as mp
import numpy as np
import tensorflow as tf


def target(x):
    return tf.math.bessel_i1(x)


def main() -> int:
    mp.mp.dps = 50
    true = float(mp.diff(lambda t: mp.besseli(1, t), 0))  # = 0.5
    bug = False
    for name, fn in (("tf.math.bessel_i1", tf.math.bessel_i1), ("tf.math.special.bessel_i1", tf.math.special.bessel_i1)):
        for dtype in (tf.float32, tf.float64):
            x = tf.constant(0.0, dtype)
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = fn(x)
            g = float(tape.gradient(y, x))
            print(f"{name} at x = 0, {dtype.name}: TensorFlow {g!r}, true {true!r} (mpmath)")
            bug |= not np.isclose(g, true, rtol=1e-5)
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
