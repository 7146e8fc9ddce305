"""Gradients this project did not write: the test of whether gradfuzz can be trusted on other people's code.

* `registered`: TensorFlow's own registered gradients, called as they ship (plain functions).
* `public`: custom gradients from public repositories (and TensorFlow's own custom gradients),
  re-implemented here with their mathematics and their bugs, each with a source link.

Every target carries an independent definition of its forward in mpmath (`truth`), from which
`scripts/label_real_corpus.py` derives its label — correct, or a bug with the probe that shows
it — without gradfuzz: mpmath derivatives (one-sided at kinks) against the target's own
gradient at special values, range ends and a grid. Labels live in ``labels.json``; a test
re-derives them, so they cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RealTarget:
    name: str
    fn: Callable  # what gradfuzz checks: a plain TF function or a tf.custom_gradient function
    inputs: tuple[str, ...]  # gradfuzz specs
    truth: Callable  # mpmath forward: (*mpf args) -> mpf, or a list of mpf (one per output element)
    source: str  # where the code comes from
    category: str | None = None  # for a bug: the category its failure belongs to (the script checks the bug exists)
    surrogate: str | None = None  # an intended surrogate gradient (straight-through, reversal, clipping): why
    kinks: Sequence[float] = ()  # values where the forward is not differentiable (one-sided derivatives there)
    probes: Sequence[Sequence[float]] = field(default_factory=tuple)  # extra inputs the labeller must look at (flat)
    note: str = ""


def all_targets() -> list[RealTarget]:
    from tests.corpus.real import public, registered

    return [*registered.TARGETS, *public.TARGETS]
