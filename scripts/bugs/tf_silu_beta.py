"""tf.nn.silu with a tensor beta: the gradient for beta is summed to a scalar.

TensorFlow 2.21 (tensorflow/tensorflow#127690). silu(x, beta) = x·sigmoid(beta·x) accepts a beta
tensor that broadcasts against x, but its custom gradient (nn_impl.swish) always reduce_sums
the beta derivative to shape (): for beta of shape (2,) the tape returns one number, the sum of
the two partials, instead of one partial per element. Here x = [0.5, -1], beta = [1, 2] and the
loss is 1·y0 + 3·y1; ∂/∂beta_i = v_i·x_i²·σ'(beta_i·x_i) (mpmath, 50 digits: mp.diff of
x_i/(1 + exp(-beta_i·x_i)) in beta_i). The x gradient is right.

    python scripts/bugs/tf_silu_beta.py   # exit 0: the bug reproduces; 3: it does not
"""
import sys

import mpmath as mp
import numpy as np
import tensorflow as tf


def target(x, beta):
    return tf.nn.silu(x, beta)


def main() -> int:
    xs, betas, v = [0.5, -1.0], [1.0, 2.0], [1.0, 3.0]
    x, beta = tf.constant(xs), tf.constant(betas)
    with tf.GradientTape() as tape:
        tape.watch([x, beta])
        loss = tf.reduce_sum(tf.constant(v) * target(x, beta))
    dx, dbeta = (g.numpy() for g in tape.gradient(loss, [x, beta]))

    mp.mp.dps = 50

    def silu(t, b):
        return t / (1 + mp.exp(-b * t))

    true_dbeta = [vi * mp.diff(lambda b, xi=xi: silu(mp.mpf(xi), b), mp.mpf(bi)) for xi, bi, vi in zip(xs, betas, v)]
    true_dx = [vi * mp.diff(lambda t, bi=bi: silu(t, mp.mpf(bi)), mp.mpf(xi)) for xi, bi, vi in zip(xs, betas, v)]

    print(f"gradient of 1*y0 + 3*y1, y = tf.nn.silu(x, beta), x = {xs}, beta = {betas}, float32, TensorFlow {tf.__version__}")
    print(f"  d/dbeta: TensorFlow shape {dbeta.shape}, {np.ravel(dbeta).tolist()}")
    print(f"           true       shape (2,), {[float(t) for t in true_dbeta]}  (mpmath, per element; their sum is "
          f"{mp.nstr(sum(true_dbeta), 8)})")
    print(f"  d/dx:    TensorFlow {dx.tolist()}  true {[float(t) for t in true_dx]}")
    bug = dbeta.shape != (2,) or not np.allclose(dbeta, [float(t) for t in true_dbeta], rtol=1e-5)
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
