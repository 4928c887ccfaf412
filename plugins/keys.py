"""Stash keys shared by more than one plugin (so plugins do not import each other)."""

import pytest

from runbook.downtime import Prober
from runbook.maintenance import Maintenance
from runbook.upgrade import Upgrade

UPGRADE_KEY = pytest.StashKey[Upgrade]()
PROBER_KEY = pytest.StashKey[Prober]()
MAINTENANCE_KEY = pytest.StashKey[Maintenance]()
SUMMARY_KEY = pytest.StashKey[dict]()  # the run summary (runbook/run_summary.py), set by plugins/bundle.py
VERDICT_LINE_KEY = pytest.StashKey[str]()  # the upgrade's one-line outcome, set by plugins/rollback.py
