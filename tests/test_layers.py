"""The house: the core imports without TensorFlow, and no module imports from a layer above it."""

import ast
import os
import subprocess
import sys

from tests.conftest import REPO

# Lower layers never import higher ones. Core: pure numpy/pyarrow (values, math, storage, tools
# that read results). Edge: TensorFlow. Run: one check or replay. Orchestration: many checks.
LAYERS = {
    "core": {"categories", "options", "dtypes", "spec", "values", "simplicity", "durations", "batching", "report", "store", "oracle",
             "regions", "findings",
             "triage", "export", "config", "plans", "watchdog", "sweep_table"},
    "edge": {"_tf", "target", "planning", "engine", "expansion", "boundaries", "screen", "diagnosis", "strategies", "sweep_targets"},
    "run": {"judging", "shrinking", "probes", "warm", "checker", "replay", "regression", "html_report"},
    "orchestration": {"executors", "campaign", "gate", "api", "supervisor", "sweep"},
    "front": {"cli", "pytest_plugin", "dashboard", "__init__"},
}
RANK = {module: rank for rank, modules in enumerate(LAYERS.values()) for module in modules}


def _modules():
    for path in sorted((REPO / "gradfuzz").glob("*.py")):
        yield path.stem, path
    yield "strategies", REPO / "strategies" / "__init__.py"


def _imports(path, top_level_only):
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gradfuzz"):
            parts = node.module.split(".")
            if len(parts) > 1:
                yield parts[1]
            else:  # from gradfuzz import x
                yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (a.name.split(".")[1] for a in node.names if a.name.startswith("gradfuzz."))


def test_every_module_has_a_layer():
    assert {name for name, _ in _modules()} == set(RANK)


def test_no_module_imports_from_a_layer_above_it():
    upward = []
    for name, path in _modules():
        # The core may not reach above itself even lazily; other layers' lazy imports are front-end wiring.
        for imported in _imports(path, top_level_only=RANK[name] > 0):
            if imported in RANK and RANK[imported] > RANK[name]:
                upward.append(f"{name} → {imported}")
    assert upward == []


STORE_TOOLS_WITHOUT_TENSORFLOW = r"""
import sys
sys.modules["tensorflow"] = None  # `import tensorflow` now raises ImportError
import numpy as np
import gradfuzz, gradfuzz.oracle, gradfuzz.store, gradfuzz.triage, gradfuzz.export, gradfuzz.config
import gradfuzz.pytest_plugin, gradfuzz.strategies, gradfuzz.values, gradfuzz.cli
from gradfuzz.report import Finding
from gradfuzz.store import FailureStore, failure_row

finding = Finding(target="t", category="mismatch", explanation="x", inputs=[np.float64(1.5)],
                  count=3, signature="mismatch:0", region="(1, 2)")
with FailureStore(sys.argv[1]) as store:
    store.append_failures([failure_row(finding, target="pkg.mod:t", fingerprint="f", specs=["float64[]"], run_id="r")])
from click.testing import CliRunner
for args in (["store", "verify", sys.argv[1]], ["triage", sys.argv[1]]):
    result = CliRunner().invoke(gradfuzz.cli.main, args, catch_exceptions=False)
    print(args[0], result.exit_code, result.output.replace("\n", " "))
try:
    gradfuzz.check
except ImportError as error:
    print("check:", error)
assert "tensorflow" not in [m for m, v in sys.modules.items() if v is not None]
"""


def test_the_store_tools_work_without_tensorflow(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", STORE_TOOLS_WITHOUT_TENSORFLOW, str(tmp_path / "store")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("store 0") and "1 failure record(s) readable" in lines[0], lines
    assert lines[1].startswith("triage 0") and "pkg.mod:t" in lines[1] and "mismatch" in lines[1], lines
    assert lines[2].startswith("check:") and "tensorflow" in lines[2].lower(), lines
