"""What a Redis holds, read so that two different Redis versions give the same answer for the same
data: per database its key count and a digest of every key's type and value (read in a Lua script,
``EVAL_RO``, so it is one round trip and sees one instant), and the Celery queues' lengths.

``DUMP`` would be shorter but its payload carries the RDB version, and scores printed by the server
change format between versions (7.0 prints 0.1 as 0.10000000000000001, 7.2 and later as 0.1): the
script formats them itself. A key whose expiry falls within ``EXPIRING_MS`` is counted, not
digested: it may expire between two readings without anything being lost."""

from __future__ import annotations

import hashlib
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from runbook import containers
from runbook.errors import Problem
from runbook.redaction import Redactor

EXPIRING_MS = 600_000
DIGEST_SCRIPT = r"""
local cursor, keys = '0', {}
repeat
  local reply = redis.call('SCAN', cursor, 'COUNT', 1000)
  cursor = reply[1]
  for _, key in ipairs(reply[2]) do keys[#keys + 1] = key end
until cursor == '0'
table.sort(keys)
local digests, expiring = {}, 0
local function pairs_sorted(flat)
  local items = {}
  for i = 1, #flat, 2 do items[#items + 1] = {flat[i], flat[i + 1]} end
  table.sort(items, function(a, b) return a[1] < b[1] end)
  return items
end
for _, key in ipairs(keys) do
  local ttl = redis.call('PTTL', key)
  if ttl >= 0 and ttl < tonumber(ARGV[1]) then
    expiring = expiring + 1
  else
    local kind = redis.call('TYPE', key)['ok']
    local value
    if kind == 'string' then value = redis.call('GET', key)
    elseif kind == 'list' then value = redis.call('LRANGE', key, 0, -1)
    elseif kind == 'hash' then value = pairs_sorted(redis.call('HGETALL', key))
    elseif kind == 'set' then value = redis.call('SMEMBERS', key); table.sort(value)
    elseif kind == 'zset' then
      value = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
      for i = 2, #value, 2 do value[i] = string.format('%.17g', tonumber(value[i])) end
    elseif kind == 'stream' then value = redis.call('XRANGE', key, '-', '+')
    else value = kind end
    digests[#digests + 1] = redis.sha1hex(cjson.encode({key, kind, ttl >= 0, value}))
  end
end
return {#keys, expiring, redis.sha1hex(table.concat(digests))}
"""


@dataclass(frozen=True)
class RedisState:
    version: str
    databases: dict[str, dict]  # "0" -> {"keys": n, "expiring": n, "digest": sha1}
    queues: dict[str, int]  # Celery queue -> LLEN

    def to_json(self) -> dict:
        return {"version": self.version, "databases": self.databases, "queues": self.queues}

    @classmethod
    def from_json(cls, data: dict) -> RedisState:
        return cls(data["version"], data["databases"], data["queues"])

    @property
    def keys(self) -> int:
        return sum(database["keys"] for database in self.databases.values())


def differences(recorded: RedisState, found: RedisState) -> list[str]:
    """What differs in the data (the version may): keys and digests per database, queue lengths."""
    lines = []
    for number in sorted(set(recorded.databases) | set(found.databases), key=int):
        was, now = recorded.databases.get(number), found.databases.get(number)
        if was is None or now is None:
            lines.append(f"db{number} {'appeared' if was is None else 'is gone'}")
        elif was["keys"] != now["keys"]:
            lines.append(f"db{number} has {now['keys']} keys, recorded {was['keys']}")
        elif was["digest"] != now["digest"]:
            lines.append(f"db{number}: {now['keys']} keys as recorded, but their contents differ")
    lines += [f"queue {queue} holds {found.queues.get(queue)} messages, recorded {count}"
              for queue, count in recorded.queues.items() if found.queues.get(queue) != count]
    return lines


VERSION = re.compile(r"(?:v=|redis_version:)(\d+(?:\.\d+)*)")


def version_in(text: str) -> str | None:
    """``redis-server --version`` ("Redis server v=8.0.2 sha=...") or ``INFO server``'s version."""
    found = VERSION.search(text)
    return found.group(1) if found else None


def version_in_tag(image: str) -> str | None:
    """The version an image's tag promises: "8" of ``redis:8``, "7.2.5" of ``redis:7.2.5-alpine``."""
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    found = re.match(r"\d+(?:\.\d+)*", tag)
    return found.group(0) if found else None


def as_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def image_problem(old_version: str, new_version: str, tag_version: str | None) -> str | None:
    if tag_version is not None and as_tuple(new_version)[:len(as_tuple(tag_version))] != as_tuple(tag_version):
        return f"it runs Redis {new_version}, its tag says {tag_version}"
    if as_tuple(new_version) <= as_tuple(old_version):
        return f"it runs Redis {new_version}, not newer than the installed {old_version}"
    return None


def keyspace_databases(info: str) -> list[str]:
    """The database numbers ``INFO keyspace`` lists ("db0:keys=12,expires=1,avg_ttl=0")."""
    return re.findall(r"^db(\d+):keys=", info, flags=re.MULTILINE)


def read(container: str, password: str, redactor: Redactor, queues: dict[str, int]) -> RedisState:
    """The state of the Redis in ``container`` (its Celery ``queues`` read by the caller)."""
    def cli(*argv: str) -> str:
        said = containers.exec_in(container, ["redis-cli", *argv], secret_env={"REDISCLI_AUTH": password}, timeout=120)
        if said.returncode != 0 or said.stdout.startswith(("ERR", "NOAUTH", "WRONGPASS", "LOADING")):
            raise Problem(f"redis-cli {argv[0]} in {container} failed: "
                          f"{redactor((said.stdout or said.stderr).strip())[:200]}")
        return said.stdout

    version = version_in(cli("INFO", "server"))
    databases = {}
    for number in keyspace_databases(cli("INFO", "keyspace")):
        keys, expiring, digest = cli("-n", number, "EVAL_RO", DIGEST_SCRIPT, "0", str(EXPIRING_MS)).split()
        databases[number] = {"keys": int(keys), "expiring": int(expiring), "digest": digest}
    return RedisState(version or "unknown", databases, queues)


def manifest(archive: Path) -> dict[str, str]:
    """sha256 of every file in a ``docker cp`` tar of the data directory, by its path in the tar."""
    found = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile():
                digest = hashlib.sha256()
                with tar.extractfile(member) as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
                found[member.name] = digest.hexdigest()
    return found


def changed_files(recorded: dict[str, str], found: dict[str, str]) -> list[str]:
    """Files added, removed or rewritten since ``recorded`` (the new version's rewrite of the AOF or RDB)."""
    return sorted(name for name in set(recorded) | set(found) if recorded.get(name) != found.get(name))
