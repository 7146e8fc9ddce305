"""tfp.math.atan_difference: the gradient is NaN on the curve x·y = -1; the function is smooth there.

TensorFlow Probability 0.25.0 (on TensorFlow 2.21; no upstream issue found).
atan_difference(x, y) = atan(x) - atan(y) is computed as atan((x - y)/(1 + x·y)) plus a
correction, and where x·y = -1 exactly a tf.where substitutes the limit π·sign(x)/2. The
value is right, but the discarded branch divides by 1 + x·y = 0, and its gradient (inf
times 0) is NaN, which tf.where's gradient passes on. The true partials are those of
atan(x) - atan(y): 1/(1 + x²) and -1/(1 + y²), at (2, -0.5) 0.2 and -0.8 (mpmath, 50 digits:
mp.diff of mp.atan(x) - mp.atan(y)).

    python scripts/bugs/tfp_atan_difference.py   # exit 0: the bug reproduces; 3: it does not; 4: no TFP
"""
import math
import sys

import mpmath as mp
import tensorflow as tf


def _tfp():
    try:
        import tensorflow_probability as tfp
    except ImportError:
        return None
    return tfp


def target(x, y):
    return _tfp().math.atan_difference(x, y)


def main() -> int:
    tfp = _tfp()
    if tfp is None:
        print("tensorflow_probability not installed")
        return 4
    x, y = tf.constant(2.0), tf.constant(-0.5)  # x·y = -1 exactly in float32
    with tf.GradientTape() as tape:
        tape.watch([x, y])
        z = target(x, y)
    dx, dy = (float(g) for g in tape.gradient(z, [x, y]))

    mp.mp.dps = 50
    true_z = mp.atan(2) - mp.atan(mp.mpf("-0.5"))
    true_dx = mp.diff(lambda t: mp.atan(t) - mp.atan(mp.mpf("-0.5")), 2)
    true_dy = mp.diff(lambda t: mp.atan(2) - mp.atan(t), mp.mpf("-0.5"))

    print(f"tfp.math.atan_difference(x, y) at x = 2, y = -0.5 (x*y = -1), float32, TensorFlow Probability "
          f"{tfp.__version__}, TensorFlow {tf.__version__}")
    print(f"  value: TFP {float(z)!r:<12} true {mp.nstr(true_z, 15)}")
    print(f"  d/dx:  TFP {dx!r:<12} true {mp.nstr(true_dx, 15)}  (mpmath: d/dx atan(x) - atan(y))")
    print(f"  d/dy:  TFP {dy!r:<12} true {mp.nstr(true_dy, 15)}")
    bug = not all(math.isfinite(g) and abs(g - float(t)) <= 1e-5 for g, t in ((dx, true_dx), (dy, true_dy)))
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
