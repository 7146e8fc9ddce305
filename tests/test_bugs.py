"""The trophy case (docs/BUGS.md): every reproduction script in scripts/bugs still reproduces its bug.

Each script runs in its own process, as a reader would run it, and exits 0 when the bug
reproduces, 3 when it does not (fixed upstream: an xfail carrying the script's output, a cue
to update docs/BUGS.md), 4 when the package it needs is not installed (a skip). A script
takes 5–10 s (importing TensorFlow), so the runs are marked slow.
"""

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
