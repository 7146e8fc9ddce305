"""Input regions: where a value lies among a target's points of interest.

One rule for labels and intervals, shared by the checker's findings (`Region.of`), triage
(`Region.parse`, to coalesce touching regions) and the screen (which computes the same region
in the graph as an integer: 2i+1 on the i-th point, 2i between points i-1 and i).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_INTERVAL = re.compile(r"\((\S+), (\S+)\)")


@dataclass(frozen=True, order=True)
class Region:
    """A closed point (``low == high``, label ``=0``) or the open interval between two neighbouring
    points of interest (label ``(0, 1)``; ±inf beyond the outermost ones)."""

    low: float
    high: float

    @classmethod
    def of(cls, value: float, points: Sequence[float]) -> Region:
        """The region of ``value`` among ``points`` (-0.0 and 0.0 are one point).

        >>> str(Region.of(0.5, [0.0, 1.0, -1.0])), str(Region.of(-0.0, [0.0])), str(Region.of(7.0, [0.0, 1.0]))
        ('(0, 1)', '=0', '(1, inf)')
        """
        value = float(value) + 0.0
        if value in points:
            return cls(value, value)
        below = [p for p in points if p < value]
        above = [p for p in points if p > value]
        return cls(max(below) if below else -np.inf, min(above) if above else np.inf)

    @classmethod
    def parse(cls, label: str) -> Region | None:
        """The region a label names; None for labels that name none (``*``, ``mode=eager``).

        >>> Region.parse("(0, 1)"), Region.parse("=-1"), Region.parse("*")
        (Region(low=0.0, high=1.0), Region(low=-1.0, high=-1.0), None)
        """
        if label.startswith("="):
            try:
                value = float(label[1:])
            except ValueError:
                return None
            return cls(value, value)
        match = _INTERVAL.fullmatch(label)
        return cls(float(match[1]), float(match[2])) if match else None

    def __str__(self) -> str:
        return f"={self.low:g}" if self.low == self.high else f"({self.low:g}, {self.high:g})"


def region_label(value: float, points: Sequence[float]) -> str:
    """`Region.of` as its label: "=0" on a point, "(0, 1)" between two.

    >>> region_label(0.5, [0.0, 1.0, -1.0])
    '(0, 1)'
    """
    return str(Region.of(value, points))


def describe(labels: Sequence[str]) -> str:
    """The union of region labels as a person reads it: touching pieces merged into intervals
    (``(-1, 0) ∪ =0 ∪ (0, 1)`` is ``in (-1, 1)``; pieces that share an endpoint merge even if the point
    itself was not drawn), a point ``at 0``, a short interval centred on a point ``near 0``, the whole line
    ``everywhere``; labels that name no region (``*``) read ``anywhere`` unless real regions are there too.
    It follows "failing": "failing everywhere", "failing at 0, in (2, inf)".

    >>> describe(["(-0.001, 0)", "(-1, -0.001)", "(-inf, -1)", "(0, 0.001)", "(1, inf)", "=-1", "=0", "=1", "(0.001, 1)"])
    'everywhere'
    >>> describe(["=0", "(0, 1)", "(2, inf)"]), describe(["=0"]), describe(["=0", "(-1, -0.5)", "=2", "(2, inf)"])
    ('in [0, 1), in (2, inf)', 'at 0', 'in (-1, -0.5), at 0, in [2, inf)')
    >>> describe(["(-0.001, 0)", "=0", "(0, 0.001)"]), describe(["(-1, 0)"]), describe(["*"])
    ('near 0', 'in (-1, 0)', 'anywhere')
    """
    pieces = []  # (low, high, low closed, high closed)
    others = []
    for label in labels:
        region = Region.parse(label)
        if region is None:
            others.append(label)
        else:
            closed = region.low == region.high
            pieces.append((region.low, region.high, closed, closed))
    merged: list[list] = []
    for low, high, low_closed, high_closed in sorted(pieces, key=lambda p: (p[0], not p[2])):
        if merged:
            last = merged[-1]
            touches = low <= last[1]  # sharing an endpoint: a single point unobserved is no gap
            if touches:
                if high > last[1] or (high == last[1] and high_closed):
                    last[1], last[3] = high, high_closed or (high == last[1] and last[3])
                continue
        merged.append([low, high, low_closed, high_closed])
    if len(merged) == 1 and merged[0][0] == -np.inf and merged[0][1] == np.inf:
        return "everywhere"
    points = {p[0] for p in pieces} | {p[1] for p in pieces}  # points of interest the labels name
    text = [_in_words(*piece, points) for piece in merged]
    if not text:
        return "anywhere" if others else ""
    return ", ".join(text + [o for o in sorted(set(others)) if o != "*"])


NEAR = 0.01  # an interval centred on a point of interest, at most this wide relative to max(1, |point|), is "near" it


def _in_words(low: float, high: float, low_closed: bool, high_closed: bool, points: set[float]) -> str:
    if low == high:
        return f"at {low:g}"
    centre = (low + high) / 2
    if np.isfinite(centre) and centre in points and high - low <= 2 * NEAR * max(1.0, abs(centre)):
        return f"near {centre + 0.0:g}"
    return f"in {'[' if low_closed else '('}{low:g}, {high:g}{']' if high_closed else ')'}"


def region_labels(values: np.ndarray, points: Sequence[float]) -> set[str]:
    """The labels of the regions ``values`` fall in, vectorised (`region_label` for many values)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1) + 0.0
    values = values[~np.isnan(values)]
    if not values.size:
        return set()
    ordered = np.unique(np.asarray(points, dtype=np.float64) + 0.0)
    if not ordered.size:
        return {str(Region(-np.inf, np.inf))}
    on_point = np.isin(values, ordered)
    labels = {f"={p:g}" for p in np.unique(values[on_point])}
    slot = np.searchsorted(ordered, values[~on_point])  # between ordered[slot-1] and ordered[slot]
    bounds = np.concatenate([[-np.inf], ordered, [np.inf]])
    labels |= {str(Region(bounds[k], bounds[k + 1])) for k in np.unique(slot)}
    return labels
