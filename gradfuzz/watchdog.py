"""A watchdog for batch evaluations: a target that never returns (an endless tf.while_loop, a
blocking py_function) must not take the budget with it.

Calls run in a daemon worker thread while the caller waits at most a limit. A Python thread cannot
be killed, so a call that does not return is abandoned with its thread (it ends with the process) and
`Hang` is raised; the run records a finding and goes on. Waiting on an event keeps Ctrl-C prompt in
the main thread. A target's ``sys.exit`` (SystemExit) or KeyboardInterrupt raised in the worker
thread is the target's doing, not a request to end the process: it comes back as `TargetRaised`.

`beacon` tells a supervising process (`gradfuzz.supervisor`) what is about to run, so a worker that
dies in native code leaves its last input behind; outside a supervised worker it does nothing.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from gradfuzz.values import TargetRaised

T = TypeVar("T")
_abandoned = 0  # threads left stuck in a call that hung (they end with the process)
_beacon: Callable[[dict[str, Any]], None] | None = None


def abandoned_threads() -> int:
    """How many calls this process abandoned in a hang: a supervised worker that has any is replaced."""
    return _abandoned


def set_beacon(send: Callable[[dict[str, Any]], None] | None) -> None:
    """Install (or remove, with None) the function `beacon` calls: a supervised worker's pipe."""
    global _beacon
    _beacon = send


def beacon(stage: str, **facts: Any) -> None:
    """Announce what is about to run (the stage, and when cheap its inputs) to a supervising process."""
    if _beacon is not None:
        _beacon({"stage": stage, **facts})

MIN_SECONDS = 10.0  # a batch is a hang only after this long …
SLOWEST_FACTOR = 20.0  # … and this many times the slowest batch that returned


class Hang(Exception):
    """A call did not return within the watchdog's limit."""

    def __init__(self, seconds: float):
        super().__init__(f"did not return within {seconds:.0f} s (an endless loop or a blocking call)")
        self.seconds = seconds


class Watchdog:
    """Runs calls in one worker thread, each with a time limit scaled to the slowest call that
    returned. A call that hangs is abandoned with its thread; the next call gets a new one."""

    def __init__(self, min_seconds: float = MIN_SECONDS):
        self.min_seconds = min_seconds
        self.slowest = 0.0
        self._jobs: queue.Queue | None = None

    @property
    def limit(self) -> float:
        return max(self.min_seconds, SLOWEST_FACTOR * self.slowest)

    def close(self) -> None:
        """End the worker thread once it is idle. Every check closes its watchdog: a thread left
        waiting per check would pile up over an hours-long campaign (with TensorFlow's per-thread
        state), as the soak benchmark showed. A thread stuck in a hang was abandoned already."""
        if self._jobs is not None:
            self._jobs.put(None)
            self._jobs = None

    def __enter__(self) -> Watchdog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, call: Callable[[], T], limit: float | None = None) -> T:
        """``call()``'s result or exception; `Hang` if it has not returned after ``limit`` seconds."""
        limit = self.limit if limit is None else limit
        if self._jobs is None:
            self._jobs = queue.Queue()
            threading.Thread(target=_work, args=(self._jobs,), name="gradfuzz-batch", daemon=True).start()
        outcome: dict[str, object] = {}
        done = threading.Event()
        started = time.monotonic()
        self._jobs.put((call, outcome, done))
        if not done.wait(limit):
            global _abandoned
            _abandoned += 1
            self._jobs = None  # abandon the stuck thread (it ends with the process)
            raise Hang(limit)
        self.slowest = max(self.slowest, time.monotonic() - started)
        if "error" in outcome:
            error = outcome["error"]
            if isinstance(error, (SystemExit, KeyboardInterrupt)):
                # Raised by the target in the worker thread (Ctrl-C reaches the main thread only): recorded, never
                # re-raised here, where it would end the whole process with the target's exit code.
                raise TargetRaised("evaluation", error) from error
            raise error  # type: ignore[misc]
        return outcome["value"]  # type: ignore[return-value]


def _work(jobs: queue.Queue) -> None:
    while True:
        job = jobs.get()
        if job is None:  # `Watchdog.close`
            return
        call, outcome, done = job
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error
        finally:
            done.set()
