"""Every suite run writes a report bundle under ``reports/`` without being asked: self-contained
HTML (pytest-html), JUnit XML, a versioned JSON summary (``schemas/report-2.schema.json``) and, for an
upgrade, the exports change systems read (ServiceNow change_request, CDEvents event); the folder's
``index.html`` lists every run. Explicit ``--html``/``--junitxml`` still win. Failed checks carry the
backend's WARNING+ log lines and tracebacks (and those of any other container the failure names),
the whole tail behind an expander."""

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
from pytest_html import extras

from plugins.keys import MAINTENANCE_KEY, SUMMARY_KEY, UPGRADE_KEY
from plugins.options import OPTIONS_KEY, PROFILE_KEY
from runbook import exports, logtail, report_html, report_index, run_summary
from runbook.profile import Profile
from runbook.resume import operation_of

SUITES = ("preflight", "upgrade", "postflight")
LOG_TAIL_LINES = 200


@dataclass(frozen=True)
class Bundle:
    suite: str
    html: Path
    junit: Path
    json: Path
    log: Path  # the run's output after a terminal hang-up (plugins/hangup.py); absent without one

    def beside(self, suffix: str) -> Path:
        return self.json.with_name(f"{self.json.stem}{suffix}")


BUNDLE_KEY = pytest.StashKey[Bundle]()
RESULTS_KEY = pytest.StashKey[list]()
STARTED_KEY = pytest.StashKey[float]()


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
    config.stash[STARTED_KEY] = time.time()
    config.pluginmanager.register(ResultCollector(config.stash[RESULTS_KEY]), "openwatch-bundle-results")


def _log_window(config: pytest.Config) -> float:
    """Since when a failed check's log tail is read: the upgrade run's start, or the audit's window."""
    upgrade = config.stash.get(UPGRADE_KEY, None)
    if upgrade is not None and upgrade.journal.data.get("started_epoch"):
        return upgrade.journal.data["started_epoch"]
    options = config.stash.get(OPTIONS_KEY, None)
    minutes = options.log_window_minutes if options is not None else 10
    return config.stash[STARTED_KEY] - 60 * minutes


def _containers_to_read(config: pytest.Config, failure: str) -> list[str]:
    """The backend's, and every other container of the installation (or of the target being started)
    the failure names: a worker Docker called unhealthy is read too."""
    profiles = [config.stash[PROFILE_KEY]]
    upgrade = config.stash.get(UPGRADE_KEY, None)
    if getattr(upgrade, "new_profile", None) is not None:
        profiles.append(upgrade.new_profile)
    backend = profiles[0].container("backend")
    named = {spec.container for profile in profiles for spec in profile.services.values()
             if spec.container != backend and re.search(rf"\b{re.escape(spec.container)}\b", failure)}
    return [backend, *sorted(named)]


# Innermost of the report wrappers (trylast): its code after the yield runs before the rollback's, so
# the log read is the failed containers', not the old version's that the rollback starts in their place.
@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    report = yield
    config = item.config
    if report.failed and config.stash.get(PROFILE_KEY, None) is not None and BUNDLE_KEY in config.stash:
        profile, since = config.stash[PROFILE_KEY], _log_window(config)
        for container in _containers_to_read(config, report.longreprtext):
            _add_log_tail(report, profile, container, since)
    return report


def _add_log_tail(report: pytest.TestReport, profile: Profile, container: str, since: float) -> None:
    try:
        logs = docker.from_env(timeout=10).containers.get(container).logs(since=int(since), tail=LOG_TAIL_LINES)
    except docker.errors.DockerException:
        report.sections.append((f"{container} log", f"{container} does not exist"))
        return
    lines = profile.redactor(logs.decode(errors="replace")).splitlines()
    notable = logtail.notable(lines)
    since_text = time.strftime("%H:%M:%S UTC", time.gmtime(since))
    report.sections.append((f"{container} log: WARNING and above, and tracebacks, since {since_text}",
                            "\n".join(notable) or "none"))
    report.extras = [*getattr(report, "extras", []),
                     extras.html(report_html.log_tail(container, notable, lines, since_text))]


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


def summary(config: pytest.Config, exitstatus: int) -> dict:
    bundle = config.stash[BUNDLE_KEY]
    profile = config.stash.get(PROFILE_KEY, None)
    options = config.stash.get(OPTIONS_KEY, None)
    upgrade = config.stash.get(UPGRADE_KEY, None)
    maintenance = config.stash.get(MAINTENANCE_KEY, None)
    journal = upgrade.journal.data if upgrade is not None else {}
    upgrading = bundle.suite == "upgrade" and bool(journal)
    return run_summary.build(
        suite=bundle.suite, ticket=options.ticket if options else None, host=socket.gethostname(),
        install_dir=str(profile.install_dir) if profile else None, version=profile.version if profile else None,
        target=(options.target or journal.get("target")) if options else None,
        target_commit=options.resolved_target.commit if options and options.resolved_target else None,
        target_kind=options.resolved_target.kind if options and options.resolved_target else None, exit_status=exitstatus,
        journal=journal, maintenance=maintenance.to_json() if maintenance else None, tests=config.stash[RESULTS_KEY],
        artifacts={"html": str(bundle.html), "junit": str(bundle.junit), "json": str(bundle.json),
                   "log": str(bundle.log) if bundle.log.exists() else None,
                   "servicenow": str(bundle.beside(".servicenow.json")) if upgrading else None,
                   "cdevent": str(bundle.beside(".cdevent.json")) if upgrading else None,
                   "index": str(bundle.json.parent / report_index.INDEX)},
        # A --resume has no --component: its journal names the operation (as plugins/rollback.py reads it).
        operation=config.getoption("component", None) or operation_of(journal))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """After the outcome is settled (rollback, maintenance: tryfirst), before pytest-html writes the page
    (trylast), which shows this same summary. session.exitstatus, not the hook's argument:
    plugins/maintenance.py sets its own status."""
    config = session.config
    if BUNDLE_KEY not in config.stash:
        return
    profile = config.stash.get(PROFILE_KEY, None)
    found = config.stash[SUMMARY_KEY] = summary(config, session.exitstatus)
    upgrade = config.stash.get(UPGRADE_KEY, None)
    write_bundle(found, upgrade.journal.data.get("run_id", "") if upgrade else "", profile.redactor if profile else str)


def write_bundle(found: dict, run_id: str, redact) -> None:
    """The JSON summary, the exports its artifacts name (a CDEvent only for a service that moved) and
    the folder's index, every file through ``redact``."""
    artifacts = found["artifacts"]
    write = {Path(artifacts["json"]): found}
    if artifacts["servicenow"]:
        write[Path(artifacts["servicenow"])] = exports.servicenow_change(found, run_summary.title(found))
        event = exports.cdevent(found, run_id)
        if event is None:
            artifacts["cdevent"] = None
        else:
            write[Path(artifacts["cdevent"])] = event
    for path, document in write.items():
        path.write_text(redact(json.dumps(document, indent=2, default=str)))
    report_index.write(Path(artifacts["index"]).parent)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    bundle = config.stash.get(BUNDLE_KEY, None)
    if bundle is not None:
        found = config.stash.get(SUMMARY_KEY, {}).get("artifacts", {})
        written = [bundle.html, bundle.junit, bundle.json] + [found[name] for name in ("servicenow", "cdevent", "log")
                                                             if found.get(name)]
        terminalreporter.write_line(f"report bundle: {' | '.join(map(str, written))}")
        terminalreporter.write_line(f"all runs: {bundle.json.parent / report_index.INDEX}")
