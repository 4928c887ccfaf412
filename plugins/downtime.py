"""Measures user-visible downtime during ``suites/upgrade`` with the external prober, from the
first stage to the end of the run (rollback included), and reports it (terminal, JUnit, HTML)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from plugins.options import OPTIONS_KEY
from plugins.keys import PROBER_KEY, UPGRADE_KEY
from runbook.downtime import DowntimeReport, Prober

REPORT_KEY = pytest.StashKey[DowntimeReport]()
SUITE_PROPERTY_KEY = pytest.StashKey[Callable[[str, object], None]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("openwatch").addoption("--no-probe", action="store_true",
                                           help="do not measure user-visible downtime during an upgrade")


@pytest.fixture(scope="session", autouse=True)
def _suite_property_writer(pytestconfig: pytest.Config, record_testsuite_property: Callable[[str, object], None]) -> None:
    """Kept for :func:`pytest_sessionfinish`, which has no fixtures: pytest's public way to put a
    property on the JUnit ``<testsuite>`` (a no-op without ``--junitxml``)."""
    pytestconfig.stash[SUITE_PROPERTY_KEY] = record_testsuite_property


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Start with the first upgrade stage; mark every stage so outages can be attributed."""
    marker = item.get_closest_marker("upgrade_stage")
    config = item.config
    if marker is None or config.getoption("no_probe"):
        return
    prober = config.stash.get(PROBER_KEY, None)
    if prober is None:
        options = config.stash[OPTIONS_KEY]
        prober = config.stash[PROBER_KEY] = Prober(f"{options.base_url}/health", f"{options.frontend_url}/").start()
    prober.mark(marker.args[0])


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Before junitxml and pytest-html write their files, so both carry the numbers."""
    config = session.config
    prober = config.stash.get(PROBER_KEY, None)
    if prober is None:
        return
    report = config.stash[REPORT_KEY] = prober.stop()
    properties = {"downtime_total_s": report.total_s, "downtime_longest_s": report.longest_s,
                  "downtime_outages": len(report.outages)}
    for index, outage in enumerate(report.outages, 1):
        properties[f"downtime_outage_{index}"] = (f"{outage.start:.1f}-{outage.end:.1f}s "
                                                 f"({outage.seconds:.1f}s) during {', '.join(outage.stages)}")
    write_property = config.stash.get(SUITE_PROPERTY_KEY, None)
    for name, value in properties.items():
        if write_property is not None:
            write_property(name, str(value))
    upgrade = config.stash.get(UPGRADE_KEY, None)
    if upgrade is not None:
        upgrade.journal.set("downtime", {**properties, "marks": report.marks, "origin_epoch": report.origin_epoch,
                                         "intervals": [[o.start, o.end] for o in report.outages]})


def pytest_unconfigure(config: pytest.Config) -> None:
    prober = config.stash.get(PROBER_KEY, None)
    if prober is not None:
        prober.stop()  # every exit path, even one that skipped sessionfinish


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    report = config.stash.get(REPORT_KEY, None)
    if report is not None:
        terminalreporter.write_line(report.summary())
        for outage in report.outages:
            terminalreporter.write_line(f"  outage {outage.start:6.1f}s - {outage.end:6.1f}s ({outage.seconds:.1f}s) "
                                        f"during {', '.join(outage.stages)}")
