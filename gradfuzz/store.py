"""The failure store: an append-only log of Arrow files, the source of truth.

Layout of a store directory (default ``.gradfuzz/``)::

    failures/segment-<time>-<id>.arrows   a writer's open segment (IPC stream, flushed per batch)
    failures/segment-<time>-<id>.arrow    a sealed segment (IPC file, atomic rename)
    status/...                            the same, for status events (a failure marked fixed)

Tensors are stored as raw little-endian bits (``uint8/16/32/64`` views) with
dtype and shape metadata, so float16, bfloat16, -0.0, subnormals and NaN
payloads round-trip exactly. Nothing is pickled: reading a store never
executes data. A reader recovers every complete batch of an unsealed or
truncated segment and reports what it skipped.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pyarrow as pa

SCHEMA_VERSION = 1
_METADATA = {b"gradfuzz.schema": str(SCHEMA_VERSION).encode(), b"gradfuzz.kind": b"failures"}


class StoreError(Exception):
    """A store that cannot be used at all (missing, not a directory, not writable)."""


# -- tensors as raw bits -------------------------------------------------------------

TENSOR = pa.struct([("dtype", pa.string()), ("shape", pa.list_(pa.int64())), ("bits", pa.binary())])


def encode_tensor(array: np.ndarray | None) -> dict[str, Any] | None:
    """Raw little-endian bytes plus dtype and shape; exact for every dtype.

    Each element (each half of a complex) is viewed as an unsigned integer of
    its width and written little-endian, whatever the machine's byte order.
    """
    if array is None:
        return None
    array = np.asarray(array)
    unit = _unit(array.dtype)
    raw = np.ascontiguousarray(array).reshape(-1).view(np.dtype(f"=u{unit}")).astype(f"<u{unit}")
    return {"dtype": array.dtype.name, "shape": list(array.shape), "bits": raw.tobytes()}


def decode_tensor(value: dict[str, Any] | None) -> np.ndarray | None:
    if value is None:
        return None
    dtype = _numpy_dtype(value["dtype"])
    unit = _unit(dtype)
    raw = np.frombuffer(value["bits"], dtype=np.dtype(f"<u{unit}")).astype(f"=u{unit}")
    return raw.view(dtype).reshape(value["shape"]).copy()


def _unit(dtype: np.dtype) -> int:
    unit = dtype.itemsize // 2 if dtype.kind == "c" else dtype.itemsize
    if unit not in (1, 2, 4, 8):
        raise TypeError(f"cannot store arrays of dtype {dtype}")
    return unit


def _numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


# -- records ---------------------------------------------------------------------------

FAILURE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("run_id", pa.string()),  # one check of one target; a bug's records from one run share it
        ("time", pa.timestamp("us", tz="UTC")),
        ("target", pa.string()),
        ("reference_target", pa.string()),  # a user-supplied reference function's name ("" if none)
        ("fingerprint", pa.string()),
        ("category", pa.string()),
        ("explanation", pa.string()),
        ("signature", pa.string()),
        ("region", pa.string()),  # where the failing element lies among the points of interest
        ("count", pa.int64()),
        ("specs", pa.list_(pa.string())),
        ("inputs", pa.list_(TENSOR)),
        ("cotangents", pa.list_(TENSOR)),
        ("tangents", pa.list_(TENSOR)),
        ("custom", pa.list_(TENSOR)),
        ("reference", pa.list_(TENSOR)),
        ("reference_name", pa.string()),
        ("argument", pa.int64()),
        ("element", pa.int64()),
        ("custom_value", pa.float64()),
        ("reference_value", pa.float64()),
        ("abs_error", pa.float64()),
        ("rel_error", pa.float64()),
        ("ulp_error", pa.float64()),
        ("evidence", pa.string()),  # JSON object of named numbers
        ("seed", pa.int64()),
        ("plan", pa.string()),
        ("environment", pa.string()),  # JSON object: versions, device, platform
        ("inputs_f64", pa.list_(pa.list_(pa.float64()))),  # convenience view for pandas/DuckDB
    ],
    metadata=_METADATA,
)

STATUS_SCHEMA = pa.schema(
    [("id", pa.string()), ("status", pa.string()), ("time", pa.timestamp("us", tz="UTC")), ("environment", pa.string())],
    metadata={b"gradfuzz.schema": str(SCHEMA_VERSION).encode(), b"gradfuzz.kind": b"status"},
)


@dataclass
class StoredFailure:
    """One failure read back from the store, tensors decoded bit-exactly."""

    id: str
    run_id: str
    time: datetime
    target: str
    fingerprint: str
    category: str
    explanation: str
    signature: str
    region: str
    count: int
    specs: list[str]
    inputs: list[np.ndarray]
    cotangents: list[np.ndarray]
    tangents: list[np.ndarray]
    custom: list[np.ndarray | None]
    reference: list[np.ndarray | None]
    reference_name: str
    argument: int | None
    element: int | None
    custom_value: float
    reference_value: float
    abs_error: float
    rel_error: float
    ulp_error: float
    evidence: dict[str, float]
    seed: int | None
    plan: str
    environment: dict[str, str]
    status: str = "open"
    status_time: datetime | None = None
    reference_target: str = ""


@dataclass
class ReadResult:
    failures: list[StoredFailure] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what could not be read, and why


def environment(device: str = "") -> dict[str, str]:
    from gradfuzz import __version__

    versions = {"gradfuzz": __version__, "python": platform.python_version(), "numpy": np.__version__,
                "platform": platform.platform(), "device": device}
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is not None:
        versions["tensorflow"] = tensorflow.__version__
    return versions


def failure_row(finding: Any, *, target: str, fingerprint: str, specs: Iterable[str], device: str = "",
                run_id: str = "", reference_target: str = "") -> dict[str, Any]:
    """Flatten a `gradfuzz.report.Finding` into one store row."""
    return {
        "id": uuid.uuid4().hex,
        "run_id": run_id,
        "reference_target": reference_target,
        "time": datetime.now(UTC),
        "target": target,
        "fingerprint": fingerprint,
        "category": finding.category,
        "explanation": finding.explanation,
        "signature": finding.signature,
        "region": getattr(finding, "region", "*"),
        "count": int(finding.count),
        "specs": list(specs),
        "inputs": [encode_tensor(x) for x in finding.inputs],
        "cotangents": [encode_tensor(x) for x in finding.cotangents],
        "tangents": [encode_tensor(x) for x in finding.tangents],
        "custom": [encode_tensor(x) for x in finding.custom],
        "reference": [encode_tensor(x) for x in finding.reference],
        "reference_name": finding.reference_name,
        "argument": finding.argument,
        "element": finding.element,
        "custom_value": float(finding.custom_value),
        "reference_value": float(finding.reference_value),
        "abs_error": float(finding.abs_error),
        "rel_error": float(finding.rel_error),
        "ulp_error": float(finding.ulp_error),
        "evidence": json.dumps({k: float(v) for k, v in finding.evidence.items()}),
        "seed": finding.seed,
        "plan": finding.plan,
        "environment": json.dumps(environment(device)),
        "inputs_f64": [np.asarray(x, dtype=np.float64).ravel().tolist() for x in finding.inputs],
    }


# -- writing -----------------------------------------------------------------------------


class SegmentWriter:
    """One writer's segment: an IPC stream flushed per batch, sealed on close.

    Sealing rewrites the stream as an IPC file next to it, fsyncs it, and
    renames it into place atomically; until then readers recover the stream.
    """

    def __init__(self, directory: Path, schema: pa.Schema):
        directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self.schema = schema
        self.stream_path = directory / f"segment-{stamp}-{uuid.uuid4().hex[:8]}.arrows"
        self._sink = open(self.stream_path, "wb")  # noqa: SIM115 - held open across appends, closed by seal()
        self._writer = pa.ipc.new_stream(self._sink, schema)
        self.rows = 0

    def append(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        self._writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=self.schema))
        self._sink.flush()
        os.fsync(self._sink.fileno())
        self.rows += len(rows)

    def seal(self) -> Path | None:
        self._writer.close()
        self._sink.close()
        if self.rows == 0:
            self.stream_path.unlink(missing_ok=True)
            return None
        with pa.OSFile(str(self.stream_path), "rb") as source:
            table = pa.ipc.open_stream(source).read_all()
        final = self.stream_path.with_suffix(".arrow")
        temporary = final.with_suffix(".arrow.tmp")
        with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, self.schema) as writer:
            writer.write_table(table)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        self.stream_path.unlink()
        return final


class FailureStore:
    """A store directory. Writers append; readers merge failures and status events."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._writers: dict[str, SegmentWriter] = {}

    # writing
    def _writer(self, kind: str, schema: pa.Schema) -> SegmentWriter:
        if kind not in self._writers:
            try:
                self._writers[kind] = SegmentWriter(self.root / kind, schema)
            except OSError as error:
                raise StoreError(
                    f"Cannot write to the store at {self.root}: {error.strerror or error}. "
                    "Pass a writable directory with --store DIR."
                ) from None
        return self._writers[kind]

    def append_failures(self, rows: list[dict[str, Any]]) -> None:
        self._writer("failures", FAILURE_SCHEMA).append(rows)

    def mark(self, failure_id: str, status: str, device: str = "") -> None:
        self._writer("status", STATUS_SCHEMA).append(
            [{"id": failure_id, "status": status, "time": datetime.now(UTC), "environment": json.dumps(environment(device))}]
        )

    def close(self) -> None:
        for writer in self._writers.values():
            writer.seal()
        self._writers.clear()

    def __enter__(self) -> FailureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # reading
    def read(self) -> ReadResult:
        if not self.root.exists():
            raise StoreError(f"No gradfuzz store at {self.root}: run 'gradfuzz check' first, or pass the store directory.")
        if not self.root.is_dir():
            raise StoreError(f"{self.root} is not a directory; a gradfuzz store is a directory (default .gradfuzz/).")
        result = ReadResult()
        statuses: dict[str, tuple[str, datetime]] = {}
        for batch, _ in _batches(self.root / "status", STATUS_SCHEMA, result.problems):
            for row in batch.to_pylist():
                statuses[row["id"]] = (row["status"], row["time"])
        for batch, path in _batches(self.root / "failures", FAILURE_SCHEMA, result.problems):
            for row in batch.to_pylist():
                try:
                    failure = _failure_from_row(row)
                except Exception as error:  # a damaged row: report it, keep the rest
                    result.problems.append(f"{path.name}: skipped record {row.get('id')!r}: {error}")
                    continue
                if failure.id in statuses:
                    failure.status, failure.status_time = statuses[failure.id]
                result.failures.append(failure)
        result.failures.sort(key=lambda f: f.time)
        return result


def _batches(directory: Path, schema: pa.Schema, problems: list[str]) -> Iterator[tuple[pa.RecordBatch, Path]]:
    if not directory.is_dir():
        return
    for path in sorted(directory.iterdir()):
        if path.suffix == ".arrow":
            yield from _read_file(path, schema, problems)
        elif path.suffix == ".arrows":
            yield from _read_stream(path, schema, problems)
        elif not path.name.endswith(".tmp"):
            problems.append(f"{path.name}: not a gradfuzz segment (expected .arrow or .arrows); ignored")


def _read_file(path: Path, schema: pa.Schema, problems: list[str]) -> Iterator[tuple[pa.RecordBatch, Path]]:
    try:
        reader = pa.ipc.open_file(pa.memory_map(str(path)))
    except (pa.ArrowInvalid, OSError) as error:
        # A sealed file that does not open may still be a stream (or a damaged file): try that.
        problems.append(f"{path.name}: not a readable Arrow file ({error}); trying to recover it as a stream")
        yield from _read_stream(path, schema, problems)
        return
    if not _compatible(path, reader.schema, schema, problems):
        return
    for index in range(reader.num_record_batches):
        try:
            yield reader.get_batch(index), path
        except pa.ArrowInvalid as error:
            problems.append(f"{path.name}: batch {index} unreadable ({error}); skipped")


def _read_stream(path: Path, schema: pa.Schema, problems: list[str]) -> Iterator[tuple[pa.RecordBatch, Path]]:
    try:
        reader = pa.ipc.open_stream(pa.memory_map(str(path)))
    except (pa.ArrowInvalid, OSError) as error:
        problems.append(f"{path.name}: not an Arrow stream either ({error}); nothing recovered from it")
        return
    if not _compatible(path, reader.schema, schema, problems):
        return
    count = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError) as error:
            problems.append(
                f"{path.name}: unsealed or truncated segment; recovered {count} complete batch(es), "
                f"skipped the incomplete tail ({error})"
            )
            return
        count += 1
        yield batch, path


def _compatible(path: Path, found: pa.Schema, expected: pa.Schema, problems: list[str]) -> bool:
    metadata = found.metadata or {}
    version = metadata.get(b"gradfuzz.schema")
    if version is None:
        problems.append(f"{path.name}: not a gradfuzz segment (no schema version in its metadata); ignored")
        return False
    if int(version) > SCHEMA_VERSION:
        problems.append(
            f"{path.name}: written by a newer gradfuzz (schema {int(version)}, this one reads up to "
            f"{SCHEMA_VERSION}); upgrade gradfuzz to read it"
        )
        return False
    return True


def _failure_from_row(row: dict[str, Any]) -> StoredFailure:
    return StoredFailure(
        id=row["id"], run_id=row.get("run_id") or "", time=row["time"], target=row["target"], fingerprint=row["fingerprint"],
        category=row["category"], explanation=row["explanation"], signature=row["signature"],
        region=row.get("region") or "*", count=row["count"], specs=list(row["specs"]),
        inputs=[decode_tensor(t) for t in row["inputs"]],
        cotangents=[decode_tensor(t) for t in row["cotangents"]],
        tangents=[decode_tensor(t) for t in row["tangents"]],
        custom=[decode_tensor(t) for t in row["custom"]],
        reference=[decode_tensor(t) for t in row["reference"]],
        reference_name=row["reference_name"], argument=row["argument"], element=row["element"],
        custom_value=row["custom_value"], reference_value=row["reference_value"],
        abs_error=row["abs_error"], rel_error=row["rel_error"], ulp_error=row["ulp_error"],
        evidence=json.loads(row["evidence"] or "{}"), seed=row["seed"], plan=row["plan"] or "",
        environment=json.loads(row["environment"] or "{}"), reference_target=row.get("reference_target") or "",
    )
