#!/usr/bin/env bash
# Make a Docker engine (>= 25, compose v2 plugin, buildx) answer on this machine.
# Idempotent: does nothing when an engine already answers with compose v2.
# Debian bookworm's docker.io has compose v1 only, so the engine comes from trixie,
# added as an extra apt source pinned at priority 100 (nothing else is pulled from it).
set -euo pipefail

log() { printf '[bootstrap-docker] %s\n' "$*"; }

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/openwatch-sandbox-dockerd.log}
DEADLINE_S=${DOCKERD_DEADLINE_S:-60}

engine_answers() { docker info >/dev/null 2>&1; }
compose_v2() { docker compose version >/dev/null 2>&1; }

if engine_answers && compose_v2; then
  log "engine already answers ($(docker version --format '{{.Server.Version}}')), compose $(docker compose version --short)"
  exit 0
fi

[ "$(id -u)" = 0 ] || { echo "bootstrap-docker: run as root (apt-get and dockerd need it)" >&2; exit 1; }

# Mirror and keyring come from the machine's own Debian source, never a hard-coded host.
debian_source() {
  local f=/etc/apt/sources.list.d/debian.sources
  [ -r "$f" ] || { echo "bootstrap-docker: $f not found; add a Debian deb822 source first" >&2; exit 1; }
  local uri keyring
  uri=$(awk '/^URIs:/{print $2; exit}' "$f")
  keyring=$(awk '/^Signed-By:/{print $2; exit}' "$f")
  printf '%s %s\n' "$uri" "$keyring"
}

install_engine() {
  read -r mirror keyring < <(debian_source)
  local src=/etc/apt/sources.list.d/openwatch-sandbox-trixie.sources
  local pin=/etc/apt/preferences.d/openwatch-sandbox-trixie
  if [ ! -f "$src" ]; then
    log "adding trixie apt source from $mirror (pinned at priority 100)"
    printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: %s\n' "$mirror" "$keyring" >"$src"
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' >"$pin"
  fi
  log "apt-get update"
  apt-get update -qq
  log "installing docker.io docker-compose docker-buildx from trixie"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t trixie docker.io docker-compose docker-buildx >/dev/null
}

if ! command -v dockerd >/dev/null 2>&1 || ! [ -x /usr/libexec/docker/cli-plugins/docker-compose ]; then
  install_engine
fi

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

compose_v2 || { echo "bootstrap-docker: 'docker compose' (v2) is missing; install docker-compose from trixie" >&2; exit 1; }
log "engine $(docker version --format '{{.Server.Version}}') ($(docker info --format '{{.Driver}}') storage), compose $(docker compose version --short)"
