"""Targets of the kinds users point gradfuzz at that are awkward to batch (issue #15): a series
written with tf.while_loop, gradients computed in numpy (eager-only), a tf.cond."""

import time

import numpy as np
import tensorflow as tf

import gradfuzz


@gradfuzz.inputs("float64[4]@0.01..50")
def bessel_i0(x):
    """I₀(x) = Σ (x²/4)ᵏ/(k!)² summed with tf.while_loop until the terms stop mattering, the way
    scientific TF libraries write special functions. A plain function: its gradient is TF's own,
    through the loop."""
    q = x * x / 4

    def more(k, term, total):
        return tf.reduce_any(term > 1e-17 * total)

    def add(k, term, total):
        term = term * q / (k * k)
        return k + 1, term, total + term

    _, _, total = tf.while_loop(more, add, (tf.constant(1.0, x.dtype), tf.ones_like(x), tf.ones_like(x)))
    return total


def _ball_projection_with_numpy_gradient(scale_by_norm: bool):
    """Projection onto the unit ball, x/max(1, ‖x‖), whose grad_fn works the vector-Jacobian product
    out in numpy from eager values, as research code often does (it cannot be traced)."""

    @tf.custom_gradient
    def project(x):
        def grad(dy):
            g, v = dy.numpy(), x.numpy()
            norm = np.linalg.norm(v)
            if norm > 1:
                g = g - v * (v @ g) / norm**2
                g = g / norm if scale_by_norm else g
            return tf.constant(g, dtype=x.dtype)

        return x / tf.maximum(tf.constant(1.0, x.dtype), tf.norm(x)), grad

    return project


project_to_ball = gradfuzz.inputs("float64[3]@-3..3")(_ball_projection_with_numpy_gradient(scale_by_norm=True))
project_to_ball.__doc__ = "Projection onto the unit ball, gradient in numpy (right)."

project_to_ball_unscaled = gradfuzz.inputs("float64[3]@-3..3")(_ball_projection_with_numpy_gradient(scale_by_norm=False))
project_to_ball_unscaled.__doc__ = "The same, without the 1/‖x‖ factor outside the ball (wrong: a mismatch)."


@tf.custom_gradient
def _swish(x):
    s = tf.sigmoid(x)
    return x * s, lambda dy: dy * (s * (1 + x * (1 - s)))


@tf.custom_gradient
def _swish_sign_error(x):
    s = tf.sigmoid(x)
    return x * s, lambda dy: dy * (s * (1 + x * (1 + s)))


@gradfuzz.inputs("float64[4]@-3..3")
def dense_swish():
    """A layer factory: a Dense layer whose activation is a custom gradient (right). Every call
    builds new random weights, so replay must restore the stored ones."""
    return tf.keras.layers.Dense(3, activation=_swish, dtype="float64")


@gradfuzz.inputs("float64[4]@-3..3")
def dense_swish_sign_error():
    """The same with 1 + x·(1 + σ) where the derivative has 1 + x·(1 - σ) (wrong)."""
    return tf.keras.layers.Dense(3, activation=_swish_sign_error, dtype="float64")


@gradfuzz.inputs("float64[]@-4..4")
@tf.custom_gradient
def reciprocal_or_zero(x):
    """1/x, or 0 at 0, with tf.cond (under vectorized_map its predicate is one example's). Selecting
    both branches would make autodiff's gradient 0·∞ = NaN at 0 (the cond's is 0): the engine must
    repair those examples, not report them."""
    nonzero = x != 0
    y = tf.cond(nonzero, lambda: x**-1.0, lambda: tf.zeros_like(x))

    def grad(dy):
        return tf.cond(nonzero, lambda: -dy / (x * x), lambda: tf.zeros_like(x))

    return y, grad


@gradfuzz.inputs("float64[]@-100..100")
def stalls_below_minus_50(x):
    """x² through a py_function that blocks for two minutes when x < -50: a stand-in for a loop whose
    exit condition some inputs never meet (it sleeps, so an abandoned call costs no CPU)."""

    def stall(value):
        if float(value.numpy()) < -50:
            time.sleep(120)
        return value

    y = tf.py_function(stall, [x], x.dtype)
    y.set_shape(x.shape)
    return y * y
