"""The sandbox's release table, .env rendering and image inputs, without Docker."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import images, installation, releases, seed
from runbook.shell import run


def test_every_release_has_an_overlay_and_an_earlier_parent() -> None:
    seen: set[str] = set()
    for release in releases.RELEASES:
        assert (releases.RELEASES_DIR / release.tag).is_dir(), release.tag
        assert release.parent is None or release.parent in seen, release.tag
        seen.add(release.tag)
    assert [r.tag for r in releases.RELEASES if not r.is_fault] == ["v0.1.0", "v0.2.0", "v0.2.1", "v1.0.0"]
    assert {r.tag for r in releases.RELEASES if r.is_fault} == {
        "v0.2.0-fault-migration", "v0.2.0-fault-partial-migration", "v0.2.0-fault-crashloop", "v0.2.0-fault-health",
        "v1.0.0-fault-downgrade"}


@pytest.mark.parametrize(("tag", "version"), [("v0.2.1", "0.2.1"), ("v1.0.0-fault-downgrade", "1.0.0")])
def test_release_version_is_the_tag_without_prefix_or_fault(tag: str, version: str) -> None:
    assert releases.BY_TAG[tag].version == version


def test_every_release_head_is_a_revision_file_in_its_lineage() -> None:
    for release in releases.RELEASES:
        revision_files = {
            path.stem for ancestor in releases.lineage(release.tag)
            for path in (releases.RELEASES_DIR / ancestor.tag / "backend/alembic/versions").glob("*.py")
        }
        assert release.head in revision_files, release.tag


def test_origin_is_deterministic_and_reused(tmp_path: Path) -> None:
    first = releases.ensure_origin(tmp_path / "a.git")
    second = releases.ensure_origin(tmp_path / "b.git")
    tags = ["git", "for-each-ref", "--format=%(refname) %(objectname)", "refs/tags"]
    assert run(tags, cwd=first).stdout == run(tags, cwd=second).stdout
    assert run(["git", "show", "v0.2.1:VERSION"], cwd=first).stdout == "0.2.1\n"
    marker = (first / releases.DIGEST_FILE).stat().st_mtime_ns
    releases.ensure_origin(first)
    assert (first / releases.DIGEST_FILE).stat().st_mtime_ns == marker


def test_env_placeholders_become_distinct_secrets_and_ports_are_applied() -> None:
    example = (releases.RELEASES_DIR / "v0.2.0" / ".env.example").read_text()
    env_text = installation.render_env(example, installation.Ports(postgres=15432, backend=18000, frontend=13000))
    path_values = dict(line.split("=", 1) for line in env_text.splitlines() if "=" in line and not line.startswith("#"))
    secrets = [path_values[name] for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "OPENWATCH_SECRET_KEY",
                                              "JWT_SECRET_KEY", "OPENWATCH_ENCRYPTION_KEY", "OPENWATCH_AUDIT_PASSWORD")]
    assert f"={installation.PLACEHOLDER}" not in env_text
    assert len(set(secrets)) == len(secrets) and all(len(value) >= 24 for value in secrets)
    assert (path_values["POSTGRES_PORT"], path_values["BACKEND_PORT"], path_values["FRONTEND_PORT"]) == (
        "15432", "18000", "13000")
    assert path_values["SMTP_PASSWORD"] == ""


def test_parse_env_reads_what_render_env_writes(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\nA=1\nB='quoted'\n\nC=x=y\n")
    assert installation.parse_env(env_file) == {"A": "1", "B": "quoted", "C": "x=y"}


def test_password_hash_has_the_backend_format() -> None:
    scheme, iterations, salt, digest = seed.password_hash("s3cret", salt="abc").split("$")
    assert (scheme, iterations, salt, len(digest)) == ("pbkdf2_sha256", "100000", "abc", 64)
    assert seed.password_hash("s3cret", salt="abc") != seed.password_hash("other", salt="abc")


def test_debian_mirror_comes_from_the_deb822_source(tmp_path: Path) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n")
    assert images.debian_mirror(sources) == "http://mirror.example/debian"
    sources.write_text("Types: deb\n")
    with pytest.raises(RuntimeError, match="no 'URIs:' line"):
        images.debian_mirror(sources)
