"""Compiled work kept across checks: evaluators, screens, points of interest, settled batch sizes,
branch signatures and the boundary pool.

A campaign worker checks the same targets again and again in short slices; with a cache, only
the first slice of a target pays for tracing and batch-size search.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gradfuzz.batching import BatchSizer
from gradfuzz.boundaries import BranchSignature, points_for
from gradfuzz.engine import Evaluator
from gradfuzz.judging import Judge
from gradfuzz.screen import Screen
from gradfuzz.spec import ArgSpec
from gradfuzz.target import Target
from gradfuzz.values import Structure

POOL_SIZE = 4096  # boundary examples kept per target (the newest)
MAX_ITEMS = 512  # compiled things kept (least recently used go first): a @given test over many shapes stays bounded


class WarmCache:
    """Compiled evaluators, points of interest and settled batch sizes, kept across checks: the one
    cache of compiled work (checks, campaigns, `assert_gradient` and replay each keep one)."""

    def __init__(self, max_items: int = MAX_ITEMS) -> None:
        self._items: OrderedDict[tuple, object] = OrderedDict()
        self.max_items = max_items
        self._facts: OrderedDict[tuple, object] = OrderedDict()  # small data (structures, cotangents), bounded apart

    @staticmethod
    def key(target: Target, specs: Sequence[ArgSpec], *extra: object) -> tuple:
        return (target.name, target.fingerprint, tuple(str(s) for s in specs), *extra)

    def _get(self, key: tuple, build: Callable[[], object]):
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = self._items[key] = build()
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
        return value

    def judge(self, target: Target, specs: Sequence[ArgSpec], structure: Structure, *, jit: bool = False, order: int = 1) -> Judge:
        """The `Judge` for a target at these specs (its evaluator, points and branch signature kept warm)."""
        evaluator = self.evaluator(target, specs, structure, jit, order)

        def build() -> Judge:
            made = Judge(evaluator, self.points(target, specs), lambda: self.branches(target, specs, structure))
            made.target = target  # its verdict settings: the evaluator may have been built for an earlier equal target
            return made

        return self._get(self.key(target, specs, "judge", structure, jit, order, target.verdict_settings), build)

    def evaluator(self, target: Target, specs: Sequence[ArgSpec], structure: Structure, jit: bool, order: int) -> Evaluator:
        return self._get(self.key(target, specs, "evaluator", structure, jit, order),
                         lambda: Evaluator(target, specs, structure, jit=jit, order=order))

    def points(self, target: Target, specs: Sequence[ArgSpec]) -> list:
        return self._get(self.key(target, specs, "points"), lambda: points_for(target, specs))

    def sizer(self, target: Target, specs: Sequence[ArgSpec], fixed: int | None) -> BatchSizer:
        return self._get(self.key(target, specs, "sizer", fixed), lambda: BatchSizer(specs, fixed))

    def branches(self, target: Target, specs: Sequence[ArgSpec], structure: Structure) -> BranchSignature:
        """The target's branch signature (which side of each comparison, per example)."""
        return self._get(self.key(target, specs, "branches", structure),
                         lambda: BranchSignature(target, specs, structure.output_dtypes, structure.output_shapes))

    def screen(self, evaluator: Evaluator, points: Sequence[Sequence[float]]) -> Screen:
        key = self.key(evaluator.target, evaluator.specs, "screen", evaluator.structure, evaluator.order)
        return self._get(key, lambda: Screen(evaluator, points))

    def fact(self, key: tuple, build: Callable[[], object] | None = None):
        """Small data learnt once per target and signature (`check_example`'s probed structure, a seed's
        cotangents), kept apart from the compiled work so that many seeds never evict a `Judge`; None
        when unknown and no ``build``."""
        if key in self._facts:
            self._facts.move_to_end(key)
            return self._facts[key]
        if build is None:
            return None
        value = self._facts[key] = build()
        while len(self._facts) > self.max_items:
            self._facts.popitem(last=False)
        return value

    def pool(self, target: Target, specs: Sequence[ArgSpec]) -> BoundaryPool:
        """Examples either side of branch switches found so far (kept across checks)."""
        return self._get(self.key(target, specs, "pool"), BoundaryPool)


@dataclass
class BoundaryPool:
    """The newest `POOL_SIZE` examples found on either side of a branch switch."""

    examples: list[np.ndarray] | None = None  # per argument, [P, *shape]
    switches: int = 0  # bisections that ended at a switch, ever

    def add(self, found: list[np.ndarray]) -> None:
        self.switches += len(found[0]) // 2
        merged = found if self.examples is None else [np.concatenate([old, new]) for old, new in zip(self.examples, found)]
        self.examples = [m[-POOL_SIZE:] for m in merged]
