"""Run one of the operator suites in a subprocess, as an operator would, and read its JUnit outcome."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from runbook.upgrade import STAGES
from tests.bundles import read_summaries

ROOT = Path(__file__).resolve().parent.parent
# The upgrade suite: every pre-flight check, then one test per stage (counted from the sources, so a
# new check does not silently change what the selection tests mean).
PREFLIGHT_CHECKS = len(re.findall(r"^def test_", (ROOT / "suites" / "preflight" / "test_preflight.py").read_text(),
                                  flags=re.MULTILINE))
UPGRADE_TESTS = PREFLIGHT_CHECKS + len(STAGES)
# The checks of the PostgreSQL job queue: skipped as not applicable on the sandbox, which runs Celery.
JOB_QUEUE_CHECKS = frozenset({"test_job_queue_has_no_running_jobs", "test_job_queue_keeps_up",
                              "test_no_job_stuck_running", "test_recurring_jobs_scheduled"})


@dataclass(frozen=True)
class SuiteRun:
    outcomes: dict[str, str]  # test name -> passed | failed | error | skipped
    messages: dict[str, str]
    ret: int
    output: str
    bundle: dict | None  # the run's JSON summary (plugins/bundle.py)
    reports: Path
    properties: dict[str, dict[str, str]]  # test name -> its JUnit <properties>

    def named(self, outcome: str) -> set[str]:
        return {name for name, found in self.outcomes.items() if found == outcome}

    def lines_starting(self, prefix: str) -> list[str]:
        return [line for line in self.output.splitlines() if line.startswith(prefix)]


def run_suite(pytester: pytest.Pytester, suite: str, *args: str) -> SuiteRun:
    reports = pytester.path / f"reports-{suite}-{len(list(pytester.path.glob('reports-*')))}"
    junit = reports / f"{suite}.junit.xml"
    result = pytester.runpytest_subprocess(
        str(ROOT / "suites" / suite), *args, f"--junitxml={junit}", f"--reports-dir={reports}",
        "-o", "log_cli=false", "-p", "no:cacheprovider",
    )
    outcomes, messages, properties = {}, {}, {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = case.get("name", "")
            outcome, message = "passed", ""
            for tag in ("failure", "error", "skipped"):
                element = case.find(tag)
                if element is not None:
                    outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                    message = element.get("message", "")
            outcomes[name], messages[name] = outcome, message
            properties[name] = {p.get("name"): p.get("value") for p in case.iter("property")}
    summaries = read_summaries(reports) if reports.exists() else []
    bundle = summaries[-1] if summaries else None
    return SuiteRun(outcomes, messages, int(result.ret), "\n".join(result.outlines + result.errlines), bundle, reports,
                    properties)
