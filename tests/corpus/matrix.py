"""Confusion matrices for the corpus tests: a label per target against gradfuzz's primary verdict."""

from collections import Counter
from collections.abc import Iterator, Sequence

import gradfuzz


def primary(report: gradfuzz.CheckReport) -> str:
    """The first (most specific) failure's category, or "pass"."""
    return report.failures[0].category if report.failures else "pass"


def confusion_matrix(title: str, rows: Sequence[str], columns: Sequence[str]) -> Iterator[Counter]:
    """A module fixture's body: yields a Counter of (label, verdict), prints it at teardown (pytest -s)."""
    matrix: Counter = Counter()
    yield matrix
    width = max(len(row) for row in rows)
    print(f"\n\n{title} (rows: label, columns: primary verdict)")
    print(" " * (width + 2) + " ".join(f"{c[:6]:>6s}" for c in columns))
    for row in rows:
        counts = [matrix[(row, got)] for got in columns]
        if any(counts):
            print(f"{row:>{width}s}  " + " ".join(f"{n:>6d}" for n in counts))
