"""Targets: the function under test, where it came from, and how to differentiate it.

A target is named ``pkg.module:attr`` or ``path/to/file.py:attr``; naming a
module or file without ``:attr`` selects every function in it that declares
its inputs with `inputs`. For a ``tf.custom_gradient`` function, unwrapping the
decorator yields the plain forward ``x -> (y, grad_fn)``; autodiff through that
forward is the Jacobian-based reference the custom gradient is judged against.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gradfuzz._tf import tf, tf_decorator
from gradfuzz.oracle import PRECISION_DIGITS
from gradfuzz.spec import ArgSpec, SpecError, spec_variants

_SPEC_ATTRIBUTE = "__gradfuzz_inputs__"
_SURROGATE_ATTRIBUTE = "__gradfuzz_surrogate__"


class TargetError(Exception):
    """A target that cannot be loaded or does not fit its specs (CLI exit code 2)."""


def inputs(*specs: str | ArgSpec) -> Callable[[Callable], Callable]:
    """Declare a target's input specs in code, so ``gradfuzz check`` needs no ``--input``.

    Put it above ``@tf.custom_gradient``::

        @gradfuzz.inputs("float32[]@-10..10")
        @tf.custom_gradient
        def clipped_relu(x): ...

    Specs are parsed immediately, so a malformed one fails at import time. Symbolic and
    ``[*]`` dimensions (``"float32[n,3]"``) declare a family of shapes (`spec_variants`).
    """
    spec_variants(specs)  # validate now
    declared = tuple(specs)

    def declare(fn: Callable) -> Callable:
        setattr(fn, _SPEC_ATTRIBUTE, declared)
        return fn

    return declare


def surrogate(reason: str) -> Callable[[Callable], Callable]:
    """Declare that a custom gradient deliberately differs from the derivative (a straight-through
    estimator, gradient reversal, clipping), and why. gradfuzz then still checks its shape, dtype,
    finiteness and determinism, but not its values against the derivative: where they differ, the
    report has a ``surrogate`` note instead of a failure. Put it above ``@tf.custom_gradient``::

        @gradfuzz.surrogate("straight-through estimator of sign(x)")
        @tf.custom_gradient
        def ste_sign(x): ...
    """
    if not isinstance(reason, str) or not reason.strip():
        raise TargetError("gradfuzz.surrogate needs a reason, e.g. @gradfuzz.surrogate(\"straight-through estimator\"): "
                          "it is shown with every surrogate note.")

    def declare(fn: Callable) -> Callable:
        setattr(fn, _SURROGATE_ATTRIBUTE, reason.strip())
        return fn

    return declare


@dataclass
class Target:
    """A loaded function under test."""

    name: str  # how to load it again: "pkg.mod:attr" or "path/file.py:attr"
    fn: Callable
    forward: Callable | None  # unwrapped custom-gradient forward, None for plain TF functions
    declared_specs: tuple[str | ArgSpec, ...] | None = None  # as declared (may name a family of shapes)
    fingerprint: str = field(default="")
    variables: list = field(default_factory=list)  # trainable tf.Variables the function reads (found by the probe)
    reference_target: str = ""  # a user-supplied reference function's target name, if any (the store column of that name)
    surrogate: str | None = None  # why the gradient deliberately differs from the derivative (`surrogate`)
    precision_digits: float = PRECISION_DIGITS  # precision losses below this many digits pass (`check`)
    atol: float = 0.0  # the user's escape hatch (`check(atol=, rtol=)`): per example, gaps up to
    rtol: float = 0.0  # atol + rtol·(largest |gradient| of the example) are never failures

    @property
    def verdict_settings(self) -> tuple[float, float, float, str | None]:
        """What a `Judge` reads from the target besides its function (part of its cache key): the
        tolerances and a declared surrogate (the same function declared a surrogate later is judged anew)."""
        return (self.precision_digits, self.atol, self.rtol, self.surrogate)

    @property
    def has_custom_gradient(self) -> bool:
        return self.forward is not None


def describe_callable(fn: Callable) -> Target:
    """Build a `Target` from a function object (the Python API path), a Keras layer or a
    ``tf.Module``. A layer is called on a batch of one (examples are unbatched), so its weights are
    checked like arguments; its specs may be declared on it with `inputs`."""
    if _is_layer(fn):
        return _layer_target(fn)
    if not callable(fn):
        raise TargetError(f"{fn!r} is a {type(fn).__name__}, not a callable: pass the function to check.")
    decorators, undecorated = tf_decorator.unwrap(fn)
    is_custom = any(getattr(d, "decorator_name", "") == "custom_gradient" for d in decorators)
    forward = undecorated if is_custom else None
    return Target(
        name=_reference_for(fn),
        fn=fn,
        forward=forward,
        declared_specs=getattr(fn, _SPEC_ATTRIBUTE, None),
        fingerprint=_fingerprint(undecorated),
        surrogate=getattr(fn, _SURROGATE_ATTRIBUTE, None),
    )


def _is_layer(value: object) -> bool:
    """A Keras layer or model (Keras 2 or 3; no import of Keras needed to tell)."""
    return any(c.__name__ == "Layer" and c.__module__.startswith(("keras", "tf_keras", "tensorflow.python.keras"))
               for c in type(value).__mro__)


def _layer_target(layer: Callable) -> Target:
    def call(*xs):
        result = layer(*[tf.expand_dims(x, 0) for x in xs])
        return tf.nest.map_structure(lambda y: y[0], result)

    call.__signature__ = inspect.signature(layer.call)  # its arity is the layer's
    name = getattr(layer, "name", type(layer).__name__)
    return Target(name=f"<layer>:{name}", fn=call, forward=None, declared_specs=getattr(layer, _SPEC_ATTRIBUTE, None),
                  fingerprint=_fingerprint(type(layer)))


def with_reference(target: Target, reference: Callable | str | None) -> Target:
    """Use ``reference`` (a plain function computing the same forward, or its target name)
    as the autodiff reference instead of the unwrapped forward."""
    if reference is None:
        return target
    name = reference if isinstance(reference, str) else _reference_for(reference)
    fn = load_target(reference).fn if isinstance(reference, str) else reference
    if not callable(fn):
        raise TargetError(f"The reference {reference!r} is not callable: pass a function computing the same forward.")
    decorators, undecorated = tf_decorator.unwrap(fn)
    forward = undecorated if any(getattr(d, "decorator_name", "") == "custom_gradient" for d in decorators) else None
    target.forward = forward if forward is not None else (lambda *xs: (fn(*xs), None))
    target.reference_target = name
    return target


def resolve_variants(target: Target, specs: Sequence[str | ArgSpec] | None) -> list[tuple[ArgSpec, ...]]:
    """The concrete spec tuples to fuzz with (several when the specs use symbolic or ``[*]``
    dimensions), each checked against the function's arguments."""
    chosen = specs if specs else target.declared_specs
    if not chosen:
        return [resolve_specs(target, None)]  # raises the helpful error
    return [resolve_specs(target, variant) for variant in spec_variants(tuple(chosen))]


def resolve_specs(target: Target, specs: Sequence[str | ArgSpec] | None) -> tuple[ArgSpec, ...]:
    """Pick the (concrete) specs to fuzz with and check that they fit the function's arguments."""
    chosen = specs if specs else target.declared_specs
    if chosen:
        variants = spec_variants(tuple(chosen))
        if len(variants) > 1:
            raise TargetError(f"{target.name}: {', '.join(map(str, chosen))} stand for {len(variants)} shapes; "
                              "check each (resolve_variants) or give concrete dimensions.")
        chosen = variants[0]
    if not chosen:
        raise TargetError(
            f"{target.name}: no input specs. Give one --input SPEC per positional argument "
            "(e.g. --input 'float64[]'), or declare them in code with "
            "@gradfuzz.inputs('float64[]') above the function."
        )
    if not any(spec.differentiable for spec in chosen):
        raise TargetError(
            f"{target.name}: no floating-point argument among {', '.join(map(str, chosen))}; there is no "
            "gradient to check. Give at least one float16/bfloat16/float32/float64 input."
        )
    low, high = _positional_arity(target.forward or target.fn)
    if not low <= len(chosen) <= high:
        expected = str(low) if low == high else f"{low} to {'any number' if high > 99 else high}"
        raise TargetError(
            f"{target.name} takes {expected} positional argument(s) but {len(chosen)} input "
            f"spec(s) were given ({', '.join(map(str, chosen))}). Give exactly one spec per argument."
        )
    return tuple(chosen)


def load_targets(reference: str) -> list[Target]:
    """Load ``module:attr``, ``file.py:attr``, or every declared target of a module or file."""
    module_part, _, attr = reference.partition(":")
    if not module_part:
        raise TargetError(f"Target {reference!r} names no module or file. Use 'pkg.module:attr' or 'path/file.py:attr'.")
    module, display = _import(module_part)
    if attr:
        return [_target_from_attribute(module, display, attr)]
    declared = [
        name
        for name, value in vars(module).items()
        if callable(value) and getattr(value, _SPEC_ATTRIBUTE, None) and not name.startswith("_")
    ]
    if not declared:
        raise TargetError(
            f"{display} declares no targets. Name one function ('{display}:my_op'), or mark "
            "functions with @gradfuzz.inputs(...) so a bare module or file selects them."
        )
    return [_target_from_attribute(module, display, name) for name in declared]


def load_target(reference: str) -> Target:
    targets = load_targets(reference)
    if len(targets) != 1:
        raise TargetError(f"{reference!r} selects {len(targets)} targets; name one with ':attr'.")
    return targets[0]


def _target_from_attribute(module: object, display: str, attr: str) -> Target:
    try:
        value = getattr(module, attr)
    except AttributeError:
        candidates = sorted(
            n for n, v in vars(module).items() if callable(v) and not n.startswith("_") and not inspect.ismodule(v)
        )
        listing = f" Callables defined there: {', '.join(candidates[:12])}." if candidates else ""
        raise TargetError(f"{display} has no attribute {attr!r}.{listing}") from None
    if (not callable(value) and not _is_layer(value)) or inspect.isclass(value):
        kind = "class" if inspect.isclass(value) else type(value).__name__
        raise TargetError(
            f"{display}:{attr} is a {kind}, not a function. Point the target at a function "
            "(a tf.custom_gradient function or a plain TensorFlow function)."
        )
    factory = _is_factory(value)
    if factory:  # `make_layer()`: a fresh layer per load (replay restores the stored weights)
        try:
            built = value()
        except Exception as error:
            raise TargetError(_import_failure(f"{display}:{attr}()", error)) from None
        target = describe_callable(built)
        target.declared_specs = target.declared_specs or getattr(value, _SPEC_ATTRIBUTE, None)
        target.fingerprint = _fingerprint(value)
    else:
        target = describe_callable(value)
    target.name = f"{display}:{attr}"
    return target


def _is_factory(value: object) -> bool:
    """A function of no arguments (what builds a layer or module to check), not a target itself."""
    if not inspect.isfunction(value) or tf_decorator.unwrap(value)[0]:
        return False
    return not inspect.signature(value).parameters


def _import(module_part: str) -> tuple[object, str]:
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        return _import_file(Path(module_part)), module_part
    try:
        return importlib.import_module(module_part), module_part
    except ModuleNotFoundError as error:
        if error.name and module_part.startswith(error.name):
            raise TargetError(
                f"Cannot import module {module_part!r}: {error}. Check the spelling, that the "
                "package is installed in this environment (or the current directory is on "
                "PYTHONPATH), or name a file instead: 'path/to/file.py:attr'."
            ) from None
        raise TargetError(_import_failure(module_part, error)) from None
    except Exception as error:  # the module itself raised while importing
        raise TargetError(_import_failure(module_part, error)) from None


def _import_file(path: Path) -> object:
    if not path.is_file():
        raise TargetError(f"No such file: {str(path)!r} (relative to {Path.cwd()}). Check the path of the target.")
    resolved = path.resolve()
    # A fresh module per load, so that replay after an edit sees the new code.
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    module_name = f"gradfuzz_target_{resolved.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise TargetError(f"Cannot load {str(path)!r} as a Python file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling-free introspection need it
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        sys.modules.pop(module_name, None)
        raise TargetError(_import_failure(str(path), error)) from None
    return module


def _import_failure(what: str, error: BaseException) -> str:
    where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    location = f" (at {where.filename}:{where.lineno})" if where else ""
    return f"Importing {what} raised {type(error).__name__}: {error}{location}. Fix the error in the target's module, then run again."


def _positional_arity(fn: Callable) -> tuple[int, int]:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 0, 1_000
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return sum(p.default is p.empty for p in positional), 1_000
    return sum(p.default is p.empty for p in positional), len(positional)


def _reference_for(fn: Callable) -> str:
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    qualname = getattr(fn, "__qualname__", getattr(fn, "__name__", "?"))
    if module is None or "<locals>" in qualname or "<lambda>" in qualname:
        return f"<local>:{qualname}"
    file = getattr(module, "__file__", None)
    if module.__name__ == "__main__" or module.__name__.startswith("gradfuzz_target_"):
        return f"{file}:{qualname}" if file else f"<local>:{qualname}"
    return f"{module.__name__}:{qualname}"


def _fingerprint(fn: Callable) -> str:
    try:
        source = inspect.getsource(fn).encode()
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        source = code.co_code if code is not None else repr(fn).encode()
    return hashlib.sha256(source).hexdigest()[:16]


__all__ = ["SpecError", "Target", "TargetError", "describe_callable", "inputs", "load_target", "load_targets", "resolve_specs",
           "resolve_variants", "surrogate"]
