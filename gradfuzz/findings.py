"""Findings: a run's verdicts folded into groups, one per signature, with their input regions.

A *signature* is a finding's coarse identity — its category and the argument it concerns
(``mismatch|arg0``); a *region* says where among the points of interest its worst element lies
(``(0, 1)``, ``=0``). Each group keeps a representative (the simplest example, later shrunk),
its worst example, one example per further region, and a count that estimates how widespread
the kind is. Pure numpy: the checker feeds it judged batches; replay and reports read what it
produced.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from gradfuzz.categories import TENSORFLOW_GRADIENT, Category, Kind
from gradfuzz.oracle import CATEGORIES, CATEGORY_CODE, CLAIM_MARGIN, FAILURE, Judgement, Verdict, along_x, explain
from gradfuzz.plans import Plan
from gradfuzz.regions import region_label, region_labels
from gradfuzz.report import CheckReport, Finding
from gradfuzz.simplicity import batch_simplicity, simplicity
from gradfuzz.spec import ArgSpec
from gradfuzz.store import failure_row
from gradfuzz.values import Evaluation

MAX_REGIONS = 8  # examples kept per group, one per input region
_NOTE_CODES = [code for category, code in CATEGORY_CODE.items() if category.is_note]


def signature_of(category: Category, argument: int | None) -> str:
    """``category|argN`` (``arg*``: no single argument); notes are grouped by kind only."""
    if category.is_note or argument is None:
        argument = -1
    return f"{category}|arg{argument if argument >= 0 else '*'}"


def group_indices(judgement: Judgement, outcome: int | None = None) -> dict[str, np.ndarray]:
    """Flagged (or, given ``outcome``, only such) example indices per signature.

    Vectorised on integer keys: a failing batch flags every one of its examples."""
    flagged = judgement.flagged() if outcome is None else np.flatnonzero(judgement.outcome == outcome)
    if not flagged.size:
        return {}
    arguments = np.where(np.isin(judgement.category[flagged], _NOTE_CODES), -1, judgement.argument[flagged])
    keys = judgement.category[flagged].astype(np.int64) * 1024 + arguments + 1
    unique, inverse = np.unique(keys, return_inverse=True)
    return {
        signature_of(CATEGORIES[int(key // 1024)], int(key % 1024) - 1): flagged[inverse.reshape(-1) == k]
        for k, key in enumerate(unique)
    }


def failure_signatures(judgement: Judgement) -> set[str]:
    return set(group_indices(judgement, FAILURE))


def confident(indices: np.ndarray, judgement: Judgement) -> np.ndarray:
    """The examples of ``indices`` past `CLAIM_MARGIN`, or all of them when none is (`Findings.collect`
    counts every example; it picks the ones to show among these)."""
    margin = judgement.evidence.get("margin")
    if margin is None:
        return indices
    with np.errstate(invalid="ignore"):
        sure = indices[~(np.asarray(margin)[indices] < CLAIM_MARGIN)]  # NaN (not finite) counts as sure
    return sure if sure.size else indices


def simplest_of(indices: np.ndarray, ranks: tuple[np.ndarray, np.ndarray]) -> int:
    """The simplest example among ``indices`` (ranks from `batch_simplicity`)."""
    nonzero, magnitude = ranks
    order = np.lexsort((magnitude[indices], nonzero[indices]))
    return int(indices[order[0]])


@dataclass
class FindingGroup:
    """All examples of one signature seen in a run."""

    representative: Finding
    worst: Finding
    count: float = 1
    shrunk: bool = False
    regions: dict[str, Finding] = field(default_factory=dict)  # one example per input region seen
    seen: set[str] = field(default_factory=set)  # every input region any of its examples fell in

    def __setattr__(self, name: str, value: object) -> None:
        # A new representative (or worst) takes over the store record of the one it replaces, so the
        # row written when the group was found is replaced by the final one, not left beside it.
        if name in ("representative", "worst") and name in self.__dict__:
            old, other = self.__dict__[name], self.__dict__.get("worst" if name == "representative" else "representative")
            if value is not old and old is not other and old.record_id and not value.record_id:
                value.record_id = old.record_id
        super().__setattr__(name, value)

    def examples(self) -> list[Finding]:
        """The examples worth storing: representative, worst, and one per further region."""
        chosen = [self.representative]
        if self.worst is not self.representative:
            chosen.append(self.worst)
        for finding in self.regions.values():
            if all(finding.region != other.region for other in chosen):
                chosen.append(finding)
        return chosen


@dataclass
class Findings:
    """One run's findings of one target at one set of specs."""

    target: str
    specs: tuple[ArgSpec, ...]  # the arguments
    points: list = field(default_factory=list)  # points of interest per argument (regions)
    gradient_specs: tuple[ArgSpec, ...] = ()  # what verdicts refer to: the arguments, then any variables
    groups: dict[str, FindingGroup] = field(default_factory=dict)
    first_failure: int | None = None  # examples evaluated up to and including the first failing one
    custom_gradient: bool = True  # False for a plain function: TensorFlow's registered gradient is checked

    def finding(self, verdict: Verdict, evaluation: Evaluation, plan: Plan | None, seed: int) -> Finding:
        """A `Finding` with its evidence from one judged example."""
        i = verdict.index
        reference = evaluation.reference or [None] * len(evaluation.custom)
        return Finding(
            target=self.target, category=verdict.category,
            explanation=explain(verdict, self.gradient_specs or self.specs, evaluation, self.custom_gradient),
            inputs=[np.array(x[i]) for x in evaluation.batch.inputs],
            cotangents=[np.array(v[i]) for v in evaluation.batch.cotangents],
            tangents=[np.array(w[i]) for w in evaluation.batch.tangents],
            custom=[np.array(g[i]) for g in evaluation.custom],
            reference=[None if r is None else np.array(r[i]) for r in reference],
            reference_name=verdict.reference_name, argument=verdict.argument, element=verdict.element,
            custom_value=verdict.custom, reference_value=verdict.reference, abs_error=verdict.abs_error,
            rel_error=verdict.rel_error, ulp_error=verdict.ulp_error, signature=signature_of(verdict.category, verdict.argument),
            plan=json.dumps(asdict(plan)) if plan is not None else "", seed=seed,
            # One-sided derivatives as the explanation tells them (left and right along x: `oracle.along_x`)
            evidence={**along_x(verdict, evaluation).evidence, **({} if self.custom_gradient else {"gradient": TENSORFLOW_GRADIENT})},
            region=self._region_of(verdict, evaluation),
        )

    def _region_of(self, verdict: Verdict, evaluation: Evaluation) -> str:
        if verdict.argument is None or not self.points or verdict.argument >= len(evaluation.batch.inputs) \
                or np.iscomplexobj(evaluation.batch.inputs[verdict.argument]):
            return "*"  # inner-product verdicts, variables (not drawn) and complex arguments: no region
        value = float(np.asarray(evaluation.batch.inputs[verdict.argument][verdict.index]).reshape(-1)[verdict.element or 0])
        return region_label(value, self.points[verdict.argument])

    def add(self, signature: str, finding: Finding, count: float = 1) -> FindingGroup:
        """A finding made outside the judged batches (contract, exception, nondeterminism): final as it is."""
        group = self.groups[signature] = FindingGroup(finding, finding, count=count, shrunk=True)
        return group

    def collect(self, evaluation: Evaluation, judgement: Judgement, plan: Plan, seed: int,
                weights: np.ndarray | None = None) -> list[str]:
        """Fold a batch's verdicts into the groups; return signatures of new failure kinds.

        Only the batch's simplest and worst example of each signature become `Finding`s. ``weights``
        (from the screen) says how many flagged examples each judged one stands for: group counts
        estimate how widespread a kind is, not how often the oracle happened to look at it.
        """
        new = []
        ranks = batch_simplicity(evaluation.batch.inputs)
        for signature, indices in group_indices(judgement).items():
            # The examples a failure shows and stores are ones it claims with a margin (error well past
            # the tolerance), so they fail again on replay, whatever kernel rounds their last bits.
            count = float(len(indices) if weights is None else np.sum(weights[indices]))
            indices = confident(indices, judgement)
            simplest = judgement.verdict(simplest_of(indices, ranks))
            errors = np.nan_to_num(judgement.abs_error[indices], nan=-1.0)
            worst = judgement.verdict(int(indices[np.argmax(errors)]))
            group = self.groups.get(signature)
            if group is None:
                representative = self.finding(simplest, evaluation, plan, seed)
                worst_finding = representative if worst.index == simplest.index else self.finding(worst, evaluation, plan, seed)
                group = self.groups[signature] = FindingGroup(representative, worst_finding, count=count)
                group.regions[representative.region] = representative
                self._note_regions(group, indices, judgement, evaluation, plan, seed)
                if simplest.kind is Kind.FAILURE:
                    new.append(signature)
                continue
            group.count += count
            self._note_regions(group, indices, judgement, evaluation, plan, seed)
            if worst.abs_error > group.worst.abs_error or (np.isnan(group.worst.abs_error) and not np.isnan(worst.abs_error)):
                group.worst = self.finding(worst, evaluation, plan, seed)
            candidate = (int(ranks[0][simplest.index]), float(ranks[1][simplest.index]))
            if not group.shrunk and candidate < simplicity(group.representative.inputs):
                group.representative = self.finding(simplest, evaluation, plan, seed)
        return new

    def _note_regions(self, group: FindingGroup, indices: np.ndarray, judgement: Judgement, evaluation: Evaluation,
                      plan: Plan, seed: int) -> None:
        """Keep the first example of each input region this group has not been seen in yet."""
        argument = int(judgement.argument[indices[0]])
        if argument < 0 or argument >= len(evaluation.batch.inputs) or group.representative.kind is not Kind.FAILURE \
                or np.iscomplexobj(evaluation.batch.inputs[argument]):
            return
        values = np.asarray(evaluation.batch.inputs[argument], dtype=np.float64).reshape(evaluation.batch.size, -1)
        elements = np.maximum(judgement.element[indices], 0)
        labels = region_labels(values[indices, elements], self.points[argument])
        group.seen |= labels
        wanted = labels - set(group.regions)
        if not wanted or len(group.regions) >= MAX_REGIONS:
            return
        for index, value in zip(indices, values[indices, elements]):
            label = region_label(float(value), self.points[argument])
            if label in wanted:
                wanted.discard(label)
                group.regions[label] = self.finding(judgement.verdict(int(index)), evaluation, plan, seed)
                if len(group.regions) >= MAX_REGIONS or not wanted:
                    return

    def adopt_shrunk(self, signature: str, plan: Plan, evaluation: Evaluation, judgement: Judgement, seed: int) -> None:
        """Take the simplest example of the shrunk plan's batch as the group's representative."""
        group = self.groups.get(signature)
        if group is None:
            return
        indices = group_indices(judgement).get(signature)
        if indices is not None:
            indices = confident(indices, judgement)
            ranks = batch_simplicity(evaluation.batch.inputs)
            best = simplest_of(indices, ranks)
            if (int(ranks[0][best]), float(ranks[1][best])) <= simplicity(group.representative.inputs):
                group.representative = self.finding(judgement.verdict(best), evaluation, plan, seed)
        group.shrunk = True

    def relabel(self, signature: str, category: Category, explanation: str) -> None:
        """A second look named the cause: move the group to ``category``, merging it with a group
        already there (the simpler representative and the larger error win)."""
        group = self.groups.pop(signature)
        finding = group.representative
        finding.category, finding.explanation = category, explanation
        finding.signature = new_signature = signature_of(category, finding.argument)
        existing = self.groups.get(new_signature)
        if existing is None:
            self.groups[new_signature] = group
            return
        existing.count += group.count
        if simplicity(finding.inputs) < simplicity(existing.representative.inputs):
            existing.representative = finding
        if group.worst.abs_error > existing.worst.abs_error:
            existing.worst = group.worst

    def fold_side_groups(self) -> None:
        """One cause, one finding. A wrong formula is `mismatch` where its error is large and
        `approximation` where it happens to be small (near a zero of the error), and may lose digits
        (`precision`) on the way; a nondeterministic or a wrong-branch gradient also disagrees by
        value. A value group of the same argument whose input regions overlap another's is a side
        effect of it: it folds into the cause — a `nondeterminism` or `branch` group, else the larger
        of `mismatch` and `approximation` (any of them, for `precision`).
        Groups in separate regions stay apart (a bug at 0 and another below -95 are two)."""
        failures = [(signature, group) for signature, group in self.groups.items() if group.representative.kind is Kind.FAILURE]
        for signature, group in sorted(failures, key=lambda item: item[1].count):
            if not group.representative.category.side_effect or signature not in self.groups:
                continue
            cause = _cause_of(group, [g for s, g in self.groups.items() if s != signature and g.representative.kind is Kind.FAILURE])
            if cause is not None:
                _absorb(cause, group)
                del self.groups[signature]

    def fill(self, report: CheckReport) -> CheckReport:
        """Put the findings into ``report``: failures (most specific causes first) and notes, with counts."""
        self.fold_side_groups()
        for group in self.groups.values():  # the worst example travels with its group's category
            if group.worst is not group.representative:
                group.worst.category = group.representative.category
                group.worst.signature = group.representative.signature
            group.representative.count = max(1, round(group.count))
            group.representative.regions_seen = sorted(group.seen)
            group.representative.worst = group.worst if group.worst is not group.representative else None
        failures = [g.representative for g in self.groups.values() if g.representative.kind is Kind.FAILURE]
        report.failures = sorted(failures, key=lambda f: (f.category.order, -f.count))  # specific causes first
        report.notes = [g.representative for g in self.groups.values() if g.representative.kind is Kind.NOTE]
        report.first_failure_at = self.first_failure
        return report

    def record_ids(self) -> set[str]:
        """The store ids of the examples the run's final failures hold (`records` writes them)."""
        return {example.record_id for group in self.groups.values() if group.representative.kind is Kind.FAILURE
                for example in group.examples() if example.record_id}

    def records(self, failures: Sequence[Finding], *, fingerprint: str, device: str, run_id: str,
                reference_target: str, variables: Sequence[tuple[str, np.ndarray]] = (),
                written: set[tuple] | None = None) -> list[dict]:
        """Store rows for ``failures`` (from `fill`): each group's representative, worst and regions;
        ``variables`` (name, value) are the target's weights, stored with every row. Examples whose
        ``(id(), category, explanation, count)`` is in ``written`` (stored while the run went on) are left out, new ones added."""
        groups = {g.representative.signature: g for g in self.groups.values()}
        rows = []
        for finding in failures:
            group = groups.get(finding.signature)
            for example in group.examples() if group is not None else [finding]:
                if written is not None:  # (a group relabelled or described since is written again, in its final form)
                    key = (id(example), finding.category, example.explanation, finding.count)
                    if key in written:
                        continue
                    written.add(key)
                example.count = finding.count
                example.category, example.signature = finding.category, finding.signature
                example.regions_seen = sorted(group.seen) if group is not None else []
                rows.append(failure_row(example, target=self.target, fingerprint=fingerprint,
                                        specs=[str(s) for s in self.specs], device=device,
                                        run_id=run_id, reference_target=reference_target, variables=variables))
        return rows


def _cause_of(group: FindingGroup, others: Sequence[FindingGroup]) -> FindingGroup | None:
    """The group ``group``'s value disagreements come from, if any (see `Findings.fold_side_groups`)."""
    argument = group.representative.argument

    def overlaps(other: FindingGroup) -> bool:
        if other.representative.argument not in (argument, None, -1) and argument not in (None, -1):
            return False
        mine = set(group.regions) or {group.representative.region}
        theirs = set(other.regions) or {other.representative.region}
        return "*" in mine or "*" in theirs or bool(mine & theirs)

    side = group.representative.category
    candidates = [g for g in others if overlaps(g) and g.representative.category.absorbs(side)]
    causes = [g for g in candidates if g.representative.category.explains_values is not None]
    if causes:  # a named cause first (nondeterminism, then branch), the most widespread of its kind
        return min(causes, key=lambda g: (g.representative.category.explains_values, -g.count))
    values = [g for g in candidates if g.representative.category.branch_candidate]  # wrong values of another size
    if not side.branch_candidate:  # digits lost where the formula is wrong anyway
        return max(values, key=lambda g: g.count) if values else None
    larger = [g for g in values if g.count > group.count]
    return max(larger, key=lambda g: g.count) if larger else None


def _absorb(cause: FindingGroup, side: FindingGroup) -> None:
    cause.count += side.count
    cause.seen |= side.seen
    for label, finding in side.regions.items():
        if label not in cause.regions and len(cause.regions) < MAX_REGIONS:
            cause.regions[label] = finding
