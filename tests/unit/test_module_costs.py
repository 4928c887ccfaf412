"""The slowest test modules run first, by the seconds an earlier run recorded for them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def test_every_module_running_the_real_openwatch_shares_its_worker() -> None:
    """The real OpenWatch's images are built in the engine of the worker that runs its modules: a new module
    marked ``real`` not in the group would build them a second time, on the other worker."""
    root = Path(__file__).parents[2]
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "real",
                                "-p", "no:cacheprovider", "tests/e2e"],
                               cwd=root, capture_output=True, text=True, timeout=120, check=True).stdout
    real_modules = {module_costs.module_of(line) for line in collected.splitlines() if "::" in line}
    assert real_modules
    assert real_modules == {module for module, unit in module_costs.SAME_WORKER.items()
                            if unit == "real OpenWatch images"}


def test_modules_of_one_group_run_on_one_worker(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).parents[2]
    monkeypatch.setenv("PYTHONPATH", str(root))  # the workers import tests.module_costs from the conftest
    monkeypatch.setattr(module_costs, "SAME_WORKER", {"test_a.py": "shared", "test_b.py": "shared"})
    pytester.makeconftest("from tests import module_costs\n\n"
                          "def pytest_xdist_make_scheduler(config, log):\n"
                          "    return module_costs.SameWorkerScheduling(config, log)\n")
    record = ("import os, pathlib\n\n"
              "def test_{0}():\n    pathlib.Path('{0}.worker').write_text(os.environ['PYTEST_XDIST_WORKER'])\n")
    pytester.makepyfile(test_a=record.format("a"), test_b=record.format("b"), test_c=record.format("c"))
    pytester.runpytest("-n", "2", "--dist", "loadfile", "-p", "no:cacheprovider").assert_outcomes(passed=3)
    workers = {name: (pytester.path / f"{name}.worker").read_text() for name in "abc"}
    assert workers["a"] == workers["b"] != workers["c"]
