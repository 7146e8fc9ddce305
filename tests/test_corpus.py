"""The labelled corpus: no correct gradient ever fails; every planted bug is found and named.

Prints the confusion matrix (run pytest with -s to see it).
"""

from collections import Counter

import pytest

import gradfuzz
from gradfuzz.oracle import FAILURE_CATEGORIES
from tests.corpus import bugs, correct

CORRECT = {name: fn for name, fn in vars(correct).items() if hasattr(fn, "__gradfuzz_inputs__")}
BUGS = {name: getattr(bugs, name) for name in bugs.EXPECTED}
EXAMPLES = 2048
pytestmark = pytest.mark.corpus  # also run with oneDNN off and one thread (scripts/test.sh)


def primary_category(report: gradfuzz.CheckReport) -> str:
    return report.failures[0].category if report.failures else "pass"


@pytest.fixture(scope="module")
def confusion():
    matrix: Counter = Counter()
    yield matrix
    labels = ["pass", *FAILURE_CATEGORIES]
    width = max(len(label) for label in labels)
    print("\n\nconfusion matrix (rows: expected, columns: primary verdict)")
    print(" " * (width + 2) + " ".join(f"{label[:6]:>6s}" for label in labels))
    for expected in labels:
        row = [matrix[(expected, got)] for got in labels]
        if any(row):
            print(f"{expected:>{width}s}  " + " ".join(f"{count:>6d}" for count in row))


def test_corpus_is_big_enough():
    assert len(CORRECT) + len(correct.PLAIN) >= 20
    assert len(BUGS) >= 20
    assert set(bugs.EXPECTED.values()) >= set(FAILURE_CATEGORIES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_gradients_never_fail(name, confusion):
    # Second order too: a correct, differentiable grad_fn must pass that check as well.
    report = gradfuzz.check(CORRECT[name], max_examples=EXAMPLES, seed=21, order=2)
    confusion[("pass", primary_category(report))] += 1
    assert report.examples >= EXAMPLES
    assert report.ok, "\n".join(f"[{f.category}] {f.explanation}" for f in report.failures)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(correct.PLAIN))
def test_plain_tensorflow_gradients_never_fail(name, confusion):
    fn, specs = correct.PLAIN[name]
    report = gradfuzz.check(fn, inputs=specs, max_examples=EXAMPLES, seed=22)
    confusion[("pass", primary_category(report))] += 1
    assert report.ok, "\n".join(f"[{f.category}] {f.explanation}" for f in report.failures)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BUGS))
def test_planted_bugs_are_found_and_named(name, confusion):
    expected = bugs.EXPECTED[name]
    report = gradfuzz.check(BUGS[name], max_examples=8 * EXAMPLES, seed=23, order=2 if expected == "higher-order" else 1)
    confusion[(expected, primary_category(report))] += 1
    assert not report.ok, f"{name}: missed"
    assert primary_category(report) == expected, [(f.category, f.count, f.explanation[:200]) for f in report.failures]
