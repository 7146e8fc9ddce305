"""tfp.math.betainc: ∂/∂a (or ∂/∂b) is wrong when b (or a) is a positive integer; 44% off at (1, 4, 0.2).

TensorFlow Probability 0.25.0 (on TensorFlow 2.21; no upstream issue found). The partial
derivatives come from the power series x^a·2F1(a, 1-b; a+1; x)/(a·B(a, b)) (after the
symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where x >= a/(a+b)). Its loop stops at the first term
below the tolerance; when the series' b is a positive integer its terms contain the factor
(n - b), so the series of values ends exactly at n = b (a zero term), but the series of
∂/∂b does not end there, and the loop stops with ∂/∂b truncated. Because the loop runs until
every element of the batch has stopped and keeps updating the ones that have, the error
shows for a scalar or for a batch whose elements all stop early; mixed with a non-integer
element it is right. At (a, b, x) = (1, 4, 0.2) the symmetry applies and the truncated
∂/∂b becomes ∂/∂a: TFP gives -0.5912, the true value is -0.4105 (mpmath, 50 digits: mp.diff
of mpmath's regularized incomplete beta function mp.betainc(a, b, 0, x, regularized=True)).

    python scripts/bugs/tfp_betainc.py   # exit 0: the bug reproduces; 3: it does not; 4: no TFP
"""
import sys

import mpmath as mp
import numpy as np
import tensorflow as tf


def _tfp():
    try:
        import tensorflow_probability as tfp
    except ImportError:
        return None
    return tfp


def target(a, b, x):
    return _tfp().math.betainc(a, b, x)


def main() -> int:
    tfp = _tfp()
    if tfp is None:
        print("tensorflow_probability not installed")
        return 4
    point = (1.0, 4.0, 0.2)
    a, b, x = (tf.constant(v, tf.float64) for v in point)
    with tf.GradientTape() as tape:
        tape.watch([a, b, x])
        z = target(a, b, x)
    da, db, dx = (float(g) for g in tape.gradient(z, [a, b, x]))

    mp.mp.dps = 50

    def inc(p, q, t):
        return mp.betainc(p, q, 0, t, regularized=True)

    pa, pb, px = (mp.mpf(v) for v in point)
    true_da = mp.diff(lambda s: inc(s, pb, px), pa)
    true_db = mp.diff(lambda s: inc(pa, s, px), pb)
    true_dx = mp.diff(lambda s: inc(pa, pb, s), px)

    print(f"tfp.math.betainc(a, b, x) at a = 1, b = 4, x = 0.2, float64, TensorFlow Probability "
          f"{tfp.__version__}, TensorFlow {tf.__version__}")
    rows = [("a", da, true_da), ("b", db, true_db), ("x", dx, true_dx)]
    for name, got, true in rows:
        rel = abs(got - float(true)) / abs(float(true))
        print(f"  d/d{name}: TFP {got:<22.17g} true {mp.nstr(true, 17):<22} relative error {rel:.2g}")
    print("  (true values: mpmath, d/da of betainc(a, b, 0, x, regularized=True) at 50 digits)")
    bug = not np.isclose(da, float(true_da), rtol=1e-8)
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
