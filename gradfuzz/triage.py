"""Triage: stored failures grouped into distinct bugs.

A run's finding (the records one run wrote under one signature) is one bug, exactly as the
check reported it. Across runs, findings of one (target, category, argument) are one bug where
their regions — where the failing elements lie among the target's points of interest ("=0",
"(0, 1)", ...) — touch, so a bug at 0 and another below -95 found by different runs are two;
a smooth category (`approximation`) is one bug wherever it shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gradfuzz.categories import Category
from gradfuzz.regions import Region, describe
from gradfuzz.simplicity import batch_simplicity, simplicity
from gradfuzz.store import StoredFailure


@dataclass
class TriageGroup:
    target: str
    category: str
    argument: int | None
    regions: list[str]
    records: list[StoredFailure] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Occurrences: distinct runs that recorded this bug."""
        return len({r.run_id or r.id for r in self.records})

    @property
    def examples(self) -> int:
        """Failing examples across runs (each run's count once)."""
        per_run: dict[str, int] = {}
        for r in self.records:
            key = r.run_id or r.id
            per_run[key] = max(per_run.get(key, 0), r.count)
        return sum(per_run.values())

    @property
    def status(self) -> str:
        return "open" if any(r.status != "fixed" for r in self.records) else "fixed"

    @property
    def representative(self) -> StoredFailure:
        """The simplest input: fewest non-zero elements, then the smallest magnitudes."""
        ranks = _simplicities(self.records)
        return self.records[min(range(len(ranks)), key=ranks.__getitem__)]

    @property
    def where(self) -> str:
        """Every region the bug showed in (the records' own and those their runs saw), in words:
        touching ones merged, the whole line "everywhere"."""
        return describe(sorted({*self.regions, *(label for r in self.records for label in r.regions_seen)}))

    @property
    def signature(self) -> str:
        argument = "*" if self.argument is None else self.argument
        return f"{self.target}|{self.category}|arg{argument}|{' ∪ '.join(self.regions)}"


def triage(failures: list[StoredFailure]) -> list[TriageGroup]:
    """Group failures into distinct bugs, most frequent first.

    A run's finding is one bug: the records one run wrote under one signature (its representative,
    worst and per-region examples) stay together, as `gradfuzz check` reported them. Findings of
    several runs are one bug when they share target, category and argument and their regions touch
    (a smooth category's regions always do)."""
    findings: dict[tuple, list[StoredFailure]] = {}
    for failure in failures:
        findings.setdefault((failure.target, failure.run_id or failure.id, failure.signature), []).append(failure)
    by_kind: dict[tuple, list[list[StoredFailure]]] = {}
    for records in findings.values():
        first = records[0]
        by_kind.setdefault((first.target, first.category, first.argument), []).append(records)
    groups = []
    for (target, category, argument), members in by_kind.items():
        smooth = (c := Category.parse(category)) is not None and c.smooth
        for merged in _coalesce(members, smooth):
            regions = sorted({r.region or "*" for r in merged}, key=_along_the_line)
            groups.append(TriageGroup(target, category, argument, regions, merged))
    groups.sort(key=lambda g: (-g.count, g.target, g.category))
    return groups


def _interval(label: str) -> tuple[float, float] | None:
    region = Region.parse(label)
    return None if region is None else (region.low, region.high)


def _along_the_line(label: str) -> tuple[float, float, str]:
    """Regions in order along the line; labels that name no interval last."""
    interval = _interval(label)
    return (*(interval if interval is not None else (float("inf"), float("inf"))), label)


def _spans(records: list[StoredFailure]) -> list[tuple[float, float]]:
    """The intervals a run's finding showed in (its records' regions and the regions its run saw)."""
    labels = {label for r in records for label in (r.region or "*", *r.regions_seen)}
    return [interval for label in labels if (interval := _interval(label)) is not None]


def _coalesce(findings: list[list[StoredFailure]], smooth: bool) -> list[list[StoredFailure]]:
    """Merge runs' findings whose regions touch (all of them for a smooth category; those without a
    region together)."""
    if smooth:
        return [[r for records in findings for r in records]]
    parent = list(range(len(findings)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # Findings touch when an interval of one meets an interval of the other (closed intervals), and
    # all findings without a region touch. Connected components by one sweep along the line: an
    # interval starting before the running end of the intervals before it meets one of them.
    spans = [_spans(records) for records in findings]
    unplaced = [i for i, s in enumerate(spans) if not s]
    for i in unplaced[1:]:
        parent[root(i)] = root(unplaced[0])
    reach, last = float("-inf"), None
    for low, high, i in sorted((low, high, i) for i, s in enumerate(spans) for low, high in s):
        if last is not None and low <= reach:
            parent[root(i)] = root(last)
            reach = max(reach, high)
        else:
            reach = high
        last = i
    merged: dict[int, list[StoredFailure]] = {}
    for i, records in enumerate(findings):
        merged.setdefault(root(i), []).extend(records)
    return list(merged.values())


def _simplicity(record: StoredFailure) -> tuple[int, float]:
    return simplicity(record.inputs) if record.inputs else (0, 0.0)


def _simplicities(records: list[StoredFailure]) -> list[tuple[int, float]]:
    """`_simplicity` of every record, computed a batch at a time for records whose inputs share
    dtypes and shapes (the same numbers: each row is reduced as a batch of one is)."""
    import numpy as np

    ranks: list[tuple[int, float]] = [(0, 0.0)] * len(records)
    alike: dict[tuple, list[int]] = {}
    for k, record in enumerate(records):
        if record.inputs:
            alike.setdefault(tuple((np.asarray(x).dtype.str, np.shape(x)) for x in record.inputs), []).append(k)
    for members in alike.values():
        stacked = [np.stack([np.asarray(records[k].inputs[a]) for k in members]) for a in range(len(records[members[0]].inputs))]
        nonzero, magnitude = batch_simplicity(stacked)
        for row, k in enumerate(members):
            ranks[k] = (int(nonzero[row]), float(magnitude[row]))
    return ranks
