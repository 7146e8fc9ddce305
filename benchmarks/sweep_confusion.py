"""Confusion matrix of a `gradfuzz sweep` result against the independent labels (scripts/label_sweep.py).

    python benchmarks/sweep_confusion.py SWEEP.json [LABELS.json] [--also SWEEP2.json ...] [--json]

SWEEP.json is what ``gradfuzz sweep ... -o sweep.json`` (or ``STORE/sweep.json``) writes: a
``functions`` list of rows with ``function``, ``verdict`` (pass, fail, error, not-run, skipped,
pending, running), ``target`` (``gradfuzz.sweep_targets:<table name>`` for table entries),
``findings`` and ``notes``. LABELS.json (default benchmarks/sweep_labels.json) maps a sweep-table
name to ``{"label": "correct" | "bug" | "cannot-label", "category": ...}``.

A row is matched to a label by its table name (the target after ``gradfuzz.sweep_targets:``, so an
alias such as tf.nn.softmax counts as tf.math.softmax), else by its function name; each label is
counted once. Columns: gradfuzz *pass* (no finding, no note), *note-only* (passed with notes),
*fail*, *error*, *not run* (not-run, pending, running, skipped, or absent from the sweep). Prints
the matrix, then the false alarms (labelled correct, gradfuzz fail), the misses (labelled bug,
gradfuzz pass or note-only) and bugs found in another category than the label's.
``--also`` adds the rows of further sweeps (``tensorflow_probability.math`` swept apart, say).
Exit 0 always (a report), 2 on unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_LABELS = Path(__file__).resolve().parent / "sweep_labels.json"
ROWS = ("correct", "bug", "cannot-label")
COLUMNS = ("pass", "fail", "note-only", "error", "not run")
TARGET_PREFIX = "gradfuzz.sweep_targets:"


def outcome(row: dict | None) -> str:
    """A sweep row's column."""
    if row is None:
        return "not run"
    verdict = row.get("verdict", "")
    if verdict == "pass":
        return "note-only" if row.get("notes") else "pass"
    if verdict == "fail":
        return "fail"
    if verdict == "error":
        return "error"
    return "not run"


def table_name(row: dict) -> str:
    target = row.get("target") or ""
    return target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else row.get("function", "")


def match(sweep: dict, labels: dict) -> dict[str, dict | None]:
    """Label name -> its sweep row (the checked row that runs it, preferring the row of the same name)."""
    rows: dict[str, dict] = {}
    for row in sweep.get("functions", []):
        for key in (row.get("function", ""), table_name(row)):
            if key in labels:
                best = rows.get(key)
                if best is None or (best.get("verdict") == "skipped" and row.get("verdict") != "skipped"):
                    rows[key] = row
    return {name: rows.get(name) for name in labels}


def confusion(sweep: dict, labels: dict) -> dict:
    matched = match(sweep, labels)
    matrix = {r: dict.fromkeys(COLUMNS, 0) for r in ROWS}
    false_alarms, misses, other_category = [], [], []
    for name, label in labels.items():
        kind = label.get("label", "cannot-label")
        kind = kind if kind in ROWS else "cannot-label"
        row = matched[name]
        column = outcome(row)
        matrix[kind][column] += 1
        if kind == "correct" and column == "fail":
            found = ", ".join(sorted({f.get("category", "?") for f in row.get("findings", [])}))
            false_alarms.append((name, found, "; ".join(f.get("explanation", "")[:160] for f in row.get("findings", [])[:1])))
        elif kind == "bug" and column in ("pass", "note-only"):
            misses.append((name, label.get("category"), label.get("why", "")[:200]))
        elif kind == "bug" and column == "fail":
            found = {f.get("category", "?") for f in row.get("findings", [])}
            if label.get("category") and label["category"] not in found:
                other_category.append((name, label["category"], ", ".join(sorted(found))))
    unlabelled = sorted({row.get("function", "") for row in sweep.get("functions", [])
                         if row.get("verdict") != "skipped" and row.get("function") not in labels
                         and table_name(row) not in labels})
    return {"matrix": matrix, "false_alarms": false_alarms, "misses": misses, "other_category": other_category,
            "unlabelled": unlabelled}


def render(result: dict) -> str:
    matrix = result["matrix"]
    width = max(len(c) for c in COLUMNS) + 2
    lines = ["label \\ gradfuzz".ljust(18) + "".join(c.rjust(width) for c in COLUMNS) + "total".rjust(width)]
    for r in ROWS:
        cells = matrix[r]
        lines.append(r.ljust(18) + "".join(str(cells[c]).rjust(width) for c in COLUMNS) + str(sum(cells.values())).rjust(width))
    lines.append("")
    lines.append(f"false alarms (labelled correct, gradfuzz fail): {len(result['false_alarms'])}")
    lines += [f"  {name}: {found} — {why}" for name, found, why in result["false_alarms"]]
    lines.append(f"misses (labelled bug, gradfuzz pass or note-only): {len(result['misses'])}")
    lines += [f"  {name}: {category} — {why}" for name, category, why in result["misses"]]
    if result["other_category"]:
        lines.append(f"bugs found in another category: {len(result['other_category'])}")
        lines += [f"  {name}: labelled {label}, gradfuzz {found}" for name, label, found in result["other_category"]]
    if result["unlabelled"]:
        lines.append(f"checked by the sweep but not labelled: {len(result['unlabelled'])} ({', '.join(result['unlabelled'][:20])}"
                     + (", ..." if len(result["unlabelled"]) > 20 else "") + ")")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="the sweep's JSON (gradfuzz sweep -o sweep.json, or STORE/sweep.json)")
    parser.add_argument("labels", nargs="?", default=str(DEFAULT_LABELS))
    parser.add_argument("--also", action="append", default=[], metavar="SWEEP.json", help="rows of another sweep, added")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    opts = parser.parse_args(argv)
    try:
        sweeps = [json.loads(Path(path).read_text()) for path in (opts.sweep, *opts.also)]
        labels = json.loads(Path(opts.labels).read_text())
    except (OSError, json.JSONDecodeError) as error:
        print(f"cannot read the inputs: {error}", file=sys.stderr)
        return 2
    for path, one in zip((opts.sweep, *opts.also), sweeps):
        if not isinstance(one, dict) or "functions" not in one:
            print(f"{path} is not a sweep result (no 'functions' list)", file=sys.stderr)
            return 2
    sweep = {**sweeps[0], "functions": [row for one in sweeps for row in one["functions"]]}
    result = confusion(sweep, labels)
    print(json.dumps(result, indent=1) if opts.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
