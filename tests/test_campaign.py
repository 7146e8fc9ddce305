"""Campaigns with the local executor: scheduling, records, checkpoints, resume after SIGKILL, SIGINT."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from gradfuzz.campaign import Campaign, CampaignError, TargetState, pick_target, slice_seed
from gradfuzz.executors import SliceResult, TargetRef
from gradfuzz.store import FailureStore
from tests.conftest import REPO, TARGETS

OPS = str(TARGETS / "campaign_ops.py")


def write_config(directory: Path, *blocks: str, store: str = "store", seed: int = 7) -> Path:
    path = directory / "campaign.toml"
    path.write_text(f'store = "{directory / store}"\nseed = {seed}\n' + "".join(f"[[targets]]\n{b}\n" for b in blocks))
    return path


def two_targets(directory: Path) -> Path:
    return write_config(directory, f'target = "{OPS}:doubled"', f'target = "{OPS}:scaled_tanh"\nweight = 2.0')


def recorded_once(store: Path, campaign: str) -> bool:
    """Every (target, signature, region) of the campaign was recorded by one slice only.

    (One slice may store two rows of a key: the simplest example and the worst one.)"""
    slices: dict[tuple, set] = {}
    for f in FailureStore(store).read().failures:
        if f.run_id.startswith(campaign + "/"):
            slices.setdefault((f.target, f.signature, f.region), set()).add(f.run_id)
    return bool(slices) and all(len(run_ids) == 1 for run_ids in slices.values())


# -- pure parts -------------------------------------------------------------------------------


def test_stride_scheduling_shares_time_by_weight_and_yield():
    states = [TargetState(TargetRef("a", "a", ()), weight=1.0), TargetState(TargetRef("b", "b", ()), weight=3.0)]
    for _ in range(400):
        states[pick_target(states)].seconds += 1.0
    assert states[1].seconds / states[0].seconds == pytest.approx(3.0, rel=0.02)

    states[0].boost = 4.0  # a target that just found something gets more time, the other still some
    before = [s.seconds for s in states]
    for _ in range(400):
        states[pick_target(states)].seconds += 1.0
    gained = [s.seconds - b for s, b in zip(states, before)]
    assert gained[0] > gained[1] > 0

    states[0].error = "cannot load"
    states[1].budget = states[1].seconds  # its own budget is spent
    assert pick_target(states) is None


def test_slice_seeds_are_distinct_and_stable():
    seeds = {slice_seed(7, t, n) for t in range(20) for n in range(500)}
    assert len(seeds) == 20 * 500
    assert slice_seed(7, 3, 11) == slice_seed(7, 3, 11) != slice_seed(8, 3, 11)


def _row(signature: str, region: str, count: int, category: str = "mismatch") -> dict:
    from gradfuzz.report import Finding
    from gradfuzz.store import failure_row

    finding = Finding(target="t", category=category, explanation="x", inputs=[np.float64(1.0)],
                      count=count, signature=signature, region=region)
    return failure_row(finding, target="t", fingerprint="f", specs=["float64[]"], run_id="")


def test_records_are_deduplicated_counted_and_crashes_rerun_then_logged(tmp_path):
    config = type("C", (), {"seed": 1, "store": tmp_path / "s", "path": tmp_path / "c.toml"})()
    campaign = Campaign.create(config, [(TargetRef("t.py:t", "t", ("float64[]",)), 1.0, None)], budget=60.0, slice_seconds=5)
    first, second, third = (campaign.next_slice() for _ in range(3))
    assert len({first.seed, second.seed, third.seed}) == 3 and [first.number, second.number] == [0, 1]
    with FailureStore(campaign.store) as store:
        rows = [_row("mismatch:0", "(0, 1)", 10), _row("mismatch:0", "(1, +inf)", 10)]
        assert len(campaign.record(SliceResult(first, "w", examples=100, seconds=5, records=rows), store)) == 2
        again = [_row("mismatch:0", "(0, 1)", 4), _row("mismatch:0", "(-inf, 0)", 4)]
        fresh = campaign.record(SliceResult(second, "w", examples=50, seconds=5, records=again), store)
        assert [r["region"] for r in fresh] == ["(-inf, 0)"], "only the new region is recorded again"

        assert campaign.record(SliceResult(third, "w", crashed="ActorDiedError: killed"), store) == []
        assert campaign.incidents[-1]["action"] == "re-run" and campaign.retry[0].attempt == 2
        rerun = campaign.next_slice()
        assert (rerun.number, rerun.seed, rerun.attempt) == (third.number, third.seed, 2)
        campaign.record(SliceResult(rerun, "w", crashed="ActorDiedError: killed again"), store)
        assert campaign.incidents[-1]["kind"] == "worker-crash" and campaign.incidents[-1]["action"] == "gave up"
        assert f"--seed {third.seed}" in campaign.incidents[-1]["reproduce"]
    state = campaign.targets[0]
    assert state.examples == 150 and state.slices == 2
    assert state.failures_by_category() == {"mismatch": 14}
    assert len(state.kinds) == 3 and len(FailureStore(campaign.store).read().failures) == 3


# -- the command ------------------------------------------------------------------------------


def test_local_campaign_records_checkpoints_and_replays(cli, tmp_path):
    config = two_targets(tmp_path)
    result = cli("campaign", str(config), "--budget", "10s", "--slice", "2s")
    assert result.exit_code == 1, result.output
    assert "finished" in result.output and "doubled" in result.output
    document = json.loads((tmp_path / "store" / "campaign.json").read_text())
    assert document["status"] == "finished" and document["executor"]["name"] == "local"
    doubled, tanh = document["targets"]
    # (a factor-2 error at tiny |x| also forms an "approximation" group: a known rough edge of the oracle)
    assert "mismatch" in doubled["failures_by_category"] and not tanh["failures_by_category"]
    assert doubled["examples"] > 0 and tanh["examples"] > 0 and doubled["slices_completed"] >= 1
    seeds = [seed for t in document["targets"] for _, seed in t["seeds"]]
    assert len(seeds) == len(set(seeds)) >= 2
    assert recorded_once(tmp_path / "store", document["campaign"])
    assert not list((tmp_path / "store" / "failures").glob("*.arrows")), "segments are sealed at the end"

    # The records name code outside this (scratch) working directory: trusted explicitly.
    refused = cli("replay", str(tmp_path / "store"), "--format", "json")
    assert {r["status"] for r in json.loads(refused.stdout)["results"]} == {"target-missing"} and refused.exit_code == 1
    replay = cli("replay", str(tmp_path / "store"), "--trust-store", "--format", "json")
    assert {r["status"] for r in json.loads(replay.stdout)["results"]} == {"reproduced"}


@pytest.mark.parametrize(
    ("args", "block", "message"),
    [
        (["--workers", "2"], None, "needs --executor ray"),
        (["--resume"], None, "No campaign to resume"),
        ([], 'target = "nowhere/missing.py:f"', "missing.py"),
        ([], 'target = "x.py:f"\ncolour = "red"', ":5: unknown key 'colour'"),
        # issue #27: before, --budget 0s meant the default 600 s, and a budget or slice under 1 s dispatched
        # nothing and reported "finished: 0 examples" with exit 0
        (["--budget", "0s"], None, "0s is too short to check anything: give at least 1s, e.g. --budget 30s"),
        (["--budget", "0.5s"], None, "0.5s is too short to check anything"),
        (["--slice", "0.2s"], None, "0.2s is too short to check anything: give at least 1s, e.g. --slice 30s"),
    ],
)
def test_campaign_usage_errors_exit_2_with_what_to_do(cli, tmp_path, args, block, message):
    config = write_config(tmp_path, block or f'target = "{OPS}:doubled"')
    result = cli("campaign", str(config), "--budget", "2s", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())  # rich wraps long lines


def _start(config: Path, *args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "CI": "true"}  # Hypothesis's CI profile: no example database; the Arrow store is unaffected
    return subprocess.Popen([sys.executable, "-m", "gradfuzz.cli", "campaign", str(config), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_slices(checkpoint: Path, count: int, process: subprocess.Popen, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            document = json.loads(checkpoint.read_text())
            if sum(t["slices_completed"] for t in document["targets"]) >= count:
                return document
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} slices in {timeout} s")


def _wait_for_a_record_and_a_fresh_slice(store: Path, process: subprocess.Popen, slice_seconds: float,
                                         timeout: float = 180) -> dict:
    """Wait until the store holds a record of the campaign and the checkpoint names a slice
    dispatched less than a third of a slice ago: a kill now lands mid-slice, whatever the
    machine's speed (events, not sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            document = json.loads((store / "campaign.json").read_text())
            age = time.time() - datetime.fromisoformat(document["updated"]).timestamp()
            fresh = document["in_flight"] and age < slice_seconds / 3
            if fresh and any(f.run_id.startswith(document["campaign"] + "/") for f in FailureStore(store).read().failures):
                return document
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"no record and fresh slice within {timeout} s")


@pytest.mark.slow
def test_driver_killed_with_sigkill_resumes_without_losing_or_repeating_records(tmp_path):
    config = two_targets(tmp_path)
    store = tmp_path / "store"
    process = _start(config, "--budget", "300s", "--slice", "3s", cwd=REPO)
    before = _wait_for_a_record_and_a_fresh_slice(store, process, slice_seconds=3.0)
    process.send_signal(signal.SIGKILL)  # mid-slice, with a record already stored
    process.wait()
    records_before = {f.id for f in FailureStore(store).read().failures}
    assert records_before, "the bug found before the kill is in the store"
    checkpoint = json.loads((store / "campaign.json").read_text())
    assert checkpoint["status"] == "running" and checkpoint["in_flight"], "killed mid-slice: the checkpoint lists it"

    budget = f"{checkpoint['elapsed_seconds'] + 6:.0f}s"
    resumed = _start(config, "--resume", "--budget", budget, "--slice", "3s", cwd=REPO)
    output, _ = resumed.communicate(timeout=180)
    assert resumed.returncode == 1, output
    after = json.loads((store / "campaign.json").read_text())
    assert after["campaign"] == before["campaign"] and after["sessions"] == 2 and after["status"] == "finished"
    assert after["elapsed_seconds"] >= checkpoint["elapsed_seconds"]
    records_after = {f.id for f in FailureStore(store).read().failures}
    assert records_before <= records_after, "nothing recorded before the kill is lost"
    assert recorded_once(store, after["campaign"]), "nothing is recorded twice"
    for old, new in zip(checkpoint["targets"], after["targets"]):
        assert new["examples"] >= old["examples"] and new["next_slice"] >= old["next_slice"]
    # The slice in flight at the kill was re-run with its own seed (or found complete in the store).
    lost = checkpoint["in_flight"][0]
    (incident,) = [i for i in after["incidents"] if i["slice"] == lost["number"] and i["seed"] == lost["seed"]]
    assert (incident["kind"], incident["action"]) in {("driver-stopped", "re-run"), ("recovered", "store")}


@pytest.mark.slow
def test_sigint_stops_cleanly_flushes_and_prints_a_summary(tmp_path):
    config = two_targets(tmp_path)
    store = tmp_path / "store"
    process = _start(config, "--budget", "300s", "--slice", "5s", cwd=REPO)
    _wait_for_slices(store / "campaign.json", 1, process)
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    output, _ = process.communicate(timeout=60)
    assert time.monotonic() - started < 30, "a clean stop ends the running slice after its batch"
    assert process.returncode == 1, output  # the planted bug was found before the stop
    assert "Stopping" in output and "interrupted" in output and "Continue with --resume" in output
    document = json.loads((store / "campaign.json").read_text())
    assert document["status"] == "interrupted" and not document["in_flight"]
    assert not list((store / "failures").glob("*.arrows")), "the store's segment was sealed"
    assert FailureStore(store).read().problems == []


def test_resume_refuses_a_config_with_other_targets(tmp_path):
    config = two_targets(tmp_path)
    base = type("C", (), {"seed": 1, "store": tmp_path / "store", "path": config})()
    campaign = Campaign.create(base, [(TargetRef("a.py:a", "a", ()), 1.0, None)], budget=10.0)
    campaign.checkpoint()
    with pytest.raises(CampaignError, match="other targets"):
        Campaign.resume(base, [(TargetRef("b.py:b", "b", ()), 1.0, None)])


def test_resume_writes_to_the_store_the_config_names_now(tmp_path):
    """A store moved (or mounted elsewhere) between sessions. Before: the checkpoint's old path was used."""
    config = two_targets(tmp_path)
    refs = [(TargetRef("a.py:a", "a", ()), 1.0, None)]
    base = type("C", (), {"seed": 1, "store": tmp_path / "old", "path": config})()
    Campaign.create(base, refs, budget=10.0).checkpoint()
    (tmp_path / "old").rename(tmp_path / "new")
    moved = type("C", (), {"seed": 1, "store": tmp_path / "new", "path": config})()
    assert Campaign.resume(moved, refs).store == tmp_path / "new"


@pytest.mark.parametrize("command", ["campaign", "gate"])
def test_a_store_in_use_is_refused_with_the_holder_named(cli, tmp_path, command):
    """Before: a second campaign renamed the running one's campaign.json and both overwrote it."""
    from gradfuzz.store import StoreLock

    config = two_targets(tmp_path)
    with StoreLock(tmp_path / "store", "gradfuzz campaign first.toml"):
        result = cli(command, str(config), "--budget", "5s")
        assert result.exit_code == 2
        assert "is in use by gradfuzz campaign first.toml (pid" in " ".join(result.output.split())
        assert not (tmp_path / "store" / "campaign.json").exists()
    with StoreLock(tmp_path / "store", "a second holder"):
        pass  # released when the holder leaves


def test_a_shape_family_becomes_one_scheduled_target_per_shape(tmp_path):
    from gradfuzz.campaign import resolve_targets
    from gradfuzz.config import load_config

    config = load_config(write_config(tmp_path, f'target = "{TARGETS / "planted.py"}:squeezes_gradient"\n'
                                                'inputs = ["float32[n,3]"]\nweight = 3.0\nbudget = "30s"'))
    refs = resolve_targets(config)
    assert [ref.inputs for ref, _, _ in refs] == [("float32[3,3]@-100..100",), ("float32[1,3]@-100..100",),
                                                  ("float32[0,3]@-100..100",)]
    assert [weight for _, weight, _ in refs] == [1.0, 1.0, 1.0] and [b for _, _, b in refs] == [10.0, 10.0, 10.0]
    assert "--input 'float32[1,3]@-100..100'" in refs[1][0].reproduce


def test_a_local_slice_that_hangs_is_abandoned_and_the_campaign_finishes(tmp_path, monkeypatch):
    """Before, a call stuck outside the checker's watchdog hung a local campaign for good (SIGTERM
    only set a flag). The local executor runs each slice in a thread it waits on with a limit."""
    from gradfuzz.campaign import resolve_targets, run_campaign
    from gradfuzz.config import load_config
    from gradfuzz.executors import LocalExecutor

    monkeypatch.setenv("GRADFUZZ_TEST_ALLOW_HANG", "1")
    config = load_config(write_config(tmp_path, f'target = "{OPS}:hangs_in_python"\ninputs = ["float64[]"]',
                                      f'target = "{OPS}:doubled"'))
    refs = resolve_targets(config)
    # Stop on the events the test is about (a hang recorded, the other target run), not a 12 s clock that a
    # loaded machine spends warming up.
    campaign = Campaign.create(config, refs, budget=600, slice_seconds=2)
    # A grace a loaded machine's first contact with a target fits in (at 1 s, the correct target's slices
    # "hung" too while it traced).
    executor = LocalExecutor([ref for ref, _, _ in refs], overrun_grace=20.0)

    def seen() -> bool:
        return any(i["kind"] == "hang" for i in campaign.incidents) and campaign.targets[1].slices >= 1

    try:
        run_campaign(campaign, executor, stop_requested=seen)
    finally:
        monkeypatch.delenv("GRADFUZZ_TEST_ALLOW_HANG")  # lets the abandoned threads end: wait for them
        for thread in executor.abandoned:
            thread.join(timeout=300)
    hangs = [i for i in campaign.incidents if i["kind"] == "hang"]
    assert hangs and hangs[0]["target"].endswith("hangs_in_python") and "--seed" in hangs[0]["reproduce"]
    assert seen() and executor.replaced >= 1
    assert campaign.targets[1].slices >= 1, "the other target still ran"


def test_a_store_deleted_mid_campaign_says_so_and_is_not_recreated(tmp_path):
    """Before: appends went on into the unlinked segment, the checkpoint recreated the directory, and
    the end said the records "stay readable in the unsealed stream" — in a directory that was gone."""
    import shutil

    from gradfuzz.campaign import resolve_targets, run_campaign
    from gradfuzz.config import load_config
    from gradfuzz.executors import LocalExecutor
    from gradfuzz.store import StoreError

    config = load_config(two_targets(tmp_path))
    refs = resolve_targets(config)
    campaign = Campaign.create(config, refs, budget=30, slice_seconds=2)

    def delete_the_store(state, result):
        shutil.rmtree(state.store, ignore_errors=True)

    with pytest.raises(StoreError) as raised:
        run_campaign(campaign, LocalExecutor([ref for ref, _, _ in refs]), on_result=delete_the_store)
    message = str(raised.value)
    assert f"The store {config.store} was deleted while this run was writing to it" in message
    assert "stay readable" not in message
    assert not config.store.exists(), "the checkpoint did not create the store again"
