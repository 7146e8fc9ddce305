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


BUGS = {
    "threshold mismatch, width 1e-4": threshold_1e4,
    "x·y > 1 vs x·y > 1.001": product_boundary,
    "sin(x)·y > 0.5 vs > 0.5005": sin_product_boundary,
    "wrong only below -95": wrong_below_minus_95,
    "float16 overflow |x| ≥ 256": float16_overflow,
    "wrong only at exact zero": wrong_at_exact_zero,
}
