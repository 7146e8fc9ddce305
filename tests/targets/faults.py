"""Targets whose gradient takes its process down: the supervisor must survive each (issue #27).

Each forward is x·2 (fine everywhere); the fault is in the custom gradient, so the first eager
probe meets it. `allocates` grows without bound: run it only under a memory limit.
"""

import ctypes
import os
import signal
import sys
import threading

import numpy as np
import tensorflow as tf


def _faulty(fault):
    @tf.custom_gradient
    def op(x):
        def grad(dy):
            return fault(dy, x)

        return x * 2.0, grad

    return op


def _exit(dy, x):
    sys.exit(0)


def _os_exit(dy, x):
    os._exit(0)


def _block(value):
    threading.Event().wait()  # forever, inside a TensorFlow op
    return value


def _segfault(value):
    ctypes.string_at(0)  # reads address 0: SIGSEGV
    return value


def _allocate(value):
    held = []
    while True:  # without bound (a MemoryError under RLIMIT_AS, else the OOM killer)
        held.append(np.ones(2**27))


def _segfault_below(value):
    if np.any(value < -50):  # only part of the domain: the first probe passes, a batch crashes
        ctypes.string_at(0)
    return value


def _killed(value):
    os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer ends a process
    return value


def _hold_the_interpreter(value):
    ctypes.PyDLL(None).sleep(100_000)  # a C call that keeps the GIL: no watchdog thread of this process can run
    return value


exits = _faulty(_exit)  # sys.exit(0) in the gradient
os_exits = _faulty(_os_exit)  # os._exit(0) in the gradient
blocks = _faulty(lambda dy, x: dy * tf.numpy_function(_block, [x], x.dtype))
segfaults = _faulty(lambda dy, x: dy * tf.numpy_function(_segfault, [x], x.dtype))
allocates = _faulty(lambda dy, x: dy * tf.numpy_function(_allocate, [x], x.dtype))
segfaults_below = _faulty(lambda dy, x: dy * tf.numpy_function(_segfault_below, [x], x.dtype))  # x < -50 only
killed = _faulty(lambda dy, x: dy * tf.numpy_function(_killed, [x], x.dtype))
holds_gil = _faulty(lambda dy, x: dy * tf.numpy_function(_hold_the_interpreter, [x], x.dtype))  # only a deadline ends it


def exits_in_numpy_function(x):
    """sys.exit(0) inside a tf.numpy_function of the gradient."""
    return _faulty(lambda dy, v: dy * tf.numpy_function(lambda a: sys.exit(0), [v], v.dtype))(x)
