"""Stash keys shared by more than one plugin (so plugins do not import each other)."""

import pytest

from runbook.downtime import Prober
from runbook.maintenance import Maintenance
from runbook.upgrade import Upgrade

UPGRADE_KEY = pytest.StashKey[Upgrade]()
PROBER_KEY = pytest.StashKey[Prober]()
MAINTENANCE_KEY = pytest.StashKey[Maintenance]()
