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

import msgspec

from ..db import tenancy as tenancy_db
from .clock import now_ms
from .errors import NotFound
from .users import Membership, memberships

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


def create_session(conn, user_id: str, tenant_id: str, lifetime_ms: int) -> NewSession:
    """Writer operation: start a session; expired sessions of everybody are purged on the way,
    which keeps the table small without a background job."""
    now = now_ms()
    tenancy_db.delete_expired_sessions(conn, now)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + lifetime_ms
    tenancy_db.insert_session(conn, token_hash(token), user_id, tenant_id, csrf, now, expires)
    return NewSession(token, csrf, expires)


def resolve(conn, token: str) -> Session | None:
    """The live session of a cookie's token: unexpired, its user enabled and still a member of
    the session's tenant. None otherwise (the page asks to sign in)."""
    if not token or len(token) > 100:
        return None
    r = tenancy_db.live_session_row(conn, token_hash(token), now_ms())
    if r is None:
        return None
    return Session(r["id"], r["user_id"], r["username"], r["tenant_id"], r["tenant_name"], bool(r["suspended"]),
                   r["role"], r["csrf_token"], r["renewed_at"], r["expires_at"])


def resolve_signed_in(conn, token: str) -> tuple[Session, list[Membership]] | None:
    """`resolve` and the user's tenants (the dashboard's tenant switcher) in one read: every
    page asks for both."""
    session = resolve(conn, token)
    if session is None:
        return None
    return session, memberships(conn, session.user_id)


def renew(conn, session_id: str, lifetime_ms: int) -> int:
    """Writer operation: push a session's expiry `lifetime_ms` into the future."""
    now = now_ms()
    tenancy_db.set_session_expiry(conn, session_id, now, now + lifetime_ms)
    return now + lifetime_ms


def end_session(conn, session_id: str) -> None:
    """Writer operation: sign out (the row goes; the cookie is worthless from now on)."""
    tenancy_db.delete_session(conn, session_id)


def switch_tenant(conn, session_id: str, tenant_id: str) -> None:
    """Writer operation: move a session to another tenant the user belongs to."""
    if not tenancy_db.session_user_is_member(conn, session_id, tenant_id):
        raise NotFound("Tenant not found")
    tenancy_db.set_session_tenant(conn, session_id, tenant_id)
