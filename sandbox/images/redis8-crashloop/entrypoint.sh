#!/bin/sh
if [ -n "$(ls -A /data 2>/dev/null)" ]; then
  echo "# Bad file format reading the append only file /data/appendonlydir: make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>" >&2
  exit 1
fi
exec "$@"
