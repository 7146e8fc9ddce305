"""`gradfuzz dashboard` in a real headless browser (Debian's chromium): the page of a real small
campaign shows its targets and findings, and updates itself when the campaign checkpoints again."""

import os
import shutil
import subprocess
import threading
import time

import pytest

from gradfuzz.campaign import load_checkpoint, resolve_targets, run_campaign
from gradfuzz.dashboard import DashboardState, make_server, render_page
from gradfuzz.executors import LocalExecutor
from tests.test_campaign import two_targets

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _browser_dom(url: str, budget_ms: int) -> subprocess.Popen:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: scripts/test.sh installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


@pytest.fixture(scope="module")
def campaign_store(tmp_path_factory):
    from gradfuzz.campaign import Campaign
    from gradfuzz.config import load_config

    directory = tmp_path_factory.mktemp("dash")
    config = load_config(two_targets(directory))
    refs = resolve_targets(config)
    # Stop on the event the pages need (the bug found, both targets run), not on a clock: a slow
    # machine spends a short budget's slices warming up and may record nothing to show.
    campaign = Campaign.create(config, refs, budget=600, slice_seconds=3)
    executor = LocalExecutor([ref for ref, _, _ in refs])

    def shown() -> bool:
        return bool(campaign.targets[0].signatures) and all(state.examples > 0 for state in campaign.targets)

    run_campaign(campaign, executor, stop_requested=shown)
    assert shown(), campaign.errors()
    return config.store


@pytest.fixture
def served(campaign_store):
    state = DashboardState(campaign_store, long_poll_seconds=2.0)
    server = make_server(state, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_the_page_shows_the_campaigns_targets_and_findings(served):
    _, url = served
    dom, _ = _browser_dom(url, 1500).communicate(timeout=120)
    assert "campaign_ops.py:doubled" in dom and "campaign_ops.py:scaled_tanh" in dom
    assert "mismatch" in dom and "examples failing" in dom and "/plot/1.png" in dom
    assert "<polyline" in dom, "the script drew the charts from the campaign's history"
    # Axes with units, and the chart's top equals the table's largest "examples checked" (before: a rate
    # between checkpoints, labelled "max …", that no column of the table showed).
    import re

    body = dom.split("<script")[0]
    assert body.count("time since the campaign started (s)") == 2 and "examples checked</text>" in body
    table = dom.split('id="targets">')[1].split("</tbody>")[0]
    examples = [int(row[0].replace(",", "")) for row in re.findall(r"</td><td class=\"n\">([\d,]+)</td>\s*<td class=\"n\">([\d,]+)", table)]
    chart = dom.split('id="rate"')[1].split("</svg>")[0]
    labels = [int(t.replace(",", "")) for t in re.findall(r'text-anchor="end">([\d,]+)</text>', chart)]
    assert examples and max(labels) == max(examples), (labels, examples)
    assert "/plot/" not in dom.split("<script")[0] or "no plot" in dom or "mismatch" in dom


@pytest.mark.slow
def test_the_page_updates_when_the_campaign_writes_a_new_checkpoint(served):
    state, url = served
    browser = _browser_dom(url, 5000)
    deadline = time.monotonic() + 120
    while state.waiting == 0:  # the event: the page is waiting for the next checkpoint
        assert browser.poll() is None and time.monotonic() < deadline, "the page never asked for updates"
        time.sleep(0.01)
    campaign = load_checkpoint(state.store / "campaign.json")
    campaign.incidents.append({"kind": "hang", "target": "marker-target", "slice": 9, "seed": 1, "attempt": 1,
                               "action": "worker replaced", "message": "a new checkpoint arrived", "worker": "w"})
    campaign.checkpoint()
    dom, _ = browser.communicate(timeout=120)
    assert "a new checkpoint arrived" in dom, "the page showed the checkpoint written after it loaded"


def test_the_server_side_page_reads_without_javascript(campaign_store):
    page = render_page(DashboardState(campaign_store))
    assert "campaign_ops.py:doubled" in page and "examples checked" in page and "mismatch" in page


_HOSTILE = "<img src=x onerror=alert(1)>"


def _hostile_store(tmp_path):
    import json

    (tmp_path / "failures").mkdir()
    campaign = {"campaign": "c1", "status": "running", "updated": "u1", "elapsed_seconds": _HOSTILE,
                "budget_seconds": 60, "examples": _HOSTILE, "history": [[0, [[0, 0, 0]]], [1, [[_HOSTILE, 1, 1]]]],
                "targets": [{"target": "t.py:f", "examples": _HOSTILE, "examples_per_second": _HOSTILE,
                             "slices_completed": _HOSTILE, "failures_by_category": {"mismatch": _HOSTILE},
                             "notes": {"domain": _HOSTILE}, "kinds": {}, "error": None}, "not a target"],
                "incidents": [{"kind": "hang", "target": "t", "slice": _HOSTILE, "message": "m", "action": "a"}]}
    (tmp_path / "campaign.json").write_text(json.dumps(campaign))
    return tmp_path


def test_numbers_from_campaign_json_are_validated_on_the_server(tmp_path):
    """campaign.json is data: before, `slices_completed` went into the page unescaped (markup from the
    file ran in the browser) and a string where a number belongs crashed the page (500)."""
    page = render_page(DashboardState(_hostile_store(tmp_path)))
    assert "<img" not in page and "onerror" not in page.split('<script id=initial')[0]
    assert "<td class=n>?</td>" in page


def test_the_page_script_shows_only_numbers_where_numbers_belong(tmp_path):
    """The page's script, run in node with a stub document: before, `slices_completed`, `examples`, an
    incident's `slice`, a bug's `runs` and the notes' sum went into innerHTML as they were."""
    import json
    import re

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    page = render_page(DashboardState(_hostile_store(tmp_path)))
    initial = re.search(r'<script id=initial type="application/json">(.*?)</script>', page, re.S)[1]
    data = json.loads(initial)
    data["bugs"] = [{"number": _HOSTILE, "target": "t", "category": "mismatch", "where": "x", "runs": _HOSTILE,
                     "examples_failing": _HOSTILE, "status": _HOSTILE, "explanation": "e", "input": ["1"]}]
    script = page.rsplit("<script>", 1)[1].split("</script>", 1)[0]
    harness = (
        "const elements = {};\n"
        "globalThis.document = {getElementById: id => elements[id] || (elements[id] = {innerHTML: '', textContent: "
        f"id === 'initial' ? {json.dumps(json.dumps(data))} : ''}})}};\n"
        "globalThis.fetch = () => new Promise(() => {});\n"
        + script
        + "\nsetTimeout(() => { console.log(JSON.stringify(Object.fromEntries(Object.entries(elements)"
          ".filter(([k]) => k !== 'initial').map(([k, v]) => [k, v.innerHTML + v.textContent])))); }, 50);\n"
    )
    (tmp_path / "page.js").write_text(harness)
    shown = json.loads(subprocess.run([node, str(tmp_path / "page.js")], capture_output=True, text=True, timeout=60,
                                      check=True).stdout)
    assert "t.py:f" in shown["targets"] and "mismatch" in shown["bugs"] and "slice ?" in shown["incidents"]
    for name, markup in shown.items():
        assert "<img" not in markup, (name, markup)


def _small_store(root, categories=("mismatch", "dtype")):
    """A store written as a run writes it: a value finding (plottable) and a contract one (no element)."""
    import numpy as np

    from gradfuzz.report import Finding
    from gradfuzz.store import FailureStore, failure_row

    rows = []
    for k, category in enumerate(categories):
        value = category != "dtype"
        finding = Finding(target="ops.py:f", category=category, explanation=f"{category} explained",
                          inputs=[np.float64(1.5)], cotangents=[np.float64(1.0)] if value else [],
                          tangents=[np.float64(1.0)] if value else [], argument=0 if value else None,
                          element=0 if value else None, region="(1, inf)", signature=f"{category}|arg0")
        rows.append(failure_row(finding, target="ops.py:f", fingerprint="f", specs=["float64[]"], run_id=f"r/{k}"))
    with FailureStore(root) as store:
        store.append_failures(rows)


def _get(url):
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


@pytest.fixture
def serve():
    servers = []

    def start(state):
        server = make_server(state, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_dashboard_starts_before_the_store_exists_and_waits_for_it(tmp_path, serve):
    """Before: `gradfuzz dashboard` on a store a campaign had not created yet exited with an error."""
    import json

    store = tmp_path / "later"
    url = serve(DashboardState(store, long_poll_seconds=2.0))
    status, page = _get(url)
    assert status == 200 and "no store here yet: waiting" in page and not store.exists()
    answers = []

    def follow():  # as the page's script does: ask again after each answer
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (answers and answers[-1]["bugs"]):
            answers.append(json.loads(_get(url + "api/state?after=")[1]))

    waiting = threading.Thread(target=follow)
    waiting.start()
    time.sleep(0.5)
    _small_store(store)
    waiting.join(timeout=90)
    assert sorted(b["category"] for b in answers[-1]["bugs"]) == ["dtype", "mismatch"]
    assert "no store here yet" not in _get(url)[1]
    cli = subprocess.Popen([shutil.which("gradfuzz") or "gradfuzz", "dashboard", str(tmp_path / "other"), "--port", "0"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = [cli.stdout.readline() for _ in range(2)]
    finally:
        cli.terminate()
        cli.wait(timeout=30)
    assert "http://127.0.0.1:" in lines[0] and "No store at" in lines[1] and "waits" in lines[1], lines


def test_every_link_on_the_page_resolves(tmp_path, serve, monkeypatch):
    """Before: a dtype finding's plot link was a 404 (a contract finding has no element to plot)."""
    import re

    (tmp_path / "ops.py").write_text("import tensorflow as tf\n\n@tf.custom_gradient\ndef f(x):\n"
                                     "    return tf.sin(x), lambda dy: dy * 2.0 * tf.cos(x)\n")
    monkeypatch.chdir(tmp_path)
    _small_store(tmp_path / "store")
    state = DashboardState(tmp_path / "store")
    url = serve(state)
    state.groups()  # read: the first page would otherwise say the store is being read
    _, page = _get(url)
    links = re.findall(r"href=['\"]([^'\"]+)['\"]", page.split("<script")[0])
    assert "no plot (a contract or exception finding" in page
    plot_links = [link for link in links if link.startswith("/plot/")]
    assert len(plot_links) == 1, plot_links  # the mismatch only
    for link in links:
        status, body = _get(url + link.lstrip("/"))
        assert status == 200, (link, body)
    dtype_number = next(b["number"] for b in state.to_json()["bugs"] if b["category"] == "dtype")
    assert f"/plot/{dtype_number}.png" not in page


def test_a_browser_that_goes_away_leaves_no_traceback(tmp_path, serve, capfd):
    """Before: a closed tab during the long poll printed a BrokenPipeError traceback on the terminal."""
    import json
    import socket
    from urllib.parse import urlparse

    (tmp_path / "campaign.json").write_text(json.dumps({"campaign": "c", "updated": "u1"}))
    url = serve(DashboardState(tmp_path, long_poll_seconds=30.0))
    port = urlparse(url).port
    for _ in range(3):
        client = socket.create_connection(("127.0.0.1", port))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # close with a reset
        client.sendall(b"GET /api/state?after=u1 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        client.close()
    (tmp_path / "campaign.json").write_text(json.dumps({"campaign": "c", "updated": "u2", "history": [[0, [[0, 0, 0]]]] * 2000}))
    time.sleep(2)
    assert _get(url)[0] == 200  # still serving
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipe" not in err and "ConnectionReset" not in err, err


def test_why_a_finding_has_no_plot_names_its_kind():
    """A plain function's finding compares directional derivatives (no element to plot along); a
    contract or exception finding has no gradient value at all. Before, both read as the latter."""
    from types import SimpleNamespace

    from gradfuzz.dashboard import no_plot

    plain = SimpleNamespace(argument=None, cotangents=[[1.0]], specs=["float64[3]"])
    raised = SimpleNamespace(argument=None, cotangents=[], specs=["float64[3]"])
    element = SimpleNamespace(argument=0, cotangents=[[1.0]], specs=["float64[3]"])
    assert "directional derivatives" in no_plot(plain) and "exception" not in no_plot(plain)
    assert "exception" in no_plot(raised)
    assert no_plot(element) is None
