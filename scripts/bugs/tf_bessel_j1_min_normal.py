"""tf.math.special.bessel_j1: the gradient at the smallest normal numbers is 1; the truth is 1/2.

TensorFlow 2.21. J1(x) = x/2 - x³/16 + ..., so J1'(x) = J0(x) - J1(x)/x is 1/2 near 0.
TensorFlow's registered gradient (math_grad.py, _BesselJ1Grad) computes
dy/dx = j0(x) - y/x and imputes 0.5 only where x == 0. Near the bottom of the normal range the
forward value y is 0 on CPU, so the y/x term (= 1/2) is lost and the gradient is j0(x) = 1. The forward
is 0 over a wider range than the binade where x/2 is subnormal: Eigen's Cephes-style j1 first
multiplies x by a small rational-polynomial value (≈ 6.9e-4 at float64, ≈ 0.034 at float32, then times
(z - Z1)(z - Z2) or (z - Z1)), and that product is subnormal and flushed to 0. Measured here:
float64 wrong for |x| in [2.2250738585072014e-308, ≈3.2e-305] (≈1440·min_normal), float32 for
|x| in [1.1754944e-38, ≈3.4e-37] (≈29·min_normal).
  * x = ±2.2250738585072014e-308, ±1.5·that, ±3e-308, 1e-306, 3e-305 (float64): TensorFlow 1.0, true 0.5;
  * x = ±1.1754944e-38, ±1.5·that, ±3e-38, 3e-37 (float32): the same.
Controls where TensorFlow is right: x = 0 (the imputed 0.5), a subnormal x (flushed to 0 itself, so
it takes the x == 0 branch), x just above the range (4e-305 / 4e-37), 1e-300 / 1e-30, and 1.0.
The true values come from mpmath (60 digits): the derivative of besselj(1, x) at the float's exact
value, checked against the closed form (J0(x) - J2(x))/2. Confirmed here without gradfuzz.

    python scripts/bugs/tf_bessel_j1_min_normal.py   # exit 0: the bug reproduces; 3: it does not
"""
import sys

import mpmath as mp
import numpy as np
import tensorflow as tf


def target(x):
    return tf.math.special.bessel_j1(x)


def tf_grad(fn, x, dtype):
    t = tf.constant(x, dtype)
    with tf.GradientTape() as tape:
        tape.watch(t)
        y = fn(t)
    return float(tape.gradient(y, t)), float(y)


def true_grad(x):
    """d/dx of J1 at the exact value of x (mpmath, 60 digits), checked against the closed form
    (J0(x) - J2(x))/2 (J1 is smooth, so a central difference is fine at 0 too)."""
    x = mp.mpf(x)
    h = max(abs(x), mp.mpf(2) ** -1000) * mp.mpf(2) ** -100
    d = mp.diff(lambda t: mp.besselj(1, t), x, h=h)
    closed = (mp.besselj(0, x) - mp.besselj(2, x)) / 2
    assert abs(d - closed) <= mp.mpf(10) ** -25 * max(1, abs(closed)), (x, d, closed)
    return float(d)


def main() -> int:
    mp.mp.dps = 60
    reproduces = {}
    for dtype in (tf.float64, tf.float32):
        tiny = float(np.finfo(dtype.as_numpy_dtype).tiny)
        if dtype == tf.float64:
            thin = [tiny, -tiny, 1.5 * tiny, -1.5 * tiny, 3e-308, -3e-308, 1e-306, 3e-305]
            controls = [0.0, tiny / 2, 4e-305, 1e-300, 1.0]
        else:
            thin = [tiny, -tiny, 1.5 * tiny, -1.5 * tiny, 3e-38, -3e-38, 3e-37]
            controls = [0.0, tiny / 2, 4e-37, 1e-30, 1.0]
        thin = [float(np.array(x, dtype.as_numpy_dtype)) for x in thin]  # the values TensorFlow sees
        controls = [float(np.array(x, dtype.as_numpy_dtype)) for x in controls]
        bug = False
        for x in thin + controls:
            true = true_grad(x)
            g, y = tf_grad(tf.math.special.bessel_j1, x, dtype)
            wrong = not np.isclose(g, true, rtol=1e-5 if dtype == tf.float32 else 1e-12, atol=0.0)
            print(f"tf.math.special.bessel_j1 {dtype.name} x = {x!r:24s} forward {y!r:24s} "
                  f"(true {float(mp.besselj(1, mp.mpf(x)))!r}) gradient: TensorFlow {g!r}, "
                  f"true {true!r} (mpmath){'  WRONG' if wrong else ''}")
            if x in thin:
                bug |= wrong
            elif wrong:
                print("  (a control is wrong too: not the bug this script is about)")
        reproduces[dtype.name] = bug
    for name, bug in reproduces.items():
        print(f"{name}: {'reproduces' if bug else 'not reproduced'}")
    bug = any(reproduces.values())
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
