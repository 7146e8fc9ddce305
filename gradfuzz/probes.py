"""Looks a check takes besides its batches: the eager probe, isolating an example that raises,
evaluating one batch twice (nondeterminism) or in other execution modes, and the gradient
contract. Each records what it sees as a finding of its own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from gradfuzz.categories import Category
from gradfuzz.diagnosis import mode_disagreements, nondeterministic
from gradfuzz.engine import SECOND_ORDER_SAFETY, gradient_changes, probe, second_order_missing
from gradfuzz.expansion import expansion_for
from gradfuzz.findings import Findings
from gradfuzz.oracle import ContractViolation
from gradfuzz.plans import Plan, tangents
from gradfuzz.report import Finding
from gradfuzz.spec import ArgSpec
from gradfuzz.values import Batch, Structure, TargetRaised, summarize_error
from gradfuzz.watchdog import Hang, Watchdog

if TYPE_CHECKING:
    from gradfuzz.engine import Evaluator
    from gradfuzz.target import Target

PROBE_ATTEMPTS = 8
REPEATABILITY_EXAMPLES = 256
REPEATABILITY_EXAMPLES_EAGER = 16


def probe_somewhere(target: Target, specs: Sequence[ArgSpec], findings: Findings,
                    seed: int) -> tuple[Structure | None, list[np.ndarray]]:
    """Probe the target eagerly on a few inputs (random, then special values) until one
    runs. Inputs on which it raises are recorded as `exception` findings; the run
    goes on with the structure learned from the first input that worked."""
    candidates = probe_candidates(specs, seed)
    failed = []
    for k in range(PROBE_ATTEMPTS):
        example = [x[k] for x in candidates]
        try:
            structure = probe(target, specs, example)
        except TargetRaised as raised:
            failed.append((raised, example))
            continue
        for raised, inputs in failed:  # it runs elsewhere: a forward's run-time check marks its domain
            if outside_domain(raised):
                record_domain(findings, raised, inputs, seed, 1)
            else:
                record_exception(findings, raised, inputs, seed)
        return structure, example
    for raised, inputs in failed:
        record_exception(findings, raised, inputs, seed)
    return None, []


def probe_candidates(specs: Sequence[ArgSpec], seed: int) -> list[np.ndarray]:
    """The inputs the first probe tries, in order (random, then special values)."""
    return expansion_for(specs, [[] for _ in specs]).expand(Plan(seed=seed, weights=(1, 0, 1, 0)), PROBE_ATTEMPTS)[0]


def outside_domain(raised: TargetRaised) -> bool:
    """The forward raised a TensorFlow run-time error (a failed check of its inputs), not a Python
    one; or the gradient raised one where the forward is not finite (the log-determinant of a
    singular matrix is -inf: no gradient is owed there, as none is judged where the forward is NaN)."""
    from gradfuzz._tf import tf

    return isinstance(raised.error, tf.errors.OpError) and (raised.stage == "forward" or not raised.forward_finite)


def at_a_singularity(raised: TargetRaised, target: Target, evaluator: Evaluator, inputs: Sequence[np.ndarray],
                     tangents: Sequence[np.ndarray]) -> bool:
    """The gradient raised a TensorFlow run-time error ("not invertible") where the forward is finite
    but singular along the example's direction (`engine.forward_is_singular`): a matrix singular to
    rounding, whose solve or log-determinant TensorFlow still returns as a finite number. A gradient
    that refuses there owes nothing; one that refuses where the function is smooth (a determinant
    at a singular matrix) is an `exception` finding."""
    from gradfuzz._tf import tf
    from gradfuzz.engine import forward_is_singular

    if raised.stage == "forward" or not isinstance(raised.error, tf.errors.OpError):
        return False
    try:
        return forward_is_singular(target, evaluator.specs, inputs, [np.asarray(t)[0] for t in tangents])
    except Exception:  # the forward raising nearby: no evidence of a singularity
        return False


def isolate_raising(findings: Findings, evaluator: Evaluator, target: Target, batch: Batch, seed: int) -> None:
    """The batch raised: bisect it down to one example that raises, and record that one
    (with the stage — forward or gradient — found by probing it eagerly)."""
    suspect, raised = batch, None
    while suspect.size > 1:
        half = suspect.size // 2
        first, second = suspect.select(slice(0, half)), suspect.select(slice(half, suspect.size))
        try:
            evaluator.evaluate(first)
            suspect = second
        except TargetRaised as error:
            suspect, raised = first, error
    try:
        evaluator.evaluate(suspect)
    except TargetRaised as error:
        raised = error
    else:
        raised = TargetRaised("batched evaluation", RuntimeError(
            f"a batch of {batch.size} raised ({summarize_error(raised.error) if raised else 'unknown error'}) "
            "but no single example of it did"))
        suspect = batch.select(0)
    inputs = [x[0] for x in suspect.inputs]
    try:
        probe(target, evaluator.specs, inputs)
    except TargetRaised as eager:
        raised = eager  # names the stage: forward or custom gradient
    record_exception(findings, raised, inputs, seed, cotangents=suspect.cotangents, tangents=suspect.tangents)


DOMAIN_PROBES = 4  # raising examples probed eagerly to tell a domain error from a bug


def split_off_domain_errors(findings: Findings, evaluator: Evaluator, target: Target, batch: Batch,
                            seed: int) -> np.ndarray | None:
    """The batch raised. Find every example that raises (bisection); if the forward itself raises
    on them with a TensorFlow run-time error (``tf.linalg.inv`` of a singular matrix, a failed
    ``tf.debugging`` assertion), they lie outside the function's domain, as inputs where the forward
    is NaN do: record one `domain` note and return the rows that run (the target is known to run on
    others: the first probe did). Anything else (the gradient raising, a Python error, a batch that
    raises when no example alone does) is an `exception` finding, recorded by `isolate_raising`;
    then None."""
    from gradfuzz._tf import tf

    raising = _raising_rows(evaluator, batch, np.arange(batch.size), known_to_raise=True)
    if raising.size == 0:
        isolate_raising(findings, evaluator, target, batch, seed)
        return None
    first = None
    for row in raising[:DOMAIN_PROBES]:
        example = batch.select(int(row))
        inputs = [x[0] for x in example.inputs]
        try:
            probe(target, evaluator.specs, inputs)
        except TargetRaised as raised:
            if not (outside_domain(raised) or at_a_singularity(raised, target, evaluator, inputs, example.tangents)):
                record_exception(findings, raised, inputs, seed, cotangents=example.cotangents, tangents=example.tangents)
                return None
            first = first or (raised, inputs)
        else:
            # It raises only in the batched evaluation, which also runs the forward at x ± h for the
            # differences: the forward's domain ends within a step (x = 49.99999 below a check x < 50).
            # Any other cause (an evaluation problem of the engine's) is an `exception` finding.
            try:
                evaluator.evaluate(example)
            except TargetRaised as batched:
                if isinstance(batched.error, tf.errors.OpError):
                    first = first or (TargetRaised("forward within a difference step", batched.error), inputs)
                    continue
            isolate_raising(findings, evaluator, target, batch.select(raising), seed)
            return None
    record_domain(findings, *first, seed, raising.size)
    return np.setdiff1d(np.arange(batch.size), raising)


def record_domain(findings: Findings, raised: TargetRaised, inputs: list[np.ndarray], seed: int, count: int) -> None:
    signature = "domain|arg*"
    group = findings.groups.get(signature)
    if group is not None:
        group.count += count
        return
    findings.add(signature, Finding(
        target=findings.target, category=Category.DOMAIN, signature=signature, seed=seed, evidence={},
        inputs=[np.asarray(x) for x in inputs], reference_name="forward",
        explanation=(f"The {raised.stage} raised {summarize_error(raised.error)[:300]} here. Inputs where it raises "
                     "are outside its domain, like inputs where it is not finite: they were skipped (the gradient "
                     "is not at fault). Narrow the input range (@LO..HI) if they should not be drawn."),
    ), count=count)


def _raising_rows(evaluator: Evaluator, batch: Batch, rows: np.ndarray, known_to_raise: bool = False) -> np.ndarray:
    if not known_to_raise:
        try:
            evaluator.evaluate(batch.select(rows))
            return rows[:0]
        except TargetRaised:
            pass
    if rows.size == 1:
        return rows
    half = rows.size // 2
    return np.concatenate([_raising_rows(evaluator, batch, rows[:half]), _raising_rows(evaluator, batch, rows[half:])])


def record_exception(findings: Findings, raised: TargetRaised, inputs: list[np.ndarray], seed: int,
                     cotangents: list | None = None, tangents: list | None = None) -> None:
    explanation = (
        f"The target's {raised.stage} raised {summarize_error(raised.error)[:400]}. "
        f"Inputs that make the {raised.stage} raise are recorded so the failure replays; "
        "fix the target or narrow the input range (@LO..HI) to its domain."
    )
    signature = f"{Category.EXCEPTION}|{type(raised.error).__name__}"
    group = findings.groups.get(signature)
    if group is not None:
        group.count += 1
        return
    finding = Finding(
        target=findings.target, category=Category.EXCEPTION, explanation=explanation,
        inputs=[np.asarray(x) for x in inputs],
        cotangents=[np.asarray(v[0]) for v in cotangents] if cotangents else [],
        tangents=[np.asarray(w[0]) for w in tangents] if tangents else [],
        signature=signature, seed=seed, evidence={}, reference_name=raised.stage,
    )
    findings.add(signature, finding)


HANG_ISOLATION_SECONDS = 5.0  # per example, when looking for the one that hangs


def isolate_hang(findings: Findings, evaluator: Evaluator, watchdog: Watchdog, batch: Batch, hang: Hang, seed: int,
                 deadline: float) -> None:
    """A batch hung: evaluate its examples one at a time (each under the watchdog, until the deadline)
    to find one that hangs, and record it as an `exception` finding — or the batch's first example,
    saying the culprit was not isolated."""
    culprit, alone = None, None
    for k in range(batch.size):
        if time.monotonic() >= deadline:
            break
        example = batch.select(k)
        example.tangents = [np.zeros(np.shape(x), np.complex128 if np.iscomplexobj(x) else np.float64) for x in example.inputs]
        try:
            watchdog.run(lambda example=example: evaluator.evaluate(example), HANG_ISOLATION_SECONDS)
        except Hang as again:
            culprit, alone = k, again
            break
        except Exception:  # raising is recorded when such an input is drawn on its own
            continue
    found = culprit is not None
    example = batch.select(culprit if found else 0)
    explanation = (
        f"The target's batched evaluation {hang} on a batch of {batch.size} examples"
        + (f"; this example alone {alone}." if found else "; no single example was isolated before the budget ran out (this is the batch's first).")
        + " Look for a loop whose exit condition these inputs never meet (NaN, inf, a tolerance never reached) or a "
        "blocking call; the run went on with the rest of its budget, abandoning the stuck evaluation."
    )
    signature = f"{Category.EXCEPTION}|Hang"
    if signature in findings.groups:
        findings.groups[signature].count += 1
        return
    findings.add(signature, Finding(
        target=findings.target, category=Category.EXCEPTION, explanation=explanation,
        inputs=[np.asarray(x[0]) for x in example.inputs], cotangents=[np.asarray(v[0]) for v in example.cotangents],
        tangents=[], signature=signature, seed=seed, evidence={"hang_seconds": float(hang.seconds)},
        reference_name="watchdog",
    ))


def record_contract(findings: Findings, violation: ContractViolation, inputs: list[np.ndarray], seed: int) -> None:
    """A contract finding: its evidence is the contract itself (what was expected, what came back,
    the digits lost), not gradient values; its input is any on which the target runs."""
    signature = f"{violation.category}|arg{'*' if violation.argument is None else violation.argument}|contract"
    finding = Finding(
        target=findings.target, category=violation.category, explanation=violation.explanation,
        inputs=[np.asarray(x) for x in inputs], argument=violation.argument, signature=signature, seed=seed,
        reference_name="gradient contract", evidence=dict(violation.contract),
    )
    findings.add(signature, finding)


SIMPLE_VALUES = (1.0, 0.5, 2.0, 0.0)  # what a person would try first


def simple_example(target: Target, specs: Sequence[ArgSpec], fallback: list[np.ndarray]) -> list[np.ndarray]:
    """An input a person would choose — every element 1 (or 0.5, 2, 0) where the range allows and
    the target runs there — for findings any input shows (the contract); else ``fallback``."""
    for value in SIMPLE_VALUES:
        if not all(s.low <= value <= s.high for s in specs if s.differentiable):
            continue
        example = [np.full(s.shape, value, dtype=s.numpy_dtype) if s.differentiable else np.asarray(x)
                   for s, x in zip(specs, fallback)]
        try:
            probe(target, specs, example)
        except TargetRaised:
            continue
        return example
    return fallback


def check_repeatability(findings: Findings, evaluator: Evaluator, structure: Structure, seed: int,
                        modes: Sequence[str] = ()) -> None:
    """Evaluate one batch twice: a custom gradient that changes bits between calls is
    `nondeterminism` (random ops or unordered reductions in grad_fn). With ``modes``,
    also compare eager and XLA execution with the compiled batch."""
    plan = Plan(seed=seed, weights=(1, 1, 1, 1))
    # Eagerly, example by example, a batch costs its size in Python calls: a few suffice there.
    size = REPEATABILITY_EXAMPLES_EAGER if evaluator.stats.strategy.startswith("eager") else REPEATABILITY_EXAMPLES
    outputs = list(zip(structure.output_shapes, structure.output_dtypes))
    inputs, cotangents = expansion_for(findings.specs, findings.points, outputs).expand(plan, size)
    batch = Batch(inputs, cotangents, tangents(np.random.default_rng([seed, 2]), inputs))
    if len(modes) > 1:
        try:
            disagreements = mode_disagreements(evaluator, batch, modes)
        except TargetRaised:
            disagreements = {}
        for mode, (indices, other) in disagreements.items():
            i = int(indices[0])
            _record_nondeterminism(
                findings, batch, i, seed, other, evaluator.evaluate(batch.select(i)).custom, "the compiled tf.function",
                int(indices.size), mode,
                f"The custom gradient depends on how TensorFlow runs it: in {mode} mode it differs from the "
                f"compiled tf.function batch by more than rounding ({indices.size} of the examples compared). "
                "Look for Python-side state, tf.py_function or numpy in grad_fn, or ops whose "
                f"{'eager' if mode == 'eager' else 'XLA'} kernels behave differently.",
            )
    differing = nondeterministic(evaluator, batch)
    if differing is None or not differing.size:
        return
    i = int(differing[0])
    first, second = evaluator.evaluate(batch.select(i)), evaluator.evaluate(batch.select(i))
    _record_nondeterminism(
        findings, batch, i, seed, [g[0][None].repeat(batch.size, 0) for g in first.custom], second.custom,
        "a second evaluation", int(differing.size), None,
        f"Evaluating the same inputs twice gave different custom gradients ({differing.size} of "
        f"{batch.size} examples differ bitwise; e.g. {np.asarray(first.custom[0]).ravel()[:3].tolist()} then "
        f"{np.asarray(second.custom[0]).ravel()[:3].tolist()}). A gradient check, and training, cannot be "
        "reproduced: look for random ops, unseeded sampling or order-dependent reductions in grad_fn.",
    )


def _record_nondeterminism(findings: Findings, batch: Batch, index: int, seed: int, custom: list, reference: list,
                           reference_name: str, count: int, mode: str | None, explanation: str) -> None:
    """One `nondeterminism` finding: ``custom`` holds the batch's gradients in the odd run or
    mode (row ``index`` is shown), ``reference`` the single example's gradients to compare."""
    finding = Finding(
        target=findings.target, category=Category.NONDETERMINISM, explanation=explanation,
        inputs=[np.array(x[index]) for x in batch.inputs], cotangents=[np.array(v[index]) for v in batch.cotangents],
        tangents=[np.array(w[index]) for w in batch.tangents], custom=[np.array(g[index]) for g in custom],
        reference=[np.array(g[0]) for g in reference], reference_name=reference_name, count=count,
        signature=f"{Category.NONDETERMINISM}|{mode or 'repeat'}", seed=seed, region="*",
    )
    findings.add(finding.signature, finding, count=count)


def unreachable_second_order(target: Target, example: Sequence[np.ndarray], specs: Sequence[ArgSpec],
                             directions: Sequence[np.ndarray]) -> list[tuple[int, float, float]]:
    """A plain function's arguments whose second-order gradient is None although its first-order
    gradient clearly changes with them: (argument, the change by differences, their error)."""
    found = []
    for a in second_order_missing(target, example):
        if not specs[a].differentiable or specs[a].is_complex or not np.any(directions[a]):
            continue
        change, error = gradient_changes(target, example, a, np.asarray(directions[a], np.float64))
        if np.isfinite(change) and np.isfinite(error) and abs(change) > SECOND_ORDER_SAFETY * error:
            found.append((a, change, error))
    return found


def check_plain_second_order(findings: Findings, target: Target, specs: Sequence[ArgSpec], example: Sequence[np.ndarray],
                             seed: int) -> None:
    """``order=2`` on a plain function (no reference forward to differentiate twice): a `higher-order`
    finding for each argument whose second-order gradient TensorFlow gives as None while the first-order
    gradient changes with it (an inner tf.custom_gradient whose grad_fn is not differentiable in it)."""
    rng = np.random.default_rng([seed, 7])
    directions = [rng.standard_normal(np.shape(x)) * np.maximum(1.0, np.abs(np.asarray(x, np.float64))) for x in example]
    try:
        found = unreachable_second_order(target, example, specs, directions)
    except Exception:  # the batches and the probe record what the target raises
        return
    for a, change, error in found:
        tangent = [np.zeros(np.shape(x)) for x in example]
        tangent[a] = directions[a]
        finding = Finding(
            target=findings.target, category=Category.HIGHER_ORDER,
            explanation=(
                f"TensorFlow's second-order gradient with respect to argument {a} is None (read as zero), but the "
                f"first-order gradient changes with that argument: along a direction in it, the sum of the gradient's "
                f"elements changes at rate {change:.6g} by central differences (error {error:.2g}). Anything that "
                "differentiates through the gradient (Hessian-vector products, gradient penalties) gets zero instead. "
                "Typically an inner tf.custom_gradient whose grad_fn does not take that argument as an input (it "
                "captures it), or numpy / tf.stop_gradient inside grad_fn."),
            inputs=[np.array(x) for x in example], cotangents=[], tangents=tangent,
            reference_name="central differences of the first-order gradient", argument=a,
            custom_value=0.0, reference_value=float(change), abs_error=abs(float(change)),
            signature=f"{Category.HIGHER_ORDER}|argument {a}|second order is None", seed=seed, region="*",
            evidence={"differences_error": float(error)},
        )
        findings.add(finding.signature, finding, count=1)
