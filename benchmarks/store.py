"""Failure-store throughput: records written and read per second, and crash recovery.

    python benchmarks/store.py [--records 20000] [--batch 100]

Writes synthetic failure records (a 16-element float32 input, gradients and error
figures, as `gradfuzz check` stores them) in batches — each batch is one flushed and
fsynced IPC stream message — seals the segment, reads it back, then truncates an
unsealed copy mid-batch and reports what recovery returns. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradfuzz.report import Finding
from gradfuzz.store import FailureStore, failure_row


def synthetic(rng: np.random.Generator, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        x = rng.standard_normal(16).astype(np.float32)
        finding = Finding(target="bench.py:f", category="mismatch", explanation="synthetic " * 20,
                          inputs=[x], cotangents=[np.float32(1.0)], tangents=[x.astype(np.float64)], custom=[x], reference=[x * 2],
                          argument=0, element=3, custom_value=1.0, reference_value=2.0, abs_error=1.0, rel_error=0.5,
                          ulp_error=1e7, region="(0, 1)", evidence={"differences": 2.0})
        rows.append(failure_row(finding, target="bench.py:f", fingerprint="0" * 16, specs=["float32[16]"], run_id="bench"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100, help="records per flushed batch")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    batches = [synthetic(rng, args.batch) for _ in range(args.records // args.batch)]
    with tempfile.TemporaryDirectory() as root:
        store = FailureStore(Path(root) / "store")
        started = time.perf_counter()
        for batch in batches:
            store.append_failures(batch)
        appended = time.perf_counter() - started
        store.close()
        sealed = time.perf_counter() - started
        started = time.perf_counter()
        read = FailureStore(Path(root) / "store").read()
        reading = time.perf_counter() - started
        total = len(read.failures)
        print(f"write: {total:,} records in {sealed:.2f} s = {total / sealed:,.0f} records/s "
              f"(append+fsync {total / appended:,.0f}/s, batches of {args.batch})")
        print(f"read : {total:,} records in {reading:.2f} s = {total / reading:,.0f} records/s (decoded to numpy)")

        crashed = FailureStore(Path(root) / "crashed")
        for batch in batches[:10]:
            crashed.append_failures(batch)
        (segment,) = (Path(root) / "crashed" / "failures").iterdir()
        data = segment.read_bytes()
        segment.write_bytes(data[: len(data) - len(data) // 20])  # lose the tail of the last batch
        recovered = FailureStore(Path(root) / "crashed").read()
        print(f"recovery: wrote 10 batches of {args.batch}, truncated the unsealed segment by 5%: "
              f"recovered {len(recovered.failures)} records; reported: {recovered.problems}")


if __name__ == "__main__":
    main()
