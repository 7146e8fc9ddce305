"""The four benchmark targets: a scalar, a vector, a reduction and a matrix op."""

import tensorflow as tf

import gradfuzz
from examples.seed_ops import my_op  # the seed article's finite-difference gradient: every example fails


@gradfuzz.inputs("float32[64]@-20..20")
@tf.custom_gradient
def softplus64(x):
    y = tf.maximum(x, 0.0) + tf.math.log1p(tf.exp(-tf.abs(x)))

    def grad(dy):
        return dy * tf.sigmoid(x)

    return y, grad


@gradfuzz.inputs("float32[3,5]@-30..30")
@tf.custom_gradient
def logsumexp(x):
    m = tf.reduce_max(x, axis=-1, keepdims=True)
    y = tf.squeeze(m, -1) + tf.math.log(tf.reduce_sum(tf.exp(x - m), axis=-1))

    def grad(dy):
        return dy[..., None] * tf.nn.softmax(x, axis=-1)

    return y, grad


@gradfuzz.inputs("float32[16,16]@-2..2")
@tf.custom_gradient
def gram(x):
    """x xᵀ with its gradient (dy + dyᵀ) x."""
    y = tf.linalg.matmul(x, x, transpose_b=True)

    def grad(dy):
        return tf.linalg.matmul(dy + tf.linalg.matrix_transpose(dy), x)

    return y, grad


TARGETS = {"scalar my_op": my_op, "vector[64] softplus": softplus64, "reduction[3,5] logsumexp": logsumexp,
           "matrix[16,16] gram": gram}
