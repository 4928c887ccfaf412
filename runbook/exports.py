"""What change systems read, from the run summary: a ServiceNow ``change_request`` record (its
Table API field names) and a CDEvents event (spec v0.4.1: ``dev.cdevents.service.upgraded.0.2.0``
or ``dev.cdevents.service.rolledback.0.2.0``)."""

from __future__ import annotations

import uuid

from runbook import dry_run
from runbook.components import OPERATIONS

CDEVENTS_SPEC = "0.4.1"
CDEVENT_TYPES = {"upgraded": "dev.cdevents.service.upgraded.0.2.0",
                 "rolledback": "dev.cdevents.service.rolledback.0.2.0"}
SOURCE = "/openwatch-upgrade-suite"


def _servicenow_time(utc: str | None) -> str | None:
    """ServiceNow's ``YYYY-MM-DD HH:MM:SS`` (UTC, as its Table API takes it without display values)."""
    return utc.replace("T", " ").rstrip("Z") if utc else None


def close_code(summary: dict) -> str:
    """successful: upgraded as planned, or a requested --rollback-to done; successful_issues: upgraded,
    but only after --resume settled a run that died; unsuccessful: anything else."""
    outcome, ok = summary["outcome"], summary["exit_status"] == 0
    if outcome == "UPGRADED":
        return "successful_issues" if summary.get("resumed") or not ok else "successful"
    if outcome.startswith("ROLLED BACK") and ok and summary["failed_stage"] is None:
        return "successful"
    return "unsuccessful"


def _closing_notes(summary: dict, title: str) -> str:
    lines = [title]
    failed = summary["failed_stage"]
    if failed:
        lines.append(f"Failed stage {failed['name']}: {failed['reason']}")
    rollback = summary["rollback"]
    if rollback:
        seconds = sum(action["seconds"] for action in rollback["actions"])
        lines.append(f"Rollback tier {rollback['tier']} {'succeeded' if rollback['ok'] else 'FAILED'} in {seconds:.1f} s")
        lines += [f"Manual step: {step}" for step in rollback["manual_steps"]]
    change = summary["change"]
    lines += [f"{key}: {move['before']} -> {move['after']}" for key, move in change.items()]
    downtime = summary["downtime"]
    if downtime:
        lines.append(f"User-visible downtime {downtime['downtime_total_s']:.1f} s in {downtime['downtime_outages']} outage(s)")
    proofs = summary["data_integrity"]
    if proofs:
        unexpected = [proof["table"] for proof in proofs if not proof["expected"]]
        lines.append(f"Data integrity: {len(proofs)} tables compared, "
                     + (f"unexpected differences in {', '.join(unexpected)}" if unexpected else "no unexpected difference"))
    return "\n".join(lines)


def servicenow_change(summary: dict, title: str) -> dict:
    ran = {stage["name"]: stage for stage in summary["stages"]}
    component = summary.get("operation")  # None: the release upgrade
    planned = OPERATIONS[component].stages
    implementation = [f"{index}. {stage.title} ({stage.name})" + (
        f": {ran[stage.name]['status']} in {ran[stage.name]['seconds']} s" if stage.name in ran else "")
        for index, stage in enumerate(planned, 1)]
    checks = sorted({test["nodeid"].split("::")[-1] for test in summary["tests"]
                     if "test_stage[" not in test["nodeid"]})
    test_plan = (["Pre-flight checks (each must pass before anything changes):"] + [f"- {name}" for name in checks]
                 + ["After the start: /health at the new version, frontend proxies the API, login and the token-guarded "
                    "endpoints, containers healthy, database at the code's Alembic head, every table's rows compared "
                    "with the recorded state."])
    return {
        "type": "normal", "category": "Software",
        "short_description": title,
        "description": f"Upgrade of the OpenWatch installation {summary['install_dir']} on {summary['host']} "
                       f"from {summary['from_version']} to {summary['target']} with openwatch-upgrade-suite.",
        "correlation_id": summary["ticket"] or "", "correlation_display": "openwatch-upgrade-suite",
        "implementation_plan": "\n".join(implementation),
        "backout_plan": "\n".join(stage.backout for stage in dry_run.planned_stages(component,
                                                                                      summary["revision_before"] or "")),
        "test_plan": "\n".join(test_plan),
        "start_date": _servicenow_time(summary["started"]), "end_date": _servicenow_time(summary["finished"]),
        "work_start": _servicenow_time(summary["started"]), "work_end": _servicenow_time(summary["finished"]),
        "close_code": close_code(summary),
        "close_notes": _closing_notes(summary, title),
    }


def cdevent(summary: dict, run_id: str) -> dict | None:
    """``service.upgraded`` after an upgrade, ``service.rolledback`` after a rollback; None when the
    service ended neither (not started, or stopped for manual action)."""
    outcome = summary["outcome"]
    kind = "upgraded" if outcome == "UPGRADED" else "rolledback" if outcome.startswith("ROLLED BACK") else None
    if kind is None:
        return None
    version = summary["change"]["version"]["after"] or (summary["target"] if kind == "upgraded" else summary["from_version"])
    environment = f"{summary['host']}:{summary['install_dir']}"
    return {
        "context": {"version": CDEVENTS_SPEC, "type": CDEVENT_TYPES[kind], "source": SOURCE,
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"openwatch-upgrade-suite:{run_id}:{kind}")),
                    "timestamp": summary["finished"]},
        "subject": {"id": f"openwatch@{environment}", "source": SOURCE, "type": "service",
                    "content": {"environment": {"id": environment, "source": SOURCE},
                                "artifactId": f"pkg:generic/openwatch@{version}"}},
        "customDataContentType": "application/json",
        "customData": {"ticket": summary["ticket"], "outcome": outcome, "change": summary["change"],
                       "failed_stage": summary["failed_stage"], "downtime": summary["downtime"]},
    }
