"""No secret from .env reaches any output of a run: terminal, live logs, JUnit XML, HTML report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runbook.redaction import MASK, Redactor, Secret, is_secret_name
from tests.suite_runner import ROOT

CANARY = "Leak-Canary-7f3a9c-0b1d"

LEAKY_SUITE = '''
import logging, sys
import pytest
from runbook.errors import Problem, NotApplicable

@pytest.fixture
def broken_fixture(profile):
    raise Problem("fixture saw " + profile.setting("POSTGRES_PASSWORD"))

def test_problem_message(profile, record_property):
    secret = profile.setting("POSTGRES_PASSWORD")
    logging.getLogger("openwatch.test").warning("logged %s", secret)
    print("stdout", secret)
    print("stderr", secret, file=sys.stderr)
    record_property("leaky", secret)
    raise Problem("check failed with " + secret)

def test_assertion_introspection(profile):
    assert profile.setting("POSTGRES_PASSWORD") == "something else"

def test_skip_reason(profile):
    raise NotApplicable("skipped because " + profile.setting("POSTGRES_PASSWORD"))

def test_fixture_error(broken_fixture):
    pass

def test_repr_of_env(profile):
    raise Problem(repr(dict(profile.env)))
'''


# These run the suites, which ask the Docker engine first: the tests' private one.
pytestmark = pytest.mark.usefixtures("docker_engine")


def fake_installation(root: Path) -> Path:
    install = root / "install"
    (install / "backend").mkdir(parents=True)
    (install / "VERSION").write_text("0.1.0\n")
    (install / "backend" / "alembic.ini").write_text("[alembic]\n")
    others = "".join(f"  {name}:\n    image: openwatch-sandbox/redis:7\n    container_name: leak-{name}\n"
                     for name in ("database", "redis", "worker", "frontend"))
    (install / "docker-compose.yml").write_text(
        "services:\n  backend:\n    image: openwatch-sandbox/redis:7\n    container_name: leak-backend\n"
        "    environment:\n      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}\n" + others)
    (install / ".env").write_text(f"POSTGRES_PASSWORD={CANARY}\nPOSTGRES_PORT=1\n")
    return install


def test_secret_never_reaches_any_output(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    install = fake_installation(pytester.path)
    pytester.makeconftest((ROOT / "conftest.py").read_text())
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "test_leaky.py").write_text(LEAKY_SUITE)
    result = pytester.runpytest_subprocess(
        "suites", "--install-dir", str(install), "-rA", "-o", "log_cli=true", "-o", "log_cli_level=INFO",
        "--junitxml=out.xml", "--html=out.html", "--self-contained-html",
    )
    result.assert_outcomes(failed=3, skipped=1, errors=1)
    bundle_json = list((pytester.path / "reports").glob("*.json"))
    assert len(bundle_json) == 1
    outputs = {
        "terminal": "\n".join(result.outlines + result.errlines),
        "junit": (pytester.path / "out.xml").read_text(),
        "html": (pytester.path / "out.html").read_text(),
        "json summary": bundle_json[0].read_text(),
        "index": (pytester.path / "reports" / "index.html").read_text(),
    }
    for name, text in outputs.items():
        assert CANARY not in text, f"secret leaked into {name}"
        assert CANARY[:12] not in text, f"part of the secret leaked into {name}"
    assert outputs["terminal"].count(MASK) >= 5
    assert re.search(r"check failed with \*+", outputs["junit"])
    assert "logged ********" in outputs["html"]
    assert "check failed with ********" in outputs["json summary"]
    assert "test_problem_message</strong>: check failed with ********" in outputs["html"]  # the verdict card


def test_secret_type_masks_every_rendering() -> None:
    secret = Secret(CANARY)
    assert CANARY not in f"{secret} {secret!r} {secret!s} {[secret]} {dict(k=secret)}"
    assert secret.reveal() == CANARY and secret == Secret(CANARY) and bool(secret)


def test_redactor_masks_longest_values_first_and_ignores_short_ones() -> None:
    redact = Redactor(["abcdef", "abcdefgh", "ab"])
    assert redact("x abcdefgh y abcdef z ab") == f"x {MASK} y {MASK} z ab"
    assert Redactor()("nothing to hide") == "nothing to hide"


@pytest.mark.parametrize(("name", "secret"), [
    ("POSTGRES_PASSWORD", True), ("JWT_SECRET_KEY", True), ("MASTER_KEY", True), ("OPENWATCH_ENCRYPTION_KEY", True),
    ("LDAP_BIND_PASSWORD", True), ("POSTGRES_PORT", False), ("COMPOSE_PROJECT_NAME", False), ("KEYBOARD", False),
])
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


@pytest.mark.parametrize(("text", "expected"), [
    ("Authorization: Bearer abc.def-123", f"Authorization: Bearer {MASK}"),
    ("{'Authorization': 'Bearer eyJhbGciOi.eyJzdWIi.c2lnbmF0'}", f"{{'Authorization': 'Bearer {MASK}'}}"),
    ("postgresql+psycopg2://openwatch:hunter2@database:5432/openwatch",
     f"postgresql+psycopg2://openwatch:{MASK}@database:5432/openwatch"),
    ("redis://:s3cr3t@redis:6379/0", f"redis://:{MASK}@redis:6379/0"),
    ("http://127.0.0.1:8000/health", "http://127.0.0.1:8000/health"),
])
def test_redactor_masks_tokens_and_dsn_passwords_by_shape(text: str, expected: str) -> None:
    assert Redactor()(text) == expected
