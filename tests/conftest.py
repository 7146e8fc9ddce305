import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
TARGETS = Path(__file__).resolve().parent / "targets"

# Tests must not depend on a Hypothesis database (CI sets CI=true, which disables it too).
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(REPO / ".hypothesis"))


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run the gradfuzz CLI in-process from a scratch working directory."""
    from click.testing import CliRunner

    from gradfuzz.cli import main

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run
