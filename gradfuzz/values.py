"""The values that flow through a check: batches, evaluations, what a probe learned, and the
errors the engine raises. Pure numpy — the oracle, the store and every tool that reads
results import this, never TensorFlow (`gradfuzz.engine` computes these values).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Offsets along the tangent, in units of the step: φ(-1), φ(-½), φ(0), φ(½), φ(1).
FD_OFFSETS = (-1.0, -0.5, 0.0, 0.5, 1.0)


def summarize_error(error: BaseException) -> str:
    """The informative line of an exception: TF graph errors bury it under "in user code:"."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    meaningful = [line for line in lines if not line.startswith(("File ", "in user code", "Traceback"))]
    # Graph errors put the cause last ("ValueError: ..."); op errors put it first.
    causes = [line for line in meaningful if line.startswith(type(error).__name__)]
    assertions = [line for line in meaningful if "assertion failed" in line or "Condition " in line]
    generic = ("Graph execution error", "Detected at node")
    specific = [line for line in meaningful if not line.startswith(generic)]
    text = (causes or assertions or specific or meaningful or [""])[-1 if causes else 0]
    if text and not text.startswith(type(error).__name__):
        text = f"{type(error).__name__}: {text}"
    return text or type(error).__name__


# Why a plain function's finding has no plot along a line (the dashboard and report --html say it alike).
NO_ELEMENT = ("the finding compares directional derivatives ⟨v, J w⟩ along a random direction (a plain function's "
              "gradient against differences), not one gradient element, so there is no element to plot along")


class TargetRaised(Exception):
    """The target raised while being evaluated; carries where (stage) and the original error, and
    whether the forward's outputs were finite where the gradient raised (False: outside the domain)."""

    def __init__(self, stage: str, error: BaseException, forward_finite: bool = True):
        self.stage = stage
        self.error = error
        self.forward_finite = forward_finite
        super().__init__(f"{stage} raised {summarize_error(error)}")


@dataclass(frozen=True)
class Structure:
    """What one eager probe learned about a target's outputs and gradients."""

    output_dtypes: tuple[str, ...]  # per differentiable (float) output, flattened
    output_shapes: tuple[tuple[int, ...], ...]
    gradient_dtypes: tuple[str | None, ...]  # per argument; None: the gradient was None
    gradient_shapes: tuple[tuple[int, ...] | None, ...]


@dataclass
class Batch:
    """Inputs of one evaluation: arguments, output cotangents, input tangents."""

    inputs: list[np.ndarray]  # per argument, [B, *shape], native dtype
    cotangents: list[np.ndarray]  # per float output, [B, *shape], output dtype
    tangents: list[np.ndarray]  # per argument, [B, *shape], float64

    @property
    def size(self) -> int:
        return int(self.inputs[0].shape[0]) if self.inputs else 0

    @classmethod
    def of_example(cls, inputs: Sequence[np.ndarray], cotangents: Sequence[np.ndarray], tangents: Sequence[np.ndarray]) -> Batch:
        """A batch of one stored or shown example (tangents float64, complex128 for complex arguments)."""
        return cls([np.asarray(x)[None] for x in inputs], [np.asarray(v)[None] for v in cotangents],
                   [np.asarray(w, dtype=np.complex128 if np.iscomplexobj(w) else np.float64)[None] for w in tangents])

    def select(self, index: np.ndarray | slice | int) -> Batch:
        take = (lambda a: a[index : index + 1]) if isinstance(index, int) else (lambda a: a[index])
        return Batch([take(a) for a in self.inputs], [take(a) for a in self.cotangents], [take(a) for a in self.tangents])


@dataclass
class Evaluation:
    """Numbers for one batch, all numpy. Lists are per argument or per output."""

    batch: Batch
    outputs: list[np.ndarray]
    custom: list[np.ndarray]  # custom VJP per argument (as returned; zeros where None)
    reference: list[np.ndarray] | None  # autodiff of the unwrapped forward (float64 if possible)
    reference_native: list[np.ndarray] | None  # the same at the argument dtype
    reference_dtype: str  # "float64", or the native dtype when float64 tracing failed
    phi: np.ndarray  # [len(FD_OFFSETS), B] float64
    phi_scale: np.ndarray  # [B] Σ|v·f(x)|: the size rounding errors in φ are relative to
    fd_step: float
    fd_dtype: str
    fd_eps: float  # precision of the forward's outputs when evaluated for differences
    # With order=2: Hessian-vector products H·w of ⟨v, f⟩ through the custom gradient and through
    # autodiff of the forward (float64 and native), per argument.
    jvp: np.ndarray | None = None  # [B] ⟨v, J w⟩ by forward mode (custom-gradient targets)
    custom_hvp: list[np.ndarray] | None = None
    reference_hvp: list[np.ndarray] | None = None
    reference_hvp_native: list[np.ndarray] | None = None


def _take(arrays: list | None, indices: np.ndarray) -> list | None:
    return None if arrays is None else [np.asarray(a)[indices] for a in arrays]


def select_evaluation(evaluation: Evaluation, indices: np.ndarray) -> Evaluation:
    """The same numbers for a subset of the batch's examples."""
    return Evaluation(
        batch=evaluation.batch.select(indices), outputs=_take(evaluation.outputs, indices),
        custom=_take(evaluation.custom, indices), reference=_take(evaluation.reference, indices),
        reference_native=_take(evaluation.reference_native, indices), reference_dtype=evaluation.reference_dtype,
        phi=evaluation.phi[:, indices], phi_scale=evaluation.phi_scale[indices], fd_step=evaluation.fd_step,
        jvp=None if evaluation.jvp is None else evaluation.jvp[indices],
        fd_dtype=evaluation.fd_dtype, fd_eps=evaluation.fd_eps, custom_hvp=_take(evaluation.custom_hvp, indices),
        reference_hvp=_take(evaluation.reference_hvp, indices),
        reference_hvp_native=_take(evaluation.reference_hvp_native, indices),
    )


# How much finer the second look's differences step is: a kink's jump stays at every step, a smooth
# function's curvature term shrinks with it.
FINE_STEP = 64


@dataclass
class Neighbours:
    """Gradients at x - δ and x + δ for a subset of a batch (see `Evaluator.neighbours`)."""

    indices: np.ndarray
    minus: list[np.ndarray]  # per argument, [len(indices), *shape], float64
    plus: list[np.ndarray]
    fine_phi: np.ndarray  # φ along w / FINE_STEP, rescaled to w: [len(FD_OFFSETS), len(indices)]
    fine_phi_scale: np.ndarray
    minus_hvp: list[np.ndarray] | None = None  # with order=2: reference H·w either side
    plus_hvp: list[np.ndarray] | None = None


class OutOfMemory(Exception):
    """The device ran out of memory for a batch of this size (TF's ResourceExhaustedError)."""

    def __init__(self, size: int):
        super().__init__(f"out of memory evaluating a batch of {size}")
        self.size = size


def _scalar(value: np.ndarray) -> str:
    """One element in full (shortest round-tripping decimal). ``-0.0`` shows as ``0.0``: on screen the
    sign of zero is noise (the store, replay and exported tests keep the exact bits)."""
    if np.iscomplexobj(value):
        return repr(complex(value.reshape(-1)[0]) + 0.0)
    return repr(float(value.reshape(-1)[0]) + 0.0)


def _array(value: np.ndarray, precision: int, threshold: int) -> str:
    shown = value if np.iscomplexobj(value) else value.astype(np.float64)
    return np.array2string(shown + 0.0, precision=precision, threshold=threshold)  # + 0.0: -0.0 reads 0.0


def describe_inputs(inputs: Sequence[np.ndarray]) -> str:
    """``x = 0.5`` for one argument, ``inputs (…; …)`` for several: how findings name an input.

    >>> describe_inputs([np.float32(-0.0)]), describe_inputs([np.array([-0.0, 1.5]), np.float64(2)])
    ('x = 0.0', 'inputs ([0.  1.5]; 2.0)')
    """
    shown = [_scalar(v) if v.size == 1 else _array(v, 6, 8) for v in map(np.asarray, inputs)]
    return "x = " + shown[0] if len(shown) == 1 else "inputs (" + "; ".join(shown) + ")"


def short_value(value: object, precision: int = 4, threshold: int = 6) -> str:
    """One argument's value as tables show it: a scalar in full, an array abridged (4 digits, 6 elements)."""
    array = np.asarray(value)
    return _scalar(array) if array.size == 1 else _array(array, precision, threshold)


def numbers(*values: float, digits: int = 9) -> list[str]:
    """Values side by side, each with ``digits`` significant digits, or more (up to the shortest
    decimal that round-trips) where fewer would print two different values alike: never
    "custom 0.5 vs autodiff 0.5".

    >>> numbers(0.5, 0.5 + 2**-40), numbers(2.0, 3.0), numbers(0.1, 0.1)
    (['0.5', '0.500000000001'], ['2', '3'], ['0.1', '0.1'])
    """
    for width in range(digits, 18):
        shown = [f"{v:.{width}g}" for v in values]
        if all(a != b or x == y or (x != x and y != y) for (a, x) in zip(shown, values) for (b, y) in zip(shown, values)):
            return shown
    return [repr(float(v)) for v in values]


def error_summary(error: float, relative: float, ulps: float | None, dtype: str, reference: float) -> str:
    """How far a gradient is from its reference, after the word "error": "1, relative 0.333, 4.19e+06 ULPs
    of float32"; against an exact 0 (where relative errors and ULPs only measure the gap to the
    smallest subnormal) the absolute error alone.

    >>> error_summary(1.0, 1 / 3, 4.19e6, "float32", 3.0)
    '1, relative 0.333, 4.19e+06 ULPs of float32'
    >>> error_summary(3.2e-5, 2.7e33, 7e44, "float32", 0.0)
    '3.2e-05 from exactly 0'
    """
    if reference == 0:
        return f"{error:.3g} from exactly 0"
    text = f"{error:.3g}, relative {relative:.3g}"
    return text + (f", {ulps:.3g} ULPs of {dtype}" if ulps is not None and dtype else "")
