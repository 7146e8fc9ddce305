"""Latency: how long a check takes to answer, against ``tf.test.compute_gradient`` (issue #29).

    python benchmarks/latency.py [--calls 30]

In one run on one machine, on the same functions (a custom-gradient softplus on float64[3]):

  * ``tf.test.compute_gradient`` per call (warm: the median of N calls; and its first call);
  * ``gradfuzz.assert_gradient(softplus, x)`` per call, warm (median of N distinct inputs) and first call;
  * ``gradfuzz.check(fn, inputs=["float64[3]"], max_examples=100)`` cold (the first check of a function
    in this process: probing, tracing, compiling) and warm (the same function checked again);
  * the command line's time to a usage error (a subprocess each): a bad ``--input`` spec, a missing
    target file — and whether TensorFlow was imported before the message;
  * the README's first command, ``gradfuzz check examples/seed_ops.py:my_op --input 'float64[]' --budget 3s``:
    wall time, examples checked and the verdict.

Prints a table and a last line ``latency: assert_vs_compute_gradient=… check_warm=…s check_cold=…s
usage_error=…s`` (ratios of one run: machines are shared and noisy). Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _cli(*arguments: str, env: dict | None = None) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "gradfuzz.cli", *arguments], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - started
    return seconds, done.returncode, done.stdout + done.stderr


def _imported_tensorflow(output: str) -> bool:
    return any(line.rstrip().endswith("| tensorflow") for line in output.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=30, help="warm calls timed per row (median)")
    parser.add_argument("--no-cli", action="store_true", help="skip the command-line rows")
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []

    started = time.perf_counter()
    import tensorflow as tf

    import gradfuzz
    rows.append(("import tensorflow + gradfuzz", f"{time.perf_counter() - started:.2f} s", ""))

    def make_softplus():
        @tf.custom_gradient
        def softplus(x):
            y = tf.maximum(x, tf.zeros_like(x)) + tf.math.log1p(tf.exp(-tf.abs(x)))
            return y, lambda dy: dy * tf.sigmoid(x)
        return softplus

    softplus = make_softplus()
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(-5, 5, 3) for _ in range(args.calls + 1)]

    # tf.test.compute_gradient: first call, then the median of N.
    t = time.perf_counter()
    tf.test.compute_gradient(softplus, [tf.constant(inputs[0])])
    cg_first = time.perf_counter() - t
    times = []
    for x in inputs[1:]:
        t = time.perf_counter()
        tf.test.compute_gradient(softplus, [tf.constant(x)])
        times.append(time.perf_counter() - t)
    cg_warm = statistics.median(times)
    rows.append(("tf.test.compute_gradient, first call", f"{1e3 * cg_first:.1f} ms", ""))
    rows.append((f"tf.test.compute_gradient, warm (median of {args.calls})", f"{1e3 * cg_warm:.2f} ms", "1.0×"))

    t = time.perf_counter()
    gradfuzz.assert_gradient(softplus, inputs[0])
    ag_first = time.perf_counter() - t
    times = []
    for x in inputs[1:]:
        t = time.perf_counter()
        gradfuzz.assert_gradient(softplus, x)
        times.append(time.perf_counter() - t)
    ag_warm = statistics.median(times)
    rows.append(("gradfuzz.assert_gradient, first call", f"{1e3 * ag_first:.0f} ms", f"{ag_first / cg_first:.1f}×"))
    rows.append((f"gradfuzz.assert_gradient, warm (median of {args.calls})", f"{1e3 * ag_warm:.2f} ms",
                 f"{ag_warm / cg_warm:.1f}×"))

    checked = make_softplus()  # a function this process has not checked yet
    t = time.perf_counter()
    cold_report = gradfuzz.check(checked, inputs=["float64[3]"], max_examples=100, seed=0)
    check_cold = time.perf_counter() - t
    t = time.perf_counter()
    warm_report = gradfuzz.check(checked, inputs=["float64[3]"], max_examples=100, seed=1)
    check_warm = time.perf_counter() - t
    rows.append(("gradfuzz.check(max_examples=100), cold", f"{check_cold:.2f} s",
                 f"{cold_report.verdict}, {cold_report.examples} examples, warm-up {cold_report.warmup_seconds:.2f} s"))
    rows.append(("gradfuzz.check(max_examples=100), warm (same function again)", f"{check_warm:.3f} s",
                 f"{warm_report.verdict}, {warm_report.examples} examples"))

    usage = None
    if not args.no_cli:
        seconds, code, output = _cli("check", "examples/seed_ops.py:my_op", "--input", "float64[3")
        rows.append(("CLI usage error: bad --input spec", f"{seconds:.2f} s",
                     f"exit {code}, TensorFlow imported: {'yes' if _imported_tensorflow(output) else 'no'}"))
        seconds2, code, output = _cli("check", "no/such/file.py:f", "--input", "float64[]")
        rows.append(("CLI usage error: missing target file", f"{seconds2:.2f} s",
                     f"exit {code}, TensorFlow imported: {'yes' if _imported_tensorflow(output) else 'no'}"))
        usage = max(seconds, seconds2)
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "gradfuzz.cli", "check", "examples/seed_ops.py:my_op", "--input",
                               "float64[]", "--budget", "3s", "--format", "json", "--store",
                               str(Path(os.environ.get("TMPDIR", "/tmp")) / f"gradfuzz-latency-{os.getpid()}")],
                              cwd=ROOT, capture_output=True, text=True)
        readme = time.perf_counter() - t
        try:
            target = json.loads(done.stdout)["targets"][0]
            detail = f"exit {done.returncode}, {target['verdict']}, {target['examples']:,} examples checked"
        except (ValueError, KeyError, IndexError):
            detail = f"exit {done.returncode}: {done.stderr.strip()[-200:]}"
        rows.append(("README: gradfuzz check examples/seed_ops.py:my_op --budget 3s", f"{readme:.1f} s", detail))

    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'time':>10}  vs compute_gradient / detail")
    for what, seconds, detail in rows:
        print(f"{what:<{width}}  {seconds:>10}  {detail}")
    print(f"latency: assert_vs_compute_gradient={ag_warm / cg_warm:.1f} assert_first_vs_compute_gradient="
          f"{ag_first / cg_first:.1f} check_warm={check_warm:.3f}s check_cold={check_cold:.2f}s"
          + (f" usage_error={usage:.2f}s" if usage is not None else ""))


if __name__ == "__main__":
    main()
