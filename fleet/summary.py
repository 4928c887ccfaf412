"""The fleet summary under ``reports/fleet/<run id>/``: ``fleet.json``, ``fleet.junit.xml`` (one
testcase per host) and ``fleet.html`` (hosts x outcome, from -> to, downtime, rollback tier, a link
to each host's own report). Every text passes the redactor, as the per-host bundles do."""

from __future__ import annotations

import html
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from fleet import results
from runbook.redaction import Redactor

SCHEMA = "openwatch-upgrade-suite/fleet"


def build(run_dir: Path, hosts: list[str], *, phase: str, run_id: str) -> dict:
    found = results.results(run_dir, hosts)
    stop = run_dir / results.STOP_FILE
    rows = []
    for host in hosts:
        result = found[host]
        if result is None or (phase == "audit") != (result["phase"] == "audit"):
            result = {"host": host, "status": results.NOT_STARTED, "reason": "never started in this run"}
        rows.append(result)
    failed = [row["host"] for row in rows if row["status"] not in results.GOOD]
    return {"schema": SCHEMA, "run_id": run_id, "phase": phase,
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "stopped": json.loads(stop.read_text()) if stop.exists() else None,
            "verdict": "PASSED" if not failed else "FAILED", "failed_hosts": failed, "hosts": rows}


def write(run_dir: Path, summary: dict, redact: Redactor | None = None) -> list[Path]:
    redact = redact or Redactor()
    masked = json.loads(redact(json.dumps(summary)))
    paths = [run_dir / "fleet.json", run_dir / "fleet.junit.xml", run_dir / "fleet.html"]
    paths[0].write_text(json.dumps(masked, indent=2, sort_keys=True))
    paths[1].write_bytes(junit(masked))
    paths[2].write_text(page(masked))
    return paths


def junit(summary: dict) -> bytes:
    suite = ET.Element("testsuite", name=f"fleet-{summary['phase']}", tests=str(len(summary["hosts"])),
                       failures=str(len(summary["failed_hosts"])))
    for row in summary["hosts"]:
        case = ET.SubElement(suite, "testcase", classname=f"fleet.{summary['phase']}", name=row["host"])
        properties = ET.SubElement(case, "properties")
        for key in ("status", "from_version", "target", "downtime_s", "rollback_tier", "report"):
            if row.get(key) is not None:
                ET.SubElement(properties, "property", name=key, value=str(row[key]))
        if row["status"] not in results.GOOD:
            failure = ET.SubElement(case, "failure", message=f"{row['status']}: {row.get('reason') or ''}".strip())
            failure.text = json.dumps(row.get("attempts", []))
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def page(summary: dict) -> str:
    cells = []
    for row in summary["hosts"]:
        link = f'<a href="{html.escape(row["report"])}">report</a>' if row.get("report") else ""
        downtime = f"{row['downtime_s']:.1f} s" if isinstance(row.get("downtime_s"), (int, float)) else ""
        colour = "good" if row["status"] in results.GOOD else "bad"
        cells.append("<tr>" + "".join(f"<td>{value}</td>" for value in (
            html.escape(row["host"]), f'<span class="{colour}">{html.escape(row["status"])}</span>',
            html.escape(str(row.get("from_version") or "")), html.escape(str(row.get("target") or "")),
            downtime, html.escape(str(row.get("rollback_tier") or "")),
            html.escape(str(row.get("reason") or "")), link)) + "</tr>")
    stopped = summary.get("stopped")
    banner = f"<p class=\"bad\">Stopped: {html.escape(stopped['reason'])}</p>" if stopped else ""
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Fleet {html.escape(summary['phase'])} {html.escape(summary['run_id'])}</title>
<style>body{{font-family:sans-serif}} td,th{{border:1px solid #ccc;padding:4px 8px}} table{{border-collapse:collapse}}
.good{{color:#176f2c;font-weight:bold}} .bad{{color:#b3261e;font-weight:bold}}</style></head><body>
<h1>Fleet {html.escape(summary['phase'])} {html.escape(summary['run_id'])}: {html.escape(summary['verdict'])}</h1>
{banner}<table><tr><th>host</th><th>outcome</th><th>from</th><th>to</th><th>downtime</th><th>rollback tier</th>
<th>reason</th><th>host report</th></tr>
{''.join(cells)}
</table><p>Written {html.escape(summary['written'])}</p></body></html>
"""
