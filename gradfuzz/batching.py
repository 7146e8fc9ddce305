"""How many examples go in one batch: fixed for example-bounded runs, grown while throughput
improves otherwise, halved when the device runs out of memory. Pure numpy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gradfuzz.spec import ArgSpec

FIRST_BATCH = 1024  # a batch size to start from (`BatchSizer` grows it while throughput improves)
ELEMENTS_PER_BATCH = 1 << 16  # keeps large-tensor batches within a modest memory budget
PLANS_PER_EXAMPLE_BUDGET = 16  # an example-bounded run spreads max_examples over at least this many plans


def batch_size_for(specs: Sequence[ArgSpec], elements_budget: int = ELEMENTS_PER_BATCH) -> int:
    """The largest power of two up to FIRST_BATCH whose batch stays within the element budget."""
    elements = max(1, sum(s.size for s in specs))
    size = FIRST_BATCH
    while size > 16 and size * elements > elements_budget:
        size //= 2
    return size


def example_bounded_batch(specs: Sequence[ArgSpec], max_examples: int) -> int:
    """The fixed batch size of a run bounded by ``max_examples``: a power of two giving at least
    `PLANS_PER_EXAMPLE_BUDGET` plans, within 16 and the memory budget. Fixed, not grown while
    throughput improves, so such a run draws the same batches on a fast and a slow machine.

    >>> from gradfuzz.spec import parse_spec
    >>> example_bounded_batch([parse_spec("float32[]")], 2048), example_bounded_batch([parse_spec("float32[]")], 100)
    (128, 16)
    """
    wanted = max(16, max_examples // PLANS_PER_EXAMPLE_BUDGET)
    return min(1 << (wanted.bit_length() - 1), BatchSizer(specs).limit)


class BatchSizer:
    """Grow the batch while throughput improves; halve it when the device runs out of memory.

    Each size is measured over `SAMPLES` batches (median examples/s); the next doubling is
    kept only if it is at least `GAIN` times faster, within a memory budget of
    `MAX_ELEMENTS` argument elements and `MAX_EXAMPLES` examples per batch. A fixed size (``--batch-size``) disables
    growth, which also makes a seeded run reproducible batch for batch.
    """

    SAMPLES = 3
    GAIN = 1.05
    MAX_ELEMENTS = 1 << 22
    MAX_EXAMPLES = 1 << 18  # keeps a batch's latency (deadlines, shrink steps) to a fraction of a second

    def __init__(self, specs: Sequence[ArgSpec], fixed: int | None = None):
        self.size = fixed or batch_size_for(specs)
        elements = max(1, sum(s.size for s in specs))
        self.limit = fixed or max(self.size, min(self.MAX_EXAMPLES, self.MAX_ELEMENTS // elements))
        self.growing = fixed is None
        self.rates: dict[int, list[float]] = {}
        self.halvings: list[int] = []

    def record(self, count: int, seconds: float) -> None:
        if not self.growing or count != self.size or seconds <= 0:
            return
        samples = self.rates.setdefault(self.size, [])
        samples.append(count / seconds)
        if len(samples) < self.SAMPLES:
            return
        previous = self.rates.get(self.size // 2)
        if previous and len(previous) >= self.SAMPLES and np.median(samples) < self.GAIN * np.median(previous):
            self.size //= 2  # the last doubling did not pay: settle on the smaller size
            self.growing = False
        elif self.size * 2 <= self.limit:
            self.size *= 2
        else:
            self.growing = False

    def start_small(self, size: int) -> None:
        """Begin growing from ``size`` (a target evaluated eagerly, where one batch of the usual
        size would take seconds); a fixed size stays as given."""
        if self.growing and not self.rates:
            self.size = min(self.size, size)

    def out_of_memory(self) -> None:
        self.halvings.append(self.size)
        self.size = max(1, self.size // 2)
        self.limit = self.size
        self.growing = False

    def describe(self) -> dict:
        return {
            "batch_size": self.size,
            "batch_sizes_tried": {size: round(float(np.median(rates)), 1) for size, rates in sorted(self.rates.items())},
            "out_of_memory_halvings": self.halvings,
        }
