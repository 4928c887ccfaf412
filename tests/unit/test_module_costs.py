"""The slowest test modules run first, by the seconds an earlier run recorded for them."""

from __future__ import annotations

import json

import pytest

from tests import module_costs

CONFTEST = """
from pathlib import Path
from tests import module_costs

COSTS = Path(__file__).with_name("costs.json")

def pytest_configure(config):
    config.pluginmanager.register(module_costs.CostRecorder(COSTS), "recorder")

def pytest_collection_modifyitems(items):
    items[:] = module_costs.longest_first(items, module_costs.load(COSTS))
"""


def test_a_recorded_run_puts_the_slow_module_first_and_keeps_each_modules_order(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_a_quick="def test_q1():\n    pass\n\ndef test_q2():\n    pass\n",
        test_b_slow="import time\n\ndef test_s1():\n    time.sleep(0.4)\n\ndef test_s2():\n    pass\n",
    )
    first = pytester.runpytest("-v", "-p", "no:cacheprovider")
    first.assert_outcomes(passed=4)
    costs = json.loads((pytester.path / "costs.json").read_text())
    assert costs["test_b_slow.py"] >= 0.4 > costs["test_a_quick.py"]

    second = pytester.runpytest("-v", "-p", "no:cacheprovider")
    ran = [line.split(" ")[0] for line in second.outlines if " PASSED" in line]
    assert ran == ["test_b_slow.py::test_s1", "test_b_slow.py::test_s2",
                   "test_a_quick.py::test_q1", "test_a_quick.py::test_q2"]


def test_a_run_of_one_module_keeps_the_others_costs_and_drops_deleted_modules(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_kept="def test_k():\n    pass\n", test_run="def test_r():\n    pass\n")
    (pytester.path / "costs.json").write_text(json.dumps({"test_kept.py": 99.0, "test_gone.py": 5.0}))
    pytester.runpytest("test_run.py", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    costs = json.loads((pytester.path / "costs.json").read_text())
    assert costs.keys() == {"test_kept.py", "test_run.py"}
    assert costs["test_kept.py"] == 99.0


def test_modules_without_a_recorded_cost_are_e2e_before_the_rest() -> None:
    costs = {"tests/e2e/test_known.py": 300.0, "tests/unit/test_known.py": 90.0}
    assert module_costs.cost("tests/e2e/test_new.py", costs) == module_costs.UNKNOWN_E2E_MODULE_S
    assert module_costs.cost("tests/unit/test_new.py", costs) < module_costs.cost("tests/e2e/test_new.py", costs)
    assert module_costs.cost("tests/unit/test_known.py", costs) == 90.0


def test_an_unreadable_costs_file_means_no_costs(tmp_path) -> None:
    broken = tmp_path / "costs.json"
    broken.write_text("{not json")
    assert module_costs.load(broken) == {}
    assert module_costs.load(tmp_path / "missing.json") == {}
