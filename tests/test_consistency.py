"""One owner for every verdict: what `check` reports is what the store, `triage` (and so `report`,
the dashboard and the plugin, which read triage) and `replay` show — same bugs, same categories,
same counts, records written = records read — for every planted bug of the corpus."""

import json

import pytest

import gradfuzz
from gradfuzz.replay import Replayer, ReplayStatus
from gradfuzz.store import FailureStore
from gradfuzz.triage import triage
from tests.corpus import bugs

BUGS = {name: getattr(bugs, name) for name in bugs.EXPECTED}
EXAMPLES = 2048
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", sorted(BUGS))
def test_check_triage_and_replay_agree(name, tmp_path):
    store = tmp_path / "store"
    order = 2 if bugs.EXPECTED[name] == "higher-order" else 1
    report = gradfuzz.check(BUGS[name], max_examples=EXAMPLES, seed=21, store=store, order=order)
    assert not report.ok
    read = FailureStore(store).read()
    assert not read.problems
    assert report.stored == len(read.failures), "records written = records read"
    groups = triage(read.failures)
    checked = sorted((str(f.category), f.argument, f.count) for f in report.failures)
    triaged = sorted((g.category, g.argument, g.examples) for g in groups)
    assert triaged == checked, f"check reported {checked}, triage shows {triaged}"

    replayer = Replayer(trust_store=True)
    for failure in read.failures:
        result = replayer.replay(failure)
        assert result.status == ReplayStatus.REPRODUCED and failure.category in result.categories_now, \
            f"{failure.category} record replays as {result.status} {result.categories_now}: {result.detail}"


def test_report_json_counts_what_check_wrote(cli, tmp_path):
    store = tmp_path / "store"
    report = gradfuzz.check(bugs.wrong_sign, max_examples=EXAMPLES, seed=21, store=store)
    shown = json.loads(cli("triage", str(store), "--format", "json").stdout)["groups"]
    assert [(g["category"], g["examples"]) for g in shown] == [(str(f.category), f.count) for f in report.failures]
