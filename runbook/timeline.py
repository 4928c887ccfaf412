"""The run as a picture: stages as bars on a time axis, user-visible outages in red, rollback
actions marked. Inline SVG built from the journal, so the report needs no asset or script.

Labels are never cut: the label column is as wide as the longest label needs, up to a limit past
which a label wraps onto more lines. The axis counts seconds from the first stop of the app (the
start of ``drain_and_stop``, where users start to notice), negative before it.
"""

from __future__ import annotations

import math
import textwrap
from html import escape

WIDTH, TOP, LINE, PAD = 1200, 34, 13, 7
CHAR_PX, MAX_LABEL_CHARS = 6.2, 48  # 11 px sans-serif
COLOURS = {"passed": "#4c9a2a", "failed": "#c0392b", "running": "#999999", "rollback": "#e08e0b",
           "rollback-failed": "#c0392b"}
FIRST_STOP = "drain_and_stop"
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


def zero(journal: dict, rows: list[tuple[str, float, float, str]]) -> tuple[float, str]:
    """Where the axis counts from, and what that instant is."""
    stop = next((s["t0"] for s in journal.get("stages", []) if s["name"] == FIRST_STOP and "t0" in s), None)
    if stop is not None:
        return stop, "seconds from the first stop of the app (start of drain_and_stop)"
    return min(t0 for _, t0, _, _ in rows), "seconds from the first stage (the app was never stopped)"


def render(journal: dict) -> str:
    """An SVG document fragment; empty when the journal has no timed stages."""
    rows = _rows(journal)
    if not rows:
        return ""
    origin, caption = zero(journal, rows)
    downtime = journal.get("downtime") or {}
    probe_origin = downtime.get("origin_epoch", origin)
    outages = [(probe_origin + s, probe_origin + e) for s, e in downtime.get("intervals", [])]
    first = min([t0 for _, t0, _, _ in rows] + [s for s, _ in outages])
    end = max([t1 for _, _, t1, _ in rows] + [e for _, e in outages])
    span = max(end - first, 1.0)
    labels = [textwrap.wrap(name, MAX_LABEL_CHARS) or [name] for name, _, _, _ in rows]
    left = 12 + CHAR_PX * max(len(line) for lines in labels for line in lines)
    scale = (WIDTH - left - 24) / span
    x = lambda t: left + (t - first) * scale  # noqa: E731
    heights = [LINE * len(lines) + PAD for lines in labels]
    bottom = TOP + sum(heights)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="upgrade-timeline" viewBox="0 0 {WIDTH} {bottom + 40}" '
             f'width="100%" font-family="sans-serif" font-size="11" role="img" aria-label="upgrade timeline">',
             f'<text x="4" y="14" font-weight="bold">Timeline ({span:.1f} s); red band: users could not reach '
             f'OpenWatch; orange: rollback actions</text>']
    for start, stop in outages:
        parts.append(f'<rect class="outage" x="{x(start):.1f}" y="{TOP - 6}" width="{max((stop - start) * scale, 1):.1f}" '
                     f'height="{bottom - TOP + 6}" fill="#c0392b" fill-opacity="0.18" stroke="#c0392b">'
                     f'<title>outage {stop - start:.1f} s</title></rect>')
    y = TOP
    for (name, t0, t1, status), lines, height in zip(rows, labels, heights):
        text = "".join(f'<tspan x="4" dy="{0 if i == 0 else LINE}">{escape(line)}</tspan>' for i, line in enumerate(lines))
        parts.append(f'<text class="label" y="{y + 12}">{text}</text>')
        parts.append(f'<rect class="stage" x="{x(t0):.1f}" y="{y + 2}" width="{max((t1 - t0) * scale, 2):.1f}" '
                     f'height="{height - 5}" fill="{COLOURS.get(status, "#999999")}"><title>{escape(name)}: '
                     f'{t1 - t0:.2f} s, {escape(status)}</title></rect>')
        y += height
    step = tick_step(span)
    ticks = range(math.ceil((first - origin) / step) * step, int(end - origin) + 1, step)
    parts.append(f'<line x1="{left}" y1="{bottom + 4}" x2="{x(end):.1f}" y2="{bottom + 4}" stroke="#333"/>')
    parts += [f'<line x1="{x(origin + t):.1f}" y1="{bottom + 1}" x2="{x(origin + t):.1f}" y2="{bottom + 7}" '
              f'stroke="#333"/><text class="tick" x="{x(origin + t):.1f}" y="{bottom + 18}" text-anchor="middle">'
              f'{t}s</text>' for t in ticks]
    parts.append(f'<text x="{left}" y="{bottom + 34}" fill="#555">{escape(caption)}</text></svg>')
    return "".join(parts)
