"""Label the held-out TensorFlow built-in cases without gradfuzz: is each registered gradient right?

The held-out file (default ../shared/outside/tf_builtins.py beside this checkout) lists TensorFlow functions with
input specs and an expected verdict ("fail" for a known bug, "pass" for a control). This script
re-derives each label independently: at probe inputs (every argument on a special value of its
range — 0, ±1, ±0.5, the range ends — all elements alike, and all pairs of them for two
arguments; seeded mixtures of special values and uniform draws; seeded uniform draws) it takes
TensorFlow's gradient of ⟨v, f(x)⟩ for a seeded cotangent v, eagerly, and compares every element
with one-sided derivatives of an mpmath definition of the same function (60 digits, steps of
2⁻⁷⁰·max(1, |x|) and 2⁻⁸⁰·max(1, |x|)), so at a kink any value between the left and the right
derivative is right; an element whose one-sided quotient has not settled between the two steps
(an infinite derivative, e.g. acos at ±1) is not judged.
A probe where the true value is not finite, complex, or beyond the dtype's range is outside the
domain and skipped. A case is a *bug* if any probe's gradient is None, has the wrong shape, is
not finite, or lies outside [left, right] by more than the dtype's tolerance; *correct*
otherwise. gradfuzz is not imported.

    python scripts/label_tf_builtins.py [CASES.py] [--only NAME,...] [--json]
    exit 0: every independent label matches the file's "expect"; 1: some differ; 2: usage error
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import math
import re
import sys
from pathlib import Path

import mpmath as mp
import numpy as np

DEFAULT_CASES = Path(__file__).resolve().parents[2] / "shared" / "outside" / "tf_builtins.py"  # shared/ beside the checkout
SEED = 20261204
MIXTURES, UNIFORM = 12, 8
RTOL = {"float16": 1e-2, "float32": 1e-3, "float64": 1e-6}

mp.mp.dps = 60


# ---- independent definitions (mpmath; each takes lists of mpf and returns a list of outputs) ----

def _pav_decreasing(y):
    """Least-squares non-increasing fit (pool adjacent violators)."""
    blocks = []  # [sum, count]
    for v in y:
        blocks.append([v, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            s, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
    return [s / c for s, c in blocks for _ in range(c)]


def _igamma1(x):
    if x < 0:
        raise ValueError("outside the domain x >= 0")
    return mp.mpf(0) if x == 0 else mp.gammainc(1, 0, x, regularized=True)


def _xlogy(x, y):
    if y <= 0:
        raise ValueError("log of a non-positive number")
    return x * mp.log(y)


def _pow(x, y):
    if x < 0:
        raise ValueError("outside the real domain")
    if x == 0 and y < 0:
        raise ValueError("pole")
    return mp.mpf(1) if y == 0 else (mp.mpf(0) if x == 0 else mp.power(x, y))


def _acos(x):
    if abs(x) > 1:
        raise ValueError("outside [-1, 1]")
    return mp.acos(x)


TRUTH = {
    "cumprod_zeros": lambda x: [mp.fprod(x[: i + 1]) for i in range(len(x))],
    "xlogy_x0": lambda x, y: [_xlogy(x[0], y[0])],
    "xdivy_x0": lambda x, y: [x[0] / y[0]],
    "where_inf_branch": lambda x: [x[0] if x[0] < 15 else mp.power(10, mp.exp(x[0]))],
    "igamma_a1_x0": lambda x: [_igamma1(x[0])],
    "isotonic_rank1": lambda x: _pav_decreasing(x),
    "acos_slice": lambda x: [_acos(x[0])],
    "norm_f16_overflow": lambda x: [mp.sqrt(mp.fsum(v * v for v in x))],
    "pow_00": lambda x, y: [_pow(x[0], y[0])],
    "svd_repeated": lambda a: list(a),  # U·diag(s)·Vᴴ rebuilds A: the identity map
    "zeta_none": lambda x, q: [mp.zeta(x[0], q[0])],
    "relu6_kinks": lambda x: [min(max(v, 0), 6) for v in x],
    "clip_kinks": lambda x: [min(max(v, 0), 1) for v in x],
    "reduce_max_ties": lambda x: [max(x)],
    "reduce_prod_zeros": lambda x: [mp.fprod(x)],
    "logsumexp": lambda x: [mp.log(mp.fsum(mp.exp(v) for v in x))],
    "softplus": lambda x: [mp.log1p(mp.exp(v)) for v in x],
}


# ---- specs, probes ----

SPEC = re.compile(r"^(float16|float32|float64)\[([0-9,]*)\]@(-?[0-9.]+)\.\.(-?[0-9.]+)$")


def parse_spec(text):
    m = SPEC.match(text.replace(" ", ""))
    if not m:
        raise ValueError(f"unsupported spec {text!r}")
    dtype, dims, lo, hi = m.groups()
    shape = tuple(int(d) for d in dims.split(",") if d)
    return dtype, shape, float(lo), float(hi)


def specials(lo, hi):
    return sorted({v for v in (0.0, 1.0, -1.0, 0.5, -0.5, lo, hi) if lo <= v <= hi})


def probes(specs, rng):
    out = []
    per_arg = [specials(lo, hi) for _, _, lo, hi in specs]
    combos = itertools.product(*per_arg) if len(specs) <= 2 else zip(*(itertools.islice(itertools.cycle(v), 8) for v in per_arg))
    for values in combos:
        out.append([np.full(shape, v) for (_, shape, _, _), v in zip(specs, values)])
    for _ in range(MIXTURES):
        out.append([np.where(rng.random(shape) < 0.5, rng.choice(vals, shape), rng.uniform(lo, hi, shape))
                    for (_, shape, lo, hi), vals in zip(specs, per_arg)])
    for _ in range(UNIFORM):
        out.append([rng.uniform(lo, hi, shape) for _, shape, lo, hi in specs])
    return [[np.asarray(a, dtype=dtype) for a, (dtype, _, _, _) in zip(p, specs)] for p in out]


# ---- the check ----

def _eval(truth, args):
    """f(args) in mpmath as a list of finite mpf; None outside the domain (an error, complex or not finite)."""
    try:
        ys = truth(*args)
    except (ValueError, ZeroDivisionError):
        return None
    if any(isinstance(y, (mp.mpc, complex)) for y in ys):
        return None
    ys = [mp.mpf(y) for y in ys]
    return ys if all(mp.isfinite(y) for y in ys) else None


def _phi(truth, args, v):
    """⟨v, f(args)⟩ in mpmath; None outside the domain."""
    ys = _eval(truth, args)
    return None if ys is None else mp.fsum(vi * yi for vi, yi in zip(v, ys))


def label_case(name, case, rng):
    import tensorflow as tf

    truth = TRUTH[name]
    specs = [parse_spec(s) for s in case["inputs"]]
    checked = skipped = 0
    for probe in probes(specs, rng):
        args = [[mp.mpf(float(v)) for v in a.ravel()] for a in probe]
        ys = _eval(truth, args)
        out_dtype = specs[0][0]
        if ys is None or any(abs(y) > float(np.finfo(out_dtype).max) for y in ys):
            skipped += 1
            continue
        v = [mp.mpf(float(c)) for c in np.asarray(rng.uniform(0.5, 1.5, len(ys)) * rng.choice([-1, 1], len(ys)), out_dtype)]

        xs = [tf.constant(a) for a in probe]
        with tf.GradientTape() as tape:
            for x in xs:
                tape.watch(x)
            y = case["fn"](*xs)
            loss = tf.reduce_sum(tf.cast(tf.reshape(y, [-1]), tf.float64) * tf.constant([float(c) for c in v], tf.float64))
        grads = tape.gradient(loss, xs)
        checked += 1
        shown = "; ".join(str(a.tolist()) for a in probe)
        for k, (g, a) in enumerate(zip(grads, probe)):
            if g is None:
                return "bug", f"argument {k}: gradient None at ({shown})", checked, skipped
            g = g.numpy()
            if g.shape != a.shape:
                return "bug", f"argument {k}: gradient shape {g.shape} for an argument of shape {a.shape}", checked, skipped
            base = _phi(truth, args, v)
            for j in range(a.size):
                h = mp.mpf(2) ** -70 * max(1, abs(args[k][j]))
                sides, singular = [], False
                for sign in (1, -1):
                    quotients = []
                    for step in (h, h / 1024):
                        moved = [list(arg) for arg in args]
                        moved[k][j] += sign * step
                        other = _phi(truth, moved, v)
                        if other is not None:
                            quotients.append((other - base) / (sign * step))
                    if len(quotients) == 2:
                        # a one-sided derivative exists if the quotient has settled; one that grows as
                        # the step shrinks is infinite (acos at ±1): no finite reference, not judged
                        singular |= abs(quotients[0] - quotients[1]) > mp.mpf(10) ** -9 * max(1, abs(quotients[1]))
                        sides.append(quotients[1])
                if not sides or singular:
                    continue
                lo_d, hi_d = float(min(sides)), float(max(sides))
                gj = float(g.ravel()[j])
                tol = RTOL[str(a.dtype)] * max(abs(lo_d), abs(hi_d)) + 1e-30
                if not math.isfinite(gj) or gj < lo_d - tol or gj > hi_d + tol:
                    right = f"{lo_d:.9g}" if lo_d == hi_d else f"between {lo_d:.9g} and {hi_d:.9g}"
                    evidence = (f"argument {k} element {j}: TensorFlow {gj:.9g} vs true {right} at ({shown}), "
                                f"cotangent {[float(c) for c in v]}")
                    return "bug", evidence, checked, skipped
    return "correct", f"{checked} probes agree", checked, skipped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="?", default=str(DEFAULT_CASES))
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args(argv)
    path = Path(opts.cases)
    if not path.exists():
        print(f"no cases file at {path}", file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location("held_out_tf_builtins", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cases = module.CASES
    names = [n for n in cases if not opts.only or n in opts.only.split(",")]
    missing = [n for n in names if n not in TRUTH]
    if missing:
        print(f"no independent definition for {missing}", file=sys.stderr)
        return 2

    rows, disagree = [], 0
    for name in names:
        rng = np.random.default_rng([SEED, sum(map(ord, name))])
        label, evidence, checked, skipped = label_case(name, cases[name], rng)
        expected = {"fail": "bug", "pass": "correct"}.get(cases[name].get("expect"), "?")
        agrees = label == expected
        disagree += not agrees
        rows.append(dict(case=name, label=label, expected=expected, agrees=agrees, probes=checked,
                         outside_domain=skipped, evidence=evidence))
        if not opts.json:
            mark = "ok " if agrees else "DIFF"
            print(f"{mark} {name:<20} {label:<8} (file: {expected:<7}) {checked:>3} probes, {skipped:>3} outside  {evidence}")
    if opts.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"{len(rows) - disagree} of {len(rows)} labels agree with the file")
    return 1 if disagree else 0


if __name__ == "__main__":
    sys.exit(main())
