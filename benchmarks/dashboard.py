"""How long the dashboard takes to load for a large store.

    python benchmarks/dashboard.py [--records 10000]

Writes a scratch store of N failure records (20 targets, 4 categories, 8 regions, raw-bit tensors
as a run writes them) and a campaign.json, serves it, and times the first page load (the store is
read and triaged in the background: the page comes at once and says so), the time until the bug
list is complete (the state request the page's script makes next waits for the read), a second
page load (cached: the store did not change) and one JSON state request. Prints a table and a last
line ``dashboard: records=N first_ms=A complete_ms=B cached_ms=C state_ms=D``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradfuzz.dashboard import DashboardState, make_server
from gradfuzz.report import Finding
from gradfuzz.store import FailureStore, failure_row

CATEGORIES = ("mismatch", "approximation", "branch", "non-finite")
REGIONS = ("=0", "(0, 1)", "(1, inf)", "(-1, 0)", "(-inf, -1)", "=1", "=-1", "(-0.001, 0)")


def write_store(root: Path, records: int) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for k in range(records):
        target = f"pkg/ops_{k % 20}.py:op"
        finding = Finding(target=target, category=CATEGORIES[k % 4], explanation="x" * 300,
                          inputs=[rng.normal(size=8)], cotangents=[rng.normal(size=())], tangents=[rng.normal(size=8)],
                          custom=[rng.normal(size=8)], reference=[rng.normal(size=8)], argument=0, element=k % 8,
                          region=REGIONS[(k // 4) % 8], count=int(rng.integers(1, 1000)), signature=f"{CATEGORIES[k % 4]}|arg0")
        rows.append(failure_row(finding, target=target, fingerprint="f", specs=["float64[8]"], run_id=f"c/{k % 20}/{k // 20}"))
    with FailureStore(root) as store:
        for start in range(0, len(rows), 500):
            store.append_failures(rows[start:start + 500])
    targets = [{"target": f"pkg/ops_{t}.py:op", "examples": 10_000_000, "examples_per_second": 5e5, "slices_completed": 100,
                "failures_by_category": {"mismatch": 1000}, "notes": {}, "error": None, "kinds": {"k": 1}} for t in range(20)]
    history = [[float(s), [[s * 1000, s, 0] for _ in range(20)]] for s in range(600)]
    (root / "campaign.json").write_text(json.dumps({"campaign": "bench", "status": "running", "elapsed_seconds": 600,
                                                    "budget_seconds": 3600, "examples": 2e8, "updated": "now",
                                                    "targets": targets, "incidents": [], "history": history}))


def timed(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url) as response:
        size = len(response.read())
    return 1000 * (time.perf_counter() - started), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gradfuzz-dash-")) / "store"
    write_store(root, args.records)
    server = make_server(DashboardState(root), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    started = time.perf_counter()
    first, size = timed(base + "/")  # the page at once: the store is read in the background
    timed(base + "/api/state")  # what the page's script asks next: it waits for the store's first read
    complete = 1000 * (time.perf_counter() - started)
    cached, cached_size = timed(base + "/")
    state, state_size = timed(base + "/api/state")
    print(f"{'request':<36} {'ms':>8} {'bytes':>10}")
    print(f"{'page, first (store being read)':<36} {first:>8.0f} {size:>10,}")
    print(f"{'bug list complete (first read)':<36} {complete:>8.0f}")
    print(f"{'page, cached':<36} {cached:>8.0f} {cached_size:>10,}")
    print(f"{'/api/state, cached':<36} {state:>8.0f} {state_size:>10,}")
    print(f"dashboard: records={args.records} first_ms={first:.0f} complete_ms={complete:.0f} cached_ms={cached:.0f} "
          f"state_ms={state:.0f}")
    server.shutdown()


if __name__ == "__main__":
    main()
