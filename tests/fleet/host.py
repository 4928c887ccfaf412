"""One simulated remote host of the fleet bed (bed.py), reached by Ansible over real SSH.

A host is a network namespace (``owf-<engine>``), joined to this machine by a veth pair with
addresses in 10.216.<its engine's slot>.0/30, running its own sshd (host key and authorized key made
for the run, root login by key only, from Debian's openssh-server unpacked, never installed) and its
own private Docker engine (``PrivateEngine`` in that namespace), where its sandbox OpenWatch publishes
on the namespace's 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from runbook.shell import run
from sandbox.engine import PrivateEngine

ROOT = Path(__file__).resolve().parents[2]
OPENSSH_CACHE = Path("/var/cache/openwatch-fleet")
OPENSSH_PACKAGES = ("openssh-server", "openssh-sftp-server", "libwrap0")
SSH_DEADLINE_S = 20.0


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
        """10.216.<the engine's slot>.0/30: engines of different slots (as given to helpers and CI) never share one."""
        return ipaddress.IPv4Network(f"10.216.{self.engine.slot}.0/30")

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
