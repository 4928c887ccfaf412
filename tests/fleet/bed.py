"""The fleet test bed: simulated remote hosts on this machine (host.py), each reached by Ansible over
real SSH, each a network namespace with its own sshd, private Docker engine and sandbox OpenWatch.
The sandbox's images are built once, in the tests' own engine, and ``docker save | docker load``-ed
into the hosts' engines. What leaves a namespace goes through one firewall chain of the bed's own
(firewall.py).

Namespaces rather than privileged containers: each host then runs the machine's own dockerd and
Python (no Docker-in-Docker, no image with sshd to build), shares the file system (the origin, the
images' data-roots), and is gone with ``ip netns delete``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from runbook.shell import progress, run
from sandbox import images
from sandbox.engine import NAME_PATTERN, PrivateEngine
from tests.sandbox_state import all_up, forget_runs
from tests.fleet.firewall import BedFirewall
from tests.fleet.host import ROOT, SimulatedHost, openssh_root

BED_RANGE = ipaddress.IPv4Network("10.216.0.0/16")
PRIVSEP_DIR = Path("/run/sshd")
HOST_ENGINES_VARIABLE = "OPENWATCH_FLEET_ENGINES"
# Slots 28, 10 and 16: none of them a test worker engine's (tests, tests1 ... tests7), so ``-n`` up to 8 runs
# beside the fleet bed without addresses in common.
DEFAULT_HOST_ENGINES = ("fleetp", "fleetq", "fleetr")


def host_engines(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """The simulated hosts' engine names: ``OPENWATCH_FLEET_ENGINES`` (three, comma-separated), so a
    second fleet bed runs beside another one (CI's), or the default three. ``ValueError``, one line, when bad."""
    environ = os.environ if environ is None else environ
    value = environ.get(HOST_ENGINES_VARIABLE)
    if value is None:
        return DEFAULT_HOST_ENGINES
    names = tuple(name.strip() for name in value.split(","))
    valid = all(NAME_PATTERN.match(name) for name in names)
    if (len(names) != len(DEFAULT_HOST_ENGINES) or not valid  # each host's /30 follows from its engine's slot
            or len({PrivateEngine(name).slot for name in names}) != len(names)
            or environ.get("OPENWATCH_TEST_ENGINE", "tests") in names):
        raise ValueError(f"{HOST_ENGINES_VARIABLE}={value!r}: give three engine names of 1-8 lower-case letters or "
                         "digits, comma-separated, of different slots and none the test engine's (e.g. hosx,hosy,hosz)")
    return names


def copy_images(source: PrivateEngine, targets: list[PrivateEngine], scratch: Path) -> dict[str, list[str]]:
    """The sandbox's base and infrastructure images, from ``source`` to each target where missing or of
    other content: one ``docker save`` into ``scratch``, ``docker load``-ed into the targets in parallel
    (never a rebuild). Returns each target's images copied."""
    wanted = [images.BASE_IMAGE, *(image.tag for image in images.INFRA_IMAGES)]
    source_ids = {tag: image_id(source, tag) for tag in wanted}
    missing = {target.name: [tag for tag in wanted if image_id(target, tag) != source_ids[tag]] for target in targets}
    saved = [tag for tag in wanted if any(tag in tags for tags in missing.values())]
    if not saved:
        return missing
    archive = scratch / "images.tar"
    try:
        with archive.open("wb") as out:
            save = subprocess.run(["docker", "--host", source.host, "save", *saved], stdout=out,
                                  stderr=subprocess.PIPE, text=True, timeout=600)
        if save.returncode != 0:
            raise RuntimeError(f"docker save from {source.name} failed: {save.stderr.strip()}")
        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            list(pool.map(lambda target: load_images(target, archive),
                          [target for target in targets if missing[target.name]]))
    finally:
        archive.unlink(missing_ok=True)
    return missing


def load_images(target: PrivateEngine, archive: Path) -> None:
    load = subprocess.run(["docker", "--host", target.host, "load", "--quiet", "--input", str(archive)],
                          capture_output=True, text=True, timeout=600)
    if load.returncode != 0:
        raise RuntimeError(f"docker load into {target.name} failed: {load.stderr.strip()}")


def image_id(engine: PrivateEngine, tag: str) -> str | None:
    proc = run(["docker", "--host", engine.host, "image", "inspect", "--format", "{{.Id}}", tag], check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def tear_down_host(host: SimulatedHost) -> list[str]:
    """One host's sandbox, sshd, engine and namespace removed, each step tried whatever the others did;
    what failed."""
    steps = [host.stop_sshd, host.engine.stop, host.delete_network]
    if host.install_dir.exists() and host.engine.running_pid() is not None:
        steps.insert(0, lambda: run(host.inside([
            sys.executable, "-m", "sandbox", "down", "--dir", str(host.install_dir), "--engine", host.engine_name]),
            cwd=ROOT, env=host.environment()))
    failed = []
    for step in steps:
        try:
            step()
        except Exception as error:  # noqa: BLE001 - the other steps must still run
            failed.append(f"{host.name}: {error}")
    return failed


class Bed:
    """Hosts up (network, engine, sshd), their OpenWatch installed at the oldest release, and the
    inventory and SSH settings Ansible needs; :meth:`tear_down` removes all of it."""

    def __init__(self, home: Path, engine_names: tuple[str, ...], images_from: PrivateEngine) -> None:
        self.home = home
        self.images_from = images_from
        self.hosts = [SimulatedHost(name, home / name) for name in engine_names]
        self.firewall = BedFirewall(engine_names[0])
        self.control_key = home / "control" / "id_ed25519"
        self.known_hosts = home / "control" / "known_hosts"
        self.created_privsep_dir = False
        self.timings: dict[str, float] = {}
        self.baseline: dict[str, dict] = {}

    def host(self, name: str) -> SimulatedHost:
        return next(host for host in self.hosts if host.name == name)

    def close_ssh_connections(self) -> None:
        """End the SSH connections Ansible keeps open (ControlPersist) from earlier runs: a reinstalled host
        has none, and a kept one would carry the next run past the host key check (or break mid-task)."""
        for socket in sorted((self.home / "control" / "cp").glob("*")):
            subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={socket}", "fleet-host"],
                           capture_output=True, timeout=10, check=False)
            socket.unlink(missing_ok=True)

    def up(self) -> None:
        started = time.monotonic()
        openssh = openssh_root()
        self.control_key.parent.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet-control", "-f", str(self.control_key)])
        if not PRIVSEP_DIR.exists():
            PRIVSEP_DIR.mkdir(mode=0o755)
            self.created_privsep_dir = True
        self.firewall.open([host.network for host in self.hosts])
        public = (self.control_key.with_suffix(".pub")).read_text()
        for host in self.hosts:
            host.create_network()
            host.engine.start()
            left = host.engine.remove_leftovers()  # an interrupted earlier run's containers, kept in the data-root
            if left:
                progress(f"fleet bed: {host.name}: removed what an interrupted run left: {', '.join(left)}")
            host.write_sshd_config(public, openssh / "usr" / "lib" / "openssh" / "sftp-server")
            host.start_sshd(openssh)
        self.known_hosts.write_text("".join(host.host_key_line() for host in self.hosts))
        self.timings["network_engines_sshd_s"] = time.monotonic() - started
        copied = copy_images(self.images_from, [host.engine for host in self.hosts], self.home)
        for name, tags in copied.items():
            progress(f"fleet bed: {name}: images loaded: {', '.join(tags) or 'already there'}")
        self.timings["images_s"] = time.monotonic() - started - self.timings["network_engines_sshd_s"]

    def install(self, release: str, prepare_for: str) -> None:
        """Each host's sandbox OpenWatch, in parallel, each inside its namespace and engine."""
        started = time.monotonic()
        python = sys.executable
        procs = []
        for host in self.hosts:
            host.home.mkdir(parents=True, exist_ok=True)
            log = (host.home / "install.log").open("ab")
            command = host.inside([python, "-m", "sandbox", "up", "--replace", "--release", release,
                                   "--dir", str(host.install_dir), "--engine", host.engine_name])
            procs.append((host, subprocess.Popen(command, cwd=ROOT, env=host.environment(), stdout=log, stderr=log,
                                                 stdin=subprocess.DEVNULL)))
        for host, proc in procs:
            if proc.wait(timeout=1800) != 0:
                tail = (host.home / "install.log").read_text(errors="replace").splitlines()[-8:]
                raise RuntimeError(f"{host.name}: sandbox up failed: {' | '.join(tail)}")
            run([python, "-m", "sandbox", "prepare", "--dir", str(host.install_dir), "--target", prepare_for], cwd=ROOT)
            self.hostctl(host, "save", str(host.install_dir), str(host.home / "baseline.dump"))
        self.timings["install_s"] = time.monotonic() - started

    def hostctl(self, host: SimulatedHost, *args: str) -> dict:
        proc = run(host.inside([sys.executable, "-m", "tests.fleet.hostctl", *args]), cwd=ROOT,
                   env=host.environment(), timeout=900)
        return json.loads(proc.stdout)

    def probe(self, settled: bool = False) -> dict[str, dict]:
        """Every host's ``hostctl probe`` (tests/fleet/hostctl.py), in parallel."""
        command = "settled-probe" if settled else "probe"
        with ThreadPoolExecutor(max_workers=len(self.hosts)) as pool:
            found = pool.map(lambda host: self.hostctl(host, command, str(host.install_dir)), self.hosts)
            return dict(zip([host.name for host in self.hosts], found))

    def restore(self) -> tuple[dict[str, dict], list[str], list[str]]:
        """Every host back at its baseline, decided per host from facts: one whose probe (once its
        containers' health checks ran) equals its baseline, every container running and healthy, only
        loses the journal and lock a run left; every other one gets the full :meth:`reset`. Returns each
        host's probe afterwards, the hosts reset and the hosts only cleaned."""
        found = self.probe(settled=True)
        cleaned = [host.name for host in self.hosts
                   if found[host.name] == self.baseline[host.name] and all_up(found[host.name])]
        for name in cleaned:
            forget_runs(self.host(name).install_dir)
        reset = [host.name for host in self.hosts if host.name not in cleaned]
        if reset:
            found.update(self.reset(tuple(reset)))
        return found, reset, cleaned

    def reset(self, names: tuple[str, ...] | None = None) -> dict[str, dict]:
        """Every host (or those named) back at the oldest release with its baseline data (in parallel)."""
        chosen = [host for host in self.hosts if names is None or host.name in names]
        procs = {host.name: subprocess.Popen(
            host.inside([sys.executable, "-m", "tests.fleet.hostctl", "reset", str(host.install_dir),
                         str(host.home / "baseline.dump")]),
            cwd=ROOT, env=host.environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for host in chosen}
        found = {}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=900)
            if proc.returncode != 0:
                raise RuntimeError(f"{name}: reset failed: {err.strip()[-500:]}")
            found[name] = json.loads(out)
        return found

    def inventory(self, host_vars: dict[str, dict[str, str]] | None = None) -> Path:
        """An INI inventory of every host; ``host_vars`` adds variables to some (a fault target)."""
        path = self.home / "control" / "inventory.ini"
        ssh_args = (f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes "
                    f"-o ConnectTimeout=5 -o ControlMaster=no")
        path.write_text("\n".join([
            "[openwatch]", *(host.inventory_line(self.control_key, (host_vars or {}).get(host.name, {}))
                             for host in self.hosts), "",
            "[openwatch:vars]", "ansible_user=root", "ansible_python_interpreter=/usr/bin/python3",
            f"ansible_ssh_common_args='{ssh_args}'", "",
        ]))
        return path

    def tear_down(self) -> list[str]:
        """Remove everything, the hosts in parallel, each step tried whatever the others did; return
        what failed or is still there (the fixture asserts it is nothing)."""
        with ThreadPoolExecutor(max_workers=len(self.hosts)) as pool:
            failed = [problem for problems in pool.map(tear_down_host, self.hosts) for problem in problems]
        self.firewall.close()
        if self.created_privsep_dir and PRIVSEP_DIR.exists() and not self.other_beds():
            PRIVSEP_DIR.rmdir()
        return failed + self.leftovers()

    def leftovers(self) -> list[str]:
        left = []
        namespaces = run(["ip", "netns", "list"]).stdout
        for host in self.hosts:
            if host.netns in namespaces:
                left.append(f"network namespace {host.netns} (processes {host.processes()})")
            if run(["ip", "link", "show", host.veth_outside], check=False).returncode == 0:
                left.append(f"veth {host.veth_outside}")
            if host.engine.running_pid() is not None:
                left.append(f"dockerd of {host.name}")
            if host.sshd is not None:
                left.append(f"sshd of {host.name}")
        if self.firewall.present():
            left.append(f"iptables chain {self.firewall.chain}")
        if self.created_privsep_dir and PRIVSEP_DIR.exists() and not self.other_beds():
            left.append(str(PRIVSEP_DIR))
        return left

    def other_beds(self) -> list[str]:
        """Another bed's host namespaces: its sshds still need the privilege-separation folder."""
        mine = {host.netns for host in self.hosts}
        return [line.split()[0] for line in run(["ip", "netns", "list"]).stdout.splitlines()
                if line.startswith("owf-") and line.split()[0] not in mine]
