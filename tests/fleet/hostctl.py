"""``python -m tests.fleet.hostctl probe|reset INSTALL_DIR [DUMP]``: run inside a simulated host's
network namespace (its OpenWatch publishes on that namespace's 127.0.0.1), with ``DOCKER_HOST`` at
the host's engine; prints JSON."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from runbook import dbstate
from sandbox import releases
from sandbox.installation import Installation
from tests import sandbox_state


def probe(install: Installation) -> dict:
    """What every fleet scenario asserts per host: version, health, tables (the test's own checksums)."""
    try:
        health = install.health()
        status = {"code": health.status_code, "status": health.json().get("status")}
    except (OSError, ValueError) as error:
        status = {"code": None, "status": f"unreachable: {type(error).__name__}"}
    with install.connect() as conn:
        contents = sandbox_state.contents(conn)
        revisions = dbstate.alembic_revisions(conn)
    return {"version": install.version, "health": status, "revisions": sorted(revisions),
            "contents": {name: list(value) for name, value in contents.items()}}


def reset(install: Installation, dump: Path) -> dict:
    """Back to the oldest release with the baseline data, no journal or lock (as tests/e2e do)."""
    shutil.rmtree(install.directory / ".openwatch-upgrade", ignore_errors=True)
    (install.directory / ".openwatch-upgrade.lock").unlink(missing_ok=True)
    install.reset(releases.OLDEST.tag, dump)
    return probe(install)


def main(argv: list[str]) -> None:
    command, install = argv[0], Installation(Path(argv[1]))
    if command == "probe":
        found = probe(install)
    elif command == "reset":
        found = reset(install, Path(argv[2]))
    elif command == "save":
        install.save_database(Path(argv[2]))
        found = {"saved": argv[2]}
    else:
        raise SystemExit(f"hostctl: unknown command {command!r}; use probe, reset or save")
    json.dump(found, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
