"""Campaigns on a real local Ray instance: GPU scheduling with logical GPUs, and workers that die.

One Ray instance serves the module (starting one takes seconds): 2 CPUs and 2 logical GPUs,
so the executor asks for one GPU per worker and Ray assigns each its own id.
"""

import os
import signal
from pathlib import Path

import pytest

from gradfuzz.campaign import Campaign, resolve_targets, run_campaign
from gradfuzz.config import load_config
from gradfuzz.executors import RayExecutor
from gradfuzz.store import FailureStore
from tests.conftest import TARGETS
from tests.test_campaign import recorded_once, write_config

ray = pytest.importorskip("ray")
OPS = str(TARGETS / "campaign_ops.py")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"GRADFUZZ_TEST_ALLOW_EXIT": "1", "GRADFUZZ_TEST_ALLOW_HANG": "1",
                                         "TF_CPP_MIN_LOG_LEVEL": "2"}})
    yield
    ray.shutdown()


def campaign_for(directory: Path, *names: str, budget: float, slice_seconds: float = 2.0):
    config = load_config(write_config(directory, *(f'target = "{OPS}:{n}"\ninputs = ["float64[]@-10..10"]' for n in names)))
    refs = resolve_targets(config)
    return Campaign.create(config, refs, budget=budget, slice_seconds=slice_seconds), [r for r, _, _ in refs]


def test_two_workers_get_their_own_gpu_and_share_the_targets(local_ray, tmp_path):
    # Budgets are a ceiling here; each test stops on the events it is about (a loaded machine spends a short
    # budget starting workers and importing TensorFlow).
    campaign, refs = campaign_for(tmp_path, "doubled", "scaled_tanh", budget=300)
    executor = RayExecutor(refs, workers=2)
    try:
        info = executor.worker_info
        assert executor.gpus_per_worker == 1.0
        assert len({i["pid"] for i in info}) == 2 and os.getpid() not in {i["pid"] for i in info}
        assert sorted(gpu for i in info for gpu in i["gpu_ids"]) == ["0", "1"], "one logical GPU each"
        assert {i["cuda_visible_devices"] for i in info} == {"0", "1"}
        assert {i["device"] for i in info} == {"/CPU:0"}, "no physical GPU: TensorFlow runs on the CPU"
        workers = set()

        def both_ran() -> bool:
            doubled, tanh = campaign.targets
            return len(workers) == 2 and doubled.examples > 0 and tanh.examples > 0 and bool(doubled.kinds)

        run_campaign(campaign, executor, on_result=lambda c, r: workers.add(r.worker), stop_requested=both_ran)
    finally:
        executor.shutdown()
    assert len(workers) == 2, "both workers ran slices"
    doubled, tanh = campaign.targets
    assert doubled.slices >= 1 and tanh.slices >= 1 and doubled.examples > 0 and tanh.examples > 0
    assert "mismatch" in doubled.failures_by_category() and not tanh.kinds
    assert recorded_once(campaign.store, campaign.id)
    assert not campaign.incidents


@pytest.mark.parametrize("fault", ["os._exit in the actor", "SIGKILL to the actor's pid"])
def test_a_worker_killed_mid_slice_is_replaced_and_its_slice_rerun(local_ray, tmp_path, fault):
    # The lost slice re-runs on a fresh worker, which imports TensorFlow and compiles first: leave it time.
    campaign, refs = campaign_for(tmp_path, "doubled", "scaled_tanh", budget=300, slice_seconds=4)
    executor = RayExecutor(refs, workers=2)
    killed, completed = [], []

    def rerun_and_more() -> bool:  # the events the test is about: the lost slice ran again, and others since
        return bool(killed) and any(attempt == 2 for _, _, attempt in completed) and len(completed) >= 5

    def on_result(campaign, result):
        if result.crashed is None:
            completed.append((campaign.targets[result.slice.target].ref.name, result.slice.number, result.slice.attempt))

    def kill_one(campaign):
        # Once every target has finished a slice, kill a worker 1 s into its current slice.
        if killed or len({name for name, _, _ in completed}) < 2:
            return
        for slot, work, seconds in executor.running():
            if 1.0 <= seconds <= 2.0:
                killed.append(work)
                actor = executor.actor(slot)
                if fault.startswith("os._exit"):
                    actor.crash.remote(9)
                else:
                    os.kill(ray.get(actor.pid.remote()), signal.SIGKILL)
                return

    try:
        run_campaign(campaign, executor, on_result=on_result, on_update=kill_one, stop_requested=rerun_and_more)
        assert executor.replaced == 1
    finally:
        executor.shutdown()
    (lost,) = killed
    (crash,) = [i for i in campaign.incidents if i["kind"] == "worker-crash"]
    assert (crash["slice"], crash["seed"], crash["action"], crash["attempt"]) == (lost.number, lost.seed, "re-run", 1)
    assert (crash["target"], crash["slice"], 2) in completed, "the lost slice ran again on a fresh worker"
    assert all(t.slices >= 1 for t in campaign.targets)
    assert sum(t.slices for t in campaign.targets) >= 4
    assert recorded_once(campaign.store, campaign.id), "no failure recorded twice"
    records = FailureStore(campaign.store).read().failures
    assert any(f.category == "mismatch" for f in records), "no failure lost"


@pytest.mark.slow
def test_a_target_that_kills_every_worker_is_logged_and_stopped(local_ray, tmp_path):
    campaign, refs = campaign_for(tmp_path, "kills_its_process", "doubled", budget=300, slice_seconds=2)
    executor = RayExecutor(refs, workers=2)

    def seen() -> bool:
        crasher, doubled = campaign.targets
        return crasher.error is not None and doubled.slices >= 2 and bool(doubled.kinds)

    try:
        run_campaign(campaign, executor, stop_requested=seen)
    finally:
        executor.shutdown()
    crasher, doubled = campaign.targets
    crashes = [i for i in campaign.incidents if i["kind"] == "worker-crash"]
    assert {i["action"] for i in crashes} == {"re-run", "gave up"}
    assert all("--seed" in i["reproduce"] for i in crashes)
    assert crasher.error is not None and "killed" in crasher.error and "gradfuzz check" in crasher.error
    assert doubled.slices >= 2 and doubled.kinds, "the other target kept being fuzzed"


def test_a_slice_that_hangs_is_killed_recorded_with_its_reproduction_and_the_campaign_goes_on(local_ray, tmp_path):
    """A hung op outside any batch (the eager probe): before, the worker slot was lost until the
    budget ended. Now the driver kills the worker once the slice overruns, replaces it, and logs a
    `hang` incident with the command that reproduces it; the other target keeps its workers."""
    # The grace covers a fresh worker's first slice (importing TensorFlow, compiling: several seconds),
    # not a slice that never returns.
    campaign, refs = campaign_for(tmp_path, "doubled", "hangs_in_python", budget=300, slice_seconds=2)
    executor = RayExecutor(refs, workers=2, overrun_grace=20.0)

    def seen() -> bool:
        return any(i["kind"] == "hang" for i in campaign.incidents) and campaign.targets[0].slices >= 1

    try:
        run_campaign(campaign, executor, stop_requested=seen)
    finally:
        executor.shutdown()
    hangs = [i for i in campaign.incidents if i["kind"] == "hang"]
    assert hangs and all(i["target"].endswith("hangs_in_python") and i["action"] == "worker replaced" for i in hangs)
    assert "gradfuzz check" in hangs[0]["reproduce"] and "--seed" in hangs[0]["reproduce"]
    assert executor.replaced >= 1
    assert campaign.targets[0].slices >= 1, "the other target kept its worker"
