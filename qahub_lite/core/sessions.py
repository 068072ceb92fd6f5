"""Dashboard sign-in sessions.

The browser holds a random 256-bit token; the database holds only its SHA-256, so a copy of
the database (a backup, a stolen disk) cannot be replayed as a session. Each session carries
its own CSRF token, which every form of the dashboard posts back.

A session lasts `lifetime_ms` from its last renewal. Renewing on every page view would be a
write per request; instead a session is renewed when it is older than `RENEW_AFTER_MS`, so an
active user stays signed in with at most one write an hour, and an idle one is signed out.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3

import aiosqlite
import msgspec

from .clock import now_ms
from .errors import NotFound

RENEW_AFTER_MS = 3_600_000


class NewSession(msgspec.Struct):
    token: str  # goes into the cookie, never stored
    csrf_token: str
    expires_at: int


class Session(msgspec.Struct):
    """A live session as a page sees it, with the user's role in the session's tenant."""

    id: str  # the token's hash
    user_id: str
    username: str
    tenant_id: str
    tenant_name: str
    tenant_suspended: bool
    role: str
    csrf_token: str
    renewed_at: int
    expires_at: int

    def due_for_renewal(self, now: int) -> bool:
        return now - self.renewed_at >= RENEW_AFTER_MS


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_session(conn: sqlite3.Connection, user_id: str, tenant_id: str, lifetime_ms: int) -> NewSession:
    """Writer operation: start a session; expired sessions of everybody are purged on the way,
    which keeps the table small without a background job."""
    now = now_ms()
    conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + lifetime_ms
    conn.execute(
        "INSERT INTO sessions (id, user_id, tenant_id, csrf_token, created_at, renewed_at, expires_at) "
        "VALUES (?,?,?,?,?,?,?)",
        (token_hash(token), user_id, tenant_id, csrf, now, now, expires),
    )
    return NewSession(token, csrf, expires)


async def resolve(conn: aiosqlite.Connection, token: str) -> Session | None:
    """The live session of a cookie's token: unexpired, its user enabled and still a member of
    the session's tenant. None otherwise (the page asks to sign in)."""
    if not token or len(token) > 100:
        return None
    rows = await conn.execute_fetchall(
        "SELECT s.id, s.user_id, u.username, s.tenant_id, t.name, t.suspended, m.role, s.csrf_token, s.renewed_at, "
        "s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id "
        "JOIN memberships m ON m.user_id = s.user_id AND m.tenant_id = s.tenant_id "
        "JOIN tenants t ON t.id = s.tenant_id "
        "WHERE s.id = ? AND s.expires_at > ? AND u.disabled_at IS NULL",
        (token_hash(token), now_ms()),
    )
    if not rows:
        return None
    r = rows[0]
    return Session(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7], r[8], r[9])


def renew(conn: sqlite3.Connection, session_id: str, lifetime_ms: int) -> int:
    """Writer operation: push a session's expiry `lifetime_ms` into the future."""
    now = now_ms()
    conn.execute(
        "UPDATE sessions SET renewed_at = ?, expires_at = ? WHERE id = ?", (now, now + lifetime_ms, session_id)
    )
    return now + lifetime_ms


def end_session(conn: sqlite3.Connection, session_id: str) -> None:
    """Writer operation: sign out (the row goes; the cookie is worthless from now on)."""
    conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))


def switch_tenant(conn: sqlite3.Connection, session_id: str, tenant_id: str) -> None:
    """Writer operation: move a session to another tenant the user belongs to."""
    row = conn.execute(
        "SELECT 1 FROM sessions s JOIN memberships m ON m.user_id = s.user_id AND m.tenant_id = ? WHERE s.id = ?",
        (tenant_id, session_id),
    ).fetchone()
    if row is None:
        raise NotFound("Tenant not found")
    conn.execute("UPDATE sessions SET tenant_id = ? WHERE id = ?", (tenant_id, session_id))
