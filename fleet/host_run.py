"""``python -m fleet.host_run --reports-dir D --journal J --bundle T -- SUITE ARGS...``: run on a fleet
host (in the suite's folder, with its venv's Python) by the playbooks' run_suite step.

Runs ``pytest SUITE ARGS --reports-dir D`` and packs the report bundle D with the installation's
journal J into the tarball T the control node fetches, in one SSH round trip instead of three (run,
pack, fetch the journal apart). pytest's console output stays on the host beside the bundle
(``D.pytest.log``): the bundle is what the suite masked. The bundle also holds ``host_run.json``: the
exit status and the suite's wall time as the host measured it (the bench sets it against a local
run). Standard library only; prints ``{"exit_status": N, "suite_s": S, "python": V}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tarfile
import time
from pathlib import Path

SUITE_TIMEOUT_S = 6 * 3600  # an upgrade with a large backup; bounded all the same


RUN_FILE = "host_run.json"


def pack(bundle: Path, reports_dir: Path, journal: Path, run: dict | None = None) -> None:
    if run is not None:
        (reports_dir / RUN_FILE).parent.mkdir(parents=True, exist_ok=True)
        (reports_dir / RUN_FILE).write_text(json.dumps(run))
    with tarfile.open(bundle, "w:gz") as tar:
        if reports_dir.is_dir():
            for path in sorted(reports_dir.iterdir()):
                tar.add(path, arcname=path.name)
        if journal.is_file():
            tar.add(journal, arcname="journal.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet.host_run", description=__doc__)
    parser.add_argument("--reports-dir", type=Path, required=True)
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("suite_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    suite_args = args.suite_args[1:] if args.suite_args[:1] == ["--"] else args.suite_args
    args.reports_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with args.reports_dir.with_name(f"{args.reports_dir.name}.pytest.log").open("wb") as log:
        suite = subprocess.run([sys.executable, "-m", "pytest", *suite_args, "--reports-dir", str(args.reports_dir),
                                "-p", "no:cacheprovider", "-o", "log_cli=false", "-q"],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               timeout=SUITE_TIMEOUT_S, check=False)
    run = {"exit_status": suite.returncode, "suite_s": round(time.monotonic() - started, 3),
           "python": platform.python_version()}
    pack(args.bundle, args.reports_dir, args.journal, run)
    json.dump(run, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
