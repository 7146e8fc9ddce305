"""Issue #27's acceptance table: each fault target × each command → exit code, time, what was stored.

    python scripts/fault_table.py [--budget 5] [--faults exits,os_exits,blocks,segfaults,allocates] [--memory 4G]

Every cell runs the `gradfuzz` command line in a subprocess, from a scratch directory holding
`tests/targets/faults.py` (each gradient there takes its process down: ``sys.exit(0)``,
``os._exit(0)``, blocking forever inside ``tf.numpy_function``, a segfault, allocating without
bound — run under ``GRADFUZZ_MEMORY_LIMIT``) and `examples/seed_ops.py`:

* ``check faults.py:F --budget B --store S``
* ``gate`` on a config naming F whose store already holds a reproducing failure (``ops.py:my_op``)
* ``replay S`` (the records the check stored)
* ``report S --html`` (S plus a value finding of F recorded as if before its gradient broke, so a
  plot is drawn: the plot replays F)
* ``dashboard`` on that store, then ``GET /plot/N.png`` of F's value finding and ``GET /`` after it

A cell that does not return within the budget + 60 s (a plot: its deadline + 60 s) is killed and
shown as ``KILLED``. Prints a markdown table; a command that exits 0 while failures exist, never
returns, or stores nothing is a defect.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FAULTS = {"exits": "sys.exit(0)", "os_exits": "os._exit(0)", "blocks": "blocks in tf.numpy_function",
          "segfaults": "segfault", "allocates": "allocates without bound"}
SLACK = 60.0  # a command returns within its budget plus this
PLOT_SECONDS = 60.0  # the dashboard's plot deadline (gradfuzz.dashboard.PLOT_SECONDS)
REPORT_PLOT_SECONDS = 120.0  # report --html's, per plot (gradfuzz.supervisor.PLOT_SECONDS)


def gradfuzz(args: list[str], cwd: Path, env: dict, timeout: float) -> tuple[int | str, float, str, str]:
    """(exit code or "KILLED", seconds, stdout, stderr)."""
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "gradfuzz.cli", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        out = expired.stdout.decode(errors="replace") if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        return "KILLED", time.monotonic() - started, out, ""
    return done.returncode, time.monotonic() - started, done.stdout, done.stderr


def records(store: Path, target_suffix: str | None = None) -> list:
    from gradfuzz.store import FailureStore

    if not store.is_dir():
        return []
    found = FailureStore(store).read().failures
    return [r for r in found if target_suffix is None or r.target.endswith(target_suffix)]


def describe_records(found: list) -> str:
    if not found:
        return "nothing"
    import numpy as np

    signatures = sorted({r.signature for r in found})
    inputs = ", ".join(f"{float(np.asarray(r.inputs[0])):.3g}" for r in found[:2] if r.inputs)
    return f"{len(found)} record(s): {', '.join(f'`{s}`' for s in signatures)}" + (f" at x = {inputs}" if inputs else "")


def plant_value_finding(store: Path, fault: str) -> None:
    """A plottable (mismatch) record of the fault target, as if found before its gradient broke."""
    import numpy as np

    from gradfuzz.report import Finding
    from gradfuzz.store import FailureStore, failure_row

    target = f"faults.py:{fault}"
    finding = Finding(target=target, category="mismatch", explanation="recorded before the gradient broke",
                      inputs=[np.float64(1.5)], cotangents=[np.float64(1.0)], tangents=[np.float64(1.0)], argument=0,
                      element=0, region="(1, inf)", signature="mismatch|arg0")
    with FailureStore(store) as failure_store:
        failure_store.append_failures([failure_row(finding, target=target, fingerprint="f", specs=["float64[]"],
                                                   run_id="planted")])


def problem(code, err: str) -> str:
    """The last line of stderr when a command neither passed nor failed (a crash, a usage error)."""
    lines = [line for line in err.splitlines() if line.strip()]
    return f" (stderr: {lines[-1][:120]})" if code not in (0, 1) and lines else ""


def fetch(url: str, timeout: float) -> tuple[int | str, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read(200).decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (OSError, TimeoutError) as error:
        return "no answer", str(error)


def dashboard_cell(directory: Path, store: str, env: dict) -> tuple[str, float, str]:
    """(HTTP status of the plot, seconds for it, what the page said + whether / answered after)."""
    process = subprocess.Popen([sys.executable, "-m", "gradfuzz.cli", "dashboard", store, "--port", "0"], cwd=directory,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"http://[\d.]+:\d+/", line)
        if match is None:
            return "no server", 0.0, line.strip()
        url = match.group(0)
        bugs = []
        deadline = time.monotonic() + 60
        while not bugs and time.monotonic() < deadline:
            bugs = json.loads(urllib.request.urlopen(url + "api/state", timeout=30).read()).get("bugs") or []
            time.sleep(0.2 if not bugs else 0)
        number = next((b["number"] for b in bugs if b.get("plot")), None)
        if number is None:
            return "no plot link", 0.0, ""
        started = time.monotonic()
        status, body = fetch(f"{url}plot/{number}.png", timeout=PLOT_SECONDS + 300 + SLACK)
        seconds = time.monotonic() - started
        after, _ = fetch(url, timeout=30)
        alive = process.poll() is None
        said = "a PNG" if status == 200 else body.removeprefix("No plot: ").split(". ")[0][:110]
        return str(status), seconds, f"{said}; `/` then: {after}{'' if alive else ', server DEAD'}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=5.0, help="seconds for check and gate")
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--memory", default="4G", help="GRADFUZZ_MEMORY_LIMIT for the target that allocates")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="gradfuzz-faults-"))
    base_env = {**os.environ, "CI": "true", "PYTHONPATH": str(REPO)}
    # One store with a reproducing failure, copied into each gate cell.
    seed_dir = scratch / "seed"
    seed_dir.mkdir()
    shutil.copy(REPO / "examples" / "seed_ops.py", seed_dir / "ops.py")
    code, _, _, _ = gradfuzz(["check", "ops.py:my_op", "--input", "float64[]", "--max-examples", "512", "--seed", "1",
                                  "--store", "store"], seed_dir, base_env, 600)
    seeded = records(seed_dir / "store")
    print(f"gate's seeded store: `ops.py:my_op` check exit {code}, {describe_records(seeded)}", file=sys.stderr, flush=True)

    budget = f"{args.budget:g}s"
    limit = args.budget + SLACK
    rows = []
    for fault in args.faults.split(","):
        directory = scratch / fault
        directory.mkdir()
        shutil.copy(REPO / "tests" / "targets" / "faults.py", directory / "faults.py")
        shutil.copy(REPO / "examples" / "seed_ops.py", directory / "ops.py")
        env = {**base_env, **({"GRADFUZZ_MEMORY_LIMIT": args.memory} if fault == "allocates" else {})}
        target = f"faults.py:{fault}"

        def row(command: str, code, seconds: float, stored: str, bound: float, fault: str = fault) -> None:
            late = seconds > bound
            rows.append((FAULTS[fault], command, str(code), f"{seconds:.0f} s" + (" (late)" if late else ""), stored))
            print(f"{fault:10s} {command:10s} exit {code!s:7s} {seconds:6.1f} s  {stored}", file=sys.stderr, flush=True)

        code, seconds, out, err = gradfuzz(["check", target, "--input", "float64[]", "--budget", budget, "--store", "S",
                                            "--seed", "1"], directory, env, limit + 240)
        row("check", code, seconds, describe_records(records(directory / "S")) + problem(code, err), limit)

        shutil.copytree(seed_dir / "store", directory / "G")
        (directory / "gate.toml").write_text(f'store = "G"\nseed = 1\n[[targets]]\ntarget = "{target}"\n'
                                             'inputs = ["float64[]"]\n')
        code, seconds, out, err = gradfuzz(["gate", "gate.toml", "--budget", budget, "--junit", "junit.xml"], directory, env,
                                           limit + 240)
        junit = directory / "junit.xml"
        failures = junit.read_text().count("<failure") if junit.exists() else 0
        verdict = next((line.strip() for line in out.splitlines() if line.startswith("Gate")), "no verdict line")
        row("gate", code, seconds, f"{verdict}; JUnit {failures} <failure>; new: {describe_records(records(directory / 'G', target))}"
            + problem(code, err), limit)

        code, seconds, out, _ = gradfuzz(["replay", "S", "--format", "json"], directory, env, limit + 240)
        try:
            results = json.loads(out)["results"]
            said = ", ".join(sorted({r["status"] for r in results})) or "no records"
            said = f"{len(results)} record(s) {said}; " + (results[0]["detail"][:90] if results else "")
        except (ValueError, KeyError):
            said = f"unreadable output: {out[-120:]!r}"
        row("replay", code, seconds, said, limit)

        shutil.copytree(directory / "S", directory / "P")
        plant_value_finding(directory / "P", fault)
        code, seconds, _, _ = gradfuzz(["report", "P", "--html", "r.html"], directory, env, REPORT_PLOT_SECONDS * 2 + 300)
        page = (directory / "r.html").read_text() if (directory / "r.html").exists() else ""
        notes = re.findall(r"<p class='note'>No plot: (.*?)</p>", page)
        said = f"{page.count('<section')} section(s); " + ("; ".join(n.split(". ")[0][:90] for n in notes) or "plots drawn")
        row("report --html", code, seconds, said if page else "no page written", REPORT_PLOT_SECONDS + SLACK)

        status, seconds, said = dashboard_cell(directory, "P", env)
        row("dashboard plot", f"HTTP {status}", seconds, said, PLOT_SECONDS + SLACK)

    print("| fault | command | exit | time | what was stored / shown |")
    print("|---|---|---|---:|---|")
    for fault, command, code, seconds, stored in rows:
        cell = stored.replace("|", "\\|")
        print(f"| {fault} | `{command}` | {code} | {seconds} | {cell} |")
    print(f"\nbudget {budget} for check and gate; scratch: {scratch}", file=sys.stderr)


if __name__ == "__main__":
    main()
