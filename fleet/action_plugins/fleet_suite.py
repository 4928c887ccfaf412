"""``fleet_suite``: the playbooks' "Run the suite" step, ``ansible.builtin.command`` on the host with,
when ``budget`` is given, the fleet-wide failure budget checked on the control node just before this
host's suite starts, and a failed suite counted as soon as it ends.

An action plugin because of when it runs: Ansible runs each task for the whole batch before the next
task, and starts the batch's hosts one after another as forks free up. A budget task before "Run the
suite" is over for every host of the batch before the first suite ends, so a wave larger than the
forks went on starting hosts after the budget was exceeded. An action plugin runs on the control node
in the fork about to start this host's suite, and records its failure before that fork is free for
the next host.

``budget``: ``root`` (the project folder, where ``python -m fleet`` runs), ``run_dir``, ``invocation``,
``hosts`` (comma-separated), ``max_failed``, ``canary``. Result: the command's, or, for a host the
budget does not let start, ``fleet_not_started`` with the reason (nothing ran on the host).
"""

from __future__ import annotations

import json
import subprocess
import sys

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.action import ActionBase

CONTROL_TIMEOUT_S = 120


class ActionModule(ActionBase):
    _VALID_ARGS = frozenset(("argv", "chdir", "budget"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        budget = args.pop("budget", None)
        host = (task_vars or {})["inventory_hostname"]
        if budget:
            decision = self._control("suite-start", budget, host, "--hosts", str(budget["hosts"]),
                                     "--max-failed", str(budget["max_failed"]), "--canary", str(budget["canary"]))
            if not decision["start"]:
                result.update(changed=False, fleet_not_started=decision["reason"], msg=decision["reason"])
                return result
        try:
            ran = self._execute_module(module_name="ansible.builtin.command", module_args=args, task_vars=task_vars)
        except AnsibleConnectionFailure as error:
            if budget:
                self._control("suite-exited", budget, host, "--unreached", str(error).splitlines()[0][:300])
            raise
        if budget:
            exit_status = _exit_status(ran)
            self._control("suite-exited", budget, host, *(["--exit-status", str(exit_status)] if exit_status is not None else []))
        result.update(ran)
        return result

    @staticmethod
    def _control(command: str, budget: dict, host: str, *more: str) -> dict:
        argv = [sys.executable, "-m", "fleet", command, "--run-dir", str(budget["run_dir"]), "--host", host,
                "--invocation", str(budget["invocation"]), *more]
        proc = subprocess.run(argv, cwd=str(budget["root"]), capture_output=True, text=True,
                              timeout=CONTROL_TIMEOUT_S, check=False)
        if proc.returncode != 0:
            raise AnsibleError(f"python -m fleet {command} for {host} failed: {proc.stderr.strip()[-500:]}")
        return json.loads(proc.stdout)


def _exit_status(ran: dict) -> int | None:
    """fleet.host_run prints ``{"exit_status": N}``; None when it did not run to the end."""
    if ran.get("failed") or ran.get("rc") not in (0, None):
        return None
    try:
        return int(json.loads(ran.get("stdout") or "")["exit_status"])
    except (ValueError, KeyError, TypeError):
        return None
