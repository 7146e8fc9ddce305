"""Input specs: what one positional argument of a target looks like.

The compact form, used on the command line, in configs and in code::

    float64[]              a scalar over the default domain
    float32[3,5]@-50..50   a 3x5 matrix with every element in [-50, 50]
    float32[n,3]           n is a symbol: checked at n = 3, 1 and 0 (zero-size), the same n
                           in every argument that names it (batch dimensions, matching sizes)
    float32[*]             any shape broadcastable with the other [*] arguments (drawn with
                           Hypothesis's mutually_broadcastable_shapes)

>>> parse_spec("float32[3,5]@-50..50")
ArgSpec(dtype='float32', shape=(3, 5), low=-50.0, high=50.0, label='')
>>> [tuple(map(str, v)) for v in spec_variants(["float32[n]@-1..1"])]
[('float32[3]@-1..1',), ('float32[1]@-1..1',), ('float32[0]@-1..1',)]
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
MAX_ELEMENTS = 2**24  # per argument: a batch must hold a few examples (float64[4096,4096] is 128 MiB each)

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
    _check_size(text, shape)
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


def _check_size(text: str, shape: tuple[int, ...]) -> None:
    size = math.prod(shape)
    if size > MAX_ELEMENTS:
        raise SpecError(
            f"Input spec {text!r}: {size:,} elements in one argument is more than gradfuzz checks (at most "
            f"{MAX_ELEMENTS:,} = 2**24, e.g. [4096,4096]). Use a smaller shape such as [100,100]: a gradient bug "
            "seldom needs a large tensor, and a batch holds many examples."
        )


def parse_specs(texts: list[str] | tuple[str, ...]) -> tuple[ArgSpec, ...]:
    """Concrete specs only; `spec_variants` also takes symbolic and ``[*]`` dimensions."""
    return tuple(spec if isinstance(spec, ArgSpec) else parse_spec(spec) for spec in texts)


# -- shape families ---------------------------------------------------------------------------

SYMBOL_SIZES = (3, 1, 0)  # a typical size, size-1 (broadcasting, squeezing), zero-size
BROADCAST_VARIANTS = 4
_SYMBOL = re.compile(r"^[A-Za-z_]\w*$")


def spec_variants(texts: list[str] | tuple[str, ...]) -> list[tuple[ArgSpec, ...]]:
    """The concrete spec tuples a list of specs stands for.

    Concrete specs give one tuple. A symbolic dimension (``float32[n,3]``) takes each of
    `SYMBOL_SIZES` — every symbol at once, the same size wherever it appears. Arguments
    written ``[*]`` get shapes that broadcast together: `BROADCAST_VARIANTS` draws of
    ``hypothesis.extra.numpy.mutually_broadcastable_shapes`` (ranks 0–3, sides 0–4), chosen to
    include a 1-against-n broadcast, a rank difference and a zero-size dimension.
    """
    if all(isinstance(t, ArgSpec) for t in texts):
        return [tuple(texts)]
    parsed = [_parse_family(t) if isinstance(t, str) else (t, tuple(t.shape)) for t in texts]
    symbols = list(dict.fromkeys(d for _, dims in parsed if dims is not None for d in dims if isinstance(d, str)))
    stars = [i for i, (_, dims) in enumerate(parsed) if dims is None]
    assignments = [dict.fromkeys(symbols, size) for size in SYMBOL_SIZES] if symbols else [{}]
    broadcasts = _broadcast_shapes(len(stars)) if stars else [()]
    variants: list[tuple[ArgSpec, ...]] = []
    for k in range(max(len(assignments), len(broadcasts))):
        sizes, star_shapes = assignments[k % len(assignments)], broadcasts[k % len(broadcasts)]
        variant = []
        for i, (base, dims) in enumerate(parsed):
            shape = star_shapes[stars.index(i)] if dims is None else tuple(sizes.get(d, d) for d in dims)
            variant.append(ArgSpec(base.dtype, tuple(int(d) for d in shape), base.low, base.high, base.label))
        if tuple(variant) not in variants:
            variants.append(tuple(variant))
    return variants


def _parse_family(text: str) -> tuple[ArgSpec, tuple | None]:
    """(the spec without its dimensions, the dimension tokens; None for ``[*]``)."""
    compact = text.replace(" ", "")
    match = _SPEC.match(compact)
    if match is None:
        return parse_spec(text), ()  # raises the usual, helpful SpecError
    dims_text = match["dims"]
    base = parse_spec(compact.replace(f"[{dims_text}]", "[]", 1))
    if dims_text == "*":
        return base, None
    dims: list[int | str] = []
    for token in dims_text.split(",") if dims_text else []:
        if token.isdigit():
            dims.append(int(token))
        elif _SYMBOL.match(token):
            dims.append(token)
        else:
            raise SpecError(
                f"Input spec {text!r}: a dimension is a whole number or a symbol such as n (checked at "
                f"sizes {', '.join(map(str, SYMBOL_SIZES))}); [*] means any broadcastable shape. Got [{dims_text}]."
            )
    _check_size(text, tuple(d if isinstance(d, int) else max(SYMBOL_SIZES) for d in dims))
    return base, tuple(dims)


def _broadcast_shapes(count: int) -> list[tuple[tuple[int, ...], ...]]:
    """Deterministic draws of mutually broadcastable shapes, picked to cover the edge cases."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.extra.numpy import mutually_broadcastable_shapes

    drawn: list[tuple[tuple[int, ...], ...]] = []

    @settings(max_examples=200, database=None, derandomize=True, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(mutually_broadcastable_shapes(num_shapes=count, min_dims=0, max_dims=3, min_side=0, max_side=4))
    def collect(shapes) -> None:
        if shapes.input_shapes not in drawn:
            drawn.append(shapes.input_shapes)

    collect()
    wanted = [
        lambda s: any(1 in pair and max(pair) > 1 for pair in _aligned_pairs(s)),  # 1 against n
        lambda s: len({len(shape) for shape in s}) > 1,  # different ranks
        lambda s: any(0 in shape for shape in s),  # zero-size
        lambda s: sum(math.prod(shape) for shape in s) >= 8,  # plain, larger
    ]
    chosen = [next((s for s in drawn if want(s)), drawn[0]) for want in wanted]
    return list(dict.fromkeys(chosen))[:BROADCAST_VARIANTS]


def _aligned_pairs(shapes: tuple[tuple[int, ...], ...]) -> list[tuple[int, ...]]:
    """Per trailing-aligned dimension, the sizes the shapes have there."""
    rank = max((len(s) for s in shapes), default=0)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    return [tuple(p[d] for p in padded) for d in range(rank)]
