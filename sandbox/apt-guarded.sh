#!/usr/bin/env bash
# Install Debian packages only if that installs new packages and nothing else: apt-get simulates the
# exact command first, and any upgrade or removal of an installed package refuses the install with a
# one-line error. This is what keeps the suite's set-up from turning a Debian 12 host into Debian 13
# (a `-t trixie` install raised libc6, systemd and python3 to trixie's versions).
#   apt-guarded.sh [--simulate] PACKAGE[/RELEASE]...
# --simulate: print what would be installed and check it, install nothing (exit 1 if refused).
set -euo pipefail

simulate_only=0
if [ "${1:-}" = "--simulate" ]; then simulate_only=1; shift; fi
[ "$#" -gt 0 ] || { echo "apt-guarded: name the packages to install" >&2; exit 2; }

# Recommends are left out: docker.io recommends needrestart, which restarts the host's services
# after later apt runs; nothing the suite needs is a recommendation.
apt_args=(--no-install-recommends "$@")

plan=$(LC_ALL=C apt-get -s install "${apt_args[@]}" 2>&1) || {
  echo "apt-guarded: apt-get cannot install $*: $(printf '%s\n' "$plan" | grep -E '^E:' | head -n 1)" >&2
  exit 1
}
# Simulation lines: "Inst pkg (new ...)" is a new package, "Inst pkg [old] (new ...)" an upgrade or
# downgrade of an installed one, "Remv pkg [old]" a removal.
changed=$(printf '%s\n' "$plan" | awk '/^Inst [^ ]+ \[/ {print $2} /^Remv / {print $2}' | tr '\n' ' ')
if [ -n "$changed" ]; then
  echo "apt-guarded: refusing to install $*: it would upgrade or remove installed packages (${changed% }); install them by hand if you accept that" >&2
  exit 1
fi
new=$(printf '%s\n' "$plan" | awk '/^Inst / {print $2}' | tr '\n' ' ')
if [ "$simulate_only" = 1 ]; then
  echo "apt-guarded: would install only new packages: ${new:-nothing}"
  exit 0
fi
[ -n "$new" ] || exit 0
echo "apt-guarded: installing new packages: ${new% }"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_args[@]}" >/dev/null
