"""Small targets with one known property each, for the test suite."""

import tensorflow as tf


@tf.custom_gradient
def broadcast_not_reduced(x, b):
    """Gradient of b has x's shape: the broadcast was not summed (a `shape` bug)."""

    def grad(dy):
        return dy, dy

    return x + b, grad


@tf.custom_gradient
def float32_gradient(x):
    """Returns a float32 gradient for a float64 input (a `dtype` bug)."""

    def grad(dy):
        return tf.cast(dy * 3.0, tf.float32)

    return x * 3.0, grad


@tf.custom_gradient
def forgets_scale(x, s):
    """Returns None for s although the output depends on it (a `missing-gradient` bug)."""

    def grad(dy):
        return dy * s, None

    return x * s, grad


@tf.custom_gradient
def nan_at_zero(x):
    """x/x in the gradient: NaN at exactly zero (a `non-finite` bug)."""

    def grad(dy):
        return dy * tf.sqrt(x) / tf.sqrt(x) * 2 * x

    return x * x, grad


@tf.custom_gradient
def grad_raises(x):
    def grad(dy):
        raise ValueError("gradient not implemented")

    return x * 2, grad


def forward_raises(x):
    raise RuntimeError("this target always fails")


def forward_raises_above_50(x):
    tf.debugging.assert_less(x, 50.0)
    return x * 2


@tf.custom_gradient
def threshold_mismatch(x):
    """The forward switches at 0, the gradient at 1e-3 (a thin-region `branch` bug)."""
    y = tf.where(x > 0, x * x, x)

    def grad(dy):
        return dy * tf.where(x > 1e-3, 2 * x, tf.ones_like(x))

    return y, grad


not_a_function = 42


@tf.custom_gradient
def squeezes_gradient(x):
    """tf.squeeze in grad_fn: the gradient loses its size-1 dimensions (a `shape` bug at size 1 only)."""
    return x * 2.0, lambda dy: tf.squeeze(dy * 2.0)


@tf.custom_gradient
def broadcast_add_unreduced(x, b):
    """x + b with the incoming gradient passed through: wrong whenever the shapes broadcast."""
    return x + b, lambda dy: (dy, dy)


@tf.custom_gradient
def broadcast_add(x, b):
    """x + b with each gradient summed back to its argument's shape (correct for every broadcast)."""

    def grad(dy):
        reduce_x, reduce_b = tf.raw_ops.BroadcastGradientArgs(s0=tf.shape(x), s1=tf.shape(b))
        return (tf.reshape(tf.reduce_sum(dy, reduce_x), tf.shape(x)),
                tf.reshape(tf.reduce_sum(dy, reduce_b), tf.shape(b)))

    return x + b, grad


@tf.custom_gradient
def first_element_scaled_above_one(x):
    """sum(x²) whose gradient is 3·x₀ instead of 2·x₀ when x₀ > 1: only x₀ matters for the bug."""
    scale = tf.where((tf.range(tf.shape(x)[0]) == 0) & (x > 1.0), 3.0 * tf.ones_like(x), 2.0 * tf.ones_like(x))
    return tf.reduce_sum(x * x), lambda dy: dy * scale * x
