"""Keeps ``.env`` secrets out of everything a run writes: log records, test reports (terminal,
JUnit XML, HTML), captured output and user properties."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from plugins.options import PROFILE_KEY
from runbook.redaction import Redactor

FACTORY_KEY = pytest.StashKey["logging._LogRecordFactory"]()  # type: ignore[name-defined]


def _redactor(config: pytest.Config) -> Redactor | None:
    profile = config.stash.get(PROFILE_KEY, None)
    return profile.redactor if profile and profile.redactor else None


def pytest_configure(config: pytest.Config) -> None:
    original = logging.getLogRecordFactory()
    config.stash[FACTORY_KEY] = original

    def redacting_factory(*args, **kwargs) -> logging.LogRecord:
        record = original(*args, **kwargs)
        redact = _redactor(config)
        if redact:
            record.msg, record.args = redact(record.getMessage()), ()
        return record

    logging.setLogRecordFactory(redacting_factory)


def pytest_unconfigure(config: pytest.Config) -> None:
    logging.setLogRecordFactory(config.stash[FACTORY_KEY])


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: sees what every other plugin added
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    report = yield
    redact = _redactor(item.config)
    if redact:
        if report.longrepr is not None:
            text = str(report.longrepr)
            if isinstance(report.longrepr, tuple):  # skips: (path, line, reason)
                path, line, reason = report.longrepr
                report.longrepr = (path, line, redact(reason))
            elif redact(text) != text:
                report.longrepr = redact(text)
        report.sections = [(title, redact(content)) for title, content in report.sections]
        report.user_properties = [(name, redact(str(value))) for name, value in report.user_properties]
    return report
