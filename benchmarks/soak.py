"""A long campaign stays healthy: memory flat, throughput steady, no incidents.

    python benchmarks/soak.py [--minutes 20] [--config examples/campaign.toml] [--workers 2]
                              [--executor ray|local] [--with-fault hang|exit|segfault]

Runs ``gradfuzz campaign CONFIG --executor ray`` (a local Ray instance) in a child process
for the given time over the demo targets, into a scratch store, and samples once a minute:
the driver's and the Ray workers' resident memory (from /proc) and the examples checked per
second over that minute (from campaign.json). Retracing, caches or the store index growing with
time would show as memory that keeps climbing. Prints a table and a last line

    soak: minutes=M driver_growth=G% workers_growth=W% throughput_spread=S% throughput_drift=D% incidents=N

where growth compares the last minute with the first minute after warm-up (minute 3), the spread
is (max - min) / median of the per-minute rates after warm-up (minutes differ by which targets ran
in them), and the drift compares the mean rate of the second half with the first. Nothing
asserts: read it.

``--with-fault`` adds one target of `tests/targets/faults.py` to the mix (issue #27): ``hang``
blocks forever inside a ``tf.numpy_function`` of its gradient, ``exit`` calls ``os._exit(0)``
there, ``segfault`` reads address 0. The campaign must record it (an incident, an ``exception``
finding) and keep checking the others; a last line says so:

    soak-fault: fault=F examples=E incidents=I (kinds) findings=N fault_findings=K targets_checked=T/A exit=X
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WARMUP_MINUTES = 3
FAULTS = {"hang": "blocks", "exit": "os_exits", "segfault": "segfaults"}  # --with-fault → tests/targets/faults.py target


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def ray_worker_pids() -> list[int]:
    """Processes Ray titled as gradfuzz workers ("ray::_RayWorker...")."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"_RayWorker" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def examples_so_far(checkpoint: Path) -> tuple[int, int]:
    """(examples checked, incidents) from the campaign's checkpoint (0, 0 before the first one)."""
    try:
        document = json.loads(checkpoint.read_text())
    except (OSError, ValueError):
        return 0, 0
    return sum(t["examples"] for t in document["targets"]), len(document.get("incidents", []))


def write_config(source: Path, store: Path, fault: str | None = None) -> Path:
    """The demo config with its store moved to a scratch directory and relative targets made absolute
    (and, with ``fault``, one fault target added to the mix)."""
    text = source.read_text()
    lines = []
    for line in text.splitlines():
        if line.strip().startswith("store"):
            line = f'store = "{store}"'
        elif line.strip().startswith("target") and '"' in line:
            key, value = line.split("=", 1)
            reference = value.strip().strip('"')
            path = reference.split(":", 1)[0]
            if path.endswith(".py") and not os.path.isabs(path):
                reference = str(REPO / reference)
            line = f'{key.rstrip()} = "{reference}"'
        lines.append(line)
    if fault is not None:
        lines += ["", "[[targets]]", f'target = "{fault_target(fault)}"', 'inputs = ["float64[]"]']
    config = store.parent / "soak.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def fault_target(fault: str) -> str:
    return f"{REPO / 'tests' / 'targets' / 'faults.py'}:{FAULTS[fault]}"


def fault_summary(fault: str, store: Path, returncode: int | None) -> str:
    """What the campaign made of the fault target: incidents, findings, and whether the others went on."""
    sys.path.insert(0, str(REPO))
    from gradfuzz.store import FailureStore

    try:
        document = json.loads((store / "campaign.json").read_text())
    except (OSError, ValueError):
        document = {}
    targets = document.get("targets", [])
    incidents = document.get("incidents", [])
    kinds = sorted({str(i.get("kind")) for i in incidents})
    failures = FailureStore(store).read().failures if store.is_dir() else []
    name = fault_target(fault)
    at_fault = [f for f in failures if f.target == name]
    others = [t for t in targets if t.get("target") != name]
    checked = sum(1 for t in others if t.get("examples", 0) > 0)
    for record in at_fault[:3]:
        print(f"  fault finding: {record.signature}: {record.explanation[:160]}")
    for incident in incidents[:5]:
        print(f"  incident: {incident.get('kind')} {incident.get('target', '')[-40:]}: {str(incident.get('message'))[:140]}")
    return (f"soak-fault: fault={fault} examples={sum(t.get('examples', 0) for t in targets):,} incidents={len(incidents)} "
            f"({', '.join(kinds) or '-'}) findings={len(failures)} fault_findings={len(at_fault)} "
            f"targets_checked={checked}/{len(others)} status={document.get('status', '?')} exit={returncode}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--config", type=Path, default=REPO / "examples" / "campaign.toml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executor", choices=("ray", "local"), default="ray",
                        help="ray: a local Ray instance with --workers workers; local: one supervised worker process")
    parser.add_argument("--with-fault", choices=sorted(FAULTS), default=None,
                        help="add one target whose gradient hangs, exits or segfaults (tests/targets/faults.py)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="gradfuzz-soak-"))
    store = scratch / "store"
    config = write_config(args.config, store, args.with_fault)
    budget = f"{args.minutes * 60:.0f}s"
    workers = ["--workers", str(args.workers)] if args.executor == "ray" else []
    started = time.monotonic()
    driver = subprocess.Popen([sys.executable, "-m", "gradfuzz.cli", "campaign", str(config), "--executor", args.executor,
                               *workers, "--budget", budget],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "CI": "true"})
    checkpoint = store / "campaign.json"
    rows = []
    previous_examples, previous_time = 0, time.monotonic()
    minute = 0
    while driver.poll() is None:
        deadline = previous_time + 60
        while time.monotonic() < deadline and driver.poll() is None:
            time.sleep(1)
        if driver.poll() is not None:
            break
        minute += 1
        now = time.monotonic()
        examples, incidents = examples_so_far(checkpoint)
        workers = ray_worker_pids()
        row = {"minute": minute, "driver_mb": rss_mb(driver.pid), "workers_mb": sum(rss_mb(p) for p in workers),
               "workers": len(workers), "examples_per_s": (examples - previous_examples) / (now - previous_time),
               "incidents": incidents}
        rows.append(row)
        print(f"minute {minute:3d}  driver {row['driver_mb']:7.0f} MB  workers {row['workers_mb']:7.0f} MB "
              f"({row['workers']})  {row['examples_per_s']:10,.0f} examples/s  incidents {incidents}", flush=True)
        previous_examples, previous_time = examples, now
    _, stderr = driver.communicate()
    print(f"campaign exited with status {driver.returncode} after {time.monotonic() - started:.0f} s (budget {budget})")
    if driver.returncode not in (0, 1):
        print(stderr[-3000:])
    if args.with_fault:
        print(fault_summary(args.with_fault, store, driver.returncode))
    steady = [r for r in rows if r["minute"] >= WARMUP_MINUTES] or rows
    if not steady:
        print("soak: no minute completed")
        return

    def growth(key: str) -> float:
        first, last = steady[0][key], steady[-1][key]
        return 100 * (last - first) / first if first else 0.0

    rates = [r["examples_per_s"] for r in steady]
    spread = 100 * (max(rates) - min(rates)) / statistics.median(rates) if statistics.median(rates) else 0.0
    # Minutes differ by which targets' slices ran in them; halves average that out: a trend shows as drift.
    half = len(rates) // 2
    drift = 100 * (statistics.mean(rates[half:]) / statistics.mean(rates[:half]) - 1) if half else 0.0
    print(f"soak: minutes={len(rows)} driver_growth={growth('driver_mb'):+.1f}% workers_growth={growth('workers_mb'):+.1f}% "
          f"throughput_spread={spread:.0f}% throughput_drift={drift:+.0f}% incidents={rows[-1]['incidents']}")


if __name__ == "__main__":
    main()
