"""Every command the README documents exists, with every flag it shows (#29); the first page's
commands run, as a newcomer would type them, in a temporary copy of the examples.

The shell commands are read from the README's fenced ``bash`` blocks. For each ``gradfuzz <command>``
named there, ``gradfuzz <command> --help`` must succeed and list every ``--flag`` the README writes
after it (a renamed command or flag fails here). The cheap commands of the first page then run for
real with small budgets; ones that need a cluster, the network or minutes (``scripts/*.sh``, Ray
campaigns, sweeps of TensorFlow) are only checked for existence.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradfuzz.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def shell_commands(text: str = README) -> list[str]:
    """The logical command lines of the fenced bash blocks (continuation lines joined, comments cut)."""
    commands: list[str] = []
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, re.S):
        for line in block.splitlines():
            code = re.split(r"\s#\s", line, maxsplit=1)[0].rstrip()
            if not code.strip():
                continue
            if line[:1].isspace() and commands:  # a usage synopsis wrapped onto the next line
                commands[-1] += " " + code.strip()
            else:
                commands.append(code.strip())
    return commands


def gradfuzz_commands() -> dict[str, set[str]]:
    """{command (``check``, ``store verify``, …): the flags the README writes for it}."""
    found: dict[str, set[str]] = {}
    for command in shell_commands():
        words = command.split()
        if words[0] != "gradfuzz":
            continue
        name = " ".join(words[1:3]) if words[1] == "store" else words[1]
        found.setdefault(name, set()).update(re.findall(r"(?<![\w-])(--[a-z][\w-]*|-[a-zA-Z])(?=[\s=\]]|$)", command))
    return found


def test_the_readme_names_the_commands_a_newcomer_needs():
    commands = shell_commands()
    assert "bash scripts/demo.sh" in commands and "bash scripts/test.sh" in commands
    assert "source .venv/bin/activate" in commands
    assert not any("pip install 'gradfuzz" in c or 'pip install "gradfuzz' in c for c in commands), \
        "gradfuzz is not on PyPI: install from a clone (pip install -e '.[cpu]')"
    assert {"check", "replay", "triage", "report", "export", "export-tests", "campaign", "gate", "store verify",
            "dashboard", "sweep"} <= set(gradfuzz_commands())


@pytest.mark.parametrize("command", sorted(gradfuzz_commands()))
def test_every_documented_command_and_flag_exists(command):
    result = CliRunner().invoke(main, [*command.split(), "--help"], terminal_width=200)
    assert result.exit_code == 0, f"`gradfuzz {command}` is in the README but not in the CLI:\n{result.output}"
    for flag in sorted(gradfuzz_commands()[command]):
        if flag in ("-h",):
            continue
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", result.output), \
            f"the README shows `gradfuzz {command} {flag}`, which `gradfuzz {command} --help` does not list"


def test_the_pytest_plugin_option_the_readme_shows_exists():
    (line,) = [c for c in shell_commands() if c.startswith("pytest ")]
    flag = re.search(r"--[\w-]+", line)[0]
    result = subprocess.run([sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"], capture_output=True,
                            text=True, timeout=300, cwd=ROOT)
    assert flag in result.stdout


def test_the_scripts_the_readme_runs_exist():
    for command in shell_commands():
        if command.startswith("bash "):
            assert (ROOT / command.split()[1]).is_file(), command


# The first page's commands, run in order in a temporary copy: cheap, and what a newcomer types first.
FIRST_PAGE_RUNS = ("gradfuzz check", "gradfuzz replay", "gradfuzz triage", "gradfuzz export-tests")


@pytest.mark.slow
def test_the_first_page_commands_run_as_documented(tmp_path):
    first_page = README.split("\n## Usage")[0]
    runnable = [c for c in shell_commands(first_page) if c.startswith(FIRST_PAGE_RUNS)]
    assert [c.split()[1] for c in runnable] == ["check", "replay", "triage", "export-tests"], runnable
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    gradfuzz = shutil.which("gradfuzz", path=str(Path(sys.executable).parent)) or "gradfuzz"
    outputs = {}
    for command in runnable:
        words = shlex.split(command)
        run = subprocess.run([gradfuzz, *words[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=600)
        outputs[words[1]] = run
        # check and replay find my_op's approximation (exit 1); triage and export-tests succeed (0).
        expected = 1 if words[1] in ("check", "replay") else 0
        assert run.returncode == expected, (command, run.stdout[-2000:], run.stderr[-2000:])
    assert "✗ approximation" in outputs["check"].stdout and "failing everywhere" in outputs["check"].stdout
    exported = (tmp_path / "test_gradients.py").read_text()
    assert "gradfuzz.assert_gradient(my_op, x)" in exported
