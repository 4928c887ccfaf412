"""``--plan`` prints its plan at the end of the run (the report gets it from plugins/report.py)."""

from __future__ import annotations

import pytest

from plugins.keys import DRY_RUN_KEY


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    plan = config.stash.get(DRY_RUN_KEY, None)
    if plan is None:
        return
    lines = plan.lines()
    terminalreporter.write_sep("=", lines[0], bold=True)
    for line in lines[1:]:
        terminalreporter.write_line(line)
