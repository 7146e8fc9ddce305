"""Campaign throughput: the local executor against 1 and 2 Ray workers, in one run.

    python benchmarks/campaign_scaling.py [--seconds 40] [--target benchmarks/targets.py:gram]

Each configuration runs the same campaign (one compute-bound target, the same seed) for
the same wall-clock budget. Throughput is examples checked per second of campaign time,
counted from the first completed slice (so starting Ray and tracing are not in it) to the
end. Prints a table and a last line ``scaling: ray2_vs_ray1=<ratio> ray1_vs_local=<ratio>``.
Nothing asserts on time: machines are shared and noisy; read the ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradfuzz.campaign import Campaign, resolve_targets, run_campaign
from gradfuzz.config import load_config
from gradfuzz.executors import LocalExecutor, RayExecutor


def measure(executor_name: str, workers: int, target: str, seconds: float, slice_seconds: float) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="gradfuzz-scaling-"))
    config_path = directory / "campaign.toml"
    config_path.write_text(f'store = "{directory / "store"}"\nseed = 3\n[[targets]]\ntarget = "{target}"\n')
    config = load_config(config_path)
    refs = resolve_targets(config)
    campaign = Campaign.create(config, refs, budget=seconds, slice_seconds=slice_seconds)
    executor = LocalExecutor([r for r, _, _ in refs]) if executor_name == "local" else RayExecutor(
        [r for r, _, _ in refs], workers=workers)
    marks: list[tuple[float, int]] = []

    def on_result(campaign, result):
        marks.append((time.monotonic(), sum(t.examples for t in campaign.targets)))

    try:
        run_campaign(campaign, executor, on_result=on_result)
    finally:
        executor.shutdown()
    # From the first completed slice per worker (warm-up done everywhere) to the last result.
    start = marks[min(workers, len(marks)) - 1]
    end = marks[-1]
    rate = (end[1] - start[1]) / (end[0] - start[0]) if end[0] > start[0] else 0.0
    return {"name": f"{executor_name} ×{workers}", "examples": end[1], "slices": len(marks), "rate": rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=40.0, help="Budget per configuration.")
    parser.add_argument("--slice", type=float, default=4.0, help="Slice length.")
    parser.add_argument("--target", default=str(Path(__file__).resolve().parent / "targets.py") + ":gram")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"target: {args.target}; {args.seconds:.0f} s per configuration, slices of {args.slice:.0f} s\n")
    rows = [measure("local", 1, args.target, args.seconds, args.slice),
            measure("ray", 1, args.target, args.seconds, args.slice),
            measure("ray", 2, args.target, args.seconds, args.slice)]
    print(f"{'executor':<10} {'examples':>12} {'slices':>7} {'examples/s':>12} {'vs local':>9}")
    for row in rows:
        print(f"{row['name']:<10} {row['examples']:>12,} {row['slices']:>7} {row['rate']:>12,.0f} {row['rate'] / rows[0]['rate']:>8.2f}×")
    local, ray1, ray2 = (row["rate"] for row in rows)
    print(f"\nscaling: ray2_vs_ray1={ray2 / ray1:.2f} ray1_vs_local={ray1 / local:.2f}")


if __name__ == "__main__":
    main()
