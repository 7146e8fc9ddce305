"""Triage: stored failures grouped into distinct bugs.

A bug's signature is (target, category, argument, region), where a region is where the
failing element lies among the target's points of interest ("=0", "(0, 1)", ...).
Regions that touch are coalesced, so one bug that spans the line is one group while a
bug at 0 and another below -95 in the same function are two. An `approximation` (a small,
smooth error) is one bug wherever it shows, so its regions are not split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gradfuzz.regions import Region, describe
from gradfuzz.simplicity import simplicity
from gradfuzz.store import StoredFailure

SMOOTH_CATEGORIES = ("approximation",)


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
        return min(self.records, key=_simplicity)

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
    """Group failures into distinct bugs, most frequent first."""
    by_key: dict[tuple, list[StoredFailure]] = {}
    for failure in failures:
        by_key.setdefault((failure.target, failure.category, failure.argument), []).append(failure)
    groups = []
    for (target, category, argument), records in by_key.items():
        if category in SMOOTH_CATEGORIES:  # one smooth error spans the line: regions do not split it
            groups.append(TriageGroup(target, category, argument, sorted({r.region or "*" for r in records}), records))
            continue
        for regions, members in _coalesce(records):
            groups.append(TriageGroup(target, category, argument, regions, members))
    groups.sort(key=lambda g: (-g.count, g.target, g.category))
    return groups


def _interval(label: str) -> tuple[float, float] | None:
    region = Region.parse(label)
    return None if region is None else (region.low, region.high)


def _coalesce(records: list[StoredFailure]) -> list[tuple[list[str], list[StoredFailure]]]:
    """Split records into runs of touching regions (records without a region form one group)."""
    labelled: dict[str, list[StoredFailure]] = {}
    for record in records:
        labelled.setdefault(record.region or "*", []).append(record)
    spans = sorted(((interval, label) for label in labelled if (interval := _interval(label))), key=lambda s: s[0])
    groups: list[tuple[list[str], list[StoredFailure]]] = []
    reach = -math.inf
    for (low, high), label in spans:
        if groups and low <= reach:
            groups[-1][0].append(label)
            groups[-1][1].extend(labelled[label])
        else:
            groups.append(([label], list(labelled[label])))
        reach = max(reach, high)
    loose = [r for label, rs in labelled.items() if _interval(label) is None for r in rs]
    if loose:
        groups.append((sorted({r.region or "*" for r in loose}), loose))
    return groups


def _simplicity(record: StoredFailure) -> tuple[int, float]:
    return simplicity(record.inputs) if record.inputs else (0, 0.0)
