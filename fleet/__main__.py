"""``python -m fleet <command>``: the control-node steps the playbooks call (each prints JSON)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fleet import package, results, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    prepare = sub.add_parser("prepare", help="the run folder with no stop recorded, and the suite's source archive "
                             "and its wheelhouse, built once per content")
    prepare.add_argument("--run-dir", type=Path, required=True)
    prepare.add_argument("--out", type=Path, required=True)
    for name in ("record", "budget", "rollback-plan", "summary"):
        command = sub.add_parser(name)
        command.add_argument("--run-dir", type=Path, required=True)
    commands = sub.choices
    commands["record"].add_argument("--host", required=True)
    commands["record"].add_argument("--phase", choices=("upgrade", "rollback", "audit"), required=True)
    commands["record"].add_argument("--invocation", required=True)
    commands["record"].add_argument("--exit-status", type=int)
    commands["record"].add_argument("--unreached", help="why the host could not be reached")
    commands["record"].add_argument("--stage", help="with --unreached: the stage the host was lost in, after it started")
    commands["record"].add_argument("--bundle", type=Path, help="the host's fetched bundle tarball, unpacked into its folder")
    for name in ("budget", "rollback-plan", "summary"):
        commands[name].add_argument("--hosts", required=True, help="comma-separated, in inventory order")
    for name in ("budget", "rollback-plan", "summary"):
        commands[name].add_argument("--invocation", required=True)
    commands["budget"].add_argument("--max-failed", type=int, required=True)
    commands["budget"].add_argument("--canary", type=int, required=True, help="hosts in the first wave")
    commands["budget"].add_argument("--batch", required=True,
                                    help="comma-separated hosts of the batch about to start (empty after the last)")
    commands["summary"].add_argument("--phase", choices=("upgrade", "audit"), required=True)
    commands["summary"].add_argument("--run-id", required=True)
    args = parser.parse_args(argv)
    hosts = [host for host in getattr(args, "hosts", "").split(",") if host]

    if args.command == "prepare":
        args.run_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        (args.run_dir / results.STOP_FILE).unlink(missing_ok=True)  # a new attempt: a resume may start hosts again
        found = {"archive": str(package.build_archive(args.out)), "wheelhouse": str(package.build_wheelhouse(args.out))}
    elif args.command == "record":
        found = results.record(args.run_dir, args.host, phase=args.phase, invocation=args.invocation,
                               exit_status=args.exit_status, unreached=args.unreached, stage=args.stage,
                               bundle_tarball=args.bundle)
    elif args.command == "budget":
        # Before the batch starts, earlier batches are over: a host of theirs still in progress was lost.
        results.settle_lost(args.run_dir, hosts, args.invocation)
        stop = results.budget_stop(args.run_dir, hosts, args.invocation, max_failed=args.max_failed, canary=args.canary)
        if stop is not None and not (args.run_dir / results.STOP_FILE).exists():
            results.write_json(args.run_dir / results.STOP_FILE, stop.to_json())
        batch = [host for host in args.batch.split(",") if host]
        done = [host for host in batch if results.done_earlier(args.run_dir, host)]
        if stop is None:
            results.mark_started(args.run_dir, [host for host in batch if host not in done], phase="upgrade",
                                 invocation=args.invocation)
        found = {"stop": stop is not None, "reason": stop.reason if stop else None, "done": done}
    elif args.command == "rollback-plan":
        found = {"hosts": results.rollback_order(args.run_dir, hosts, args.invocation)}
    else:
        results.settle_lost(args.run_dir, hosts, args.invocation)
        built = summary.build(args.run_dir, hosts, phase=args.phase, run_id=args.run_id)
        summary.write(args.run_dir, built)
        found = {"verdict": built["verdict"], "failed_hosts": built["failed_hosts"]}
    json.dump(found, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
