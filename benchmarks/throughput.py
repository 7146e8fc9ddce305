"""Examples per second: gradfuzz against TensorFlow's own checker and a hand-written ceiling.

    python benchmarks/throughput.py [--seconds 8] [--targets scalar,vector,...] [--device /CPU:0]

For each benchmark target (benchmarks/targets.py), in one run on one machine:

  (a) a Hypothesis @given loop calling tf.test.compute_gradient per example;
  (b) an eager GradientTape loop per example (custom VJP and reference VJP);
  (c) the ceiling: a hand-written batched tf.function computing forward, custom VJP and
      reference VJP on pre-generated inputs (best of a few batch sizes);
  (c′) the sound ceiling: (c) with the reference in float64 plus autodiff at the argument's
      dtype (the calibration) — the VJPs the screen needs to pass nothing the oracle would fail;
  (d) gradfuzz end to end: generation, screen, evaluation, oracle, store — steady state: the
      second half of a run of 2×seconds (tracing, batch-size search and the first shrink are
      behind it); the whole run's rate is printed too.

Prints a table, the time split of (d) (expand / screen / judge / store: expansion runs inside
the screen's compiled call, so its share is measured by expanding the same batches alone), the
host↔device bytes per example, how (d) scaled with batch size, the minimum d/c′, and a last line
``throughput: vs_compute_gradient=<d/a> vs_ceiling=<d/c>``, each the minimum over all rows.
Nothing here asserts on time: machines are shared and noisy; read the ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

def _device_from_arguments() -> None:
    """--device must be known before TensorFlow starts (gradfuzz reads GRADFUZZ_DEVICE)."""
    if "--device" in sys.argv[:-1]:
        os.environ["GRADFUZZ_DEVICE"] = sys.argv[sys.argv.index("--device") + 1]


_device_from_arguments()

import gradfuzz  # noqa: E402
from benchmarks.targets import TARGETS  # noqa: E402
from gradfuzz._tf import configure_devices, tf, tf_decorator  # noqa: E402
from gradfuzz.checker import check_target  # noqa: E402
from gradfuzz.expansion import expansion_for, plan_vector  # noqa: E402
from gradfuzz.options import CheckOptions  # noqa: E402
from gradfuzz.plans import Plan  # noqa: E402
from gradfuzz.store import FailureStore  # noqa: E402
from gradfuzz.target import describe_callable, resolve_variants  # noqa: E402

DEVICE = configure_devices()


def _specs(fn):
    from gradfuzz.spec import parse_specs

    return parse_specs(fn.__gradfuzz_inputs__)


def _inputs(spec, count, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(spec.low, spec.high, size=(count, *spec.shape)).astype(spec.info.numpy)


def _rate(run, minimum_seconds: float) -> float:
    """Examples per second of ``run(n)`` (which processes n examples), over at least minimum_seconds."""
    run(1)  # warm-up (tracing, first-call costs)
    count, elapsed, n = 0, 0.0, 1
    while elapsed < minimum_seconds:
        started = time.perf_counter()
        run(n)
        elapsed += time.perf_counter() - started
        count += n
        n = min(n * 2, 1 << 20)
    return count / elapsed


def hypothesis_compute_gradient(fn, seconds: float) -> float:
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    (spec,) = _specs(fn)
    width = {"float16": 16, "float32": 32, "float64": 64}[spec.dtype]
    elements = st.floats(spec.low, spec.high, width=width)

    def run(n):
        @settings(max_examples=n, deadline=None, database=None, derandomize=True)
        @given(hnp.arrays(spec.info.numpy, spec.shape, elements=elements))
        def check(x):
            tf.test.compute_gradient(fn, [tf.constant(x)])

        check()

    return _rate(run, seconds)


def eager_tape(fn, seconds: float) -> float:
    (spec,) = _specs(fn)
    _, forward = tf_decorator.unwrap(fn)
    xs = _inputs(spec, 4096)

    def run(n):
        for x in xs[:n]:
            x = tf.constant(x)
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(x)
                y = fn(x)
                reference, _ = forward(x)
            tape.gradient(y, x, output_gradients=tf.ones_like(y))
            tape.gradient(reference, x, output_gradients=tf.ones_like(reference))

    return _rate(run, seconds)


def ceiling(fn, seconds: float) -> tuple[float, int]:
    """(c): forward, custom VJP and reference VJP at the argument's dtype."""
    (spec,) = _specs(fn)
    _, forward = tf_decorator.unwrap(fn)

    def one(x):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            y = fn(x)
            reference, _ = forward(x)
        custom = tape.gradient(y, x, output_gradients=tf.ones_like(y))
        return y, custom, tape.gradient(reference, x, output_gradients=tf.ones_like(y))

    return _best_batched(one, spec, seconds)


def sound_ceiling(fn, seconds: float) -> tuple[float, int]:
    """(c′): the work a sound screen cannot skip — the custom VJP, autodiff in float64 (the
    reference) and autodiff at the argument's dtype (its calibration: without it a correct float32
    gradient is flagged wherever autodiff's own rounding shows) — and nothing else: no generation,
    no comparison."""
    (spec,) = _specs(fn)
    _, forward = tf_decorator.unwrap(fn)

    def one(x):
        wide = tf.cast(x, tf.float64)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([x, wide])
            y = fn(x)
            native, _ = forward(x)
            reference, _ = forward(wide)
        custom = tape.gradient(y, x, output_gradients=tf.ones_like(y))
        return (y, custom, tape.gradient(reference, wide, output_gradients=tf.ones_like(reference)),
                tape.gradient(native, x, output_gradients=tf.ones_like(native)))

    return _best_batched(one, spec, seconds)


def _best_batched(one, spec, seconds: float) -> tuple[float, int]:
    """Examples/s of ``one`` vectorised in a tf.function on pre-generated inputs, at the best of a
    few batch sizes, and that size."""
    batched = tf.function(lambda xs: tf.vectorized_map(one, xs))
    best = (0.0, 0)
    for size in (1024, 8192, 32768, 65536, 131072, 262144):
        if size * max(spec.size, 1) > (1 << 22):
            break
        with tf.device(DEVICE):
            xs = tf.constant(_inputs(spec, size))
        batched(xs)  # trace and warm up

        def run(n, xs=xs, size=size):
            with tf.device(DEVICE):
                for _ in range(n):
                    batched(xs)[1].numpy()

        rate = _rate(run, seconds / 3) * size
        best = max(best, (rate, size))
    return best


def gradfuzz_end_to_end(fn, seconds: float) -> tuple[float, object]:
    """Steady-state examples/s (the second half of the run, after tracing, batch-size search and
    the first shrink), and the report (whole-run rate and time split)."""
    target = describe_callable(fn)
    (specs,) = resolve_variants(target, None)
    progress = []
    with tempfile.TemporaryDirectory() as directory:
        store = FailureStore(directory)
        report = check_target(target, specs, CheckOptions(budget=2 * seconds + 3, seed=1), store=store,
                              on_progress=lambda r: progress.append((r.seconds, r.examples)))
        store.close()
    report.expand_rate = _expansion_rate(target, specs, report)
    halfway = report.warmup_seconds + (report.seconds - report.warmup_seconds) / 2
    start = next(((t, n) for t, n in progress if t >= halfway), progress[0])
    end = progress[-1]
    return (end[1] - start[1]) / max(end[0] - start[0], 1e-9), report


def _expansion_rate(target, specs, report) -> float:
    """Examples/s of the expansion alone, on the device, at the run's final batch size (in the run it
    is fused into the screen's call, where it cannot be timed apart)."""
    points = report.engine["points_of_interest"]
    outputs = [(tuple(shape), dtype) for shape, dtype in report.engine["outputs"]]
    expansion = expansion_for(specs, points, outputs)
    size = report.engine["batch_size"]
    with tf.device(DEVICE):
        pool, count = expansion.pool_tensors(None)
        expand = tf.function(lambda plan: [tf.reduce_sum(tf.cast(x, tf.float32))
                                           for x in expansion.batch(plan, tf.constant(size, tf.int64), pool, count)[0]])

        def run(n):
            for i in range(n):
                [t.numpy() for t in expand(tf.constant(plan_vector(Plan(seed=i))))]

        return _rate(run, 1.0) * size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per method and target")
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated names or prefixes")
    parser.add_argument("--device", default=None, help="where to evaluate, e.g. /CPU:0 or /GPU:0 (default: a GPU if any)")
    args = parser.parse_args()
    chosen = {name: fn for name, fn in TARGETS.items() if any(name.startswith(p.strip()) for p in args.targets.split(","))}

    print(f"machine: {platform.machine()}, {platform.processor() or '?'}, cores={_cores()}, "
          f"python {platform.python_version()}, tensorflow {tf.__version__}, gradfuzz {gradfuzz.__version__}, "
          f"device {DEVICE} (GPUs present: {len(tf.config.list_physical_devices('GPU'))})")
    rows, splits, scaling, whole_run, sound = [], {}, {}, {}, {}
    for name, fn in chosen.items():
        a = hypothesis_compute_gradient(fn, min(args.seconds, 4.0))
        b = eager_tape(fn, min(args.seconds, 4.0))
        c, c_batch = ceiling(fn, args.seconds)
        sound[name], _ = sound_ceiling(fn, args.seconds)
        d, report = gradfuzz_end_to_end(fn, args.seconds)
        rows.append((name, a, b, c, c_batch, d, report.engine["batch_size"]))
        whole_run[name] = (report.examples_per_second, report.judged, report.disagreed, report.examples,
                           report.engine["screen"], report.engine["bytes_per_example"])
        splits[name] = _four_stages(report)
        scaling[name] = report.engine["batch_sizes_tried"]
        print(f"  measured {name}", flush=True)

    print()
    header = (f"{'target':26s} {'(a) hyp+compute_gradient':>24s} {'(b) eager tape':>15s} {'(c) ceiling':>20s} "
              f"{'(d) gradfuzz':>20s} {'d/a':>8s} {'d/c':>6s}")
    print(header)
    print("-" * len(header))
    for name, a, b, c, c_batch, d, d_batch in rows:
        print(f"{name:26s} {a:>22,.0f}/s {b:>13,.0f}/s {c:>11,.0f}/s (B={c_batch:<5d}) {d:>11,.0f}/s (B={d_batch:<5d})"
              f" {d / a:>7,.0f}x {d / c:>5.0%}")
    print("\n(c′) the sound ceiling: (c) with the float64 reference and its calibration, the VJPs a screen that")
    print("     never passes what the oracle fails must compute; d/c′ is the share of that work gradfuzz reaches:")
    for name, _, _, c, _, d, _ in rows:
        print(f"  {name:26s} (c′) {sound[name]:>11,.0f}/s = {sound[name] / c:.0%} of (c);  d/c′ {d / sound[name]:.0%}")
    print("\ntime split of (d), seconds (expand / screen / judge / store; the rest is Hypothesis, bisection, shrinking):")
    for name, split in splits.items():
        total = sum(split.values()) or 1.0
        parts = ", ".join(f"{stage} {seconds:.2f} ({seconds / total:.0%})" for stage, seconds in split.items())
        largest = max(split, key=split.get)
        print(f"  {name:26s} {parts}   largest: {largest}")
    print("\n(d) whole run (warm-up excluded, batch-size search and shrinking included), and the screen:")
    for name, (rate, judged, disagreed, examples, screen, moved) in whole_run.items():
        used = "screened" if screen["used"] else f"not screened ({screen['why_not']})"
        print(f"  {name:26s} {rate:>11,.0f}/s; {examples:,} examples, {used}: {disagreed:,} disagreed with "
              f"autodiff, {judged:,} judged in full by the oracle; {moved:.2f} bytes moved host↔device per example")
    print("\n(d) examples/s by batch size (the batch sizer's measurements):")
    for name, sizes in scaling.items():
        print(f"  {name:26s} " + ", ".join(f"{size}: {rate:,.0f}" for size, rate in sizes.items()))
    if rows:  # the weakest row is the headline: every shape must be near its ceiling
        vs_a = min(d / a for _, a, _, _, _, d, _ in rows)
        vs_c = min(d / c for _, _, _, c, _, d, _ in rows)
        vs_sound = min(d / sound[name] for name, _, _, _, _, d, _ in rows)
        print(f"\nsound ceiling: vs_sound_ceiling={vs_sound:.2f}  (the minimum over all rows of d/c′)")
        print(f"throughput: vs_compute_gradient={vs_a:.1f} vs_ceiling={vs_c:.2f}  (the minimum over all rows)")


def _four_stages(report) -> dict[str, float]:
    """The run's stage timings as expand / screen / judge / store (expansion estimated from its
    rate alone: it runs inside the screen's call)."""
    split = report.engine["time_split"]
    expand = min(split.get("screen", 0.0), report.examples / max(report.expand_rate, 1e-9)) if split.get("screen") else 0.0
    return {
        "expand": expand,
        "screen": split.get("screen", 0.0) - expand,
        "judge": sum(split.get(stage, 0.0) for stage in ("generate", "evaluate", "judge")),
        "store": sum(split.get(stage, 0.0) for stage in ("collect", "store")),
        "other": sum(split.get(stage, 0.0) for stage in ("bisect", "shrink")),
    }


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    main()
