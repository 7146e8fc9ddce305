"""gradfuzz sweep: enumeration, the TensorFlow table, table entries as targets, runs, resume, exit codes."""

import json

import pytest

from gradfuzz import sweep as sweeping
from gradfuzz.spec import spec_variants
from gradfuzz.sweep_table import TABLE, counts_by_module, full_name, short_name

PACKAGE = "tests.targets.sweep_pkg"


def _items(*modules, **options):
    return {item.function.rsplit(".", 1)[-1]: item for item in sweeping.enumerate_modules(modules, **options)}


# -- enumeration -----------------------------------------------------------------------------------


def test_a_package_is_enumerated_with_specs_from_declarations_and_signatures():
    items = _items(PACKAGE)
    # classes, constants and private names are not functions to sweep; an alias is listed once as such
    assert set(items) == {"square", "softplus", "wrong_sin", "argmax_index", "running_count", "pad_to", "square_again"}
    assert items["square"].source == "declared" and items["square"].variants == [["float64[3]@-3..3"]]
    assert items["square"].target == f"{PACKAGE}:square"
    assert items["softplus"].source == "signature"
    assert items["softplus"].variants == [["float32[3]@-5..5"], ["float64[3]@-5..5"]]
    assert items["wrong_sin"].source == "declared"


def test_what_cannot_be_checked_is_listed_with_a_reason():
    items = _items(PACKAGE)
    assert "integer or boolean output" in items["argmax_index"].skip
    assert "no floating-point argument" in items["running_count"].skip
    assert "cannot guess (width)" in items["pad_to"].skip
    assert items["square_again"].skip == f"alias of {PACKAGE}.square (checked once)"
    assert all(items[name].skip is None for name in ("square", "softplus", "wrong_sin"))


def test_match_and_dtype_filters():
    items = _items(PACKAGE, match=["*sin"], dtypes=["float64"])
    assert set(items) == {"wrong_sin"}
    items = _items("tf.math", match=["tf.math.sin", "tf.math.floor"], dtypes=["float64"])
    assert items["sin"].variants == [["float64[3]@-5..5"]] and items["sin"].source == "table"
    assert "piecewise constant" in items["floor"].skip


def test_an_alias_in_another_module_finds_its_table_entry():
    items = _items("tensorflow.nn", match=["tf.nn.softmax", "tf.nn.top_k"])
    assert items["softmax"].target == "gradfuzz.sweep_targets:tf.math.softmax"  # tf.nn.softmax is tf.math.softmax
    assert items["top_k"].variants and items["top_k"].source == "table"


def test_a_module_that_does_not_import_is_a_sweep_error():
    with pytest.raises(sweeping.SweepError, match="Cannot import the module"):
        sweeping.enumerate_modules(["no_such_package_for_gradfuzz.ops"])


# -- the table -------------------------------------------------------------------------------------


def test_the_table_covers_at_least_200_tensorflow_functions_that_exist():
    from gradfuzz.sweep_targets import resolve

    tensorflow_names = [name for name in TABLE if name.startswith("tf.")]
    missing = []
    for name in tensorflow_names:
        try:
            assert callable(resolve(name))
        except (ImportError, AttributeError) as error:
            missing.append(f"{name}: {error}")
    assert missing == []
    assert len(tensorflow_names) >= 200
    checked = sum(TABLE[name].checked for name in tensorflow_names)
    assert checked >= 180, counts_by_module()


def test_every_public_function_of_the_four_tensorflow_modules_has_an_entry():
    import inspect

    from gradfuzz.sweep_targets import resolve

    resolved = {id(resolve(name)) for name in TABLE if name.startswith("tf.")}  # aliases: tf.nn.softmax is tf.math.softmax
    for module in ("tf.math", "tf.nn", "tf.linalg", "tf.signal"):
        unlisted = [f"{module}.{name}" for name, value in sweeping.public_callables(sweeping.import_module(module))
                    if f"{module}.{name}" not in TABLE and id(value) not in resolved and not inspect.isclass(value)]
        # functions newer than the table fall back to their signature; none today
        assert unlisted == [], unlisted


def test_table_entries_are_well_formed():
    for name, entry in TABLE.items():
        assert full_name(short_name(full_name(name))) == full_name(name)
        if entry.skip is not None:
            assert entry.skip.strip() and not entry.specs, name
            continue
        assert entry.variants(), name
        for variant in entry.variants():
            spec_variants(variant)  # parses
            assert len(variant) == len(entry.specs), name
        assert not entry.prepare or len(entry.prepare) <= len(entry.specs), name


def test_tensorflow_probability_entries_resolve_where_it_imports():
    pytest.importorskip("tensorflow_probability")
    from gradfuzz.sweep_targets import resolve

    names = [name for name in TABLE if name.startswith("tfp.")]
    assert len(names) >= 50
    assert all(callable(resolve(name)) for name in names)
    # tensorflow_probability.math is a lazily loaded attribute, not an importable module: it sweeps,
    # named as the user named it.
    items = _items("tensorflow_probability.math", match=["tfp.math.atan_difference"])
    assert items["atan_difference"].function == "tfp.math.atan_difference" and items["atan_difference"].variants


def test_table_entries_are_targets_with_their_constants_and_their_name():
    import numpy as np
    import tensorflow as tf

    import gradfuzz.sweep_targets as targets
    from gradfuzz.target import load_target

    betainc = getattr(targets, "tf.math.betainc")  # a and b are keyword constants of the checked dtype
    x = tf.constant([0.25, 0.5], tf.float64)
    np.testing.assert_allclose(betainc(x).numpy(), tf.math.betainc(tf.constant(2.0, tf.float64), tf.constant(3.0, tf.float64), x))
    target = load_target("gradfuzz.sweep_targets:tf.math.top_k")  # loadable by name, as replay does
    assert target.name == "gradfuzz.sweep_targets:tf.math.top_k"
    values = target.fn(tf.constant([1.0, 5.0, 3.0, 4.0, 2.0]))  # the values only, not the integer indices
    assert values.numpy().tolist() == [5.0, 4.0]
    add_n = getattr(targets, "tf.math.add_n")  # arguments packed into a list
    assert add_n(tf.constant(1.0), tf.constant(2.0), tf.constant(3.0)).numpy() == 6.0
    cholesky = getattr(targets, "tf.linalg.cholesky")  # a prepared (positive definite) argument
    assert np.all(np.isfinite(cholesky(tf.constant([[0.5, -1.0, 0.2], [1.0, 0.0, 0.3], [0.1, 0.2, -0.9]])).numpy()))
    with pytest.raises(AttributeError):
        getattr(targets, "tf.math.argmax")  # skipped entries are no targets
    # Labels as distributions (the documented domain), and a full-rank QR input.
    xent = getattr(targets, "tf.nn.softmax_cross_entropy_with_logits")
    labels, logits = tf.constant([[1.0, 1.0, 2.0]], tf.float64), tf.constant([[0.0, 1.0, 2.0]], tf.float64)
    expected = tf.nn.softmax_cross_entropy_with_logits(labels=labels / 4.0, logits=logits)
    np.testing.assert_allclose(xent(labels, logits).numpy(), expected.numpy())
    qr = getattr(targets, "tf.linalg.qr")
    r = qr(tf.zeros((3, 3), tf.float64))[1].numpy()
    assert np.all(np.abs(np.diag(r)) >= 4.0 - 1e-12)  # A + 4I: full rank even at A = 0


def test_a_gradient_that_raises_where_the_forward_is_singular_is_outside_the_domain():
    """A matrix singular to rounding (rank 1): TensorFlow's log|det| and solve still return finite
    numbers, but along any line through it they grow like 1/distance, and their gradients raise
    "not invertible": outside the domain. The determinant is smooth there (its gradient raising is
    TensorFlow's bug, an `exception` finding), and it is not singular."""
    import numpy as np

    from gradfuzz.engine import forward_is_singular
    from gradfuzz.spec import parse_specs
    from gradfuzz.target import load_target

    u, v = np.array([0.22, 0.1148, -0.0922]), np.array([1.0, 0.5736, -1.0479])
    rank_one = np.outer(u, v) + 1e-14 * np.eye(3)  # log|det| finite (-65), as rounding leaves it
    w = np.random.default_rng(0).standard_normal((3, 3))
    specs = parse_specs(["float64[3,3]@-2..2"])
    slogdet = load_target("gradfuzz.sweep_targets:tf.linalg.slogdet")
    det = load_target("gradfuzz.sweep_targets:tf.linalg.det")
    assert forward_is_singular(slogdet, specs, [rank_one], [w])
    assert not forward_is_singular(det, specs, [rank_one], [w])
    assert not forward_is_singular(slogdet, specs, [np.eye(3) + 0.1 * w], [w])


# -- state and resume ------------------------------------------------------------------------------


def test_resume_lists_a_function_that_was_running_as_an_error_and_continues_the_rest(tmp_path):
    items = sweeping.enumerate_modules([PACKAGE], match=["square", "softplus", "argmax_index"])
    state = sweeping.new_sweep([PACKAGE], items, store=tmp_path, budget_per_function=1.0, max_examples=None, seed=3)
    by_name = {row.function.rsplit(".", 1)[-1]: row for row in state.rows}
    by_name["square"].verdict = sweeping.RUNNING  # the process died here
    state.checkpoint()
    resumed = sweeping.resume_sweep(tmp_path, [PACKAGE])
    rows = {row.function.rsplit(".", 1)[-1]: row for row in resumed.rows}
    assert rows["square"].verdict == "error" and "died while checking it" in rows["square"].reason
    assert "gradfuzz check 'tests.targets.sweep_pkg:square' --input 'float64[3]@-3..3'" in rows["square"].reason
    assert rows["softplus"].verdict == "pending" and rows["argmax_index"].verdict == "skipped"
    assert resumed.seed == 3 and resumed.sessions == 2
    with pytest.raises(sweeping.SweepError, match=r"not tensorflow\.math"):
        sweeping.resume_sweep(tmp_path, ["tensorflow.math"])


def test_outputs_json_and_markdown(tmp_path):
    items = sweeping.enumerate_modules([PACKAGE])
    state = sweeping.new_sweep([PACKAGE], items, store=tmp_path, budget_per_function=2.0, max_examples=None, seed=1)
    sweeping.write_outputs(state, [tmp_path / "sweep.json", tmp_path / "sweep.md"])
    document = json.loads((tmp_path / "sweep.json").read_text())
    assert {f["function"].rsplit(".", 1)[-1]: f["verdict"] for f in document["functions"]}["pad_to"] == "skipped"
    markdown = (tmp_path / "sweep.md").read_text()
    assert "| function | inputs (dtypes/shapes) | verdict | findings / reason | examples | examples/s |" in markdown
    assert "| `tests.targets.sweep_pkg.square` | float64[3]@-3..3 | pending |" in markdown


# -- runs and exit codes ---------------------------------------------------------------------------


def test_usage_errors_exit_2(cli):
    assert cli("sweep", "no_such_package_for_gradfuzz").exit_code == 2
    assert cli("sweep", PACKAGE, "--budget-per-function", "soon").exit_code == 2
    assert cli("sweep", PACKAGE, "--match", "nothing_matches_this").exit_code == 2
    assert cli("sweep", PACKAGE, "--resume").exit_code == 2  # nothing to resume


def test_list_runs_nothing_and_exits_0(cli, tmp_path):
    result = cli("sweep", "tf.math", "--list", "-k", "tf.math.log*", "-o", "plan.json")
    assert result.exit_code == 0, result.output
    functions = {f["function"]: f for f in json.loads((tmp_path / "plan.json").read_text())["functions"]}
    assert functions["tf.math.log"]["inputs"] == [["float32[3]@0.01..10"], ["float64[3]@0.01..10"]]
    assert functions["tf.math.log_softmax"]["verdict"] == "pending"
    assert not (tmp_path / ".gradfuzz" / "sweep.json").exists()


@pytest.mark.slow
def test_sweeping_the_package_finds_the_wrong_gradient_and_exits_1(cli, tmp_path):
    result = cli("sweep", PACKAGE, "--max-examples", "512", "--seed", "5", "--store", "store", "-o", "sweep.json",
                 "-o", "sweep.md")
    assert result.exit_code == 1, result.output
    verdicts = {f["function"].rsplit(".", 1)[-1]: f for f in json.loads((tmp_path / "sweep.json").read_text())["functions"]}
    assert {name: f["verdict"] for name, f in verdicts.items()} == {
        "square": "pass", "softplus": "pass", "wrong_sin": "fail", "argmax_index": "skipped", "running_count": "skipped",
        "pad_to": "skipped", "square_again": "skipped"}
    assert verdicts["wrong_sin"]["findings"] and verdicts["wrong_sin"]["stored"] > 0
    assert verdicts["softplus"]["inputs"] == [["float32[3]@-5..5"], ["float64[3]@-5..5"]]
    assert verdicts["square"]["examples"] == 512 and verdicts["square"]["examples_per_second"] > 0
    state = json.loads((tmp_path / "store" / "sweep.json").read_text())
    assert state["status"] == "finished" and state["summary"]["fail"] == 1
    assert "wrong_sin" in (tmp_path / "sweep.md").read_text()


def test_a_short_sweep_of_tensorflow_math_passes_and_exits_0(cli, tmp_path):
    result = cli("sweep", "tensorflow.math", "-k", "tf.math.sin", "-k", "tf.math.sqrt", "-k", "tf.math.floor",
                 "--dtype", "float64", "--max-examples", "512", "--seed", "2", "-o", "sweep.json")
    assert result.exit_code == 0, result.output
    functions = {f["function"]: f for f in json.loads((tmp_path / "sweep.json").read_text())["functions"]}
    assert {name: f["verdict"] for name, f in functions.items()} == {
        "tf.math.sin": "pass", "tf.math.sqrt": "pass", "tf.math.floor": "skipped"}
    assert functions["tf.math.sqrt"]["target"] == "gradfuzz.sweep_targets:tf.math.sqrt"
    assert functions["tf.math.sin"]["inputs"] == [["float64[3]@-5..5"]]
    assert "tf.math.sin" in result.output and "pass" in result.output


def test_a_function_whose_check_raises_is_an_error_and_the_sweep_goes_on(tmp_path, monkeypatch):
    import gradfuzz.checker

    calls = []

    def broken(target, specs, options=None, **context):
        calls.append(target.name)
        raise RuntimeError("an internal error")

    monkeypatch.setattr(gradfuzz.checker, "check_target", broken)
    items = sweeping.enumerate_modules([PACKAGE], match=["square", "wrong_sin"])
    state = sweeping.new_sweep([PACKAGE], items, store=tmp_path, budget_per_function=1.0, max_examples=None, seed=1)
    sweeping.run_sweep(state)
    assert [row.verdict for row in state.rows] == ["error", "error"]
    assert state.rows[0].reason == "checking it raised RuntimeError: an internal error"
    assert len(calls) == 2 and state.status == "finished" and not state.all_passed
    assert json.loads((tmp_path / "sweep.json").read_text())["summary"]["error"] == 2


def test_near_ties_and_near_singular_matrices_from_the_sweep_are_no_claim():
    """Inputs where the 2026-12-05 sweep claimed against functions labelled correct: dilation2d with
    elements tied and near-tied (2e-7, 3e-7: several kinks within one step; TensorFlow's gradient is
    one piece's), and lstsq at a matrix with entries from 1 down to 4e-89 (a pole within the step)."""
    import numpy as np

    import gradfuzz
    from gradfuzz.target import load_target

    image = np.zeros((1, 4, 4, 1))
    image[0, 0, 0, 0], image[0, 0, 3, 0] = 1.0, 3e-7
    kernel = np.zeros((2, 2, 1))
    kernel[0, 1, 0] = 2e-7
    dilation = load_target("gradfuzz.sweep_targets:tf.nn.dilation2d").fn
    a = np.zeros((4, 3))
    a[0, 0], a[2, 2], a[3, 1] = 1.0, -2e-23, 4e-89
    b = np.zeros((4, 2))
    b[2, 0] = -1.0
    lstsq = load_target("gradfuzz.sweep_targets:tf.linalg.lstsq").fn
    for seed in range(2):
        gradfuzz.assert_gradient(dilation, image, kernel, seed=seed)
        gradfuzz.assert_gradient(lstsq, a, b, seed=seed)
