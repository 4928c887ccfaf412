"""``python -m tests.fleet.hostctl probe|settled-probe|reset|save INSTALL_DIR [DUMP]``: run inside a
simulated host's network namespace (its OpenWatch publishes on that namespace's 127.0.0.1), with
``DOCKER_HOST`` at the host's engine; prints JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sandbox import releases
from sandbox.installation import Installation
from tests import sandbox_state

# What the probe reads besides what the scenarios assert: the bed's reset compares them with the baseline too.
RUNTIME_FACTS = ("head", "containers")


def reset(install: Installation, dump: Path) -> dict:
    """Back to the oldest release with the baseline data, no journal or lock (as tests/e2e do)."""
    sandbox_state.forget_runs(install.directory)
    install.reset(releases.OLDEST.tag, dump)
    return sandbox_state.probe(install)


def main(argv: list[str]) -> None:
    command, install = argv[0], Installation(Path(argv[1]))
    if command in ("probe", "settled-probe"):
        found = sandbox_state.probe(install, settled=command == "settled-probe")
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
