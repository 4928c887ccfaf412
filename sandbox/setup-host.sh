#!/usr/bin/env bash
# Debian packages the set-up needs that a stock Debian 12 lacks (a minimal install has neither
# python3-venv nor iproute2). Only missing ones are installed, through sandbox/apt-guarded.sh, which
# refuses anything that would upgrade or remove an installed package. Prerequisites a person must
# have before this: make and git (README).
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# Debian's python3 ships venv without ensurepip; `python3 -m venv` then fails half-way.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
[ "${#missing[@]}" -eq 0 ] && exit 0

[ "$(id -u)" = 0 ] || { echo "setup-host: ${missing[*]} missing; run as root, or install them: apt-get install ${missing[*]}" >&2; exit 1; }
echo "[setup-host] installing what this Debian lacks: ${missing[*]}"
# A stock system may never have fetched package lists; updating them changes no installed package.
apt-get update -qq
bash ./apt-guarded.sh "${missing[@]}"
