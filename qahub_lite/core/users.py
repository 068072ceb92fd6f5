"""Dashboard users and their roles per tenant.

A user has one name and one password for the whole server and a role in each tenant it belongs
to: `viewer` reads, `member` also changes test data (quarantine), `admin` also manages the
tenant (keys, users, CI config, webhooks). The roles line up with the API key scopes
read < write < admin, so a page and an API route ask the same question of either.

Every function takes a connection (writer or reader); a password check is slow by design, so
sign-in reads the user (`find_credentials`) and checks the password (`check_credentials`)
apart, the check off the event loop and off the reader threads.
"""

from __future__ import annotations

import re

import msgspec

from ..db import tenancy as tenancy_db
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


def _user(row) -> User:
    return User(row["id"], row["username"], row["disabled_at"] is not None, to_iso(row["created_at"]),
                to_iso(row["last_login_at"]))


def find_user(conn, id_or_name: str) -> User:
    row = tenancy_db.user_row(conn, id_or_name)
    if row is None:
        raise NotFound(f"no user {id_or_name!r}")
    return _user(row)


def create_user(conn, username: str, *, tenant_id: str, role: str, password: str | None = None) -> NewUser:
    """Create a user with a role in `tenant_id`. Without `password` one is generated and
    returned once. A taken name is a Conflict (names are unique server-wide)."""
    username = _check_username(username)
    _check_role(role)
    if not tenancy_db.tenant_exists(conn, tenant_id):
        raise NotFound("Tenant not found")
    if tenancy_db.username_taken(conn, username):
        raise Conflict(f"the user name {username!r} is taken")  # before paying for a hash
    generated = passwords.generate_password() if password is None else None
    password_hash = _hash(password if password is not None else generated)
    user_id, now = new_id(), now_ms()
    if not tenancy_db.insert_user(conn, user_id, username, password_hash, now):
        raise Conflict(f"the user name {username!r} is taken")
    tenancy_db.insert_membership(conn, user_id, tenant_id, role, now)
    return NewUser(User(user_id, username, False, to_iso(now), None), generated)


def set_password(conn, id_or_name: str, password: str | None = None) -> NewUser:
    """Set (or, without `password`, generate) a user's password and sign it out everywhere:
    whoever knew the old password keeps no session."""
    user = find_user(conn, id_or_name)
    generated = passwords.generate_password() if password is None else None
    password_hash = _hash(password if password is not None else generated)
    tenancy_db.set_password_hash(conn, user.id, password_hash, now_ms())
    tenancy_db.delete_user_sessions(conn, user.id)
    return NewUser(user, generated)


def set_disabled(conn, id_or_name: str, disabled: bool) -> User:
    """Disable (sign-in refused, sessions ended) or enable a user."""
    user = find_user(conn, id_or_name)
    if disabled and _is_last_admin_anywhere(conn, user.id):
        raise Conflict(f"{user.username} is the last admin of a tenant; make another user admin first")
    tenancy_db.set_user_disabled(conn, user.id, disabled, now_ms())
    if disabled:
        tenancy_db.delete_user_sessions(conn, user.id)
    return find_user(conn, user.id)


def _is_last_admin_anywhere(conn, user_id: str) -> bool:
    return any(
        tenancy_db.active_admin_ids(conn, t) == {user_id} for t in tenancy_db.tenant_ids_of_user(conn, user_id, "admin")
    )


def set_role(conn, tenant_id: str, id_or_name: str, role: str) -> Member:
    """Give a user `role` in a tenant (adding it to the tenant when it is not a member yet).
    Refuses to take the last admin's admin role away: a tenant must stay manageable."""
    _check_role(role)
    user = find_user(conn, id_or_name)
    if role != "admin" and tenancy_db.active_admin_ids(conn, tenant_id) == {user.id}:
        raise Conflict(f"{user.username} is the last admin of this tenant; make another user admin first")
    tenancy_db.upsert_membership(conn, user.id, tenant_id, role, now_ms())
    return get_member(conn, tenant_id, user.id)


def remove_member(conn, tenant_id: str, id_or_name: str) -> None:
    """Take a user out of a tenant; its sessions in that tenant end."""
    user = find_user(conn, id_or_name)
    if tenancy_db.active_admin_ids(conn, tenant_id) == {user.id}:
        raise Conflict(f"{user.username} is the last admin of this tenant; make another user admin first")
    tenancy_db.delete_membership(conn, user.id, tenant_id)
    tenancy_db.delete_user_sessions(conn, user.id, tenant_id)


def check_managed_by(conn, tenant_id: str, id_or_name: str) -> User:
    """A tenant's admin may reset the password of, or disable, a user only when the user
    belongs to that tenant alone: the password opens every tenant the user belongs to, and
    one tenant's admin must not gain a way into another. Server operators use `qahub users`."""
    user = find_user(conn, id_or_name)
    tenants = tenancy_db.tenant_ids_of_user(conn, user.id)
    if tenant_id not in tenants:
        raise NotFound("User not found")
    if tenants != {tenant_id}:
        raise Forbidden(
            f"{user.username} belongs to other tenants too; its password and state are managed with `qahub users`"
        )
    return user


def _member(row) -> Member:
    return Member(row["id"], row["username"], row["role"], row["disabled_at"] is not None, to_iso(row["created_at"]),
                  to_iso(row["last_login_at"]))


def get_member(conn, tenant_id: str, user_id: str) -> Member:
    row = tenancy_db.member_row(conn, tenant_id, user_id)
    if row is None:
        raise NotFound("User not found")
    return _member(row)


def list_members(conn, tenant_id: str) -> list[Member]:
    """A tenant's members by name (the dashboard's Settings > Users)."""
    return [_member(r) for r in tenancy_db.member_rows(conn, tenant_id)]


def members_by_tenant(conn, tenant_id: str | None = None) -> list[tuple[str, Member]]:
    """(tenant name, member) for the CLI: every membership, or one tenant's."""
    return [(r["tenant_name"], _member(r)) for r in tenancy_db.member_rows_with_tenant(conn, tenant_id)]


def has_users(conn) -> bool:
    return tenancy_db.has_users(conn)


def memberships(conn, user_id: str) -> list[Membership]:
    return [Membership(r["tenant_id"], r["tenant_name"], r["role"]) for r in tenancy_db.membership_rows(conn, user_id)]


class SignIn(msgspec.Struct):
    """A user whose password checked out, and the tenant its session starts in."""

    user_id: str
    username: str
    tenant_id: str
    rehash: bool  # the stored hash uses old parameters: store a new one


class Credentials(msgspec.Struct):
    """What checking a sign-in needs of a user, read before the (slow) password check."""

    user_id: str
    username: str
    password_hash: str
    disabled: bool
    tenant_id: str | None  # the tenant a session starts in; None for a user of no tenant


def _plausible(username: str, password: str) -> bool:
    return bool(username) and len(username) <= 64 and bool(password) and len(password) <= passwords.MAX_LENGTH


def find_credentials(conn, username: str) -> Credentials | None:
    """The stored credentials of a user name, or None (unknown or not a possible name)."""
    if not username or len(username) > 64:
        return None
    row = tenancy_db.credentials_row(conn, username.strip())
    if row is None:
        return None
    return Credentials(row["id"], row["username"], row["password_hash"], row["disabled_at"] is not None,
                       row["tenant_id"])


def check_credentials(found: Credentials | None, username: str, password: str) -> SignIn:
    """The signed-in user, or Forbidden with one message for every failure (unknown name,
    wrong password, disabled user, no tenant), so the answer tells an attacker nothing.
    Slow on purpose (a password hash): call it off the event loop."""
    refused = Forbidden("Wrong user name or password")
    if not _plausible(username, password):
        raise refused
    if found is None:
        passwords.burn_time(password)
        raise refused
    ok = passwords.verify_password(password, found.password_hash)
    if not ok or found.disabled or found.tenant_id is None:
        raise refused
    return SignIn(found.user_id, found.username, found.tenant_id, passwords.needs_rehash(found.password_hash))


def record_sign_in(conn, user_id: str, new_hash: str | None = None) -> None:
    """Writer operation after a successful sign-in: the time, and an upgraded hash if any."""
    now = now_ms()
    tenancy_db.set_last_login(conn, user_id, now)
    if new_hash is not None:
        tenancy_db.set_password_hash(conn, user_id, new_hash, now)


def ensure_first_admin(conn, tenant_id: str) -> str | None:
    """On a server without any user, create `admin` (admin of `tenant_id`) and return its
    generated password to show once; None when users exist already."""
    if has_users(conn):
        return None
    return create_user(conn, FIRST_ADMIN, tenant_id=tenant_id, role="admin").password
