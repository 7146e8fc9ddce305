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


@pytest.mark.parametrize("replay, campaign, expected", [
    (0, 0, 0), (1, 0, 1), (0, 1, 1), (0, 130, 130), (0, 2, 2),
    (0, 137, 2), (0, 139, 2), (0, 134, 2), (137, 0, 2),  # killed, segfault, abort: before, the gate passed
])
def test_the_entrypoint_fails_closed_on_any_unexpected_status(tmp_path, replay, campaign, expected):
    """A fake `gradfuzz` on PATH ends replay and campaign with the given statuses."""
    import os
    import sys

    store = tmp_path / "store"
    (store / "failures").mkdir(parents=True)
    config = tmp_path / "campaign.toml"
    config.write_text(f'store = "{store}"\n[[targets]]\ntarget = "a.py:f"\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "gradfuzz"
    fake.write_text(f'#!/bin/sh\ncase "$1" in replay) exit {replay};; campaign) exit {campaign};; *) exit 0;; esac\n')
    fake.chmod(0o755)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CONFIG": str(config), "RESULTS": str(tmp_path / "out")}
    result = subprocess.run(["bash", str(CLUSTER / "entrypoint.sh")], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == expected, result.stderr


def test_joining_a_cluster_without_a_token_warns_loudly(tmp_path, monkeypatch):
    """Ray starts without authentication unless every node has RAY_AUTH_MODE=token and a token."""
    from gradfuzz.executors import _use_token_auth_if_available

    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "auth_token"))
    warning = _use_token_auth_if_available()
    assert "WITHOUT authentication" in warning and "no token" in warning and "cluster/README.md" in warning
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    (tmp_path / "auth_token").write_text("secret")
    assert "WITHOUT authentication" in _use_token_auth_if_available(), "a token the mode does not use protects nothing"
    monkeypatch.delenv("RAY_AUTH_MODE")
    assert _use_token_auth_if_available() is None
    assert __import__("os").environ["RAY_AUTH_MODE"] == "token"


def test_the_runbook_and_launcher_provision_a_token_on_every_node():
    runbook = (CLUSTER / "README.md").read_text()
    assert "token auth is on" not in runbook, "ray start alone does not authenticate"
    assert "ray get-auth-token --generate" in runbook and runbook.count("RAY_AUTH_MODE=token") >= 2
    launcher = _load("ray-up-gpu.yaml")
    assert "~/.ray/auth_token" in launcher["file_mounts"], "the token reaches every node"
    for commands in (launcher["head_start_ray_commands"], launcher["worker_start_ray_commands"]):
        assert any("RAY_AUTH_MODE=token" in c and "ray start" in c for c in commands)


def test_the_image_and_manifests_are_locked_down():
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    assert "@sha256:" in dockerfile and "\nUSER " in dockerfile and "requirements" in dockerfile
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".gradfuzz"} <= set(ignored)
    for name in ("kuberay-raycluster.yaml", "kuberay-rayjob.yaml"):
        text = (CLUSTER / name).read_text()
        assert ":latest" not in text and "runAsNonRoot: true" in text and "allowPrivilegeEscalation: false" in text
        assert "/dev/shm" in text and "RAY_AUTH_MODE" in text


def _docker_ignores(patterns: list[str], path: str) -> bool:
    """Docker's .dockerignore rule: a pattern matches a path or one of its parent directories, `*`
    within one path element, `**` any number of them (Go's filepath.Match plus `**`)."""
    import fnmatch

    def matches(pattern: list[str], parts: list[str]) -> bool:
        if not pattern:
            return not parts
        if pattern[0] == "**":
            return any(matches(pattern[1:], parts[k:]) for k in range(len(parts) + 1))
        return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and matches(pattern[1:], parts[1:])

    parts = path.split("/")
    return any(matches(p.split("/"), parts[:n]) for p in patterns for n in range(1, len(parts) + 1))


def test_dockerignore_keeps_nested_stores_and_caches_out_and_the_manifests_let_the_user_write_volumes():
    """Before: `*.arrow` and `.gradfuzz*` matched at the top only, so a store under examples/ (or a
    `.gradfuzz-demo` in a subdirectory) went into the image; and no pod set fsGroup, so uid 1000 could
    not write a fresh PersistentVolume (owned by root) and the first store write failed."""
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for path in ("examples/.gradfuzz/failures/segment-1.arrow", "sub/dir/.gradfuzz-demo/campaign.json",
                 "benchmarks/out/segment-2.arrows", "stray.arrow", "pkg/.venv/bin/python", "tests/.hypothesis/x",
                 ".git/HEAD", "gradfuzz/__pycache__/store.cpython-311.pyc"):
        assert _docker_ignores(patterns, path), path
    for path in ("gradfuzz/store.py", "cluster/entrypoint.sh", "cluster/requirements-gpu.lock", "pyproject.toml",
                 "examples/campaign.toml", "tests/corpus/bugs.py"):
        assert not _docker_ignores(patterns, path), path
    for name in ("kuberay-raycluster.yaml", "kuberay-rayjob.yaml"):
        document = _load(name)
        pods = [document["spec"]["rayClusterSpec"] if "rayClusterSpec" in document["spec"] else document["spec"]]
        specs = [pods[0]["headGroupSpec"]["template"]["spec"]]
        specs += [group["template"]["spec"] for group in pods[0]["workerGroupSpecs"]]
        if "submitterPodTemplate" in document["spec"]:
            specs.append(document["spec"]["submitterPodTemplate"]["spec"])
        for spec in specs:
            users = {c["securityContext"]["runAsUser"] for c in spec["containers"]}
            assert users == {1000} and spec["securityContext"]["fsGroup"] == 100, (name, spec["containers"][0]["name"])
