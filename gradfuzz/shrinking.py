"""Element-wise shrinking: the last step from a failing example to the one a person would write.

Hypothesis shrinks the *plan*; this pass finishes the job on the one stored example: each step
evaluates, in one batch, every single-element change to a simpler value (0, ±1, ±2, the integer
part, the nearest integer, 1–3 significant digits, half the value) and keeps the simplest that
still shows the same failure — fewest non-zero elements, then fewest significant digits, then
smallest magnitudes. The stored input is the result, as raw bits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from gradfuzz.findings import Findings, confident, group_indices
from gradfuzz.judging import Judge
from gradfuzz.oracle import FAILURE
from gradfuzz.plans import Plan
from gradfuzz.simplicity import simplicity
from gradfuzz.spec import ArgSpec
from gradfuzz.values import Batch, OutOfMemory, TargetRaised

if TYPE_CHECKING:
    pass

SHRINK_PASSES = 24  # element-wise simplification steps per failure kind
SHRINK_ELEMENTS = 64  # examples with more elements are left as the plan shrink made them


def shrink_elements(findings: Findings, judge: Judge, signature: str, plan: Plan, seed: int,
                    out_of_time: Callable[[], bool]) -> None:
    """Simplify the representative of ``signature`` element by element while it keeps failing that way."""
    group = findings.groups.get(signature)
    if group is None or group.representative.kind != "failure" or out_of_time():
        return
    current = group.representative
    evaluator = judge.evaluator
    specs = evaluator.specs
    if any(s.is_complex for s in specs) or sum(np.asarray(x).size for x in current.inputs) > SHRINK_ELEMENTS:
        return
    for _ in range(SHRINK_PASSES):
        rows = element_candidates(current.inputs, specs)
        if not rows:
            break
        count = len(rows)
        batch = Batch([np.stack([row[a] for row in rows]) for a in range(len(specs))],
                      [np.repeat(np.asarray(v)[None], count, 0) for v in current.cotangents],
                      [np.repeat(np.asarray(w)[None], count, 0) for w in current.tangents])
        try:
            evaluation = evaluator.evaluate(batch)
        except (TargetRaised, OutOfMemory):
            break
        judgement = judge.batch(evaluation)
        still = group_indices(judgement, FAILURE).get(signature)
        if still is None:
            break
        still = confident(still, judgement)  # shrink towards examples claimed with a margin, not marginal ones
        if not still.size:
            break
        best = min(still, key=lambda i: shrink_order([x[i] for x in batch.inputs]))
        if shrink_order([x[best] for x in batch.inputs]) >= shrink_order(current.inputs):
            break
        current = findings.finding(judgement.verdict(int(best)), evaluation, plan, seed)
    group.representative = current


def element_candidates(inputs: Sequence[np.ndarray], specs: Sequence[ArgSpec]) -> list[list[np.ndarray]]:
    """Every copy of the example with one element replaced by a simpler value in its range."""
    rows = []
    for a, (x, spec) in enumerate(zip(inputs, specs)):
        if not spec.differentiable:
            continue
        flat = np.asarray(x).reshape(-1)
        for e, value in enumerate(flat.astype(np.float64)):
            if not np.isfinite(value):
                continue
            sign = 1.0 if value >= 0 else -1.0
            options = {0.0, sign, 2 * sign, float(np.trunc(value)), float(np.round(value)), float(f"{value / 2:.1g}")}
            options |= {float(f"{value:.{digits}g}") for digits in (1, 2, 3)}
            for option in sorted(options, key=abs):
                cast = np.asarray(option, dtype=flat.dtype)
                if option == value or not spec.low <= float(cast) <= spec.high or digits_of(float(cast)) > digits_of(value):
                    continue
                changed = flat.copy()
                changed[e] = cast
                rows.append([*(np.asarray(y) for y in inputs[:a]), changed.reshape(np.shape(x)),
                             *(np.asarray(y) for y in inputs[a + 1:])])
    return rows


def digits_of(value: float) -> int:
    """Significant decimal digits needed to write ``value`` exactly (as a float64)."""
    if value == 0 or not np.isfinite(value):
        return 0
    return next((d for d in range(1, 18) if float(f"{value:.{d}g}") == value), 17)


def shrink_order(inputs: Sequence[np.ndarray]) -> tuple[int, int, float]:
    """`simplicity` with significant digits between its two keys: fewest non-zero elements,
    then fewest digits, then smallest magnitudes."""
    nonzero, magnitude = simplicity(inputs)
    digits = sum(digits_of(float(v)) for x in inputs for v in np.asarray(x, dtype=np.float64).reshape(-1))
    return nonzero, digits, magnitude
