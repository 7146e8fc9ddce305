"""The one place gradfuzz imports TensorFlow.

Importing TensorFlow is slow (seconds) and its absence must produce an
actionable message rather than a bare ``ModuleNotFoundError`` deep inside a
module, so every other module gets ``tf`` from here.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow's C++ start-up notices (oneDNN, CPU features, absl) ignore the
# variable above and are noise for a command-line tool: capture file
# descriptor 2 during the import and pass on only what is not such a notice.
_NOISE = re.compile(r"(oneDNN custom operations|absl::InitializeLog|cpu_feature_guard|rebuild TensorFlow with)")


def _import_tensorflow():
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr descriptor (embedded interpreters): import plainly
        import tensorflow

        return tensorflow
    with tempfile.TemporaryFile(mode="w+b") as captured:
        sys.stderr.flush()
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines() if not _NOISE.search(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)
    return tensorflow


try:
    tf = _import_tensorflow()
except ModuleNotFoundError as error:  # pragma: no cover - exercised without TF only
    raise ModuleNotFoundError(
        "gradfuzz needs TensorFlow, which is not installed in this environment.\n"
        "From a clone of gradfuzz, install it with one of its TensorFlow extras:\n"
        "    pip install -e '.[cpu]'   # tensorflow-cpu\n"
        "    pip install -e '.[gpu]'   # tensorflow[and-cuda]\n"
        "or install any TensorFlow 2.x build yourself (pip install tensorflow-cpu)."
    ) from error

from tensorflow.python.util import tf_decorator  # noqa: E402  (needs tf imported)

tf.get_logger().setLevel(logging.ERROR)


def configure_devices() -> str:
    """Turn on GPU memory growth and return the device gradfuzz evaluates on.

    Memory growth must be set before the first op touches a GPU, otherwise
    TensorFlow grabs all GPU memory and a second worker on the same card
    cannot start. Returns a device string such as ``"/GPU:0"`` or ``"/CPU:0"``;
    ``GRADFUZZ_DEVICE`` (e.g. ``/CPU:0`` on a machine with a GPU) chooses another.
    """
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            # Already initialised (growth can only be set before first use);
            # the setting in force is whatever the first caller chose.
            pass
    return os.environ.get("GRADFUZZ_DEVICE") or ("/GPU:0" if gpus else "/CPU:0")


class trial_trace:
    """Around a trace that is allowed to fail: silences TF's logger, and undoes what a failed
    trace leaves behind. ``tf.map_fn`` sets a caching device on the thread's variable scope and
    unsets it only when tracing succeeds; left set, every later eager ``tf.recompute_grad`` in the
    thread raises "Caching devices is not yet supported when eager execution is enabled"."""

    def __enter__(self):
        self._logger = tf.get_logger()
        self._level = self._logger.level
        self._logger.setLevel(logging.CRITICAL)
        self._scope = tf.compat.v1.get_variable_scope()
        self._caching_device = self._scope.caching_device

    def __exit__(self, *exc):
        self._logger.setLevel(self._level)
        # set_caching_device refuses to run eagerly (where we are again), so restore the field itself.
        self._scope._caching_device = self._caching_device
        return False


__all__ = ["configure_devices", "tf", "tf_decorator", "trial_trace"]
