"""Tenants and API keys.

A key is `qh_<id>_<secret>`: the id finds the row, the secret (256 random bits) is checked
against its SHA-256 in constant time. The secret is shown once, at creation, and never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3

import aiosqlite
import msgspec

from .clock import new_id, now_ms, to_iso
from .errors import Conflict, Invalid, NotFound

SCOPES = ("read", "write", "admin")
# A scope includes the ones below it: admin can write, write can read.
_RANK = {"read": 1, "write": 2, "admin": 3}
KEY_PREFIX = "qh_"


class Tenant(msgspec.Struct):
    id: str
    name: str
    suspended: bool
    created_at: str | None


class KeyInfo(msgspec.Struct):
    id: str
    tenant_id: str
    name: str
    scope: str
    project_id: str | None
    created_at: str | None
    last_used_at: str | None
    revoked: bool


class NewKey(msgspec.Struct):
    key: str  # shown once
    info: KeyInfo


class Principal(msgspec.Struct):
    """Who is calling: the key's tenant, scope and optional project restriction."""

    key_id: str
    tenant_id: str
    scope: str
    project_id: str | None
    tenant_suspended: bool

    def allows(self, needed: str) -> bool:
        return _RANK[self.scope] >= _RANK[needed]


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def create_tenant(conn: sqlite3.Connection, name: str) -> Tenant:
    name = name.strip()
    if not name:
        raise Invalid("a tenant needs a name")
    tenant_id, now = new_id(), now_ms()
    try:
        conn.execute("INSERT INTO tenants (id, name, created_at) VALUES (?,?,?)", (tenant_id, name, now))
    except sqlite3.IntegrityError:
        raise Conflict(f"a tenant named {name!r} exists already") from None
    return Tenant(tenant_id, name, False, to_iso(now))


def find_tenant(conn: sqlite3.Connection, id_or_name: str) -> Tenant:
    row = conn.execute(
        "SELECT id, name, suspended, created_at FROM tenants WHERE id = ? OR name = ?", (id_or_name, id_or_name)
    ).fetchone()
    if row is None:
        raise NotFound(f"no tenant {id_or_name!r}")
    return Tenant(row[0], row[1], bool(row[2]), to_iso(row[3]))


def list_tenants(conn: sqlite3.Connection) -> list[Tenant]:
    rows = conn.execute("SELECT id, name, suspended, created_at FROM tenants ORDER BY created_at, id").fetchall()
    return [Tenant(r[0], r[1], bool(r[2]), to_iso(r[3])) for r in rows]


def set_suspended(conn: sqlite3.Connection, id_or_name: str, suspended: bool) -> Tenant:
    tenant = find_tenant(conn, id_or_name)
    conn.execute("UPDATE tenants SET suspended = ? WHERE id = ?", (int(suspended), tenant.id))
    return find_tenant(conn, tenant.id)


def create_key(
    conn: sqlite3.Connection, tenant_id: str, *, scope: str, name: str = "", project_id: str | None = None
) -> NewKey:
    if scope not in SCOPES:
        raise Invalid(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    if conn.execute("SELECT 1 FROM tenants WHERE id = ?", (tenant_id,)).fetchone() is None:
        raise NotFound("Tenant not found")
    if project_id is not None:  # an id or a slug, as everywhere a person types a project
        row = conn.execute(
            "SELECT id FROM projects WHERE (id = ? OR slug = ?) AND tenant_id = ?", (project_id, project_id, tenant_id)
        ).fetchone()
        if row is None:
            raise NotFound(f"Project {project_id!r} not found")
        project_id = row[0]
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)  # 256 bits
    now = now_ms()
    conn.execute(
        "INSERT INTO api_keys (id, tenant_id, project_id, name, scopes, secret_hash, created_at) VALUES (?,?,?,?,?,?,?)",
        (key_id, tenant_id, project_id, name or f"{scope} key", scope, _hash(secret), now),
    )
    info = KeyInfo(key_id, tenant_id, name or f"{scope} key", scope, project_id, to_iso(now), None, False)
    return NewKey(f"{KEY_PREFIX}{key_id}_{secret}", info)


def _key_info(row: sqlite3.Row) -> KeyInfo:
    return KeyInfo(
        row["id"], row["tenant_id"], row["name"], row["scopes"], row["project_id"], to_iso(row["created_at"]),
        to_iso(row["last_used_at"]), row["revoked_at"] is not None,
    )


_KEY_COLUMNS = "id, tenant_id, name, scopes, project_id, created_at, last_used_at, revoked_at"


_TENANT_KEYS = f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id"


def list_keys(conn: sqlite3.Connection, tenant_id: str | None = None) -> list[KeyInfo]:
    if tenant_id is None:
        rows = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id").fetchall()
    else:
        rows = conn.execute(_TENANT_KEYS, (tenant_id,)).fetchall()
    return [_key_info(r) for r in rows]


async def tenant_keys(conn: aiosqlite.Connection, tenant_id: str) -> list[KeyInfo]:
    """`list_keys` of one tenant on a read connection (the dashboard's Settings > API keys)."""
    return [_key_info(r) for r in await conn.execute_fetchall(_TENANT_KEYS, (tenant_id,))]


def revoke_key(conn: sqlite3.Connection, key_id: str, tenant_id: str | None = None) -> KeyInfo:
    if key_id.startswith(KEY_PREFIX):  # a whole key pasted: take its id part
        key_id = key_id[len(KEY_PREFIX) :].split("_", 1)[0]
    sql = f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?" + (" AND tenant_id = ?" if tenant_id else "")
    row = conn.execute(sql, (key_id, tenant_id) if tenant_id else (key_id,)).fetchone()
    if row is None:
        raise NotFound(f"no key {key_id!r}")
    conn.execute("UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", (now_ms(), key_id))
    return _key_info(conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone())


def key_is_active(conn: sqlite3.Connection, key_id: str) -> bool:
    """Writer check: the key is not revoked and its tenant not suspended, as of this transaction
    (a long request verified its key when it began, which may be long ago)."""
    row = conn.execute(
        "SELECT k.revoked_at IS NULL AND NOT t.suspended FROM api_keys k JOIN tenants t ON t.id = k.tenant_id "
        "WHERE k.id = ?", (key_id,),
    ).fetchone()
    return bool(row and row[0])


def parse_key(presented: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    if not presented.startswith(KEY_PREFIX):
        return None
    rest = presented[len(KEY_PREFIX) :]
    key_id, sep, secret = rest.partition("_")
    if not sep or not key_id or not secret or len(presented) > 200:
        return None
    return key_id, secret


async def verify_key(conn: aiosqlite.Connection, presented: str) -> Principal | None:
    """The principal of a valid, unrevoked key; None otherwise (the caller answers 401)."""
    parsed = parse_key(presented)
    if parsed is None:
        return None
    key_id, secret = parsed
    # One hop to the reader thread (execute_fetchall), not three (execute, fetchone, close):
    # every authenticated request pays for this, and hops are what a busy server waits on.
    rows = await conn.execute_fetchall(
        "SELECT k.secret_hash, k.tenant_id, k.scopes, k.project_id, k.revoked_at, t.suspended "
        "FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = ?",
        (key_id,),
    )
    row = rows[0] if rows else None
    if row is None:
        hmac.compare_digest(_hash(secret), b"\0" * 32)  # same work whether or not the id exists
        return None
    if not hmac.compare_digest(_hash(secret), row[0]) or row[4] is not None:
        return None
    return Principal(key_id, row[1], row[2], row[3], bool(row[5]))


def touch_keys(conn: sqlite3.Connection, used: dict[str, int]) -> None:
    """Record last_used_at for keys seen since the last flush (batched: not a write per request)."""
    conn.executemany("UPDATE api_keys SET last_used_at = ? WHERE id = ?", [(ts, kid) for kid, ts in used.items()])
