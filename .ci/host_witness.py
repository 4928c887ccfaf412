"""Witness for CI: the project's tests never touch an installation on the host's Docker engine.

    python .ci/host_witness.py record FILE   # before `make test`: the host engine's OpenWatch containers
    python .ci/host_witness.py check FILE    # after: same containers, same start times, /health healthy
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import requests

HOST_ENGINE = "unix:///var/run/docker.sock"
HEALTH_URL = "http://127.0.0.1:8000/health"


def containers() -> dict[str, str]:
    """name -> id and start time, of every openwatch-* container on the host's engine."""
    docker = ["docker", "--host", HOST_ENGINE]
    names = subprocess.run([*docker, "ps", "--all", "--filter", "name=^openwatch-", "--format", "{{.Names}}"],
                           capture_output=True, text=True, check=True, timeout=30).stdout.split()
    started = {}
    for name in names:
        started[name] = subprocess.run([*docker, "inspect", "--format", "{{.Id}} {{.State.StartedAt}}", name],
                                       capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    return started


def main(action: str, file: Path) -> int:
    if action == "record":
        seen = containers()
        if not seen:
            print("host-witness: no OpenWatch on the host's engine to witness (run `make demo` first)", file=sys.stderr)
            return 1
        file.write_text(json.dumps(seen, indent=1))
        print(f"host-witness: recorded {len(seen)} containers on the host's engine")
        return 0
    before, after = json.loads(file.read_text()), containers()
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    if changed:
        print(f"host-witness: the host's OpenWatch was touched: {', '.join(changed)} recreated, restarted or removed",
              file=sys.stderr)
        return 1
    status = requests.get(HEALTH_URL, timeout=5).json().get("status")
    if status != "healthy":
        print(f"host-witness: {HEALTH_URL} says {status!r}", file=sys.stderr)
        return 1
    print(f"host-witness: {len(after)} containers untouched (same ids and start times), {HEALTH_URL} healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2])))
