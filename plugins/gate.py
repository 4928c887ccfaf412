"""The pre-flight gate holds: the upgrade suite runs whole and in order or not at all, and its gate
stage lets the upgrade go on only when every pre-flight check ran in this session and passed.

The suite states what it consists of (``suites/upgrade/conftest.py`` stashes a :class:`SuitePlan`);
this plugin holds each run to it. A selection (``-k``, ``-m``, ``--deselect``, node ids, ``--lf``...)
that drops or reorders part of it is a usage error before anything is touched, and the gate does
not take "no failed test" for "every check passed": it reads the outcome recorded for each check.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from plugins.checks import NotApplicableSkip
from plugins.runmode import mode_of
from runbook.errors import Problem


@dataclass(frozen=True)
class SuitePlan:
    """The upgrade suite's tests, by name, in the order they must run."""

    directory: Path
    preflight_checks: tuple[str, ...]
    stages: tuple[str, ...]

    def expected(self, config: pytest.Config) -> tuple[str, ...]:
        own_test = mode_of(config).own_test
        return (own_test,) if own_test else self.preflight_checks + self.stages

    def holds(self, item: pytest.Item) -> bool:
        return Path(item.path).parent == self.directory


PLAN_KEY = pytest.StashKey[SuitePlan]()
# check name -> phase (setup, call, teardown) -> passed | failed | skipped | not applicable
OUTCOMES_KEY = pytest.StashKey[dict[str, dict[str, str]]]()

# Options that choose or order the tests, as an operator writes them (option dest, flag).
SELECTING_OPTIONS = (("keyword", "-k"), ("markexpr", "-m"), ("deselect", "--deselect"), ("ignore", "--ignore"),
                     ("ignore_glob", "--ignore-glob"), ("lf", "--lf"), ("failedfirst", "--ff"), ("newfirst", "--nf"),
                     ("stepwise", "--sw"), ("stepwise_skip", "--sw-skip"))
# Plugins an upgrade run cannot do without, and why (``-p no:NAME`` would silently drop them).
REQUIRED_PLUGINS = {
    "plugins.runmode": "it decides whether this run upgrades, resumes, rolls back or plans; do not disable it",
    "dependency": "the upgrade stages depend on each other through pytest-dependency (after a failed stage the "
                  "later ones must be skipped); do not disable it",
    "plugins.rollback": "a failed stage is rolled back by it; to leave a failure as it is, pass --no-rollback instead",
    "plugins.signals": "it turns SIGTERM into a rolled-back interruption and refuses a second Ctrl-C mid-rollback; "
                       "do not disable it",
}


def pytest_sessionstart(session: pytest.Session) -> None:
    """Before collection, which would otherwise fail first on the unknown ``dependency`` mark."""
    if PLAN_KEY in session.config.stash:
        problem = plugin_problem(session.config)
        if problem:
            raise pytest.UsageError(problem)


def plugin_problem(config: pytest.Config) -> str | None:
    blocked = next((name for name in REQUIRED_PLUGINS if config.pluginmanager.is_blocked(name)), None)
    return f"-p no:{blocked}: {REQUIRED_PLUGINS[blocked]}" if blocked else None


@pytest.hookimpl(wrapper=True)
def pytest_collection_finish(session: pytest.Session) -> Iterator[None]:
    """Before every other plugin's ``pytest_collection_finish``: the options plugin reads the
    installation there, and a partial run must be refused before anything is looked at."""
    config = session.config
    plan = config.stash.get(PLAN_KEY, None)
    if plan is not None:
        found = [item.name for item in session.items if plan.holds(item)]
        if found or mode_of(config).upgrade_suite:
            problem = selection_problem(config, plan, found)
            if problem:
                raise pytest.UsageError(problem)
    return (yield)


def _arg_path(config: pytest.Config, arg: str) -> Path:
    return (config.invocation_params.dir / arg.split("::")[0]).resolve()


def selection_problem(config: pytest.Config, plan: SuitePlan, found: list[str]) -> str | None:
    problem = plugin_problem(config)
    if problem:
        return problem
    expected = list(plan.expected(config))
    if found == expected:
        return None
    named = [flag for dest, flag in SELECTING_OPTIONS if config.getoption(dest, None)]
    named += [arg for arg in config.args if plan.directory in _arg_path(config, arg).parents]  # files, node ids
    culprit = ", ".join(named)
    return (f"{culprit or 'this selection'}: the upgrade suite runs whole and in order, or not at all; this one "
            f"{difference(expected, found)}; run `pytest suites/upgrade` without "
            f"{culprit or 'selecting or reordering its tests'}")


def difference(expected: Sequence[str], found: Sequence[str]) -> str:
    """How ``found`` departs from ``expected``, in a few words."""
    missing = [name for name in expected if name not in found]
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        return f"leaves out {len(missing)} of its {len(expected)} tests ({shown})"
    unknown = [name for name in found if name not in expected]
    if unknown:
        return f"adds {', '.join(unknown[:3])}, which the upgrade suite does not consist of"
    repeated = [name for name in expected if found.count(name) > 1]
    if repeated:
        return f"runs {repeated[0]} more than once"
    first = next(index for index, (want, got) in enumerate(zip(expected, found)) if want != got)
    return f"runs {found[first]} before {expected[first]}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    """Records each phase's outcome of every pre-flight check of the upgrade suite, for the gate."""
    report = yield
    plan = item.config.stash.get(PLAN_KEY, None)
    if plan is not None and plan.holds(item) and item.name in plan.preflight_checks:
        not_applicable = report.skipped and call.excinfo is not None and call.excinfo.errisinstance(NotApplicableSkip)
        phases = item.config.stash.setdefault(OUTCOMES_KEY, {}).setdefault(item.name, {})
        phases[report.when] = "not applicable" if not_applicable else report.outcome
    return report


def unmet(checks: Sequence[str], outcomes: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Each check that does not let the upgrade go on, with why: it failed, was skipped (other than
    because it does not apply to this installation), or did not run, or not to the end."""
    found = []
    for name in checks:
        phases = outcomes.get(name, {})
        if not phases:
            found.append(f"{name} did not run")
        elif "failed" in phases.values():
            found.append(f"{name} failed")
        elif "skipped" in phases.values():
            found.append(f"{name} was skipped")
        elif "not applicable" not in phases.values() and phases.get("call") != "passed":
            found.append(f"{name} did not run to the end")
    return found


def verify_preflight(config: pytest.Config) -> None:
    """The gate: :class:`Problem` unless every pre-flight check of the plan passed in this session."""
    plan = config.stash.get(PLAN_KEY, None)
    if plan is None:
        raise Problem("the pre-flight gate cannot tell which checks the upgrade suite has; nothing was changed")
    problems = unmet(plan.preflight_checks, config.stash.get(OUTCOMES_KEY, {}))
    if problems:
        raise Problem(f"the pre-flight gate failed: {len(problems)} of {len(plan.preflight_checks)} pre-flight checks "
                      f"did not pass ({'; '.join(problems)}); nothing was changed")
