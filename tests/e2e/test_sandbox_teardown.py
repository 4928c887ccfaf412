"""Destroying an installation leaves Docker as it was: no container, volume or network behind."""

from __future__ import annotations

from pathlib import Path

from sandbox import installation, releases
from sandbox.engine import PrivateEngine
from sandbox.seed import SeedSize
from runbook.shell import run


def docker_inventory() -> dict[str, set[str]]:
    return {
        kind: set(run(["docker", *command, "--format", "{{.Name}}" if kind != "containers" else "{{.Names}}"]).stdout.split())
        for kind, command in (("containers", ["ps", "-a"]), ("volumes", ["volume", "ls"]), ("networks", ["network", "ls"]))
    }


def test_destroy_leaves_nothing_behind(sandbox_ready: Path, docker_engine: PrivateEngine, tmp_path: Path) -> None:
    before = docker_inventory()
    install = installation.create(tmp_path / "install", releases.OLDEST.tag, origin=sandbox_ready,
                                  ports=docker_engine.ports, subnet=docker_engine.install_subnet,
                                  seed_size=SeedSize(users=3, hosts=4, scans=4, results_per_scan=1))
    during = docker_inventory()
    assert during["containers"] - before["containers"] == set(installation.CONTAINERS)
    assert {"openwatch_postgres_data", "openwatch_app_data"} <= during["volumes"] - before["volumes"]
    assert "openwatch_openwatch-network" in during["networks"] - before["networks"]
    install.destroy()
    assert docker_inventory() == before
    assert not install.directory.exists()
