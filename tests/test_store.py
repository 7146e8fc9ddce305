import json

import ml_dtypes
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradfuzz.report import Finding
from gradfuzz.store import FAILURE_SCHEMA, FailureStore, StoreError, decode_tensor, encode_tensor, failure_row

BIT_TYPES = {
    "float16": (np.float16, np.uint16),
    "bfloat16": (ml_dtypes.bfloat16, np.uint16),
    "float32": (np.float32, np.uint32),
    "float64": (np.float64, np.uint64),
    "complex64": (np.complex64, np.uint32),
    "complex128": (np.complex128, np.uint64),
}


@pytest.mark.parametrize("name", sorted(BIT_TYPES))
@given(data=st.data())
@settings(max_examples=60)
def test_round_trip_is_bit_exact_for_every_bit_pattern(name, data):
    """Any bit pattern — NaN payloads, -0.0, subnormals, infinities — comes back unchanged."""
    dtype, unsigned = BIT_TYPES[name]
    width = np.dtype(unsigned).itemsize * 8
    count = data.draw(st.integers(0, 12))
    halves = 2 if np.dtype(dtype).kind == "c" else 1
    bits = data.draw(st.lists(st.integers(0, 2**width - 1), min_size=count * halves, max_size=count * halves))
    array = np.array(bits, dtype=unsigned).view(dtype)
    shape = data.draw(st.sampled_from([(count,), (1, count)]))
    array = array.reshape(shape)
    decoded = decode_tensor(encode_tensor(array))
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    assert decoded.tobytes() == array.tobytes()


def test_special_values_survive():
    array = np.array([-0.0, np.float32(1e-45), np.nan, -np.inf], dtype=np.float32)
    decoded = decode_tensor(encode_tensor(array))
    assert np.signbit(decoded[0]) and decoded[1] == np.float32(1e-45) and np.isnan(decoded[2])


def _finding(value: float = 1.5) -> Finding:
    return Finding(
        target="examples/seed_ops.py:my_op", category="approximation", explanation="because",
        inputs=[np.array(value)], cotangents=[np.array(0.5)], tangents=[np.array(2.0)],
        custom=[np.array(0.1)], reference=[np.array(0.2)], reference_name="autodiff", argument=0, element=0,
        custom_value=0.1, reference_value=0.2, abs_error=0.1, rel_error=0.5, ulp_error=1e15, count=3,
        signature="approximation|arg0", plan="{}", seed=7, evidence={"differences": 0.2},
    )


def _row(value: float = 1.5):
    return failure_row(_finding(value), target="examples/seed_ops.py:my_op", fingerprint="abc", specs=["float64[]"])


def test_write_seal_and_read_back(tmp_path):
    with FailureStore(tmp_path / "store") as store:
        store.append_failures([_row(1.5)])
        store.append_failures([_row(-0.0)])
    files = list((tmp_path / "store" / "failures").iterdir())
    assert [f.suffix for f in files] == [".arrow"], "a closed writer leaves exactly one sealed file"
    result = FailureStore(tmp_path / "store").read()
    assert result.problems == []
    assert [f.inputs[0].tolist() for f in result.failures] == [1.5, -0.0]
    assert np.signbit(result.failures[1].inputs[0])
    first = result.failures[0]
    assert (first.category, first.count, first.seed, first.specs) == ("approximation", 3, 7, ["float64[]"])
    assert first.evidence == {"differences": 0.2}
    assert json.loads(json.dumps(first.environment))["python"]


def test_sealed_files_hold_no_python_objects(tmp_path):
    with FailureStore(tmp_path) as store:
        store.append_failures([_row()])
    (path,) = (tmp_path / "failures").iterdir()
    table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    assert table.schema.equals(FAILURE_SCHEMA, check_metadata=True)
    assert b"pickle" not in path.read_bytes()

    def plain(t: pa.DataType) -> bool:
        if isinstance(t, pa.ExtensionType):
            return False
        return all(plain(t.field(i).type) for i in range(t.num_fields)) if t.num_fields else True

    assert all(plain(field.type) for field in table.schema)


def test_recovers_complete_batches_of_a_truncated_unsealed_segment(tmp_path):
    store = FailureStore(tmp_path)
    for value in (1.0, 2.0, 3.0):
        store.append_failures([_row(value)])
    (stream,) = (tmp_path / "failures").iterdir()
    assert stream.suffix == ".arrows"
    data = stream.read_bytes()
    stream.write_bytes(data[: len(data) - 100])  # a crash in the middle of the third batch
    result = FailureStore(tmp_path).read()
    assert [f.inputs[0].tolist() for f in result.failures] == [1.0, 2.0]
    assert any("recovered 2 complete batch" in p for p in result.problems)


def test_a_corrupt_file_is_reported_and_the_others_still_read(tmp_path):
    with FailureStore(tmp_path) as store:
        store.append_failures([_row(4.0)])
    (tmp_path / "failures" / "segment-zzz.arrow").write_bytes(b"definitely not arrow")
    (tmp_path / "failures" / "notes.txt").write_text("hello")
    result = FailureStore(tmp_path).read()
    assert [f.inputs[0].tolist() for f in result.failures] == [4.0]
    assert any("segment-zzz.arrow" in p and "nothing recovered" in p for p in result.problems)
    assert any("notes.txt" in p for p in result.problems)


def test_a_newer_schema_is_refused_with_advice(tmp_path):
    schema = FAILURE_SCHEMA.with_metadata({b"gradfuzz.schema": b"99"})
    (tmp_path / "failures").mkdir()
    with pa.OSFile(str(tmp_path / "failures" / "segment-new.arrow"), "wb") as sink, pa.ipc.new_file(sink, schema) as w:
        w.write_table(pa.Table.from_pylist([_row()], schema=schema))
    result = FailureStore(tmp_path).read()
    assert result.failures == []
    assert any("newer gradfuzz" in p and "upgrade" in p for p in result.problems)


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="No gradfuzz store"):
        FailureStore(tmp_path / "nope").read()


def test_an_unwritable_store_is_a_clear_error(tmp_path):
    (tmp_path / "store").write_text("a file where the store directory should be")
    with pytest.raises(StoreError, match="Cannot write to the store"):
        FailureStore(tmp_path / "store").append_failures([_row()])


def test_status_marks_are_merged_into_failures(tmp_path):
    with FailureStore(tmp_path) as store:
        store.append_failures([_row()])
    failure = FailureStore(tmp_path).read().failures[0]
    with FailureStore(tmp_path) as store:
        store.mark(failure.id, "fixed")
    again = FailureStore(tmp_path).read().failures[0]
    assert again.status == "fixed" and again.status_time is not None


# -- issue #17: crash windows and damaged files ---------------------------------------------------

_CRASH_WHILE_SEALING = """
import os, pathlib, sys
sys.path.insert(0, {tests!r})
from test_store import _row
from gradfuzz.store import FailureStore
unlink = pathlib.Path.unlink
def crash(self, *args, **kwargs):
    if self.suffix == ".arrows":
        os._exit(9)  # killed after the sealed file is in place, before its stream is gone
    return unlink(self, *args, **kwargs)
pathlib.Path.unlink = crash
store = FailureStore({root!r})
store.append_failures([_row(1.0)])
store.append_failures([_row(2.0)])
store.close()
"""


def test_a_crash_between_sealing_and_deleting_the_stream_reads_each_record_once(tmp_path):
    """Before: both files were read, 4 records from 2 (in replay, export and the pytest plugin)."""
    import subprocess
    import sys
    from pathlib import Path

    script = _CRASH_WHILE_SEALING.format(tests=str(Path(__file__).parent), root=str(tmp_path))
    assert subprocess.run([sys.executable, "-c", script], timeout=120).returncode == 9
    names = sorted(p.suffix for p in (tmp_path / "failures").iterdir())
    assert names == [".arrow", ".arrows"], "the crash left both files"
    result = FailureStore(tmp_path).read()
    assert sorted(float(f.inputs[0]) for f in result.failures) == [1.0, 2.0]
    assert any("already sealed" in p for p in result.problems)


def test_the_latest_status_event_wins_whatever_file_holds_it(tmp_path):
    """`fixed`, then a later `open` (a regression) in a segment that sorts first. Before: read as fixed."""
    from datetime import UTC, datetime, timedelta

    from gradfuzz.store import STATUS_SCHEMA, SegmentWriter

    with FailureStore(tmp_path) as store:
        store.append_failures([_row()])
    failure_id = FailureStore(tmp_path).read().failures[0].id
    earlier = datetime.now(UTC)
    for name, status, when in (("segment-b", "fixed", earlier), ("segment-a", "open", earlier + timedelta(seconds=1))):
        writer = SegmentWriter(tmp_path / "status", STATUS_SCHEMA)
        writer.append([{"id": failure_id, "status": status, "time": when, "environment": "{}"}])
        sealed = writer.seal()
        sealed.rename(sealed.with_name(f"{name}.arrow"))
    assert FailureStore(tmp_path).read().failures[0].status == "open"


def test_a_truncated_sealed_file_keeps_its_intact_batches(tmp_path):
    """Before: 0 of 3 batches recovered."""
    with FailureStore(tmp_path) as store:
        for value in (1.0, 2.0, 3.0):
            store.append_failures([_row(value)])
    (sealed,) = (tmp_path / "failures").glob("*.arrow")
    sealed.write_bytes(sealed.read_bytes()[:-400])  # the footer and part of the last batch
    result = FailureStore(tmp_path).read()
    assert [float(f.inputs[0]) for f in result.failures][:2] == [1.0, 2.0]
    assert result.problems


def test_stray_and_misplaced_segments_are_reported_not_fatal(tmp_path):
    """A file with non-integer schema metadata, and a failures segment under status/: before, every
    reader (store verify included) crashed."""
    with FailureStore(tmp_path) as store:
        store.append_failures([_row()])
    (sealed,) = (tmp_path / "failures").glob("*.arrow")
    (tmp_path / "status").mkdir()
    (tmp_path / "status" / sealed.name).write_bytes(sealed.read_bytes())
    table = pa.table({"x": [1]}).replace_schema_metadata({b"gradfuzz.schema": b"one"})
    with pa.OSFile(str(tmp_path / "failures" / "stray.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    result = FailureStore(tmp_path).read()
    assert len(result.failures) == 1 and result.failures[0].status == "open"
    assert any("is not a number" in p for p in result.problems)
    assert any("failures segment where status segments belong" in p for p in result.problems)


def test_a_failed_write_stops_the_writer_and_sealing_seals_the_others(tmp_path, monkeypatch):
    """Before: the writer kept appending after a failed write, and a raising seal() hid the original
    error and left the other writers unsealed."""
    import os

    import gradfuzz.store as store_module

    store = FailureStore(tmp_path)
    store.append_failures([_row(1.0)])
    store.mark("some-id", "fixed")
    real_fsync = os.fsync

    def full_disk(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module.os, "fsync", full_disk)
    with pytest.raises(StoreError, match="No space left on device"):
        store.append_failures([_row(2.0)])
    with pytest.raises(StoreError, match="failed earlier"):
        store.append_failures([_row(3.0)])
    monkeypatch.setattr(store_module.os, "fsync", real_fsync)
    monkeypatch.setattr(store_module.SegmentWriter, "seal", _seal_failing_for_failures(store_module.SegmentWriter.seal))
    with pytest.raises(StoreError, match="Sealing a store segment failed"):
        store.close()
    assert list((tmp_path / "status").glob("*.arrow")), "the status writer was sealed all the same"
    assert float(FailureStore(tmp_path).read().failures[0].inputs[0]) == 1.0


def _seal_failing_for_failures(seal):
    def failing(self):
        if self.directory.name == "failures":
            raise OSError(5, "Input/output error")
        return seal(self)
    return failing


def test_creates_renames_and_unlinks_are_made_durable(tmp_path, monkeypatch):
    """Before, no directory was fsynced: after a power loss the checkpoint's rename could survive
    while a new segment's directory entry did not. Every create, rename and unlink now syncs."""
    import gradfuzz.store as store_module

    synced = []
    monkeypatch.setattr(store_module, "fsync_directory", lambda directory: synced.append(directory.name))
    with FailureStore(tmp_path / "s") as store:
        store.append_failures([_row()])
        assert synced == ["s", "failures"], "the new directory and the new segment's entry"
    assert synced[2:] == ["failures", "failures"], "the sealed file's rename and the stream's unlink"
    store_module.write_atomically(tmp_path / "s" / "campaign.json", "{}")
    assert synced[-1] == "s"


# -- issue #27: readers never crash on a file that parses -------------------------------------------


def _segment(path, rows, schema):
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        writer.write_table(pa.Table.from_pylist(rows, schema=schema))


def _retyped(schema, name, arrow_type):
    return schema.set(schema.get_field_index(name), pa.field(name, arrow_type))


def test_segments_with_wrong_column_types_or_nulls_are_skipped_with_a_note(tmp_path):
    """Valid gradfuzz metadata, but a null or string `time`, an int `target`, a directory named
    `x.arrow`, a status event with a null time or an unknown status. Before: every reader crashed
    (TypeError comparing None with a datetime, IsADirectoryError, ...)."""
    with FailureStore(tmp_path) as store:
        store.append_failures([_row(1.0)])
        good = store
    failures = tmp_path / "failures"
    _segment(failures / "null-time.arrow", [{**_row(2.0), "time": None}], FAILURE_SCHEMA)
    _segment(failures / "string-time.arrow", [{**_row(3.0), "time": "yesterday"}],
             _retyped(FAILURE_SCHEMA, "time", pa.string()))
    _segment(failures / "int-target.arrow", [{**_row(4.0), "target": 12}], _retyped(FAILURE_SCHEMA, "target", pa.int64()))
    _segment(failures / "list-evidence.arrow", [{**_row(5.0), "evidence": "[1, 2]"}], FAILURE_SCHEMA)
    (failures / "x.arrow").mkdir()
    failure_id = FailureStore(tmp_path).read().failures[0].id
    good.mark(failure_id, "fixed")
    good.close()
    (tmp_path / "status" / "y.arrows").mkdir()
    from gradfuzz.store import STATUS_SCHEMA

    _segment(tmp_path / "status" / "bad-events.arrow",
             [{"id": failure_id, "status": "open", "time": None, "environment": "{}", "sequence": 9},
              {"id": failure_id, "status": "wontfix", "time": None, "environment": "{}", "sequence": 9}], STATUS_SCHEMA)
    result = FailureStore(tmp_path).read()
    assert [float(f.inputs[0]) for f in result.failures] == [1.0]
    assert result.failures[0].status == "fixed", "events without a time or a known status are not counted"
    problems = "\n".join(result.problems)
    for fragment in ("null-time.arrow: skipped record", "'time' is missing", "string-time.arrow: column 'time' is string",
                     "int-target.arrow: column 'target' is int64", "list-evidence.arrow: skipped record",
                     "x.arrow: not a regular file", "y.arrows: not a regular file", "bad-events.arrow: skipped a status event"):
        assert fragment in problems, fragment


def test_a_status_event_stamped_before_an_earlier_one_still_supersedes_it(tmp_path, monkeypatch):
    """Clock skew: a replay marks the failure fixed, a later replay on a machine whose clock is an
    hour behind finds it again and reopens it. Before: the `open` event was older by its time stamp,
    so the regression read as fixed."""
    from datetime import UTC, datetime, timedelta

    import gradfuzz.store as store_module

    with FailureStore(tmp_path) as store:
        store.append_failures([_row()])
    failure_id = FailureStore(tmp_path).read().failures[0].id
    with FailureStore(tmp_path) as store:
        store.mark(failure_id, "fixed")

    class Behind(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) - timedelta(hours=1)

    monkeypatch.setattr(store_module, "datetime", Behind)
    with FailureStore(tmp_path) as store:
        store.read()
        store.mark(failure_id, "open")
    monkeypatch.undo()
    failure = FailureStore(tmp_path).read().failures[0]
    assert failure.status == "open"
    assert failure.status_time < datetime.now(UTC) - timedelta(minutes=59), "the skewed stamp is kept as written"


def test_one_record_definition_every_stored_column_is_a_finding_field():
    """StoredFailure's columns are the writer's (id, run, environment, …) and the Finding's, by name:
    a field renamed on one side fails here, not by storing a default in every record."""
    from dataclasses import fields

    from gradfuzz.report import Finding
    from gradfuzz.store import _COLUMNS, _WRITER_COLUMNS

    finding_fields = {f.name for f in fields(Finding)}
    assert {c.name for c in _COLUMNS} - set(_WRITER_COLUMNS) <= finding_fields
    assert set(_WRITER_COLUMNS) <= {c.name for c in _COLUMNS}
