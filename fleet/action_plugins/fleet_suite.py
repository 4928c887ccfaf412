"""``fleet_suite``: the playbooks' "Run the suite" step, ``ansible.builtin.command`` on the host with,
when ``budget`` is given, the fleet-wide failure budget checked on the control node just before this
host's suite starts, and a failed suite counted as soon as it ends.

An action plugin because of when it runs: Ansible runs each task for the whole batch before the next
task, and starts the batch's hosts one after another as forks free up. A budget task before "Run the
suite" is over for every host of the batch before the first suite ends, so a wave larger than the
forks went on starting hosts after the budget was exceeded. An action plugin runs on the control node
in the fork about to start this host's suite, and records its failure before that fork is free for
the next host.

``budget``: ``root`` (the project folder: ``fleet.results`` is imported from there, in this process,
not run as ``python -m fleet``: an interpreter start per host and step is what the fleet layer's
overhead is made of), ``run_dir``, ``invocation``, ``hosts`` (comma-separated), ``max_failed``,
``canary``. Result: the command's, or, for a host the budget does not let start,
``fleet_not_started`` with the reason (nothing ran on the host).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    _VALID_ARGS = frozenset(("argv", "chdir", "budget"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        budget = args.pop("budget", None)
        host = (task_vars or {})["inventory_hostname"]
        if budget:
            results = _fleet_results(str(budget["root"]))
            run_dir, invocation = Path(str(budget["run_dir"])), str(budget["invocation"])
            stop = results.suite_start(run_dir, host, [name for name in str(budget["hosts"]).split(",") if name],
                                       invocation, max_failed=int(budget["max_failed"]), canary=int(budget["canary"]))
            if stop is not None:
                result.update(changed=False, fleet_not_started=stop.reason, msg=f"not started: {stop.reason}")
                return result
        try:
            ran = self._execute_module(module_name="ansible.builtin.command", module_args=args, task_vars=task_vars)
        except AnsibleConnectionFailure as error:
            if budget:
                results.suite_exited(run_dir, host, invocation, exit_status=None,
                                     unreached=str(error).splitlines()[0][:300])
            raise
        if budget:
            results.suite_exited(run_dir, host, invocation, exit_status=_exit_status(ran))
        result.update(ran)
        return result


def _fleet_results(root: str):
    """``fleet.results`` of the project the playbook belongs to."""
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module("fleet.results")


def _exit_status(ran: dict) -> int | None:
    """fleet.host_run prints ``{"exit_status": N}``; None when it did not run to the end."""
    if ran.get("failed") or ran.get("rc") not in (0, None):
        return None
    try:
        return int(json.loads(ran.get("stdout") or "")["exit_status"])
    except (ValueError, KeyError, TypeError):
        return None
