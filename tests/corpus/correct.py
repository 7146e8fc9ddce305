"""Correct gradients: gradfuzz must never fail any of them.

Kinks, clipped ops, numerically stable formulas, and cases where autodiff of the forward is
the wrong one. Each declares its inputs; plain TF functions are listed in PLAIN.
"""

import numpy as np
import tensorflow as tf

import gradfuzz


@gradfuzz.inputs("float32[]@-80..80")
@tf.custom_gradient
def softplus(x):
    y = tf.maximum(x, 0.0) + tf.math.log1p(tf.exp(-tf.abs(x)))
    return y, lambda dy: dy * tf.sigmoid(x)


@gradfuzz.inputs("float32[8]@-30..30")
@tf.custom_gradient
def logsumexp(x):
    m = tf.reduce_max(x)
    y = m + tf.math.log(tf.reduce_sum(tf.exp(x - m)))
    return y, lambda dy: dy * tf.nn.softmax(x)


@gradfuzz.inputs("float32[4]@-5..5")
@tf.custom_gradient
def relu(x):
    return tf.maximum(x, 0.0), lambda dy: dy * tf.cast(x > 0, x.dtype)


@gradfuzz.inputs("float64[]@-20..20")
@tf.custom_gradient
def clipped_square(x):
    y = tf.clip_by_value(x * x, 0.0, 25.0)
    return y, lambda dy: dy * tf.where(tf.abs(x) < 5.0, 2.0 * x, tf.zeros_like(x))


@gradfuzz.inputs("float32[]@-40..40")
@tf.custom_gradient
def sigmoid(x):
    s = tf.sigmoid(x)
    return s, lambda dy: dy * s * (1 - s)


@gradfuzz.inputs("float64[3]@-10..10")
@tf.custom_gradient
def tanh(x):
    y = tf.tanh(x)
    return y, lambda dy: dy * (1 - y * y)


@gradfuzz.inputs("float32[]@0.01..100")
@tf.custom_gradient
def sqrt(x):
    y = tf.sqrt(x)
    return y, lambda dy: dy * 0.5 / y


@gradfuzz.inputs("float64[3]@-3..3")
@tf.custom_gradient
def absolute(x):
    return tf.abs(x), lambda dy: dy * tf.sign(x)


@gradfuzz.inputs("float32[5]@-5..5")
@tf.custom_gradient
def leaky_relu(x):
    y = tf.where(x > 0, x, 0.1 * x)
    return y, lambda dy: dy * tf.where(x > 0, tf.ones_like(x), 0.1 * tf.ones_like(x))


@gradfuzz.inputs("float32[]@-3..3")
@tf.custom_gradient
def hard_clip(x):
    y = tf.clip_by_value(x, -1.0, 1.0)
    return y, lambda dy: dy * tf.cast(tf.abs(x) <= 1.0, x.dtype)


@gradfuzz.inputs("float64[]@-800..800")
@tf.custom_gradient
def softplus_where(x):
    """tf.where with exp(-x) overflowing in the unselected branch: autodiff gives NaN, the custom gradient is right."""
    y = tf.where(x > 0, x + tf.math.log1p(tf.exp(-x)), tf.math.log1p(tf.exp(x)))
    return y, lambda dy: dy * tf.sigmoid(x)


@gradfuzz.inputs("float16[]@-100..100")
@tf.custom_gradient
def square_half(x):
    return x * x, lambda dy: dy * 2 * x


@gradfuzz.inputs("bfloat16[4]@-50..50")
@tf.custom_gradient
def scale_bfloat16(x):
    return 3 * x, lambda dy: dy * 3


@gradfuzz.inputs("float32[]@-5..5", "float32[]@-5..5")
@tf.custom_gradient
def maximum(x, y):
    def grad(dy):
        pick = tf.cast(x >= y, dy.dtype)
        return dy * pick, dy * (1 - pick)

    return tf.maximum(x, y), grad


@gradfuzz.inputs("float32[6]@-3..3")
@tf.custom_gradient
def reduce_max(x):
    def grad(dy):
        return dy * tf.one_hot(tf.argmax(x), tf.size(x), dtype=x.dtype)

    return tf.reduce_max(x), grad


@gradfuzz.inputs("float64[3]@1..5")
@tf.custom_gradient
def normalize(x):
    n = tf.norm(x)
    y = x / n

    def grad(dy):
        return (dy - y * tf.reduce_sum(dy * y)) / n

    return y, grad


@gradfuzz.inputs("float32[4,4]@-2..2")
@tf.custom_gradient
def gram(x):
    y = tf.linalg.matmul(x, x, transpose_b=True)
    return y, lambda dy: tf.linalg.matmul(dy + tf.linalg.matrix_transpose(dy), x)


@gradfuzz.inputs("float64[]@-20..20")
@tf.custom_gradient
def exp(x):
    y = tf.exp(x)
    return y, lambda dy: dy * y


@gradfuzz.inputs("float64[]@0.001..100")
@tf.custom_gradient
def log(x):
    return tf.math.log(x), lambda dy: dy / x


@gradfuzz.inputs("float32[]@-4..4")
@tf.custom_gradient
def erf(x):
    return tf.math.erf(x), lambda dy: dy * 2 / np.sqrt(np.pi) * tf.exp(-x * x)


@gradfuzz.inputs("float64[]@-10..10")
@tf.custom_gradient
def cubic(x):
    return x**3 - 2 * x, lambda dy: dy * (3 * x * x - 2)


@gradfuzz.inputs("float64[2]@-4..4")
@tf.custom_gradient
def two_outputs(x):
    """Both outputs' cotangents are used."""

    def grad(dy_sin, dy_square):
        return dy_sin * tf.cos(x) + dy_square * 2 * x

    return (tf.sin(x), x * x), grad


C = tf.constant(0.7 - 1.1j, tf.complex64)


@gradfuzz.inputs("complex64[3]@-3..3")
@tf.custom_gradient
def complex_square(z):
    """Holomorphic: TF's gradient is conj(f'(z))·dy."""
    return C * z * z, lambda dy: dy * tf.math.conj(2 * C * z)


@gradfuzz.inputs("complex128[]@-5..5")
@tf.custom_gradient
def complex_modulus_squared(z):
    """Not holomorphic, real output: TF's gradient is ∂/∂x + i·∂/∂y = 2z."""
    return tf.math.real(z * tf.math.conj(z)), lambda dy: tf.cast(dy, z.dtype) * 2 * z


@gradfuzz.inputs("float32[4]@-3..3")
@tf.custom_gradient
def leaky_relu_nested(x):
    """grad_fn is a custom gradient of its own that returns None for d²/dx²: right, since the
    slope is piecewise constant (the Hessian is zero almost everywhere). Must pass with order=2."""
    return tf.where(x > 0, x, 0.2 * x), lambda dy: _times_leaky_slope(dy, x)


@tf.custom_gradient
def _times_leaky_slope(dy, x):
    slope = tf.where(x > 0, tf.ones_like(x), 0.2 * tf.ones_like(x))
    return dy * slope, lambda ddy: (ddy * slope, None)


@gradfuzz.inputs("float64[2,2]@-2..2")
@tf.custom_gradient
def inverse(a):
    """d(A⁻¹) = -A⁻¹ dA A⁻¹. The forward raises on singular matrices (drawn from special values):
    outside its domain, a `domain` note and no failure; near them the differences meet a pole."""
    y = tf.linalg.inv(a)
    return y, lambda dy: -tf.linalg.matmul(y, tf.linalg.matmul(dy, y, transpose_b=True), transpose_a=True)


PLAIN = {
    "tf.math.exp (complex64)": (tf.math.exp, ["complex64[2]@-3..3"]),
    "tf.nn.relu": (tf.nn.relu, ["float32[3]@-2..2"]),
    "tf.math.sin": (tf.math.sin, ["float64[]"]),
    "tf.math.softplus": (tf.math.softplus, ["float32[]@-50..50"]),
}
