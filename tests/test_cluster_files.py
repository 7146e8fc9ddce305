"""cluster/: the manifests parse and say what the runbook promises; the entrypoint uses real options."""

import re
import subprocess

import pytest
import yaml

from tests.conftest import REPO

CLUSTER = REPO / "cluster"


def _load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def _seconds(duration: str) -> int:
    from gradfuzz.durations import parse_duration

    return int(parse_duration(duration))


def test_rayjob_deadline_is_budget_plus_grace_and_the_cluster_shuts_down():
    job = _load("kuberay-rayjob.yaml")
    assert job["kind"] == "RayJob"
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    budget = _seconds(yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]["BUDGET"])
    grace = spec["activeDeadlineSeconds"] - budget
    assert 5 * 60 <= grace <= 30 * 60, f"grace of {grace} s"
    assert "cluster/entrypoint.sh" in spec["entrypoint"]
    workers = spec["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert workers["resources"]["limits"]["nvidia.com/gpu"] == 1


@pytest.mark.parametrize("name", ["kuberay-raycluster.yaml", "kuberay-rayjob.yaml"])
def test_every_ray_pod_uses_token_auth_from_one_secret(name):
    text = (CLUSTER / name).read_text()
    containers = len(re.findall(r"^\s*- name: (ray-head|ray-worker|submitter)", text, re.M))
    assert containers >= 2
    assert text.count("RAY_AUTH_MODE, value: token") == containers
    assert text.count("name: gradfuzz-ray-token") == containers


def test_launcher_config_has_gpu_workers_and_a_head_that_does_not_fuzz():
    config = _load("ray-up-gpu.yaml")
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}
    gpu = [t for name, t in types.items() if name != config["head_node_type"]]
    assert gpu and gpu[0]["node_config"]["InstanceType"].startswith("g")
    assert any("gradfuzz[gpu]" in command for command in config["setup_commands"])


def test_entrypoint_is_valid_bash_and_uses_only_existing_options(cli):
    script = (CLUSTER / "entrypoint.sh").read_text()
    assert subprocess.run(["bash", "-n", str(CLUSTER / "entrypoint.sh")]).returncode == 0
    for command in ("replay", "campaign", "export", "report"):
        used = set(re.findall(rf"gradfuzz {command}\b[^\n]*", script))
        assert used, f"the entrypoint runs gradfuzz {command}"
        options = set(re.findall(r"(--[a-z-]+)", " ".join(used)))
        help_text = cli(command, "--help").output
        assert options <= set(re.findall(r"(--[a-z-]+)", help_text)), f"gradfuzz {command}: {options}"
