"""``python -m sandbox up|down``: the test bed for a person (``make demo`` uses it)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path

from sandbox import engine as engines
from sandbox import installation, releases
from sandbox.real import installation as real_installation
from sandbox.real import override as real_override
from sandbox.real import releases as real_releases
from runbook.shell import CommandError


def existing(directory: Path) -> installation.Installation:
    """The installation in ``directory``, real or sandbox (the real one keeps its settings in ``.git``)."""
    if (directory / real_override.STATE_DIR).is_dir():
        return real_installation.RealInstallation(directory)
    return installation.Installation(directory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="create a seeded, healthy installation")
    up.add_argument("--release", default=releases.OLDEST.tag, choices=[*releases.BY_TAG, *real_releases.BY_TAG],
                    help="a sandbox release, or a tag of the real OpenWatch (compose-2026-...)")
    up.add_argument("--dir", type=Path, default=installation.DEFAULT_DIR)
    up.add_argument("--replace", action="store_true", help="destroy an installation already in --dir first")
    for command in (up, down := sub.add_parser("down", help="remove the installation's containers, volumes, "
                                                             "networks and directory")):
        command.add_argument("--engine", metavar="NAME",
                             help="use the running private engine NAME (its DOCKER_HOST, 127.0.0.1 ports and subnet)")
    down.add_argument("--dir", type=Path, default=installation.DEFAULT_DIR)
    prepare = sub.add_parser("prepare", help="add to .env what a target release's .env.example asks for "
                                             "(the operator's step before an upgrade)")
    prepare.add_argument("--dir", type=Path, default=installation.DEFAULT_DIR)
    prepare.add_argument("--target", required=True, choices=list(releases.BY_TAG))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    engine = engines.PrivateEngine(args.engine) if getattr(args, "engine", None) else None
    if engine is not None and not engine.answers():
        print(f"sandbox: the private engine {engine.name!r} is not running; start it first", file=sys.stderr)
        return 1
    with engine.as_docker_host() if engine else contextlib.nullcontext():
        return run_command(args, engine)


def run_command(args: argparse.Namespace, engine: engines.PrivateEngine | None) -> int:
    try:
        if args.command == "down":
            existing(args.dir).destroy()
            return 0
        if args.command == "prepare":
            added = installation.Installation(args.dir).prepare_env(args.target)
            print(f"added to .env: {', '.join(added) or 'nothing'}")
            return 0
        if args.replace:
            existing(args.dir).destroy()
        placement = {"ports": engine.ports, "subnet": engine.install_subnet} if engine else {}
        if args.release in real_releases.BY_TAG:
            install = real_installation.create(args.dir, args.release, **placement)
        else:
            install = installation.create(args.dir, args.release, **placement)
        print(json.dumps(install.health().json(), indent=2))
        return 0
    except (CommandError, FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"sandbox: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
