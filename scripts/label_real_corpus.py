"""Label the real corpus (tests/corpus/real) without gradfuzz: is each target's gradient right?

For every target, at probe inputs (special values of each spec, the range ends, the declared
kinks, the target's own probes, and a seeded grid), the target's gradient of ⟨v, f(x)⟩ is taken
with TensorFlow (float64 where the target runs at float64, eagerly, one example) and compared
with the derivative of an independent mpmath definition of the forward (`RealTarget.truth`,
20 digits): one-sided derivatives along each element, so at a kink any value between them is
right. A target is *correct* if every probe agrees, a *bug* otherwise (with the first probe that
shows it and how), a *surrogate* if it declares one. Writes tests/corpus/real/labels.json.

    python scripts/label_real_corpus.py [--check]   (--check: fail if labels.json is out of date)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import mpmath as mp
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this repository's gradfuzz and tests, wherever the script is run from

from gradfuzz.values import summarize_error as summarize  # noqa: E402

LABELS = REPO / "tests" / "corpus" / "real" / "labels.json"
GRID = 8  # seeded random probes per target
RELATIVE = 1e-6  # agreement at float64
RELATIVE_FLOAT32 = 1e-3  # for targets that only run at their float32 spec


def _probes(target, specs, rng) -> list[list[np.ndarray]]:
    from gradfuzz.strategies import special_values

    def shaped(values_per_arg):
        return [np.asarray(v, dtype=np.float64).reshape(s.shape) for v, s in zip(values_per_arg, specs)]

    specials = [sorted({float(v) for v in special_values(s)} | {float(k) for k in target.kinks if s.low <= k <= s.high})
                for s in specs]
    probes = []
    for k in range(max(len(v) for v in specials)):  # every argument on a special value, all elements alike
        probes.append(shaped([np.full(s.size, vals[k % len(vals)]) for s, vals in zip(specs, specials)]))
    for _ in range(GRID):
        probes.append(shaped([rng.uniform(s.low, s.high, s.size) for s in specs]))
    for _ in range(GRID // 2):  # mixtures: each element a special value or a uniform draw
        probes.append(shaped([np.where(rng.random(s.size) < 0.5, rng.choice(vals, s.size), rng.uniform(s.low, s.high, s.size))
                              for s, vals in zip(specs, specials)]))
    for flat in target.probes:
        values, start = [], 0
        for s in specs:
            values.append(np.asarray(flat[start:start + s.size]))
            start += s.size
        probes.append(shaped(values))
    return probes


def _tf_gradient(target, specs, inputs, v):
    """The target's gradient of ⟨v, f⟩ at ``inputs`` (float64 when the target runs there), or
    (None, "forward") when the forward itself refuses the input. A gradient that raises propagates."""
    import tensorflow as tf

    for dtype in ("float64", None):
        xs = [tf.constant(x, dtype=dtype or s.dtype) for x, s in zip(inputs, specs)]
        with tf.GradientTape() as tape:
            tape.watch(xs)
            try:
                y = tf.reshape(tf.cast(target.fn(*xs), tf.float64), [-1])
            except tf.errors.InvalidArgumentError:
                return None, "forward"  # e.g. numerically singular: the forward's domain, not a gradient bug
            except (TypeError, ValueError):
                if dtype is None:
                    raise
                continue  # the target does not run at float64: take its spec's dtype
            phi = tf.reduce_sum(tf.constant(v[: int(y.shape[0])], tf.float64) * y)
        grads = tape.gradient(phi, xs)
        return [None if g is None else tf.convert_to_tensor(g).numpy().astype(np.float64) for g in grads], dtype or "native"
    raise AssertionError("unreachable: the spec's dtype either runs or raises")


def _one_sided(truth, inputs, v, argument, element):
    """Left and right derivatives of ⟨v, truth⟩ along one element (mpmath, 20 digits); a side
    outside the forward's domain (mpmath raises or gives a non-finite value) is None."""
    base = [[mp.mpf(float(x)) for x in np.asarray(a).reshape(-1)] for a in inputs]

    def phi(t):
        args = [list(a) for a in base]
        args[argument][element] = t
        return mp.fsum(mp.mpf(w) * y for w, y in zip(v, truth(args)))

    x0 = base[argument][element]
    # A step relative to x (absolute at 0), so a one-sided difference never reaches a kink at 0
    # from a tiny x; a side whose estimate moves when the step shrinks 16-fold is singular there.
    h = abs(x0) * mp.mpf(2) ** -26 if x0 != 0 else mp.mpf(2) ** -40
    sides = []
    digits = 30 + int(-mp.log10(h / 16))  # enough to see φ move over a step of h/16
    for direction in (-1, 1):
        try:
            with mp.workdps(digits):
                coarse, fine = (mp.diff(phi, x0, direction=direction, h=step) for step in (h, h / 16))
            settled = mp.isfinite(fine) and abs(fine - coarse) <= mp.mpf("1e-6") * max(abs(fine), abs(coarse))
            sides.append(fine if settled else None)
        except Exception:
            sides.append(None)
    return sides


def label(target) -> dict:
    from gradfuzz.spec import parse_specs

    mp.mp.dps = 20
    specs = parse_specs(list(target.inputs))
    rng = np.random.default_rng([ord(c) for c in target.name])  # stable across runs and machines
    v = [1.0 + 0.125 * k for k in range(64)]  # a fixed cotangent: no symmetric cancellation between outputs
    probes = _probes(target, specs, rng)
    for inputs in probes:
        try:
            outputs = target.truth([[mp.mpf(float(x)) for x in np.asarray(a).reshape(-1)] for a in inputs])
            if not all(mp.isfinite(y) for y in outputs):
                continue  # outside the forward's domain
        except Exception:
            continue
        try:
            grads, precision = _tf_gradient(target, specs, inputs, v)
        except Exception as error:  # the gradient raised where the forward is defined
            return _bug(target, "exception", f"raised {summarize(error)}", inputs=inputs, probes=len(probes))
        if precision == "forward":
            continue
        tolerance = RELATIVE if precision == "float64" or all(s.dtype == "float64" for s in specs) else RELATIVE_FLOAT32
        found = _compare(target, specs, inputs, v, grads, tolerance)
        if found is not None:
            return _bug(target, *found, inputs=inputs, probes=len(probes))
    kind = "surrogate" if target.surrogate else "correct"
    return {"label": kind, "category": None, "evidence": target.surrogate or "", "probes": len(probes)}


def _compare(target, specs, inputs, v, grads, tolerance) -> tuple[str, str] | None:
    """(kind, detail) of the first element whose gradient is not a derivative (one-sided range) there."""
    checks = []  # (argument, element, value, low, high)
    tiny = np.finfo(np.float64).tiny
    subnormal = [np.abs(np.asarray(x, dtype=np.float64)) < tiny for x in inputs]
    flushed = [np.where(s, 0.0, np.asarray(x, dtype=np.float64)) for x, s in zip(inputs, subnormal)] \
        if any(np.any(s & (np.asarray(x) != 0)) for x, s in zip(inputs, subnormal)) else None
    for a, spec in enumerate(specs):
        g = grads[a]
        if g is None:
            if any(d not in (None, 0) for e in range(spec.size) for d in _one_sided(target.truth, inputs, v, a, e)):
                return "missing-gradient", f"argument {a}: None where the derivative is not 0"
            continue
        if tuple(np.shape(g)) != spec.shape:
            return "shape", f"argument {a}: gradient shape {list(np.shape(g))}, input {list(spec.shape)}"
        for e, value in enumerate(np.asarray(g).reshape(-1)):
            sides = _one_sided(target.truth, inputs, v, a, e)
            if flushed is not None:  # TensorFlow's CPU kernels flush subnormals to zero: x may act as 0
                at_zero = _one_sided(target.truth, flushed, v, a, e)
                if all(d is None for d in at_zero):
                    continue  # flushed, the derivative is singular: any value, infinite ones too, may be TensorFlow's
                sides += at_zero
            sides = [d for d in sides if d is not None]
            if sides:  # none: the derivative itself is singular here, nothing finite is right or wrong
                checks.append((a, e, float(value), min(sides), max(sides)))
    scale = max((max(abs(low), abs(high)) for *_, low, high in checks), default=0)  # what absolute errors are measured by
    for a, e, value, low, high in checks:
        where = f"argument {a}, element {e}: {value:.9g} where the derivative is in [{mp.nstr(low, 9)}, {mp.nstr(high, 9)}]"
        if not math.isfinite(value):
            return "non-finite", where
        # Results below float64's smallest normal are flushed too: they count as zero.
        slack = tolerance * (max(abs(low), abs(high)) + mp.mpf("1e-6") * scale) + tiny
        if not low - slack <= value <= high + slack:
            return "value", where
    return None


def _bug(target, kind, detail, *, inputs, probes) -> dict:
    shown = "; ".join(np.array2string(np.asarray(x), precision=6, separator=", ") for x in inputs)
    return {"label": "surrogate" if target.surrogate else "bug", "category": target.category, "kind": kind,
            "evidence": f"at {shown}: {detail}", "probes": probes}


def derive() -> dict[str, dict]:
    from tests.corpus.real import all_targets

    return {target.name: label(target) for target in all_targets()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if labels.json differs from a fresh derivation")
    args = parser.parse_args()
    labels = derive()
    text = json.dumps(labels, indent=1, ensure_ascii=False) + "\n"
    if args.check:
        stored = LABELS.read_text() if LABELS.exists() else ""
        if stored != text:
            print("labels.json is out of date: run python scripts/label_real_corpus.py", file=sys.stderr)
            return 1
        return 0
    LABELS.write_text(text)
    for name, entry in labels.items():
        print(f"{entry['label']:>9s}  {name}: {entry.get('kind', '')} {entry['evidence'][:150]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
