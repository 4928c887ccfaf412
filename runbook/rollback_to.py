"""``--rollback-to REF``: the finished upgrade the journal describes, undone in a run of its own when
it started from ``REF`` (its tag, ``VERSION`` or commit id)."""

from __future__ import annotations

from pathlib import Path

from runbook import profile as profiles, state
from runbook.compose import Compose
from runbook.errors import OperatorError
from runbook.journal import Journal
from runbook.run_record import RunRecord
from runbook.upgrade import Upgrade


def finished_upgrade(install_dir: Path, tag: str) -> Journal:
    """The journal of the last upgrade, if it finished and started from ``tag`` (its tag, VERSION, or
    commit id, abbreviated to 7 digits or more: untagged installations have only that); else OperatorError."""
    journal = Journal.load(install_dir)
    if journal is None or journal.data.get("before") is None:
        raise OperatorError(f"no upgrade journal in {install_dir}; --rollback-to needs the run it undoes")
    before = state.InstallState.from_json(journal.data["before"])
    abbreviated_commit = len(tag) >= 7 and before.git_commit.startswith(tag.lower())
    if tag not in (before.git_ref, f"v{before.version}", before.version) and not abbreviated_commit:
        raise OperatorError(f"the last upgrade started from {before.git_ref} ({before.version}), not {tag}; "
                            f"--rollback-to can only return to {before.git_ref}")
    if journal.data.get("outcome") != "UPGRADED":
        raise OperatorError(f"the last upgrade ended {journal.data.get('outcome')!r}, not UPGRADED; "
                            "read .openwatch-upgrade/journal.json and run the post-flight suite")
    return journal


def from_journal(profile: profiles.Profile, client, settings, tag: str) -> Upgrade:
    """The finished upgrade the journal describes, ready to be rolled back to ``tag`` in its own run."""
    journal = finished_upgrade(profile.install_dir, tag)
    upgrade = Upgrade(profile, client, settings, journal)
    compose = Compose.of(profile)  # the installed (new) release: its image downgrades, its names are tagged
    upgrade.adopt(RunRecord.read(journal.data), new_profile=profile, image_names=compose.image_names(),
                  alembic_ini=compose.alembic_ini(client))
    return upgrade
