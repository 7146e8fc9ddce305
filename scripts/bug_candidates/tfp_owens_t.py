"""tfp.math.owens_t: the float64 forward is off by 2.8e-6 (relative) for |a| > 1.

TensorFlow Probability 0.25. Owen's T(h, a) = (1/2π) ∫₀^a exp(-h²(1+t²)/2)/(1+t²) dt. At float64,
TFP gives T(1, 5) = 0.0793278431 where the integral is 0.0793276245: 2.8e-6 relative, far above
float64 rounding (T(0.5, 5) and T(1, 2) are right to 1e-16). A forward accuracy bug, not a
gradient one (TFP's gradients are closed forms). Checked with mpmath's quadrature (40 digits)
and Owen's identity T(h, a) = Φ(h)/2 + Φ(ah)/2 − Φ(h)Φ(ah) − T(ah, 1/a). Found by
scripts/label_sweep.py.

    python scripts/bug_candidates/tfp_owens_t.py   # exit 0: the bug reproduces; 3: it does not; 4: no TFP
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


def target(h, a):
    return _tfp().math.owens_t(h, a)


def owens_t(h, a):
    return mp.quad(lambda t: mp.exp(-h * h * (1 + t * t) / 2) / (1 + t * t), [0, a]) / (2 * mp.pi)


def main() -> int:
    tfp = _tfp()
    if tfp is None:
        print("tensorflow_probability not installed")
        return 4
    mp.mp.dps = 40
    bug = False
    for h, a in ((1.0, 5.0), (1.0, -5.0), (0.5, 5.0), (1.0, 2.0)):
        got = float(tfp.math.owens_t(tf.constant(h, tf.float64), tf.constant(a, tf.float64)))
        true = owens_t(mp.mpf(h), mp.mpf(a))
        rel = float(abs(got - true) / abs(true))
        bug |= rel > 1e-12
        print(f"owens_t({h}, {a}) float64: TFP {got!r}, true {mp.nstr(true, 17)} (relative error {rel:.2g})")
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
