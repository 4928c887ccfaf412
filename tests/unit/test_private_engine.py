"""The tests' private Docker engine keeps clear of a real OpenWatch on the host's engine."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from sandbox.engine import EngineError, PrivateEngine
from sandbox.installation import Ports

REAL_OPENWATCH_PORTS = {Ports().postgres, Ports().backend, Ports().frontend}
HOST_ENGINE_NETWORKS = [ipaddress.IPv4Network("172.17.0.0/16"), ipaddress.IPv4Network("172.28.240.0/24")]


@pytest.mark.parametrize("name", ["tests", "bench", "a1"])
def test_addresses_are_clear_of_a_real_installation(name: str) -> None:
    engine = PrivateEngine(name)
    assert REAL_OPENWATCH_PORTS.isdisjoint({engine.ports.postgres, engine.ports.backend, engine.ports.frontend})
    for ours, theirs in itertools.product(engine.networks, HOST_ENGINE_NETWORKS):
        assert not ours.overlaps(theirs)
    assert len(engine.bridge) <= 15  # Linux interface names
    assert str(engine.socket).startswith("/run/") and engine.data_root.name == name


def test_tests_and_bench_engines_can_run_side_by_side() -> None:
    tests, bench = PrivateEngine("tests"), PrivateEngine("bench")
    assert tests.slot != bench.slot
    for ours, theirs in itertools.product(tests.networks, bench.networks):
        assert not ours.overlaps(theirs)
    assert tests.ports != bench.ports and tests.socket != bench.socket and tests.data_root != bench.data_root


@pytest.mark.parametrize("name", ["", "Tests", "../etc", "waytoolongname"])
def test_bad_engine_name_is_refused(name: str) -> None:
    with pytest.raises(EngineError, match="use 1-8 lower-case letters or digits"):
        PrivateEngine(name)
