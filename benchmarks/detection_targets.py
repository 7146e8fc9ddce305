"""Planted thin-region bugs for benchmarks/detection.py (each wrong on a tiny part of its domain)."""

import tensorflow as tf

import gradfuzz


@gradfuzz.inputs("float32[]@-10..10")
@tf.custom_gradient
def threshold_1e4(x):
    """Forward switches at 0, gradient at 1e-4: wrong on (0, 1e-4], 5e-6 of the range."""
    y = tf.where(x > 0, x * x, x)
    return y, lambda dy: dy * tf.where(x > 1e-4, 2 * x, tf.ones_like(x))


@gradfuzz.inputs("float32[]@-10..10", "float32[]@-10..10")
@tf.custom_gradient
def product_boundary(x, y):
    """Data-dependent boundary: the forward switches at x·y = 1, the gradient at 1.001."""
    out = tf.where(x * y > 1.0, x * y, tf.zeros_like(x))

    def grad(dy):
        inside = tf.cast(x * y > 1.001, dy.dtype)
        return dy * y * inside, dy * x * inside

    return out, grad


@gradfuzz.inputs("float32[]@-10..10", "float32[]@-10..10")
@tf.custom_gradient
def sin_product_boundary(x, y):
    """A boundary no graph constant points at: the forward switches at sin(x)·y = 0.5, the
    gradient at 0.5005 (wrong on a band of relative width 1e-3 along a curve)."""
    p = tf.sin(x) * y
    out = tf.where(p > 0.5, p, tf.zeros_like(p))

    def grad(dy):
        inside = tf.cast(tf.sin(x) * y > 0.5005, dy.dtype)
        return dy * tf.cos(x) * y * inside, dy * tf.sin(x) * inside

    return out, grad


@gradfuzz.inputs("float64[]@-100..100")
@tf.custom_gradient
def wrong_below_minus_95(x):
    return tf.sin(x), lambda dy: dy * tf.where(x < -95.0, 0.5 * tf.cos(x), tf.cos(x))


@gradfuzz.inputs("float16[]@-300..300")
@tf.custom_gradient
def float16_overflow(x):
    """The forward scales first and stays finite; the gradient 0.003·x² overflows for |x| ≥ 256 (x² > 65504).

    (Written with tf.math.square: grappler may reorder a chain of multiplications such as
    3·(x·x)/1000 in graph mode and so avoid the overflow.)"""
    return x * (x * (x / 1000)), lambda dy: dy * 0.003 * tf.math.square(x)


@gradfuzz.inputs("float64[]")
@tf.custom_gradient
def wrong_at_exact_zero(x):
    return tf.sin(x), lambda dy: dy * tf.where(tf.equal(x, 0.0), tf.zeros_like(x), tf.cos(x))


# -- written for issue #16 before its strategy changes were tuned (kept whatever they show) ------


@gradfuzz.inputs("float32[]@-10..10")
@tf.custom_gradient
def dead_zone_below_1e6(x):
    """tanh with a gradient that is 0 for |x| < 1e-6 (a "numerical dead zone") where it is ≈ 1."""
    y = tf.tanh(x)
    return y, lambda dy: dy * tf.where(tf.abs(x) < 1e-6, tf.zeros_like(x), 1 - y * y)


@gradfuzz.inputs("float64[]@-1..1")
@tf.custom_gradient
def log1p_padded_near_minus_one(x):
    """log1p(x) whose gradient pads the denominator below -0.99: 1/(1.0001 + x), wrong on 0.5%
    of the range, next to the singularity at -1 (the end of the range)."""
    return tf.math.log1p(x), lambda dy: dy * tf.where(x < -0.99, 1 / (1.0001 + x), 1 / (1 + x))


@gradfuzz.inputs("float32[]@-3..3", "float32[]@-3..3")
@tf.custom_gradient
def maximum_double_counts_ties(x, y):
    """max(x, y) whose gradient gives dy to both arguments when they tie (x = y), where any split
    that sums to dy is a subgradient: wrong only on the diagonal, a set of measure zero."""
    return tf.maximum(x, y), lambda dy: (dy * tf.cast(x >= y, dy.dtype), dy * tf.cast(y >= x, dy.dtype))


# -- corners of TensorFlow's own registered gradients (plain functions, no planted code) -----------

pow_at_zero_zero = gradfuzz.inputs("float64[]@0..3", "float64[]@0..3")(lambda x, y: tf.pow(x, y))
pow_at_zero_zero.__doc__ = "tf.pow's gradient is NaN only where both arguments are exactly 0."

igamma_at_zero = gradfuzz.inputs("float64[]@0.5..3", "float64[]@0..5")(lambda a, x: tf.math.igamma(a, x))
igamma_at_zero.__doc__ = "tf.math.igamma(a, x)'s gradient is NaN at x = 0 (the range's lower end) for a = 1."


BUGS = {
    "threshold mismatch, width 1e-4": threshold_1e4,
    "x·y > 1 vs x·y > 1.001": product_boundary,
    "sin(x)·y > 0.5 vs > 0.5005": sin_product_boundary,
    "wrong only below -95": wrong_below_minus_95,
    "float16 overflow |x| ≥ 256": float16_overflow,
    "wrong only at exact zero": wrong_at_exact_zero,
    "dead zone |x| < 1e-6": dead_zone_below_1e6,
    "padded denominator below -0.99": log1p_padded_near_minus_one,
    "max gives dy to both at ties": maximum_double_counts_ties,
    "tf.pow at (0, 0)": pow_at_zero_zero,
    "tf.math.igamma at x = 0": igamma_at_zero,
}
