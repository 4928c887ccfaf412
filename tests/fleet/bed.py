"""The fleet test bed: simulated remote hosts on this machine, each reached by Ansible over real SSH.

A host is a network namespace the bed creates (``owf-<engine>``), joined to this machine by a veth
pair with addresses in 10.216.<n>.0/30, running its own sshd (host key and authorized key made for
the run, root login by key only) and its own private Docker engine (``PrivateEngine`` in that
namespace) with a sandbox OpenWatch publishing on the namespace's 127.0.0.1. The sandbox's images
are built once, in the tests' own engine, and ``docker save | docker load``-ed into the hosts'
engines. What leaves a namespace is masqueraded by one chain of the bed's own (image builds fetch
Debian packages), refused towards private ranges, as the engines' own chains do.

Namespaces rather than privileged containers: each host then runs the machine's own dockerd and
Python (no Docker-in-Docker, no image with sshd to build), shares the file system (the origin, the
images' data-roots), and is gone with ``ip netns delete``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from runbook.shell import progress, run
from sandbox import images
from sandbox.engine import FENCED_RANGES, NAME_PATTERN, PrivateEngine, host_resolvers

ROOT = Path(__file__).resolve().parents[2]
BED_RANGE = ipaddress.IPv4Network("10.216.0.0/16")
CHAIN = "OPENWATCH-FLEET-BED"
OPENSSH_CACHE = Path("/var/cache/openwatch-fleet")
OPENSSH_PACKAGES = ("openssh-server", "openssh-sftp-server", "libwrap0")
PRIVSEP_DIR = Path("/run/sshd")
SSH_DEADLINE_S = 20.0
HOST_ENGINES_VARIABLE = "OPENWATCH_FLEET_ENGINES"
DEFAULT_HOST_ENGINES = ("fleeta", "fleetb", "fleetc")


def host_engines(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """The simulated hosts' engine names: ``OPENWATCH_FLEET_ENGINES`` (three, comma-separated), so a
    second fleet bed runs beside another one (CI's), or the default three. ``ValueError``, one line, when bad."""
    environ = os.environ if environ is None else environ
    value = environ.get(HOST_ENGINES_VARIABLE)
    if value is None:
        return DEFAULT_HOST_ENGINES
    names = tuple(name.strip() for name in value.split(","))
    if (len(names) != len(DEFAULT_HOST_ENGINES) or len(set(names)) != len(names)
            or not all(NAME_PATTERN.match(name) for name in names)
            or environ.get("OPENWATCH_TEST_ENGINE", "tests") in names):
        raise ValueError(f"{HOST_ENGINES_VARIABLE}={value!r}: give three different engine names of 1-8 lower-case "
                         "letters or digits, comma-separated, none the test engine's (e.g. hosx,hosy,hosz)")
    return names


def openssh_root() -> Path:
    """sshd unpacked from Debian's packages (``apt-get download``, ``dpkg -x``), never installed:
    installing openssh-server would upgrade the machine's openssh-client and start a service."""
    root = OPENSSH_CACHE / "root"
    if (root / "usr" / "sbin" / "sshd").exists():
        return root
    debs = OPENSSH_CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    run(["apt-get", "download", *OPENSSH_PACKAGES], cwd=debs, timeout=300)
    partial = OPENSSH_CACHE / "root.partial"
    shutil.rmtree(partial, ignore_errors=True)
    for deb in sorted(debs.glob("*.deb")):
        run(["dpkg", "-x", str(deb), str(partial)])
    partial.rename(root)
    return root


@dataclass
class SimulatedHost:
    engine_name: str
    index: int  # 1-based: its /30 is 10.216.<index>.0/30
    home: Path  # the host's own folder: ssh/, install/, fleet/
    sshd: subprocess.Popen | None = None

    @property
    def name(self) -> str:
        return self.engine_name

    @property
    def netns(self) -> str:
        return f"owf-{self.engine_name}"

    @property
    def veth_outside(self) -> str:
        return f"owfr-{self.engine_name}"

    @property
    def veth_inside(self) -> str:
        return f"owfh-{self.engine_name}"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"10.216.{self.index}.0/30")

    @property
    def gateway(self) -> str:
        return str(self.network[1])

    @property
    def address(self) -> str:
        return str(self.network[2])

    @property
    def engine(self) -> PrivateEngine:
        return PrivateEngine(self.engine_name, netns=self.netns)

    @property
    def install_dir(self) -> Path:
        return self.home / "install"

    @property
    def fleet_home(self) -> Path:
        return self.home / "fleet"

    @property
    def ssh_dir(self) -> Path:
        return self.home / "ssh"

    def inside(self, command: list[str]) -> list[str]:
        """In the host's network namespace, with the machine's mounts (see PrivateEngine._net)."""
        return ["nsenter", f"--net=/run/netns/{self.netns}", *command]

    def environment(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.engine.host}

    def create_network(self) -> None:
        run(["ip", "netns", "add", self.netns])
        run(["ip", "link", "add", self.veth_outside, "type", "veth", "peer", "name", self.veth_inside])
        run(["ip", "link", "set", self.veth_inside, "netns", self.netns])
        run(["ip", "address", "add", f"{self.gateway}/30", "dev", self.veth_outside])
        run(["ip", "link", "set", self.veth_outside, "up"])
        run(self.inside(["ip", "address", "add", f"{self.address}/30", "dev", self.veth_inside]))
        run(self.inside(["ip", "link", "set", self.veth_inside, "up"]))
        run(self.inside(["ip", "link", "set", "lo", "up"]))
        run(self.inside(["ip", "route", "add", "default", "via", self.gateway]))

    def processes(self) -> list[int]:
        proc = run(["ip", "netns", "pids", self.netns], check=False)
        return [int(pid) for pid in proc.stdout.split()] if proc.returncode == 0 else []

    def end_processes(self) -> None:
        """What still runs in the namespace once sshd and dockerd are stopped: SSH sessions Ansible's
        ControlPersist keeps open (their server side would outlive the namespace)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.processes():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 10
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.1)

    def delete_network(self) -> None:
        if run(["ip", "netns", "pids", self.netns], check=False).returncode == 0:
            self.end_processes()
            run(["ip", "netns", "delete", self.netns])
        # Deleting the namespace deletes the pair, asynchronously: this one may be gone by now.
        run(["ip", "link", "delete", self.veth_outside], check=False)

    def write_sshd_config(self, control_public_key: str, sftp_server: Path) -> Path:
        self.ssh_dir.mkdir(parents=True, exist_ok=True)
        key = self.ssh_dir / "ssh_host_ed25519_key"
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{self.name}", "-f", str(key)])
        (self.ssh_dir / "authorized_keys").write_text(control_public_key)
        config = self.ssh_dir / "sshd_config"
        config.write_text("\n".join([
            f"ListenAddress {self.address}", "Port 22", f"HostKey {key}", f"PidFile {self.ssh_dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.ssh_dir / 'authorized_keys'}", "PermitRootLogin prohibit-password",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
            # The bed's folders are pytest's temporary ones; the keys in them are the run's own.
            "StrictModes no", f"Subsystem sftp {sftp_server}", "PrintMotd no", "UseDNS no", "",
        ]))
        return config

    def change_host_key(self, openssh: Path) -> None:
        """sshd back with a new host key (the control node's known_hosts keeps the old one), as after a
        reinstall or a man in the middle; :meth:`restore_host_key` puts the old one back."""
        self.stop_sshd()
        key = self.ssh_dir / "ssh_host_ed25519_key"
        for path in (key, key.with_suffix(".pub")):
            path.rename(path.with_name(f"{path.name}.orig"))
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{self.name}-new", "-f", str(key)])
        self.start_sshd(openssh)

    def restore_host_key(self, openssh: Path) -> None:
        self.stop_sshd()
        key = self.ssh_dir / "ssh_host_ed25519_key"
        for path in (key, key.with_suffix(".pub")):
            path.with_name(f"{path.name}.orig").replace(path)
        self.start_sshd(openssh)

    def host_key_line(self) -> str:
        public = (self.ssh_dir / "ssh_host_ed25519_key.pub").read_text().split()
        return f"{self.address} {public[0]} {public[1]}\n"

    def start_sshd(self, openssh: Path) -> None:
        sshd = openssh / "usr" / "sbin" / "sshd"
        command = self.inside(["unshare", "--mount", "--propagation", "private", sys.executable, "-m",
                               "tests.fleet.sshd_launch", str(self.ssh_dir), str(sshd), "-D", "-e",
                               "-f", str(self.ssh_dir / "sshd_config")])
        env = {**os.environ, "LD_LIBRARY_PATH": str(openssh / "usr" / "lib" / "x86_64-linux-gnu")}
        log = (self.ssh_dir / "sshd.log").open("ab")
        self.sshd = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + SSH_DEADLINE_S
        while time.monotonic() < deadline:
            if self.sshd.poll() is not None:
                raise RuntimeError(f"{self.name}: sshd exited: {(self.ssh_dir / 'sshd.log').read_text()[-400:]}")
            if run(self.inside(["ss", "-Hltn", f"src {self.address}:22"]), check=False).stdout.strip():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: sshd did not listen on {self.address}:22 within {SSH_DEADLINE_S:.0f}s")

    def stop_sshd(self) -> None:
        if self.sshd is not None and self.sshd.poll() is None:
            self.sshd.terminate()
            try:
                self.sshd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.sshd.kill()
                self.sshd.wait(timeout=10)
        self.sshd = None
        # Sessions Ansible's ControlPersist keeps open outlive the listener: a host made unreachable must
        # refuse the next command too, not serve it through an earlier scenario's master connection.
        for pid in self.processes():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "sshd":
                    os.kill(pid, signal.SIGKILL)

    def inventory_line(self, control_key: Path, extra: dict[str, str]) -> str:
        more = "".join(f" {key}={value}" for key, value in extra.items())
        return (f"{self.name} ansible_host={self.address} install_dir={self.install_dir} fleet_home={self.fleet_home} "
                f"ansible_remote_tmp={self.fleet_home / '.ansible-tmp'} ticket_suffix=-{self.name} "
                f"ansible_ssh_private_key_file={control_key} "
                f"suite_environment='{json.dumps({'DOCKER_HOST': self.engine.host})}'{more}")


def firewall_rules(networks: list[ipaddress.IPv4Network]) -> list[tuple[str, list[str]]]:
    """(table, rule) of the bed's chain: what leaves a host namespace may reach the resolvers and
    public addresses (image builds), never another private range; replies come back."""
    rules: list[tuple[str, list[str]]] = []
    for network in networks:
        for resolver in host_resolvers():
            for protocol in ("udp", "tcp"):
                rules.append(("filter", ["-s", str(network), "-d", resolver, "-p", protocol, "--dport", "53", "-j", "ACCEPT"]))
        for fenced in FENCED_RANGES:
            rules.append(("filter", ["-s", str(network), "-d", fenced, "-j", "REJECT"]))
        rules.append(("filter", ["-s", str(network), "-j", "ACCEPT"]))
        rules.append(("filter", ["-d", str(network), "-j", "ACCEPT"]))
        rules.append(("nat", ["-s", str(network), "!", "-d", str(network), "-j", "MASQUERADE"]))
    return rules


def open_firewall(networks: list[ipaddress.IPv4Network]) -> None:
    close_firewall()
    for table, hook in (("filter", "FORWARD"), ("nat", "POSTROUTING")):
        run(["iptables", "-t", table, "-N", CHAIN])
        run(["iptables", "-t", table, "-I", hook, "1", "-j", CHAIN])
    for table, rule in firewall_rules(networks):
        run(["iptables", "-t", table, "-A", CHAIN, *rule])


def close_firewall() -> None:
    for table, hook in (("filter", "FORWARD"), ("nat", "POSTROUTING")):
        for _ in range(10):
            if run(["iptables", "-t", table, "-D", hook, "-j", CHAIN], check=False).returncode != 0:
                break
        if run(["iptables", "-t", table, "-F", CHAIN], check=False).returncode == 0:
            run(["iptables", "-t", table, "-X", CHAIN])


def firewall_present() -> bool:
    return any(run(["iptables", "-t", table, "-S", CHAIN], check=False).returncode == 0 for table in ("filter", "nat"))


def copy_images(source: PrivateEngine, target: PrivateEngine) -> list[str]:
    """The sandbox's base and infrastructure images, from ``source`` to ``target`` where missing
    or of other content (``docker save | docker load``, never a rebuild)."""
    wanted = [images.BASE_IMAGE, *(image.tag for image in images.INFRA_IMAGES)]
    missing = [tag for tag in wanted if image_id(target, tag) != image_id(source, tag)]
    if missing:
        save = subprocess.Popen(["docker", "--host", source.host, "save", *missing], stdout=subprocess.PIPE)
        load = subprocess.run(["docker", "--host", target.host, "load", "--quiet"], stdin=save.stdout,
                              capture_output=True, text=True, timeout=600)
        save.stdout.close()
        if save.wait(timeout=60) != 0 or load.returncode != 0:
            raise RuntimeError(f"docker save | load into {target.name} failed: {load.stderr.strip()}")
    return missing


def image_id(engine: PrivateEngine, tag: str) -> str | None:
    proc = run(["docker", "--host", engine.host, "image", "inspect", "--format", "{{.Id}}", tag], check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


class Bed:
    """Hosts up (network, engine, sshd), their OpenWatch installed at the oldest release, and the
    inventory and SSH settings Ansible needs; :meth:`tear_down` removes all of it."""

    def __init__(self, home: Path, engine_names: tuple[str, ...], images_from: PrivateEngine) -> None:
        self.home = home
        self.images_from = images_from
        self.hosts = [SimulatedHost(name, index, home / name) for index, name in enumerate(engine_names, start=1)]
        self.control_key = home / "control" / "id_ed25519"
        self.known_hosts = home / "control" / "known_hosts"
        self.created_privsep_dir = False
        self.timings: dict[str, float] = {}

    def host(self, name: str) -> SimulatedHost:
        return next(host for host in self.hosts if host.name == name)

    def up(self) -> None:
        started = time.monotonic()
        openssh = openssh_root()
        self.control_key.parent.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet-control", "-f", str(self.control_key)])
        if not PRIVSEP_DIR.exists():
            PRIVSEP_DIR.mkdir(mode=0o755)
            self.created_privsep_dir = True
        open_firewall([host.network for host in self.hosts])
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
        for host in self.hosts:
            copied = copy_images(self.images_from, host.engine)
            progress(f"fleet bed: {host.name}: images loaded: {', '.join(copied) or 'already there'}")
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

    def probe(self) -> dict[str, dict]:
        return {host.name: self.hostctl(host, "probe", str(host.install_dir)) for host in self.hosts}

    def reset(self) -> dict[str, dict]:
        """Every host back at the oldest release with its baseline data (in parallel)."""
        procs = {host.name: subprocess.Popen(
            host.inside([sys.executable, "-m", "tests.fleet.hostctl", "reset", str(host.install_dir),
                         str(host.home / "baseline.dump")]),
            cwd=ROOT, env=host.environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for host in self.hosts}
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
        """Remove everything, each step tried whatever the others did; return what failed or is still
        there (the fixture asserts it is nothing)."""
        failed = []
        for host in self.hosts:
            steps = [host.stop_sshd, host.engine.stop, host.delete_network]
            if host.install_dir.exists() and host.engine.running_pid() is not None:
                steps.insert(0, lambda host=host: run(host.inside([
                    sys.executable, "-m", "sandbox", "down", "--dir", str(host.install_dir), "--engine", host.engine_name]),
                    cwd=ROOT, env=host.environment()))
            for step in steps:
                try:
                    step()
                except Exception as error:  # noqa: BLE001 - the other steps must still run
                    failed.append(f"{host.name}: {error}")
        close_firewall()
        if self.created_privsep_dir and PRIVSEP_DIR.exists():
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
        if firewall_present():
            left.append(f"iptables chain {CHAIN}")
        if self.created_privsep_dir and PRIVSEP_DIR.exists():
            left.append(str(PRIVSEP_DIR))
        return left
