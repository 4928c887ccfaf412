"""A fleet run's per-host results on the control node, under ``reports/fleet/<run id>/<host>/``.

Each host's ``result.json`` is written once per attempt by the playbook (through ``python -m
fleet record``) from the bundle it fetched back; everything else (the budget, resume, the
roll-back-all order, the summary) reads those files, so a resumed run with the same run id sees what
the earlier one did.
"""

from __future__ import annotations

import json
import os
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from runbook.redaction import Redactor

RESULT_FILE = "result.json"
STOP_FILE = "stop.json"
UPGRADED = "upgraded"
AT_TARGET = "at-target"  # a resumed run found it done by an earlier attempt
FAILED = "failed"
UNREACHED = "failed-unreached"
ROLLED_BACK_BY_FLEET = "rolled-back-by-fleet"
NOT_STARTED = "not-started"
# Written for each host of a batch as the batch starts; a host that leaves the play with no result
# (lost after it was reached, or a fleet task failed on it) keeps it until the next budget step or the
# summary settles it as STATE_UNKNOWN: never shown as "not started".
IN_PROGRESS = "in-progress"
STATE_UNKNOWN = "failed-state-unknown"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"
GOOD = frozenset({UPGRADED, AT_TARGET, HEALTHY})
FAILURES = frozenset({FAILED, UNREACHED, UNHEALTHY, STATE_UNKNOWN})


@dataclass(frozen=True)
class Stop:
    """Why no further host is started."""

    reason: str

    def to_json(self) -> dict:
        return {"reason": self.reason, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write_json(path: Path, data: dict) -> None:
    """Atomically (hosts of a batch record at the same time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(temporary, path)


def latest_bundle(host_dir: Path, suite: str) -> dict | None:
    """The newest run summary of ``suite`` the host's bundle holds (plugins/bundle.py names them
    ``<ticket>_<suite>_<time>.json``)."""
    for path in sorted(host_dir.glob(f"*_{suite}_*.json"), reverse=True):
        if path.name.endswith((".servicenow.json", ".cdevent.json")):
            continue
        data = json.loads(path.read_text())
        if data.get("schema") == "openwatch-upgrade-suite/report":
            return data
    return None


def status_of(phase: str, exit_status: int, bundle: dict | None) -> str:
    if phase == "audit":
        return HEALTHY if exit_status == 0 and bundle is not None else UNHEALTHY
    if bundle is not None and exit_status == 0 and bundle.get("outcome") == "UPGRADED":
        return UPGRADED
    if phase == "rollback" and exit_status == 0:
        return ROLLED_BACK_BY_FLEET
    return FAILED


def unpack_bundle(tarball: Path, host_dir: Path) -> None:
    """The host's bundle (its report files and the installation's journal) into its folder; only
    plain files and folders, nothing outside it."""
    if tarball.is_file():
        with tarfile.open(tarball) as tar:
            tar.extractall(host_dir, filter="data")


def record(run_dir: Path, host: str, *, phase: str, invocation: str, exit_status: int | None = None,
           unreached: str | None = None, stage: str | None = None, bundle_tarball: Path | None = None,
           redact: Redactor | None = None) -> dict:
    """Write the host's result of this attempt (from the bundle fetched into its folder) and return it.
    ``unreached`` with a ``stage``: the host was lost after it started, during that stage."""
    redact = redact or Redactor()
    host_dir = run_dir / host
    if bundle_tarball is not None:
        unpack_bundle(bundle_tarball, host_dir)
    previous = read_result(run_dir, host)
    suite = {"audit": "postflight"}.get(phase, "upgrade")
    bundle = None if unreached else latest_bundle(host_dir, suite)
    status = UNREACHED if unreached else status_of(phase, int(exit_status or 0), bundle)
    reason = redact(unreached) if unreached else reason_of(bundle, exit_status)
    if unreached and stage:
        reason = f"lost during {stage} (after it started): {reason}; its state is unknown: read its journal on the host"
    result = {
        "host": host, "phase": phase, "invocation": invocation, "status": status,
        "exit_status": exit_status, "reason": reason,
        "recorded": time.time(),
        "outcome": bundle.get("outcome") if bundle else None,
        "from_version": bundle.get("from_version") if bundle else None,
        "from_ref": ((bundle or {}).get("change") or {}).get("git_ref", {}).get("before"),
        "target": bundle.get("target") if bundle else None,
        "downtime_s": ((bundle or {}).get("downtime") or {}).get("downtime_total_s"),
        "rollback_tier": ((bundle or {}).get("rollback") or {}).get("tier"),
        "started": bundle.get("started") if bundle else None,
        "finished": bundle.get("finished") if bundle else None,
        "report": report_link(host_dir, bundle),
        "attempts": [*(previous or {}).get("attempts", []),
                     {"invocation": invocation, "phase": phase, "status": status, "reason": reason}],
    }
    if phase == "rollback" and previous is not None:  # what the upgrade did stays readable beside the undo
        result["upgrade"] = {key: previous.get(key) for key in ("status", "from_version", "target", "started", "finished",
                                                               "recorded")}
    write_json(host_dir / RESULT_FILE, result)
    return result


def reason_of(bundle: dict | None, exit_status: int | None) -> str | None:
    if bundle is None:
        return f"the suite left no report bundle (exit status {exit_status})"
    stage = bundle.get("failed_stage")
    if stage:
        return f"{bundle.get('outcome')}: stage {stage['name']} failed: {stage['reason']}"
    failed = [f"{test['nodeid'].rpartition('::')[2]}: {test.get('message') or 'failed'}"
              for test in bundle.get("tests", []) if test.get("outcome") == "failed"]
    return "; ".join(failed[:5]) if failed else None


def report_link(host_dir: Path, bundle: dict | None) -> str | None:
    """The host's HTML report, relative to the run folder (the summary page links it)."""
    html = ((bundle or {}).get("artifacts") or {}).get("html")
    if html and (host_dir / Path(html).name).exists():
        return f"{host_dir.name}/{Path(html).name}"
    return None


def read_result(run_dir: Path, host: str) -> dict | None:
    path = run_dir / host / RESULT_FILE
    return json.loads(path.read_text()) if path.exists() else None


def results(run_dir: Path, hosts: list[str]) -> dict[str, dict | None]:
    return {host: read_result(run_dir, host) for host in hosts}


def mark_started(run_dir: Path, hosts: list[str], *, phase: str, invocation: str) -> None:
    """The hosts of a batch that is starting: in progress until their result is recorded."""
    for host in hosts:
        previous = read_result(run_dir, host) or {}
        write_json(run_dir / host / RESULT_FILE, {
            "host": host, "phase": phase, "invocation": invocation, "status": IN_PROGRESS, "reason": None,
            "recorded": time.time(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "attempts": previous.get("attempts", [])})


def settle_lost(run_dir: Path, hosts: list[str], invocation: str) -> list[str]:
    """Hosts of this attempt still in progress once their batch is over: they left the play with no
    result (lost after they were reached, or a fleet task failed on them). Recorded as STATE_UNKNOWN."""
    lost = []
    for host, found in results(run_dir, hosts).items():
        if found is None or found["status"] != IN_PROGRESS or found["invocation"] != invocation:
            continue
        reason = (f"started at {found['started_at']} and reached, then no result came back (lost, or a fleet task "
                  "failed on it: see the playbook's log); its state is unknown: read its journal on the host")
        found.update(status=STATE_UNKNOWN, reason=reason, recorded=time.time(),
                     attempts=[*found["attempts"], {"invocation": invocation, "phase": found["phase"],
                                                    "status": STATE_UNKNOWN, "reason": reason}])
        write_json(run_dir / host / RESULT_FILE, found)
        lost.append(host)
    return lost


def done_earlier(run_dir: Path, host: str) -> bool:
    """Resume: the host reached the target in an earlier attempt of this run, so it is left alone."""
    found = read_result(run_dir, host)
    return found is not None and found["phase"] == "upgrade" and found["status"] in (UPGRADED, AT_TARGET)


def budget_stop(run_dir: Path, hosts: list[str], invocation: str, *, max_failed: int, canary: int) -> Stop | None:
    """Whether to start no further host: the fleet-wide budget (failures of this attempt, all batches
    together) is exceeded, or a canary failed (the first ``canary`` hosts this attempt finished; 0: no canary)."""
    mine = sorted((found for found in results(run_dir, hosts).values()
                   if found is not None and found["invocation"] == invocation and found["phase"] == "upgrade"),
                  key=lambda found: found["recorded"])
    failed = [found["host"] for found in mine if found["status"] in FAILURES]
    canaries = [found["host"] for found in mine[:canary] if found["status"] in FAILURES]
    if canaries:
        return Stop(f"canary {', '.join(canaries)} failed; no other host was started")
    if len(failed) > max_failed:
        return Stop(f"failure budget exceeded: {len(failed)} hosts failed ({', '.join(failed)}), "
                    f"at most {max_failed} allowed for the whole run")
    return None


def suite_start(run_dir: Path, host: str, hosts: list[str], invocation: str, *, max_failed: int,
                canary: int) -> Stop | None:
    """Just before ``host``'s upgrade suite starts: the fleet-wide budget again, as it stands now. A
    batch larger than the forks starts its hosts as forks free up, after failures of its own earlier
    hosts: one the budget no longer allows is recorded NOT_STARTED with the reason (a resume tries it
    again), and the stop is written for the rest of the run."""
    stop = budget_stop(run_dir, hosts, invocation, max_failed=max_failed, canary=canary)
    if stop is None:
        return None
    if not (run_dir / STOP_FILE).exists():
        write_json(run_dir / STOP_FILE, stop.to_json())
    previous = read_result(run_dir, host) or {}
    reason = f"not started: {stop.reason}"
    write_json(run_dir / host / RESULT_FILE, {
        "host": host, "phase": "upgrade", "invocation": invocation, "status": NOT_STARTED, "reason": reason,
        "recorded": time.time(), "attempts": [*previous.get("attempts", []), {
            "invocation": invocation, "phase": "upgrade", "status": NOT_STARTED, "reason": reason}]})
    return stop


def suite_exited(run_dir: Path, host: str, invocation: str, *, exit_status: int | None,
                 unreached: str | None = None) -> dict | None:
    """A failed suite counts against the budget as soon as it ends, before its bundle is fetched and
    recorded (the batch's other hosts may be about to start); ``exit_status`` None: it did not run."""
    found = read_result(run_dir, host)
    if found is None or found["invocation"] != invocation or found["status"] != IN_PROGRESS or \
            (exit_status == 0 and not unreached):
        return found
    if unreached:
        reason = f"lost during upgrade suite running: {Redactor()(unreached)}"
    elif exit_status is None:
        reason = "the suite's run did not end normally (see the playbook's log)"
    else:
        reason = f"the suite ended with exit status {exit_status}; its bundle is not recorded yet"
    found.update(status=UNREACHED if unreached else FAILED, reason=reason, exit_status=exit_status,
                 recorded=time.time())
    write_json(run_dir / host / RESULT_FILE, found)
    return found


def rollback_order(run_dir: Path, hosts: list[str], invocation: str) -> list[dict]:
    """Hosts this attempt upgraded, last upgraded first, with the ref each came from."""
    upgraded = [found for found in results(run_dir, hosts).values()
                if found is not None and found["invocation"] == invocation and found["status"] == UPGRADED]
    return [{"host": found["host"], "from_ref": found["from_ref"] or f"v{found['from_version']}"}
            for found in sorted(upgraded, key=lambda found: found["recorded"], reverse=True)]
