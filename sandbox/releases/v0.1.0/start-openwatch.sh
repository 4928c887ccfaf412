#!/usr/bin/env bash
# Start OpenWatch: ./start-openwatch.sh [--runtime docker|podman] [--build] [--dev] [--no-health-check]
set -euo pipefail
cd "$(dirname "$0")"
runtime=docker build=() health=1 files=(-f docker-compose.yml)
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) runtime=$2; shift 2 ;;
    --build) build=(--build); shift ;;
    --dev) shift ;;
    --prod) files+=(-f docker-compose.prod.yml); shift ;;
    --no-health-check) health=0; shift ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
[ "$runtime" = docker ] || [ "$runtime" = podman ] || { echo "--runtime must be docker or podman" >&2; exit 2; }
if [ ${#build[@]} -gt 0 ]; then "$runtime" compose "${files[@]}" build --no-cache; fi
"$runtime" compose "${files[@]}" up -d
if [ "$health" = 1 ]; then
  port=$(sed -n 's/^BACKEND_PORT=//p' .env); port=${port:-8000}
  for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && { echo "OpenWatch is healthy"; exit 0; }
    sleep 1
  done
  echo "OpenWatch did not become healthy within 120s" >&2; exit 1
fi
