"""The real corpus: gradients nobody here wrote, labelled without gradfuzz (scripts/label_real_corpus.py).

Each target's primary verdict must match its label: ``pass`` for correct gradients, the labelled
category for bugs, some finding for intended surrogates (until they are declared as such, a
surrogate differs from the derivative by design). Verdicts gradfuzz gets wrong today are listed
in `KNOWN` with the defect class of issue #14 they belong to; they are strict expected failures,
so fixing one fails the suite until it is taken off the list — the list cannot go stale.
Prints the confusion matrix (pytest -s).
"""

import json

import pytest

import gradfuzz
from gradfuzz.categories import FAILURES as FAILURE_CATEGORIES
from tests.conftest import REPO
from tests.corpus.matrix import confusion_matrix, primary
from tests.corpus.real import all_targets

LABELS = json.loads((REPO / "tests" / "corpus" / "real" / "labels.json").read_text())
TARGETS = {t.name: t for t in all_targets()}
EXAMPLES = 2048

# name -> why gradfuzz's verdict is wrong today (issue #14's defect classes, #15, #16).
KNOWN: dict[str, str] = {
    # false alarms on correct gradients
}


def expected(name: str) -> str:
    label = LABELS[name]
    return {"correct": "pass", "surrogate": "surrogate"}.get(label["label"], label["category"])


@pytest.fixture(scope="module")
def confusion():
    rows = ["pass", "surrogate", "surrogate (declared)", *FAILURE_CATEGORIES]
    yield from confusion_matrix("real corpus: confusion matrix", rows, [r for r in rows if not r.startswith("surrogate")])


def test_every_target_is_labelled_and_bugs_have_a_category():
    assert set(LABELS) == set(TARGETS), "run python scripts/label_real_corpus.py"
    assert len([t for t in TARGETS if t.startswith("tf.")]) >= 15
    for name, label in LABELS.items():
        assert label["label"] in ("correct", "bug", "surrogate")
        assert (label["label"] == "bug") == (TARGETS[name].category is not None), (name, label)


@pytest.mark.slow
def test_labels_are_derived_from_the_code():
    """The labeller (mpmath, no gradfuzz) still says what labels.json says."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(REPO / "scripts" / "label_real_corpus.py"), "--check"],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.corpus
@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN[name])) if name in KNOWN else name
    for name in sorted(TARGETS)
])
def test_real_gradients_get_their_label(name, confusion):
    target = TARGETS[name]
    report = gradfuzz.check(target.fn, inputs=list(target.inputs), max_examples=EXAMPLES, seed=41)
    got, want = primary(report), expected(name)
    confusion[(want, got)] += 1
    if want == "surrogate":
        assert got != "pass", "an undeclared surrogate differs from the derivative: it must be reported"
        try:  # declared, it passes with surrogate notes
            declared = gradfuzz.check(gradfuzz.surrogate(target.surrogate)(target.fn), inputs=list(target.inputs),
                                      max_examples=EXAMPLES, seed=41)
        finally:
            del target.fn.__gradfuzz_surrogate__
        confusion[("surrogate (declared)", primary(declared))] += 1
        assert declared.ok and "surrogate" in {n.category for n in declared.notes}, \
            [(f.category, f.explanation[:300]) for f in declared.failures]
    else:
        assert got == want, [(f.category, f.count, f.explanation[:300]) for f in report.failures]
