"""Where campaign slices run: in this process, or on Ray actors.

A *slice* is one unit of campaign work: check one target for a few seconds
from one seed (`gradfuzz.checker.check_target`). A `Worker` runs slices and
keeps each target's compiled functions warm between them. Executors hand
slices to workers and hand back `SliceResult`s; the campaign driver
(`gradfuzz.campaign`) decides what to run and records what comes back.

- `LocalExecutor`: one worker in this process (the default; no Ray needed).
- `RayExecutor`: one Ray actor per worker, on a local Ray instance or a
  cluster. At most one slice is in flight per actor (`ray.wait` on the
  refs), so a dead actor loses exactly one known slice, which the driver
  re-runs or logs. Dead actors are replaced.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

MAX_START_FAILURES = 3  # a worker slot whose actor dies this often while starting is given up
OVERRUN_GRACE = 60.0  # seconds past its budget a slice may run before its worker is killed as hung


def overrun_limit(work: Slice, grace: float = OVERRUN_GRACE) -> float:
    """Seconds after which a slice counts as hung: its budget, plus the grace or the budget again
    (a slice's own watchdog ends a stuck batch 10 s past budget; this catches the rest)."""
    return work.seconds + max(grace, work.seconds)

# -- the unit of work and its result -----------------------------------------------------


@dataclass(frozen=True)
class TargetRef:
    """How a worker finds a target: the config's reference string and the target's name."""

    reference: str  # "examples/seed_ops.py:my_op" (file paths made absolute by the driver) or "pkg.mod:attr"
    name: str  # the loaded target's name (a module reference may load several)
    inputs: tuple[str, ...]  # spec strings

    @property
    def reproduce(self) -> str:
        """The ``gradfuzz check`` arguments that check this target alone, in one process."""
        return " ".join([f"'{self.reference}'", *(f"--input '{spec}'" for spec in self.inputs)])


@dataclass(frozen=True)
class Slice:
    campaign: str  # campaign id
    target: int  # index into the campaign's targets
    number: int  # this target's slice counter
    seed: int
    seconds: float
    attempt: int = 1  # > 1 when re-run after the worker running it died

    @property
    def run_id(self) -> str:
        """The store's run id for this slice's records: ``<campaign>/<target>/<slice>``."""
        return f"{self.campaign}/{self.target}/{self.number}"


@dataclass
class SliceResult:
    slice: Slice
    worker: str  # which worker ran it (host:pid)
    examples: int = 0
    skipped: int = 0
    seconds: float = 0.0
    warmup_seconds: float = 0.0
    records: list[dict[str, Any]] = field(default_factory=list)  # store rows of the failures found
    notes: list[tuple[str, str, str]] = field(default_factory=list)  # (category, signature, region) of observations
    engine: dict[str, Any] = field(default_factory=dict)  # batch size, device, traces, fallbacks (map_fn, XLA)
    error: str | None = None  # the target could not be loaded or checked on the worker
    crashed: str | None = None  # the worker process died while running it (set by the executor)
    hung: bool = False  # it overran its budget by more than the grace: the executor killed its worker


# -- the worker ----------------------------------------------------------------------------


class Worker:
    """Runs slices; one per process. Holds loaded targets and compiled functions warm.

    ``threads`` limits TensorFlow's thread pools (set before TensorFlow runs any op),
    so that N workers on N cores do not oversubscribe them.
    """

    def __init__(self, threads: int | None = None, cwd: str | None = None):
        # Relative target paths ("examples/ops.py:f") mean the driver's directory; a cluster
        # node without it keeps Ray's (e.g. an uploaded --working-dir).
        if cwd and os.path.isdir(cwd):
            os.chdir(cwd)
        from gradfuzz._tf import configure_devices, tf
        from gradfuzz.warm import WarmCache

        if threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            except RuntimeError:  # TensorFlow already initialised in this process (the local executor)
                pass
        self.device = configure_devices()
        self._warm = WarmCache()
        self._targets: dict[TargetRef, tuple[Any, tuple]] = {}
        self._stop = threading.Event()
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def info(self) -> dict[str, Any]:
        """Where this worker runs: host, pid, device, and the GPUs Ray assigned to it."""
        gpus: list = []
        try:
            import ray

            if ray.is_initialized():
                gpus = [str(g) for g in ray.get_gpu_ids()]
        except Exception:  # not inside Ray
            pass
        return {"worker": self.name, "pid": os.getpid(), "host": socket.gethostname(), "device": self.device,
                "gpu_ids": gpus, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}

    def stop(self) -> None:
        """Ask the running slice to finish after its current batch (it keeps what it found)."""
        self._stop.set()

    def run(self, work: Slice, ref: TargetRef) -> SliceResult:
        from gradfuzz.checker import check_target
        from gradfuzz.options import CheckOptions

        started = time.monotonic()
        try:
            target, specs = self._load(ref)
        except Exception as error:
            return SliceResult(work, self.name, error=f"could not load {ref.reference} ({ref.name}) on {self.name}: {error}",
                               seconds=time.monotonic() - started)
        try:
            report = check_target(target, specs, CheckOptions(budget=work.seconds, seed=work.seed, slice_of_many=True),
                                  warm=self._warm, should_stop=self._stop.is_set, run_id=work.run_id)
        except Exception as error:  # a gradfuzz bug or an unexpected target failure: report, do not die
            return SliceResult(work, self.name, error=f"checking {ref.name} failed on {self.name}: {type(error).__name__}: {error}",
                               seconds=time.monotonic() - started)
        return SliceResult(
            work, self.name, examples=report.examples, skipped=report.skipped, seconds=report.seconds,
            warmup_seconds=report.warmup_seconds, records=report.records, error=report.error,
            notes=[(n.category, n.signature, n.region) for n in report.notes],
            engine={k: report.engine.get(k) for k in ("batch_size", "device", "traces", "fallbacks")},
        )

    def _load(self, ref: TargetRef):
        if ref not in self._targets:
            from gradfuzz.target import TargetError, load_targets, resolve_specs

            matches = [t for t in load_targets(ref.reference) if t.name == ref.name]
            if not matches:
                raise TargetError(f"{ref.reference} has no target named {ref.name!r} here")
            specs = resolve_specs(matches[0], ref.inputs or None)
            self._targets[ref] = (matches[0], specs)
        return self._targets[ref]


# -- executors -------------------------------------------------------------------------------


class LocalExecutor:
    """Runs slices one at a time in this process, each in a worker thread the driver waits on.

    A slice that overruns `overrun_limit` (a call stuck outside the checker's watchdog) is
    abandoned — a Python thread cannot be killed; it ends with the process — reported as hung, and
    the next slice gets a fresh `Worker`, so the campaign never waits past its budget and a grace.
    """

    name = "local"

    def __init__(self, targets: list[TargetRef], overrun_grace: float = OVERRUN_GRACE):
        self.targets = targets
        self.overrun_grace = overrun_grace
        self._worker = Worker()
        self._queue: list[Slice] = []
        self._running: tuple[Slice, float, threading.Thread, list] | None = None
        self.workers_alive = 1
        self.replaced = 0
        self.abandoned: list[threading.Thread] = []  # threads of hung slices (they end with the process)
        self.worker_info = [self._worker.info()]

    def capacity(self) -> int:
        return 1 - len(self._queue) - (self._running is not None)

    def submit(self, work: Slice) -> None:
        self._queue.append(work)

    def in_flight(self) -> list[Slice]:
        return list(self._queue) + ([self._running[0]] if self._running else [])

    def results(self, timeout: float) -> list[SliceResult]:
        if self._running is None and self._queue:
            work, box = self._queue.pop(0), []
            worker = self._worker
            thread = threading.Thread(target=lambda: box.append(worker.run(work, self.targets[work.target])),
                                      name="gradfuzz-slice", daemon=True)
            thread.start()
            self._running = (work, time.monotonic(), thread, box)
        if self._running is None:
            time.sleep(min(timeout, 0.05))
            return []
        work, since, thread, box = self._running
        thread.join(timeout)
        if box:
            self._running = None
            return [box[0]]
        elapsed, limit = time.monotonic() - since, overrun_limit(work, self.overrun_grace)
        if elapsed <= limit:
            return []
        self._running = None
        self.abandoned.append(thread)
        self._worker.stop()  # if it ever comes back, it stops after its batch
        self._worker = Worker()
        self.replaced += 1
        return [SliceResult(work, self._worker.name, hung=True, seconds=elapsed, crashed=(
            f"hang: the slice ran {elapsed:.0f} s of its {work.seconds:g} s budget (limit {limit:.0f} s); it was abandoned "
            "(its thread ends with the process) and the next slice runs on a fresh worker"))]

    def stop(self) -> None:
        self._worker.stop()

    def shutdown(self) -> None:
        self._queue.clear()


class RayExecutor:
    """One Ray actor per worker; a local Ray instance unless ``address`` names a cluster.

    Each actor asks for ``cpus_per_worker`` CPUs and, when the cluster has GPUs,
    one GPU (``num_gpus``); Ray sets CUDA_VISIBLE_DEVICES and the worker turns on
    TensorFlow memory growth before its first op.
    """

    name = "ray"

    def __init__(self, targets: list[TargetRef], workers: int | None = None, address: str | None = None,
                 working_dir: str | None = None, gpus_per_worker: float | None = None, cpus_per_worker: float = 1.0,
                 ray_init: dict[str, Any] | None = None, overrun_grace: float = OVERRUN_GRACE):
        self.overrun_grace = overrun_grace
        self.security_warning = None
        if address:
            warning = _use_token_auth_if_available()  # before Ray is imported: it reads the mode once
            if warning:
                self.security_warning = warning.replace("{address}", address)
                print(self.security_warning, file=sys.stderr, flush=True)
        import ray

        self._ray = ray
        _mark_control(_RayWorker)
        self.targets = targets
        self.working_dir = working_dir
        self.started_ray = False
        if not ray.is_initialized():
            runtime_env: dict[str, Any] = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}}
            if not address:  # a local instance: workers import what this process imports
                runtime_env["env_vars"]["PYTHONPATH"] = _python_path()
            if working_dir:
                runtime_env["working_dir"] = working_dir
                runtime_env["excludes"] = [".venv", ".git", ".gradfuzz", "__pycache__"]
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False, include_dashboard=False,
                     logging_level="ERROR", configure_logging=True, **(ray_init or {}))
            self.started_ray = True
        resources = ray.cluster_resources()
        cpus, gpus = resources.get("CPU", 1.0), resources.get("GPU", 0.0)
        if workers is None:
            workers = int(gpus) if gpus >= 1 else max(1, int(cpus // cpus_per_worker))
        if gpus_per_worker is None:
            gpus_per_worker = 1.0 if gpus >= workers else (gpus / workers if gpus else 0.0)
        self.gpus_per_worker, self.cpus_per_worker = gpus_per_worker, cpus_per_worker
        self._actor_class = ray.remote(concurrency_groups={"control": 1})(_RayWorker).options(
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=0, max_task_retries=0)
        self._actors: dict[int, Any] = {}  # slot -> actor handle
        self._busy: dict[Any, tuple[int, Slice, float]] = {}  # object ref -> (slot, slice, submitted at)
        self._info: dict[int, Any] = {}  # slot -> ref of the actor's info()
        self._ready: set[int] = set()  # slots whose actor has started
        self._start_failures: dict[int, int] = {}
        self.replaced = 0
        for slot in range(workers):
            self._start(slot)

    def _start(self, slot: int) -> None:
        threads = max(1, int(self.cpus_per_worker))
        actor = self._actor_class.remote(threads, None if self.working_dir else os.getcwd())
        self._actors[slot] = actor
        self._info[slot] = actor.info.remote()

    @property
    def workers_alive(self) -> int:
        return len(self._ready)

    @property
    def worker_info(self) -> list[dict[str, Any]]:
        """Each worker's host, pid, device and GPU ids (waits for workers that have started)."""
        ready, _ = self._ray.wait(list(self._info.values()), num_returns=len(self._info), timeout=30)
        info = []
        for ref in ready:
            try:
                info.append(self._ray.get(ref))
            except self._ray.exceptions.RayError:
                pass
        return info

    def actor(self, slot: int):
        """The actor in ``slot`` (tests use it to inject faults)."""
        return self._actors[slot]

    def _idle(self) -> list[int]:
        """Slots whose actor has started (its info() answered) and runs nothing.

        An actor waiting for resources (a replacement after its node left the cluster)
        gets no work, so no slice waits behind it.
        """
        waiting = {ref: slot for slot, ref in self._info.items() if slot not in self._ready}
        if waiting:
            ready, _ = self._ray.wait(list(waiting), num_returns=len(waiting), timeout=0)
            for ref in ready:
                slot = waiting[ref]
                try:
                    self._ray.get(ref)
                    self._ready.add(slot)
                except self._ray.exceptions.RayError as error:  # died while starting: try again, a few times
                    self._start_failures[slot] = self._start_failures.get(slot, 0) + 1
                    self._ray.kill(self._actors.pop(slot), no_restart=True)
                    del self._info[slot]
                    if self._start_failures[slot] < MAX_START_FAILURES:
                        self._start(slot)
                    elif not self._actors:
                        raise RuntimeError(f"no Ray worker could start ({_first_line(error)}); see the worker logs "
                                           "under /tmp/ray/session_latest/logs") from None
        busy = {slot for slot, _, _ in self._busy.values()}
        return [slot for slot in sorted(self._ready) if slot in self._actors and slot not in busy]

    def capacity(self) -> int:
        return len(self._idle())

    def submit(self, work: Slice) -> None:
        slot = self._idle()[0]
        ref = self._actors[slot].run.remote(work, self.targets[work.target])
        self._busy[ref] = (slot, work, time.monotonic())

    def in_flight(self) -> list[Slice]:
        return [work for _, work, _ in self._busy.values()]

    def running(self) -> list[tuple[int, Slice, float]]:
        """(slot, slice, seconds since it was handed over) for every slice in flight."""
        now = time.monotonic()
        return [(slot, work, now - since) for slot, work, since in self._busy.values()]

    def results(self, timeout: float) -> list[SliceResult]:
        if not self._busy:
            time.sleep(min(timeout, 0.05))
            return []
        ready, _ = self._ray.wait(list(self._busy), num_returns=len(self._busy), timeout=timeout, fetch_local=True)
        done = []
        for ref in ready:
            slot, work, _ = self._busy.pop(ref)
            try:
                done.append(self._ray.get(ref))
            except self._ray.exceptions.RayError as error:
                # The actor died (killed, out of memory, its node gone): the slice is lost.
                done.append(SliceResult(work, f"worker {slot}", crashed=_first_line(error)))
                self._replace(slot)
        now = time.monotonic()
        for ref, (slot, work, since) in list(self._busy.items()):
            limit = overrun_limit(work, self.overrun_grace)
            if now - since > limit:  # a hung op: nothing ends it but killing its process
                del self._busy[ref]
                done.append(SliceResult(work, f"worker {slot}", hung=True, seconds=now - since, crashed=(
                    f"hang: the slice ran {now - since:.0f} s of its {work.seconds:g} s budget (limit {limit:.0f} s); "
                    "its worker was killed and replaced")))
                self._replace(slot)
        return done

    def _replace(self, slot: int) -> None:
        self._ray.kill(self._actors.pop(slot), no_restart=True)
        self._info.pop(slot, None)
        self._ready.discard(slot)
        self.replaced += 1
        self._start(slot)

    def stop(self) -> None:
        for actor in self._actors.values():
            actor.stop.remote()

    def shutdown(self) -> None:
        for actor in self._actors.values():
            self._ray.kill(actor, no_restart=True)
        self._actors.clear()
        self._busy.clear()
        if self.started_ray:
            self._ray.shutdown()


class _RayWorker(Worker):
    """`Worker` as a Ray actor: ``run`` in the default group; ``stop``, ``info``, ``pid`` and
    ``crash`` on a control thread (`_mark_control`), so they answer while ``run`` is busy.
    They are redefined here so that marking them leaves `Worker` itself untouched."""

    def stop(self) -> None:
        super().stop()

    def info(self) -> dict[str, Any]:
        return super().info()

    def pid(self) -> int:
        return os.getpid()

    def crash(self, code: int = 1) -> None:
        """Exit the process at once, as a crashing op would (fault-injection tests use it)."""
        os._exit(code)


def _mark_control(cls: type) -> None:
    import ray

    for name in ("stop", "info", "pid", "crash"):
        setattr(cls, name, ray.method(concurrency_group="control")(getattr(cls, name)))


UNAUTHENTICATED_WARNING = (
    "WARNING: joining the Ray cluster at {address} WITHOUT authentication (RAY_AUTH_MODE is {mode!r}, "
    "{token}). Ray clusters accept code from anyone who can reach their port unless every node starts "
    "with RAY_AUTH_MODE=token and a shared token: see cluster/README.md, \"Authentication\"."
)


def _use_token_auth_if_available() -> str | None:
    """Ray authenticates only when every node runs with ``RAY_AUTH_MODE=token`` and a shared token
    (Ray 2.52+; the default is no authentication). A driver joining a cluster opts in when a token
    is at hand and no mode is chosen; without one it returns the warning to print, loudly."""
    token_file = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    has_token = bool(os.environ.get("RAY_AUTH_TOKEN")) or os.path.isfile(token_file)
    if "RAY_AUTH_MODE" not in os.environ and has_token:
        os.environ["RAY_AUTH_MODE"] = "token"
    if os.environ.get("RAY_AUTH_MODE") == "token" and has_token:
        return None
    return UNAUTHENTICATED_WARNING.format(
        address="{address}", mode=os.environ.get("RAY_AUTH_MODE", "unset"),
        token="a token is set" if has_token else f"no token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or {token_file}")


def _python_path() -> str:
    """The driver's working directory and import path, so workers import the same modules."""
    import sys

    parts = [os.getcwd(), *[p for p in sys.path if p and os.path.isdir(p)]]
    return os.pathsep.join(dict.fromkeys(parts))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


Executor = LocalExecutor | RayExecutor
