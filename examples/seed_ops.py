"""The seed article's three custom gradients, unchanged, plus a corrected ``my_op``.

From "Why is a custom TensorFlow gradient different from the Jacobian-based
implementation?" (see ../shared/seed/). Each is declared with
``@gradfuzz.inputs`` so ``gradfuzz check examples/seed_ops.py`` needs no flags.
"""

import tensorflow as tf

import gradfuzz


@gradfuzz.inputs("float64[]")
@tf.custom_gradient
def my_op(x):
    y = tf.math.sin(x)

    def grad(dy):
        # Approximates derivative using finite differences (the seed's bug: error ~ 0.0005·|sin x|)
        dx = (tf.math.sin(x + 0.001) - tf.math.sin(x)) / 0.001
        return dy * dx

    return y, grad


@gradfuzz.inputs("float64[]")
@tf.custom_gradient
def my_op_fixed(x):
    y = tf.math.sin(x)

    def grad(dy):
        return dy * tf.math.cos(x)

    return y, grad


@gradfuzz.inputs("float32[]")
@tf.custom_gradient
def branched_op(x):
    y = tf.cond(x > 0, lambda: x**2, lambda: x)  # Branching behaviour

    def grad(dy):
        return tf.cond(x > 0, lambda: 2 * x * dy, lambda: dy)  # Explicit gradient for each branch

    return y, grad


@gradfuzz.inputs("float64[]")
@tf.custom_gradient
def type_mismatch_op(x):
    y = tf.cast(x, dtype=tf.float32) * 2.0  # Cast to float32

    def grad(dy):
        return tf.cast(dy, dtype=tf.float64) * 2.0  # Gradient calculation in float64

    return y, grad
