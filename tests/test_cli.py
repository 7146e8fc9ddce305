"""The command line as a user meets it: exit codes, messages, JSON, the store, replay."""

import json
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
    assert "gradfuzz[cpu]" in result.stderr and "gradfuzz[gpu]" in result.stderr


@pytest.mark.slow
def test_strategies_install_under_gradfuzz_only(tmp_path):
    code = "import importlib.util as u; print(u.find_spec('strategies') is None, u.find_spec('gradfuzz.strategies') is not None)"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["True", "True"], result.stderr
