"""Examples to first detection of thin-region bugs, as a user gets them: gradfuzz.check with
default settings, against plain uniform sampling.

    python benchmarks/detection.py [--seeds 5] [--within 1000] [--cap 20000] [--bugs NAME,...]

For each planted bug (benchmarks/detection_targets.py) and seed, ``gradfuzz.check(fn,
max_examples=within, seed=seed)`` — no batch size, no other option — and the number of examples
evaluated until the first failing one (`CheckReport.first_failure_at`, inclusive); a seed that
finds nothing runs again with ``max_examples=cap``. Prints per bug
(a) the share of seeds that find it within ``--within`` examples and (b) the median examples to
first detection (">cap" when a seed did not find it at all); and the uniform arm: the same
engine and oracle fed plans that draw uniformly over the spec's range (through `check_target`,
the one place a plan strategy can be swapped). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gradfuzz
from benchmarks.detection_targets import BUGS
from gradfuzz.checker import check_target
from gradfuzz.options import CheckOptions
from gradfuzz.plans import Plan
from gradfuzz.target import describe_callable, resolve_specs


def uniform_plans(points: int):
    return st.builds(Plan, seed=st.integers(0, 2**32 - 1), weights=st.just((0, 0, 1, 0)))


def through_check(fn, seed: int, within: int, cap: int) -> tuple[int | None, str]:
    """What a user's ``gradfuzz.check(fn, max_examples=within, seed=seed)`` finds first, and when;
    if nothing, the same with ``max_examples=cap`` (a run of another size batches differently:
    max_examples/16 per plan)."""
    for examples in (within, cap):
        report = gradfuzz.check(fn, max_examples=examples, seed=seed)
        if report.first_failure_at is not None:
            return report.first_failure_at, report.failures[0].category
    return None, "-"


def uniform(fn, seed: int, cap: int) -> int | None:
    target = describe_callable(fn)
    report = check_target(target, resolve_specs(target, None), CheckOptions(max_examples=cap, seed=seed, shrink=False,
                                                                            stop_at_first_failure=True), plan_strategy=uniform_plans)
    return report.first_failure_at


def median(values: list[int | None], cap: int) -> str:
    found = [v for v in values if v is not None]
    if len(found) <= len(values) // 2:
        return f">{cap:,}"
    padded = sorted(found) + [cap + 1] * (len(values) - len(found))
    return f"{int(np.median(padded)):,}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--within", type=int, default=1000)
    parser.add_argument("--cap", type=int, default=20_000, help="examples per seed at most")
    parser.add_argument("--bugs", default="", help="comma-separated names (default: all)")
    args = parser.parse_args()
    chosen = {name: fn for name, fn in BUGS.items() if not args.bugs or name in args.bugs.split(",")}
    print(f"| planted bug | found within {args.within:,} (gradfuzz.check) | median to first | category | uniform: median to first |")
    print("|---|---|---|---|---|")
    hits_total = 0
    for name, fn in chosen.items():
        runs = [through_check(fn, seed, args.within, args.cap) for seed in range(args.seeds)]
        firsts = [first for first, _ in runs]
        within = sum(first is not None and first <= args.within for first in firsts)
        hits_total += within
        categories = ", ".join(sorted({category for _, category in runs}))
        baseline = [uniform(fn, seed, args.cap) for seed in range(args.seeds)]
        print(f"| {name} | {within}/{args.seeds} | {median(firsts, args.cap)} | {categories} | {median(baseline, args.cap)} |",
              flush=True)
    print(f"\ndetection: found_within_{args.within}={hits_total}/{len(chosen) * args.seeds}")


if __name__ == "__main__":
    main()
