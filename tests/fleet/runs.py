"""Run the fleet playbooks against the bed, as an operator would, and read what they left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.fleet.bed import ROOT, Bed

PLAYBOOK_TIMEOUT_S = 1800


@dataclass(frozen=True)
class FleetRun:
    returncode: int
    output: str
    run_dir: Path
    seconds: float

    @property
    def summary(self) -> dict:
        return json.loads((self.run_dir / "fleet.json").read_text())

    def status(self) -> dict[str, str]:
        return {row["host"]: row["status"] for row in self.summary["hosts"]}

    def journal(self, host: str) -> dict | None:
        path = self.run_dir / host / "journal.json"
        return json.loads(path.read_text()) if path.exists() else None


def play(bed: Bed, playbook: str, *, run_id: str | None = None, forks: int = 3,
         host_vars: dict[str, dict[str, str]] | None = None, ansible_env: dict[str, str] | None = None,
         limit: str | None = None, **run_vars) -> FleetRun:
    """``ansible-playbook fleet/<playbook> -i <bed inventory> -f <forks> [--limit <limit>] -e <run_vars>``;
    ``ansible_env`` adds Ansible settings (the bench's task timing callback)."""
    run_id = run_id or f"t-{uuid.uuid4().hex[:8]}"
    reports = bed.home / "reports"
    extra = {"run_id": run_id, "fleet_reports": str(reports), **run_vars}
    env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(bed.home / "control" / "ansible-tmp"),
           "ANSIBLE_HOST_KEY_CHECKING": "True",
           "ANSIBLE_SSH_CONTROL_PATH_DIR": str(bed.home / "control" / "cp"), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "False",
           **(ansible_env or {})}
    started = time.monotonic()
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(ROOT / "fleet" / playbook),
                           "-i", str(bed.inventory(host_vars)), "-f", str(forks), *(["--limit", limit] if limit else []),
                           "-e", json.dumps(extra)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=PLAYBOOK_TIMEOUT_S)
    seconds = time.monotonic() - started
    log = reports / f"{run_id}.{playbook}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        handle.write(proc.stdout + proc.stderr)
    return FleetRun(proc.returncode, proc.stdout + proc.stderr, reports / run_id, seconds)
