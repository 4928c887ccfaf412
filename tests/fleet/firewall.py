"""The fleet bed's firewall: one iptables chain per bed, hooked into FORWARD and POSTROUTING.

What leaves a simulated host's namespace is masqueraded (image builds fetch Debian packages) and
may reach the resolvers and public addresses, never another private range; replies come back. The
private engines' own chains do the same for their networks (sandbox/engine.py). The chain is named
after the bed's first host, so two beds side by side (CI's and a developer's, each with hosts of its
own) never flush or remove each other's.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from runbook.shell import run
from sandbox.engine import FENCED_RANGES, host_resolvers

CHAIN_PREFIX = "OPENWATCH-FLEET-"
HOOKS = (("filter", "FORWARD"), ("nat", "POSTROUTING"))


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


@dataclass(frozen=True)
class BedFirewall:
    first_host: str  # an engine name: 1-8 lower-case letters or digits, so the chain fits iptables' 28

    @property
    def chain(self) -> str:
        return f"{CHAIN_PREFIX}{self.first_host.upper()}"

    def open(self, networks: list[ipaddress.IPv4Network]) -> None:
        self.close()
        for table, hook in HOOKS:
            run(["iptables", "-t", table, "-N", self.chain])
            run(["iptables", "-t", table, "-I", hook, "1", "-j", self.chain])
        for table, rule in firewall_rules(networks):
            run(["iptables", "-t", table, "-A", self.chain, *rule])

    def close(self) -> None:
        for table, hook in HOOKS:
            for _ in range(10):
                if run(["iptables", "-t", table, "-D", hook, "-j", self.chain], check=False).returncode != 0:
                    break
            if run(["iptables", "-t", table, "-F", self.chain], check=False).returncode == 0:
                run(["iptables", "-t", table, "-X", self.chain])

    def present(self) -> bool:
        return any(run(["iptables", "-t", table, "-S", self.chain], check=False).returncode == 0 for table, _ in HOOKS)
