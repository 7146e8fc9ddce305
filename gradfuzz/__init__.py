"""gradfuzz: a property-based fuzzer for TensorFlow custom gradients.

The public API is small::

    import gradfuzz

    report = gradfuzz.check(my_op, inputs=["float64[]"], budget="10s")
    report.raise_if_failed()          # an AssertionError listing every failure

``gradfuzz.inputs(...)`` declares a target's input specs in code, and
``gradfuzz.strategies`` holds the Hypothesis strategies.
"""

from __future__ import annotations

__version__ = "0.1.0"

from gradfuzz import _tf  # noqa: F401  (fails early, naming the TensorFlow extras)
from gradfuzz.api import check
from gradfuzz.report import CheckReport, Finding, GradientCheckFailed
from gradfuzz.spec import ArgSpec, SpecError, parse_spec
from gradfuzz.target import TargetError, inputs

__all__ = [
    "ArgSpec",
    "CheckReport",
    "Finding",
    "GradientCheckFailed",
    "SpecError",
    "TargetError",
    "__version__",
    "check",
    "inputs",
    "parse_spec",
]
