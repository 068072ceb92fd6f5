"""Storage of tenants, API keys, dashboard users, their memberships and sessions.

Plain `fn(conn, ...)`: SQL and row shaping only; the rules (who may do what, the last admin,
hashing) are core's. Rows are read by column name.
"""

from __future__ import annotations


# --- tenants ------------------------------------------------------------------------------

_TENANT = "SELECT id, name, suspended, created_at FROM tenants"


def insert_tenant(conn, tenant_id: str, name: str, created_at: int) -> bool:
    """False when the name is taken (names are unique). ON CONFLICT, not a caught driver error:
    on PostgreSQL a failed statement spoils the rest of its transaction."""
    cur = conn.execute("INSERT INTO tenants (id, name, created_at) VALUES (?,?,?) ON CONFLICT DO NOTHING",
                       (tenant_id, name, created_at))
    if cur.rowcount == 0:
        return False
    return True


def tenant_row(conn, id_or_name: str):
    return conn.execute(f"{_TENANT} WHERE id = ? OR name = ?", (id_or_name, id_or_name)).fetchone()


def tenant_rows(conn) -> list:
    return conn.execute(f"{_TENANT} ORDER BY created_at, id").fetchall()


def tenant_exists(conn, tenant_id: str) -> bool:
    return conn.execute("SELECT 1 FROM tenants WHERE id = ?", (tenant_id,)).fetchone() is not None


def set_tenant_suspended(conn, tenant_id: str, suspended: bool) -> None:
    conn.execute("UPDATE tenants SET suspended = ? WHERE id = ?", (int(suspended), tenant_id))


# --- API keys -----------------------------------------------------------------------------

_KEY = "SELECT id, tenant_id, name, scopes, project_id, created_at, last_used_at, revoked_at FROM api_keys"


def insert_key(conn, key_id: str, tenant_id: str, project_id: str | None, name: str, scope: str,
               secret_hash: bytes, created_at: int) -> None:
    conn.execute(
        "INSERT INTO api_keys (id, tenant_id, project_id, name, scopes, secret_hash, created_at) "
        "VALUES (?,?,?,?,?,?,?)",
        (key_id, tenant_id, project_id, name, scope, secret_hash, created_at),
    )


def key_row(conn, key_id: str, tenant_id: str | None = None):
    if tenant_id is None:
        return conn.execute(f"{_KEY} WHERE id = ?", (key_id,)).fetchone()
    return conn.execute(f"{_KEY} WHERE id = ? AND tenant_id = ?", (key_id, tenant_id)).fetchone()


def key_rows(conn, tenant_id: str | None = None) -> list:
    if tenant_id is None:
        return conn.execute(f"{_KEY} ORDER BY created_at, id").fetchall()
    return conn.execute(f"{_KEY} WHERE tenant_id = ? ORDER BY created_at, id", (tenant_id,)).fetchall()


def mark_key_revoked(conn, key_id: str, at: int) -> None:
    """The first revocation's time stays."""
    conn.execute("UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", (at, key_id))


def key_is_active(conn, key_id: str) -> bool:
    row = conn.execute(
        "SELECT k.revoked_at IS NULL AND t.suspended = 0 AS active FROM api_keys k "
        "JOIN tenants t ON t.id = k.tenant_id WHERE k.id = ?", (key_id,),
    ).fetchone()
    return bool(row and row["active"])


def key_check_row(conn, key_id: str):
    """What checking a presented key needs, in one statement: every authenticated request pays it."""
    return conn.execute(
        "SELECT k.secret_hash, k.tenant_id, k.scopes, k.project_id, k.revoked_at, t.suspended "
        "FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = ?",
        (key_id,),
    ).fetchone()


def set_keys_last_used(conn, used: dict[str, int]) -> None:
    conn.executemany("UPDATE api_keys SET last_used_at = ? WHERE id = ?", [(ts, kid) for kid, ts in used.items()])


# --- users --------------------------------------------------------------------------------

_USER = "SELECT id, username, disabled_at, created_at, last_login_at FROM users"


# Usernames are unique whatever their case: SQLite's column compares NOCASE, PostgreSQL's unique
# index is on lower(username); lower() on both sides says the same on either engine.
def user_row(conn, id_or_name: str):
    return conn.execute(f"{_USER} WHERE id = ? OR lower(username) = lower(?)", (id_or_name, id_or_name)).fetchone()


def username_taken(conn, username: str) -> bool:
    return conn.execute("SELECT 1 FROM users WHERE lower(username) = lower(?)", (username,)).fetchone() is not None


def has_users(conn) -> bool:
    return conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None


def insert_user(conn, user_id: str, username: str, password_hash: str, created_at: int) -> bool:
    """False when the name is taken (unique whatever the case)."""
    cur = conn.execute(
        "INSERT INTO users (id, username, password_hash, created_at, updated_at) VALUES (?,?,?,?,?) "
        "ON CONFLICT DO NOTHING",
        (user_id, username, password_hash, created_at, created_at),
    )
    return cur.rowcount == 1


def set_password_hash(conn, user_id: str, password_hash: str, at: int) -> None:
    conn.execute("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?", (password_hash, at, user_id))


def set_user_disabled(conn, user_id: str, disabled: bool, at: int) -> None:
    """Disabling keeps the first time it happened; enabling clears it."""
    conn.execute(
        "UPDATE users SET disabled_at = CASE WHEN ? = 1 THEN coalesce(disabled_at, ?) END, updated_at = ? WHERE id = ?",
        (int(disabled), at, at, user_id),
    )


def set_last_login(conn, user_id: str, at: int) -> None:
    conn.execute("UPDATE users SET last_login_at = ? WHERE id = ?", (at, user_id))


def credentials_row(conn, username: str):
    """A user's password hash, state and the tenant a session starts in (its oldest one)."""
    return conn.execute(
        "SELECT u.id, u.username, u.password_hash, u.disabled_at, "
        "(SELECT m.tenant_id FROM memberships m JOIN tenants t ON t.id = m.tenant_id "
        " WHERE m.user_id = u.id ORDER BY t.created_at, t.id LIMIT 1) AS tenant_id "
        "FROM users u WHERE lower(u.username) = lower(?)",
        (username,),
    ).fetchone()


# --- memberships --------------------------------------------------------------------------

_MEMBER = (
    "SELECT u.id, u.username, m.role, u.disabled_at, u.created_at, u.last_login_at "
    "FROM memberships m JOIN users u ON u.id = m.user_id"
)


def insert_membership(conn, user_id: str, tenant_id: str, role: str, at: int) -> None:
    conn.execute("INSERT INTO memberships (user_id, tenant_id, role, created_at) VALUES (?,?,?,?)",
                 (user_id, tenant_id, role, at))


def upsert_membership(conn, user_id: str, tenant_id: str, role: str, at: int) -> None:
    conn.execute(
        "INSERT INTO memberships (user_id, tenant_id, role, created_at) VALUES (?,?,?,?) "
        "ON CONFLICT (user_id, tenant_id) DO UPDATE SET role = excluded.role",
        (user_id, tenant_id, role, at),
    )


def delete_membership(conn, user_id: str, tenant_id: str) -> None:
    conn.execute("DELETE FROM memberships WHERE user_id = ? AND tenant_id = ?", (user_id, tenant_id))


def active_admin_ids(conn, tenant_id: str) -> set[str]:
    rows = conn.execute(
        "SELECT m.user_id FROM memberships m JOIN users u ON u.id = m.user_id "
        "WHERE m.tenant_id = ? AND m.role = 'admin' AND u.disabled_at IS NULL",
        (tenant_id,),
    )
    return {r["user_id"] for r in rows}


def tenant_ids_of_user(conn, user_id: str, role: str | None = None) -> set[str]:
    if role is None:
        rows = conn.execute("SELECT tenant_id FROM memberships WHERE user_id = ?", (user_id,))
    else:
        rows = conn.execute("SELECT tenant_id FROM memberships WHERE user_id = ? AND role = ?", (user_id, role))
    return {r["tenant_id"] for r in rows}


def member_row(conn, tenant_id: str, user_id: str):
    return conn.execute(f"{_MEMBER} WHERE m.tenant_id = ? AND u.id = ?", (tenant_id, user_id)).fetchone()


def member_rows(conn, tenant_id: str) -> list:
    return conn.execute(f"{_MEMBER} WHERE m.tenant_id = ? ORDER BY u.username", (tenant_id,)).fetchall()


def member_rows_with_tenant(conn, tenant_id: str | None = None) -> list:
    """Members with their tenant's name (`tenant_name`): every membership, or one tenant's."""
    sql = (
        "SELECT u.id, u.username, m.role, u.disabled_at, u.created_at, u.last_login_at, t.name AS tenant_name "
        "FROM memberships m JOIN users u ON u.id = m.user_id JOIN tenants t ON t.id = m.tenant_id"
    )
    if tenant_id is None:
        return conn.execute(sql + " ORDER BY t.name, u.username").fetchall()
    return conn.execute(sql + " WHERE m.tenant_id = ? ORDER BY t.name, u.username", (tenant_id,)).fetchall()


def membership_rows(conn, user_id: str) -> list:
    """The tenants a user belongs to: tenant_id, tenant_name, role."""
    return conn.execute(
        "SELECT m.tenant_id, t.name AS tenant_name, m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id "
        "WHERE m.user_id = ? ORDER BY t.name",
        (user_id,),
    ).fetchall()


# --- sessions -----------------------------------------------------------------------------


def delete_expired_sessions(conn, now: int) -> None:
    conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))


def insert_session(conn, session_id: str, user_id: str, tenant_id: str, csrf_token: str, now: int,
                   expires_at: int) -> None:
    conn.execute(
        "INSERT INTO sessions (id, user_id, tenant_id, csrf_token, created_at, renewed_at, expires_at) "
        "VALUES (?,?,?,?,?,?,?)",
        (session_id, user_id, tenant_id, csrf_token, now, now, expires_at),
    )


def live_session_row(conn, session_id: str, now: int):
    """An unexpired session whose user is enabled and still a member of the session's tenant."""
    return conn.execute(
        "SELECT s.id, s.user_id, u.username, s.tenant_id, t.name AS tenant_name, t.suspended, m.role, "
        "s.csrf_token, s.renewed_at, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id "
        "JOIN memberships m ON m.user_id = s.user_id AND m.tenant_id = s.tenant_id "
        "JOIN tenants t ON t.id = s.tenant_id "
        "WHERE s.id = ? AND s.expires_at > ? AND u.disabled_at IS NULL",
        (session_id, now),
    ).fetchone()


def set_session_expiry(conn, session_id: str, renewed_at: int, expires_at: int) -> None:
    conn.execute("UPDATE sessions SET renewed_at = ?, expires_at = ? WHERE id = ?",
                 (renewed_at, expires_at, session_id))


def delete_session(conn, session_id: str) -> None:
    conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))


def delete_user_sessions(conn, user_id: str, tenant_id: str | None = None) -> None:
    if tenant_id is None:
        conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
    else:
        conn.execute("DELETE FROM sessions WHERE user_id = ? AND tenant_id = ?", (user_id, tenant_id))


def session_user_is_member(conn, session_id: str, tenant_id: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM sessions s JOIN memberships m ON m.user_id = s.user_id AND m.tenant_id = ? WHERE s.id = ?",
        (tenant_id, session_id),
    ).fetchone() is not None


def set_session_tenant(conn, session_id: str, tenant_id: str) -> None:
    conn.execute("UPDATE sessions SET tenant_id = ? WHERE id = ?", (tenant_id, session_id))
