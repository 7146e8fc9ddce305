"""Issue #27: the fuzzer survives anything the target does — targets run in a supervised process.

Before: a gradient calling sys.exit(0) or os._exit(0) made `check`, `replay` and `gate` exit 0 with
nothing recorded; one blocking inside a TensorFlow op kept `check` running past 400 s; a segfault ended
the command with the signal. Each fault target (tests/targets/faults.py) now gives exit code 1 within
the budget plus 60 s, an `exception` record with its input in the store, and a replay that fails.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gradfuzz.store import FailureStore
from gradfuzz.supervisor import WorkerLost, parse_size
from gradfuzz.values import TargetRaised
from gradfuzz.watchdog import Hang, Watchdog, abandoned_threads
from tests.conftest import REPO, TARGETS

BUDGET = 3.0
LIMIT = BUDGET + 60.0  # a check returns within its budget plus a minute, whatever the target does
MEMORY = "4G"  # the worker's address space for the target that allocates without bound


def gradfuzz(*args: str, cwd, env: dict | None = None, timeout: float = 300.0) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "gradfuzz.cli", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, "CI": "true", "PYTHONPATH": str(REPO), **(env or {})})
    return result, time.monotonic() - started


@pytest.fixture
def project(tmp_path):
    """A working directory holding the fault targets (replay imports only the working directory's code)."""
    shutil.copy(TARGETS / "faults.py", tmp_path / "faults.py")
    return tmp_path


# -- fast: the pieces ----------------------------------------------------------------------------------


def test_a_targets_sys_exit_in_a_watchdog_thread_is_an_exception_not_the_end_of_the_process():
    """Before: the watchdog re-raised SystemExit in the caller, so the whole check exited with code 0."""
    with Watchdog() as watchdog:
        with pytest.raises(TargetRaised) as raised:
            watchdog.run(lambda: sys.exit(0), limit=10)
        assert isinstance(raised.value.error, SystemExit)
        with pytest.raises(TargetRaised):
            watchdog.run(lambda: (_ for _ in ()).throw(KeyboardInterrupt()), limit=10)
        assert watchdog.run(lambda: 7, limit=10) == 7, "the watchdog goes on after a target's exit"


def test_a_hang_is_counted_so_a_supervised_worker_retires():
    import threading

    before = abandoned_threads()
    stuck = threading.Event()
    with Watchdog() as watchdog, pytest.raises(Hang):
        watchdog.run(stuck.wait, limit=0.2)
    stuck.set()
    assert abandoned_threads() == before + 1


def test_a_lost_worker_is_an_exception_finding_that_names_the_signal_and_keeps_the_input():
    lost = WorkerLost("signal", -signal.SIGSEGV, 1.5, {"seed": 7},
                      {"stage": "custom gradient", "inputs": [np.float64(0.25)]})
    finding = lost.finding("ops.py:op")
    assert finding.category == "exception" and finding.signature == "exception|SIGSEGV"
    assert "died with SIGSEGV" in finding.explanation and "custom gradient" in finding.explanation
    assert [float(x) for x in finding.inputs] == [0.25] and finding.seed == 7
    exited = WorkerLost("exit", 0, 1.0, {}, {"stage": "forward", "inputs": [np.float64(1.0)]})
    assert "exit code 0" in exited.describe() and exited.finding("t").signature == "exception|ProcessExit"
    hung = WorkerLost("deadline", None, 63.0, {}, {"stage": "batched evaluation", "size": 64, "inputs": [np.float64(2.0)]})
    finding = hung.finding("t")
    assert finding.signature == "exception|Hang" and finding.evidence["hang_seconds"] == 63.0
    assert "batch's first" in finding.explanation, "a batch's culprit is not claimed to be known"
    assert "out-of-memory" in WorkerLost("signal", -signal.SIGKILL, 1.0).describe()


def test_memory_sizes():
    assert parse_size("4G") == 4 * 2**30 and parse_size("512m") == 512 * 2**20 and parse_size(None) is None
    with pytest.raises(ValueError):
        parse_size("lots")


# -- the command line against each fault ----------------------------------------------------------------

FAULTS = {  # target → what the store's record says
    "exits": "SystemExit",
    "os_exits": "exit code 0",
    "blocks": "did not return",
    "segfaults": "SIGSEGV",
    "allocates": "MemoryError",
    "killed": "SIGKILL",  # as by the out-of-memory killer
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS))
def test_check_and_replay_survive_the_fault_and_fail(project, fault):
    env = {"GRADFUZZ_MEMORY_LIMIT": MEMORY} if fault == "allocates" else {}
    check, seconds = gradfuzz("check", f"faults.py:{fault}", "--input", "float64[]", "--budget", f"{BUDGET:.0f}s",
                              "--store", "S", "--seed", "1", cwd=project, env=env, timeout=LIMIT + 120)
    assert check.returncode == 1, (check.stdout, check.stderr[-3000:])
    assert seconds < LIMIT, f"check took {seconds:.0f} s"
    records = FailureStore(project / "S").read().failures
    assert records and all(r.category == "exception" for r in records)
    assert any(FAULTS[fault] in r.explanation for r in records), [r.explanation for r in records]
    assert all(len(r.inputs) == 1 and np.shape(r.inputs[0]) == () for r in records), "the input is stored"

    replay, seconds = gradfuzz("replay", "S", "--format", "json", cwd=project, env=env, timeout=LIMIT + 120)
    assert replay.returncode == 1, (replay.stdout, replay.stderr[-3000:])
    assert seconds < LIMIT, f"replay took {seconds:.0f} s"
    assert '"reproduced"' in replay.stdout


@pytest.mark.slow
def test_a_crash_in_a_batch_is_isolated_to_the_example_that_crashes(project):
    """A batch that kills the worker is probed one example at a time in a fresh worker: the record holds the
    culprit, so replay reproduces it (the batch's first example alone would replay as fixed)."""
    check, _ = gradfuzz("check", "faults.py:segfaults_below", "--input", "float64[]@-60..100", "--budget", "5s",
                        "--store", "S", "--seed", "4", cwd=project)
    assert check.returncode == 1, (check.stdout, check.stderr[-3000:])
    (record,) = FailureStore(project / "S").read().failures
    assert record.signature == "exception|SIGSEGV" and float(record.inputs[0]) < -50, record.explanation
    assert "evaluated alone" in record.explanation
    replay, _ = gradfuzz("replay", "S", "--format", "json", cwd=project)
    assert replay.returncode == 1 and '"reproduced"' in replay.stdout


@pytest.mark.slow
def test_a_target_that_stops_the_whole_interpreter_is_killed_at_the_deadline(project):
    """A C call holding the GIL stops the in-process watchdog too: the parent's deadline (budget + 60 s) ends it."""
    check, seconds = gradfuzz("check", "faults.py:holds_gil", "--input", "float64[]", "--budget", "3s", "--store", "S",
                              cwd=project, timeout=300)
    assert check.returncode == 1, (check.stdout, check.stderr[-3000:])
    assert seconds < BUDGET + 60 + 45, f"check took {seconds:.0f} s (the deadline counts from the job, after TensorFlow's import)"
    (record,) = FailureStore(project / "S").read().failures
    assert record.signature == "exception|Hang" and record.evidence["hang_seconds"] >= 60
    assert np.shape(record.inputs[0]) == () and "custom gradient" in record.explanation


@pytest.mark.slow
def test_the_gate_fails_on_a_target_that_exits_or_crashes_and_on_their_stored_failures(project):
    """Before: a gate whose store held reproducing failures, plus a target calling os._exit(0), exited 0."""
    first, _ = gradfuzz("check", "faults.py:os_exits", "--input", "float64[]", "--budget", "3s", "--store", "store",
                        cwd=project)
    assert first.returncode == 1
    (project / "gate.toml").write_text('store = "store"\nseed = 1\n'
                                       '[[targets]]\ntarget = "faults.py:os_exits"\ninputs = ["float64[]"]\n'
                                       '[[targets]]\ntarget = "faults.py:segfaults"\ninputs = ["float64[]"]\n')
    gate, seconds = gradfuzz("gate", "gate.toml", "--budget", "6s", "--junit", "junit.xml", cwd=project)
    assert gate.returncode == 1, (gate.stdout, gate.stderr[-3000:])
    assert "Gate FAILED: 1 stored failure(s) reproduce, 2 target(s) with new failures" in gate.stdout
    assert seconds < 6 + 2 * 60, f"gate took {seconds:.0f} s"
    junit = (project / "junit.xml").read_text()
    assert junit.count("<failure") == 3 and "SIGSEGV" in junit


@pytest.mark.slow
def test_report_html_draws_every_other_plot_when_one_target_crashes(project):
    """A crashing target costs its own plot only (the plots run in the worker)."""
    shutil.copy(REPO / "examples" / "seed_ops.py", project / "ops.py")
    for target in ("faults.py:segfaults", "ops.py:my_op"):
        gradfuzz("check", target, "--input", "float64[]", "--max-examples", "512", "--seed", "1", "--store", "S", cwd=project)
    report, _ = gradfuzz("report", "S", "--html", "r.html", cwd=project)
    assert report.returncode == 0, report.stderr[-3000:]
    page = (project / "r.html").read_text()
    assert "data:image/png;base64" in page, "the healthy target's plot is drawn"


@pytest.mark.slow
def test_gradfuzz_check_isolate_survives_a_segfault(tmp_path):
    """The Python API runs in the user's process unless isolate=True, which uses the supervisor."""
    import gradfuzz

    report = gradfuzz.check(f"{TARGETS / 'faults.py'}:segfaults", inputs=["float64[]"], budget="3s", store=tmp_path / "S",
                            isolate=True)
    assert not report.ok and report.failures[0].category == "exception"
    assert "SIGSEGV" in report.failures[0].explanation
    assert FailureStore(tmp_path / "S").read().failures


@pytest.mark.slow
def test_a_healthy_target_still_passes_and_many_targets_share_one_worker(project):
    shutil.copy(REPO / "examples" / "seed_ops.py", project / "ops.py")
    check, _ = gradfuzz("check", "ops.py:my_op_fixed", "ops.py:branched_op", "--max-examples", "256", "--seed", "2",
                        "--format", "json", cwd=project)
    assert check.returncode == 0, (check.stdout, check.stderr[-3000:])
    assert '"verdict": "pass"' in check.stdout


@pytest.mark.slow
def test_a_local_campaign_records_a_crashing_target_and_goes_on(project):
    """Local campaigns run their slices in a supervised worker: a segfault is a finding, the worker replaced."""
    shutil.copy(REPO / "examples" / "seed_ops.py", project / "ops.py")
    (project / "c.toml").write_text('store = "store"\nseed = 1\n'
                                    '[[targets]]\ntarget = "faults.py:segfaults"\ninputs = ["float64[]"]\n'
                                    '[[targets]]\ntarget = "ops.py:my_op_fixed"\ninputs = ["float64[]"]\n')
    campaign, _ = gradfuzz("campaign", "c.toml", "--budget", "20s", "--slice", "4s", cwd=project)
    assert campaign.returncode == 1, (campaign.stdout, campaign.stderr[-3000:])
    records = FailureStore(project / "store").read().failures
    assert [r.signature for r in records] == ["exception|SIGSEGV"]
    assert records[0].run_id.endswith("/0/0") and np.shape(records[0].inputs[0]) == ()


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_command_takes_its_worker_with_it(project):
    """A `check` killed with SIGKILL must not leave its worker fuzzing on for the rest of the budget."""
    process = subprocess.Popen([sys.executable, "-m", "gradfuzz.cli", "check", "faults.py:blocks", "--input", "float64[]",
                                "--budget", "10m", "--store", "S"], cwd=project, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 120
    while not (workers := _children(process.pid)):
        assert process.poll() is None and time.monotonic() < deadline, "no worker started"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "the worker outlived its command"
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for its reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_the_checking_command_never_imports_tensorflow_or_the_target(project):
    """The parent only supervises: TensorFlow and the user's module are imported in the worker alone."""
    script = ("import sys\nsys.modules['tensorflow'] = None  # importing it here would fail\n"
              "from gradfuzz.cli import main\n"
              "try:\n    main(['check', 'faults.py:segfaults', '--input', 'float64[]', '--budget', '3s', '--store', 'S'])\n"
              "except SystemExit as exit_:\n"
              "    loaded = [m for m, v in sys.modules.items() if v is not None and (m.startswith('tensorflow') or 'faults' in m)]\n"
              "    print('exit', exit_.code, loaded)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.stdout.strip().splitlines()[-1] == "exit 1 []", (result.stdout[-2000:], result.stderr[-2000:])


@pytest.mark.slow
def test_isolate_keeps_the_users_tolerances(project, monkeypatch):
    import gradfuzz

    shutil.copy(REPO / "examples" / "seed_ops.py", project / "ops.py")
    monkeypatch.chdir(project)
    loose = gradfuzz.check("ops.py:my_op", inputs=["float64[]"], max_examples=512, seed=1, isolate=True, atol=0.001)
    strict = gradfuzz.check("ops.py:my_op", inputs=["float64[]"], max_examples=512, seed=1, isolate=True)
    assert loose.ok and [f.category for f in strict.failures] == ["approximation"]


# -- the dashboard's plot of a stored finding whose target now hangs or exits ----------------------------

DASHBOARD_PLOT_SECONDS = 8.0  # the plot's deadline in the worker (PLOT_SECONDS, 50 s, in use)


@pytest.fixture(scope="module")
def faulty_dashboard(tmp_path_factory):
    """One dashboard for the module: a store holding a plottable (value) finding of each fault target,
    as a campaign would have recorded them before the gradient learned to block or to exit."""
    import threading

    from gradfuzz.dashboard import DashboardState, make_server
    from gradfuzz.report import Finding
    from gradfuzz.store import failure_row

    root = tmp_path_factory.mktemp("faulty-dashboard")
    rows = []
    for k, fault in enumerate(("blocks", "os_exits")):
        target = f"{TARGETS / 'faults.py'}:{fault}"
        finding = Finding(target=target, category="mismatch", explanation=f"{fault} explained", inputs=[np.float64(1.5)],
                          cotangents=[np.float64(1.0)], tangents=[np.float64(1.0)], argument=0, element=0,
                          region="(1, inf)", signature="mismatch|arg0")
        rows.append(failure_row(finding, target=target, fingerprint="f", specs=["float64[]"], run_id=f"r/{k}"))
    with FailureStore(root / "store") as store:
        store.append_failures(rows)
    state = DashboardState(root / "store", trust_store=True, long_poll_seconds=1.0, plot_seconds=DASHBOARD_PLOT_SECONDS,
                           isolate=True)
    server = make_server(state, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    numbers = {bug["target"].rsplit(":", 1)[1]: bug["number"] for bug in state.to_json()["bugs"]}
    yield state, f"http://127.0.0.1:{server.server_address[1]}/", numbers
    server.shutdown()
    server.server_close()
    assert state._supervisor is None, "the plots' worker ends with the server"


def _fetch(url: str, timeout: float = 300.0) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


@pytest.mark.slow
def test_a_dashboard_plot_of_a_target_that_blocks_answers_at_its_deadline_and_the_pages_keep_answering(faulty_dashboard):
    """Before: the plot replayed the target in the server's process: a gradient blocking inside
    tf.numpy_function held the request forever (and os._exit ended the dashboard)."""
    import threading

    state, url, numbers = faulty_dashboard
    answer: list = []
    started = time.monotonic()
    request = threading.Thread(target=lambda: answer.append(_fetch(f"{url}plot/{numbers['blocks']}.png")))
    request.start()
    deadline = time.monotonic() + 300
    while state.drawing == 0:  # the event: the plot is being drawn
        assert time.monotonic() < deadline and request.is_alive(), "the plot request never started drawing"
        time.sleep(0.01)
    page, api = _fetch(url, timeout=30), _fetch(f"{url}api/state", timeout=30)
    assert page[0] == 200 and "blocks explained" in page[1], "the page answers while a plot is being drawn"
    assert api[0] == 200 and '"bugs"' in api[1]
    request.join(timeout=300)
    seconds = time.monotonic() - started
    status, body = answer[0]
    assert status == 500 and "did not return within" in body and "custom gradient" in body, (status, body)
    assert seconds < DASHBOARD_PLOT_SECONDS + 300, "bounded: a worker's start plus the plot's deadline"
    again = time.monotonic()
    assert _fetch(f"{url}plot/{numbers['blocks']}.png", timeout=30) == (status, body)
    assert time.monotonic() - again < 5, "the outcome is kept: asking again does not wait for the deadline again"


@pytest.mark.slow
def test_a_dashboard_plot_of_a_target_that_exits_is_an_error_page_and_the_dashboard_goes_on(faulty_dashboard):
    _, url, numbers = faulty_dashboard
    status, body = _fetch(f"{url}plot/{numbers['os_exits']}.png")
    assert status == 500 and "exit code 0" in body and "dashboard goes on" in body, (status, body)
    assert _fetch(url, timeout=30)[0] == 200 and _fetch(f"{url}api/state", timeout=30)[0] == 200
    assert _fetch(f"{url}plot/99.png", timeout=30)[0] == 404
