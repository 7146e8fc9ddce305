"""Targets for campaign tests: one wrong gradient, one correct, one that kills its process."""

import os

import tensorflow as tf

import gradfuzz


@gradfuzz.inputs("float64[]@-10..10")
@tf.custom_gradient
def doubled(x):
    """The gradient is twice the derivative everywhere (a `mismatch` found at once)."""

    def grad(dy):
        return dy * 4 * x

    return x * x, grad


@gradfuzz.inputs("float64[8]@-5..5")
@tf.custom_gradient
def scaled_tanh(x):
    """A correct hand-written gradient."""
    y = tf.tanh(x)

    def grad(dy):
        return dy * (1 - y * y)

    return y, grad


def kills_its_process(x):
    """Exits the process from Python the first time it runs (the eager probe): a worker crash."""
    if os.environ.get("GRADFUZZ_TEST_ALLOW_EXIT") == "1":
        os._exit(3)
    return x * 2



def hangs_in_python(x):
    """Never returns (a stuck op, outside any batch: the eager probe), where tests allow it."""
    import time

    while os.environ.get("GRADFUZZ_TEST_ALLOW_HANG") == "1":
        time.sleep(1)
    return x * 2
