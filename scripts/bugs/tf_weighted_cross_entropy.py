"""tf.nn.weighted_cross_entropy_with_logits: ∂/∂logits is wrong at logits = 0 exactly.

TensorFlow 2.21. The loss q·z·softplus(-x) + (1 - z)·softplus(x) is smooth in the logits x; its
derivative at x = 0 is (1 - z)/2 - q·z/2. TensorFlow writes it as (1 - z)·x + (1 + (q - 1)·z)·
(log1p(exp(-|x|)) + relu(-x)) and takes 0 for the derivatives of |x| and relu at 0, so it returns
1 - z there (labels 0, pos_weight 3: 1.0 instead of 0.5; labels 0.3: 0.7 instead of -0.1).
tf.nn.sigmoid_cross_entropy_with_logits, written with where(x >= 0, ...), is right at 0. The right
value comes from mpmath (50 digits). Found by scripts/label_sweep.py.

    python scripts/bugs/tf_weighted_cross_entropy.py   # exit 0: the bug reproduces; 3: it does not
"""
import sys

import mpmath as mp
import numpy as np
import tensorflow as tf


def target(labels, logits, pos_weight):
    return tf.nn.weighted_cross_entropy_with_logits(labels, logits, pos_weight)


def main() -> int:
    mp.mp.dps = 50
    bug = False
    for z, q in ((0.0, 3.0), (0.3, 3.0)):
        x = tf.constant([0.0], tf.float64)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.nn.weighted_cross_entropy_with_logits(tf.constant([z], tf.float64), x, q)
        g = float(tape.gradient(loss, x)[0])
        true = float(mp.diff(lambda t, z=z, q=q: q * z * mp.log1p(mp.exp(-t)) + (1 - z) * mp.log1p(mp.exp(t)), 0))
        print(f"labels {z}, logits 0, pos_weight {q}, float64: d/dlogits TensorFlow {g!r}, true {true!r} (mpmath)")
        bug |= not np.isclose(g, true, rtol=1e-6, atol=1e-12)
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
