"""Dashboard users and their roles per tenant.

A user has one name and one password for the whole server and a role in each tenant it belongs
to: `viewer` reads, `member` also changes test data (quarantine), `admin` also manages the
tenant (keys, users, CI config, webhooks). The roles line up with the API key scopes
read < write < admin, so a page and an API route ask the same question of either.

Writes are writer operations `fn(conn, ...)`; reads the dashboard needs on every request are
async on a read connection. Password checks are slow by design and run in a thread.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3

import aiosqlite
import msgspec

from . import passwords
from .clock import new_id, now_ms, to_iso
from .errors import Conflict, Forbidden, Invalid, NotFound

ROLES = ("viewer", "member", "admin")
# The API scope each role matches (tenancy.SCOPES), for pages that reuse scope checks.
ROLE_SCOPE = {"viewer": "read", "member": "write", "admin": "admin"}
_RANK = {"viewer": 1, "member": 2, "admin": 3}
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
FIRST_ADMIN = "admin"


class User(msgspec.Struct):
    id: str
    username: str
    disabled: bool
    created_at: str | None
    last_login_at: str | None


class Member(msgspec.Struct):
    """A user as one tenant sees it: with its role there."""

    id: str
    username: str
    role: str
    disabled: bool
    created_at: str | None
    last_login_at: str | None


class Membership(msgspec.Struct):
    tenant_id: str
    tenant_name: str
    role: str


class NewUser(msgspec.Struct):
    user: User
    password: str | None  # set when the server generated it: shown once


def role_allows(role: str, needed: str) -> bool:
    return _RANK[role] >= _RANK[needed]


def _check_username(username: str) -> str:
    username = username.strip()
    if not USERNAME.match(username):
        raise Invalid(
            "a user name has 1 to 64 characters: letters, digits and . _ @ + - (starting with a letter or digit)"
        )
    return username


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}, not {role!r}")


def _hash(password: str) -> str:
    try:
        return passwords.hash_password(password)
    except passwords.WeakPassword as exc:
        raise Invalid(str(exc)) from None


_USER_COLUMNS = "id, username, disabled_at, created_at, last_login_at"


def _user(row) -> User:
    return User(row[0], row[1], row[2] is not None, to_iso(row[3]), to_iso(row[4]))


def find_user(conn: sqlite3.Connection, id_or_name: str) -> User:
    row = conn.execute(
        f"SELECT {_USER_COLUMNS} FROM users WHERE id = ? OR username = ?", (id_or_name, id_or_name)
    ).fetchone()
    if row is None:
        raise NotFound(f"no user {id_or_name!r}")
    return _user(row)


def create_user(
    conn: sqlite3.Connection, username: str, *, tenant_id: str, role: str, password: str | None = None
) -> NewUser:
    """Create a user with a role in `tenant_id`. Without `password` one is generated and
    returned once. A taken name is a Conflict (names are unique server-wide)."""
    username = _check_username(username)
    _check_role(role)
    if conn.execute("SELECT 1 FROM tenants WHERE id = ?", (tenant_id,)).fetchone() is None:
        raise NotFound("Tenant not found")
    if conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone() is not None:
        raise Conflict(f"the user name {username!r} is taken")  # before paying for a hash
    generated = passwords.generate_password() if password is None else None
    password_hash = _hash(password if password is not None else generated)
    user_id, now = new_id(), now_ms()
    try:
        conn.execute(
            "INSERT INTO users (id, username, password_hash, created_at, updated_at) VALUES (?,?,?,?,?)",
            (user_id, username, password_hash, now, now),
        )
    except sqlite3.IntegrityError:
        raise Conflict(f"the user name {username!r} is taken") from None
    conn.execute(
        "INSERT INTO memberships (user_id, tenant_id, role, created_at) VALUES (?,?,?,?)",
        (user_id, tenant_id, role, now),
    )
    return NewUser(User(user_id, username, False, to_iso(now), None), generated)


def set_password(conn: sqlite3.Connection, id_or_name: str, password: str | None = None) -> NewUser:
    """Set (or, without `password`, generate) a user's password and sign it out everywhere:
    whoever knew the old password keeps no session."""
    user = find_user(conn, id_or_name)
    generated = passwords.generate_password() if password is None else None
    password_hash = _hash(password if password is not None else generated)
    conn.execute("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?", (password_hash, now_ms(), user.id))
    conn.execute("DELETE FROM sessions WHERE user_id = ?", (user.id,))
    return NewUser(user, generated)


def set_disabled(conn: sqlite3.Connection, id_or_name: str, disabled: bool) -> User:
    """Disable (sign-in refused, sessions ended) or enable a user."""
    user = find_user(conn, id_or_name)
    if disabled and _is_last_admin_anywhere(conn, user.id):
        raise Conflict(f"{user.username} is the last admin of a tenant; make another user admin first")
    now = now_ms()
    conn.execute(
        "UPDATE users SET disabled_at = CASE WHEN ? THEN coalesce(disabled_at, ?) END, updated_at = ? WHERE id = ?",
        (int(disabled), now, now, user.id),
    )
    if disabled:
        conn.execute("DELETE FROM sessions WHERE user_id = ?", (user.id,))
    return find_user(conn, user.id)


def _active_admins(conn: sqlite3.Connection, tenant_id: str) -> set[str]:
    rows = conn.execute(
        "SELECT m.user_id FROM memberships m JOIN users u ON u.id = m.user_id "
        "WHERE m.tenant_id = ? AND m.role = 'admin' AND u.disabled_at IS NULL",
        (tenant_id,),
    )
    return {r[0] for r in rows}


def _is_last_admin_anywhere(conn: sqlite3.Connection, user_id: str) -> bool:
    tenants = [r[0] for r in conn.execute(
        "SELECT tenant_id FROM memberships WHERE user_id = ? AND role = 'admin'", (user_id,)
    )]
    return any(_active_admins(conn, t) == {user_id} for t in tenants)


def set_role(conn: sqlite3.Connection, tenant_id: str, id_or_name: str, role: str) -> Member:
    """Give a user `role` in a tenant (adding it to the tenant when it is not a member yet).
    Refuses to take the last admin's admin role away: a tenant must stay manageable."""
    _check_role(role)
    user = find_user(conn, id_or_name)
    if role != "admin" and _active_admins(conn, tenant_id) == {user.id}:
        raise Conflict(f"{user.username} is the last admin of this tenant; make another user admin first")
    conn.execute(
        "INSERT INTO memberships (user_id, tenant_id, role, created_at) VALUES (?,?,?,?) "
        "ON CONFLICT (user_id, tenant_id) DO UPDATE SET role = excluded.role",
        (user.id, tenant_id, role, now_ms()),
    )
    return get_member_sync(conn, tenant_id, user.id)


def remove_member(conn: sqlite3.Connection, tenant_id: str, id_or_name: str) -> None:
    """Take a user out of a tenant; its sessions in that tenant end."""
    user = find_user(conn, id_or_name)
    if _active_admins(conn, tenant_id) == {user.id}:
        raise Conflict(f"{user.username} is the last admin of this tenant; make another user admin first")
    conn.execute("DELETE FROM memberships WHERE user_id = ? AND tenant_id = ?", (user.id, tenant_id))
    conn.execute("DELETE FROM sessions WHERE user_id = ? AND tenant_id = ?", (user.id, tenant_id))


def check_managed_by(conn: sqlite3.Connection, tenant_id: str, id_or_name: str) -> User:
    """A tenant's admin may reset the password of, or disable, a user only when the user
    belongs to that tenant alone: the password opens every tenant the user belongs to, and
    one tenant's admin must not gain a way into another. Server operators use `qahub users`."""
    user = find_user(conn, id_or_name)
    tenants = {r[0] for r in conn.execute("SELECT tenant_id FROM memberships WHERE user_id = ?", (user.id,))}
    if tenant_id not in tenants:
        raise NotFound("User not found")
    if tenants != {tenant_id}:
        raise Forbidden(
            f"{user.username} belongs to other tenants too; its password and state are managed with `qahub users`"
        )
    return user


_MEMBER_SELECT = (
    "SELECT u.id, u.username, m.role, u.disabled_at, u.created_at, u.last_login_at "
    "FROM memberships m JOIN users u ON u.id = m.user_id"
)


def _member(row) -> Member:
    return Member(row[0], row[1], row[2], row[3] is not None, to_iso(row[4]), to_iso(row[5]))


def get_member_sync(conn: sqlite3.Connection, tenant_id: str, user_id: str) -> Member:
    row = conn.execute(f"{_MEMBER_SELECT} WHERE m.tenant_id = ? AND u.id = ?", (tenant_id, user_id)).fetchone()
    if row is None:
        raise NotFound("User not found")
    return _member(row)


def list_members_sync(conn: sqlite3.Connection, tenant_id: str | None = None) -> list[tuple[str, Member]]:
    """(tenant name, member) for the CLI: every membership, or one tenant's."""
    sql = (
        "SELECT u.id, u.username, m.role, u.disabled_at, u.created_at, u.last_login_at, t.name "
        "FROM memberships m JOIN users u ON u.id = m.user_id JOIN tenants t ON t.id = m.tenant_id"
    )
    params: tuple = ()
    if tenant_id is not None:
        sql += " WHERE m.tenant_id = ?"
        params = (tenant_id,)
    rows = conn.execute(sql + " ORDER BY t.name, u.username", params).fetchall()
    return [(r[6], _member(r)) for r in rows]


def has_users(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None


async def list_members(conn: aiosqlite.Connection, tenant_id: str) -> list[Member]:
    rows = await conn.execute_fetchall(f"{_MEMBER_SELECT} WHERE m.tenant_id = ? ORDER BY u.username", (tenant_id,))
    return [_member(r) for r in rows]


async def memberships(conn: aiosqlite.Connection, user_id: str) -> list[Membership]:
    rows = await conn.execute_fetchall(
        "SELECT m.tenant_id, t.name, m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id "
        "WHERE m.user_id = ? ORDER BY t.name",
        (user_id,),
    )
    return [Membership(r[0], r[1], r[2]) for r in rows]


class SignIn(msgspec.Struct):
    """A user whose password checked out, and the tenant its session starts in."""

    user_id: str
    username: str
    tenant_id: str
    rehash: bool  # the stored hash uses old parameters: store a new one


async def check_credentials(conn: aiosqlite.Connection, username: str, password: str) -> SignIn:
    """The signed-in user, or Forbidden with one message for every failure (unknown name,
    wrong password, disabled user, no tenant), so the answer tells an attacker nothing."""
    refused = Forbidden("Wrong user name or password")
    if not username or len(username) > 64 or not password or len(password) > passwords.MAX_LENGTH:
        raise refused
    rows = await conn.execute_fetchall(
        "SELECT u.id, u.username, u.password_hash, u.disabled_at, "
        "(SELECT m.tenant_id FROM memberships m JOIN tenants t ON t.id = m.tenant_id "
        " WHERE m.user_id = u.id ORDER BY t.created_at, t.id LIMIT 1) "
        "FROM users u WHERE u.username = ?",
        (username.strip(),),
    )
    if not rows:
        await asyncio.to_thread(passwords.burn_time, password)
        raise refused
    user_id, name, encoded, disabled_at, tenant_id = rows[0]
    ok = await asyncio.to_thread(passwords.verify_password, password, encoded)
    if not ok or disabled_at is not None or tenant_id is None:
        raise refused
    return SignIn(user_id, name, tenant_id, passwords.needs_rehash(encoded))


def record_sign_in(conn: sqlite3.Connection, user_id: str, new_hash: str | None = None) -> None:
    """Writer operation after a successful sign-in: the time, and an upgraded hash if any."""
    now = now_ms()
    conn.execute("UPDATE users SET last_login_at = ? WHERE id = ?", (now, user_id))
    if new_hash is not None:
        conn.execute("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?", (new_hash, now, user_id))


def ensure_first_admin(conn: sqlite3.Connection, tenant_id: str) -> str | None:
    """On a server without any user, create `admin` (admin of `tenant_id`) and return its
    generated password to show once; None when users exist already."""
    if has_users(conn):
        return None
    return create_user(conn, FIRST_ADMIN, tenant_id=tenant_id, role="admin").password
