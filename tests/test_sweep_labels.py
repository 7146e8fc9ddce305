"""The sweep's independent labeller (scripts/label_sweep.py) and the confusion matrix against a sweep result
(benchmarks/sweep_confusion.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_labeller_finds_three_correct_functions(tmp_path):
    labeller = _load(REPO / "scripts" / "label_sweep.py", "label_sweep_under_test")
    out = tmp_path / "labels.json"
    assert labeller.main(["--only", "tf.math.sin,tf.nn.relu,tf.math.log1p", "--out", str(out), "--quiet",
                          "--max-probes", "16"]) == 0
    labels = json.loads(out.read_text())
    assert set(labels) == {"tf.math.sin", "tf.nn.relu", "tf.math.log1p"}
    for name, row in labels.items():
        assert row["label"] == "correct", (name, row)
        assert row["probes"] > 0
        assert set(row["dtypes"]) == {"float32", "float64"}


def test_labeller_one_sided_range_at_a_kink():
    labeller = _load(REPO / "scripts" / "label_sweep.py", "label_sweep_under_test")
    mp = labeller.mp
    low, high = labeller.one_sided(lambda t: abs(t), mp.mpf(0))
    assert (float(low), float(high)) == (-1.0, 1.0)
    assert labeller.one_sided(lambda t: 1 / t if t != 0 else mp.mpf(0), mp.mpf(0)) is None  # a pole: not judged


SWEEP = {
    "version": 1, "sweep": "abc", "status": "finished", "modules": ["tensorflow.math"],
    "functions": [
        {"function": "tf.math.sin", "verdict": "pass", "target": "gradfuzz.sweep_targets:tf.math.sin", "findings": [], "notes": []},
        {"function": "tf.math.cos", "verdict": "fail", "target": "gradfuzz.sweep_targets:tf.math.cos",
         "findings": [{"category": "value", "count": 3, "where": "", "explanation": "off by 2"}], "notes": []},
        {"function": "tf.math.tan", "verdict": "pass", "target": "gradfuzz.sweep_targets:tf.math.tan", "findings": [],
         "notes": ["precision"]},
        {"function": "tf.math.xlogy", "verdict": "pass", "target": "gradfuzz.sweep_targets:tf.math.xlogy", "findings": [],
         "notes": []},
        {"function": "tf.math.cumprod", "verdict": "fail", "target": "gradfuzz.sweep_targets:tf.math.cumprod",
         "findings": [{"category": "non-finite", "count": 1, "where": "", "explanation": "nan"}], "notes": []},
        {"function": "tf.nn.softmax", "verdict": "skipped", "reason": "alias of tf.math.softmax (checked once)"},
        {"function": "tf.math.softmax", "verdict": "error", "target": "gradfuzz.sweep_targets:tf.math.softmax",
         "findings": [], "notes": []},
        {"function": "tf.math.angle", "verdict": "not-run", "target": "gradfuzz.sweep_targets:tf.math.angle", "findings": [],
         "notes": []},
        {"function": "mypkg.f", "verdict": "pass", "target": "mypkg:f", "findings": [], "notes": []},
    ],
}
LABELS = {
    "tf.math.sin": {"label": "correct", "category": None},
    "tf.math.cos": {"label": "correct", "category": None},
    "tf.math.tan": {"label": "correct", "category": None},
    "tf.math.xlogy": {"label": "bug", "category": "mismatch", "why": "0 at x = 0"},
    "tf.math.cumprod": {"label": "bug", "category": "mismatch"},
    "tf.math.softmax": {"label": "correct", "category": None},
    "tf.math.angle": {"label": "cannot-label", "category": None},
    "tf.math.erf": {"label": "correct", "category": None},  # not in the sweep at all
}


def test_confusion_matrix_of_a_tiny_sweep(tmp_path, capsys):
    confusion = _load(REPO / "benchmarks" / "sweep_confusion.py", "sweep_confusion_under_test")
    result = confusion.confusion(SWEEP, LABELS)
    m = result["matrix"]
    assert m["correct"] == {"pass": 1, "fail": 1, "note-only": 1, "error": 1, "not run": 1}
    assert m["bug"] == {"pass": 1, "fail": 1, "note-only": 0, "error": 0, "not run": 0}
    assert m["cannot-label"] == {"pass": 0, "fail": 0, "note-only": 0, "error": 0, "not run": 1}
    assert [a[0] for a in result["false_alarms"]] == ["tf.math.cos"]
    assert [a[0] for a in result["misses"]] == ["tf.math.xlogy"]
    assert result["other_category"] == [("tf.math.cumprod", "mismatch", "non-finite")]
    assert result["unlabelled"] == ["mypkg.f"]

    sweep_path, labels_path = tmp_path / "sweep.json", tmp_path / "labels.json"
    sweep_path.write_text(json.dumps(SWEEP))
    labels_path.write_text(json.dumps(LABELS))
    assert confusion.main([str(sweep_path), str(labels_path)]) == 0
    text = capsys.readouterr().out
    assert "false alarms (labelled correct, gradfuzz fail): 1" in text
    assert "tf.math.cos" in text and "misses (labelled bug, gradfuzz pass or note-only): 1" in text
    assert confusion.main([str(labels_path), str(labels_path)]) == 2  # not a sweep result
