"""Stash keys shared by more than one plugin (so plugins do not import each other)."""

import pytest

from runbook.downtime import Prober
from runbook.dry_run import Plan
from runbook.maintenance import Maintenance
from runbook.rollback import RollbackResult
from runbook.upgrade import Upgrade

UPGRADE_KEY = pytest.StashKey[Upgrade]()
RUN_MODE_KEY = pytest.StashKey["RunMode"]()  # plugins/runmode.py, decided at configure time
DRY_RUN_KEY = pytest.StashKey[Plan]()  # what --plan found (suites/upgrade/test_40_plan.py), for the report
PROBER_KEY = pytest.StashKey[Prober]()
MAINTENANCE_KEY = pytest.StashKey[Maintenance]()
SUMMARY_KEY = pytest.StashKey[dict]()  # the run summary (runbook/run_summary.py), set by plugins/bundle.py
VERDICT_LINE_KEY = pytest.StashKey[str]()  # the upgrade's one-line outcome, set by plugins/outcome.py
# Set by plugins/rollback.py, read by plugins/outcome.py: the stage that failed (or was interrupted),
# whether it was an interruption, and the rollback's result.
FAILED_STAGE_KEY = pytest.StashKey[str]()
INTERRUPTED_KEY = pytest.StashKey[bool]()
RESULT_KEY = pytest.StashKey[RollbackResult]()
