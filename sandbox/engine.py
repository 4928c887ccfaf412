"""A private Docker engine for the project's own tests and benchmarks.

The tests must never see, touch or be blocked by an OpenWatch installation on the host's engine
(an operator's, or the one ``make demo`` leaves running). So they start a ``dockerd`` of their own,
with its own socket, data-root, exec-root, pid file, bridge and subnets, and every Docker call of the
process and of its children goes there through ``DOCKER_HOST``. Sandbox installations in it publish
ports of their own (a real OpenWatch has 8000, 3000 and 5432) and use a compose subnet of their own.

The data-root is kept between runs (images are built once per machine, not once per run); the
daemon itself is started for a run and stopped after it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import subprocess
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from runbook.shell import progress, run
from sandbox.installation import Ports

# Destinations no container of a test engine may reach, apart from its own networks and the resolvers.
FENCED_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")

STATE_ROOT = Path("/var/lib/openwatch-suite-engines")
RUN_ROOT = Path("/run/openwatch-suite-engines")
NAME_PATTERN = re.compile(r"^[a-z0-9]{1,8}$")
SLOTS = 32
START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 30.0


class EngineError(RuntimeError):
    """The private engine cannot be started or stopped; the message says what to do."""


@dataclass(frozen=True)
class PrivateEngine:
    """One private ``dockerd``, named; its addresses and ports follow from the name's slot."""

    name: str
    # A network namespace to run the daemon in (a simulated remote host of the fleet tests): its bridge,
    # firewall chain and published ports are then that namespace's, not the machine's.
    netns: str | None = None

    def _net(self, command: list[str]) -> list[str]:
        """``command`` run in the engine's network namespace (as it is, without one). ``nsenter``, not
        ``ip netns exec``: that one mounts a sysfs of its own over /sys, hiding the cgroup file
        systems dockerd needs ("Devices cgroup isn't mounted")."""
        return ["nsenter", f"--net=/run/netns/{self.netns}", *command] if self.netns else command

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise EngineError(f"engine name {self.name!r}: use 1-8 lower-case letters or digits")

    @property
    def slot(self) -> int:
        return zlib.crc32(self.name.encode()) % SLOTS

    @property
    def bridge(self) -> str:
        return f"owe-{self.name}"

    @property
    def bridge_network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"10.213.{self.slot}.0/24")

    @property
    def address_pool(self) -> ipaddress.IPv4Network:
        """Where compose networks without a subnet of their own get theirs (a /20 cut into /24s).

        Sixteen /20s fit in a /16, so the 32 slots span 10.214/16 and 10.215/16: two engines on
        different slots never hand out the same subnet.
        """
        return ipaddress.IPv4Network(f"10.{214 + self.slot // 16}.{self.slot % 16 * 16}.0/20")

    @property
    def install_subnet(self) -> str:
        """``OPENWATCH_SUBNET`` of a sandbox installation in this engine (never the default 172.28.240.0/24)."""
        return f"10.212.{self.slot}.0/24"

    @property
    def ports(self) -> Ports:
        """Published ports of a sandbox in this engine, clear of a real OpenWatch's 5432/8000/3000."""
        base = 20000 + self.slot * 10
        return Ports(postgres=base + 2, backend=base, frontend=base + 1)

    @property
    def data_root(self) -> Path:
        return STATE_ROOT / self.name

    @property
    def run_dir(self) -> Path:
        return RUN_ROOT / self.name

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "dockerd.pid"

    @property
    def owner_file(self) -> Path:
        """The pid of the process that started the engine (a test run or the bench)."""
        return self.run_dir / "owner.pid"

    def _owner_alive(self) -> bool:
        try:
            os.kill(int(self.owner_file.read_text().strip()), 0)
        except (OSError, ValueError):
            return False
        return True

    @property
    def log(self) -> Path:
        return self.data_root.with_suffix(".log")

    @contextmanager
    def serving(self) -> Iterator[PrivateEngine]:
        """Started, with this process and the ones it starts pointed at it, and stopped afterwards (an
        :class:`EngineError` from the start leaves nothing to stop)."""
        self.start()
        try:
            with self.as_docker_host():
                yield self
        finally:
            self.stop()

    @contextmanager
    def as_docker_host(self) -> Iterator[PrivateEngine]:
        """Within the block, every ``docker``, compose and SDK call of this process and of the processes
        it starts goes to this engine (``DOCKER_HOST``; a ``DOCKER_CONTEXT`` would override it)."""
        saved = {key: os.environ.get(key) for key in ("DOCKER_HOST", "DOCKER_CONTEXT")}
        os.environ.pop("DOCKER_CONTEXT", None)
        os.environ["DOCKER_HOST"] = self.host
        try:
            yield self
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def answers(self, timeout_s: float = 10.0) -> bool:
        """Whether the daemon serves its API now. A starting dockerd listens on its socket before it serves
        it (it first restores the containers of its data-root), so a call can hang rather than be refused:
        that is "not yet", not an error (seen in CI: a start's first call outlived its 10 s timeout)."""
        try:
            return run(["docker", "--host", self.host, "version", "--format", "{{.Server.Version}}"],
                       check=False, timeout=timeout_s).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def start(self) -> None:
        """Start the daemon; refuse if another run already has this engine up."""
        pid = self.running_pid()
        if pid is not None and not self._owner_alive():
            progress(f"stopping the private engine {self.name!r} a killed earlier run left running (dockerd pid {pid})")
            self.stop()
            pid = None
        if pid is not None:
            raise EngineError(f"the private engine {self.name!r} is already running (dockerd pid {pid}): another test "
                              f"run uses it; wait for it, or set OPENWATCH_TEST_ENGINE=<other name> to run beside it")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        self.owner_file.write_text(f"{os.getpid()}\n")
        self._create_bridge()
        self._open_firewall()
        started = time.monotonic()
        command = [
            "dockerd",
            "--host", self.host,
            "--data-root", str(self.data_root),
            "--exec-root", str(self.run_dir / "exec"),
            "--pidfile", str(self.pidfile),
            "--bridge", self.bridge,
            "--default-address-pool", f"base={self.address_pool},size=24",
            # A second dockerd with iptables on flushes the DOCKER and isolation chains the host's engine
            # relies on (seen here: an operator's published-port and isolation rules gone). So this
            # engine programs no firewall at all; published ports go through docker-proxy, and the
            # few rules its own networks need live in a chain of its own (see _open_firewall).
            "--iptables=false", "--ip-masq=false",
            # The engine's own /etc/docker/daemon.json (an operator's settings) is not ours to read.
            "--config-file", str(self._empty_config()),
        ]
        with self.log.open("ab") as log:
            # A session of its own: a Ctrl-C in the test terminal must not kill the engine under a rollback.
            subprocess.Popen(self._net(command), stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = started + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.answers():
                try:
                    self._check_addresses_free()
                except EngineError:
                    self.stop()
                    raise
                progress(f"private Docker engine {self.name!r} up in {time.monotonic() - started:.1f}s "
                         f"({self.host}, bridge {self.bridge} {self.bridge_network})")
                return
            time.sleep(0.2)
        tail = self.log.read_text(errors="replace").splitlines()[-5:]
        self.stop()
        raise EngineError(f"the private engine {self.name!r} did not answer within {START_DEADLINE_S:.0f}s; "
                          f"see {self.log}: {' | '.join(tail)}")

    def stop(self) -> None:
        """Stop the daemon (its containers with it) and remove its bridge; the data-root stays."""
        pid = self.running_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_DEADLINE_S
            while time.monotonic() < deadline and self.running_pid() is not None:
                time.sleep(0.2)
            if self.running_pid() is not None:
                os.kill(pid, signal.SIGKILL)
        if run(self._net(["ip", "link", "show", self.bridge]), check=False).returncode == 0:
            run(self._net(["ip", "link", "delete", self.bridge]))
        self._close_firewall()

    def remove_leftovers(self) -> list[str]:
        """Containers a killed earlier run left in this engine (never anything on another engine)."""
        docker = ["docker", "--host", self.host]
        names = run([*docker, "ps", "--all", "--format", "{{.Names}}"]).stdout.split()
        if names:
            run([*docker, "rm", "--force", "--volumes", *names])
        run([*docker, "volume", "prune", "--all", "--force"])
        run([*docker, "network", "prune", "--force"])
        return names

    def _empty_config(self) -> Path:
        path = self.run_dir / "daemon.json"
        path.write_text("{}\n")
        return path

    def _create_bridge(self) -> None:
        if run(self._net(["ip", "link", "show", self.bridge]), check=False).returncode != 0:
            run(self._net(["ip", "link", "add", self.bridge, "type", "bridge"]))
            run(self._net(["ip", "address", "add", f"{self.bridge_network[1]}/{self.bridge_network.prefixlen}",
                           "dev", self.bridge]))
        run(self._net(["ip", "link", "set", self.bridge, "up"]))

    @property
    def networks(self) -> tuple[ipaddress.IPv4Network, ...]:
        return (self.bridge_network, self.address_pool, ipaddress.IPv4Network(self.install_subnet))

    @property
    def chain(self) -> str:
        return f"OPENWATCH-TESTS-{self.name.upper()}"

    def _firewall_rules(self) -> list[tuple[str, str, list[str]]]:
        """(table, chain, rule): accept forwarding to and from this engine's networks (a host engine sets
        FORWARD to DROP), and masquerade what leaves them (image builds fetch Debian packages).

        What runs in the engine may reach its own networks, the host's DNS resolvers and public
        addresses (the package registries), never another private-range or link-local address:
        the real OpenWatch's workers contact every managed host every 30 s, so a seeded host address
        that routed anywhere would be traffic to someone else's machine. Refused, not dropped, so a
        connection attempt fails at once instead of hanging a task."""
        rules: list[tuple[str, str, list[str]]] = []
        for network in self.networks:
            for own in self.networks:
                rules.append(("filter", self.chain, ["-s", str(network), "-d", str(own), "-j", "ACCEPT"]))
            for resolver in host_resolvers():
                for protocol in ("udp", "tcp"):
                    rules.append(("filter", self.chain, ["-s", str(network), "-d", resolver, "-p", protocol,
                                                         "--dport", "53", "-j", "ACCEPT"]))
            for fenced in FENCED_RANGES:
                rules.append(("filter", self.chain, ["-s", str(network), "-d", fenced, "-j", "REJECT"]))
        for network in self.networks:
            rules.append(("filter", self.chain, ["-s", str(network), "-j", "ACCEPT"]))
            rules.append(("filter", self.chain, ["-d", str(network), "-j", "ACCEPT"]))
            rules.append(("nat", self.chain, ["-s", str(network), "!", "-d", str(network), "-j", "MASQUERADE"]))
        return rules

    def _open_firewall(self) -> None:
        self._close_firewall()
        for table, hook in (("filter", "FORWARD"), ("nat", "POSTROUTING")):
            run(self._net(["iptables", "-t", table, "-N", self.chain]))
            run(self._net(["iptables", "-t", table, "-I", hook, "1", "-j", self.chain]))
        for table, chain, rule in self._firewall_rules():
            run(self._net(["iptables", "-t", table, "-A", chain, *rule]))
        # Docker enables forwarding when it starts with iptables; this engine has to do it itself.
        run(self._net(["sysctl", "--quiet", "--write", "net.ipv4.ip_forward=1"]))

    def _close_firewall(self) -> None:
        """Remove this engine's chains (also those a killed earlier run left); nothing else is touched."""
        for table, hook in (("filter", "FORWARD"), ("nat", "POSTROUTING")):
            for _ in range(10):  # one jump per start; more only if several runs were killed in a row
                if run(self._net(["iptables", "-t", table, "-D", hook, "-j", self.chain]), check=False).returncode != 0:
                    break
            if run(self._net(["iptables", "-t", table, "-F", self.chain]), check=False).returncode == 0:
                run(self._net(["iptables", "-t", table, "-X", self.chain]))

    def own_devices(self) -> set[str]:
        """The bridge and the bridges of this engine's networks (kept in its data-root across runs, so a
        killed run's compose network comes back with its bridge ``br-<network id>``)."""
        ids = run(["docker", "--host", self.host, "network", "ls", "--quiet", "--no-trunc"]).stdout.split()
        return {self.bridge, *(f"br-{network_id[:12]}" for network_id in ids)}

    def _check_addresses_free(self) -> None:
        """Refuse addresses the host routes to a device not this engine's (another engine, a VPN)."""
        own = self.own_devices()
        for line in run(self._net(["ip", "-4", "-o", "route", "show"])).stdout.splitlines():
            destination, _, rest = line.partition(" ")
            device = f" {rest}".split(" dev ", 1)[1].split()[0] if " dev " in f" {rest}" else ""
            if destination == "default" or device in own:
                continue
            try:
                routed = ipaddress.IPv4Network(destination, strict=False)
            except ValueError:
                continue
            clash = next((network for network in self.networks if network.overlaps(routed)), None)
            if clash is not None:
                raise EngineError(f"the private engine {self.name!r} needs {clash}, but the host routes {routed} to "
                                  f"{device or 'another device'}; remove what holds it, or set "
                                  f"OPENWATCH_TEST_ENGINE=<other name> to use other addresses")


def from_environment(default: str = "tests") -> PrivateEngine:
    """The engine named by ``OPENWATCH_TEST_ENGINE``; under ``pytest -n`` each worker after the first
    gets its own (the name's first six letters and the worker's number), as two installations cannot
    share one engine's ports and subnet."""
    return PrivateEngine(worker_engine_name(os.environ.get("OPENWATCH_TEST_ENGINE", default),
                                            os.environ.get("PYTEST_XDIST_WORKER", "gw0")))


def worker_engine_name(base: str, worker: str) -> str:
    return base if worker == "gw0" else f"{base[:6]}{worker.removeprefix('gw')}"


def shared_slot(names: list[str]) -> str | None:
    """Two of ``names`` whose engines would take the same addresses (subnets and ports come from the
    slot), worded for an error line; None when every slot differs."""
    taken: dict[int, str] = {}
    for name in names:
        slot = PrivateEngine(name).slot
        if slot in taken and taken[slot] != name:
            return f"{taken[slot]} and {name} (slot {slot})"
        taken[slot] = name
    return None


def host_resolvers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The IPv4 name servers the host uses (a container on the default bridge gets the same list)."""
    if not resolv_conf.is_file():
        return []
    found = []
    for line in resolv_conf.read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                found.append(str(ipaddress.IPv4Address(words[1])))
            except ipaddress.AddressValueError:
                continue  # IPv6: this engine has no IPv6
    return found
