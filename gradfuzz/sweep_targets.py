"""Sweep table entries as targets: ``gradfuzz.sweep_targets:tf.math.betainc`` is a callable.

A `TableFunction` calls the function an entry names with the entry's constants — keyword
constants, positional constants, arguments packed into a list, a prepared matrix, one output
picked — and takes exactly the drawn arguments positionally, so the checker and replay see an
ordinary function of tensors. No lambda: the object is rebuilt from its name, which this module
resolves (``getattr(gradfuzz.sweep_targets, "tf.math.betainc")``), so stored failures replay and
``gradfuzz check 'gradfuzz.sweep_targets:tf.math.betainc' --input ...`` reproduces a sweep's check.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from typing import Any

from gradfuzz._tf import tf
from gradfuzz.sweep_table import TABLE, Entry, Like, full_name

MODULE = __name__


def resolve(name: str) -> Any:
    """The object a dotted public name (``tf.math.sin``, ``tensorflow.nn.relu``, ``pkg.mod.f``) names."""
    dotted = full_name(name)
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                value = getattr(value, attr)
        except AttributeError:
            raise AttributeError(f"{name}: {'.'.join(parts[:cut])} has no attribute {'.'.join(parts[cut:])!r}") from None
        return value
    raise ImportError(f"{name}: no importable module in {dotted!r}")


class TableFunction:
    """The function an entry names, called with the entry's constants on the drawn arguments."""

    def __init__(self, name: str, entry: Entry | None = None):
        self.label = name
        self.entry = entry if entry is not None else TABLE[name]
        if not self.entry.checked:
            raise ValueError(f"{name} is not checked by the sweep table: {self.entry.skip}")
        self.function = resolve(name)
        self.__name__ = self.__qualname__ = name
        self.__module__ = MODULE
        self.__doc__ = f"{name} as the sweep calls it: {describe(self.entry)}"
        count = len(self.entry.specs)
        names = self.entry.args or ([f"x{i}" for i in range(count)] if self.entry.pack else _parameter_names(
            self.function, count, skip=len(self.entry.leading)))
        self.argument_names = tuple(names)
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(n if n.isidentifier() else f"x{i}", inspect.Parameter.POSITIONAL_ONLY)
             for i, n in enumerate(self.argument_names)])
        self._positional = self.entry.args is None and not self.entry.pack

    def __call__(self, *xs):
        e = self.entry
        if len(xs) != len(self.argument_names):
            raise TypeError(f"{self.label} takes {len(self.argument_names)} argument(s) ({', '.join(self.argument_names)}), "
                            f"got {len(xs)}")
        dtype = next((x.dtype for x in map(_as_tensor, xs) if x.dtype.is_floating or x.dtype.is_complex), tf.float32)
        xs = [_prepare(x, p) for x, p in zip(xs, (*e.prepare, *[None] * len(xs)))]
        kwargs = {key: _materialise(value, dtype) for key, value in e.kw}
        leading = [_materialise(value, dtype) for value in e.leading]
        if e.pack:
            result = self.function(*leading, **{e.pack: list(xs)}, **kwargs)
        elif self._positional:
            result = self.function(*leading, *xs, **kwargs)
        else:
            result = self.function(*leading, **dict(zip(self.argument_names, xs)), **kwargs)
        if e.out is None:
            return result
        if isinstance(e.out, tuple):
            return tuple(result[i] for i in e.out)
        return result[e.out]

    def __repr__(self) -> str:
        return f"TableFunction({self.label!r}, {self.entry!r})"


def describe(entry: Entry) -> str:
    """The entry's call in words, for reports: constants, prepared arguments, the output taken."""
    parts = []
    if entry.leading:
        parts.append("leading " + ", ".join(repr(v) for v in entry.leading))
    if entry.kw:
        parts.append(", ".join(f"{k}={_show(v)}" for k, v in entry.kw))
    if entry.pack:
        parts.append(f"arguments packed as {entry.pack}=[...]")
    if any(entry.prepare):
        parts.append("prepared " + ", ".join(p or "-" for p in entry.prepare))
    if entry.out is not None:
        parts.append(f"output {entry.out}")
    return "; ".join(parts) or "called as is"


def fingerprint(entry: Entry) -> str:
    return hashlib.sha256(repr(entry).encode()).hexdigest()[:16]


def __getattr__(name: str) -> TableFunction:
    # ``gradfuzz.sweep_targets:tf.math.sin`` — the loader asks for the attribute "tf.math.sin".
    entry = TABLE.get(name)
    if entry is None or not entry.checked or name.startswith("__"):
        raise AttributeError(f"module {MODULE!r} has no attribute {name!r}")
    try:
        return TableFunction(name, entry)
    except (ImportError, AttributeError) as error:
        raise AttributeError(f"{name} is in the sweep table but cannot be loaded here: {error}") from None


# -- helpers ---------------------------------------------------------------------------------


def _parameter_names(fn: Any, count: int, skip: int = 0) -> list[str]:
    try:
        parameters = [p for p in inspect.signature(fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        parameters = []
    names = [p.name for p in parameters[skip:skip + count]]
    return names + [f"x{i}" for i in range(len(names), count)]


def _as_tensor(x):
    return x if isinstance(x, (tf.Tensor, tf.Variable)) else tf.convert_to_tensor(x)


def _materialise(value: Any, dtype) -> Any:
    if isinstance(value, Like):
        return tf.constant(value.value, dtype=dtype)
    if isinstance(value, list) and any(isinstance(v, Like) for v in value):
        return [_materialise(v, dtype) for v in value]
    return value


def _prepare(x, how: str | None):
    if how is None:
        return x
    n = x.shape[-1]
    eye = tf.eye(n, dtype=x.dtype)
    if how == "sym":
        return (x + tf.linalg.adjoint(x)) / 2
    if how == "spd":
        return tf.matmul(x, x, adjoint_b=True) + n * eye
    if how == "tril":
        return tf.linalg.band_part(x, -1, 0) + n * eye
    if how == "dominant":
        return x + (n + 1) * eye
    if how == "simplex":
        return x / tf.reduce_sum(x, axis=-1, keepdims=True)
    raise ValueError(f"unknown preparation {how!r}: use sym, spd, tril, dominant or simplex")


def _show(value: Any) -> str:
    if isinstance(value, Like):
        return f"{value.value!r}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value)
