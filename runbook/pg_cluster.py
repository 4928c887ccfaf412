"""What a PostgreSQL cluster is, beyond its tables: the facts a major upgrade must carry over and
the pre-flight must find supported by the new version (server major, data checksums, each
database's encoding, collation and owner, roles with their attributes, memberships and password
verifiers, extensions, and who owns every schema, table, sequence, view and type).

Password verifiers are compared by digest only: the suite never holds them in the journal."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import psycopg

ROLE_ATTRIBUTES = ("rolsuper", "rolinherit", "rolcreaterole", "rolcreatedb", "rolcanlogin", "rolreplication",
                   "rolbypassrls", "rolconnlimit")
DATABASES_SQL = ("SELECT datname::text, pg_encoding_to_char(encoding), datcollate::text, datctype::text, "
                 "pg_get_userbyid(datdba)::text FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1")
ROLES_SQL = (f"SELECT rolname::text, {', '.join(ROLE_ATTRIBUTES)}, coalesce(md5(rolpassword), '') "
             "FROM pg_authid WHERE rolname !~ '^pg_' ORDER BY 1")
MEMBERS_SQL = ("SELECT r.rolname::text, m.rolname::text FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid "
               "JOIN pg_roles m ON m.oid = a.member WHERE m.rolname !~ '^pg_' ORDER BY 1, 2")
EXTENSIONS_SQL = "SELECT extname::text, extversion::text FROM pg_extension ORDER BY 1"
# Everything a user can own inside a database, outside the system schemas.
OWNERS_SQL = """
SELECT 'schema ' || nspname, pg_get_userbyid(nspowner)::text FROM pg_namespace
 WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'
UNION ALL
SELECT CASE c.relkind WHEN 'S' THEN 'sequence ' WHEN 'v' THEN 'view ' WHEN 'm' THEN 'view ' ELSE 'table ' END
       || n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner)::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'S', 'v', 'm') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
UNION ALL
SELECT 'type ' || n.nspname || '.' || t.typname, pg_get_userbyid(t.typowner)::text
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typtype IN ('e', 'd') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
ORDER BY 1
"""


@dataclass
class ClusterFacts:
    server_version: str  # as the server reports it, e.g. "15.14"
    data_checksums: bool
    databases: dict[str, dict] = field(default_factory=dict)  # name -> encoding, collate, ctype, owner
    roles: dict[str, dict] = field(default_factory=dict)  # name -> attributes, password digest, member_of
    extensions: dict[str, dict[str, str]] = field(default_factory=dict)  # database -> extension -> version
    owners: dict[str, dict[str, str]] = field(default_factory=dict)  # database -> object -> owner

    @property
    def major(self) -> int:
        return major_of(self.server_version)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ClusterFacts:
        return cls(**data)


def major_of(version: str) -> int:
    """The major number of a version string from ``SHOW server_version`` or ``postgres --version``
    ("postgres (PostgreSQL) 17.6 (Debian 17.6-1)" -> 17)."""
    found = re.search(r"(\d+)(?:\.\d+|devel|beta|rc)", version)
    if found is None:
        raise ValueError(f"no PostgreSQL version in {version!r}")
    return int(found.group(1))


def major_in_tag(image: str) -> int | None:
    """The major an image's tag names (``postgres:17``, ``postgres:17.6-alpine``), None if it names none."""
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    found = re.match(r"(\d+)(?:$|[.-])", tag)
    return int(found.group(1)) if found else None


def globals_for_new_cluster(globals_sql: str, existing_roles: set[str]) -> str:
    """``pg_dumpall --globals-only`` output for a cluster that already has ``existing_roles`` (its
    bootstrap superuser, the predefined roles): their ``CREATE ROLE`` dropped, their ``ALTER ROLE``
    (attributes, password verifier) kept, so the script runs with ON_ERROR_STOP."""
    kept = []
    for line in globals_sql.splitlines():
        created = re.fullmatch(r'CREATE ROLE ("(?:[^"]|"")+"|[^\s;]+);', line.strip())
        if created and _unquote(created.group(1)) in existing_roles:
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def read(connect: Callable[[str], psycopg.Connection], maintenance_db: str, skip: Iterable[str] = ()) -> ClusterFacts:
    """The cluster's facts; ``connect(dbname)`` opens a superuser connection to one database.
    Databases whose names start with one of ``skip`` (the suite's scratch databases) are left out."""
    skipped = tuple(skip)
    with connect(maintenance_db) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        checksums = conn.execute("SHOW data_checksums").fetchone()[0] == "on"
        databases = {name: {"encoding": encoding, "collate": collate, "ctype": ctype, "owner": owner}
                     for name, encoding, collate, ctype, owner in conn.execute(DATABASES_SQL)
                     if not (skipped and name.startswith(skipped))}
        roles = {}
        for name, *values in conn.execute(ROLES_SQL):
            roles[name] = {**dict(zip(ROLE_ATTRIBUTES, values[:-1])), "password_digest": values[-1], "member_of": []}
        for role, member in conn.execute(MEMBERS_SQL):
            if member in roles:
                roles[member]["member_of"].append(role)
    extensions, owners = {}, {}
    for name in databases:
        with connect(name) as conn:
            extensions[name] = dict(conn.execute(EXTENSIONS_SQL).fetchall())
            owners[name] = dict(conn.execute(OWNERS_SQL).fetchall())
    return ClusterFacts(version, checksums, databases, roles, extensions, owners)


def differences(recorded: ClusterFacts, found: ClusterFacts) -> list[str]:
    """What the new cluster does not carry over, one line each (its version is meant to differ; an
    extension's version may move with the server, its presence may not)."""
    lines = []
    if found.data_checksums != recorded.data_checksums:
        lines.append(f"data checksums {'on' if found.data_checksums else 'off'}, recorded "
                     f"{'on' if recorded.data_checksums else 'off'}")
    lines += _mapping_differences("database", recorded.databases, found.databases)
    lines += _mapping_differences("role", recorded.roles, found.roles)
    for database in sorted(set(recorded.extensions) & set(found.extensions)):
        missing = sorted(set(recorded.extensions[database]) - set(found.extensions[database]))
        lines += [f"database {database}: extension {name} is missing" for name in missing]
    for database in sorted(set(recorded.owners) & set(found.owners)):
        lines += _mapping_differences(f"database {database}: owner of", recorded.owners[database],
                                      found.owners[database])
    return lines


def _mapping_differences(what: str, recorded: dict, found: dict) -> list[str]:
    lines = [f"{what} {name} is missing" for name in sorted(set(recorded) - set(found))]
    lines += [f"{what} {name} is new" for name in sorted(set(found) - set(recorded))]
    for name in sorted(set(recorded) & set(found)):
        if recorded[name] != found[name]:
            if isinstance(recorded[name], dict):
                keys = sorted(key for key in recorded[name] if recorded[name][key] != found[name].get(key))
                changed = ", ".join(f"{key} {found[name].get(key)!r} (recorded {recorded[name][key]!r})"
                                    if key != "password_digest" else "password verifier changed" for key in keys)
            else:
                changed = f"{found[name]!r} (recorded {recorded[name]!r})"
            lines.append(f"{what} {name}: {changed}")
    return lines


def unsupported(recorded: ClusterFacts, new_major: int, available_extensions: set[str],
                new_locales: set[str] | None) -> list[str]:
    """Why the new version cannot take this cluster over, one line each: not a newer major, an
    extension its image does not ship, a collation its image has no locale for."""
    problems = []
    if new_major <= recorded.major:
        problems.append(f"the new image runs PostgreSQL {new_major}, not newer than the installed {recorded.major}")
    used = sorted({name for per_db in recorded.extensions.values() for name in per_db})
    problems += [f"extension {name} is not in the new image" for name in used if name not in available_extensions]
    if new_locales is not None:
        needed = sorted({info[key] for info in recorded.databases.values() for key in ("collate", "ctype")})
        known = {normalise_locale(name) for name in new_locales} | {"c", "posix", "c.utf8"}
        problems += [f"locale {name} (a database's collation) is not in the new image"
                     for name in needed if normalise_locale(name) not in known]
    return problems


def normalise_locale(name: str) -> str:
    """``C.UTF-8`` and ``C.utf8`` are one locale to glibc: compare lower case without dashes."""
    return name.lower().replace("-", "")
