"""The fleet layer: Ansible playbooks (``upgrade.yml``, ``audit.yml``) run the suites on many hosts;
this package is the control node's plain-Python side of them (the run's per-host results, the
fleet-wide failure budget, the roll-back-all order, the summary, the package copied to each host)."""
