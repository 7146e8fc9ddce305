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
