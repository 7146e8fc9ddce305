"""The trophy case (docs/BUGS.md): every reproduction script in scripts/bugs still reproduces its bug.

Each script runs in its own process, as a reader would run it, and exits 0 when the bug
reproduces, 3 when it does not (fixed upstream: an xfail carrying the script's output, a cue
to update docs/BUGS.md), 4 when the package it needs is not installed (a skip). A script
takes 5–10 s (importing TensorFlow), so the runs are marked slow.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUGS = REPO / "scripts" / "bugs"
BUGS_MD = REPO / "docs" / "BUGS.md"
SCRIPTS = sorted(p for p in BUGS.glob("*.py") if not p.name.startswith("_"))

REPRODUCES, NOT_REPRODUCED, PACKAGE_MISSING = 0, 3, 4


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_bug_reproduces(script):
    result = _run([str(script)])
    if result.returncode == PACKAGE_MISSING:
        pytest.skip(result.stdout.strip().splitlines()[-1])
    if result.returncode == NOT_REPRODUCED:
        pytest.xfail(f"{script.name} no longer reproduces (fixed upstream? update docs/BUGS.md):\n{result.stdout}")
    assert result.returncode == REPRODUCES, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-3000:]}"
    assert "BUG REPRODUCES" in result.stdout
    assert "true" in result.stdout  # the right value is printed beside the wrong one


@pytest.mark.slow
def test_tfp_script_without_tfp_exits_4():
    script = BUGS / "tfp_atan_difference.py"
    hide_tfp = ("import runpy, sys; sys.modules['tensorflow_probability'] = None; "
                f"sys.argv = [{str(script)!r}]; runpy.run_path({str(script)!r}, run_name='__main__')")
    result = _run(["-c", hide_tfp])
    assert result.returncode == PACKAGE_MISSING, result.stdout + result.stderr[-2000:]
    assert "tensorflow_probability not installed" in result.stdout


def test_every_script_has_an_entry_and_every_entry_a_script():
    text = BUGS_MD.read_text()
    named = set(re.findall(r"scripts/bugs/([a-z]\w*)\.py", text))
    assert named == {p.stem for p in SCRIPTS}
    for script in SCRIPTS:
        source = script.read_text()
        assert "def target(" in source, f"{script.name}: no target() for gradfuzz check"
        assert 'if __name__ == "__main__":' in source, f"{script.name}: runs on import"


CASES_FILE = '''
import tensorflow as tf

CASES = {
    "xlogy_x0": dict(fn=lambda x, y: tf.math.xlogy(x, y), inputs=["float32[]@0..3", "float32[]@0.1..3"], expect="fail"),
    "softplus": dict(fn=lambda x: tf.math.softplus(x), inputs=["float32[6]@-30..30"], expect="pass"),
    "relu6_kinks": dict(fn=lambda x: tf.nn.relu6(x), inputs=["float32[4]@-8..8"], expect="fail"),
}
'''


@pytest.mark.slow
def test_label_tf_builtins_labels_without_gradfuzz(tmp_path):
    """The independent labeller finds the bug, passes the controls, and flags a label it disagrees with."""
    cases = tmp_path / "cases.py"
    cases.write_text(CASES_FILE)
    result = _run([str(REPO / "scripts" / "label_tf_builtins.py"), str(cases), "--json"])
    assert result.returncode == 1, result.stdout + result.stderr[-2000:]  # relu6 is labelled "fail" on purpose
    rows = {row["case"]: row for row in json.loads(result.stdout)}
    assert rows["xlogy_x0"]["label"] == "bug" and rows["xlogy_x0"]["agrees"]
    assert rows["softplus"]["label"] == "correct" and rows["softplus"]["agrees"]
    assert rows["relu6_kinks"]["label"] == "correct" and not rows["relu6_kinks"]["agrees"]
    source = (REPO / "scripts" / "label_tf_builtins.py").read_text()
    assert "import gradfuzz" not in source and "from gradfuzz" not in source
