"""tf.acos: a NaN in an element the loss never uses leaks into that element's gradient.

TensorFlow 2.21 (tensorflow/tensorflow#57786). f(x) = acos(x)[0:1] depends on x[0] only, so
∂f/∂x[1] = ∂f/∂x[2] = 0 whatever x[1] and x[2] are. TensorFlow's acos gradient computes
-dy / sqrt(1 - x²) for every element and the slice's gradient feeds dy = 0 to the unused
ones: 0 / sqrt(1 - 4) = 0 / NaN = NaN. The right values: exact zeros for the unused
elements (f does not depend on them), and -1/sqrt(1 - x0²) from mpmath (50 digits) for x[0].

    python scripts/bugs/tf_acos_slice.py   # exit 0: the bug reproduces; 3: it does not
"""
import sys

import mpmath as mp
import numpy as np
import tensorflow as tf


def target(x):
    return tf.acos(x)[0:1]


def main() -> int:
    x = tf.constant([0.5, 2.0, 3.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(target(x))
    got = tape.gradient(loss, x).numpy()

    mp.mp.dps = 50
    want = [float(mp.diff(mp.acos, mp.mpf("0.5"))), 0.0, 0.0]  # f does not depend on x[1], x[2]

    print(f"gradient of tf.acos(x)[0:1] at x = [0.5, 2, 3], float32, TensorFlow {tf.__version__}")
    print(f"  TensorFlow {got.tolist()}")
    print(f"  true       {want}  (mpmath for x[0]; exactly 0 for the elements the slice drops)")
    bug = not np.allclose(got, want, rtol=1e-5)
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
