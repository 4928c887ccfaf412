"""Turns the runbook's domain outcomes into pytest outcomes, in tests and in fixtures alike:
:class:`Problem` and :class:`CommandError` fail without a traceback, :class:`NotApplicable` skips."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from plugins.options import PROFILE_KEY
from runbook.errors import NotApplicable, Problem
from runbook.redaction import Redactor
from runbook.shell import CommandError


class NotApplicableSkip(pytest.skip.Exception):
    """The skip of a check that does not apply to this installation (the gate accepts these)."""


@contextmanager
def as_check(redactor: Redactor | None = None) -> Iterator[None]:
    __tracebackhide__ = True
    redact = redactor or (lambda text: text)
    try:
        yield
    # ``from None``: the report shows the one-line message, not the domain error chained under it.
    except (Problem, CommandError) as error:
        raise pytest.fail.Exception(redact(str(error)), pytrace=False) from None
    except NotApplicable as reason:
        raise NotApplicableSkip(redact(str(reason))) from None


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Iterator[None]:
    profile = pyfuncitem.config.stash.get(PROFILE_KEY, None)
    with as_check(profile.redactor if profile else None):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest) -> Iterator[object]:
    profile = request.config.stash.get(PROFILE_KEY, None)
    with as_check(profile.redactor if profile else None):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """pytest caches what a session fixture raised and re-raises it, as it was, for every later test
    that asks for the fixture, past :func:`pytest_fixture_setup`: the second check sharing a fixture
    that does not apply would otherwise error with the domain exception instead of skipping."""
    profile = item.config.stash.get(PROFILE_KEY, None)
    with as_check(profile.redactor if profile else None):
        return (yield)
