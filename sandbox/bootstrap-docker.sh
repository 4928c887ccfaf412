#!/usr/bin/env bash
# Make the Docker engine binaries (compose v2 plugin, buildx) present on this machine and, unless
# --install-only, a Docker engine answer on the default socket (what `make demo` uses).
#   bootstrap-docker.sh [--install-only | --simulate]
# An engine that already answers (Docker >= 20.10 with compose v2) is used as it is. Otherwise the
# packages come from Debian trixie (bookworm's docker.io has compose v1 only), added as an apt source
# pinned at 100, and only the packages bookworm lacks are named from trixie: their dependencies
# (containerd aside, which docker.io 26 needs new) come from bookworm, and sandbox/apt-guarded.sh
# refuses the install if it would upgrade or remove anything installed.
# --simulate: add the source if needed and check the exact install, install and start nothing.
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '[bootstrap-docker] %s\n' "$*"; }
fail() { echo "bootstrap-docker: $*" >&2; exit 1; }

mode=${1:-start}
case "$mode" in start|--install-only|--simulate) ;; *) fail "unknown option $mode; use --install-only or --simulate" ;; esac

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/openwatch-sandbox-dockerd.log}
DEADLINE_S=${DOCKERD_DEADLINE_S:-60}
PACKAGES=(docker.io/trixie docker-cli/trixie docker-compose/trixie docker-buildx/trixie)

engine_answers() { docker info >/dev/null 2>&1; }
compose_v2() { docker compose version >/dev/null 2>&1; }
binaries_present() { command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 && compose_v2; }
engine_recent() {
  local version major minor
  version=$(docker version --format '{{.Server.Version}}' 2>/dev/null) || return 1
  IFS=. read -r major minor _ <<<"$version"
  [ "${major:-0}" -gt 20 ] || { [ "${major:-0}" -eq 20 ] && [ "${minor:-0}" -ge 10 ]; }
}

if [ "$mode" = start ] && engine_answers && compose_v2; then
  engine_recent || fail "the engine that answers is Docker $(docker version --format '{{.Server.Version}}'); the suite needs 20.10 or newer"
  log "engine already answers ($(docker version --format '{{.Server.Version}}')), compose $(docker compose version --short)"
  exit 0
fi

# Mirror and keyring come from the machine's own Debian source, never a hard-coded host.
add_trixie_source() {
  local f=/etc/apt/sources.list.d/debian.sources
  local src=/etc/apt/sources.list.d/openwatch-sandbox-trixie.sources
  local pin=/etc/apt/preferences.d/openwatch-sandbox-trixie
  [ -f "$src" ] && [ -f "$pin" ] && return 0
  [ -r "$f" ] || fail "$f not found; add a Debian deb822 source first"
  local mirror keyring
  mirror=$(awk '/^URIs:/{print $2; exit}' "$f")
  keyring=$(awk '/^Signed-By:/{print $2; exit}' "$f")
  log "adding trixie apt source from $mirror (pinned at priority 100: nothing is taken from it unless named)"
  printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' >"$pin"
  printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: %s\n' "$mirror" "$keyring" >"$src"
  apt-get update -qq
}

if [ "$mode" = --simulate ]; then
  [ "$(id -u)" = 0 ] || fail "run as root (apt-get needs it)"
  add_trixie_source
  exec bash ./apt-guarded.sh --simulate "${PACKAGES[@]}"
fi

if ! binaries_present; then
  [ "$(id -u)" = 0 ] || fail "run as root (apt-get and dockerd need it)"
  add_trixie_source
  log "installing ${PACKAGES[*]} (only new packages, checked by a simulation first)"
  bash ./apt-guarded.sh "${PACKAGES[@]}"
  hash -r
fi
compose_v2 || fail "'docker compose' (v2) is missing; install docker-compose from trixie"
[ "$mode" = --install-only ] && { log "docker $(docker --version | awk '{print $3}' | tr -d ,), compose $(docker compose version --short) present"; exit 0; }

if ! engine_answers; then
  log "starting dockerd (log: $DOCKERD_LOG)"
  # setsid: the daemon must outlive this script and the shell that ran it.
  setsid dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
  for _ in $(seq 1 "$DEADLINE_S"); do
    engine_answers && break
    sleep 1
  done
  if ! engine_answers; then
    echo "bootstrap-docker: dockerd did not answer within ${DEADLINE_S}s; last lines of $DOCKERD_LOG:" >&2
    tail -n 20 "$DOCKERD_LOG" >&2
    exit 1
  fi
fi
log "engine $(docker version --format '{{.Server.Version}}') ($(docker info --format '{{.Driver}}') storage), compose $(docker compose version --short)"
