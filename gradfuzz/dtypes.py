"""Facts about the floating-point dtypes gradfuzz fuzzes, as one table.

Everything dtype-specific (precision, ranges, the unsigned type used to store
raw bits) is read from here so that no module scatters its own literals.
bfloat16 comes from ``ml_dtypes``, which TensorFlow itself depends on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DTypeInfo:
    name: str
    numpy: np.dtype
    bits: np.dtype  # unsigned integer type of the same width, for raw storage
    mantissa_bits: int  # explicit fraction bits (float32: 23)
    eps: float
    tiny: float  # smallest positive normal
    smallest_subnormal: float
    max: float

    def ulp(self, magnitude: np.ndarray) -> np.ndarray:
        """Spacing of this dtype's numbers at ``|magnitude|``, computed in float64
        (for complex values, at their modulus).

        >>> float(DTYPES["float32"].ulp(np.float64(1.0)))
        1.1920928955078125e-07
        """
        magnitude = np.asarray(magnitude)
        magnitude = np.abs(magnitude).astype(np.float64) if np.iscomplexobj(magnitude) else np.abs(magnitude.astype(np.float64))
        # frexp/ldexp are exact; log2/exp2 are CPU-dispatched and may differ in the last bit.
        _, exponent = np.frexp(np.maximum(magnitude, self.tiny))  # m = f·2^e, f in [0.5, 1)
        spacing = np.ldexp(1.0, exponent - 1 - self.mantissa_bits)
        return np.where(np.isfinite(magnitude), spacing, np.inf)


def _info(name: str, dtype: np.dtype, bits: type) -> DTypeInfo:
    import ml_dtypes

    finfo = ml_dtypes.finfo(dtype)
    return DTypeInfo(
        name=name,
        numpy=np.dtype(dtype),
        bits=np.dtype(bits),
        mantissa_bits=int(finfo.nmant),
        eps=float(finfo.eps),
        tiny=float(finfo.tiny),
        smallest_subnormal=float(finfo.smallest_subnormal),
        max=float(finfo.max),
    )


def _bfloat16() -> DTypeInfo:
    import ml_dtypes

    return _info("bfloat16", ml_dtypes.bfloat16, np.uint16)


class _Table(Mapping):
    """The dtype table, each entry made on first use: bfloat16's needs ``ml_dtypes``, whose import takes most
    of a second, and the command line answers a usage error before that (names and membership need no entry)."""

    def __init__(self, makers: dict[str, Callable[[], DTypeInfo]]) -> None:
        self._makers, self._made = makers, {}

    def __getitem__(self, name: str) -> DTypeInfo:
        if name not in self._made:
            self._made[name] = self._makers[name]()
        return self._made[name]

    def __contains__(self, name: object) -> bool:
        return name in self._makers

    def __iter__(self) -> Iterator[str]:
        return iter(self._makers)

    def __len__(self) -> int:
        return len(self._makers)


DTYPES: Mapping[str, DTypeInfo] = _Table({
    "float16": lambda: _info("float16", np.float16, np.uint16),
    "bfloat16": _bfloat16,
    "float32": lambda: _info("float32", np.float32, np.uint32),
    "float64": lambda: _info("float64", np.float64, np.uint64),
})


# Complex dtypes: each component is judged at its real dtype's precision.
COMPLEX_COMPONENT = {"complex64": "float32", "complex128": "float64"}


def info_for(dtype: object) -> DTypeInfo | None:
    """Look up a dtype given by name, numpy dtype or ``tf.DType``; None if not a fuzzed float."""
    name = getattr(dtype, "name", None) or str(np.dtype(dtype))
    return DTYPES.get(COMPLEX_COMPONENT.get(name, name))


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype of a TensorFlow dtype name (bfloat16 through ml_dtypes)."""
    return DTYPES[name].numpy if name in DTYPES else np.dtype(name)
