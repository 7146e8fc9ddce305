"""tfp.math.betaincinv: the forward is wrong (not the inverse of betainc) at some (a, b, p).

TensorFlow Probability 0.25. betaincinv(a, b, p) should return x with I_x(a, b) = p. At float64,
betaincinv(0.5, 0.5, 0.5) returns 0.6185 (by symmetry the answer is 0.5; I at 0.6185 is 0.576),
and (2, 3, 0.5), (0.5, 2, 0.5) and — at float32 too — (0.6, 0.5, 0.5) miss by 1e-2 to 6e-2 in p.
A forward bug (the gradients, taken by the implicit function theorem at the returned x, are then
off as well). Checked with mpmath's betainc (50 digits) at TFP's x. Found by scripts/label_sweep.py.

    python scripts/bug_candidates/tfp_betaincinv.py   # exit 0: the bug reproduces; 3: it does not; 4: no TFP
"""
import sys

import mpmath as mp
import tensorflow as tf


def _tfp():
    try:
        import tensorflow_probability as tfp
    except ImportError:
        return None
    return tfp


def target(a, b, p):
    return _tfp().math.betaincinv(a, b, p)


def main() -> int:
    tfp = _tfp()
    if tfp is None:
        print("tensorflow_probability not installed")
        return 4
    mp.mp.dps = 50
    bug = False
    for dtype in (tf.float32, tf.float64):
        for a, b, p in ((0.5, 0.5, 0.5), (2.0, 3.0, 0.5), (0.5, 2.0, 0.5), (0.6, 0.5, 0.5), (0.5, 0.5, 0.3)):
            x = float(tfp.math.betaincinv(tf.constant(a, dtype), tf.constant(b, dtype), tf.constant(p, dtype)))
            back = float(mp.betainc(a, b, 0, x, regularized=True))
            off = abs(back - p) > (1e-4 if dtype == tf.float32 else 1e-9)
            bug |= off
            print(f"{dtype.name} betaincinv({a}, {b}, {p}) = {x!r}: I_x(a, b) = {back:.12g}{'  WRONG' if off else ''}")
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
