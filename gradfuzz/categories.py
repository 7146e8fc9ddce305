"""The verdict vocabulary, with each category's rules as data.

Every rule that depends on a finding's category lives in `RULES`: whether it is a failure or a
note, where it sorts in a report, whether it is a value error or a broken contract, what a
declared surrogate may differ in, whether a nearby boundary may explain it, whether it can be a
side effect of another finding, and its explanation. Modules ask a `Category` (``c.is_failure``,
``c.side_effect``, …); none keeps a list of category names of its own. The names are public
(stores, JSON, JUnit) and are the enum's values: in memory a `Category`, on disk its string.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """What a finding is: a failure (someone's gradient is wrong) or a note (worth knowing, not wrong)."""

    FAILURE = "failure"
    NOTE = "note"


class Family(StrEnum):
    """What a category says is wrong."""

    VALUE = "value"  # the gradient's numbers
    CONTRACT = "contract"  # its shape, dtype or presence, whatever the numbers
    BEHAVIOUR = "behaviour"  # the code's conduct: it raised, hung or is not deterministic
    OBSERVATION = "observation"  # notes: nothing is wrong


class Category(StrEnum):
    """The verdict vocabulary (public names: keep them). Each member's rules are `RULES[member]`."""

    # failures
    APPROXIMATION = "approximation"
    BRANCH = "branch"
    DTYPE = "dtype"
    SHAPE = "shape"
    NON_FINITE = "non-finite"
    MISSING_GRADIENT = "missing-gradient"
    HIGHER_ORDER = "higher-order"
    EXCEPTION = "exception"
    NONDETERMINISM = "nondeterminism"
    MISMATCH = "mismatch"
    PRECISION = "precision"  # the right formula, losing digits at the argument's dtype (lowest severity)
    # notes
    KINK = "kink"
    REFERENCE_WRONG = "reference-wrong"
    INCONCLUSIVE = "inconclusive"
    SURROGATE = "surrogate"  # a declared surrogate gradient differs from the derivative, as declared
    DOMAIN = "domain"  # the forward itself raised at these inputs (a singular matrix's inverse): skipped

    @classmethod
    def parse(cls, name: str) -> Category | None:
        """The category named ``name`` (as stored), or None for a name this version does not know."""
        try:
            return cls(name)
        except ValueError:
            return None

    @property
    def rules(self) -> CategoryRules:
        return RULES[self]

    @property
    def kind(self) -> Kind:
        return self.rules.kind

    @property
    def is_failure(self) -> bool:
        return self.rules.kind is Kind.FAILURE

    @property
    def is_note(self) -> bool:
        return self.rules.kind is Kind.NOTE

    @property
    def family(self) -> Family:
        return self.rules.family

    @property
    def order(self) -> int:
        return self.rules.order

    @property
    def surrogate_may_differ(self) -> bool:
        return self.rules.surrogate_may_differ

    @property
    def branch_candidate(self) -> bool:
        return self.rules.branch_candidate

    @property
    def side_effect(self) -> bool:
        return self.rules.side_effect

    @property
    def explains_values(self) -> int | None:
        return self.rules.explains_values

    @property
    def derivative(self) -> bool:
        return self.rules.derivative

    @property
    def smooth(self) -> bool:
        return self.rules.smooth

    @property
    def suspect(self) -> bool:
        return self.rules.suspect

    @property
    def explanation(self) -> str:
        return self.rules.explanation

    def lead(self, custom_gradient: bool = True) -> str:
        """The finding's first sentence(s) for its target (`oracle.explain` starts with them): as written
        for a custom gradient; for a plain function the gradient checked is TensorFlow's registered one,
        named so ("TensorFlow's gradient lies between them").

        >>> Category.KINK.lead(False).split(". ")[1]
        "TensorFlow's gradient lies between them, so it is a valid subgradient; recorded as a note, not a failure."
        """
        text = self.rules.explanation
        if custom_gradient:
            return text
        return text.replace("The custom gradient", TENSORFLOW_GRADIENT).replace("the custom gradient", TENSORFLOW_GRADIENT)

    def absorbs(self, other: Category) -> bool:
        """Whether ``other``'s value disagreements may be a side effect of a finding of this category
        (one cause, one finding): the fold of a run's groups and replay's reading of a record both ask."""
        return self is other or (other.side_effect and (self.explains_values is not None or self.branch_candidate))

    def describe(self) -> str:
        """One line for help texts: the name and what it means."""
        return f"{self.value} ({self.kind.value}): {self.rules.explanation.split('. ')[0].rstrip('.')}."


@dataclass(frozen=True)
class CategoryRules:
    kind: Kind
    family: Family
    order: int  # report order: specific causes first (lower sorts first)
    explanation: str  # the finding's first sentence(s); the evidence follows
    surrogate_may_differ: bool = False  # a declared surrogate's disagreement of this category is a note
    branch_candidate: bool = False  # a boundary nearby may explain it (`diagnosis.relabel_branches`)
    side_effect: bool = False  # may be a side effect of another finding of the same argument and region
    explains_values: int | None = None  # a cause that explains value disagreements around it (rank: lower first)
    derivative: bool = False  # headlined by the exact Jacobian entry ∂y/∂x behind it
    smooth: bool = False  # one error wherever it shows: its regions do not split it into several bugs
    suspect: bool = False  # worth a second look a few ULPs to either side before it is called a bug


_F, _N = Kind.FAILURE, Kind.NOTE
_V, _C, _B, _O = Family.VALUE, Family.CONTRACT, Family.BEHAVIOUR, Family.OBSERVATION

RULES: dict[Category, CategoryRules] = {
    Category.EXCEPTION: CategoryRules(_F, _B, 0, "grad_fn or the forward raised (or the process evaluating it died)."),
    Category.NONDETERMINISM: CategoryRules(
        _F, _B, 1, "The gradient differs between two evaluations of the same input by more than rounding explains.",
        explains_values=0),
    Category.SHAPE: CategoryRules(_F, _C, 2, "The gradient's shape differs from its argument's."),
    Category.DTYPE: CategoryRules(_F, _C, 3, "The gradient's dtype differs from its argument's."),
    Category.MISSING_GRADIENT: CategoryRules(
        _F, _C, 4,
        "grad_fn returned None for this argument, which TensorFlow silently treats as zero, but the output depends on it.",
        derivative=True),
    Category.NON_FINITE: CategoryRules(
        _F, _V, 5, "The custom gradient is NaN or infinite where the reference is finite.", derivative=True),
    Category.BRANCH: CategoryRules(
        _F, _V, 6,
        "The input sits at (or within one difference step of) a non-differentiable point, and the custom "
        "gradient lies outside the range of the one-sided derivatives there: it belongs to neither "
        "side, as when grad_fn switches branches at a different point than the forward.",
        surrogate_may_differ=True, branch_candidate=True, explains_values=1, derivative=True, suspect=True),
    Category.HIGHER_ORDER: CategoryRules(
        _F, _V, 7,
        "Second order: differentiating the custom gradient gives a different Hessian-vector product "
        "than autodiff of the forward (or none at all). Anything that differentiates through the "
        "gradient — Hessian-vector products, gradient penalties, meta-learning — gets wrong numbers: "
        "keep grad_fn differentiable (no numpy, no tf.stop_gradient on what it depends on) or give "
        "it a custom gradient of its own.",
        surrogate_may_differ=True),
    Category.MISMATCH: CategoryRules(
        _F, _V, 7, "The custom gradient disagrees with the reference by more than an approximation would explain.",
        surrogate_may_differ=True, branch_candidate=True, side_effect=True, derivative=True, suspect=True),
    Category.APPROXIMATION: CategoryRules(
        _F, _V, 7,
        "The custom gradient is close to the reference but off by a small, smooth amount. "
        "That is what a finite-difference approximation, a truncated series or a dropped "
        "higher-order term inside grad_fn looks like.",
        surrogate_may_differ=True, branch_candidate=True, side_effect=True, derivative=True, smooth=True, suspect=True),
    Category.PRECISION: CategoryRules(
        _F, _V, 8,
        "The formula is right but loses precision at this dtype: the same grad_fn run at float64 agrees with "
        "autodiff, while at the argument's dtype it loses far more digits than autodiff of the forward does. "
        "Typically cancellation (1 - 1/(1 + eˣ) where eˣ is tiny, a difference of nearly equal terms) or an "
        "intermediate that overflows or underflows; rewrite it stably (σ(x) instead of 1 - σ(-x), log1p, expm1, "
        "computing in a rescaled form). Lower severity than a wrong formula; the threshold is `precision_digits`.",
        side_effect=True, derivative=True),
    Category.KINK: CategoryRules(
        _N, _O, 10,
        "The function is not differentiable here along the probed direction: left and right "
        "derivatives differ at every step size. The custom gradient lies between them, so it is a "
        "valid subgradient; recorded as a note, not a failure."),
    Category.REFERENCE_WRONG: CategoryRules(
        _N, _O, 11,
        "The custom gradient agrees with central differences but autodiff of the forward does not "
        "(typically NaN or overflow from an unselected branch of tf.where, or cancellation in the "
        "forward's own gradient): the reference is wrong here, not the custom gradient.",
        suspect=True),
    Category.SURROGATE: CategoryRules(
        _N, _O, 12,
        "The custom gradient is declared an intended surrogate (@gradfuzz.surrogate), and it differs "
        "from the derivative here, as declared. Its shape, dtype, finiteness and determinism are still "
        "checked; its values are not."),
    Category.INCONCLUSIVE: CategoryRules(
        _N, _O, 13,
        "The references are too unreliable here to judge (differences not finite or straddling "
        "a singularity, and the disagreement is within what precision loss could explain)."),
    Category.DOMAIN: CategoryRules(
        _N, _O, 14, "The forward itself raised at these inputs: they are outside its domain and were skipped."),
}

FAILURES = tuple(c for c in Category if c.is_failure)
NOTES = tuple(c for c in Category if c.is_note)


# -- what the gradient under test is called -------------------------------------------------------

TENSORFLOW_GRADIENT = "TensorFlow's gradient"  # a plain function has no custom gradient: TF's registered one is checked


def gradient_label(custom: bool) -> str:
    """Before a number: "custom 2 vs autodiff 3", "TensorFlow's gradient 2 vs central differences 3"."""
    return "custom" if custom else TENSORFLOW_GRADIENT

