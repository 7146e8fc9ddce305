"""How gradfuzz runs targets that are awkward to batch, and how fast (issue #15).

    python benchmarks/strategies.py [--seconds 10]

For each kind of target (tests/targets/any_kind.py and the seed examples), one run of
``--seconds`` on this machine: the evaluation strategy the engine chose, the seconds spent
choosing it and tracing, and examples/s after warm-up; ``branched_op`` (a tf.cond) is also
given as a share of ``my_op_fixed``'s rate, measured in the same run. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gradfuzz

ROOT = Path(__file__).resolve().parents[1]
KINDS = [
    ("vectorisable (seed my_op_fixed)", str(ROOT / "examples/seed_ops.py") + ":my_op_fixed"),
    ("tf.cond (seed branched_op)", str(ROOT / "examples/seed_ops.py") + ":branched_op"),
    ("tf.while_loop series (bessel_i0)", str(ROOT / "tests/targets/any_kind.py") + ":bessel_i0"),
    ("grad_fn in numpy (project_to_ball)", str(ROOT / "tests/targets/any_kind.py") + ":project_to_ball"),
    ("Keras layer factory (dense_swish)", str(ROOT / "tests/targets/any_kind.py") + ":dense_swish"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    seconds = parser.parse_args().seconds
    rates = {}
    print(f"| target kind | strategy | choose + trace (s) | examples/s ({seconds:.0f} s run) | verdict |")
    print("|---|---|---|---|---|")
    for kind, target in KINDS:
        report = gradfuzz.check(target, budget=seconds, seed=1)
        rates[kind] = report.examples_per_second
        print(f"| {kind} | {report.engine.get('strategy', '-')} | {report.engine.get('strategy_seconds', float('nan')):.2f} "
              f"| {report.examples_per_second:,.0f} | {report.verdict} |")
    share = rates[KINDS[1][0]] / rates[KINDS[0][0]] if rates[KINDS[0][0]] else float("nan")
    print(f"\nstrategies: branched_op_vs_my_op_fixed={share:.2f}")


if __name__ == "__main__":
    main()
