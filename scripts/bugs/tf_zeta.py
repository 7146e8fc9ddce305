"""tf.math.zeta: no gradient with respect to x (the exponent): the tape returns None.

TensorFlow 2.21 (the registered gradient of Zeta returns None for x; no upstream issue
found). ζ(x, q) = Σ_k (k + q)^(-x) is smooth in x for x > 1, with ∂ζ/∂x = -Σ_k log(k + q)·(k + q)^(-x);
at (x, q) = (2, 1) that is ζ'(2) = -0.9375482543158437... The right value comes from mpmath
(50 digits: mp.zeta(2, 1, derivative=1), checked against mp.diff of mp.zeta).

    python scripts/bugs/tf_zeta.py   # exit 0: the bug reproduces; 3: it does not
"""
import sys

import mpmath as mp
import numpy as np
import tensorflow as tf


def target(x, q):
    return tf.math.zeta(x, q)


def main() -> int:
    x, q = tf.constant(2.0, tf.float64), tf.constant(1.0, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch([x, q])
        z = target(x, q)
    dx, dq = tape.gradient(z, [x, q])

    mp.mp.dps = 50
    true_dx = mp.zeta(2, 1, derivative=1)
    true_dx_diff = mp.diff(lambda s: mp.zeta(s, 1), 2)
    true_dq = mp.diff(lambda t: mp.zeta(2, t), 1)  # = -2·ζ(3)

    shown = "None" if dx is None else repr(float(dx))
    print(f"tf.math.zeta(x, q) at x = 2, q = 1, float64, TensorFlow {tf.__version__}")
    print(f"  d/dx: TensorFlow {shown:<20} true {mp.nstr(true_dx, 16)}  (mpmath zeta(2, 1, derivative=1); "
          f"mp.diff gives {mp.nstr(true_dx_diff, 16)})")
    print(f"  d/dq: TensorFlow {float(dq)!r:<20} true {mp.nstr(true_dq, 16)}")
    bug = dx is None or not np.isclose(float(dx), float(true_dx), rtol=1e-10)
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
