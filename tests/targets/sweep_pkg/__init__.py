"""A small package for `gradfuzz sweep`'s tests: two right gradients, one wrong one, and functions the
sweep must list as skipped with a reason (an integer output, integer-only inputs, an argument it cannot
guess, an alias). Classes, constants and private names are not functions to sweep at all."""

import tensorflow as tf

import gradfuzz


@gradfuzz.inputs("float64[3]@-3..3")
@tf.custom_gradient
def square(x):
    def grad(dy):
        return dy * 2 * x

    return x * x, grad


@tf.custom_gradient
def softplus(x):
    """No declared inputs: the sweep reads one argument from the signature (float32[3], float64[3])."""

    def grad(dy):
        return dy * tf.sigmoid(x)

    return tf.math.softplus(x), grad


@gradfuzz.inputs("float64[3]@-3..3")
@tf.custom_gradient
def wrong_sin(x):
    def grad(dy):
        return dy * tf.sin(x)  # should be cos(x)

    return tf.sin(x), grad


def argmax_index(x):
    """An integer output: nothing to differentiate."""
    return tf.argmax(x)


@gradfuzz.inputs("int32[3]@0..5")
def running_count(n):
    """Integer inputs only."""
    return tf.cumsum(n)


def pad_to(x, width: int):
    """Needs a size the sweep cannot guess."""
    return tf.pad(x, [[0, width]])


square_again = square  # an alias: checked once


class Helper:
    def __call__(self, x):
        return x


VERSION = "1.0"


def _private(x):
    return x
