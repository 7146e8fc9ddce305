"""Export the store as a hive-partitioned Parquet dataset for pandas, polars and DuckDB.

Partitioned by ``target_key`` (the target name made path-safe) and ``category``.
Tensors appear twice: as the raw-bit structs of the store (exact) and as float64 list
columns (``*_f64``) because DuckDB and pandas cannot read float16 or bfloat16.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from gradfuzz.store import TENSOR, StoredFailure, encode_tensor

_F64_LIST = pa.list_(pa.list_(pa.float64()))

EXPORT_SCHEMA = pa.schema([
    ("id", pa.string()), ("run_id", pa.string()), ("time", pa.timestamp("us", tz="UTC")),
    ("target", pa.string()), ("target_key", pa.string()), ("fingerprint", pa.string()),
    ("category", pa.string()), ("status", pa.string()), ("region", pa.string()), ("signature", pa.string()),
    ("count", pa.int64()), ("specs", pa.list_(pa.string())), ("argument", pa.int64()), ("element", pa.int64()),
    ("custom_value", pa.float64()), ("reference_value", pa.float64()), ("reference_name", pa.string()),
    ("abs_error", pa.float64()), ("rel_error", pa.float64()), ("ulp_error", pa.float64()),
    ("explanation", pa.string()), ("seed", pa.int64()),
    ("inputs_f64", _F64_LIST), ("custom_f64", _F64_LIST), ("reference_f64", _F64_LIST),
    ("inputs", pa.list_(TENSOR)), ("cotangents", pa.list_(TENSOR)), ("tangents", pa.list_(TENSOR)),
])


_KEY_LENGTH = 120  # "target_key=" and the key stay well inside a file name's 255 bytes


def target_key(target: str) -> str:
    """A path-safe partition value for a target name; a long one is cut and given a hash of the
    whole name (distinct targets keep distinct keys).

    >>> target_key("examples/seed_ops.py:my_op")
    'examples_seed_ops.py_my_op'
    >>> len(target_key("x" * 300))
    120
    """
    key = re.sub(r"[^A-Za-z0-9._-]+", "_", target).strip("_") or "target"
    if len(key) <= _KEY_LENGTH:
        return key
    digest = hashlib.sha256(target.encode("utf-8", errors="surrogatepass")).hexdigest()[:16]
    return f"{key[:_KEY_LENGTH - len(digest) - 1]}-{digest}"


def export_dataset(failures: list[StoredFailure], directory: str | Path, *, overwrite: bool = False,
                   store: str | Path | None = None) -> int:
    """Write the failures under ``directory``; returns the number of rows written.

    ``overwrite`` replaces an earlier export only: never the ``store``, a directory holding it or the
    working directory, nor a directory holding anything but ``target_key=...`` partitions."""
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{directory} is not empty; pass --overwrite to replace it.")
        _refuse_to_delete(directory, store)
        shutil.rmtree(directory)
    table = pa.Table.from_pylist([_row(f) for f in failures], schema=EXPORT_SCHEMA)
    partitioning = ds.partitioning(pa.schema([("target_key", pa.string()), ("category", pa.string())]), flavor="hive")
    ds.write_dataset(table, directory, format="parquet", partitioning=partitioning,
                     existing_data_behavior="overwrite_or_ignore")
    return table.num_rows


def _f64(arrays) -> list[list[float]]:
    # Real parts for complex tensors (the raw-bit columns keep everything).
    return [[] if a is None else np.real(np.asarray(a)).astype(np.float64).ravel().tolist() for a in arrays]


def _row(f: StoredFailure) -> dict:
    return {
        "id": f.id, "run_id": f.run_id, "time": f.time, "target": f.target, "target_key": target_key(f.target),
        "fingerprint": f.fingerprint, "category": f.category, "status": f.status, "region": f.region,
        "signature": f.signature, "count": f.count, "specs": f.specs, "argument": f.argument, "element": f.element,
        "custom_value": f.custom_value, "reference_value": f.reference_value, "reference_name": f.reference_name,
        "abs_error": f.abs_error, "rel_error": f.rel_error, "ulp_error": f.ulp_error, "explanation": f.explanation,
        "seed": f.seed, "inputs_f64": _f64(f.inputs), "custom_f64": _f64(f.custom), "reference_f64": _f64(f.reference),
        "inputs": [encode_tensor(x) for x in f.inputs], "cotangents": [encode_tensor(x) for x in f.cotangents],
        "tangents": [encode_tensor(x) for x in f.tangents],
    }


def _refuse_to_delete(directory: Path, store: str | Path | None) -> None:
    target = directory.resolve()
    protected = [Path.cwd().resolve(), Path.home().resolve()] + ([Path(store).resolve()] if store is not None else [])
    for place in protected:
        if target == place or target in place.parents:
            raise FileExistsError(f"--overwrite would delete {directory}, which is or holds {place}; "
                                  "export to a directory of its own.")
    foreign = [entry.name for entry in directory.iterdir() if not entry.name.startswith("target_key=")]
    if foreign:
        raise FileExistsError(f"--overwrite replaces an earlier export only, and {directory} holds other things "
                              f"({', '.join(sorted(foreign)[:3])}); export to a directory of its own.")
