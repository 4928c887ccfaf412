#!/usr/bin/env bash
# Stop OpenWatch: ./stop-openwatch.sh [--simple] [--deep-clean]
# --simple (default): compose down, which REMOVES the containers. --deep-clean also deletes volumes.
set -euo pipefail
cd "$(dirname "$0")"
case "${1:---simple}" in
  --simple) docker compose down ;;
  --deep-clean) docker compose down --volumes --remove-orphans ;;
  *) echo "unknown option: $1" >&2; exit 2 ;;
esac
