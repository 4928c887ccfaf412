"""The fleet layer end to end: Ansible over real SSH upgrades three simulated hosts (network
namespaces, each with its own sshd, dockerd and sandbox OpenWatch), in waves, with a canary, a
fleet-wide failure budget, roll-back-all, resume and an audit. Every scenario checks every host's
final version, health and tables (the test's own checksums) against the host's baseline."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from runbook.shell import progress
from sandbox import engine as engines
from sandbox import releases
from sandbox.installation import parse_env
from tests.fleet.bed import Bed, host_engines
from tests.fleet.hostctl import RUNTIME_FACTS
from tests.fleet.host import SimulatedHost, openssh_root
from tests.fleet.runs import FleetRun, play

pytestmark = [pytest.mark.fleet, pytest.mark.slow]

# OPENWATCH_FLEET_ENGINES names them (tests/conftest.py refuses a bad value); fleetp, fleetq, fleetr by default.
HOST_ENGINES = host_engines()
HOST_A, HOST_B, HOST_C = HOST_ENGINES
TARGET = "v0.2.0"
FAULT = {"fleet_target": "v0.2.0-fault-migration"}
OLD_HEAD = releases.BY_TAG[releases.OLDEST.tag].head
NEW_HEAD = releases.BY_TAG[TARGET].head
# Longer than the gap between waves without a pause (8.6-11.5 s measured, 67 s once on a loaded machine):
# a shorter one (10 s) would let "gap >= pause" pass with the pause skipped. It is a sleep, no CPU.
WAVE_PAUSE_S = 30
SUITE_START_DEADLINE_S = 900
POLL_S = 0.5
# v0.2.0's migrations backfill new columns of these; every other table keeps its rows' text.
REWRITTEN = {"public.hosts", "public.scans", "public.alembic_version"}


@pytest.fixture(scope="module")
def bed(sandbox_ready: Path, docker_engine: engines.PrivateEngine,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    """Three hosts up and installed at the oldest release, once for the module; all gone after."""
    fleet_bed = Bed(tmp_path_factory.mktemp("fleet"), HOST_ENGINES, images_from=docker_engine)
    try:
        fleet_bed.up()
        fleet_bed.install(releases.OLDEST.tag, prepare_for=TARGET)
        fleet_bed.baseline = fleet_bed.probe(settled=True)
        progress(f"fleet bed ready: {json.dumps({k: round(v, 1) for k, v in fleet_bed.timings.items()})}")
        yield fleet_bed
    finally:
        started = time.monotonic()
        left = fleet_bed.tear_down()
        progress(f"fleet bed torn down in {time.monotonic() - started:.1f}s")
    assert not left, f"the fleet bed left: {', '.join(left)}"


@pytest.fixture
def fresh(bed: Bed) -> Iterator[Bed]:
    """The bed as installed; put back after the scenario (every host's baseline data, oldest release):
    reset where the scenario changed something, only cleaned of the run's journal elsewhere."""
    yield bed
    started = time.monotonic()
    found, reset, cleaned = bed.restore()
    progress(f"fleet bed restored in {time.monotonic() - started:.1f}s: reset {len(reset)} "
             f"({', '.join(reset) or 'none'}), only cleaned {len(cleaned)} ({', '.join(cleaned) or 'none'})")
    assert found == bed.baseline


def scenario_facts(probe: dict) -> dict:
    """A host's probe without what only the bed's reset compares (the checked-out commit, the containers)."""
    return {key: value for key, value in probe.items() if key not in RUNTIME_FACTS}


def assert_untouched(bed: Bed, host: str, now: dict) -> None:
    assert scenario_facts(now[host]) == scenario_facts(bed.baseline[host]), f"{host} changed"
    assert now[host]["health"] == {"code": 200, "status": "healthy"}


def assert_upgraded(bed: Bed, host: str, now: dict) -> None:
    found, before = now[host], bed.baseline[host]
    assert (found["version"], found["revisions"], found["health"]) == \
        (releases.BY_TAG[TARGET].version, [NEW_HEAD], {"code": 200, "status": "healthy"}), f"{host}: {found}"
    assert set(found["contents"]) == set(before["contents"])
    for table, (rows, checksum) in before["contents"].items():
        assert found["contents"][table][0] == rows, f"{host}: {table} lost or gained rows"
        if table not in REWRITTEN:
            assert found["contents"][table][1] == checksum, f"{host}: {table} changed"


def upgrade(bed: Bed, **run_vars) -> FleetRun:
    result = play(bed, "upgrade.yml", target=TARGET, ticket="CHG-FLEET", **run_vars)
    progress(f"fleet run {result.run_dir.name}: rc {result.returncode} in {result.seconds:.1f}s: {result.status()}")
    return result


def test_waves_canary_alone_first(fresh: Bed) -> None:
    result = upgrade(fresh, waves=[1, 1, "100%"])
    assert result.returncode == 0, result.output[-3000:]
    assert result.status() == dict.fromkeys(HOST_ENGINES, "upgraded")
    now = fresh.probe()
    for host in HOST_ENGINES:
        assert_upgraded(fresh, host, now)
    journals = {host: result.journal(host) for host in HOST_ENGINES}
    assert all(journal["outcome"] == "UPGRADED" for journal in journals.values())
    # Canary alone, then the second wave alone, then the rest.
    assert journals[HOST_A]["finished_epoch"] < journals[HOST_B]["started_epoch"]
    assert journals[HOST_B]["finished_epoch"] < journals[HOST_C]["started_epoch"]
    summary = result.summary
    assert summary["verdict"] == "PASSED" and summary["stopped"] is None
    assert all((result.run_dir / row["report"]).is_file() for row in summary["hosts"])
    junit = (result.run_dir / "fleet.junit.xml").read_text()
    assert junit.count("<testcase") == 3 and "<failure" not in junit
    for path in result.run_dir.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".html", ".xml", ".log"):
            text = path.read_text(errors="replace")
            for host in fresh.hosts:
                for name, value in _secrets(host.install_dir).items():
                    assert value not in text, f"{name} of {host.name} in {path}"


def _secrets(install_dir: Path) -> dict[str, str]:
    return {name: value for name, value in parse_env(install_dir / ".env").items()
            if any(word in name for word in ("PASSWORD", "SECRET", "KEY")) and len(value) >= 8}


def test_canary_fault_stops_the_run(fresh: Bed) -> None:
    result = upgrade(fresh, waves=[1, "100%"], host_vars={HOST_A: FAULT})
    assert result.returncode != 0
    assert result.status() == {HOST_A: "failed", HOST_B: "not-started", HOST_C: "not-started"}
    assert f"canary {HOST_A} failed" in result.summary["stopped"]["reason"]
    assert result.journal(HOST_A)["outcome"].startswith("ROLLED BACK")
    assert result.journal(HOST_B) is None and result.journal(HOST_C) is None
    now = fresh.probe()
    for host in HOST_ENGINES:
        assert_untouched(fresh, host, now)


def test_unreachable_host_then_resume_upgrades_only_it(fresh: Bed) -> None:
    host_c = fresh.host(HOST_C)
    host_c.stop_sshd()
    try:
        first = upgrade(fresh, waves=["100%"], max_failed=1)
    finally:
        host_c.start_sshd(openssh_root())
    assert first.returncode != 0
    assert first.status() == {HOST_A: "upgraded", HOST_B: "upgraded", HOST_C: "failed-unreached"}
    reason = next(row["reason"] for row in first.summary["hosts"] if row["host"] == HOST_C)
    assert "Connection refused" in reason or "connect" in reason, reason
    earlier = {host: first.journal(host)["run_id"] for host in (HOST_A, HOST_B)}
    assert_untouched(fresh, HOST_C, fresh.probe())

    second = upgrade(fresh, waves=["100%"], max_failed=1, run_id=first.run_dir.name)
    assert second.returncode == 0, second.output[-3000:]
    assert second.status() == dict.fromkeys(HOST_ENGINES, "upgraded")
    assert {host: second.journal(host)["run_id"] for host in (HOST_A, HOST_B)} == earlier  # left alone
    assert second.journal(HOST_C)["outcome"] == "UPGRADED"
    now = fresh.probe()
    for host in HOST_ENGINES:
        assert_upgraded(fresh, host, now)


def test_wave_two_failure_within_budget(fresh: Bed) -> None:
    # Wave 2 is host B and host C side by side: host B's failure stops neither host C nor the run.
    result = upgrade(fresh, waves=[1, "100%"], max_failed=1, host_vars={HOST_B: FAULT})
    assert result.returncode != 0
    assert result.status() == {HOST_A: "upgraded", HOST_B: "failed", HOST_C: "upgraded"}
    row = next(row for row in result.summary["hosts"] if row["host"] == HOST_B)
    assert row["rollback_tier"] and row["outcome"].startswith("ROLLED BACK")
    assert result.summary["stopped"] is None and result.summary["failed_hosts"] == [HOST_B]
    now = fresh.probe()
    assert_upgraded(fresh, HOST_A, now)
    assert_untouched(fresh, HOST_B, now)
    assert_upgraded(fresh, HOST_C, now)


def test_budget_exceeded_rolls_back_all_in_reverse(fresh: Bed) -> None:
    # Canary wave of two (host A, host B side by side), then host C fails: 1 failure > budget 0.
    result = upgrade(fresh, waves=[2, 1], max_failed=0, rollback_policy="all", host_vars={HOST_C: FAULT})
    assert result.returncode != 0
    assert result.status() == {HOST_A: "rolled-back-by-fleet", HOST_B: "rolled-back-by-fleet", HOST_C: "failed"}
    assert "failure budget exceeded" in result.summary["stopped"]["reason"]
    rows = {row["host"]: row for row in result.summary["hosts"]}
    last_upgraded, first_upgraded = sorted((HOST_A, HOST_B), key=lambda host: rows[host]["upgrade"]["recorded"],
                                           reverse=True)
    # Rolled back one at a time, the one upgraded last first (each recorded once its --rollback-to ran).
    assert rows[last_upgraded]["recorded"] < rows[first_upgraded]["recorded"]
    assert all(result.journal(host)["outcome"].startswith("ROLLED BACK") for host in (HOST_A, HOST_B))
    now = fresh.probe()
    for host in HOST_ENGINES:
        assert_untouched(fresh, host, now)


def test_budget_exceeded_inside_a_wave_starts_no_further_host(fresh: Bed) -> None:
    # One wave of three at -f 1: its hosts start one after another, inside the wave. Host A fails
    # (budget 0): host B and host C, not started yet, are not started, and say why.
    result = upgrade(fresh, waves=["100%"], max_failed=0, forks=1, host_vars={HOST_A: FAULT})
    assert result.returncode != 0
    assert result.status() == {HOST_A: "failed", HOST_B: "not-started", HOST_C: "not-started"}
    rows = {row["host"]: row for row in result.summary["hosts"]}
    assert rows[HOST_A]["outcome"].startswith("ROLLED BACK")
    for host in (HOST_B, HOST_C):
        reason = f"not started: failure budget exceeded: 1 hosts failed ({HOST_A})"
        assert rows[host]["reason"].startswith(reason), rows[host]
        assert result.journal(host) is None
    assert "failure budget exceeded" in result.summary["stopped"]["reason"]
    now = fresh.probe()
    for host in HOST_ENGINES:
        assert_untouched(fresh, host, now)


def test_fleet_audit_one_worker_stopped(fresh: Bed) -> None:
    host_b = fresh.host(HOST_B)
    subprocess.run(["docker", "--host", host_b.engine.host, "stop", "openwatch-worker"], check=True,
                   capture_output=True, timeout=60)
    result = play(fresh, "audit.yml")
    progress(f"fleet audit: rc {result.returncode} in {result.seconds:.1f}s: {result.status()}")
    assert result.returncode != 0
    assert result.status() == {HOST_A: "healthy", HOST_B: "unhealthy", HOST_C: "healthy"}
    now = fresh.probe()
    for host in (HOST_A, HOST_C):
        assert_untouched(fresh, host, now)
    assert now[HOST_B]["contents"] == fresh.baseline[HOST_B]["contents"]


def test_wave_pause_and_a_changed_host_key(fresh: Bed) -> None:
    # Host C's sshd comes back with a new host key: Ansible must refuse it (known_hosts has the old
    # one), count host C failed-unreached with that reason, and not try it again. Wave 2 (host B,
    # host C) starts only after the pause, which the journals' timestamps show.
    host_c = fresh.host(HOST_C)
    fresh.close_ssh_connections()
    host_c.change_host_key(openssh_root())
    try:
        result = upgrade(fresh, waves=[1, "100%"], max_failed=1, wave_pause=f"{WAVE_PAUSE_S}s")
    finally:
        host_c.restore_host_key(openssh_root())
    assert result.returncode != 0
    assert result.status() == {HOST_A: "upgraded", HOST_B: "upgraded", HOST_C: "failed-unreached"}
    row = next(row for row in result.summary["hosts"] if row["host"] == HOST_C)
    assert "Host key verification failed" in row["reason"] or "HOST IDENTIFICATION HAS CHANGED" in row["reason"], row
    assert [attempt["status"] for attempt in row["attempts"]] == ["failed-unreached"]
    assert result.output.count(f"fatal: [{HOST_C}]: UNREACHABLE!") == 1, result.output[-3000:]  # never retried
    assert result.journal(HOST_C) is None
    gap = result.journal(HOST_B)["started_epoch"] - result.journal(HOST_A)["finished_epoch"]
    assert gap >= WAVE_PAUSE_S, f"wave 2 started {gap:.1f}s after the canary finished, pause {WAVE_PAUSE_S}s"
    progress(f"fleet wave pause: canary finished -> wave 2 started: {gap:.1f}s (pause {WAVE_PAUSE_S}s)")
    now = fresh.probe()
    assert_upgraded(fresh, HOST_A, now)
    assert_upgraded(fresh, HOST_B, now)
    assert_untouched(fresh, HOST_C, now)


def suite_processes(host: SimulatedHost) -> list[int]:
    """The fleet's suite run (fleet.host_run and its pytest) still going in the host's namespace."""
    found = []
    for pid in host.processes():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"fleet.host_run" in command or (b"pytest" in command and b"suites/upgrade" in command):
            found.append(pid)
    return found


def test_host_lost_during_its_upgrade_is_reported_lost_not_unstarted(fresh: Bed) -> None:
    # Host C's SSH goes away (sshd and its sessions killed) once its suite has started: the run goes
    # on within the budget, and host C is reported failed-unreached "lost during upgrade suite
    # running, state unknown", not "not started". Its suite, cut off from the control node, goes on.
    host_c = fresh.host(HOST_C)
    journal = host_c.install_dir / ".openwatch-upgrade" / "journal.json"
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(upgrade, fresh, waves=["100%"], max_failed=1)
        deadline = time.monotonic() + SUITE_START_DEADLINE_S
        while not (journal.exists() and suite_processes(host_c)) and not running.done() and time.monotonic() < deadline:
            time.sleep(POLL_S)
        assert journal.exists() and not running.done(), f"{HOST_C}'s suite never started"
        host_c.stop_sshd()
        try:
            result = running.result(timeout=SUITE_START_DEADLINE_S)
        finally:
            host_c.start_sshd(openssh_root())
    deadline = time.monotonic() + SUITE_START_DEADLINE_S
    while suite_processes(host_c) and time.monotonic() < deadline:  # the cut-off suite finishes on its own
        time.sleep(POLL_S)
    assert not suite_processes(host_c), f"{HOST_C}'s suite still running"
    assert result.returncode != 0
    assert result.status() == {HOST_A: "upgraded", HOST_B: "upgraded", HOST_C: "failed-unreached"}
    row = next(row for row in result.summary["hosts"] if row["host"] == HOST_C)
    assert "lost during upgrade suite running" in row["reason"] and "state is unknown" in row["reason"], row
    now = fresh.probe()
    assert_upgraded(fresh, HOST_A, now)
    assert_upgraded(fresh, HOST_B, now)
    # What the cut-off suite did is unknown to the fleet; whatever it was, the host is whole.
    assert now[HOST_C]["version"] in (releases.OLDEST.version, releases.BY_TAG[TARGET].version)
    assert now[HOST_C]["health"] == {"code": 200, "status": "healthy"}
    for table, (rows, _) in fresh.baseline[HOST_C]["contents"].items():
        assert now[HOST_C]["contents"][table][0] == rows, f"{HOST_C}: {table} lost or gained rows"
