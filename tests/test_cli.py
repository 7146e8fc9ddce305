"""The command line as a user meets it: exit codes, messages, JSON, the store, replay."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLES, REPO, TARGETS

PLANTED = str(TARGETS / "planted.py")


def test_check_finds_the_seed_bug_stores_it_and_replay_follows_the_fix(cli, tmp_path):
    shutil.copy(EXAMPLES / "seed_ops.py", tmp_path / "ops.py")
    result = cli("check", "ops.py:my_op", "--input", "float64[]", "--max-examples", "2048", "--seed", "1", "--format", "json")
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    (target,) = document["targets"]
    assert target["verdict"] == "fail" and target["examples"] == 2048
    (failure,) = target["failures"]
    assert failure["category"] == "approximation"
    assert {"inputs", "custom", "reference", "abs_error", "rel_error", "ulp_error", "explanation"} <= failure.keys()
    assert (tmp_path / ".gradfuzz" / "failures").is_dir(), "the default store is .gradfuzz/ in the working directory"

    replay = cli("replay", "--format", "json")
    assert replay.exit_code == 1
    assert {r["status"] for r in json.loads(replay.stdout)["results"]} == {"reproduced"}

    source = (tmp_path / "ops.py").read_text()
    fixed = source.replace(
        "dx = (tf.math.sin(x + 0.001) - tf.math.sin(x)) / 0.001", "dx = tf.math.cos(x)"
    )
    assert fixed != source
    (tmp_path / "ops.py").write_text(fixed)
    replay = cli("replay", "--format", "json")
    assert replay.exit_code == 0, replay.output
    assert {r["status"] for r in json.loads(replay.stdout)["results"]} == {"fixed"}
    text = cli("replay")
    assert "fixed" in text.stdout and text.exit_code == 0


def test_declared_specs_and_whole_files(cli):
    result = cli("check", str(EXAMPLES / "seed_ops.py"), "--max-examples", "512", "--seed", "2", "--format", "json")
    targets = {t["target"].split(":")[-1]: t["verdict"] for t in json.loads(result.stdout)["targets"]}
    assert targets == {"my_op": "fail", "my_op_fixed": "pass", "branched_op": "pass", "type_mismatch_op": "fail"}
    assert result.exit_code == 1


def test_clean_target_exits_zero_with_a_text_report(cli):
    result = cli("check", f"{EXAMPLES / 'seed_ops.py'}:my_op_fixed", "--max-examples", "1024")
    assert result.exit_code == 0, result.output
    assert "PASS" in result.stdout and "gradfuzz summary" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["no_such_module_xyz:f", "-i", "float32[]"], "Cannot import module 'no_such_module_xyz'"),
        (["missing/file.py:f", "-i", "float32[]"], "No such file"),
        ([f"{PLANTED}:not_a_function", "-i", "float32[]"], "is a int, not a function"),
        ([f"{PLANTED}:nope", "-i", "float32[]"], "has no attribute 'nope'"),
        ([f"{PLANTED}:grad_raises", "-i", "float32"], "Did you mean 'float32[]'"),
        ([f"{PLANTED}:grad_raises", "-i", "float32[]", "-i", "float32[]"], "takes 1 positional argument(s) but 2"),
        ([f"{PLANTED}:grad_raises"], "no input specs"),
        ([f"{PLANTED}:grad_raises", "-i", "float32[]", "--budget", "soon"], "Cannot read the duration"),
        # issue #27: before, --budget 0s checked for 0 s and passed on no evidence
        ([f"{PLANTED}:grad_raises", "-i", "float32[]", "--budget", "0s"], "0s is too short to check anything: give at least 1s, e.g. --budget 30s"),
    ],
)
def test_bad_input_is_exit_2_with_a_message_that_says_what_to_do(cli, args, message):
    result = cli("check", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split()), result.stderr


def test_a_raising_forward_is_a_finding_with_exit_1(cli):
    result = cli("check", f"{PLANTED}:forward_raises", "-i", "float32[]", "--max-examples", "64", "--format", "json")
    assert result.exit_code == 1
    (failure,) = json.loads(result.stdout)["targets"][0]["failures"]
    assert failure["category"] == "exception" and "always fails" in failure["explanation"]


def test_replay_of_a_missing_store_is_exit_2(cli):
    result = cli("replay", "nowhere")
    assert result.exit_code == 2 and "No gradfuzz store" in result.stderr


def test_replay_reports_a_target_that_disappeared_and_runs_the_others(cli, tmp_path):
    shutil.copy(EXAMPLES / "seed_ops.py", tmp_path / "a.py")
    shutil.copy(EXAMPLES / "seed_ops.py", tmp_path / "b.py")
    for name in ("a.py", "b.py"):
        cli("check", f"{name}:my_op", "--max-examples", "256", "--seed", "3")
    (tmp_path / "a.py").unlink()
    result = cli("replay", "--format", "json")
    statuses = sorted((r["target"], r["status"]) for r in json.loads(result.stdout)["results"])
    assert {s for t, s in statuses if t.startswith("a.py")} == {"target-missing"}
    assert {s for t, s in statuses if t.startswith("b.py")} == {"reproduced"}
    assert result.exit_code == 1


def test_a_renamed_target_with_open_failures_fails_replay_and_gate(cli, tmp_path):
    """Before: target-missing counted as skipped, so moving a buggy target made replay and gate pass."""
    shutil.copy(EXAMPLES / "seed_ops.py", tmp_path / "a.py")
    cli("check", "a.py:my_op", "--max-examples", "256", "--seed", "3")
    (tmp_path / "a.py").rename(tmp_path / "renamed.py")
    result = cli("replay")
    assert result.exit_code == 1
    assert "name a target that cannot be loaded (a.py:my_op" in " ".join(result.output.split())
    (tmp_path / "gate.toml").write_text('store = ".gradfuzz"\n[[targets]]\ntarget = "renamed.py:my_op_fixed"\n')
    gate = cli("gate", "gate.toml", "--budget", "3s", "--junit", "junit.xml")
    assert gate.exit_code == 1 and "Gate FAILED" in gate.output
    assert "target-missing" in (tmp_path / "junit.xml").read_text()


@pytest.mark.slow
def test_the_installed_console_script_runs(tmp_path):
    """The real entry point, in a fresh process, outside the repository."""
    executable = shutil.which("gradfuzz", path=str(REPO / ".venv" / "bin")) or shutil.which("gradfuzz")
    assert executable, "the gradfuzz console script is installed"
    result = subprocess.run(
        [executable, "check", f"{EXAMPLES / 'seed_ops.py'}:my_op", "--max-examples", "1024", "--format", "json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["targets"][0]["failures"][0]["category"] == "approximation"


@pytest.mark.slow
def test_importing_without_tensorflow_names_the_extras(tmp_path):
    # The package itself imports without TensorFlow (its store tools need none); the first use
    # that needs TensorFlow says which extra to install.
    code = "import sys; sys.modules['tensorflow'] = None; import gradfuzz; gradfuzz.check"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "pip install -e '.[cpu]'" in result.stderr and "pip install -e '.[gpu]'" in result.stderr


@pytest.mark.slow
def test_strategies_install_under_gradfuzz_only(tmp_path):
    code = "import importlib.util as u; print(u.find_spec('strategies') is None, u.find_spec('gradfuzz.strategies') is not None)"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["True", "True"], result.stderr


# -- issue #17: a check keeps what it found -------------------------------------------------------


def test_an_unwritable_store_fails_before_any_fuzzing(cli, tmp_path, monkeypatch):
    """Before: the whole budget was spent, then the write failed and no report was printed."""
    import gradfuzz.checker

    started = []
    monkeypatch.setattr(gradfuzz.checker.TargetCheck, "run", lambda self: started.append(self) or None)
    (tmp_path / "a-file").write_text("not a directory")
    result = cli("check", f"{EXAMPLES}/seed_ops.py:my_op", "--budget", "10m", "--store", str(tmp_path / "a-file" / "store"))
    assert result.exit_code == 2 and "Cannot write to the store" in result.output
    assert started == [], "no target was fuzzed"


@pytest.mark.slow
def test_a_check_killed_with_sigkill_keeps_the_failures_it_found(tmp_path):
    """Each new failure is appended (fsynced) when found. Before: written only when the target
    finished, so a kill (or the OOM killer) mid-check lost them all."""
    import signal
    import time

    from gradfuzz.store import FailureStore

    store = tmp_path / "store"
    process = subprocess.Popen([sys.executable, "-m", "gradfuzz.cli", "check", "examples/seed_ops.py:my_op",
                                "--budget", "10m", "--store", str(store)], cwd=REPO, env={**os.environ, "CI": "true"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while not (store.is_dir() and FailureStore(store).read().failures):  # the event: a record is in the store
            assert process.poll() is None and time.monotonic() < deadline, "no failure was stored while the check ran"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    result = FailureStore(store).read()
    assert {f.category for f in result.failures} >= {"approximation"}
    assert all(f.target.endswith("my_op") for f in result.failures)


def test_replay_imports_only_the_working_directorys_code_unless_the_store_is_trusted(cli, tmp_path):
    """A store names the code it replays; before, replay imported any file or module a record named."""
    import os

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    marker = tmp_path / "imported"
    (outside / "evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
                                     + (EXAMPLES / "seed_ops.py").read_text())
    evil = f"{outside / 'evil.py'}:my_op"
    assert cli("check", evil, "--max-examples", "256", "--seed", "3", "--store", str(tmp_path / "s")).exit_code == 1
    marker.unlink()
    project = tmp_path / "project"
    project.mkdir()
    os.chdir(project)
    refused = json.loads(cli("replay", str(tmp_path / "s"), "--format", "json").stdout)["results"]
    assert {r["status"] for r in refused} == {"target-missing"}
    assert all("not imported" in r["detail"] and "--trust-store" in r["detail"] for r in refused)
    assert not marker.exists(), "nothing outside the working directory was imported"
    trusted = cli("replay", str(tmp_path / "s"), "--trust-store", "--format", "json")
    assert marker.exists() and {r["status"] for r in json.loads(trusted.stdout)["results"]} == {"reproduced"}


# -- issue #27: fail closed ------------------------------------------------------------------------

_LOG = "import tensorflow as tf\n\n\ndef log(x):\n    return tf.math.log(x)\n"


def test_a_check_whose_every_example_is_outside_the_domain_is_an_error_not_a_pass(cli, tmp_path):
    """log on [-10, -1]: every forward is NaN, every example skipped. Before: verdict pass, exit 0."""
    (tmp_path / "logs.py").write_text(_LOG)
    result = cli("check", "logs.py:log", "-i", "float64[3]@-10..-1", "--max-examples", "256", "--seed", "1", "--format", "json")
    assert result.exit_code != 0
    (report,) = json.loads(result.stdout)["targets"]
    assert report["verdict"] == "error" and report["skipped_outside_domain"] == report["examples"] == 256
    assert "outside the forward's domain" in report["error"] and "@LO..HI" in report["error"]
    fine = cli("check", "logs.py:log", "-i", "float64[3]@0.5..10", "--max-examples", "256", "--seed", "1", "--format", "json")
    assert fine.exit_code == 0, fine.output


def test_a_full_disk_during_check_is_exit_2_with_the_store_message(cli, tmp_path, monkeypatch):
    """Writes fail with ENOSPC once fuzzing found something. Before: the StoreError was raised inside
    Hypothesis, which reported a FlakyFailure (an ExceptionGroup traceback) and the command exited 1."""
    import errno

    import gradfuzz.store as store_module

    monkeypatch.setenv("GRADFUZZ_IN_PROCESS", "1")  # the monkeypatch lives in this process

    def full(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store_module.os, "fsync", full)
    result = cli("check", f"{EXAMPLES}/seed_ops.py:my_op", "-i", "float64[]", "--max-examples", "4096", "--seed", "5",
                 "--store", str(tmp_path / "store"))
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert "Writing to the store segment" in message and "No space left on device" in message
    assert "Free space on that disk (or pass another --store DIR), then run again." in message
    assert "Traceback" not in result.output and "FlakyFailure" not in result.output


_NOISY = ("import os\nimport tensorflow as tf\n\n\ndef noisy(x):\n    print('noise ' * 350_000)  # 2 MB per trace\n"
          "    os.write(1, b'{\"not\": \"the report\"}\\n')\n    return tf.sin(x)\n")


@pytest.mark.parametrize("in_process", ["1", ""])
def test_json_output_stays_valid_when_the_target_prints_to_stdout(tmp_path, in_process):
    """Before: 2 MB of the target's print() (and a C-level write to fd 1) went into the JSON on stdout.
    In process and in the supervised worker alike."""
    (tmp_path / "noisy.py").write_text(_NOISY)
    env = {k: v for k, v in os.environ.items() if k != "GRADFUZZ_IN_PROCESS"}
    result = subprocess.run([sys.executable, "-m", "gradfuzz.cli", "check", "noisy.py:noisy", "-i", "float64[]",
                             "--max-examples", "256", "--seed", "1", "--format", "json", "--store", str(tmp_path / "s")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env={**env, "PYTHONPATH": str(REPO), **({"GRADFUZZ_IN_PROCESS": "1"} if in_process else {})})
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads(result.stdout)
    assert document["ok"] and document["targets"][0]["target"] == "noisy.py:noisy"
    assert "noise noise" in result.stderr, "the target's output is kept, on stderr"


def test_a_full_disk_in_the_supervised_worker_is_exit_2_too(tmp_path):
    """The same on a real full disk (a 64 KiB tmpfs, root only), with the check in its supervised worker:
    before, the worker's StoreError became the report's error text (exit 1), or a seal error that
    hid it."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        (disk / "filler").write_bytes(bytes(52_000))
        result = subprocess.run([sys.executable, "-m", "gradfuzz.cli", "check", "examples/seed_ops.py:my_op", "-i", "float64[]",
                                 "--max-examples", "20000", "--seed", "5", "--format", "json", "--store", str(disk / "store")],
                                cwd=REPO, capture_output=True, text=True, timeout=600,
                                env={k: v for k, v in os.environ.items() if k != "GRADFUZZ_IN_PROCESS"})
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
    message = " ".join(result.stderr.split())
    assert result.returncode == 2, message[-3000:]
    assert "No space left on device. The 0 record(s) written before are kept. Free space on that disk" in message
