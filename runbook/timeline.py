"""The run as a picture: stages as bars on a time axis, user-visible outages in red, rollback
actions marked. Inline SVG built from the journal, so the report needs no asset or script."""

from __future__ import annotations

import math
from html import escape

WIDTH, LEFT, ROW, TOP = 960, 170, 20, 28
COLOURS = {"passed": "#4c9a2a", "failed": "#c0392b", "running": "#999999", "rollback": "#e08e0b",
           "rollback-failed": "#c0392b"}
HOUR = 3600
TICK_STEPS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, HOUR, 2 * HOUR)


def _rows(journal: dict) -> list[tuple[str, float, float, str]]:
    rows = [(s["name"], s["t0"], s.get("t1") or s["t0"], s["status"]) for s in journal.get("stages", []) if "t0" in s]
    for action in (journal.get("rollback") or {}).get("actions", []):
        if "t0" in action:
            rows.append((f"rollback: {action['name']}", action["t0"], action["t1"],
                         "rollback" if action["ok"] else "rollback-failed"))
    return rows


def tick_step(span: float, most: int = 12) -> int:
    """Seconds between axis labels: a round step that puts at most ``most`` labels on ``span``
    (whole hours beyond the listed steps: an upgrade stuck overnight still gets an axis)."""
    listed = next((s for s in TICK_STEPS if span / s <= most), None)
    return listed or HOUR * math.ceil(span / most / HOUR)


def render(journal: dict) -> str:
    """An SVG document fragment; empty when the journal has no timed stages."""
    rows = _rows(journal)
    if not rows:
        return ""
    origin = journal.get("started_epoch") or min(t0 for _, t0, _, _ in rows)
    downtime = journal.get("downtime") or {}
    outages = [(downtime.get("origin_epoch", origin) + s, downtime.get("origin_epoch", origin) + e)
               for s, e in downtime.get("intervals", [])]
    end = max([t1 for _, _, t1, _ in rows] + [e for _, e in outages])
    span = max(end - origin, 1.0)
    scale = (WIDTH - LEFT - 20) / span
    height = TOP + ROW * len(rows) + 30
    x = lambda t: LEFT + (t - origin) * scale  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="upgrade-timeline" width="{WIDTH}" height="{height}" '
             f'font-family="sans-serif" font-size="11" role="img" aria-label="upgrade timeline">',
             f'<text x="4" y="14" font-weight="bold">Timeline ({span:.1f} s); red: users could not reach OpenWatch</text>']
    for start, stop in outages:
        parts.append(f'<rect class="outage" x="{x(start):.1f}" y="{TOP - 6}" width="{max((stop - start) * scale, 1):.1f}" '
                     f'height="{ROW * len(rows) + 6}" fill="#c0392b" fill-opacity="0.18" stroke="#c0392b">'
                     f'<title>outage {stop - start:.1f} s</title></rect>')
    for index, (name, t0, t1, status) in enumerate(rows):
        y = TOP + index * ROW
        parts.append(f'<text x="4" y="{y + 13}">{escape(name[:28])}</text>')
        parts.append(f'<rect class="stage" x="{x(t0):.1f}" y="{y + 3}" width="{max((t1 - t0) * scale, 2):.1f}" '
                     f'height="{ROW - 6}" fill="{COLOURS.get(status, "#999999")}"><title>{escape(name)}: '
                     f'{t1 - t0:.2f} s, {escape(status)}</title></rect>')
    axis_y = TOP + ROW * len(rows) + 12
    step = tick_step(span)
    ticks = "".join(f'<text x="{x(origin + t):.1f}" y="{axis_y + 12}" text-anchor="middle">{t}s</text>'
                    for t in range(0, int(span) + 1, step))
    parts.append(f'<line x1="{LEFT}" y1="{axis_y}" x2="{x(end):.1f}" y2="{axis_y}" stroke="#333"/>{ticks}</svg>')
    return "".join(parts)
