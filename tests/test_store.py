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
        target="examples/seed_ops.py:my_op", kind="failure", category="approximation", explanation="because",
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
