"""Durations as people write them: ``30s``, ``5m``, ``1.5h``."""

from __future__ import annotations

import re


def parse_duration(text: str | float | int | None) -> float | None:
    """``"30s"``, ``"5m"``, ``"1.5h"``, ``"250ms"`` or a number of seconds.

    >>> parse_duration("5m")
    300.0
    """
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(ms|s|m|h|d)?\s*", text)
    if not match:
        raise ValueError(f"Cannot read the duration {text!r}: use a number with a unit, e.g. 30s, 5m, 2h, 1d or 500ms.")
    return float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}[match[2]]
