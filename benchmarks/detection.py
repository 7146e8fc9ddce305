"""Examples to first detection of thin-region bugs: gradfuzz's strategies vs plain uniform sampling.

    python benchmarks/detection.py [--cap 200000] [--seeds 3]

Both arms use the same engine and oracle; only the inputs differ: gradfuzz's plans (special
values, neighbourhoods of graph constants, log-scale magnitudes, uniform) against plans that
draw uniformly over the spec's range. Prints the median over seeds of the number of examples
evaluated until the first failing one (inclusive), or "not found in CAP".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.detection_targets import BUGS
from gradfuzz.checker import check_target
from gradfuzz.strategies import Plan
from gradfuzz.target import describe_callable, resolve_specs


def uniform_plans(points: int):
    return st.builds(Plan, seed=st.integers(0, 2**32 - 1), weights=st.just((0, 0, 1, 0)))


def first_detection(fn, *, uniform: bool, cap: int, seed: int, batch: int) -> int | None:
    target = describe_callable(fn)
    report = check_target(target, resolve_specs(target, None), max_examples=cap, seed=seed, batch_size=batch,
                          shrink=False, budget=600, plan_strategy=uniform_plans if uniform else None,
                          stop_at_first_failure=True)
    if report.first_failure_at is not None:
        first = report.failures[0]
        print(f"    ({'uniform' if uniform else 'gradfuzz'} seed {seed}: {first.category} at "
              f"{', '.join(str(np.asarray(x).tolist()) for x in first.inputs)})", flush=True)
    return report.first_failure_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=int, default=200_000, help="examples per arm and seed at most")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'planted bug':34s} {'gradfuzz':>12s} {'uniform':>16s} {'ratio':>8s}")
    for name, fn in BUGS.items():
        ours = [first_detection(fn, uniform=False, cap=args.cap, seed=s, batch=256) for s in range(args.seeds)]
        theirs = [first_detection(fn, uniform=True, cap=args.cap, seed=s, batch=4096) for s in range(args.seeds)]

        def median(values):
            found = [v for v in values if v is not None]
            return None if len(found) < len(values) else int(np.median(found))

        a, b = median(ours), median(theirs)
        shown_a = f"{a:,}" if a is not None else f">{args.cap:,}"
        shown_b = f"{b:,}" if b is not None else f"not in {args.cap:,}"
        ratio = f"{b / a:,.0f}x" if a and b else (">" + f"{args.cap / a:,.0f}x" if a else "-")
        print(f"{name:34s} {shown_a:>12s} {shown_b:>16s} {ratio:>8s}", flush=True)


if __name__ == "__main__":
    main()
