"""The Python entry point: ``gradfuzz.check``."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

from gradfuzz.checker import check_target
from gradfuzz.durations import parse_duration
from gradfuzz.planning import CheckRequest, plan_checks
from gradfuzz.report import CheckReport, GradientCheckFailed
from gradfuzz.spec import ArgSpec
from gradfuzz.store import FailureStore
from gradfuzz.target import describe_callable, load_target, with_reference


def check(
    fn: Callable | str,
    inputs: Sequence[str | ArgSpec] | None = None,
    budget: str | float | None = None,
    max_examples: int | None = None,
    seed: int | None = None,
    store: str | Path | None = None,
    shrink: bool = True,
    batch_size: int | None = None,
    jit: bool = False,
    order: int = 1,
    modes: Sequence[str] = ("function",),
    reference: Callable | str | None = None,
    precision_digits: float | None = None,
    isolate: bool = False,
    atol: float = 0.0,
    rtol: float = 0.0,
) -> CheckReport:
    """Fuzz the gradient of ``fn`` and return a `CheckReport`.

    ``fn`` is a ``tf.custom_gradient`` function (its grad_fn is checked against
    autodiff of its forward and against central differences), a plain
    TensorFlow function (its registered gradients are checked against central
    differences), or a target name such as ``"examples/seed_ops.py:my_op"``.
    ``inputs`` holds one spec per positional argument, e.g. ``["float32[3]@-5..5"]``;
    it may be omitted when the function declares them with ``@gradfuzz.inputs``. Specs with
    symbolic or ``[*]`` dimensions (``"float32[n,3]"``) are checked at each shape they stand
    for (zero-size, size-1, broadcasting pairs), sharing the budget; the report merges them.
    The run stops after ``budget`` (default 30 s) or after ``max_examples`` examples in all
    (then the budget, unless given, is only a 10-minute safety net), whichever comes first.
    With ``store``, failures are also written to that directory.
    ``batch_size`` fixes the batch size (default: with ``max_examples``, a fixed size giving at
    least 16 plans; otherwise grown while throughput improves). With ``seed`` and ``max_examples``
    (or ``batch_size``) a run draws the same batches on every machine; ``jit``
    compiles the batch function with XLA where the target allows it. ``order=2`` also checks
    second order: the gradient of the custom gradient against autodiff's Hessian-vector
    product (a None or wrong second-order gradient is a ``higher-order`` failure). ``modes``,
    e.g. ``("eager", "function", "xla")``, checks that the gradient agrees across execution
    modes (a difference is ``nondeterminism``). ``reference`` is a function computing the same
    forward (or its target name) whose autodiff replaces the unwrapped forward as the reference —
    it also gives plain TF functions an autodiff reference. ``precision_digits`` (default 2) is
    how many decimal digits a right formula may lose at the argument's dtype before it is a
    ``precision`` failure (the same grad_fn agrees with autodiff at float64; see ARCHITECTURE.md).

    ``atol`` and ``rtol`` (default 0: the oracle's own tolerance alone) widen what passes, as in
    ``np.allclose``: in each example, a gradient element that differs from the reference by at most
    ``atol + rtol * max|reference gradient of the example|`` is never a failure (for plain TF
    functions, the gradient against differences gets that much per element of the direction). Use
    them for a gradient that is deliberately approximate to a known accuracy; a wrong shape, dtype,
    None or NaN still fails.

    ``isolate=True`` runs the check in a supervised child process, as the command line does
    (`gradfuzz.supervisor`): a target that exits, crashes, hangs or exhausts memory becomes an
    ``exception`` finding instead of taking your process with it. ``fn`` (and ``reference``) must then
    be importable by name: a target name, or a module-level function.

    >>> import tensorflow as tf, gradfuzz
    >>> report = gradfuzz.check(tf.math.softplus, inputs=["float32[]"], max_examples=2048)
    >>> report.ok
    True
    """
    _check_tolerance(atol, rtol)
    from gradfuzz.options import CheckOptions

    options = CheckOptions(seed=seed, shrink=shrink, batch_size=batch_size, jit=jit, order=order, modes=tuple(modes))
    if isolate:
        from gradfuzz.supervisor import check_isolated

        return check_isolated(fn, inputs=inputs, budget=budget, max_examples=max_examples, seed=seed, store=store,
                              reference=reference, precision_digits=precision_digits, atol=atol, rtol=rtol,
                              options=options)
    target = with_reference(load_target(fn) if isinstance(fn, str) else describe_callable(fn), reference)
    if precision_digits is not None:
        target.precision_digits = float(precision_digits)
    target.atol, target.rtol = float(atol), float(rtol)
    # A second check of this function reuses what the first traced and compiled. A name is keyed by the function
    # it loads: a module imports once (reused), a file afresh per load (an edit anywhere in it is seen).
    warm = _warm_for(target.fn if isinstance(fn, str) else fn, reference)
    request = CheckRequest((target,), None if inputs is None else tuple(inputs), parse_duration(budget), max_examples)
    planned = plan_checks([request])
    failure_store = FailureStore(store) if store is not None else None
    if failure_store is not None:
        failure_store.ensure_writable()
    try:
        reports = [check_target(p.target, p.specs, options.for_check(p.seconds, p.max_examples), store=failure_store, warm=warm)
                   for p in planned]
        return reports[0] if len(reports) == 1 else CheckReport.merge(reports)
    finally:
        if failure_store is not None:
            failure_store.close()


def _check_tolerance(atol: float, rtol: float) -> None:
    for name, value in (("atol", atol), ("rtol", rtol)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not (0 <= value < float("inf")):
            raise ValueError(f"{name}={value!r}: give a finite number >= 0 (0, the default, adds nothing to the "
                             "oracle's own tolerance).")


FUNCTIONS_KEPT = 32  # functions whose compiled work `check` and `assert_gradient` keep (least recently used go first)
FUNCTION_ITEMS = 128  # compiled things kept per function (shapes, structures, seeds' cotangents)
# Per function object (and reference): its WarmCache and assert_gradient's Targets. Keyed by identity, with the
# function held, so that two functions never share compiled work — two closures of one source (the same name and
# fingerprint) are two functions — and an identity cannot be reused while its entry lives.
_WARM: OrderedDict[tuple, tuple[object, object, object, dict]] = OrderedDict()


def _identity(value: object) -> object:
    return value if value is None or isinstance(value, str) else ("id", id(value))


def _entry(fn: object, reference: object) -> tuple:
    from gradfuzz.warm import WarmCache

    key = (_identity(fn), _identity(reference))
    if key in _WARM:
        _WARM.move_to_end(key)
        return _WARM[key]
    entry = _WARM[key] = (fn, reference, WarmCache(FUNCTION_ITEMS), {})
    while len(_WARM) > FUNCTIONS_KEPT:
        _WARM.popitem(last=False)
    return entry


def _warm_for(fn: object, reference: object = None):
    """The process-wide `WarmCache` of one function (and reference): `check` and `assert_gradient` reuse what an
    earlier call on the same function traced and compiled (a @given test traces once per shape)."""
    return _entry(fn, reference)[2]


def assert_gradient(fn: Callable, *inputs: object, reference: Callable | str | None = None, order: int = 1,
                    seed: int = 0, precision_digits: float | None = None, atol: float = 0.0,
                    rtol: float = 0.0) -> CheckReport:
    """Check ``fn``'s gradient at exactly ``inputs`` (arrays or tensors, one per argument) and raise
    `GradientCheckFailed` with the same verdicts and explanations a ``check`` run gives; return the
    one-example report when it passes. For your own Hypothesis tests::

        from hypothesis import given, settings
        import gradfuzz
        from gradfuzz.strategies import tensors

        @settings(deadline=None)  # the first call compiles the target (later ones reuse it)
        @given(tensors("float32[3]@-5..5"))
        def test_my_op_gradient(x):
            gradfuzz.assert_gradient(my_op, x)

    ``seed`` draws the cotangent and the difference direction; ``reference``, ``order``,
    ``precision_digits``, ``atol`` and ``rtol`` as for `check` (``assert_gradient(fn, x, rtol=1e-6)``
    accepts a gradient within 1e-6 of the largest gradient element, like ``torch.autograd.gradcheck``'s
    ``atol``/``rtol``).
    """
    __tracebackhide__ = True  # pytest shows the test's line and the message, not gradfuzz's source
    import numpy as np

    from gradfuzz.checker import check_example
    from gradfuzz.spec import parse_spec

    _check_tolerance(atol, rtol)
    _, _, warm, targets = _entry(fn, reference)
    # Described once per function and settings (its fingerprint reads the source); declaring it a surrogate later
    # (gradfuzz.surrogate sets an attribute on the function) describes it anew.
    tolerances = (precision_digits, float(atol), float(rtol), getattr(fn, "__gradfuzz_surrogate__", None))
    if tolerances not in targets:
        target = with_reference(describe_callable(fn), reference)
        if precision_digits is not None:
            target.precision_digits = float(precision_digits)
        target.atol, target.rtol = float(atol), float(rtol)
        targets[tolerances] = target
    target = targets[tolerances]
    arrays = [np.asarray(x) for x in inputs]
    specs = []
    for position, array in enumerate(arrays):
        text = f"{array.dtype.name}[{','.join(str(n) for n in array.shape)}]"
        try:
            specs.append(parse_spec(text))
        except ValueError as error:
            raise TypeError(f"assert_gradient: argument {position} has dtype {array.dtype.name}, which gradfuzz cannot "
                            f"check ({error}); pass float16/bfloat16/float32/float64/complex or int/bool arrays.") from None
    report = check_example(target, specs, arrays, seed=seed, order=order, warm=warm)
    if not report.ok and report.error is None:
        given = ", ".join(np.array2string(np.asarray(x), precision=9, threshold=8) for x in arrays)
        lines = [f"{report.target}: the gradient fails at the given input ({given}); each failure is shown at the "
                 "simplest input that fails the same way:"]
        lines += [f"  [{f.category}]: {f.explanation}" for f in report.failures]
        raise GradientCheckFailed("\n".join(lines))
    report.raise_if_failed()
    return report
