"""``python -m sandbox up|down``: the test bed for a person (``make demo`` uses it)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from sandbox import installation, releases
from runbook.shell import CommandError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="create a seeded, healthy installation")
    up.add_argument("--release", default=releases.OLDEST.tag, choices=list(releases.BY_TAG))
    up.add_argument("--dir", type=Path, default=installation.DEFAULT_DIR)
    up.add_argument("--replace", action="store_true", help="destroy an installation already in --dir first")
    down = sub.add_parser("down", help="remove the installation's containers, volumes, networks and directory")
    down.add_argument("--dir", type=Path, default=installation.DEFAULT_DIR)
    prepare = sub.add_parser("prepare", help="add to .env what a target release's .env.example asks for "
                                             "(the operator's step before an upgrade)")
    prepare.add_argument("--dir", type=Path, default=installation.DEFAULT_DIR)
    prepare.add_argument("--target", required=True, choices=list(releases.BY_TAG))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    try:
        if args.command == "down":
            installation.Installation(args.dir).destroy()
            return 0
        if args.command == "prepare":
            added = installation.Installation(args.dir).prepare_env(args.target)
            print(f"added to .env: {', '.join(added) or 'nothing'}")
            return 0
        if args.replace:
            installation.Installation(args.dir).destroy()
        install = installation.create(args.dir, args.release)
        print(json.dumps(install.health().json(), indent=2))
        return 0
    except (CommandError, FileExistsError, ValueError) as error:
        print(f"sandbox: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
