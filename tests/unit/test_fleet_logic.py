"""The fleet layer's control-node logic (fleet/): results, the fleet-wide budget, the roll-back-all
order, the summary and the package; and the playbooks parse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fleet import host_run, package, results, summary

ROOT = Path(__file__).resolve().parents[2]


def bundle(host_dir: Path, *, outcome: str, stamp: str, failed_stage: dict | None = None) -> None:
    host_dir.mkdir(parents=True, exist_ok=True)
    (host_dir / f"CHG-1_upgrade_{stamp}.html").write_text("<html></html>")
    (host_dir / f"CHG-1_upgrade_{stamp}.json").write_text(json.dumps({
        "schema": "openwatch-upgrade-suite/report", "outcome": outcome, "from_version": "0.1.0", "target": "v0.2.0",
        "change": {"git_ref": {"before": "v0.1.0", "after": "v0.2.0"}}, "downtime": {"downtime_total_s": 4.5},
        "rollback": {"tier": "quick"} if outcome.startswith("ROLLED") else None, "failed_stage": failed_stage,
        "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:01:00Z", "tests": [],
        "artifacts": {"html": f"/far/away/CHG-1_upgrade_{stamp}.html"}}))


def test_record_reads_the_fetched_bundle(tmp_path: Path) -> None:
    bundle(tmp_path / "a", outcome="UPGRADED", stamp="20260101T000000")
    bundle(tmp_path / "b", outcome="ROLLED BACK (quick)", stamp="20260101T000000",
           failed_stage={"name": "start", "reason": "sustained failure"})
    a = results.record(tmp_path, "a", phase="upgrade", invocation="i1", exit_status=0)
    b = results.record(tmp_path, "b", phase="upgrade", invocation="i1", exit_status=1)
    c = results.record(tmp_path, "c", phase="upgrade", invocation="i1", exit_status=4)
    assert (a["status"], a["downtime_s"], a["report"], a["from_ref"]) == ("upgraded", 4.5, "a/CHG-1_upgrade_20260101T000000.html", "v0.1.0")
    assert b["status"] == "failed" and b["rollback_tier"] == "quick" and "stage start failed" in b["reason"]
    assert c["status"] == "failed" and "no report bundle" in c["reason"]
    assert results.read_result(tmp_path, "a") == a


def test_unreached_reason_is_kept_and_masked(tmp_path: Path) -> None:
    found = results.record(tmp_path, "a", phase="upgrade", invocation="i1",
                           unreached="ssh: connect to postgresql://u:hunter22@db refused")
    assert found["status"] == "failed-unreached"
    assert "hunter22" not in json.dumps(found) and "refused" in found["reason"]


def test_audit_result_names_the_failed_checks(tmp_path: Path) -> None:
    host_dir = tmp_path / "a"
    host_dir.mkdir()
    (host_dir / "no-ticket_postflight_20260101T000000.json").write_text(json.dumps({
        "schema": "openwatch-upgrade-suite/report", "outcome": "FAILED", "tests": [
            {"nodeid": "suites/postflight/test_postflight.py::test_every_container_running_and_healthy",
             "outcome": "failed", "message": "openwatch-worker is exited"},
            {"nodeid": "suites/postflight/test_postflight.py::test_health", "outcome": "passed"}]}))
    found = results.record(tmp_path, "a", phase="audit", invocation="i1", exit_status=1)
    assert found["status"] == "unhealthy"
    assert found["reason"] == "test_every_container_running_and_healthy: openwatch-worker is exited"


def finish(run_dir: Path, host: str, outcome: str, invocation: str) -> None:
    bundle(run_dir / host, outcome=outcome, stamp=f"2026010{len(list(run_dir.iterdir()))}T000000")
    results.record(run_dir, host, phase="upgrade", invocation=invocation, exit_status=0 if outcome == "UPGRADED" else 1)


def test_a_failed_canary_stops_the_run(tmp_path: Path) -> None:
    finish(tmp_path, "a", "ROLLED BACK (quick)", "i1")
    stop = results.budget_stop(tmp_path, ["a", "b", "c"], "i1", max_failed=5, canary=1)
    assert stop is not None and "canary a failed" in stop.reason
    assert results.budget_stop(tmp_path, ["a", "b", "c"], "i1", max_failed=5, canary=0) is None  # one wave: no canary


def test_budget_is_fleet_wide_and_per_attempt(tmp_path: Path) -> None:
    hosts = ["a", "b", "c", "d"]
    finish(tmp_path, "a", "UPGRADED", "i1")
    finish(tmp_path, "b", "ROLLED BACK (quick)", "i1")  # batch 2
    assert results.budget_stop(tmp_path, hosts, "i1", max_failed=1, canary=1) is None
    finish(tmp_path, "c", "ROLLED BACK (quick)", "i1")  # batch 3: two failures over two batches
    stop = results.budget_stop(tmp_path, hosts, "i1", max_failed=1, canary=1)
    assert stop is not None and "2 hosts failed (b, c)" in stop.reason
    assert results.budget_stop(tmp_path, hosts, "i2", max_failed=1, canary=1) is None  # a resume starts afresh


def test_rollback_order_is_last_upgraded_first_and_resume_skips_done_hosts(tmp_path: Path) -> None:
    for host in ("a", "b", "c"):
        finish(tmp_path, host, "UPGRADED", "i1")
    finish(tmp_path, "d", "UPGRADED", "i0")  # an earlier attempt's: not this attempt's to undo
    assert [entry["host"] for entry in results.rollback_order(tmp_path, ["a", "b", "c", "d"], "i1")] == ["c", "b", "a"]
    assert results.done_earlier(tmp_path, "d") and not results.done_earlier(tmp_path, "e")


def test_summary_has_one_testcase_per_host_and_no_secret(tmp_path: Path) -> None:
    finish(tmp_path, "a", "UPGRADED", "i1")
    finish(tmp_path, "b", "ROLLED BACK (quick)", "i1")
    results.record(tmp_path, "c", phase="upgrade", invocation="i1", unreached="Bearer abc.def.ghi refused")
    results.write_json(tmp_path / results.STOP_FILE, results.Stop("failure budget exceeded").to_json())
    built = summary.build(tmp_path, ["a", "b", "c", "d"], phase="upgrade", run_id="R1")
    json_path, junit_path, html_path = summary.write(tmp_path, built)
    cases = {case.get("name"): case for case in ET.parse(junit_path).getroot().iter("testcase")}
    assert list(cases) == ["a", "b", "c", "d"]
    assert cases["a"].find("failure") is None
    assert [cases[name].find("failure").get("message").split(":")[0] for name in "bcd"] == \
        ["failed", "failed-unreached", "not-started"]
    page = html_path.read_text()
    assert 'href="a/CHG-1_upgrade_' in page and "failure budget exceeded" in page
    for path in (json_path, junit_path, html_path):
        assert "abc.def.ghi" not in path.read_text()
    assert json.loads(json_path.read_text())["failed_hosts"] == ["b", "c", "d"]


def test_a_host_lost_after_it_started_is_state_unknown_not_unstarted(tmp_path: Path) -> None:
    hosts = ["a", "b", "c"]
    finish(tmp_path, "a", "UPGRADED", "i0")  # an earlier attempt's, and its result
    results.mark_started(tmp_path, ["b", "c"], phase="upgrade", invocation="i1")
    finish(tmp_path, "b", "UPGRADED", "i1")
    # c left the play with no result; the next budget step (or the summary) settles it.
    assert results.settle_lost(tmp_path, hosts, "i1") == ["c"]
    lost = results.read_result(tmp_path, "c")
    assert lost["status"] == "failed-state-unknown" and "state is unknown" in lost["reason"]
    assert [row["status"] for row in summary.build(tmp_path, hosts, phase="upgrade", run_id="R")["hosts"]] == \
        ["upgraded", "upgraded", "failed-state-unknown"]
    stop = results.budget_stop(tmp_path, hosts, "i1", max_failed=0, canary=0)
    assert stop is not None and "(c)" in stop.reason  # it counts against the budget
    assert results.settle_lost(tmp_path, hosts, "i1") == []  # once
    assert results.read_result(tmp_path, "a")["status"] == "upgraded"  # never started in i1: left as it was


def test_a_host_lost_during_its_suite_names_the_stage(tmp_path: Path) -> None:
    found = results.record(tmp_path, "a", phase="upgrade", invocation="i1", unreached="Shared connection closed",
                           stage="upgrade suite running")
    assert found["status"] == "failed-unreached"
    assert found["reason"].startswith("lost during upgrade suite running (after it started): Shared connection closed")


def test_host_run_bundle_unpacks_into_the_host_folder(tmp_path: Path) -> None:
    reports, journal = tmp_path / "host" / "reports", tmp_path / "host" / "journal.json"
    bundle(reports, outcome="UPGRADED", stamp="20260101T000000")
    journal.write_text(json.dumps({"outcome": "UPGRADED"}))
    host_run.pack(tmp_path / "bundle.tar.gz", reports, journal, {"exit_status": 0, "suite_s": 21.5})
    found = results.record(tmp_path / "run", "a", phase="upgrade", invocation="i1", exit_status=0,
                           bundle_tarball=tmp_path / "bundle.tar.gz")
    assert found["status"] == "upgraded" and found["report"] == "a/CHG-1_upgrade_20260101T000000.html"
    assert json.loads((tmp_path / "run" / "a" / "journal.json").read_text()) == {"outcome": "UPGRADED"}
    assert json.loads((tmp_path / "run" / "a" / "host_run.json").read_text())["suite_s"] == 21.5


def test_package_archive_holds_the_suites_and_no_ignored_file(tmp_path: Path) -> None:
    archive = package.build_archive(tmp_path)
    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames()}
    assert {"pytest.ini", "conftest.py", "requirements.txt", "suites/upgrade/conftest.py", "plugins/bundle.py"} <= names
    assert not any(name.startswith((".venv/", ".sandbox/", ".fleet-cache/")) for name in names)
    assert package.build_archive(tmp_path) == archive  # same content: same archive, not rebuilt


@pytest.mark.parametrize("playbook", ["fleet/upgrade.yml", "fleet/audit.yml"])
def test_playbooks_parse(playbook: str) -> None:
    ansible = Path(sys.executable).parent / "ansible-playbook"
    if not ansible.exists():
        pytest.skip("ansible-core is not installed in this venv (make venv installs fleet/requirements.txt)")
    proc = subprocess.run([str(ansible), "--syntax-check", "-i", "localhost,", playbook], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bed_addresses_stay_in_the_bed_range_and_clear_of_engines() -> None:
    """The simulated hosts' veth /30s are inside 10.216/16, never an engine's network or the host's."""

    from sandbox.engine import PrivateEngine
    from tests.fleet.bed import BED_RANGE, Bed
    from tests.fleet.host import SimulatedHost
    from tests.fleet.firewall import firewall_rules

    hosts = [SimulatedHost(name, Path("/nonexistent") / name) for name in ("fleeta", "fleetb", "fleetc", "fleetd")]
    networks = [host.network for host in hosts]
    assert all(network.subnet_of(BED_RANGE) for network in networks)
    assert len(set(networks)) == len(networks)
    for host in hosts:
        assert all(not own.overlaps(BED_RANGE) for own in host.engine.networks)
        assert host.engine.netns == host.netns and len(host.veth_outside) <= 15
        assert host.inside(["true"])[:2] == ["nsenter", f"--net=/run/netns/{host.netns}"]
    assert PrivateEngine("fleeta", netns="owf-fleeta")._net(["iptables", "-S"])[0] == "nsenter"
    assert PrivateEngine("fleeta")._net(["iptables", "-S"]) == ["iptables", "-S"]
    rules = [" ".join(rule) for _, rule in firewall_rules(networks)]
    for network in networks:  # private ranges refused before anything is accepted
        refused = rules.index(f"-s {network} -d 10.0.0.0/8 -j REJECT")
        assert refused < rules.index(f"-s {network} -j ACCEPT")
    # Two beds side by side (CI's default hosts, a helper's): neither shares an address or a chain.
    other = Bed(Path("/nonexistent"), ("hosx", "hosy", "hosz"), images_from=PrivateEngine("fleetv"))
    assert not {host.network for host in other.hosts} & set(networks)
    assert other.firewall.chain == "OPENWATCH-FLEET-HOSX" and len(other.firewall.chain) <= 28
    assert Bed(Path("/nonexistent"), ("fleeta", "fleetb", "fleetc"), images_from=PrivateEngine("fleetv")).firewall.chain \
        != other.firewall.chain


def test_bed_host_engines_come_from_the_environment_or_default() -> None:
    from tests.fleet.bed import DEFAULT_HOST_ENGINES, host_engines

    assert host_engines({}) == DEFAULT_HOST_ENGINES == ("fleetp", "fleetq", "fleetr")
    assert host_engines({"OPENWATCH_FLEET_ENGINES": "hosx, hosy,hosz"}) == ("hosx", "hosy", "hosz")
    # aa and ax share a slot (crc32 % 32), so their hosts would share a /30.
    for bad in ("hosx,hosy", "hosx,hosx,hosy", "hosx,hosy,Hosz", "hosx,hosy,", "hosx,hosy,toolongname", "aa,ax,hosz"):
        with pytest.raises(ValueError, match="OPENWATCH_FLEET_ENGINES=.*give three engine names") as error:
            host_engines({"OPENWATCH_FLEET_ENGINES": bad})
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="none the test engine's"):
        host_engines({"OPENWATCH_FLEET_ENGINES": "hosx,hosy,hosz", "OPENWATCH_TEST_ENGINE": "hosy"})


def test_a_host_is_not_started_once_the_budget_is_exceeded_inside_its_wave(tmp_path: Path) -> None:
    hosts = ["a", "b", "c", "d"]
    results.mark_started(tmp_path, hosts, phase="upgrade", invocation="i1")  # one wave of four, -f 2
    assert results.suite_start(tmp_path, "a", hosts, "i1", max_failed=0, canary=0) is None
    assert results.suite_start(tmp_path, "b", hosts, "i1", max_failed=0, canary=0) is None
    results.suite_exited(tmp_path, "b", "i1", exit_status=0)  # passed: still in progress until recorded
    assert results.read_result(tmp_path, "b")["status"] == "in-progress"
    results.suite_exited(tmp_path, "a", "i1", exit_status=1)  # failed: counts at once, bundle or not
    assert results.read_result(tmp_path, "a")["status"] == "failed"
    stop = results.suite_start(tmp_path, "c", hosts, "i1", max_failed=0, canary=0)
    assert stop is not None and "failure budget exceeded: 1 hosts failed (a)" in stop.reason
    not_started = results.read_result(tmp_path, "c")
    assert not_started["status"] == "not-started" and not_started["reason"] == f"not started: {stop.reason}"
    assert json.loads((tmp_path / results.STOP_FILE).read_text())["reason"] == stop.reason
    assert results.suite_start(tmp_path, "d", hosts, "i1", max_failed=0, canary=0) is not None
    # b, already running, finishes and is recorded; not-started hosts are no failures of their own,
    # are never settled as lost, are not rolled back, and a resume tries them again.
    finish(tmp_path, "b", "UPGRADED", "i1")
    assert results.settle_lost(tmp_path, hosts, "i1") == []
    assert "1 hosts failed (a)" in results.budget_stop(tmp_path, hosts, "i1", max_failed=0, canary=0).reason
    assert [entry["host"] for entry in results.rollback_order(tmp_path, hosts, "i1")] == ["b"]
    assert not results.done_earlier(tmp_path, "c")
    rows = {row["host"]: row for row in summary.build(tmp_path, hosts, phase="upgrade", run_id="R")["hosts"]}
    assert [rows[host]["status"] for host in hosts] == ["failed", "upgraded", "not-started", "not-started"]
    assert rows["d"]["reason"].startswith("not started: failure budget exceeded")
    # Within the budget every host starts; a host lost while its suite ran counts too.
    assert results.suite_start(tmp_path, "c", hosts, "i2", max_failed=2, canary=0) is None
    results.mark_started(tmp_path, ["c"], phase="upgrade", invocation="i2")
    lost = results.suite_exited(tmp_path, "c", "i2", exit_status=None, unreached="closed: postgresql://u:hunter22@db")
    assert lost["status"] == "failed-unreached" and "hunter22" not in lost["reason"]


# A stand-in for fleet.host_run: marks its host started, waits (bounded) until FORKS hosts have, prints the exit status.
SUITE = """
import json, sys, time
from pathlib import Path
started, host, forks, exit_status = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
started.mkdir(exist_ok=True)
(started / host).touch()
deadline = time.monotonic() + 60
while len(list(started.iterdir())) < forks and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps({"exit_status": exit_status if len(list(started.iterdir())) >= forks else 99}))
"""


@pytest.mark.parametrize(("forks", "max_failed", "expected"), [
    (1, 0, {"a": "failed", "b": "not-started", "c": "not-started"}),  # a wave of three, one at a time
    (1, 1, {"a": "failed", "b": "in-progress", "c": "in-progress"}),  # within the budget: all start
    (3, 0, {"a": "failed", "b": "in-progress", "c": "in-progress"}),  # started together: running hosts finish
])
def test_fleet_suite_action_checks_the_budget_as_each_host_starts(tmp_path: Path, forks: int, max_failed: int,
                                                                  expected: dict[str, str]) -> None:
    """The real action plugin in a real ansible-playbook run (local connection): one wave of three, the
    first host's suite fails (exit status 1, as fleet.host_run prints it). With three forks each
    host's suite waits until all three have started, so a's failure comes after b and c started."""
    ansible = Path(sys.executable).parent / "ansible-playbook"
    if not ansible.exists():
        pytest.skip("ansible-core is not installed in this venv (make venv installs fleet/requirements.txt)")
    hosts = ["a", "b", "c"]
    results.mark_started(tmp_path, hosts, phase="upgrade", invocation="i1")
    (tmp_path / "inventory.ini").write_text("\n".join(
        f"{host} ansible_connection=local ansible_python_interpreter={sys.executable} suite_exit={int(host == 'a')}"
        for host in hosts) + "\n")
    (tmp_path / "play.yml").write_text(json.dumps([{
        "hosts": "all", "gather_facts": False, "serial": "100%", "tasks": [{
            "name": "Run the suite", "register": "fleet_suite_run", "fleet_suite": {
                "argv": [sys.executable, "-c", SUITE, str(tmp_path / "started"), "{{ inventory_hostname }}", str(forks),
                         "{{ suite_exit }}"],
                "budget": {"root": str(ROOT), "run_dir": str(tmp_path), "invocation": "i1", "hosts": ",".join(hosts),
                           "max_failed": max_failed, "canary": 0}}}]}]))
    proc = subprocess.run([str(ansible), "-i", str(tmp_path / "inventory.ini"), "-f", str(forks), str(tmp_path / "play.yml")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ANSIBLE_ACTION_PLUGINS": str(ROOT / "fleet" / "action_plugins"),
                               "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_NOCOLOR": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert {host: results.read_result(tmp_path, host)["status"] for host in hosts} == expected, proc.stdout[-3000:]
    assert (tmp_path / results.STOP_FILE).exists() == ("not-started" in expected.values())


def test_fleet_suite_action_without_a_budget_is_the_command(tmp_path: Path) -> None:
    """The audit and the roll-back-all run their suites through the same step, with no budget."""
    ansible = Path(sys.executable).parent / "ansible-playbook"
    if not ansible.exists():
        pytest.skip("ansible-core is not installed in this venv (make venv installs fleet/requirements.txt)")
    (tmp_path / "play.yml").write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Run the suite", "register": "ran", "fleet_suite": {"argv": ["echo", '{"exit_status": 3}'],
                                                                   "chdir": str(tmp_path)}},
        {"ansible.builtin.copy": {"content": "{{ ran.stdout }}", "dest": str(tmp_path / "out.json")}}]}]))
    proc = subprocess.run([str(ansible), "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
                           str(tmp_path / "play.yml")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ANSIBLE_ACTION_PLUGINS": str(ROOT / "fleet" / "action_plugins"),
                               "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_NOCOLOR": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert json.loads((tmp_path / "out.json").read_text()) == {"exit_status": 3}
    assert not list(tmp_path.glob("*/result.json"))
