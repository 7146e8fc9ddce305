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


def decades(values: np.ndarray) -> np.ndarray:
    """How many decimal places away from 1 each value is written (0 for 0 and for 1 … 9.99; 3 for
    0.001 and for 1000; 323 for the smallest subnormal): what makes a number look extreme to a person.
    Exact on every machine (frexp and one IEEE multiplication)."""
    with np.errstate(all="ignore"):
        _, exponent = np.frexp(np.abs(np.asarray(values, dtype=np.float64)))
        tens = np.floor((exponent - 1) * 0.30102999566398120)  # log10(2): decimal exponent of |x|
        return np.where(np.asarray(values) == 0, 0.0, np.abs(tens))


DECADE_WEIGHT = 4096.0  # one decade outweighs any difference of magnitudes at the same decades


def batch_simplicity(inputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per example of a batch (arrays ``[B, ...]``): non-zero elements, then how extreme the values
    are written (`decades`: 0, ±1, small integers and short decimals before subnormals and huge
    values), then summed magnitudes."""
    size = inputs[0].shape[0]
    flat = [np.asarray(x).reshape(size, -1).astype(np.float64) if not np.iscomplexobj(x) else
            np.abs(np.asarray(x).reshape(size, -1)) for x in inputs]
    nonzero = sum(np.count_nonzero(x, axis=1) for x in flat)
    magnitude = sum(np.sum(DECADE_WEIGHT * decades(x) + magnitude_log2(np.abs(x)), axis=1) for x in flat)
    return np.asarray(nonzero), np.nan_to_num(np.asarray(magnitude, dtype=np.float64), nan=np.inf)


def simplicity(inputs: Sequence[np.ndarray]) -> tuple[int, float]:
    """One example (one array per argument): fewest non-zero elements first, then the smallest magnitudes."""
    nonzero, magnitude = batch_simplicity([np.asarray(x)[None] for x in inputs])
    return int(nonzero[0]), float(magnitude[0])
