"""How simple an input looks to a person: which example of a finding is shown first.

Pure numpy and exact (no exp/log: those are CPU-dispatched and round differently on
different vector units), so the same examples rank the same on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def magnitude_log2(values: np.ndarray) -> np.ndarray:
    """A piecewise-linear log2(1 + |x|), exact on every machine (0 at 0, monotone in |x|)."""
    with np.errstate(all="ignore"):
        fraction, exponent = np.frexp(1.0 + np.abs(np.asarray(values, dtype=np.float64)))
        return (exponent - 1) + (2.0 * fraction - 1.0)


def batch_simplicity(inputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per example of a batch (arrays ``[B, ...]``): non-zero elements, then summed magnitudes."""
    size = inputs[0].shape[0]
    flat = [np.asarray(x).reshape(size, -1) for x in inputs]
    nonzero = sum(np.count_nonzero(x, axis=1) for x in flat)
    magnitude = sum(np.sum(magnitude_log2(np.abs(x).astype(np.float64)), axis=1) for x in flat)
    return np.asarray(nonzero), np.nan_to_num(np.asarray(magnitude, dtype=np.float64), nan=np.inf)


def simplicity(inputs: Sequence[np.ndarray]) -> tuple[int, float]:
    """One example (one array per argument): fewest non-zero elements first, then the smallest magnitudes."""
    nonzero, magnitude = batch_simplicity([np.asarray(x)[None] for x in inputs])
    return int(nonzero[0]), float(magnitude[0])
