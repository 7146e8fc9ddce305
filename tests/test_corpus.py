"""The labelled corpus: no correct gradient ever fails; every planted bug is found and named.

Prints the confusion matrix (run pytest with -s to see it).
"""

import pytest

import gradfuzz
from gradfuzz.categories import FAILURES as FAILURE_CATEGORIES
from tests.corpus import bugs, correct
from tests.corpus.matrix import confusion_matrix, primary

CORRECT = {name: fn for name, fn in vars(correct).items() if hasattr(fn, "__gradfuzz_inputs__")}
BUGS = {name: getattr(bugs, name) for name in bugs.EXPECTED}
EXAMPLES = 2048
pytestmark = pytest.mark.corpus  # also run with oneDNN off and one thread (scripts/test.sh)


@pytest.fixture(scope="module")
def confusion():
    labels = ["pass", *FAILURE_CATEGORIES]
    yield from confusion_matrix("confusion matrix", labels, labels)


def test_corpus_is_big_enough():
    assert len(CORRECT) + len(correct.PLAIN) >= 20
    assert len(BUGS) >= 20
    assert set(bugs.EXPECTED.values()) >= set(FAILURE_CATEGORIES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_gradients_never_fail(name, confusion):
    # Second order too: a correct, differentiable grad_fn must pass that check as well.
    report = gradfuzz.check(CORRECT[name], max_examples=EXAMPLES, seed=21, order=2)
    confusion[("pass", primary(report))] += 1
    assert report.examples >= EXAMPLES
    assert report.ok, "\n".join(f"[{f.category}] {f.explanation}" for f in report.failures)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(correct.PLAIN))
def test_plain_tensorflow_gradients_never_fail(name, confusion):
    fn, specs = correct.PLAIN[name]
    report = gradfuzz.check(fn, inputs=specs, max_examples=EXAMPLES, seed=22)
    confusion[("pass", primary(report))] += 1
    assert report.ok, "\n".join(f"[{f.category}] {f.explanation}" for f in report.failures)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BUGS))
def test_planted_bugs_are_found_and_named(name, confusion):
    expected = bugs.EXPECTED[name]
    report = gradfuzz.check(BUGS[name], max_examples=8 * EXAMPLES, seed=23, order=2 if expected == "higher-order" else 1)
    confusion[(expected, primary(report))] += 1
    assert not report.ok, f"{name}: missed"
    assert primary(report) == expected, [(f.category, f.count, f.explanation[:200]) for f in report.failures]
    # One cause, one finding (issue #14, class 4): no approximation or mismatch side groups.
    assert len(report.failures) == 1, [(f.category, f.count, f.region) for f in report.failures]
