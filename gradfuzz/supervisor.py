"""Supervised targets (DESIGN §5, issue #27): the code under test runs in a child process.

A target is untrusted code: it may call ``sys.exit`` or ``os._exit``, block inside a TensorFlow
op, segfault in native code or exhaust memory. The command line (``check``, ``replay``, ``gate``,
``report --html``, the dashboard's plots) therefore runs every job that touches user code — loading and planning targets,
a check, the replay of one record, one plot — in a *worker*: a child process started with the
'spawn' context (a fresh interpreter: nothing of the parent is forked), which imports TensorFlow
once and is reused across targets and records (libFuzzer's fork mode, AFL's fork server). This
parent never imports the user's code and decides every verdict and exit code:

* each job has a hard deadline (a check: its budget plus max(`GRACE_SECONDS`, budget); one replayed
  record: `REPLAY_SECONDS`; a plot: `PLOT_SECONDS`); past it the worker is killed and replaced;
* a worker that ends before it sent its result — any exit code, 0 included, a signal (SIGSEGV,
  SIGABRT), SIGKILL (the out-of-memory killer) — is `WorkerLost`; the check's report gets an
  `exception` finding naming how it died (a deadline: the `exception|Hang` finding the watchdog
  records in-process), written to the store with the last input the worker announced;
* the worker announces what it is about to run through `gradfuzz.watchdog.beacon` (the eager
  probe's example, the first example of a batch, a screened batch's plan and first row), so the
  parent knows the input when the process dies;
* a worker whose watchdog abandoned a stuck thread (a hang it survived) retires after sending its
  result, and every worker ends with ``os._exit``: TensorFlow threads left behind cannot abort or
  block the exit.

Results travel back as the usual report objects (pickled over the pipe between our own processes;
the store stays pickle-free). The Python API (`gradfuzz.check`, `assert_gradient`) runs in the
user's process unless ``isolate=True``. ``GRADFUZZ_IN_PROCESS=1`` makes the command line run in
process too (for a debugger); ``GRADFUZZ_MEMORY_LIMIT`` (or ``check --memory-limit``) caps a
worker's address space (RLIMIT_AS), so a target that allocates without bound fails with a recorded
finding instead of waking the machine's out-of-memory killer.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np

from gradfuzz.categories import Category
from gradfuzz.options import CheckOptions
from gradfuzz.report import CheckReport, Finding
from gradfuzz.spec import parse_spec
from gradfuzz.store import FailureStore, StoredFailure, failure_row

GRACE_SECONDS = 60.0  # a check may overrun its budget by max(this, budget) (warm-up: probing, tracing) before it is killed
START_SECONDS = 300.0  # a fresh worker imports TensorFlow and gradfuzz within this
LOAD_SECONDS = 300.0  # loading and planning the targets (imports the user's modules)
REPLAY_SECONDS = 90.0  # one record's replay (its probe alone is a hang after 30 s, `replay.REPLAY_HANG_SECONDS`)
PLOT_SECONDS = 50.0  # one plot of `report --html` (a plot illustrates a finding: a target that blocks costs at most this)
WORKER_PROBE_HANG_SECONDS = 30.0  # in a warm worker TensorFlow is up: a first eager call stuck this long (or the budget) hangs
PROGRESS_EVERY = 0.5  # seconds between progress messages from a check
ROWS_BYTES = 2**20  # a batch this small travels whole with its beacon, so a crash in it can be isolated to one example
ISOLATE_SECONDS = 60.0  # probing a crashed batch's examples one at a time, in a fresh worker
ISOLATE_EXAMPLE_SECONDS = 5.0  # each (a hang while isolating is the culprit too)
# A finding's kind is a field in older trees and follows from its category in newer ones: name it only where it is one.
USAGE_ERRORS = frozenset({"TargetError", "SpecError", "ValueError", "ConfigError"})  # the user's to fix: exit 2


WORKER_ENVIRONMENT = "GRADFUZZ_SUPERVISED_WORKER"  # set in a worker: what it runs does not start workers of its own


def in_process() -> bool:
    """``GRADFUZZ_IN_PROCESS=1``: the command line runs user code in its own process, as before supervision
    (as it does inside a worker)."""
    return os.environ.get("GRADFUZZ_IN_PROCESS", "").strip() not in ("", "0") or WORKER_ENVIRONMENT in os.environ


def parse_size(text: str | None) -> int | None:
    """``4G``, ``512M``, ``1.5G``, or a number of bytes → bytes (None for none)."""
    if text is None or not str(text).strip():
        return None
    text = str(text).strip().upper().removesuffix("B")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(text[-1:], 1)
    try:
        value = float(text[:-1] if scale > 1 else text)
    except ValueError:
        raise ValueError(f"Cannot read the memory limit {text!r}: give a size such as 4G or 512M.") from None
    if value <= 0:
        raise ValueError(f"The memory limit must be positive, not {text!r}.")
    return int(value * scale)


# -- what the parent learns when a worker is lost ------------------------------------------------------


class WorkerFailed(Exception):
    """A job raised in the worker (a target that cannot be loaded, or a bug in gradfuzz): not a finding."""

    def __init__(self, kind: str, message: str, details: str = ""):
        super().__init__(message)
        self.kind, self.message, self.details = kind, message, details

    @property
    def usage(self) -> bool:
        """The user's to fix (exit code 2): a target, spec or config that cannot be used."""
        return self.kind in USAGE_ERRORS


@dataclass
class WorkerLost(Exception):
    """The worker ended before it sent its job's result, or missed the job's deadline and was killed."""

    how: str  # "exit", "signal" or "deadline"
    exitcode: int | None
    seconds: float  # since the job was sent
    job: dict[str, Any] = field(default_factory=dict)  # the job's own announcement: target, specs, seed, run id
    last: dict[str, Any] = field(default_factory=dict)  # the last thing announced: stage, inputs, plan
    isolated: WorkerLost | None = None  # the loss again, probing the batch's examples one at a time (`isolate`)

    def __post_init__(self) -> None:
        super().__init__(self.describe())

    @property
    def signal_name(self) -> str | None:
        if self.how != "signal" or self.exitcode is None:
            return None
        try:
            return signal.Signals(-self.exitcode).name
        except ValueError:
            return f"signal {-self.exitcode}"

    @property
    def stage(self) -> str:
        return str(self.last.get("stage") or "code")

    def describe(self) -> str:
        """How the worker was lost, in words: "died with SIGSEGV (a segmentation fault …)"."""
        if self.how == "deadline":
            return f"did not return within {self.seconds:.0f} s (an endless loop or a blocking call)"
        if self.how == "signal":
            name = self.signal_name
            why = {"SIGSEGV": "a segmentation fault: an invalid memory access in native code",
                   "SIGBUS": "a bus error: an invalid memory access in native code",
                   "SIGABRT": "an abort: a failed check or an uncaught C++ exception in native code",
                   "SIGKILL": "killed: most likely the out-of-memory killer, after the process took too much memory",
                   "SIGFPE": "a floating-point exception in native code",
                   "SIGILL": "an illegal instruction in native code"}.get(name or "", "")
            return f"died with {name}" + (f" ({why})" if why else "")
        return f"ended its process with exit code {self.exitcode} (sys.exit or os._exit) before returning"

    @property
    def category_key(self) -> str:
        if self.how == "deadline":
            return "Hang"
        if self.how == "signal":
            return "MemoryKilled" if self.signal_name == "SIGKILL" else (self.signal_name or "Signal")
        return "ProcessExit"

    def finding(self, target: str) -> Finding:
        """An `exception` finding (as `gradfuzz.probes.record_exception` and `isolate_hang` write them),
        at the last input the worker announced."""
        last, stage = self.last, self.stage
        inputs = [np.asarray(x) for x in last.get("inputs") or []]
        size = int(last.get("size") or 1)
        where = ("while evaluating this input" if size <= 1 else
                 f"during a {stage} of {size} examples; the input shown is the batch's first (the culprit was not isolated)")
        isolated = self.isolated
        if isolated is not None:  # probed one at a time in a fresh worker, this example alone ended it again
            inputs = [np.asarray(x) for x in isolated.last.get("inputs") or inputs]
            where = (f"during a {stage} of {size} examples; evaluated alone (in a fresh process) this example "
                     f"{isolated.describe()} too")
        if self.how == "deadline":
            explanation = (f"The target's {stage} {self.describe()}: the supervising process ended its worker after "
                           f"{self.seconds:.0f} s, {where}. Look for a loop whose exit condition these inputs never meet "
                           "(NaN, inf, a tolerance never reached) or a blocking call.")
        else:
            explanation = (f"The target's {stage} {self.describe()}, {where}. The process running a gradient must "
                           "survive it: the failure is recorded so it replays; fix the target "
                           "(a target must raise, never end or crash the process).")
        plan = last.get("plan")
        return Finding(
            target=target, category=Category.EXCEPTION, explanation=explanation, inputs=inputs,
            cotangents=[], tangents=[], signature=f"{Category.EXCEPTION}|{self.category_key}", seed=self.job.get("seed"),
            evidence={"hang_seconds": float(self.seconds)} if self.how == "deadline" else
            {"exit_code": float(self.exitcode if self.exitcode is not None else -1), "batch_size": float(size)},
            reference_name="watchdog" if self.how == "deadline" else "supervisor",
            plan=plan if isinstance(plan, str) else "",
        )


# -- the parent side -----------------------------------------------------------------------------------


class Supervisor:
    """One warm worker process, started on first use, replaced when it dies or misses a deadline."""

    def __init__(self, *, memory_limit: int | None = None):
        self.memory_limit = memory_limit if memory_limit is not None else parse_size(os.environ.get("GRADFUZZ_MEMORY_LIMIT"))
        self._process: Any = None
        self._connection: Any = None
        self._stop: Any = None  # an event the worker watches: end the running job early
        self._stopping = False
        self._job: _Job | None = None
        self._ready = False
        self.workers_started = 0
        self.workers_lost = 0

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start a worker now (its TensorFlow import overlaps whatever the parent does next)."""
        if self._process is not None:
            return
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe()
        self._stop = context.Event()
        if self._stopping:
            self._stop.set()
        process = context.Process(target=_worker_main, args=(child_end, self.memory_limit, os.getpid(), self._stop),
                                  name="gradfuzz-worker", daemon=True)
        # The worker needs nothing of this process's main script: spawn would run it again there (a script read
        # from stdin cannot be; one that checks its targets at import would do it again), so it is hidden meanwhile.
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = ModuleType("__main__")
        try:
            process.start()
        finally:
            if main is not None:
                sys.modules["__main__"] = main
        child_end.close()
        self._process, self._connection, self._ready, self._job = process, parent_end, False, None
        self.workers_started += 1

    def close(self) -> None:
        """Ask the worker to end; kill it if it does not."""
        process, connection = self._process, self._connection
        self._process = self._connection = self._job = None
        if process is None:
            return
        try:
            connection.send(None)
        except (OSError, ValueError):
            pass
        process.join(5.0)
        if process.is_alive():
            process.kill()
            process.join(5.0)
        connection.close()

    def _kill(self) -> int | None:
        process, connection = self._process, self._connection
        self._process = self._connection = None
        if process is None:
            return None
        if process.is_alive():
            process.kill()
        process.join(10.0)
        connection.close()
        return process.exitcode

    def _await_ready(self) -> None:
        if self._ready:
            return
        self._job = _Job(time.monotonic() + START_SECONDS, time.monotonic(), None)
        try:
            while not self.poll(START_SECONDS)[0]:
                pass
        except WorkerLost as lost:
            raise WorkerFailed("WorkerStart", f"the gradfuzz worker process could not start: it {lost.describe()}") from None
        self._ready = True

    def request_stop(self) -> None:
        """Ask the running job (and any later one) to end early, keeping what it found (a campaign's clean stop)."""
        self._stopping = True
        if self._stop is not None:
            self._stop.set()

    def call(self, kind: str, seconds: float, *, on_progress: Callable[[dict], None] | None = None, **arguments: Any) -> Any:
        """Run job ``kind`` in the worker and return its result, within ``seconds`` of sending it.

        Raises `WorkerLost` (the worker ended, or was killed at the deadline; a new one starts on the
        next call) or `WorkerFailed` (the job raised)."""
        self.send(kind, seconds, on_progress=on_progress, **arguments)
        while True:
            done, value = self.poll(seconds)
            if done:
                return value

    def send(self, kind: str, seconds: float, *, on_progress: Callable[[dict], None] | None = None, **arguments: Any) -> None:
        """Start job ``kind`` (one at a time); `poll` for its result."""
        self.start()
        self._await_ready()
        self._job = _Job(time.monotonic() + seconds, time.monotonic(), on_progress)
        self._connection.send((kind, arguments))

    @property
    def busy(self) -> bool:
        return self._job is not None

    def poll(self, timeout: float) -> tuple[bool, Any]:
        """Wait up to ``timeout`` for the job's result: (True, result), or (False, None) if it is still running.
        Raises `WorkerLost` or `WorkerFailed` as `call` does (the job is then over)."""
        job, connection, process = self._job, self._connection, self._process
        until = min(time.monotonic() + timeout, job.deadline)
        while True:
            now = time.monotonic()
            if now >= job.deadline:
                self._job = None
                self._kill()
                self.workers_lost += 1
                raise WorkerLost("deadline", None, now - job.started, job.facts, job.last)
            try:
                ready = connection.poll(max(0.0, min(until - now, 0.25)))
                message = connection.recv() if ready else None
            except (EOFError, OSError):
                message, ready = None, True  # the worker's end closed: it is gone
            if message is None:
                if ready or not process.is_alive():
                    self._job = None
                    exitcode = self._kill()
                    self.workers_lost += 1
                    how = "signal" if exitcode is not None and exitcode < 0 else "exit"
                    raise WorkerLost(how, exitcode, time.monotonic() - job.started, job.facts, job.last)
                if time.monotonic() >= until:
                    return False, None
                continue
            tag, payload = message
            if tag == "job":
                job.facts = dict(payload)
            elif tag == "beacon":
                if "inputs" not in payload and payload.get("stage") in ("custom gradient", "gradient"):
                    payload = {**job.last, **payload}  # the probe's second half: same input
                job.last = payload
            elif tag == "progress":
                if job.on_progress is not None:
                    job.on_progress(payload)
            elif tag in ("ready", "result"):
                self._job = None
                value, retiring = payload if tag == "result" else (payload, False)
                if retiring:  # it abandoned a stuck thread: let it end, start afresh next time
                    self.close()
                return True, value
            elif tag == "raised":
                self._job = None
                raise WorkerFailed(*payload)


@dataclass
class _Job:
    deadline: float
    started: float
    on_progress: Callable[[dict], None] | None
    facts: dict[str, Any] = field(default_factory=dict)  # the job's own announcement: target, specs, seed, run id
    last: dict[str, Any] = field(default_factory=dict)  # the last beacon


# -- the jobs, as the command line runs them -------------------------------------------------------------


class CheckRequestError(Exception):
    """The targets or specs of a check cannot be used (the message says what to do): exit code 2."""


def check_in_worker(supervisor: Supervisor, names: Sequence[str], *, inputs: Sequence[str] = (), reference: str | None = None,
                    precision_digits: float | None = None, budget: float | None = None, max_examples: int | None = None,
                    seed: int | None = None, store: str | Path | None = None, options: CheckOptions | None = None,
                    progress: Callable[[str], Any] | None = None, atol: float = 0.0, rtol: float = 0.0,
                    on_report: Callable[[CheckReport], None] | None = None) -> tuple[list[CheckReport], int]:
    """`gradfuzz check` in the worker: load and plan the targets there, then check each planned target
    as its own job. A worker lost during a check gives that check an `exception` finding (written to
    ``store``) and a fresh worker for the next. Returns the reports and how many checks were planned.
    ``progress(name)`` is a context manager yielding an update callback (the CLI's progress line)."""
    request = {"names": list(names), "inputs": list(inputs), "reference": reference, "precision_digits": precision_digits,
               "budget": budget, "max_examples": max_examples, "modes": list(options.modes) if options is not None else [],
               "atol": float(atol), "rtol": float(rtol)}
    try:
        planned = supervisor.call("plan", LOAD_SECONDS, request=request)
    except WorkerFailed as failed:
        raise CheckRequestError(failed.message if failed.usage else f"{failed.message}\n{failed.details}") from None
    except WorkerLost as lost:
        raise CheckRequestError(f"Loading {', '.join(names)} {lost.describe()}: the target's module must import "
                                "without ending or crashing the process.") from None
    reports = []
    for index, plan in enumerate(planned):
        run_id = uuid.uuid4().hex
        run_seed = seed if seed is not None else random.randrange(2**31)
        seconds = plan["seconds"] + max(GRACE_SECONDS, plan["seconds"])
        with (progress(plan["target"]) if progress is not None else _nothing()) as update:
            on_progress = None if update is None else (lambda facts, update=update: update(_progress_view(facts)))
            try:
                report = supervisor.call("check", seconds, on_progress=on_progress, request=request, index=index,
                                         store=None if store is None else str(store), seed=run_seed, run_id=run_id,
                                         options=options or CheckOptions())
            except WorkerLost as lost:
                report = lost_check_report(isolate(supervisor, lost), plan, store, run_id)
            except WorkerFailed as failed:
                if failed.kind == "StoreError":  # the store failed (a full disk): exit 2 with its message, as in process
                    from gradfuzz.store import StoreError

                    raise StoreError(failed.message) from None
                report = CheckReport(target=plan["target"], specs=tuple(parse_spec(s) for s in plan["specs"]),
                                     error=f"{failed.message} (in gradfuzz's worker:\n{failed.details})")
        reports.append(report)
        if on_report is not None:
            on_report(report)
    return reports, len(planned)


def isolate(supervisor: Supervisor, lost: WorkerLost) -> WorkerLost:
    """A worker lost during a batch whose rows it announced: probe them one at a time in a fresh worker
    (each under a short watchdog); the row that ends that worker too (or hangs there) is the culprit,
    set as ``lost.isolated``. A loss at the deadline is not retried (it would cost the deadline again)."""
    rows, facts = lost.last.get("rows"), lost.job or {}
    if lost.how == "deadline" or not rows or len(rows[0]) <= 1 or not facts.get("target") or not facts.get("specs"):
        return lost
    try:
        found = supervisor.call("isolate", ISOLATE_SECONDS, target=facts["target"], reference=facts.get("reference_target", ""),
                                specs=facts["specs"], rows=rows)
    except WorkerLost as again:
        if again.how != "deadline" and again.last.get("inputs") is not None:  # the row being probed (its own beacons)
            lost.isolated = again
    except WorkerFailed:
        pass
    else:
        if found is not None:  # it hung alone (the watchdog of a probe): the culprit, though the batch crashed
            row = found[0]
            lost.isolated = WorkerLost("deadline", None, ISOLATE_EXAMPLE_SECONDS, facts,
                                       {"stage": "isolating", "inputs": [np.asarray(a[row]) for a in rows]})
    return lost


def lost_check_report(lost: WorkerLost, plan: dict, store: str | Path | None, run_id: str) -> CheckReport:
    """The report of a check whose worker was lost: what it stored before (read back from the store,
    by run id) and the `exception` finding for the loss, written to the store here."""
    job = lost.job or {}
    target = job.get("target") or plan["target"]
    specs = tuple(parse_spec(s) for s in plan["specs"])
    report = CheckReport(target=target, specs=specs, seconds=lost.seconds)
    finding = lost.finding(target)
    earlier: list[Finding] = []
    if store is not None:
        read = FailureStore(store).read()
        latest: dict[str, StoredFailure] = {}
        for record in read.failures:
            if record.run_id == run_id:
                latest[record.signature] = record  # a group written again in its final form: the later row
        earlier = [_finding_of(record) for record in latest.values()]
    report.failures = [*earlier, finding]
    report.examples = max(1, int(job.get("examples", 0)))
    report.records = [failure_row(finding, target=target, fingerprint=job.get("fingerprint", ""), specs=list(plan["specs"]),
                                  run_id=run_id, reference_target=job.get("reference_target", ""))]
    if store is not None:
        with FailureStore(store) as failure_store:
            failure_store.append_failures(report.records)
        report.stored = len(report.records) + len(earlier)
    return report


def _finding_of(record: StoredFailure) -> Finding:
    return Finding(target=record.target, category=record.category, explanation=record.explanation,
                   inputs=list(record.inputs), cotangents=list(record.cotangents), tangents=list(record.tangents),
                   custom=list(record.custom), reference=list(record.reference), reference_name=record.reference_name,
                   argument=record.argument, element=record.element, custom_value=record.custom_value,
                   reference_value=record.reference_value, abs_error=record.abs_error, rel_error=record.rel_error,
                   ulp_error=record.ulp_error, count=record.count, signature=record.signature, plan=record.plan,
                   seed=record.seed, evidence=dict(record.evidence), region=record.region, record_id=record.id,
                   regions_seen=list(record.regions_seen))


def _progress_view(facts: dict) -> SimpleNamespace:
    """What the CLI's progress line reads from a report, from a progress message."""
    return SimpleNamespace(examples=facts.get("examples", 0), examples_per_second=facts.get("examples_per_second", 0.0),
                           failures=[None] * int(facts.get("failures", 0)))


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


class SupervisedReplayer:
    """`gradfuzz.replay.Replayer`'s face (``replay(failure, repeat)``) for `replay_store`: each record
    replays in the worker under `REPLAY_SECONDS` per run; a lost worker reproduces it as `exception`."""

    def __init__(self, supervisor: Supervisor, *, trust_store: bool = False, trusted_names: frozenset[str] = frozenset()):
        self.supervisor, self.trust_store, self.trusted_names = supervisor, trust_store, frozenset(trusted_names)

    def replay(self, failure: StoredFailure, repeat: int = 1):
        from gradfuzz.replay import ReplayResult, ReplayStatus

        try:
            return self.supervisor.call("replay", REPLAY_SECONDS * max(1, repeat), failure=failure, repeat=repeat,
                                        trust_store=self.trust_store, trusted_names=self.trusted_names)
        except WorkerLost as lost:
            how = f"the target's {lost.stage} {lost.describe()} (replayed in a supervised process, which was replaced)"
            detail = how if failure.category == Category.EXCEPTION else f"now fails as {Category.EXCEPTION}. {how}"
            return ReplayResult(failure, ReplayStatus.REPRODUCED, detail, [Category.EXCEPTION], reproduced=1, runs=1)
        except WorkerFailed as failed:
            if failed.usage:
                return ReplayResult(failure, ReplayStatus.TARGET_MISSING, failed.message, [])
            raise


def picture_in_worker(supervisor: Supervisor, trust_store: bool) -> Callable[[Any], str]:
    """`gradfuzz.html_report.render`'s ``picture``: each plot drawn in the worker; a lost worker is a note."""
    import html

    def picture(group: Any) -> str:
        from gradfuzz.dashboard import no_plot

        why_not = no_plot(group.representative)
        if why_not is not None:  # nothing to draw: the target is not run at all
            return f"<p class='note'>No plot: {html.escape(why_not)}</p>"
        try:
            return supervisor.call("picture", PLOT_SECONDS, group=group, trust_store=trust_store)
        except WorkerLost as lost:
            return (f"<p class='note'>No plot: the target's {html.escape(lost.stage)} {html.escape(lost.describe())} "
                    "while it was drawn (in a supervised process). The numbers above are from the store.</p>")
        except WorkerFailed as failed:
            raise RuntimeError(failed.message) from None

    return picture


def check_isolated(fn: Any, *, inputs: Sequence[Any] | None = None, budget: str | float | None = None,
                   max_examples: int | None = None, seed: int | None = None, store: str | Path | None = None,
                   reference: Any = None, precision_digits: float | None = None, options: CheckOptions | None = None,
                   memory_limit: int | None = None, atol: float = 0.0, rtol: float = 0.0) -> CheckReport:
    """`gradfuzz.check(..., isolate=True)`: the check in a supervised worker; the report as in process."""
    from gradfuzz.durations import parse_duration
    from gradfuzz.target import TargetError

    if WORKER_ENVIRONMENT in os.environ:  # a target module that checks itself when imported would start workers forever
        raise TargetError("gradfuzz.check(..., isolate=True) was called while a supervised worker imported a target's "
                          "module: guard the call with `if __name__ == '__main__':`.")
    names = [_importable_name(x) if x is not None else None for x in (fn, reference)]
    if store is not None:
        with FailureStore(store) as failure_store:
            failure_store.ensure_writable()
    with Supervisor(memory_limit=memory_limit) as supervisor:
        try:
            reports, _ = check_in_worker(supervisor, [names[0]], inputs=[str(s) for s in inputs or ()], reference=names[1],
                                         precision_digits=precision_digits, budget=parse_duration(budget),
                                         max_examples=max_examples, seed=seed, store=store, options=options, atol=atol,
                                         rtol=rtol)
        except CheckRequestError as error:
            raise TargetError(str(error)) from None
    return reports[0] if len(reports) == 1 else CheckReport.merge(reports)


def _importable_name(fn: Any) -> str:
    """The name a worker loads ``fn`` by: a target name as given, or a module-level function's."""
    if isinstance(fn, str):
        return fn
    from gradfuzz.target import TargetError, describe_callable

    name = describe_callable(fn).name
    if name.startswith("<"):
        raise TargetError(f"isolate=True runs the check in another process, which loads the target by name; {name} is "
                          "not importable. Define it at the top level of a module (or pass its name, 'file.py:attr').")
    return name


def check_target_in_worker(supervisor: Supervisor, name: str, specs: Sequence[str] | None, seconds: float, *,
                           seed: int | None, store: str | Path | None,
                           options: CheckOptions | None = None) -> tuple[list[CheckReport], str | None]:
    """One ``[[targets]]`` block of a gate: its reports, or the reason it cannot be loaded."""
    try:
        reports, _ = check_in_worker(supervisor, [name], inputs=list(specs or ()), budget=seconds, seed=seed, store=store,
                                     options=options)
    except CheckRequestError as error:
        return [], str(error)
    return reports, None


class SupervisedLocalExecutor:
    """`gradfuzz.executors.LocalExecutor`'s face for a local campaign, its slices run one at a time in a
    supervised worker process (`gradfuzz.executors.Worker` there, kept warm across slices). A worker that
    dies running a slice gives the slice an `exception` finding (its records) and is replaced; one past
    `executors.overrun_limit` is killed and the slice reported hung, as the local executor reports it."""

    name = "local"

    def __init__(self, targets: list, overrun_grace: float | None = None, *, memory_limit: int | None = None):
        from gradfuzz.executors import OVERRUN_GRACE

        self.targets = targets
        self.overrun_grace = OVERRUN_GRACE if overrun_grace is None else overrun_grace
        self.supervisor = Supervisor(memory_limit=memory_limit)
        self.supervisor.start()
        self.supervisor._await_ready()  # TensorFlow imported before the campaign's clock starts
        self._queue: list = []
        self._running: Any = None  # the slice in flight
        self.replaced = 0
        self.worker_info = [{"worker": self.worker, "pid": self.supervisor._process.pid, "host": socket.gethostname(),
                             "device": "", "gpu_ids": [], "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}]

    @property
    def worker(self) -> str:
        process = self.supervisor._process
        return f"{socket.gethostname()}:{process.pid if process is not None else '-'} (supervised)"

    @property
    def workers_alive(self) -> int:
        return 1

    def capacity(self) -> int:
        return 1 - len(self._queue) - (self._running is not None)

    def submit(self, work: Any) -> None:
        self._queue.append(work)

    def in_flight(self) -> list:
        return list(self._queue) + ([self._running] if self._running is not None else [])

    def results(self, timeout: float) -> list:
        from gradfuzz.executors import SliceResult, overrun_limit

        if self._running is None and self._queue:
            work = self._queue.pop(0)
            self.supervisor.send("slice", overrun_limit(work, self.overrun_grace), work=work, ref=self.targets[work.target])
            self._running = work
        if self._running is None:
            time.sleep(min(timeout, 0.05))
            return []
        work = self._running
        try:
            done, result = self.supervisor.poll(timeout)
        except WorkerLost as lost:
            self._running = None
            self.replaced += 1
            if lost.how == "deadline":
                return [SliceResult(work, self.worker, hung=True, seconds=lost.seconds, crashed=(
                    f"hang: the slice ran {lost.seconds:.0f} s of its {work.seconds:g} s budget; its worker process was "
                    f"killed (the target's {lost.stage}) and the next slice runs on a fresh one"))]
            ref = self.targets[work.target]
            facts = lost.job or {}
            row = failure_row(isolate(self.supervisor, lost).finding(ref.name), target=ref.name, fingerprint=facts.get("fingerprint", ""),
                              specs=facts.get("specs", list(ref.inputs)), run_id=work.run_id)
            return [SliceResult(work, self.worker, examples=1, seconds=lost.seconds, records=[row])]
        except WorkerFailed as failed:
            self._running = None
            return [SliceResult(work, self.worker, error=f"checking {self.targets[work.target].name} failed: {failed.message}")]
        if not done:
            return []
        self._running = None
        return [result]

    def stop(self) -> None:
        self.supervisor.request_stop()

    def shutdown(self) -> None:
        self._queue.clear()
        self.supervisor.close()


# -- the worker side -------------------------------------------------------------------------------------


def _worker_main(connection: Any, memory_limit: int | None, parent: int, stop: Any) -> None:  # pragma: no cover - the child
    """The worker: import TensorFlow once, then run jobs until told to stop; always end with os._exit."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it ends the worker)
        os.environ[WORKER_ENVIRONMENT] = str(parent)
        _end_with(parent)
        try:  # the parent's stdout is its own (a JSON document): the target's prints and printf go to stderr
            os.dup2(2, 1)
        except OSError:
            pass
        if memory_limit:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        sending = threading.Lock()

        def send(message: tuple) -> None:
            with sending:
                connection.send(message)

        try:
            import gradfuzz.checker as checker
            from gradfuzz.watchdog import abandoned_threads, set_beacon
        except BaseException as error:  # e.g. TensorFlow missing: the message names the extras
            send(("raised", (type(error).__name__, str(error), traceback.format_exc())))
            code = 1
            return
        checker.PROBE_HANG_SECONDS = WORKER_PROBE_HANG_SECONDS
        set_beacon(lambda facts: send(("beacon", _portable(facts))))
        send(("ready", os.getpid()))
        state: dict[str, Any] = {"stop": stop}
        while True:
            try:
                job = connection.recv()
            except (EOFError, OSError):
                return
            if job is None:
                return
            kind, arguments = job
            try:
                value = _JOBS[kind](state, send, **arguments)
            except SystemExit as exit_:  # the target's, escaping every net: end as it asked, unreported (the parent records it)
                code = exit_.code if isinstance(exit_.code, int) else 1
                return
            except BaseException as error:
                send(("raised", (type(error).__name__, str(error), traceback.format_exc())))
                continue
            retiring = abandoned_threads() > 0
            send(("result", (value, retiring)))
            if retiring:
                return
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)  # abandoned TensorFlow threads cannot abort (or block) the exit


def _end_with(parent: int) -> None:  # pragma: no cover - runs in the child
    """Die with the parent: a `gradfuzz check` killed with SIGKILL must not leave its worker fuzzing on."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except (AttributeError, OSError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="gradfuzz-parent-watch", daemon=True).start()


def _portable(facts: dict) -> dict:
    """A beacon's facts as they travel: arrays copied, a plan as its JSON, a lazy example computed."""
    import dataclasses
    import json

    facts = dict(facts)
    example = facts.pop("example", None)
    if callable(example):
        try:
            inputs, cotangents = example()
            facts["inputs"] = [np.asarray(x[0]) for x in inputs]
            facts["cotangents"] = [np.asarray(v[0]) for v in cotangents]
        except Exception:
            pass
    batch = facts.pop("batch", None)
    if batch is not None:  # a host batch: its first example, and every row when small enough to isolate the culprit later
        facts["inputs"] = [np.asarray(a[0]) for a in batch.inputs]
        facts["cotangents"] = [np.asarray(v[0]) for v in batch.cotangents]
        if sum(np.asarray(a).nbytes for a in batch.inputs) <= ROWS_BYTES:
            facts["rows"] = [np.array(a) for a in batch.inputs]
    plan = facts.get("plan")
    if plan is not None and dataclasses.is_dataclass(plan):
        facts["plan"] = json.dumps(dataclasses.asdict(plan))
    return facts


def _planned(state: dict, request: dict) -> list:
    from gradfuzz.planning import CheckRequest, plan_checks
    from gradfuzz.target import load_targets, with_reference

    key = repr(sorted(request.items()))
    if key not in state.setdefault("planned", {}):
        from gradfuzz.diagnosis import MODES

        unknown = [m for m in request.get("modes", ()) if m not in MODES]
        if unknown:
            raise ValueError(f"Unknown execution mode(s) {', '.join(unknown)}: choose from {', '.join(MODES)}, "
                             "e.g. --modes eager,function,xla.")
        loaded = [with_reference(t, request["reference"]) for name in request["names"] for t in load_targets(name)]
        for target in loaded:
            if request["precision_digits"] is not None:
                target.precision_digits = request["precision_digits"]
            target.atol, target.rtol = request.get("atol", 0.0), request.get("rtol", 0.0)
        state["planned"][key] = plan_checks(CheckRequest((t,), tuple(request["inputs"]) or None, request["budget"],
                                                         request["max_examples"]) for t in loaded)
    return state["planned"][key]


def _job_plan(state: dict, send: Callable, *, request: dict) -> list[dict]:
    return [{"target": p.target.name, "specs": [str(s) for s in p.specs], "seconds": p.seconds, "max_examples": p.max_examples}
            for p in _planned(state, request)]


def _job_check(state: dict, send: Callable, *, request: dict, index: int, store: str | None, seed: int, run_id: str,
               options: CheckOptions) -> CheckReport:
    from gradfuzz.checker import check_target

    plan = _planned(state, request)[index]
    target = plan.target
    send(("job", {"target": target.name, "fingerprint": target.fingerprint, "specs": [str(s) for s in plan.specs],
                  "seed": seed, "run_id": run_id, "reference_target": target.reference_target}))
    last = [0.0]

    def progress(report: CheckReport) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY:
            last[0] = now
            send(("progress", {"examples": report.examples, "examples_per_second": report.examples_per_second,
                               "failures": len(report.failures)}))

    failure_store = FailureStore(store) if store is not None else None
    try:
        return check_target(target, plan.specs, options.for_check(plan.seconds, plan.max_examples, seed), store=failure_store,
                            run_id=run_id, on_progress=progress)
    finally:
        if failure_store is not None:
            failure_store.close()


def _replayer(state: dict, trust_store: bool, trusted_names: frozenset[str]):
    from gradfuzz.replay import Replayer

    key = ("replayer", trust_store, trusted_names)
    if key not in state:
        state[key] = Replayer(trust_store=trust_store, trusted_names=trusted_names)
    return state[key]


def _job_replay(state: dict, send: Callable, *, failure: StoredFailure, repeat: int, trust_store: bool,
                trusted_names: frozenset[str]):
    send(("job", {"target": failure.target, "record": failure.id}))
    return _replayer(state, trust_store, trusted_names).replay(failure, repeat)


def _job_picture(state: dict, send: Callable, *, group: Any, trust_store: bool) -> str:
    from gradfuzz.html_report import _picture

    send(("job", {"target": group.target, "record": group.representative.id}))
    return _picture(_replayer(state, trust_store, frozenset()), group)


def _job_plot(state: dict, send: Callable, *, group: Any, trust_store: bool) -> bytes | str:
    """The dashboard's ``/plot/<n>.png``: PNG bytes, or why there is none."""
    from gradfuzz.dashboard import draw

    send(("job", {"target": group.target, "record": group.representative.id}))
    return draw(_replayer(state, trust_store, frozenset()), group)


def _job_slice(state: dict, send: Callable, *, work: Any, ref: Any) -> Any:
    if "worker" not in state:
        from gradfuzz.executors import Worker

        worker = state["worker"] = Worker()
        stop = state["stop"]
        threading.Thread(target=lambda: (stop.wait(), worker.stop()), name="gradfuzz-stop", daemon=True).start()
    worker = state["worker"]
    try:
        target, specs = worker._load(ref)
        send(("job", {"target": target.name, "fingerprint": target.fingerprint, "specs": [str(s) for s in specs],
                      "seed": work.seed, "run_id": work.run_id}))
    except Exception:  # `run` reports it
        pass
    return worker.run(work, ref)


def _job_isolate(state: dict, send: Callable, *, target: str, reference: str, specs: list[str], rows: list) -> Any:
    """Probe each row alone (a fresh worker): returns (row, "hang") for one that hangs; a crash ends this process,
    and the last beacon ("isolating", its inputs) names the row."""
    from gradfuzz.engine import probe
    from gradfuzz.spec import parse_specs
    from gradfuzz.target import load_target, with_reference
    from gradfuzz.values import TargetRaised
    from gradfuzz.watchdog import Hang, Watchdog, beacon

    loaded = with_reference(load_target(target), reference or None)
    arg_specs = parse_specs(specs)
    with Watchdog() as watchdog:
        for row in range(len(rows[0])):
            example = [np.asarray(a[row]) for a in rows]
            beacon("isolating", row=row, inputs=example)
            try:
                watchdog.run(lambda example=example: probe(loaded, arg_specs, example), ISOLATE_EXAMPLE_SECONDS)
            except Hang:
                return row, "hang"
            except TargetRaised:
                continue  # raising is recorded when such an input is drawn on its own
    return None


_JOBS: dict[str, Callable[..., Any]] = {"plan": _job_plan, "check": _job_check, "replay": _job_replay, "picture": _job_picture,
                                        "plot": _job_plot, "slice": _job_slice, "isolate": _job_isolate}
