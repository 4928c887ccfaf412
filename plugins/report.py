"""The HTML report as a change record, through pytest-html's hooks: its title names the change and
the verdict; the first screen is a verdict card coloured by outcome, the data-integrity table and
the timeline (results summary); pytest-metadata's environment table (Python, platform, packages,
plugins) becomes a collapsed "Tooling" section at the end (plugins/report.css, via ``--css``)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from plugins.keys import DRY_RUN_KEY, SUMMARY_KEY, UPGRADE_KEY, VERDICT_LINE_KEY
from plugins.options import PROFILE_KEY
from runbook import change_record, dbstate, gitrepo, report_html, run_summary, timeline
from runbook.profile import Profile
from runbook.shell import CommandError

CSS = Path(__file__).with_name("report.css")
FACTS_KEY = pytest.StashKey[dict]()
HTML_REPORT_KEY = pytest.StashKey[object]()  # pytest-html's report data, given by pytest_html_report_title


def _revision(profile: Profile) -> str:
    try:
        with psycopg.connect(**profile.db_conninfo(), connect_timeout=3) as conn:
            return ", ".join(dbstate.alembic_revisions(conn)) or "none"
    except psycopg.Error:
        return "unavailable (database not reachable)"


def _git(profile: Profile) -> tuple[str, str]:
    try:
        return gitrepo.head_ref(profile.install_dir), gitrepo.git(profile.install_dir, "rev-parse", "HEAD").strip()
    except CommandError:
        return "unavailable (not a git checkout)", "unavailable"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Before pytest-html reads its ``--css`` option."""
    if hasattr(config.option, "css") and str(CSS) not in config.option.css:
        config.option.css = [*config.option.css, str(CSS)]


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """The installation as the audit found it (an upgrade's before and after come from its journal)."""
    profile = session.config.stash.get(PROFILE_KEY, None)
    if profile is None:
        return
    ref, commit = _git(profile)
    session.config.stash[FACTS_KEY] = {
        "OpenWatch version": profile.version, "Alembic revision": _revision(profile), "git ref": ref,
        "git commit": commit, "Install dir": str(profile.install_dir), "Compose project": profile.project}


def pytest_html_report_title(report) -> None:
    """A placeholder until the run's outcome is known (pytest-html asks at session start)."""
    report.title = "OpenWatch suite run in progress"
    report.config.stash[HTML_REPORT_KEY] = report


def pytest_html_results_summary(prefix: list, summary: list, postfix: list, session: pytest.Session) -> None:
    config = session.config
    found = config.stash.get(SUMMARY_KEY, None)
    if found is None:
        return
    page_title = run_summary.title(found)
    html_report = config.stash.get(HTML_REPORT_KEY, None)
    if html_report is not None:
        html_report.title = page_title
    upgrade = config.stash.get(UPGRADE_KEY, None)
    redact = config.stash[PROFILE_KEY].redactor if PROFILE_KEY in config.stash else str
    log = found["artifacts"]["log"]
    notes = {"Terminal hang-up": f"the run went on to its end; its output from then on is in {log}"} if log else {}
    if upgrade is not None and found["suite"] == "upgrade":
        journal = upgrade.journal.data
        if not journal.get("before"):  # stopped before recording anything: the installation as found
            notes.update(config.stash.get(FACTS_KEY, {}))
        line = config.stash.get(VERDICT_LINE_KEY, "")
        card = report_html.upgrade_card(journal, found["verdict"], line or page_title, notes)
        after = "after rollback" if journal.get("rollback") else "after"
        parts = [card, report_html.integrity_table(change_record.data_integrity(journal), after)]
        svg = timeline.render(journal)
        if svg:
            parts.append(f'<div id="timeline">{svg}</div>')
    else:
        parts = [_audit_card(config, found, page_title, notes)]
        plan = config.stash.get(DRY_RUN_KEY, None)
        if plan is not None:
            parts.append(report_html.plan_table(plan.to_json()))
    prefix.extend(redact(part) for part in parts if part)


def _audit_card(config: pytest.Config, found: dict, page_title: str, notes: dict[str, str]) -> str:
    failing = [(test["nodeid"].split("::")[-1], test["message"]) for test in found["tests"] if test["outcome"] == "failed"]
    counts: dict[str, int] = {}
    for test in found["tests"]:
        if test["phase"] == "call" or test["outcome"] != "passed":
            counts[test["outcome"]] = counts.get(test["outcome"], 0) + 1
    facts = {**notes, **config.stash.get(FACTS_KEY, {})}
    if found["target"]:
        facts["Target"] = found["target"]
    line = (found["maintenance"] or {}).get("line")
    return report_html.audit_card(found["verdict"], page_title, facts, failing, counts, line)
