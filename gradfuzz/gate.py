"""The release gate: replay every open failure, fuzz every target, pass only if both are clean.

``gradfuzz gate CONFIG.toml --budget 30m [--junit out.xml]``. The budget is shared:
replaying first, then the time left is split over the targets by weight (or their own
budgets). New failures go to the config's store, so the next gate replays them.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from gradfuzz.checker import check_target
from gradfuzz.config import CampaignConfig
from gradfuzz.options import CheckOptions
from gradfuzz.planning import CheckRequest, plan_checks
from gradfuzz.replay import Replayer, ReplayResult, replay_store
from gradfuzz.report import CheckReport
from gradfuzz.spec import SpecError
from gradfuzz.store import FailureStore, RecordStatus
from gradfuzz.target import TargetError, load_targets


@dataclass
class GateResult:
    replayed: list[ReplayResult] = field(default_factory=list)
    fuzzed: list[CheckReport] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (target, message)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def reproduced(self) -> list[ReplayResult]:
        return [r for r in self.replayed if r.failing]

    @property
    def new_failures(self) -> list[CheckReport]:
        return [r for r in self.fuzzed if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.reproduced and not self.new_failures and not self.errors


def run_gate(config: CampaignConfig, budget: float, *, trust_store: bool = False, supervisor=None) -> GateResult:
    """With a `gradfuzz.supervisor.Supervisor`, replays and checks run in its worker process."""
    from gradfuzz.supervisor import SupervisedReplayer, check_target_in_worker

    started = time.monotonic()
    result = GateResult()
    with FailureStore(config.store) as store:
        if (config.store / "failures").is_dir():
            # The config's targets are trusted code; other names a record holds are not, unless --trust-store.
            named = frozenset(f"{t.target}" for t in config.targets)
            replayer = Replayer(trust_store=trust_store, trusted_names=named) if supervisor is None else \
                SupervisedReplayer(supervisor, trust_store=trust_store, trusted_names=named)
            replayed, result.problems = replay_store(store, replayer=replayer)
            # Failures fixed before this gate and still fixed are history, not test cases.
            result.replayed = [r for r in replayed if not (r.failure.status == RecordStatus.FIXED and not r.failing)]
        remaining = max(budget - (time.monotonic() - started), 1.0)
        for target_config, seconds in zip(config.targets, config.budgets(remaining)):
            if supervisor is not None:  # loaded, planned and checked in the worker
                reports, error = check_target_in_worker(supervisor, target_config.target, target_config.inputs, seconds,
                                                        seed=config.seed, store=config.store)
                result.fuzzed += reports
                if error is not None:
                    result.errors.append((target_config.target, error))
                continue
            try:
                planned = plan_checks([CheckRequest(tuple(load_targets(target_config.target)), target_config.inputs, seconds)])
            except (TargetError, SpecError) as error:
                result.errors.append((target_config.target, str(error)))
                continue
            for plan in planned:
                result.fuzzed.append(check_target(plan.target, plan.specs, CheckOptions(budget=max(plan.seconds, 1.0), seed=config.seed),
                                                  store=store))
    result.seconds = time.monotonic() - started
    return result


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    """Exception text as XML 1.0 allows it: ANSI colour codes and other control characters removed."""
    return _XML_FORBIDDEN.sub("", _ANSI.sub("", text))


def junit_xml(result: GateResult) -> str:
    """JUnit XML: one test case per replayed failure and per fuzzed target."""
    suite = ET.Element("testsuite", name="gradfuzz-gate", time=f"{result.seconds:.3f}")
    failures = 0
    for replayed in result.replayed:
        f = replayed.failure
        case = ET.SubElement(suite, "testcase", classname="gradfuzz.replay",
                             name=_xml_text(f"{f.target} [{f.category}] {f.id[:8]}"))
        if replayed.failing:
            failures += 1
            ET.SubElement(case, "failure", message=_xml_text(f"{replayed.status}: {f.category}")).text = \
                _xml_text(replayed.detail or f.explanation)
    for report in result.fuzzed:
        case = ET.SubElement(suite, "testcase", classname="gradfuzz.fuzz", name=_xml_text(report.target),
                             time=f"{report.seconds:.3f}")
        if not report.ok:
            failures += 1
            text = "\n".join(f"[{x.category}] x{x.count}: {x.explanation}" for x in report.failures) or (report.error or "")
            ET.SubElement(case, "failure", message=f"{len(report.failures)} failure kind(s) in {report.examples} examples").text = \
                _xml_text(text)
    for target, message in result.errors:
        failures += 1
        case = ET.SubElement(suite, "testcase", classname="gradfuzz.fuzz", name=_xml_text(target))
        ET.SubElement(case, "error", message="target could not be loaded").text = _xml_text(message)
    suite.set("tests", str(len(suite)))
    suite.set("failures", str(failures))
    root = ET.Element("testsuites")
    root.append(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")
