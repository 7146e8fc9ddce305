"""gradfuzz: a property-based fuzzer for TensorFlow custom gradients.

The public API is small::

    import gradfuzz

    report = gradfuzz.check(my_op, inputs=["float64[]"], budget="10s")
    report.raise_if_failed()          # an AssertionError listing every failure
    gradfuzz.assert_gradient(my_op, x)  # one given input, the same verdicts (for your own @given tests)

``gradfuzz.inputs(...)`` declares a target's input specs in code, ``gradfuzz.surrogate(reason)``
an intended surrogate gradient (checked for shape, dtype, finiteness and determinism, not
against the derivative), and ``gradfuzz.strategies`` holds the Hypothesis strategies
(``tensors("float32[3]@-1..1")`` draws inputs the way a run does).

Importing the package does not import TensorFlow: ``check``, ``inputs``, ``surrogate`` and ``TargetError``
load it when first used, so the store's tools (triage, export, ``store verify``, the pytest
replay plugin) work where TensorFlow is not installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from gradfuzz.report import CheckReport, Finding, GradientCheckFailed
from gradfuzz.spec import ArgSpec, SpecError, parse_spec
from gradfuzz.store import gradfuzz_version

if TYPE_CHECKING:
    from gradfuzz.api import assert_gradient, check
    from gradfuzz.target import TargetError, inputs, surrogate

__version__ = gradfuzz_version()

_LAZY = {"check": "gradfuzz.api", "assert_gradient": "gradfuzz.api",
         "inputs": "gradfuzz.target", "surrogate": "gradfuzz.target", "TargetError": "gradfuzz.target"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gradfuzz' has no attribute {name!r}")


__all__ = [
    "ArgSpec",
    "CheckReport",
    "Finding",
    "GradientCheckFailed",
    "SpecError",
    "TargetError",
    "__version__",
    "assert_gradient",
    "check",
    "inputs",
    "parse_spec",
    "surrogate",
]
