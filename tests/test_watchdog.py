"""The watchdog's worker thread ends with its check: none pile up over a long campaign."""

import threading
import time

import gradfuzz
from gradfuzz.watchdog import Hang, Watchdog


def _batch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "gradfuzz-batch"]


def _wait_until_gone(before: set, timeout: float = 60.0) -> set:
    deadline = time.monotonic() + timeout
    while (left := {t for t in _batch_threads() if t not in before}) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


def test_closing_a_watchdog_ends_its_thread():
    before = set(_batch_threads())
    with Watchdog() as watchdog:
        assert watchdog.run(lambda: 41 + 1) == 42
    assert _wait_until_gone(before) == set()


def test_a_hung_call_is_abandoned_and_the_next_call_gets_a_new_thread():
    release = threading.Event()
    with Watchdog() as watchdog:
        try:
            watchdog.run(release.wait, limit=0.2)
        except Hang:
            pass
        else:
            raise AssertionError("the stuck call was not abandoned")
        assert watchdog.run(lambda: "next") == "next"
    release.set()


def test_checks_leave_no_watchdog_threads_behind():
    """The soak benchmark found Ray workers gaining two threads a minute: one per slice's check."""
    import tensorflow as tf

    before = set(_batch_threads())
    for seed in range(3):
        gradfuzz.check(tf.math.softplus, inputs=["float32[]"], max_examples=256, seed=seed)
    assert _wait_until_gone(before) == set()
