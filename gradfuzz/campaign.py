"""Campaigns: many targets, hours of fuzzing, on one machine or a Ray cluster.

A campaign cuts its budget into *slices* — check one target for a few seconds
from one seed — and hands them to an executor (`gradfuzz.executors`). The
driver here decides which target gets the next free worker, records what
comes back, and checkpoints after every slice:

- **Time by yield.** Targets are picked by stride scheduling: the one with the
  least worker time per unit of weight goes next. A slice that turns up a new
  failure kind, input region or observation doubles its target's weight (up
  to ×4) and quiet slices let it decay back, so time flows to where things are
  found and every target keeps getting some.
- **Seeds.** Slice ``n`` of target ``t`` uses ``SeedSequence([seed, t, n])`` —
  distinct for every slice whichever worker runs it; all are listed in
  ``campaign.json``.
- **Records.** One store record per (target, signature, input region) per
  campaign; later sightings only raise the counts in ``campaign.json``.
  Records carry the run id ``<campaign>/<target>/<slice>``.
- **Faults.** A slice whose worker died is re-run once on a fresh worker, then
  logged as a ``worker-crash`` incident with the command that reproduces it.
  The store is appended (fsynced) before the checkpoint is written, so a
  killed driver resumes (``--resume``) without losing or repeating a record:
  slices in flight at the kill are re-run unless the store already holds
  their records.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from gradfuzz.config import CampaignConfig
from gradfuzz.executors import Executor, Slice, SliceResult, TargetRef
from gradfuzz.store import FailureStore, StoreError, deleted_store_message, environment, write_atomically

CHECKPOINT = "campaign.json"
CHECKPOINT_VERSION = 1
MAX_ATTEMPTS = 2  # a slice whose worker dies is re-run once, then logged
CRASH_LIMIT = 3  # a target whose slices kill workers this many times in a row is stopped
MAX_BOOST = 4.0
HISTORY_SECONDS = 2.0  # the dashboard's charts: a point at most this often …
HISTORY_POINTS = 600  # … and at most this many (halved when full)
STOP_GRACE = 30.0  # seconds running slices get to finish after a stop


class CampaignError(ValueError):
    """A campaign that cannot start or resume; the message says what to do."""


def slice_seed(seed: int, target: int, number: int) -> int:
    """The seed of slice ``number`` of target ``target``: distinct per slice, stable across runs."""
    return int(np.random.SeedSequence([seed, target, number]).generate_state(1)[0] & 0x7FFFFFFF)


def default_slice_seconds(budget: float, targets: int) -> float:
    """Long enough to amortise a slice's start (a probe, a few batches), short enough to share time."""
    return float(min(30.0, max(3.0, budget / (4 * max(targets, 1)))))


@dataclass
class Kind:
    """One failure kind in one input region, as first recorded in this campaign."""

    category: str
    signature: str
    region: str
    explanation: str
    first_slice: int
    slices: int = 0  # slices that saw it


@dataclass
class TargetState:
    ref: TargetRef
    weight: float = 1.0
    budget: float | None = None  # worker-seconds cap (the config's per-target budget)
    examples: int = 0
    skipped: int = 0
    seconds: float = 0.0  # worker time spent, warm-up included
    fuzz_seconds: float = 0.0  # worker time spent after warm-up
    slices: int = 0  # completed
    next_slice: int = 0
    boost: float = 1.0
    kinds: dict[str, Kind] = field(default_factory=dict)  # "signature|region" -> Kind
    signatures: dict[str, list] = field(default_factory=dict)  # signature -> [category, examples seen]
    notes: dict[str, int] = field(default_factory=dict)  # "category|signature|region" -> times seen
    seeds: list[list[int]] = field(default_factory=list)  # [slice, seed] of each dispatched slice
    crash_streak: int = 0
    error: str | None = None
    engine: dict[str, Any] = field(default_factory=dict)  # the last slice's engine facts (batch size, fallbacks)
    pending: float = 0.0  # seconds of slices in flight (not persisted)

    @property
    def rate(self) -> float:
        return self.examples / self.fuzz_seconds if self.fuzz_seconds > 0 else 0.0

    def failures_by_category(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for category, count in self.signatures.values():
            counts[category] = counts.get(category, 0) + count
        return counts

    def eligible(self) -> bool:
        return self.error is None and (self.budget is None or self.seconds + self.pending < self.budget)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.ref.name, "reference": self.ref.reference, "inputs": list(self.ref.inputs),
            "weight": self.weight, "budget_seconds": self.budget, "examples": self.examples,
            "skipped_outside_domain": self.skipped, "worker_seconds": round(self.seconds, 3),
            "fuzz_seconds": round(self.fuzz_seconds, 3), "examples_per_second": round(self.rate, 1),
            "slices_completed": self.slices, "next_slice": self.next_slice, "boost": self.boost,
            "failures_by_category": self.failures_by_category(),
            "kinds": {key: vars(kind) for key, kind in self.kinds.items()}, "signatures": self.signatures,
            "notes": self.notes, "seeds": self.seeds, "crash_streak": self.crash_streak, "error": self.error,
            "engine": self.engine,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TargetState:
        ref = TargetRef(data["reference"], data["target"], tuple(data["inputs"]))
        state = cls(ref, weight=data["weight"], budget=data["budget_seconds"])
        state.examples, state.skipped = data["examples"], data["skipped_outside_domain"]
        state.seconds, state.fuzz_seconds = data["worker_seconds"], data["fuzz_seconds"]
        state.slices, state.next_slice, state.boost = data["slices_completed"], data["next_slice"], data["boost"]
        state.kinds = {key: Kind(**kind) for key, kind in data["kinds"].items()}
        state.signatures = {key: list(value) for key, value in data["signatures"].items()}
        state.notes, state.seeds = dict(data["notes"]), [list(s) for s in data["seeds"]]
        state.crash_streak, state.error, state.engine = data["crash_streak"], data["error"], data.get("engine", {})
        return state


def resolve_targets(config: CampaignConfig) -> list[tuple[TargetRef, float, float | None]]:
    """Each config block's targets with their weight and budget (a block naming a module shares
    its weight and budget among the targets it declares, and a target among its shape variants). Loading them here, in the driver,
    makes a bad target fail before any worker starts."""
    from gradfuzz.planning import CheckRequest, plan_checks
    from gradfuzz.spec import SpecError
    from gradfuzz.target import TargetError, load_targets

    refs = []
    for block in config.targets:
        try:
            planned = plan_checks([CheckRequest(tuple(load_targets(block.target)), block.inputs, block.budget, weight=block.weight)])
        except (TargetError, SpecError) as error:
            raise CampaignError(f"{config.path}: target {block.target!r}: {error}") from None
        refs += [(TargetRef(block.target, p.target.name, tuple(str(s) for s in p.specs)), p.weight, p.budget) for p in planned]
    return refs


def pick_target(states: list[TargetState]) -> int | None:
    """Stride scheduling: the eligible target with the least worker time per unit of (boosted) weight."""
    eligible = [i for i, s in enumerate(states) if s.eligible()]
    if not eligible:
        return None
    return min(eligible, key=lambda i: ((states[i].seconds + states[i].pending) / (states[i].weight * states[i].boost), i))



class CampaignStatus(StrEnum):
    RUNNING = "running"  # started, or stopped without a clean stop (resume it)
    FINISHED = "finished"
    INTERRUPTED = "interrupted"  # stopped cleanly before its budget (resume it)

@dataclass
class Campaign:
    """A campaign's whole state: what `campaign.json` holds, and what the driver updates."""

    id: str
    store: Path
    seed: int
    budget: float  # wall-clock seconds, over all sessions of a resumed campaign
    slice_seconds: float
    targets: list[TargetState]
    config: str = ""
    config_sha256: str = ""
    elapsed_before: float = 0.0  # wall-clock seconds of earlier sessions (a resumed campaign)
    sessions: int = 1
    status: str = CampaignStatus.RUNNING
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    incidents: list[dict[str, Any]] = field(default_factory=list)
    in_flight: list[Slice] = field(default_factory=list)  # at the last checkpoint
    retry: list[Slice] = field(default_factory=list)  # lost slices to run first
    executor: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=environment)  # of this session's driver
    session_started: float = field(default_factory=time.monotonic)
    # Samples for the dashboard's charts: [elapsed s, [examples, failing examples, notes] per target].
    history: list[list[Any]] = field(default_factory=list)

    # -- starting and resuming ----------------------------------------------------------

    @classmethod
    def create(cls, config: CampaignConfig, refs: list[tuple[TargetRef, float, float | None]], budget: float,
               slice_seconds: float | None = None) -> Campaign:
        seed = config.seed if config.seed is not None else int(np.random.default_rng().integers(2**31))
        states = [TargetState(ref, weight=weight, budget=target_budget) for ref, weight, target_budget in refs]
        return cls(id=uuid.uuid4().hex[:12], store=config.store, seed=seed, budget=budget,
                   slice_seconds=slice_seconds or default_slice_seconds(budget, len(states)), targets=states,
                   config=str(config.path), config_sha256=_sha256(config.path))

    @classmethod
    def resume(cls, config: CampaignConfig, refs: list[tuple[TargetRef, float, float | None]], budget: float | None = None,
               slice_seconds: float | None = None) -> Campaign:
        """Continue the campaign checkpointed in the config's store, with what is left of its budget."""
        path = config.store / CHECKPOINT
        campaign = load_checkpoint(path)
        wanted = [ref for ref, _, _ in refs]
        have = [state.ref for state in campaign.targets]
        if [(r.name, r.inputs) for r in wanted] != [(r.name, r.inputs) for r in have]:
            raise CampaignError(
                f"{path} belongs to a campaign over other targets ({', '.join(r.name for r in have)}) than {config.path} "
                f"names now ({', '.join(r.name for r in wanted)}). Resume with the config it started with, or start "
                "a new campaign without --resume."
            )
        if campaign.status == CampaignStatus.FINISHED:
            raise CampaignError(f"The campaign in {path} already finished. Start a new one without --resume.")
        for state, ref in zip(campaign.targets, wanted):
            state.ref = ref  # the same targets; file paths may have been re-resolved
        campaign.store = config.store  # where the checkpoint was found: a moved store is written where it is now
        if budget is not None:
            campaign.budget = budget
        if slice_seconds:
            campaign.slice_seconds = slice_seconds
        campaign.sessions += 1
        campaign.session_started = time.monotonic()
        campaign.status = CampaignStatus.RUNNING
        campaign._reconcile_with_store()
        return campaign

    def _reconcile_with_store(self) -> None:
        """After a killed driver: records the checkpoint missed are known kinds; their slices are done.

        Reads the store once; only this campaign's records (run id ``<campaign>/<target>/<slice>``) count."""
        mine = []
        if (self.store / "failures").is_dir():
            mine = [f for f in FailureStore(self.store).read().failures if f.run_id.startswith(f"{self.id}/")]
        for failure in mine:
            state = self.targets[int(failure.run_id.split("/")[1])]
            key = _key(failure.signature, failure.region)
            if key not in state.kinds:
                state.kinds[key] = Kind(failure.category, failure.signature, failure.region, failure.explanation,
                                        _slice_number(failure.run_id), 1)
                state.signatures.setdefault(failure.signature, [failure.category, int(failure.count)])
        recorded = {f.run_id for f in mine}
        for work in self.in_flight:
            if work.run_id in recorded:
                self.targets[work.target].slices += 1
                self.incidents.append(_incident("recovered", work, self.targets[work.target].ref.name, "store",
                                                "the slice's records reached the store before the driver stopped"))
            else:
                self.retry.append(work)
                self.incidents.append(_incident("driver-stopped", work, self.targets[work.target].ref.name, "re-run",
                                                "in flight when the driver stopped; its results never arrived"))
        self.in_flight = []

    # -- time --------------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self.session_started)

    @property
    def remaining(self) -> float:
        return max(0.0, self.budget - self.elapsed)

    # -- the driver loop ---------------------------------------------------------------

    def next_slice(self) -> Slice | None:
        if self.retry:
            work = self.retry.pop(0)
            self.targets[work.target].pending += work.seconds
            return work
        seconds = min(self.slice_seconds, self.remaining)
        if seconds < 1.0:
            return None
        index = pick_target(self.targets)
        if index is None:
            return None
        state = self.targets[index]
        if state.budget is not None:
            seconds = min(seconds, max(1.0, state.budget - state.seconds - state.pending))
        number = state.next_slice
        state.next_slice += 1
        seed = slice_seed(self.seed, index, number)
        state.seeds.append([number, seed])
        state.pending += seconds
        return Slice(self.id, index, number, seed, round(seconds, 3))

    def has_work(self) -> bool:
        return bool(self.retry) or (self.remaining >= 1.0 and pick_target(self.targets) is not None)

    def record(self, result: SliceResult, store: FailureStore) -> list[dict[str, Any]]:
        """Fold one slice's result in; append its new records to the store. Returns the new records."""
        work = result.slice
        state = self.targets[work.target]
        state.pending = max(0.0, state.pending - work.seconds)
        if result.crashed is not None:
            state.crash_streak += 1
            reproduce = f"gradfuzz check {state.ref.reproduce} --seed {work.seed} --budget {work.seconds:g}s"
            if result.hung:  # re-running would hang a second worker: record how to reproduce it instead
                state.seconds += max(result.seconds, work.seconds)  # the worker time it took: others go first now
                self.incidents.append(_incident("hang", work, state.ref.name, "worker replaced", result.crashed,
                                                result.worker, hint=reproduce))
                if state.crash_streak >= CRASH_LIMIT:
                    state.error = f"its slices hung {state.crash_streak} times in a row. Reproduce with: {reproduce}"
                return []
            if work.attempt < MAX_ATTEMPTS:
                self.retry.append(Slice(work.campaign, work.target, work.number, work.seed, work.seconds, work.attempt + 1))
                action = "re-run"
            else:
                action = "gave up"
                if state.crash_streak >= CRASH_LIMIT:
                    state.error = (f"its slices killed {state.crash_streak} worker processes in a row; it probably "
                                   f"crashes the process (a segfault or os._exit in an op). Reproduce in one process with: {reproduce}")
            self.incidents.append(_incident("worker-crash", work, state.ref.name, action, result.crashed, result.worker,
                                            hint=reproduce))
            return []
        state.crash_streak = 0
        state.slices += 1
        state.seconds += result.seconds
        state.fuzz_seconds += max(0.0, result.seconds - result.warmup_seconds)
        state.examples += result.examples
        state.skipped += result.skipped
        state.engine = result.engine
        if result.error is not None:
            state.error = result.error
            self.incidents.append(_incident("target-error", work, state.ref.name, "stopped", result.error, result.worker))
            return []
        seen_keys = {_key(row["signature"], row["region"]) for row in result.records}
        new = seen_keys - set(state.kinds)
        fresh = [row for row in result.records if _key(row["signature"], row["region"]) in new]  # all rows of a new key
        for row in fresh:
            state.kinds.setdefault(_key(row["signature"], row["region"]),
                                   Kind(row["category"], row["signature"], row["region"], row["explanation"], work.number))
        for key in seen_keys:
            state.kinds[key].slices += 1
        for signature, (category, count) in {r["signature"]: (r["category"], int(r["count"])) for r in result.records}.items():
            seen = state.signatures.setdefault(signature, [category, 0])
            seen[1] += count  # a group's rows all carry the group's count: add it once per signature
        new_notes = 0
        for category, signature, region in result.notes:
            note = f"{category}|{signature}|{region}"
            new_notes += note not in state.notes
            state.notes[note] = state.notes.get(note, 0) + 1
        if fresh:
            store.append_failures(fresh)  # before the checkpoint: a killed driver never loses a record
        state.boost = min(MAX_BOOST, state.boost * 2) if new or new_notes else max(1.0, state.boost * 0.75)
        return fresh

    # -- checkpoints -------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        total_examples = sum(s.examples for s in self.targets)
        return {
            "version": CHECKPOINT_VERSION, "campaign": self.id, "status": self.status, "config": self.config,
            "config_sha256": self.config_sha256, "store": str(self.store), "seed": self.seed,
            "seed_rule": "slice n of target t uses numpy SeedSequence([seed, t, n]).generate_state(1)[0] & 0x7FFFFFFF",
            "budget_seconds": self.budget, "elapsed_seconds": round(self.elapsed, 3), "slice_seconds": self.slice_seconds,
            "sessions": self.sessions, "started": self.started, "updated": datetime.now(UTC).isoformat(),
            "examples": total_examples,
            "examples_per_second": round(total_examples / self.elapsed, 1) if self.elapsed > 0 else 0.0,
            "failure_kinds": self.failure_kinds, "failure_records": sum(len(s.kinds) for s in self.targets),
            "targets": [s.to_json() for s in self.targets],
            "in_flight": [vars(w) for w in self.in_flight],
            "retry": [vars(w) for w in self.retry],
            "incidents": self.incidents,
            "executor": self.executor,
            "environment": self.environment,
            "history": self.history,
        }

    def sample(self, final: bool = False) -> None:
        """Add a point to `history` at most every `HISTORY_SECONDS`; thin it to `HISTORY_POINTS`
        (every other point) so an hours-long campaign's checkpoint stays small."""
        elapsed = round(self.elapsed, 1)
        if self.history and elapsed - self.history[-1][0] < HISTORY_SECONDS and not final:
            return
        self.history.append([elapsed, [[s.examples, sum(c for _, c in s.signatures.values()), sum(s.notes.values())]
                                       for s in self.targets]])
        if len(self.history) > HISTORY_POINTS:
            self.history = self.history[::2]

    def checkpoint(self, *, running: bool = False) -> None:
        """Write campaign.json atomically (temp file, fsync, rename). ``running``: the driver made the store, so a
        store missing now was deleted meanwhile, a `StoreError` (writing would create it again, as if nothing were lost)."""
        if running and not self.store.is_dir():
            raise StoreError(deleted_store_message(self.store, sum(len(s.kinds) for s in self.targets)))
        write_atomically(self.store / CHECKPOINT, json.dumps(self.to_json(), indent=2, default=str, allow_nan=False))

    @property
    def failure_kinds(self) -> int:
        """Distinct failures (target, signature) found; each may span several input regions."""
        return sum(len(s.signatures) for s in self.targets)

    @property
    def failed(self) -> bool:
        return any(s.kinds for s in self.targets)

    @property
    def errors(self) -> list[tuple[str, str]]:
        return [(s.ref.name, s.error) for s in self.targets if s.error is not None]


def run_campaign(campaign: Campaign, executor: Executor, *, stop_requested: Callable[[], bool] = lambda: False,
                 on_update: Callable[[Campaign], None] | None = None,
                 on_result: Callable[[Campaign, SliceResult], None] | None = None) -> Campaign:
    """Drive ``executor`` until the budget is spent, every target is done, or a stop is requested.

    ``on_update`` is called about every quarter second (progress display); ``on_result``
    after each slice is recorded (tests inject faults there).
    """
    campaign.store.mkdir(parents=True, exist_ok=True)
    campaign.session_started = time.monotonic()  # starting Ray and the workers is not fuzzing time
    stop_sent_at: float | None = None
    with FailureStore(campaign.store) as store:
        while True:
            stopping = stop_requested() or campaign.remaining <= 0
            if not stopping:
                submitted = False
                while executor.capacity() > 0 and (work := campaign.next_slice()) is not None:
                    executor.submit(work)
                    submitted = True
                if submitted:  # the checkpoint names every slice in flight, so --resume can re-run it
                    campaign.in_flight = executor.in_flight()
                    campaign.checkpoint(running=True)
            elif stop_sent_at is None:
                executor.stop()
                stop_sent_at = time.monotonic()
            if not executor.in_flight() and (stopping or not campaign.has_work()):
                break
            results = executor.results(timeout=0.25)
            for result in results:
                campaign.record(result, store)
            campaign.in_flight = executor.in_flight()
            if results:
                campaign.sample()
                campaign.checkpoint(running=True)
                for result in results:
                    if on_result is not None:
                        on_result(campaign, result)
            if on_update is not None:
                on_update(campaign)
            if stop_sent_at is not None and time.monotonic() - stop_sent_at > STOP_GRACE:
                for work in campaign.in_flight:
                    campaign.incidents.append(_incident("unfinished", work, campaign.targets[work.target].ref.name, "dropped",
                                                        f"still running {STOP_GRACE:.0f} s after the stop; nothing it found was recorded"))
                campaign.in_flight = []
                break
    campaign.status = CampaignStatus.INTERRUPTED if stop_requested() else CampaignStatus.FINISHED
    campaign.elapsed_before, campaign.session_started = campaign.elapsed, time.monotonic()
    campaign.sample(final=True)
    campaign.checkpoint(running=True)
    return campaign


def load_checkpoint(path: Path) -> Campaign:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CampaignError(f"No campaign to resume: {path} does not exist. Start one without --resume.") from None
    except (OSError, json.JSONDecodeError) as error:
        raise CampaignError(f"{path} is not a readable campaign checkpoint ({error}). Move it aside and start a new "
                            "campaign without --resume; the failure store is unaffected.") from None
    if not isinstance(data, dict) or data.get("version") != CHECKPOINT_VERSION:
        raise CampaignError(f"{path} has checkpoint version {data.get('version') if isinstance(data, dict) else '?'}; "
                            f"this gradfuzz reads version {CHECKPOINT_VERSION}.")
    try:
        return Campaign(
            id=data["campaign"], store=Path(data["store"]), seed=data["seed"], budget=data["budget_seconds"],
            slice_seconds=data["slice_seconds"], targets=[TargetState.from_json(t) for t in data["targets"]],
            config=data["config"], config_sha256=data["config_sha256"], elapsed_before=data["elapsed_seconds"],
            sessions=data["sessions"], status=data["status"], started=data["started"], incidents=data["incidents"],
            in_flight=[Slice(**w) for w in data["in_flight"]] + [Slice(**w) for w in data.get("retry", [])],
            history=data.get("history", []),
            executor=data.get("executor", {}),
        )
    except (KeyError, TypeError) as error:
        raise CampaignError(f"{path} is missing {error} — not a gradfuzz campaign checkpoint, or damaged. Move it "
                            "aside and start a new campaign; the failure store is unaffected.") from None


def _key(signature: str, region: str) -> str:
    """A failure kind in one input region: what a campaign records once."""
    return f"{signature}|{region}"


def _slice_number(run_id: str) -> int:
    try:
        return int(run_id.rsplit("/", 1)[1])
    except (IndexError, ValueError):
        return -1


def _incident(kind: str, work: Slice, target: str, action: str, message: str, worker: str = "", hint: str = "") -> dict[str, Any]:
    incident = {"time": datetime.now(UTC).isoformat(), "kind": kind, "target": target, "slice": work.number,
                "seed": work.seed, "attempt": work.attempt, "action": action, "message": message, "worker": worker}
    if hint:
        incident["reproduce"] = hint
    return incident


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""
