"""A service's log tail as a reviewer needs it: the lines at WARNING and above, and whole tracebacks,
not the access-log noise of health probes around them."""

from __future__ import annotations

import re

LEVEL = re.compile(r"\b(WARNING|WARN|ERROR|CRITICAL|FATAL)\b")
TRACEBACK_START = "Traceback (most recent call last):"
CHAINED = ("During handling", "The above exception")


def notable(lines: list[str]) -> list[str]:
    """WARNING/ERROR/CRITICAL lines and every traceback, in order."""
    kept, in_traceback = [], False
    for line in lines:
        if TRACEBACK_START in line:
            in_traceback = True
            kept.append(line)
            continue
        if in_traceback:
            kept.append(line)
            # Frames and source lines are indented; the first unindented line is the exception itself.
            if line[:1].strip() and not line.startswith(CHAINED):
                in_traceback = False
            continue
        if LEVEL.search(line):
            kept.append(line)
    return kept
