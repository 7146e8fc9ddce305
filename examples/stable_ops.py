"""Correct custom gradients, as they appear in real code. gradfuzz must pass them all.

They are the control group of the demo: a checker that flags any of these
cries wolf.
"""

import tensorflow as tf

import gradfuzz


@gradfuzz.inputs("float32[]@-80..80")
@tf.custom_gradient
def softplus(x):
    """Numerically stable softplus; its derivative is the sigmoid."""
    y = tf.maximum(x, 0.0) + tf.math.log1p(tf.exp(-tf.abs(x)))

    def grad(dy):
        return dy * tf.sigmoid(x)

    return y, grad


@gradfuzz.inputs("float32[8]@-30..30")
@tf.custom_gradient
def logsumexp(x):
    """log Σ exp(x) with the max shifted out; the gradient is the softmax."""
    m = tf.reduce_max(x)
    y = m + tf.math.log(tf.reduce_sum(tf.exp(x - m)))

    def grad(dy):
        return dy * tf.nn.softmax(x)

    return y, grad


@gradfuzz.inputs("float32[4]@-5..5")
@tf.custom_gradient
def relu(x):
    """ReLU; at 0 any value in [0, 1] is a valid subgradient (gradfuzz notes a kink)."""

    def grad(dy):
        return dy * tf.cast(x > 0, x.dtype)

    return tf.maximum(x, 0.0), grad


@gradfuzz.inputs("float64[]@-20..20")
@tf.custom_gradient
def clipped_square(x):
    """x² clipped to [0, 25]: zero gradient outside |x| < 5."""
    y = tf.clip_by_value(x * x, 0.0, 25.0)

    def grad(dy):
        return dy * tf.where(tf.abs(x) < 5.0, 2.0 * x, tf.zeros_like(x))

    return y, grad
