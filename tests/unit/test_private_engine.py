"""The tests' private Docker engine keeps clear of a real OpenWatch on the host's engine."""

from __future__ import annotations

import ipaddress
import itertools
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.engine import (FENCED_RANGES, EngineError, PrivateEngine, from_environment, host_resolvers, shared_slot,
                            worker_engine_name)
from sandbox.installation import Ports
from tests.fleet.bed import DEFAULT_HOST_ENGINES

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


def _engines_apart(first: PrivateEngine, second: PrivateEngine) -> bool:
    return (first.slot != second.slot and first.ports != second.ports and first.data_root != second.data_root
            and not any(ours.overlaps(theirs) for ours, theirs in itertools.product(first.networks, second.networks)))


def test_tests_and_bench_engines_can_run_side_by_side() -> None:
    assert _engines_apart(PrivateEngine("tests"), PrivateEngine("bench"))


def test_every_slot_has_an_address_pool_of_its_own() -> None:
    by_slot = {}
    for number in range(500):
        engine = PrivateEngine(f"e{number}")
        by_slot.setdefault(engine.slot, engine)
    assert len(by_slot) == 32
    for first, second in itertools.combinations(by_slot.values(), 2):
        assert _engines_apart(first, second), (first.name, second.name)


@pytest.mark.parametrize("base", ["tests", "realbed"])
def test_each_parallel_test_worker_gets_an_engine_of_its_own(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENWATCH_TEST_ENGINE", base)
    named = {}
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        named[worker] = from_environment()
    assert named["gw0"].name == base and named["gw1"].name == f"{base[:6]}1"
    assert _engines_apart(named["gw0"], named["gw1"])
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert from_environment().name == base  # a run without -n


def test_engines_of_one_run_that_would_share_addresses_are_named() -> None:
    workers = [worker_engine_name("tests", f"gw{n}") for n in range(8)]
    assert shared_slot([*workers, *DEFAULT_HOST_ENGINES]) is None  # make test TEST_WORKERS=8 beside the fleet bed
    assert shared_slot(["tests", "tests1", "tests2", "hosx", "hosy", "fleetc"]) == "tests2 and fleetc (slot 2)"


def test_more_workers_than_the_engines_allow_is_a_usage_error_before_anything_runs() -> None:
    """``-n 3`` with fleet engines one of which (fleetc) has the third worker's (tests2) slot."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "pytest", "tests/unit/test_private_engine.py", "-n", "3", "-q",
                           "-p", "no:cacheprovider", "-k", "nothing_matches_this"], cwd=root, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "OPENWATCH_TEST_ENGINE": "tests",
                                                       "OPENWATCH_FLEET_ENGINES": "hosx,hosy,fleetc"})
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "with -n 3 the private engines tests2 and fleetc (slot 2) would share addresses" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("name", ["", "Tests", "../etc", "waytoolongname"])
def test_bad_engine_name_is_refused(name: str) -> None:
    with pytest.raises(EngineError, match="use 1-8 lower-case letters or digits"):
        PrivateEngine(name)


def test_a_daemon_that_listens_but_does_not_serve_yet_is_not_answering() -> None:
    """A starting dockerd holds its socket before it serves it; ``docker version`` then hangs, and the start
    must go on waiting, not fail on the hung call."""
    engine = PrivateEngine("hangs")
    engine.run_dir.mkdir(parents=True, exist_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(engine.socket))
        listener.listen(1)  # never accepted: the kernel queues the connection, nobody answers it
        started = time.monotonic()
        assert engine.answers(timeout_s=1.0) is False
        assert 1.0 <= time.monotonic() - started < 10  # the call did hang, and was cut at its timeout
    finally:
        listener.close()
        shutil.rmtree(engine.run_dir)


def first_match(rules: list[list[str]], source: str, destination: str, port: int | None = None) -> str:
    """The target of the first filter rule that matches a packet, as iptables walks the chain."""
    for rule in rules:
        fields = dict(zip(rule[::2], rule[1::2]))
        if "-s" in fields and ipaddress.ip_address(source) not in ipaddress.ip_network(fields["-s"]):
            continue
        if "-d" in fields and ipaddress.ip_address(destination) not in ipaddress.ip_network(fields["-d"]):
            continue
        if "--dport" in fields and port != int(fields["--dport"]):
            continue
        return fields["-j"]
    return "fall through"


def test_containers_reach_only_their_own_networks_the_resolvers_and_public_addresses(tmp_path) -> None:
    engine = PrivateEngine("tests")
    rules = [rule for table, _, rule in engine._firewall_rules() if table == "filter"]
    container = str(next(engine.bridge_network.hosts()))
    install = str(next(ipaddress.ip_network(engine.install_subnet).hosts()))
    assert first_match(rules, container, install) == "ACCEPT"
    assert first_match(rules, install, "151.101.0.223") == "ACCEPT"  # a public registry address
    for fenced in ("10.1.2.3", "172.20.0.5", "192.168.1.10", "169.254.169.254", "100.64.0.1"):
        assert first_match(rules, install, fenced) == "REJECT", fenced
    for resolver in host_resolvers():
        assert first_match(rules, container, resolver, port=53) == "ACCEPT"
        if any(ipaddress.ip_address(resolver) in ipaddress.ip_network(r) for r in FENCED_RANGES):
            assert first_match(rules, container, resolver, port=22) == "REJECT"
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# comment\nnameserver 10.255.255.53\nnameserver fe80::1\nsearch example\n")
    assert host_resolvers(resolv) == ["10.255.255.53"]
