"""Input specs: what one positional argument of a target looks like.

The compact form, used on the command line, in configs and in code::

    float64[]              a scalar over the default domain
    float32[3,5]@-50..50   a 3x5 matrix with every element in [-50, 50]

>>> parse_spec("float32[3,5]@-50..50")
ArgSpec(dtype='float32', shape=(3, 5), low=-50.0, high=50.0)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from gradfuzz.dtypes import COMPLEX_COMPONENT, DTYPES, DTypeInfo

# Arguments of these dtypes are drawn and passed to the target but not differentiated.
PASS_THROUGH = {"int32": np.dtype(np.int32), "int64": np.dtype(np.int64), "bool": np.dtype(np.bool_)}

DEFAULT_DOMAIN = (-100.0, 100.0)

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_SPEC = re.compile(
    rf"^(?P<dtype>[a-z0-9]+)\[(?P<dims>[^\]]*)\](?:@(?P<low>{_NUMBER})\.\.(?P<high>{_NUMBER}))?$"
)


class SpecError(ValueError):
    """A malformed input spec; the message says what is wrong and shows the form."""


@dataclass(frozen=True)
class ArgSpec:
    dtype: str
    shape: tuple[int, ...]
    low: float = DEFAULT_DOMAIN[0]
    high: float = DEFAULT_DOMAIN[1]
    label: str = ""  # set for variables read by the target ("variable 'w:0'"); "" for arguments

    @property
    def info(self) -> DTypeInfo:
        """Precision facts; for complex dtypes, those of each component."""
        return DTYPES[COMPLEX_COMPONENT.get(self.dtype, self.dtype)]

    @property
    def differentiable(self) -> bool:
        """Floating-point and complex arguments are checked; integer and boolean ones pass through."""
        return self.dtype in DTYPES or self.is_complex

    @property
    def is_complex(self) -> bool:
        return self.dtype in COMPLEX_COMPONENT

    @property
    def component(self) -> ArgSpec:
        """The real spec each component of a complex argument is drawn from."""
        return ArgSpec(COMPLEX_COMPONENT.get(self.dtype, self.dtype), self.shape, self.low, self.high)

    @property
    def numpy_dtype(self) -> np.dtype:
        if self.is_complex:
            return np.dtype(self.dtype)
        return DTYPES[self.dtype].numpy if self.differentiable else PASS_THROUGH[self.dtype]

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __str__(self) -> str:
        dims = ",".join(str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]@{self.low:g}..{self.high:g}"


_FORM_HELP = (
    "An input spec is DTYPE[DIMS] with an optional range @LO..HI, for example "
    "'float64[]' (a scalar), 'float32[3,5]' or 'float32[3,5]@-50..50'. "
    f"Supported dtypes: {', '.join([*DTYPES, *COMPLEX_COMPONENT])} (checked; a complex range bounds both "
    f"components), {', '.join(PASS_THROUGH)} (passed through unchecked)."
)


def parse_spec(text: str) -> ArgSpec:
    """Parse one spec string; raise `SpecError` naming the problem otherwise."""
    if not isinstance(text, str):
        raise SpecError(f"Expected an input spec string, got {text!r}. {_FORM_HELP}")
    compact = text.replace(" ", "")
    match = _SPEC.match(compact)
    if match is None:
        hint = ""
        if compact in DTYPES:
            hint = f" Did you mean '{compact}[]' (a scalar)?"
        raise SpecError(f"Malformed input spec {text!r}.{hint} {_FORM_HELP}")
    dtype = match["dtype"]
    if dtype not in DTYPES and dtype not in PASS_THROUGH and dtype not in COMPLEX_COMPONENT:
        raise SpecError(
            f"Input spec {text!r}: unsupported dtype {dtype!r}. gradfuzz checks gradients of "
            f"floating-point arguments ({', '.join(DTYPES)}) and passes {', '.join(PASS_THROUGH)} arguments through."
        )
    dims_text = match["dims"]
    try:
        shape = tuple(int(d) for d in dims_text.split(",")) if dims_text else ()
    except ValueError:
        raise SpecError(
            f"Input spec {text!r}: dimensions must be whole numbers separated by commas, "
            f"got [{dims_text}]. {_FORM_HELP}"
        ) from None
    if any(d < 0 for d in shape):
        raise SpecError(f"Input spec {text!r}: dimensions cannot be negative.")
    low, high = DEFAULT_DOMAIN
    if match["low"] is not None:
        low, high = float(match["low"]), float(match["high"])
        if not low < high:
            raise SpecError(f"Input spec {text!r}: the range needs LO < HI, got {low:g}..{high:g}.")
    if dtype == "bool":
        return ArgSpec(dtype=dtype, shape=shape, low=0.0, high=1.0)
    if dtype in PASS_THROUGH:
        return ArgSpec(dtype=dtype, shape=shape, low=float(math.ceil(low)), high=float(math.floor(high)))
    info = DTYPES[COMPLEX_COMPONENT.get(dtype, dtype)]
    if max(abs(low), abs(high)) > info.max:
        raise SpecError(
            f"Input spec {text!r}: the range exceeds the largest finite {dtype} ({info.max:g})."
        )
    return ArgSpec(dtype=dtype, shape=shape, low=low, high=high)


def parse_specs(texts: list[str] | tuple[str, ...]) -> tuple[ArgSpec, ...]:
    return tuple(spec if isinstance(spec, ArgSpec) else parse_spec(spec) for spec in texts)
