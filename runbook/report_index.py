"""``reports/index.html``: every run in a reports folder, newest first, linking to each bundle.
Rebuilt from the JSON summaries after every run, so it never disagrees with them."""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path

from runbook.report_html import tone
from runbook.run_summary import SCHEMA

INDEX = "index.html"
STYLE = """body{font-family:sans-serif;margin:16px;max-width:1240px}table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}td.num{text-align:right}
.good{background:#e7f5ea}.rolledback{background:#fff4e0}.bad{background:#fdecea}.maintenance{background:#e8f0fe}"""


def summaries(folder: Path) -> list[tuple[Path, dict]]:
    found = []
    for path in folder.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a file being written, or not ours
        if isinstance(data, dict) and data.get("schema") == SCHEMA:
            found.append((path, data))
    return sorted(found, key=lambda item: (item[1].get("finished") or "", item[0].name), reverse=True)


def _row(folder: Path, path: Path, summary: dict) -> str:
    verdict = summary.get("verdict") or summary.get("outcome") or "?"
    html = Path((summary.get("artifacts") or {}).get("html") or path.with_suffix(".html"))
    link = os.path.relpath(html, folder) if html.is_absolute() else str(html)
    move = f"{escape(str(summary.get('from_version') or '-'))} &rarr; {escape(str(summary.get('target') or '-'))}" \
        if summary.get("suite") == "upgrade" else escape(str(summary.get("from_version") or "-"))
    downtime = (summary.get("downtime") or {}).get("downtime_total_s")
    return (f'<tr class="{tone(verdict)}"><td>{escape(summary.get("finished") or "")}</td>'
            f'<td>{escape(str(summary.get("ticket") or "-"))}</td><td>{escape(summary.get("suite") or "")}</td>'
            f"<td>{move}</td><td><strong>{escape(verdict)}</strong></td>"
            f'<td class="num">{"" if downtime is None else f"{downtime:.1f} s"}</td>'
            f'<td><a href="{escape(link)}">{escape(html.name)}</a> &middot; <a href="{escape(path.name)}">json</a></td></tr>')


def write(folder: Path) -> Path:
    runs = summaries(folder)
    rows = "".join(_row(folder, path, summary) for path, summary in runs)
    page = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>OpenWatch upgrade reports ({len(runs)} runs)'
            f"</title><style>{STYLE}</style></head><body><h1>OpenWatch upgrade reports</h1>"
            f"<p>{len(runs)} run(s), newest first.</p><table><tr><th>finished (UTC)</th><th>ticket</th><th>suite</th>"
            f"<th>from &rarr; to</th><th>verdict</th><th>downtime</th><th>bundle</th></tr>{rows}</table></body></html>")
    index = folder / INDEX
    temporary = index.with_suffix(".tmp")
    temporary.write_text(page)
    os.replace(temporary, index)  # a reader never sees half a page
    return index
