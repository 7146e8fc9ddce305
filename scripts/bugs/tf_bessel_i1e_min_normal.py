"""tf.math.bessel_i1e (and tf.math.special.bessel_i1e): the gradient at the smallest normal numbers is 1; the truth is 1/2.

TensorFlow 2.21. i1e(x) = exp(-|x|)·I1(x) = x/2 - x|x|/2 + ..., so its derivative near 0 is 1/2.
TensorFlow's registered gradient (math_grad.py, _BesselI1eGrad) computes
dy/dx = i0e(x) - y·(sign(x) + 1/x) and imputes 0.5 only where x == 0. For x in
[min_normal, 2·min_normal) (float64: 2.2250738585072014e-308 up to 4.45e-308; float32: 1.1754944e-38
up to 2.35e-38), and the same negative, the forward value y ≈ x/2 is a subnormal, which TensorFlow's
CPU kernels flush to 0; the y/x term (= 1/2) is then lost and the gradient is i0e(x) = 1:
  * x = ±2.2250738585072014e-308 (float64) and ±1.1754944e-38 (float32): TensorFlow 1.0, true 0.5;
  * x = 1.5·min_normal: the same.
Controls where TensorFlow is right: x = 0 (the imputed 0.5), x at or above 2·min_normal (4.5e-308 at
float64, 2.4e-38 at float32), 1e-300 / 1e-30, and 1.0. A subnormal x is flushed to 0 itself and
takes the x == 0 branch (right). The true values come from mpmath (60 digits): the derivative of
exp(-|x|)·besseli(1, x) at the float's exact value, checked against the closed form
exp(-|x|)·((I0(x) + I2(x))/2 - sign(x)·I1(x)). Confirmed here without gradfuzz.

    python scripts/bugs/tf_bessel_i1e_min_normal.py   # exit 0: the bug reproduces; 3: it does not
"""
import sys

import mpmath as mp
import numpy as np
import tensorflow as tf


def target(x):
    return tf.math.bessel_i1e(x)


def tf_grad(fn, x, dtype):
    t = tf.constant(x, dtype)
    with tf.GradientTape() as tape:
        tape.watch(t)
        y = fn(t)
    return float(tape.gradient(y, t)), float(y)


def true_grad(x):
    """d/dx of exp(-|x|)·I1(x) at the exact value of x (mpmath, 60 digits), checked against the closed
    form exp(-|x|)·((I0(x) + I2(x))/2 - sign(x)·I1(x)); at 0 the one-sided derivative (both sides are 1/2)."""
    f = lambda t: mp.exp(-abs(t)) * mp.besseli(1, t)  # noqa: E731
    x = mp.mpf(x)
    h = max(abs(x), mp.mpf(2) ** -1000) * mp.mpf(2) ** -100  # a step that stays on one side of 0
    d = mp.diff(f, x, h=h, direction=1 if x == 0 else 0)
    closed = mp.exp(-abs(x)) * ((mp.besseli(0, x) + mp.besseli(2, x)) / 2 - mp.sign(x) * mp.besseli(1, x))
    assert abs(d - closed) <= mp.mpf(10) ** -25 * max(1, abs(closed)), (x, d, closed)
    return float(d)


def main() -> int:
    mp.mp.dps = 60
    bug = False
    for dtype in (tf.float64, tf.float32):
        tiny = float(np.finfo(dtype.as_numpy_dtype).tiny)
        thin = [tiny, -tiny, 1.5 * tiny, -1.5 * tiny]
        controls = [0.0, 4.5e-308, 1e-300, 1.0] if dtype == tf.float64 else [0.0, 2.4e-38, 1e-30, 1.0]
        for x in thin + controls:
            x = float(np.array(x, dtype.as_numpy_dtype))  # the value TensorFlow sees
            true = true_grad(x)
            for name, fn in (("tf.math.bessel_i1e", tf.math.bessel_i1e),
                             ("tf.math.special.bessel_i1e", tf.math.special.bessel_i1e)):
                g, y = tf_grad(fn, x, dtype)
                wrong = not np.isclose(g, true, rtol=1e-5 if dtype == tf.float32 else 1e-12, atol=0.0)
                print(f"{name:27s} {dtype.name} x = {x!r:24s} forward {y!r:24s} gradient: TensorFlow {g!r}, "
                      f"true {true!r} (mpmath){'  WRONG' if wrong else ''}")
                if x in thin:
                    bug |= wrong
                elif wrong:
                    print("  (a control is wrong too: not the bug this script is about)")
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
