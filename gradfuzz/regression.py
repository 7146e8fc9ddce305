"""Stored failures as regression tests: ``gradfuzz export-tests`` and the pytest plugin.

A case is plain data (JSON-able): target name, specs, and the raw bits of the inputs,
cotangents and tangents. `check_case` replays it and raises `GradientCheckFailed` while
the failure still reproduces — so the exported test fails before the fix and passes after.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

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
    }


def failure_from_case(case: dict) -> StoredFailure:
    def tensors(values):
        return [None if v is None else decode_tensor({**v, "bits": bytes.fromhex(v["bits"])}) for v in values]

    return StoredFailure(id=case["id"], target=case["target"], category=case["category"], specs=case["specs"],
                         inputs=tensors(case["inputs"]), cotangents=tensors(case["cotangents"]),
                         tangents=tensors(case["tangents"]), argument=case["argument"], element=case["element"])


def check_failure(failure: StoredFailure, *, trust_store: bool = False) -> None:
    """Raise `GradientCheckFailed` if the stored failure still reproduces (or its target is gone)."""
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
    check_failure(failure_from_case(case))


def write_tests(failures: list[StoredFailure], path: str | Path, store: str) -> int:
    cases = [case_from_failure(f) for f in failures]
    source = f'''"""Gradient regression tests written by `gradfuzz export-tests` on {datetime.now(UTC):%Y-%m-%d} (store: STORE).

Each case is a stored gradfuzz failure (inputs as raw bits). A test fails while the failure
reproduces and passes once the gradient is fixed. Run with pytest from the directory the
targets' names are relative to.
"""

import json

import pytest

from gradfuzz.regression import check_case

STORE = {str(store)!r}  # a Python literal: any path, quotes and backslashes included

CASES = json.loads({json.dumps(json.dumps(cases, indent=1))})


@pytest.mark.parametrize("case", CASES, ids=[f"{{c['target'].rsplit(':', 1)[-1]}}-{{c['category']}}-{{c['id'][:8]}}" for c in CASES])
def test_stored_gradient_failure_is_fixed(case):
    check_case(case)
'''
    Path(path).write_text(source)
    return len(cases)
