"""Every suite run writes a report bundle under ``reports/`` without being asked: self-contained
HTML (pytest-html), JUnit XML and a versioned JSON summary, named from the ticket and the time.
Explicit ``--html``/``--junitxml`` still win. Failed checks carry the backend's log tail."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from plugins.keys import MAINTENANCE_KEY, UPGRADE_KEY
from plugins.options import OPTIONS_KEY, PROFILE_KEY
from runbook import timeline

SCHEMA = "openwatch-upgrade-suite/report"
SCHEMA_VERSION = 1
SUITES = ("preflight", "upgrade", "postflight")
LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class Bundle:
    suite: str
    html: Path
    junit: Path
    json: Path
    log: Path  # the run's output after a terminal hang-up (plugins/hangup.py); absent without one


BUNDLE_KEY = pytest.StashKey[Bundle]()
RESULTS_KEY = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("openwatch").addoption("--reports-dir", type=Path,
                                           help="where report bundles go; default reports/ in the repository")


def suite_of(config: pytest.Config) -> str | None:
    """The suite a run selects (``suites`` for several or other files under suites/), else None."""
    for arg in config.args:
        parts = Path(arg.split("::")[0]).resolve().parts
        if "suites" in parts:
            rest = parts[parts.index("suites") + 1:]
            return rest[0] if rest and rest[0] in SUITES else "suites"
    return None


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60] or "no-ticket"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Before pytest-html and junitxml read their options."""
    suite = suite_of(config)
    if suite is None:
        return
    folder = config.getoption("reports_dir") or config.rootpath / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{safe_name(config.getoption('ticket') or 'no-ticket')}_{suite}_{time.strftime('%Y%m%dT%H%M%S')}"
    if not config.option.htmlpath:
        config.option.htmlpath = str(folder / f"{stem}.html")
        config.option.self_contained_html = True
    if not config.option.xmlpath:
        config.option.xmlpath = str(folder / f"{stem}.xml")
    config.stash[BUNDLE_KEY] = Bundle(suite, Path(config.option.htmlpath), Path(config.option.xmlpath),
                                      folder / f"{stem}.json", folder / f"{stem}.log")
    config.stash[RESULTS_KEY] = []
    config.pluginmanager.register(ResultCollector(config.stash[RESULTS_KEY]), "openwatch-bundle-results")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    report = yield
    profile = item.config.stash.get(PROFILE_KEY, None)
    if report.failed and profile is not None and BUNDLE_KEY in item.config.stash:
        container = profile.container("backend")
        try:
            tail = docker.from_env(timeout=10).containers.get(container).logs(tail=LOG_TAIL_LINES)
            report.sections.append((f"{container} log tail", tail.decode(errors="replace")))
        except docker.errors.DockerException:
            report.sections.append((f"{container} log tail", f"{container} does not exist"))
    return report


class ResultCollector:
    """One entry per test for the JSON summary: its call phase, or the phase that failed or skipped it."""

    def __init__(self, results: list) -> None:
        self.results = results

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and report.outcome == "passed":
            return
        message = ""
        if report.failed or report.skipped:
            text = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            message = text.strip().splitlines()[-1][:500] if text.strip() else ""
        self.results.append({"nodeid": report.nodeid, "phase": report.when, "outcome": report.outcome,
                             "seconds": round(report.duration, 3), "message": message})


def pytest_html_results_summary(prefix: list, summary: list, postfix: list, session: pytest.Session) -> None:
    upgrade = session.config.stash.get(UPGRADE_KEY, None)
    if upgrade is not None:
        svg = timeline.render(upgrade.journal.data)
        if svg:
            prefix.append(f'<div id="timeline">{svg}</div>')


def summary(config: pytest.Config, exitstatus: int) -> dict:
    bundle = config.stash[BUNDLE_KEY]
    profile = config.stash.get(PROFILE_KEY, None)
    options = config.stash.get(OPTIONS_KEY, None)
    upgrade = config.stash.get(UPGRADE_KEY, None)
    journal = upgrade.journal.data if upgrade is not None else {}
    maintenance = config.stash.get(MAINTENANCE_KEY, None)
    tests = config.stash[RESULTS_KEY]
    failed = any(t["outcome"] == "failed" for t in tests)
    outcome = journal.get("outcome") if journal else ("FAILED" if failed or exitstatus else "PASSED")
    if maintenance is not None:
        outcome = maintenance.outcome
    before, after = journal.get("before") or {}, journal.get("after") or {}
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "suite": bundle.suite,
        "ticket": options.ticket if options else None, "host": socket.gethostname(),
        "install_dir": str(profile.install_dir) if profile else None,
        "started": journal.get("started"), "finished": journal.get("finished") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "exit_status": int(exitstatus), "outcome": outcome,
        "from_version": before.get("version") or (profile.version if profile else None),
        "target": options.target if options else None,
        "target_commit": options.resolved_target.commit if options and options.resolved_target else None,
        "target_kind": options.resolved_target.kind if options and options.resolved_target else None,
        "revision_before": before.get("revision"), "revision_after": after.get("revision"),
        "backup": journal.get("backup"), "downtime": journal.get("downtime"), "stages": journal.get("stages", []),
        "rollback": journal.get("rollback"), "maintenance": maintenance.to_json() if maintenance else None,
        "tests": tests,
        "artifacts": {"html": str(bundle.html), "junit": str(bundle.junit), "json": str(bundle.json),
                      "log": str(bundle.log) if bundle.log.exists() else None},
    }


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if BUNDLE_KEY not in config.stash:
        return
    bundle = config.stash[BUNDLE_KEY]
    profile = config.stash.get(PROFILE_KEY, None)
    # session.exitstatus, not the hook's argument: plugins/maintenance.py sets its own status.
    text = json.dumps(summary(config, session.exitstatus), indent=2, default=str)
    bundle.json.write_text(profile.redactor(text) if profile else text)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    bundle = config.stash.get(BUNDLE_KEY, None)
    if bundle is not None:
        log = f" | {bundle.log}" if bundle.log.exists() else ""
        terminalreporter.write_line(f"report bundle: {bundle.html} | {bundle.junit} | {bundle.json}{log}")
