"""Tenants and API keys.

A key is `qh_<id>_<secret>`: the id finds the row, the secret (256 random bits) is checked
against its SHA-256 in constant time. The secret is shown once, at creation, and never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import msgspec

from ..db import library as library_db
from ..db import tenancy as tenancy_db
from . import key_checks
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


def _tenant(row) -> Tenant:
    return Tenant(row["id"], row["name"], bool(row["suspended"]), to_iso(row["created_at"]))


def create_tenant(conn, name: str) -> Tenant:
    name = name.strip()
    if not name:
        raise Invalid("a tenant needs a name")
    tenant_id, now = new_id(), now_ms()
    if not tenancy_db.insert_tenant(conn, tenant_id, name, now):
        raise Conflict(f"a tenant named {name!r} exists already")
    return Tenant(tenant_id, name, False, to_iso(now))


def find_tenant(conn, id_or_name: str) -> Tenant:
    row = tenancy_db.tenant_row(conn, id_or_name)
    if row is None:
        raise NotFound(f"no tenant {id_or_name!r}")
    return _tenant(row)


def list_tenants(conn) -> list[Tenant]:
    return [_tenant(r) for r in tenancy_db.tenant_rows(conn)]


def set_suspended(conn, id_or_name: str, suspended: bool) -> Tenant:
    tenant = find_tenant(conn, id_or_name)
    key_checks.keys_changed(conn)
    tenancy_db.set_tenant_suspended(conn, tenant.id, suspended)
    return find_tenant(conn, tenant.id)


def create_key(conn, tenant_id: str, *, scope: str, name: str = "", project_id: str | None = None) -> NewKey:
    if scope not in SCOPES:
        raise Invalid(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    if not tenancy_db.tenant_exists(conn, tenant_id):
        raise NotFound("Tenant not found")
    if project_id is not None:  # an id or a slug, as everywhere a person types a project
        row = library_db.project_row(conn, tenant_id, project_id)
        if row is None:
            raise NotFound(f"Project {project_id!r} not found")
        project_id = row["id"]
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)  # 256 bits
    now = now_ms()
    name = name or f"{scope} key"
    tenancy_db.insert_key(conn, key_id, tenant_id, project_id, name, scope, _hash(secret), now)
    info = KeyInfo(key_id, tenant_id, name, scope, project_id, to_iso(now), None, False)
    return NewKey(f"{KEY_PREFIX}{key_id}_{secret}", info)


def _key_info(row) -> KeyInfo:
    return KeyInfo(
        row["id"], row["tenant_id"], row["name"], row["scopes"], row["project_id"], to_iso(row["created_at"]),
        to_iso(row["last_used_at"]), row["revoked_at"] is not None,
    )


def list_keys(conn, tenant_id: str | None = None) -> list[KeyInfo]:
    """Every key, or one tenant's (the dashboard's Settings > API keys)."""
    return [_key_info(r) for r in tenancy_db.key_rows(conn, tenant_id)]


def revoke_key(conn, key_id: str, tenant_id: str | None = None) -> KeyInfo:
    if key_id.startswith(KEY_PREFIX):  # a whole key pasted: take its id part
        key_id = key_id[len(KEY_PREFIX) :].split("_", 1)[0]
    if tenancy_db.key_row(conn, key_id, tenant_id) is None:
        raise NotFound(f"no key {key_id!r}")
    key_checks.keys_changed(conn)
    tenancy_db.mark_key_revoked(conn, key_id, now_ms())
    return _key_info(tenancy_db.key_row(conn, key_id))


def key_is_active(conn, key_id: str) -> bool:
    """Writer check: the key is not revoked and its tenant not suspended, as of this transaction
    (a long request verified its key when it began, which may be long ago)."""
    return tenancy_db.key_is_active(conn, key_id)


def parse_key(presented: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    if not presented.startswith(KEY_PREFIX):
        return None
    rest = presented[len(KEY_PREFIX) :]
    key_id, sep, secret = rest.partition("_")
    if not sep or not key_id or not secret or len(presented) > 200:
        return None
    return key_id, secret


def verify_key(conn, presented: str) -> Principal | None:
    """The principal of a valid, unrevoked key; None otherwise (the caller answers 401)."""
    parsed = parse_key(presented)
    if parsed is None:
        return None
    key_id, secret = parsed
    row = tenancy_db.key_check_row(conn, key_id)
    if row is None:
        hmac.compare_digest(_hash(secret), b"\0" * 32)  # same work whether or not the id exists
        return None
    if not hmac.compare_digest(_hash(secret), row["secret_hash"]) or row["revoked_at"] is not None:
        return None
    return Principal(key_id, row["tenant_id"], row["scopes"], row["project_id"], bool(row["suspended"]))


def touch_keys(conn, used: dict[str, int]) -> None:
    """Record last_used_at for keys seen since the last flush (batched: not a write per request)."""
    tenancy_db.set_keys_last_used(conn, used)
