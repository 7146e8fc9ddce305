"""tf.math.igamma: ∂/∂x is NaN at (a, x) = (1, 0); the true derivative is 1.

TensorFlow 2.21 (tensorflow/tensorflow#123578). The regularized lower incomplete gamma
function P(a, x) has ∂P/∂x = x^(a-1)·e^(-x)/Γ(a), which at a = 1 is e^(-x): 1 at x = 0.
TensorFlow evaluates it as exp(-x + (a-1)·log(x) - lgamma(a)), and at a = 1, x = 0 the
product 0·log(0) = 0·(-inf) is NaN. The right value comes from mpmath (50 digits): the
one-sided derivative at x = 0 of mpmath's own P(1, x) (gammainc, regularized), checked
against the closed form P(1, x) = 1 - e^(-x).

    python scripts/bugs/tf_igamma.py   # exit 0: the bug reproduces; 3: it does not
"""
import math
import sys

import mpmath as mp
import tensorflow as tf


def target(x):
    return tf.math.igamma(tf.ones_like(x), x)


def main() -> int:
    x = tf.constant(0.0)
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = target(x)
    got = float(tape.gradient(z, x))

    mp.mp.dps = 50
    # forward differences from the right (x >= 0 is the domain); gammainc's lower limit 0
    # and upper limit h > 0
    true = mp.diff(lambda t: mp.gammainc(1, 0, t, regularized=True) if t > 0 else mp.mpf(0), 0, direction=1)
    closed = mp.diff(lambda t: 1 - mp.exp(-t), 0)

    print(f"tf.math.igamma(a, x) at a = 1, x = 0, float32, TensorFlow {tf.__version__}")
    print(f"  d/dx: TensorFlow {got!r:<6} true {mp.nstr(true, 15)}  (mpmath: right derivative of gammainc(1, 0, x); "
          f"closed form d/dx (1 - exp(-x)) = {mp.nstr(closed, 15)})")
    bug = not (math.isfinite(got) and abs(got - float(true)) <= 1e-5)
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
