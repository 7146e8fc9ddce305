"""Triage, export, the HTML report, exported regression tests, the pytest plugin, the gate."""

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from gradfuzz.config import ConfigError, load_config
from gradfuzz.report import Finding
from gradfuzz.store import FailureStore, failure_row
from gradfuzz.triage import triage
from tests.conftest import EXAMPLES, REPO

BUGS = REPO / "tests" / "corpus" / "bugs.py"


def _record(target="t.py:f", category="mismatch", region="=0", value=0.0, run="r1", argument=0):
    finding = Finding(target=target, category=category, explanation="x", inputs=[np.array(value)],
                      argument=argument, element=0, region=region, count=5)
    return failure_row(finding, target=target, fingerprint="f", specs=["float64[]"], run_id=run)


def test_triage_groups_repeats_into_one_bug_and_separates_distinct_bugs(tmp_path):
    with FailureStore(tmp_path) as store:
        store.append_failures([_record(run=f"run{i}", value=float(i % 3 == 0)) for i in range(100)])
        store.append_failures([_record(region="(-inf, -1)", value=-97.0, run="other")])  # a second bug, far away
        store.append_failures([_record(region="(0, 1)", value=0.5, run="run1")])  # touches =0: the same bug
    groups = triage(FailureStore(tmp_path).read().failures)
    assert [(g.count, g.regions) for g in groups] == [(100, ["=0", "(0, 1)"]), (1, ["(-inf, -1)"])]
    assert float(groups[0].representative.inputs[0]) == 0.0, "the simplest input represents the group"
    assert groups[0].examples == 100 * 5


def test_an_approximation_is_one_bug_wherever_it_shows(tmp_path):
    with FailureStore(tmp_path) as store:
        store.append_failures([_record(category="approximation", region=r, run="r") for r in ("(-inf, -1)", "(1, inf)")])
    assert len(triage(FailureStore(tmp_path).read().failures)) == 1


@pytest.fixture(scope="module")
def store_with_bugs(tmp_path_factory):
    """A real store: the seed's my_op and two bugs of one function in different places."""
    from click.testing import CliRunner

    from gradfuzz.cli import main

    work = tmp_path_factory.mktemp("work")
    shutil.copy(EXAMPLES / "seed_ops.py", work / "ops.py")
    shutil.copy(BUGS, work / "bugs.py")
    (work / "two.py").write_text(
        "import tensorflow as tf\n\n"
        "@tf.custom_gradient\n"
        "def two_bugs(x):\n"
        "    def grad(dy):\n"
        "        g = tf.where(x < -95.0, 0.5 * tf.cos(x), tf.cos(x))\n"
        "        return dy * tf.where(tf.equal(x, 0.0), tf.zeros_like(x), g)\n"
        "    return tf.sin(x), grad\n"
    )
    runner = CliRunner()
    import os

    previous = os.getcwd()
    os.chdir(work)
    try:
        for args in (["ops.py:my_op", "-i", "float64[]"], ["two.py:two_bugs", "-i", "float64[]@-100..100"],
                     ["bugs.py:threshold_off_by_1e3"]):
            runner.invoke(main, ["check", *args, "--max-examples", "20000", "--seed", "5"], catch_exceptions=False)
    finally:
        os.chdir(previous)
    return work


def test_triage_command_finds_three_bugs(cli, store_with_bugs):
    import os

    os.chdir(store_with_bugs)
    result = cli("triage", "--format", "json")
    groups = json.loads(result.stdout)["groups"]
    by_target = {}
    for g in groups:
        by_target.setdefault(g["target"], []).append((g["category"], g["regions"]))
    assert [c for c, _ in by_target["ops.py:my_op"]] == ["approximation"]
    # One run's `mismatch|arg0` is one finding in `check`, so it is one bug here too (same counts
    # everywhere); both places it showed in are named.
    [(category, regions)] = by_target["two.py:two_bugs"]
    assert category == "mismatch" and "=0" in regions and "(-inf, -95)" in regions, by_target["two.py:two_bugs"]
    assert [c for c, _ in by_target["bugs.py:threshold_off_by_1e3"]] == ["branch"]


def test_export_is_read_by_pandas_polars_and_duckdb(cli, store_with_bugs, tmp_path):
    import os

    os.chdir(store_with_bugs)
    out = tmp_path / "export"
    assert cli("export", ".gradfuzz", str(out)).exit_code == 0
    assert cli("export", ".gradfuzz", str(out)).exit_code == 2, "a non-empty directory is not overwritten silently"
    import duckdb
    import pandas
    import polars

    frame = pandas.read_parquet(out)
    assert {"target_key", "category", "inputs_f64", "custom_f64"} <= set(frame.columns)
    assert set(frame["category"]) >= {"approximation", "mismatch", "branch"}
    lazy = polars.scan_parquet(str(out / "**" / "*.parquet"), hive_partitioning=True).collect()
    assert lazy.height == len(frame)
    counts = duckdb.sql(
        f"select category, count(*) from read_parquet('{out}/**/*.parquet', hive_partitioning = true) group by category"
    ).fetchall()
    assert sum(n for _, n in counts) == len(frame)


def test_html_report_has_a_section_and_a_plot_per_bug(cli, store_with_bugs, tmp_path):
    import os

    os.chdir(store_with_bugs)
    page = tmp_path / "report.html"
    result = cli("report", "--html", str(page))
    assert result.exit_code == 0
    html = page.read_text()
    assert html.count("<section>") >= 3  # one per bug triage names (my_op, two_bugs, threshold_off_by_1e3)
    assert html.count("data:image/png;base64,") >= 3
    assert "branch" in html and "approximation" in html


def test_one_plot_that_raises_costs_only_its_own_section(cli, store_with_bugs, tmp_path, monkeypatch):
    """Before: one target whose plot raised aborted the whole HTML report."""
    import os

    import gradfuzz.html_report

    real = gradfuzz.html_report.plot_png
    calls = []

    def first_fails(profile, title):
        calls.append(title)
        if len(calls) == 1:
            raise RuntimeError("matplotlib could not draw this")
        return real(profile, title)

    monkeypatch.setattr(gradfuzz.html_report, "plot_png", first_fails)
    monkeypatch.setenv("GRADFUZZ_IN_PROCESS", "1")  # the plots are drawn here, where the patch is (not in a worker)
    os.chdir(store_with_bugs)
    page = tmp_path / "report.html"
    assert cli("report", "--html", str(page)).exit_code == 0
    html = page.read_text()
    assert html.count("<section>") >= 3 and "RuntimeError: matplotlib could not draw this" in html
    assert html.count("data:image/png;base64,") >= 2


def test_exported_tests_fail_before_the_fix_and_pass_after(cli, store_with_bugs, tmp_path):
    import os

    work = tmp_path / "copy"
    shutil.copytree(store_with_bugs, work)
    os.chdir(work)
    assert cli("export-tests", "-o", "test_regressions.py").exit_code == 0
    run = lambda: subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "my_op",  # noqa: E731
                                  "test_regressions.py"], cwd=work, capture_output=True, text=True, timeout=300)
    before = run()
    assert before.returncode == 1, before.stdout[-2000:]
    source = (work / "ops.py").read_text().replace("dx = (tf.math.sin(x + 0.001) - tf.math.sin(x)) / 0.001", "dx = tf.math.cos(x)")
    (work / "ops.py").write_text(source)
    after = run()
    assert after.returncode == 0, after.stdout[-2000:]


def test_export_overwrite_never_deletes_the_store_or_a_directory_it_did_not_write(cli, store_with_bugs, tmp_path):
    """Before: --overwrite deleted any directory, the store and its parents included."""
    import os

    work = tmp_path / "copy"
    shutil.copytree(store_with_bugs, work)
    os.chdir(work)
    for place in (".gradfuzz", ".", str(tmp_path)):
        result = cli("export", ".gradfuzz", place, "--overwrite")
        assert result.exit_code == 2 and "export to a directory of its own" in " ".join(result.output.split()), place
    (work / "notes").mkdir()
    (work / "notes" / "todo.txt").write_text("mine")
    assert cli("export", ".gradfuzz", "notes", "--overwrite").exit_code == 2
    assert (work / "notes" / "todo.txt").exists() and FailureStore(work / ".gradfuzz").read().failures
    assert cli("export", ".gradfuzz", "out").exit_code == 0
    assert cli("export", ".gradfuzz", "out", "--overwrite").exit_code == 0, "an earlier export is replaced"


def test_exported_tests_carry_any_store_path_as_a_literal(tmp_path):
    """A path with triple quotes or backslashes: before, it went unescaped into the docstring."""
    import ast

    from gradfuzz.regression import write_tests

    for store in ('we"""ird', "C:\\Users\\me\\.gradfuzz"):
        path = tmp_path / "test_out.py"
        write_tests([], path, store)
        tree = ast.parse(path.read_text())
        (value,) = [n.value.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "STORE"]
        assert value == store


def test_pytest_plugin_replays_a_store(store_with_bugs):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--gradfuzz-replay", ".gradfuzz",
                             "--co"], cwd=store_with_bugs, capture_output=True, text=True, timeout=300)
    assert "gradfuzz-replay[ops.py:my_op:approximation" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]


def test_replay_flags(cli, store_with_bugs):
    import os

    os.chdir(store_with_bugs)
    result = cli("replay", "--since", "1d", "--repeat", "2", "--target", "ops.py:my_op", "--format", "json")
    results = json.loads(result.stdout)["results"]
    assert results and {r["target"] for r in results} == {"ops.py:my_op"}
    assert {(r["status"], r["reproduced"], r["runs"]) for r in results} == {("reproduced", 2, 2)}
    assert json.loads(cli("replay", "--since", "2999-01-01", "--format", "json").stdout)["results"] == []
    assert cli("replay", "--since", "whenever").exit_code == 2


def test_store_verify_reports_a_truncated_segment(cli, tmp_path):
    import os

    os.chdir(tmp_path)
    store = FailureStore(tmp_path / ".gradfuzz")
    for value in (1.0, 2.0):
        store.append_failures([_record(value=value)])
    (segment,) = (tmp_path / ".gradfuzz" / "failures").iterdir()
    segment.write_bytes(segment.read_bytes()[:-50])
    result = cli("store", "verify")
    assert result.exit_code == 1
    assert "1 failure record(s) readable" in result.stdout and "recovered 1 complete batch" in " ".join(result.stdout.split())


def test_config_errors_name_the_line(tmp_path):
    path = tmp_path / "gate.toml"
    path.write_text('store = ".gradfuzz"\nseed = 7\n[[targets]]\ntarget = "a.py:f"\n[[targets]]\ntarget = "b.py:g"\nweigth = 2\n')
    with pytest.raises(ConfigError, match=r"gate.toml:7: unknown key 'weigth'"):
        load_config(path)
    path.write_text('[[targets]]\ntarget = "a.py:f"\ninputs = ["float32"]\n')
    with pytest.raises(ConfigError, match=r"gate.toml:3: .*Did you mean 'float32\[\]'"):
        load_config(path)
    path.write_text("seed = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


@pytest.mark.parametrize("text, line, message", [
    ('budget = -5\n[[targets]]\ntarget = "a.py:f"\n', 1, "positive, finite duration"),
    ('budget = inf\n[[targets]]\ntarget = "a.py:f"\n', 1, "positive, finite duration"),
    ('[[targets]]\ntarget = "a.py:f"\nbudget = "0s"\n', 3, "positive, finite duration"),
    ('[[targets]]\ntarget = "a.py:f"\nweight = nan\n', 3, "positive, finite number"),
    ('[[targets]]\ntarget = "a.py:f"\nweight = inf\n', 3, "positive, finite number"),
    ('seed = -1\n[[targets]]\ntarget = "a.py:f"\n', 1, "from 0 to 2\\*\\*32 - 1"),
    ('store = ".g"\ntargets = [1]\n', 2, "must be \\[\\[targets\\]\\] tables"),
    # issue #27: each of these was accepted (budget = true as 1 s, 1e-9 s dispatched nothing, store = "" wrote
    # into the working directory, target = "" failed later, inputs = [] planned a check of no arguments).
    ('budget = true\n[[targets]]\ntarget = "a.py:f"\n', 1, "positive, finite duration .* not true"),
    ('budget = 1e-9\n[[targets]]\ntarget = "a.py:f"\n', 1, "below 1 s.*at least 1s"),
    ('[[targets]]\ntarget = "a.py:f"\nbudget = 0.5\n', 3, "below 1 s.*at least 1s"),
    ('store = ""\n[[targets]]\ntarget = "a.py:f"\n', 1, "names no directory of its own.*store = \".gradfuzz\""),
    ('store = "/"\n[[targets]]\ntarget = "a.py:f"\n', 1, "names no directory of its own"),
    ('[[targets]]\ntarget = ""\n', 2, "needs target = .*not an empty string"),
    ('[[targets]]\ntarget = "a.py:f"\ninputs = []\n', 3, "inputs = \\[\\] gives no argument a spec.*leave inputs out"),
])
def test_config_values_are_validated_up_front(tmp_path, text, line, message):
    """Before: budget = -5, inf, weight = nan and seed = -1 were accepted (seed then raised mid-run and
    exited 1, read as "failures found"); targets = [1] raised TypeError."""
    path = tmp_path / "gate.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"gate.toml:{line}: .*{message}"):
        load_config(path)


def test_junit_output_survives_control_characters_in_exception_text():
    """ANSI colour codes and NUL in an error message: before, the XML could not be parsed."""
    import xml.etree.ElementTree as ET

    from gradfuzz.gate import GateResult, junit_xml

    result = GateResult(errors=[("t.py:f", "\x1b[31mValueError\x1b[0m: bad\x00 byte\x07")])
    suite = ET.fromstring(junit_xml(result).split("\n", 1)[1]).find("testsuite")
    assert suite.find("testcase/error").text == "ValueError: bad byte"


def test_junit_names_are_cleaned_like_the_text():
    """A control character in a target path (a replayed record's, a fuzzed target's): before, it went
    into the `name` attribute raw and junit.xml could not be parsed."""
    import xml.etree.ElementTree as ET

    from gradfuzz.gate import GateResult, junit_xml
    from gradfuzz.replay import ReplayResult, ReplayStatus
    from gradfuzz.report import CheckReport
    from gradfuzz.store import StoredFailure

    odd = "dir\x01\x1b[31m/ops.py:f\x0b"
    failure = StoredFailure(id="0123456789", target=odd, category="mismatch\x02", explanation="x")
    result = GateResult(replayed=[ReplayResult(failure, ReplayStatus.REPRODUCED, "again\x00", [])],
                        fuzzed=[CheckReport(target=odd, specs=(), error="boom\x1b[0m")])
    suite = ET.fromstring(junit_xml(result).split("\n", 1)[1]).find("testsuite")
    names = [case.get("name") for case in suite.findall("testcase")]
    assert names == ["dir/ops.py:f [mismatch] 01234567", "dir/ops.py:f"]
    assert suite.find("testcase/failure").get("message") == "reproduced: mismatch"


def test_gate_fails_on_reproduced_or_new_failures_and_passes_when_clean(cli, tmp_path):
    import os

    os.chdir(tmp_path)
    shutil.copy(EXAMPLES / "seed_ops.py", tmp_path / "ops.py")
    (tmp_path / "gate.toml").write_text('store = "gate-store"\nseed = 3\n[[targets]]\ntarget = "ops.py:my_op"\n'
                                        '[[targets]]\ntarget = "ops.py:my_op_fixed"\nweight = 0.5\n')
    first = cli("gate", "gate.toml", "--budget", "6s", "--junit", "junit.xml", "--create-store")
    assert first.exit_code == 1
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert int(suite.get("failures")) == 1 and int(suite.get("tests")) == 2
    fixed = (tmp_path / "ops.py").read_text().replace("dx = (tf.math.sin(x + 0.001) - tf.math.sin(x)) / 0.001", "dx = tf.math.cos(x)")
    (tmp_path / "ops.py").write_text(fixed)
    second = cli("gate", "gate.toml", "--budget", "6s", "--junit", "junit.xml")
    assert second.exit_code == 0, second.stdout[-3000:]
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert int(suite.get("failures")) == 0 and int(suite.get("tests")) >= 3  # replayed-and-fixed cases + 2 targets


def test_store_verify_reports_damaged_segments_instead_of_crashing(cli, tmp_path):
    """A segment with gradfuzz metadata but a string `time` column, and a directory named like a
    segment: before, `store verify` itself crashed with a traceback."""
    import pyarrow as pa

    from gradfuzz.store import FAILURE_SCHEMA

    store = FailureStore(tmp_path / ".gradfuzz")
    store.append_failures([_record(value=1.0)])
    store.close()
    schema = FAILURE_SCHEMA.set(FAILURE_SCHEMA.get_field_index("time"), pa.field("time", pa.string()))
    row = {**_record(value=2.0), "time": "noon"}
    with pa.OSFile(str(tmp_path / ".gradfuzz" / "failures" / "odd.arrow"), "wb") as sink, pa.ipc.new_file(sink, schema) as w:
        w.write_table(pa.Table.from_pylist([row], schema=schema))
    (tmp_path / ".gradfuzz" / "failures" / "x.arrow").mkdir()
    result = cli("store", "verify")
    assert result.exit_code == 1
    text = " ".join(result.stdout.split())
    assert "2 segment(s), 1 failure record(s) readable" in text
    assert "odd.arrow: column 'time' is string" in text and "x.arrow: not a regular file" in text


def test_export_of_a_target_name_over_255_characters(tmp_path):
    """Before: the partition directory `target_key=<name>` was longer than a file name may be, and
    the export failed with OSError (File name too long)."""
    import pandas

    from gradfuzz.export import export_dataset

    long_names = ["pkg/" + "deep_module_name/" * 20 + f"ops.py:op_{n}" for n in range(2)]
    store = FailureStore(tmp_path / "store")
    store.append_failures([_record(target=name) for name in long_names])
    store.close()
    assert export_dataset(FailureStore(tmp_path / "store").read().failures, tmp_path / "out") == 2
    partitions = [p.name for p in (tmp_path / "out").iterdir()]
    assert len(partitions) == 2 and all(len(name.encode()) <= 255 for name in partitions)
    assert sorted(pandas.read_parquet(tmp_path / "out")["target"]) == sorted(long_names)


def test_a_gate_on_a_missing_store_is_an_error_and_creates_nothing(cli, tmp_path):
    """A misspelled store: before, the gate printed "No stored failures", created the directory and
    PASSED without replaying anything."""
    (tmp_path / "ops.py").write_text("import tensorflow as tf\n\n\ndef sine(x):\n    return tf.sin(x)\n")
    (tmp_path / "gate.toml").write_text('store = "gate-stroe"\n[[targets]]\ntarget = "ops.py:sine"\ninputs = ["float64[]"]\n')
    result = cli("gate", "gate.toml", "--budget", "2s")
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "The store gate-stroe (store = ... in gate.toml) does not exist" in message and "--create-store" in message
    assert not (tmp_path / "gate-stroe").exists()
    assert cli("gate", "gate.toml", "--budget", "0s").exit_code == 2, "a gate's --budget is checked like check's"


def test_exported_tests_read_like_tests_a_person_wrote(cli, store_with_bugs, tmp_path):
    """Before: the inputs were hex bits inside a JSON string and the test called check_case(case)."""
    import ast
    import os

    work = tmp_path / "copy"
    shutil.copytree(store_with_bugs, work)
    os.chdir(work)
    assert cli("export-tests", "-o", "test_regressions.py").exit_code == 0
    source = (work / "test_regressions.py").read_text()
    ast.parse(source)
    assert "my_op = exported_target('ops.py:my_op')" in source
    assert "gradfuzz.assert_gradient(my_op, x)" in source and "gradfuzz.assert_gradient(two_bugs, x)" in source
    assert "pytest.param(np.float64(" in source, source
    assert "bits" not in source.split('"""', 2)[2] and "json" not in source and "-0.0" not in source, source
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_regressions.py"],
                         cwd=work, capture_output=True, text=True, timeout=600)
    cases = source.count("pytest.param(")
    assert run.returncode == 1 and f"{cases} failed" in run.stdout and "passed" not in run.stdout, run.stdout[-3000:]
