"""One way to plan a check: (targets, input specs, budget, max_examples, weight) → concrete checks.

The CLI, the Python API, the release gate and campaigns all plan here, so a budget or an
example count means the same everywhere: it belongs to what the user named (one target on the
command line or in ``gradfuzz.check``, one ``[[targets]]`` block of a config) and is shared
evenly among the concrete checks that name stands for — the targets a module declares, and
each target's shape variants (``float32[n,3]`` at n = 3, 1, 0). ``max_examples`` is split
exactly: the checks of one request run that many examples in all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gradfuzz.spec import ArgSpec
from gradfuzz.target import Target, resolve_variants

DEFAULT_BUDGET = 30.0  # seconds per request when neither a budget nor an example count is given
EXAMPLE_COUNT_SAFETY_NET = 600.0  # with max_examples and no budget: the count is the stopping rule


@dataclass(frozen=True)
class CheckRequest:
    """What a user asked for: targets sharing one budget, example count and weight."""

    targets: tuple[Target, ...]
    inputs: tuple[str | ArgSpec, ...] | None = None  # None: the specs the targets declare
    budget: float | None = None  # seconds; None: not given
    max_examples: int | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class PlannedCheck:
    """One concrete check: a target at concrete input specs, with its share of the request."""

    target: Target
    specs: tuple[ArgSpec, ...]
    budget: float | None  # its share of the request's budget (None: not given)
    max_examples: int | None  # its share of the request's examples (None: not given)
    weight: float

    @property
    def seconds(self) -> float:
        """How long it may run when run on its own (`check`, `gate`): the budget if given, else a
        default, or a generous safety net when an example count is the stopping rule."""
        if self.budget is not None:
            return self.budget
        return EXAMPLE_COUNT_SAFETY_NET if self.max_examples is not None else DEFAULT_BUDGET


def plan_checks(requests: Iterable[CheckRequest]) -> list[PlannedCheck]:
    """Expand each request into its concrete checks, sharing its budget, examples and weight.

    Raises `gradfuzz.target.TargetError` or `gradfuzz.spec.SpecError` for bad specs, before anything runs.
    """
    planned = []
    for request in requests:
        concrete = [(t, specs) for t in request.targets for specs in resolve_variants(t, request.inputs)]
        counts = _split(request.max_examples, len(concrete))
        for (target, specs), count in zip(concrete, counts):
            planned.append(PlannedCheck(
                target, tuple(specs), None if request.budget is None else request.budget / len(concrete),
                count, request.weight / len(concrete),
            ))
    return planned


def _split(total: int | None, parts: int) -> Sequence[int | None]:
    """``total`` in ``parts`` whole shares that add up to it (each at least 1).

    >>> _split(10, 3), _split(None, 2), _split(2, 3)
    ([4, 3, 3], [None, None], [1, 1, 1])
    """
    if total is None:
        return [None] * parts
    base, extra = divmod(total, parts)
    return [max(1, base + (k < extra)) for k in range(parts)]
