"""The Aegis rules update's plain logic: counting a rules.json, the options it takes, resolving
--rules in the bundle's own repository (a real one, built from the sandbox's rule releases), its
stages and what its rollback does after each."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugins.components import component_problem
from runbook import aegis_rules, components
from runbook.errors import OperatorError, Problem
from runbook.rollback import VERIFY_RESTORED
from runbook.shell import run
from sandbox import aegis_bundle


@pytest.mark.parametrize(("text", "count"), [("[]", 0), ('[{"rule_id": "a"}, {"rule_id": "b"}]', 2)])
def test_rule_count_is_the_length_of_the_list(text: str, count: int) -> None:
    assert aegis_rules.rule_count(text, "x") == count


@pytest.mark.parametrize(("text", "said"), [
    ('{"rules": []}', "aegis-9's rules.json holds a JSON dict, not the list of rules the engine loads"),
    ("[{", "aegis-9's rules.json is not JSON (Expecting property name enclosed in double quotes at line 1)"),
])
def test_rule_count_refuses_what_the_engine_cannot_load(text: str, said: str) -> None:
    with pytest.raises(Problem, match="^" + said.replace("(", r"\(").replace(")", r"\)")):
        aegis_rules.rule_count(text, "aegis-9's rules.json")


def test_count_problem_only_when_the_listed_count_differs() -> None:
    assert aegis_rules.count_problem(25, 25, "aegis-2026.2") is None
    assert aegis_rules.count_problem(20, 25, "aegis-2026.2") == (
        "the rules endpoint lists 20 rules, aegis-2026.2's rules.json holds 25; the backend did not load the new bundle")


class Given:
    """The options a run was given, as plugins/components.py reads them."""

    def __init__(self, **options: object) -> None:
        self.options = options

    def getoption(self, name: str) -> object:
        return self.options.get(name)


@pytest.mark.parametrize(("options", "said"), [
    ({"component": "aegis", "rules": "aegis-2026.2"}, None),
    ({"component": "aegis"}, "--component aegis needs --rules (a tag, branch or commit of the rule bundle's origin, "
                             "e.g. aegis-2026.2)"),
    ({"rules": "aegis-2026.2"}, "--rules is for --component aegis (the rule bundle's release); add --component aegis "
                                "or drop --rules"),
    ({"component": "backend", "target": "v0.2.0", "rules": "main"}, "--rules is for --component aegis (the rule "
                                                                     "bundle's release); add --component aegis or drop --rules"),
    ({"component": "aegis", "rules": "main", "target": "v0.2.0"},
     "--component aegis updates the rule bundle only; drop --target, --image and --pg-rollback"),
])
def test_aegis_options(options: dict, said: str | None) -> None:
    assert component_problem(Given(**options)) == said


class Profile:
    def __init__(self, **env: str) -> None:
        self.env = env

    def setting(self, name: str) -> str:
        return self.env.get(name, "")


def test_the_audit_account_is_required_before_anything_runs() -> None:
    assert aegis_rules.audit_account(Profile(OPENWATCH_AUDIT_USER="audit", OPENWATCH_AUDIT_PASSWORD="pw")) == (
        "audit", "pw")
    with pytest.raises(OperatorError, match="^--component aegis: the engine's health and rule count need a token: "
                                            "set OPENWATCH_AUDIT_USER and OPENWATCH_AUDIT_PASSWORD in .env"):
        aegis_rules.judge(Profile(OPENWATCH_AUDIT_USER="audit"), "main")


@pytest.fixture(scope="module")
def installed_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An installation directory holding only the bundle, cloned at its oldest release from a real origin."""
    root = tmp_path_factory.mktemp("aegis")
    install_dir = root / "install"
    aegis_bundle.install(install_dir, aegis_bundle.OLDEST.tag, origin=root / "aegis-origin.git")
    return install_dir


def test_origin_tags_hold_the_rule_counts_and_main_the_newest_good_release(installed_bundle: Path) -> None:
    bundle = installed_bundle / aegis_bundle.BUNDLE_DIR
    counts = {release.tag: aegis_rules.rule_count(run(["git", "-C", str(bundle), "show", f"{release.tag}:rules.json"])
                                                  .stdout, release.tag) for release in aegis_bundle.RULE_RELEASES}
    assert counts == {"aegis-2026.1": 20, "aegis-2026.2": 25, "aegis-2026.3-empty": 0}
    main = run(["git", "-C", str(bundle), "rev-parse", "origin/main", "aegis-2026.2^{commit}"]).stdout.split()
    assert main[0] == main[1]


def test_rules_resolve_to_a_commit_of_the_bundles_origin(installed_bundle: Path) -> None:
    target = aegis_rules.resolve(installed_bundle, "aegis-2026.3-empty")
    assert (target.kind, len(target.commit)) == ("tag", 40)
    assert aegis_rules.resolve(installed_bundle, "main").kind == "branch"


@pytest.mark.parametrize(("name", "said"), [
    ("aegis-2026.1", "the rule bundle is already at aegis-2026.1 ("),
    ("aegis-2027", "aegis-2027 is not a tag, branch or commit of origin (nearest: "),
])
def test_rules_that_name_nothing_new_are_refused_in_one_line(installed_bundle: Path, name: str, said: str) -> None:
    with pytest.raises(OperatorError) as refused:
        aegis_rules.resolve(installed_bundle, name)
    assert str(refused.value).startswith(said) and "\n" not in str(refused.value)
    assert "already" in said or str(refused.value).endswith(aegis_rules.WHAT_TO_PASS)


def test_rules_need_the_bundle_repository(tmp_path: Path) -> None:
    with pytest.raises(OperatorError, match="backend/aegis is not a git repository; the Aegis rule bundle must be cloned"):
        aegis_rules.resolve(tmp_path, "main")


def test_stages_are_one_model_with_the_others() -> None:
    stages = components.stages_for("aegis")
    assert stages is aegis_rules.STAGES
    assert [s.name for s in stages] == ["gate", "lock_and_record", "backup", "verify_backup", "checkout_rules", "build",
                                        "drain_and_stop", "start", "verify", "finish"]
    assert {s.changes for s in stages} <= {"nothing", "code", "containers", "database"}
    assert [s.name for s in stages if not s.rolled_back] == ["finish"]
    assert all(callable(s.run) and s.run.__name__ == f"stage_{s.name}" for s in stages)


@pytest.mark.parametrize(("failed", "actions"), [
    ("lock_and_record", []),
    ("verify_backup", []),
    ("checkout_rules", ["check out the recorded rule bundle commit", "rebuild the backend and worker images",
                        VERIFY_RESTORED]),
    ("build", ["check out the recorded rule bundle commit", "rebuild the backend and worker images", VERIFY_RESTORED]),
    ("verify", ["stop the backend and worker", "check out the recorded rule bundle commit",
                "rebuild the backend and worker images", "compare the database with the state at the stop",
                "start the backend and worker and wait healthy", VERIFY_RESTORED]),
])
def test_rollback_stops_and_starts_only_once_the_run_had_stopped_them(failed: str, actions: list[str]) -> None:
    assert aegis_rules.rollback_actions(failed) == actions
    assert all(callable(aegis_rules.ACTIONS[title]) for title in actions)
