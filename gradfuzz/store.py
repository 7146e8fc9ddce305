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

import importlib.metadata
import json
import os
import platform
import sys
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

SCHEMA_VERSION = 1
_METADATA = {b"gradfuzz.schema": str(SCHEMA_VERSION).encode(), b"gradfuzz.kind": b"failures"}


class RecordStatus(StrEnum):
    """A failure record's status, from the latest status event."""

    OPEN = "open"
    FIXED = "fixed"
    # Written while a run went on, then folded into another finding of the same run (one cause, one
    # finding): not a finding of its own. Readers leave it out.
    SUPERSEDED = "superseded"


class StoreError(Exception):
    """A store that cannot be used at all (missing, not a directory, not writable)."""


# -- one campaign or gate per store ---------------------------------------------------------


class StoreLock:
    """An exclusive lock on a store for a campaign or gate (``fcntl.flock`` on ``<store>/.lock``).

    A second holder fails at once with a message naming the first (its command, host, pid and start
    time); the lock is the operating system's, so a killed holder releases it by dying.
    """

    def __init__(self, root: str | os.PathLike, purpose: str):
        self.path = Path(root) / ".lock"
        self.purpose = purpose
        self._handle = None

    def __enter__(self) -> StoreLock:
        import fcntl
        import socket

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+")  # held for the lock's life
        except OSError as error:
            raise StoreError(f"Cannot lock the store at {self.path.parent}: {error.strerror or error}.") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StoreError(f"The store {self.path.parent} is in use by {holder}. Wait for it to finish, stop it, "
                             "or give this run a store of its own (store = ... in the config).") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{self.purpose} (pid {os.getpid()} on {socket.gethostname()}, since "
                     f"{datetime.now(UTC).isoformat(timespec='seconds')})")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()  # closing releases the lock
            self._handle = None


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
    if any(value.get(key) is None for key in ("dtype", "shape", "bits")):
        raise ValueError("a tensor without its dtype, shape or bits")
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
        import ml_dtypes  # (its import takes most of a second: only when a record holds bfloat16)

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


# -- records ---------------------------------------------------------------------------
# One definition: `StoredFailure`'s fields, each with its Arrow type and codec. The Arrow schema,
# a finding's row (`failure_row`) and a row's record (`_failure_from_row`) are derived from it.

_CODECS: dict[str, tuple[Any, Any]] = {  # codec: (to the column, from the column)
    "value": (lambda v: v, lambda v: v),
    "int": (int, lambda v: v),
    "float": (float, lambda v: v),
    "strings": (list, lambda xs: [x for x in xs if x is not None]),
    "tensors": (lambda xs: [encode_tensor(x) for x in xs], lambda xs: [decode_tensor(t) for t in xs]),
    "json": (lambda d: json.dumps({k: (v if isinstance(v, str) else float(v)) for k, v in d.items()}),
             lambda text: _json_object(text)),
}


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text or "{}")
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, found {type(value).__name__}")
    return value


def _column(arrow: pa.DataType, codec: str = "value", absent: Any = None, factory: Any = None) -> Any:
    """A field stored as a column; ``absent`` (or ``factory()``) is its value where a row lacks it."""
    metadata = {"arrow": arrow, "codec": codec}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=absent, metadata=metadata)


@dataclass
class StoredFailure:
    """One failure record, as stored and as read back (tensors decoded bit-exactly)."""

    id: str = _column(pa.string(), absent="")
    run_id: str = _column(pa.string(), absent="")  # one check of one target; a bug's records from one run share it
    time: datetime = _column(pa.timestamp("us", tz="UTC"), factory=lambda: datetime.now(UTC))
    target: str = _column(pa.string(), absent="")
    reference_target: str = _column(pa.string(), absent="")  # a user-supplied reference function's name ("" if none)
    fingerprint: str = _column(pa.string(), absent="")
    category: str = _column(pa.string(), absent="")
    explanation: str = _column(pa.string(), absent="")
    signature: str = _column(pa.string(), absent="")
    region: str = _column(pa.string(), absent="*")  # where the failing element lies among the points of interest
    regions_seen: list[str] = _column(pa.list_(pa.string()), "strings", factory=list)  # every region the kind showed in
    count: int = _column(pa.int64(), "int", absent=1)
    specs: list[str] = _column(pa.list_(pa.string()), "strings", factory=list)
    inputs: list[np.ndarray] = _column(pa.list_(TENSOR), "tensors", factory=list)
    cotangents: list[np.ndarray] = _column(pa.list_(TENSOR), "tensors", factory=list)
    tangents: list[np.ndarray] = _column(pa.list_(TENSOR), "tensors", factory=list)
    custom: list[np.ndarray | None] = _column(pa.list_(TENSOR), "tensors", factory=list)
    reference: list[np.ndarray | None] = _column(pa.list_(TENSOR), "tensors", factory=list)
    reference_name: str = _column(pa.string(), absent="")
    argument: int | None = _column(pa.int64())
    element: int | None = _column(pa.int64())
    custom_value: float = _column(pa.float64(), "float", absent=float("nan"))
    reference_value: float = _column(pa.float64(), "float", absent=float("nan"))
    abs_error: float = _column(pa.float64(), "float", absent=float("nan"))
    rel_error: float = _column(pa.float64(), "float", absent=float("nan"))
    ulp_error: float = _column(pa.float64(), "float", absent=float("nan"))
    evidence: dict[str, float] = _column(pa.string(), "json", factory=dict)  # JSON object of named numbers
    seed: int | None = _column(pa.int64())
    plan: str = _column(pa.string(), absent="")
    environment: dict[str, str] = _column(pa.string(), "json", factory=dict)  # versions, device, platform
    # The trainable variables the target read (a layer's weights) as they were, so replay restores them.
    variable_names: list[str] = _column(pa.list_(pa.string()), "strings", factory=list)
    variables: list[np.ndarray] = _column(pa.list_(TENSOR), "tensors", factory=list)
    # Not columns: the latest status event (`FailureStore.mark`) for this record.
    status: str = RecordStatus.OPEN
    status_time: datetime | None = None


_COLUMNS = [f for f in fields(StoredFailure) if "arrow" in f.metadata]
# Given by the writer, not taken from the finding.
_WRITER_COLUMNS = ("id", "run_id", "time", "target", "reference_target", "fingerprint", "specs", "environment",
                   "variable_names", "variables")

FAILURE_SCHEMA = pa.schema(
    [(f.name, f.metadata["arrow"]) for f in _COLUMNS]
    + [("inputs_f64", pa.list_(pa.list_(pa.float64())))],  # a convenience view for pandas/DuckDB, written not read
    metadata=_METADATA,
)

STATUS_SCHEMA = pa.schema(
    [("id", pa.string()), ("status", pa.string()), ("time", pa.timestamp("us", tz="UTC")), ("environment", pa.string()),
     # 1 + the highest sequence of this failure's events the writer saw: the order of events, whatever the clocks say
     # (absent in older segments: 0, ordered by time).
     ("sequence", pa.int64())],
    metadata={b"gradfuzz.schema": str(SCHEMA_VERSION).encode(), b"gradfuzz.kind": b"status"},
)


def gradfuzz_version() -> str:
    """From the installed package's metadata (not the package face: that would import the checker)."""
    try:
        return importlib.metadata.version("gradfuzz")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


@dataclass
class ReadResult:
    failures: list[StoredFailure] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what could not be read, and why
    superseded: int = 0  # records a run wrote, then folded into another of its findings (left out of ``failures``)


def environment(device: str = "") -> dict[str, str]:
    versions = {"gradfuzz": gradfuzz_version(), "python": platform.python_version(), "numpy": np.__version__,
                "platform": platform.platform(), "device": device}
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is not None:
        versions["tensorflow"] = tensorflow.__version__
    return versions


def failure_row(finding: Any, *, target: str, fingerprint: str, specs: Iterable[str], device: str = "",
                run_id: str = "", reference_target: str = "", variables: Sequence[tuple[str, np.ndarray]] = ()
                ) -> dict[str, Any]:
    """A `gradfuzz.report.Finding` as one store row: its fields as the columns of `StoredFailure`;
    ``variables`` are the (name, value) pairs of the trainable variables the target read."""
    record_id = getattr(finding, "record_id", "") or uuid.uuid4().hex
    if hasattr(finding, "record_id"):
        finding.record_id = record_id  # written again (in its final form), it replaces this row: same id
    given = {"id": record_id, "run_id": run_id, "time": datetime.now(UTC), "target": target,
             "reference_target": reference_target, "fingerprint": fingerprint, "specs": list(specs),
             "environment": environment(device), "variable_names": [name for name, _ in variables],
             "variables": [np.asarray(value) for _, value in variables]}
    row = {}
    for column in _COLUMNS:
        # Every other column is a field of the finding by the same name (tests/test_store.py checks it): no
        # default here, so a field renamed on one side fails loudly instead of storing a default.
        value = given[column.name] if column.name in _WRITER_COLUMNS else getattr(finding, column.name)
        row[column.name] = None if value is None else _CODECS[column.metadata["codec"]][0](value)
    row["inputs_f64"] = [np.real(np.asarray(x)).astype(np.float64).ravel().tolist() for x in finding.inputs]
    return row


def _absent(column: Any) -> Any:
    return column.default_factory() if column.default is MISSING else column.default


# -- writing -----------------------------------------------------------------------------


def fsync_directory(directory: Path) -> None:
    """Make a create, rename or unlink in ``directory`` durable: after a power loss a renamed
    checkpoint must not survive while the new segment beside it is gone."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # platforms without directory descriptors
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` whole or not at all (a temp file synced, renamed, the rename synced):
    a checkpoint or a state file read after a crash is the old one or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)


class SegmentWriter:
    """One writer's segment: an IPC stream flushed per batch, sealed on close.

    Sealing rewrites the stream as an IPC file next to it, fsyncs it, and
    renames it into place atomically; until then readers recover the stream.
    """

    def __init__(self, directory: Path, schema: pa.Schema):
        created = not directory.is_dir()
        directory.mkdir(parents=True, exist_ok=True)
        if created:
            fsync_directory(directory.parent)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self.schema = schema
        self.directory = directory
        self.stream_path = directory / f"segment-{stamp}-{uuid.uuid4().hex[:8]}.arrows"
        self._sink = open(self.stream_path, "wb")  # noqa: SIM115 - held open across appends, closed by seal()
        self._writer = pa.ipc.new_stream(self._sink, schema)
        self._sink.flush()
        fsync_directory(directory)
        self.rows = 0
        self.broken: BaseException | None = None  # a failed write: nothing more is appended after it
        self.failure: str | None = None  # what the failed write said (the error to see first, also when closing)

    def append(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self.broken is not None:
            raise StoreError(f"The store segment {self.stream_path} failed earlier ({self.broken}); "
                             "nothing more is written to it. Check the disk, then run again.")
        if not self.stream_path.exists():  # appending to an unlinked file would succeed, and keep nothing
            self.broken = FileNotFoundError(str(self.stream_path))
            raise StoreError(deleted_store_message(self.directory.parent, self.rows))
        try:
            self._writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=self.schema))
            self._sink.flush()
            os.fsync(self._sink.fileno())
        except OSError as error:
            self.broken = error
            self.failure = (f"Writing to the store segment {self.stream_path} failed: {error.strerror or error}. "
                            f"The {self.rows} record(s) written before are kept. Free space on that disk (or pass "
                            "another --store DIR), then run again.")
            raise StoreError(self.failure) from error
        self.rows += len(rows)

    def seal(self) -> Path | None:
        try:
            self._writer.close()
        finally:
            self._sink.close()
        if self.rows == 0:
            self.stream_path.unlink(missing_ok=True)
            fsync_directory(self.directory)
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
        fsync_directory(self.directory)
        # A crash here leaves both: readers then take the sealed file and ignore the stream.
        self.stream_path.unlink()
        fsync_directory(self.directory)
        return final


def deleted_store_message(root: Path, rows: int) -> str:
    """What to say when the store directory (or its segment) was deleted while a run wrote to it."""
    return (f"The store {root} was deleted while this run was writing to it: the {rows} record(s) written to it are "
            "gone with it. Keep the store in place while a run uses it (nothing may clean it up meanwhile), then run again.")


class FailureStore:
    """A store directory. Writers append; readers merge failures and status events."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._writers: dict[str, SegmentWriter] = {}
        self._sequences: dict[str, int] | None = None  # each failure's latest status event's sequence, once read

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

    def ensure_writable(self) -> None:
        """Open the failures segment now, so a read-only store fails before the budget is spent."""
        self._writer("failures", FAILURE_SCHEMA)

    def append_failures(self, rows: list[dict[str, Any]]) -> None:
        self._writer("failures", FAILURE_SCHEMA).append(rows)

    def mark(self, failure_id: str, status: str, device: str = "") -> None:
        """Append a status event that supersedes every event for ``failure_id`` this store has seen
        (its sequence is one more than theirs), whatever the clock of the machine that wrote them said."""
        if self._sequences is None:
            self._sequences = {key: sequence for key, (_, _, sequence) in self._statuses([]).items()}
        sequence = self._sequences.get(failure_id, 0) + 1
        self._writer("status", STATUS_SCHEMA).append(
            [{"id": failure_id, "status": status, "time": datetime.now(UTC), "environment": json.dumps(environment(device)),
              "sequence": sequence}]
        )
        self._sequences[failure_id] = sequence

    def close(self) -> None:
        """Seal every writer, even if one fails (its stream stays readable); then raise the first error."""
        errors = []
        deleted = [writer for writer in self._writers.values() if writer.rows and not writer.stream_path.exists()]
        failed = [writer.failure for writer in self._writers.values() if writer.failure is not None]
        for writer in self._writers.values():
            try:
                writer.seal()
            except Exception as error:
                errors.append(error)
        self._writers.clear()
        if deleted:  # nothing "stays readable" in a directory that is gone
            raise StoreError(deleted_store_message(self.root, sum(writer.rows for writer in deleted)))
        if errors:
            sealing = (f"Sealing a store segment failed ({errors[0]}); its records stay readable in the unsealed stream "
                       "(.arrows)")
            # A write that failed first (a full disk) is the cause to see, and says what to do.
            raise StoreError(f"{failed[0]} ({sealing}.)" if failed else
                             f"{sealing}. Check the disk (free space, or pass another --store DIR), then run again.") from errors[0]

    def __enter__(self) -> FailureStore:
        return self

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        try:
            self.close()
        except StoreError:
            if error is None:
                raise  # else the error that ended the block is the one to see

    # reading
    def read(self) -> ReadResult:
        if not self.root.exists():
            raise StoreError(f"No gradfuzz store at {self.root}: run 'gradfuzz check' first, or pass the store directory.")
        if not self.root.is_dir():
            raise StoreError(f"{self.root} is not a directory; a gradfuzz store is a directory (default .gradfuzz/).")
        result = ReadResult()
        statuses = self._statuses(result.problems)
        self._sequences = {key: sequence for key, (_, _, sequence) in statuses.items()}
        records: dict[str, StoredFailure] = {}
        for batch, path in _batches(self.root / "failures", FAILURE_SCHEMA, result.problems):
            for row in _rows(batch, path, result.problems):
                try:
                    failure = _failure_from_row(row)
                except Exception as error:  # a damaged row: report it, keep the rest
                    result.problems.append(f"{path.name}: skipped record {row.get('id')!r}: {error}")
                    continue
                if failure.id in statuses:
                    failure.status, failure.status_time, _ = statuses[failure.id]
                latest = records.get(failure.id)
                if latest is None or failure.time >= latest.time:  # a record written again: its final form
                    records[failure.id] = failure
        superseded = [f for f in records.values() if f.status == RecordStatus.SUPERSEDED]
        result.superseded = len(superseded)  # folded into another finding of their run: not findings
        result.failures = sorted((f for f in records.values() if f.status != RecordStatus.SUPERSEDED), key=lambda f: f.time)
        return result

    def _statuses(self, problems: list[str]) -> dict[str, tuple[str, datetime, int]]:
        """Each failure's latest status event: (status, time, sequence).

        The event with the highest sequence wins, then the later time, then the one read last: an
        event written after another supersedes it even when its machine's clock is behind (a
        ``fixed``, then an ``open`` stamped earlier, is still a regression)."""
        latest: dict[str, tuple[tuple[int, datetime, int], str]] = {}
        order = 0
        for batch, path in _batches(self.root / "status", STATUS_SCHEMA, problems):
            for row in _rows(batch, path, problems):
                order += 1
                if row.get("id") is None or row.get("time") is None or row.get("status") not in set(RecordStatus):
                    problems.append(f"{path.name}: skipped a status event without an id, a time or a known status "
                                    f"({row.get('id')!r}, {row.get('status')!r})")
                    continue
                key = (row.get("sequence") or 0, row["time"], order)
                if row["id"] not in latest or key >= latest[row["id"]][0]:
                    latest[row["id"]] = (key, row["status"])
        return {name: (status, key[1], key[0]) for name, (key, status) in latest.items()}


def _batches(directory: Path, schema: pa.Schema, problems: list[str]) -> Iterator[tuple[pa.RecordBatch, Path]]:
    if not directory.is_dir():
        return
    try:
        paths = sorted(directory.iterdir())
    except OSError as error:
        problems.append(f"{directory.name}/: cannot be listed ({error.strerror or error}); nothing read from it")
        return
    sealed = {path.stem for path in paths if path.suffix == ".arrow" and path.is_file()}
    for path in paths:
        if not path.is_file():
            problems.append(f"{path.name}: not a regular file (a directory?); ignored")
        elif path.suffix == ".arrow":
            yield from _read_file(path, schema, problems)
        elif path.suffix == ".arrows" and path.stem in sealed:
            # A crash between sealing and deleting the stream: the sealed file holds the same records.
            problems.append(f"{path.name}: already sealed as {path.stem}.arrow (a crash while sealing); ignored")
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
        # An IPC file is "ARROW1" and padding, then a stream, then a footer: a truncated one loses only
        # the footer and its last batch, so its stream is read after the 8-byte preamble.
        try:
            with open(path, "rb") as handle:
                offset = _FILE_PREAMBLE if handle.read(6) == b"ARROW1" else 0
        except OSError:
            offset = 0
        yield from _read_stream(path, schema, problems, offset)
        return
    if not _compatible(path, reader.schema, schema, problems):
        return
    for index in range(reader.num_record_batches):
        try:
            batch = reader.get_batch(index)
            batch.validate(full=True)
        except (pa.ArrowException, OSError) as error:
            problems.append(f"{path.name}: batch {index} unreadable ({error}); skipped")
            continue
        yield batch, path


_FILE_PREAMBLE = 8


def _read_stream(path: Path, schema: pa.Schema, problems: list[str], offset: int = 0) -> Iterator[tuple[pa.RecordBatch, Path]]:
    try:
        source = pa.memory_map(str(path))
        source.seek(offset)
        reader = pa.ipc.open_stream(source)
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
        except (pa.ArrowException, OSError) as error:
            problems.append(
                f"{path.name}: unsealed or truncated segment; recovered {count} complete batch(es), "
                f"skipped the incomplete tail ({error})"
            )
            return
        try:
            batch.validate(full=True)
        except pa.ArrowException as error:
            problems.append(f"{path.name}: a batch of invalid data ({error}); skipped")
            continue
        count += 1
        yield batch, path


def _compatible(path: Path, found: pa.Schema, expected: pa.Schema, problems: list[str]) -> bool:
    metadata = found.metadata or {}
    version = metadata.get(b"gradfuzz.schema")
    if version is None:
        problems.append(f"{path.name}: not a gradfuzz segment (no schema version in its metadata); ignored")
        return False
    try:
        version = int(version)
    except ValueError:
        problems.append(f"{path.name}: not a gradfuzz segment (schema version {version!r} is not a number); ignored")
        return False
    kind, expected_kind = metadata.get(b"gradfuzz.kind"), (expected.metadata or {}).get(b"gradfuzz.kind")
    missing = [name for name in expected.names if name not in found.names and name in _REQUIRED]
    if (kind is not None and kind != expected_kind) or missing:
        problems.append(f"{path.name}: a {(kind or b'unknown').decode(errors='replace')} segment where "
                        f"{expected_kind.decode()} segments belong; ignored (move it to its own directory)")
        return False
    if version > SCHEMA_VERSION:
        problems.append(
            f"{path.name}: written by a newer gradfuzz (schema {version}, this one reads up to "
            f"{SCHEMA_VERSION}); upgrade gradfuzz to read it"
        )
        return False
    for name in expected.names:  # a column of another type would crash every reader downstream
        if name in found.names and name not in _UNREAD and found.field(name).type != expected.field(name).type:
            problems.append(f"{path.name}: column {name!r} is {found.field(name).type}, where gradfuzz writes "
                            f"{expected.field(name).type}; not a segment gradfuzz wrote, ignored")
            return False
    return True


_REQUIRED = {"id", "status", "time", "target", "inputs"}  # columns every segment of its kind has had
_UNREAD = {"inputs_f64"}  # written for other tools, never read back
_NOT_NULL = ("id", "time", "target")  # a record without them cannot be placed, ordered or replayed


def _rows(batch: pa.RecordBatch, path: Path, problems: list[str]) -> list[dict[str, Any]]:
    """A batch's rows as Python values; a row that cannot be converted (a time beyond year 9999) is
    reported and skipped."""
    try:
        return batch.to_pylist()
    except Exception:  # find the rows at fault
        rows = []
        for index in range(batch.num_rows):
            try:
                rows.extend(batch.slice(index, 1).to_pylist())
            except Exception as error:
                problems.append(f"{path.name}: skipped row {index} of a batch: {error}")
        return rows


def _failure_from_row(row: dict[str, Any]) -> StoredFailure:
    """A row back as a record; columns an older segment lacks take their absent value."""
    for name in _NOT_NULL:
        if row.get(name) is None:
            raise ValueError(f"its {name!r} is missing (null)")
    values = {}
    for column in _COLUMNS:
        value = row.get(column.name)
        values[column.name] = _absent(column) if value is None else _CODECS[column.metadata["codec"]][1](value)
    if any(x is None for x in values["inputs"]):
        raise ValueError("an input tensor is missing (null)")
    return StoredFailure(**values)
