"""The run summary (``schemas/report-2.schema.json``): one dict that the JSON file, the HTML card and
the exports all read, so they cannot disagree."""

from __future__ import annotations

import time

from runbook import change_record

SCHEMA = "openwatch-upgrade-suite/report"
SCHEMA_VERSION = 2
AUDIT_VERDICTS = {"postflight": ("HEALTHY", "UNHEALTHY"), "preflight": ("READY", "NOT READY")}


def verdict(suite: str, outcome: str, maintenance: dict | None) -> str:
    """The word on the card: the upgrade's outcome, or the audit's health."""
    if maintenance is not None:
        return maintenance["outcome"]
    if suite == "upgrade":
        return "IN PROGRESS" if outcome == "running" else outcome
    good, bad = AUDIT_VERDICTS.get(suite, ("PASSED", "FAILED"))
    return good if outcome == "PASSED" else bad


def build(*, suite: str, ticket: str | None, host: str, install_dir: str | None, version: str | None,
          target: str | None, target_commit: str | None, target_kind: str | None, exit_status: int, journal: dict,
          maintenance: dict | None, tests: list[dict], artifacts: dict, operation: str | None = None) -> dict:
    """``operation``: the ``--component`` the run was (``runbook.components.OPERATIONS``; None: the release)."""
    failed = any(test["outcome"] == "failed" for test in tests)
    if maintenance is not None:
        outcome = maintenance["outcome"]
    elif journal:
        outcome = journal["outcome"]
    elif suite == "upgrade":
        outcome = "NOT STARTED"  # refused before the journal was started
    else:
        outcome = "FAILED" if failed or exit_status else "PASSED"
    before, after = journal.get("before") or {}, journal.get("after") or {}
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "suite": suite, "ticket": ticket, "host": host,
        "install_dir": install_dir, "operation": operation, "started": journal.get("started"),
        "finished": journal.get("finished") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "exit_status": int(exit_status), "outcome": outcome, "verdict": verdict(suite, outcome, maintenance),
        "from_version": before.get("version") or version, "target": target,
        "target_commit": target_commit or journal.get("target_commit"), "target_kind": target_kind or journal.get("target_kind"),
        "revision_before": before.get("revision"), "revision_after": after.get("revision"),
        "change": {key: {"before": move.before, "after": move.after}
                   for key, move in zip(("version", "git_ref", "git_commit", "revision"), change_record.moves(journal))},
        "failed_stage": change_record.failed_stage(journal) if outcome != "running" else None,
        "backup": journal.get("backup"), "downtime": journal.get("downtime"), "stages": journal.get("stages", []),
        "rollback": journal.get("rollback"), "resumed": journal.get("resumed"), "maintenance": maintenance,
        "data_integrity": [proof.to_json() for proof in change_record.data_integrity(journal)],
        "tests": tests, "artifacts": artifacts,
    }


def title(summary: dict) -> str:
    """``<ticket> · upgrade <from> → <to> · <host> · <VERDICT>``, or the audit's equivalent."""
    to = summary["target"]
    if summary.get("target_kind") == "branch" and summary.get("target_commit"):  # a branch moves; a tag does not
        to = f"{to} ({summary['target_commit'][:12]})"
    what = (f"upgrade {summary['from_version']} → {to}" if summary["suite"] == "upgrade"
            else f"{summary['suite']} audit of {summary['from_version']}")
    return " · ".join((summary["ticket"] or "no ticket", what, summary["host"], summary["verdict"]))
