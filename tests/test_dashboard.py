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
    campaign = Campaign.create(config, refs, budget=20, slice_seconds=3)
    executor = LocalExecutor([ref for ref, _, _ in refs])
    run_campaign(campaign, executor)
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
