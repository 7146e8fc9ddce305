"""How one check runs: `CheckOptions`, built once by each front end (the CLI, the API, the gate,
campaigns, sweeps) and carried into every check it starts, instead of a dozen keyword arguments."""

from __future__ import annotations

from dataclasses import dataclass, replace

EXECUTION_MODES = ("eager", "function", "xla")


@dataclass(frozen=True)
class CheckOptions:
    """What a check is asked to do. ``budget`` and ``max_examples`` are one check's share (planning
    sets them per target and shape, `for_check`); the rest is the same for every check of a run.

    ``seed`` draws the plans (None: a fresh one per check); ``shrink`` simplifies representatives;
    ``batch_size`` fixes the batch size (default: bounded by ``max_examples``, else grown while
    throughput improves); ``jit`` compiles with XLA where the target allows it; ``order=2`` also
    checks the gradient of the gradient; ``modes`` (of "eager", "function", "xla") compares
    execution modes on one batch; ``stop_at_first_failure`` ends at the first failing example (for
    measuring how soon a bug is found); ``slice_of_many`` marks one slice of a campaign or sweep
    (evaluating nothing is no error, a slice whose warm-up ate half its budget still fuzzes for half
    of it, and no minimum of examples is judged past the budget)."""

    budget: float = 30.0
    max_examples: int | None = None
    seed: int | None = None
    shrink: bool = True
    batch_size: int | None = None
    jit: bool = False
    order: int = 1
    modes: tuple[str, ...] = ("function",)
    stop_at_first_failure: bool = False
    slice_of_many: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "modes", tuple(self.modes))
        if self.order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, not {self.order!r}")
        unknown = [m for m in self.modes if m not in EXECUTION_MODES]
        if unknown:
            raise ValueError(f"unknown execution mode(s) {unknown}: choose from {', '.join(EXECUTION_MODES)}")

    def for_check(self, seconds: float, max_examples: int | None = None, seed: int | None = None) -> CheckOptions:
        """These options for one planned check: its budget share, its example cap, and (if given) its seed."""
        return replace(self, budget=seconds, max_examples=max_examples,
                       seed=self.seed if seed is None else seed)
