"""Stored failures as regression tests: ``gradfuzz export-tests`` and the pytest plugin.

A case is plain data (JSON-able): target name, specs, and the raw bits of the inputs,
cotangents and tangents. `check_case` replays it and raises `GradientCheckFailed` while
the failure still reproduces — so the exported test fails before the fix and passes after.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from gradfuzz.categories import Category
from gradfuzz.replay import Replayer
from gradfuzz.report import GradientCheckFailed
from gradfuzz.store import StoredFailure, decode_tensor, encode_tensor

_REPLAYER: Replayer | None = None


def case_from_failure(failure: StoredFailure) -> dict:
    def tensors(arrays):
        return [None if a is None else {**encode_tensor(a), "bits": encode_tensor(a)["bits"].hex()} for a in arrays]

    return {
        "id": failure.id, "target": failure.target, "specs": list(failure.specs), "category": failure.category,
        "argument": failure.argument, "element": failure.element, "inputs": tensors(failure.inputs),
        "cotangents": tensors(failure.cotangents), "tangents": tensors(failure.tangents),
        "reference_target": failure.reference_target, "variable_names": list(failure.variable_names),
        "variables": tensors(failure.variables),
    }


def failure_from_case(case: dict) -> StoredFailure:
    def tensors(values):
        return [None if v is None else decode_tensor({**v, "bits": bytes.fromhex(v["bits"])}) for v in values]

    return StoredFailure(id=case["id"], target=case["target"], category=case["category"], specs=case["specs"],
                         inputs=tensors(case["inputs"]), cotangents=tensors(case["cotangents"]),
                         tangents=tensors(case["tangents"]), argument=case["argument"], element=case["element"],
                         reference_target=case.get("reference_target", ""), variable_names=case.get("variable_names", []),
                         variables=tensors(case.get("variables", [])))


def check_failure(failure: StoredFailure, *, trust_store: bool = False) -> None:
    """Raise `GradientCheckFailed` if the stored failure still reproduces (or its target is gone)."""
    __tracebackhide__ = True
    global _REPLAYER
    if _REPLAYER is None or _REPLAYER.trust_store != trust_store:
        _REPLAYER = Replayer(trust_store=trust_store)
    result = _REPLAYER.replay(failure)
    if result.status == "fixed":
        return
    raise GradientCheckFailed(
        f"{failure.target}: stored {failure.category} failure {failure.id[:8]} is {result.status}: {result.detail}"
    )


def check_case(case: dict) -> None:
    __tracebackhide__ = True
    check_failure(failure_from_case(case))


def exported_target(name: str) -> Callable:
    """The function an exported test checks, loaded by its target name — only from the working
    directory or TensorFlow, as replay loads it (a store is as trusted as code)."""
    __tracebackhide__ = True
    from gradfuzz.replay import untrusted
    from gradfuzz.target import load_target

    reason = untrusted(name)
    if reason is not None:
        raise GradientCheckFailed(f"{name}: not imported: {reason}. Run the exported tests from the project's directory.")
    return load_target(name).fn


def tensor(dtype: str, shape: Sequence[int], bits: str) -> np.ndarray:
    """An input an exported test could not write as a literal (bfloat16, complex, large): its raw
    little-endian bits in hex, exactly as the store holds them."""
    return decode_tensor({"dtype": dtype, "shape": list(shape), "bits": bytes.fromhex(bits)})


LITERAL_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
MAX_LITERAL_ELEMENTS = 16  # larger tensors are written as bits: a 1,000-element literal reads no better


def _number(value: np.generic, dtype: np.dtype) -> str:
    """The shortest Python literal that gives back exactly ``value``'s bits at ``dtype``."""
    if dtype == np.bool_:
        return repr(bool(value))
    if dtype.kind in "iu":
        return repr(int(value))
    exact = np.asarray(value, dtype=dtype).tobytes()
    for text in (str(value), repr(float(value))):  # numpy's shortest for its dtype, then Python's for float64
        try:
            number = float(text)
        except ValueError:
            continue
        if np.asarray(number, dtype=dtype).tobytes() == exact:
            return f"float({text!r})" if text in ("nan", "inf", "-inf") else text
    return f"float.fromhex({float(value).hex()!r})"


def literal(array: np.ndarray) -> str:
    """``array`` as Python source an exported test shows: ``np.float64(0.5)``, ``np.array([1.0, -2.0],
    dtype=np.float32)``; exotic dtypes and large tensors as `tensor` with their raw bits."""
    array = np.asarray(array)
    dtype = array.dtype
    if dtype.name not in LITERAL_DTYPES or array.size > MAX_LITERAL_ELEMENTS:
        encoded = encode_tensor(array)
        return f"tensor({dtype.name!r}, {list(array.shape)}, {encoded['bits'].hex()!r})"
    name = "bool_" if dtype == np.bool_ else dtype.name
    if array.ndim == 0:
        return f"np.{name}({_number(array[()], dtype)})"
    if array.size == 0:
        return f"np.zeros({tuple(array.shape)}, dtype=np.{name})"

    def nested(a):
        return "[" + ", ".join(nested(x) if a.ndim > 1 else _number(x, dtype) for x in a) + "]"

    return f"np.array({nested(array)}, dtype=np.{name})"


# Replayed from their stored bits (cotangent and tangent included) rather than re-checked at the input:
# what they found depends on more than the input (execution modes, a crash, a layer's weights).
REPLAYED = frozenset({Category.EXCEPTION, Category.NONDETERMINISM})

_ARGUMENT_NAMES = ("x", "y", "z")


def _argument_names(count: int) -> list[str]:
    return list(_ARGUMENT_NAMES[:count]) if count <= len(_ARGUMENT_NAMES) else [f"x{i}" for i in range(count)]


def _identifier(text: str, taken: set[str]) -> str:
    import keyword
    import re

    name = re.sub(r"\W", "_", text.rsplit(":", 1)[-1].rsplit(".", 1)[-1]) or "target"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = f"target_{name}"
    unique, n = name, 2
    while unique in taken:
        unique, n = f"{name}_{n}", n + 1
    taken.add(unique)
    return unique


def write_tests(failures: list[StoredFailure], path: str | Path, store: str) -> int:
    """Write one pytest file: per target, its stored minimal failing inputs as literals in a
    ``pytest.mark.parametrize`` and one ``gradfuzz.assert_gradient(target, x)``; the failures that
    need more than their inputs (`REPLAYED`, or a layer's weights) replayed from their stored bits."""
    readable = [f for f in failures if f.category not in REPLAYED and not f.variables]
    replayed = [case_from_failure(f) for f in failures if f.category in REPLAYED or f.variables]
    groups: dict[tuple, list[StoredFailure]] = {}
    for failure in readable:
        order = 2 if failure.category == Category.HIGHER_ORDER else 1
        groups.setdefault((failure.target, failure.reference_target, len(failure.inputs), order), []).append(failure)
    taken = {"np", "pytest", "gradfuzz", "json", "STORE", "REPLAYED_CASES", "check_case", "exported_target", "tensor"}
    blocks, loads, uses_tensor = [], {}, False
    for (target, reference, arity, order), group in groups.items():
        if target not in loads:
            loads[target] = _identifier(target, taken)
        function = loads[target]
        names = _argument_names(arity)
        params = []
        for failure in group:
            values = [literal(x) for x in failure.inputs]
            uses_tensor |= any(v.startswith("tensor(") for v in values)
            params.append(f"    pytest.param({', '.join(values)}, id={f'{failure.category}-{failure.id[:8]}'!r}),")
        options = "".join([f", reference={reference!r}" if reference else "", ", order=2" if order == 2 else ""])
        test_name = f"test_{function}_gradient" + ("_second_order" if order == 2 else "")
        while test_name in taken:
            test_name += "_"
        taken.add(test_name)
        argnames = ", ".join(names)
        blocks.append(f"""@pytest.mark.parametrize({argnames!r}, [
{chr(10).join(params)}
])
def {test_name}({argnames}):
    gradfuzz.assert_gradient({function}, {argnames}{options})
""")
    load_lines = "".join(f"{variable} = exported_target({target!r})\n" for target, variable in loads.items())
    imports = ["check_case"] if replayed else []
    imports += ["exported_target"] if loads else []
    imports += ["tensor"] if uses_tensor else []
    header = f'''"""Gradient regression tests written by `gradfuzz export-tests` on {datetime.now(UTC):%Y-%m-%d} (store: STORE).

Each case is the simplest input at which gradfuzz found a gradient bug, written exactly (a float
prints as the shortest decimal that reads back to the same bits; bfloat16, complex and large
tensors as their raw bits). A case fails while the gradient is wrong there and passes once it is
fixed. Run pytest from the directory the targets' names are relative to.
"""
'''
    parts = [header, "\n"]
    if replayed:
        parts.append("import json\n")
    parts.append("import numpy as np\nimport pytest\n\nimport gradfuzz\n" if loads else "import pytest\n\n")
    if imports:
        parts.append(f"from gradfuzz.regression import {', '.join(imports)}\n")
    parts.append(f"\nSTORE = {str(store)!r}  # a Python literal: any path, quotes and backslashes included\n")
    if load_lines:
        parts.append("\n" + load_lines)
    for block in blocks:
        parts.append("\n\n" + block)
    if replayed:
        parts.append(f"""

# Replayed from their stored bits (inputs, cotangent, tangent, weights): what they found depends on more
# than the input (a crash, execution modes, a layer's weights).
REPLAYED_CASES = json.loads({json.dumps(json.dumps(replayed, indent=1))})


@pytest.mark.parametrize("case", REPLAYED_CASES,
                         ids=[f"{{c['target'].rsplit(':', 1)[-1]}}-{{c['category']}}-{{c['id'][:8]}}" for c in REPLAYED_CASES])
def test_stored_gradient_failure_is_fixed(case):
    check_case(case)
""")
    Path(path).write_text("".join(parts))
    return len(failures)
