"""``python -m tests.fleet.hostctl probe|settled-probe|reset|save INSTALL_DIR [DUMP]``: run inside a
simulated host's network namespace (its OpenWatch publishes on that namespace's 127.0.0.1), with
``DOCKER_HOST`` at the host's engine; prints JSON."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from runbook import dbstate
from runbook.shell import run
from sandbox import releases
from sandbox.installation import Installation
from tests import sandbox_state

SETTLE_DEADLINE_S = 60.0
SETTLE_POLL_S = 1.0
# What the probe reads besides what the scenarios assert: the bed's reset compares them with the baseline too.
RUNTIME_FACTS = ("head", "containers")


def containers(install: Installation) -> dict[str, dict]:
    """Each compose service's container: its image id, running, health (None without a check). Not its
    id or start time: a roll-back recreates the containers, on the recorded images."""
    ids = install.compose("ps", "--all", "--quiet").stdout.split()
    inspected = json.loads(run(["docker", "inspect", *ids]).stdout) if ids else []
    return {container["Config"]["Labels"].get("com.docker.compose.service", container["Name"]): {
        "image": container["Image"], "running": container["State"]["Running"],
        "health": (container["State"].get("Health") or {}).get("Status")} for container in inspected}


def settled_containers(install: Installation) -> dict[str, dict]:
    """:func:`containers` once no health check is still ``starting`` (a container just recreated), or at
    the deadline."""
    deadline = time.monotonic() + SETTLE_DEADLINE_S
    found = containers(install)
    while any(state["health"] == "starting" for state in found.values()) and time.monotonic() < deadline:
        time.sleep(SETTLE_POLL_S)
        found = containers(install)
    return found


def probe(install: Installation, settled: bool = False) -> dict:
    """What every fleet scenario asserts per host: version, health, tables (the test's own checksums);
    and the checked-out commit and the containers' state (``settled``: once their health checks ran)."""
    found_containers = settled_containers(install) if settled else containers(install)
    try:
        health = install.health()
        status = {"code": health.status_code, "status": health.json().get("status")}
    except (OSError, ValueError) as error:
        status = {"code": None, "status": f"unreachable: {type(error).__name__}"}
    with install.connect() as conn:
        contents = sandbox_state.contents(conn)
        revisions = dbstate.alembic_revisions(conn)
    return {"version": install.version, "health": status, "revisions": sorted(revisions),
            "contents": {name: list(value) for name, value in contents.items()},
            "head": install.git("rev-parse", "HEAD").stdout.strip(), "containers": found_containers}


def reset(install: Installation, dump: Path) -> dict:
    """Back to the oldest release with the baseline data, no journal or lock (as tests/e2e do)."""
    sandbox_state.forget_runs(install.directory)
    install.reset(releases.OLDEST.tag, dump)
    return probe(install)


def main(argv: list[str]) -> None:
    command, install = argv[0], Installation(Path(argv[1]))
    if command in ("probe", "settled-probe"):
        found = probe(install, settled=command == "settled-probe")
    elif command == "reset":
        found = reset(install, Path(argv[2]))
    elif command == "save":
        install.save_database(Path(argv[2]))
        found = {"saved": argv[2]}
    else:
        raise SystemExit(f"hostctl: unknown command {command!r}; use probe, settled-probe, reset or save")
    json.dump(found, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
