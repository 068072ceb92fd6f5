"""Storage of webhooks and their outbox: hooks, deliveries and every attempt of each
(core/webhooks.py and core/outbox.py hold the rules: formats, signing, retries).

Plain sync functions of a connection: SQL and row shaping only. Rows are read by column name.
"""

from __future__ import annotations

from collections.abc import Sequence

from .engine import is_postgresql

HOOK_COLUMNS = "id, project_id, url, events, format, active, description, created_at, updated_at"
# What a hook's owner may change (core/webhooks.py checks the values).
UPDATABLE = frozenset({"url", "events", "format", "active", "description", "secret"})
_DELIVERY_COLUMNS = (
    "d.id, d.webhook_id, d.event, d.event_id, d.state, d.attempts, d.next_attempt_at, d.last_status, d.last_error, "
    "d.redelivery_of, d.created_at, d.delivered_at"
)


# --- hooks ----------------------------------------------------------------------------------


def insert_webhook(
    conn, *, hook_id: str, tenant_id: str, project_id: str, url: str, events: str, fmt: str, active: bool,
    description: str | None, secret: str, now: int,
) -> None:
    conn.execute(
        f"INSERT INTO webhooks ({HOOK_COLUMNS}, tenant_id, secret) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (hook_id, project_id, url, events, fmt, int(active), description, now, now, tenant_id, secret),
    )


def get_webhook(conn, tenant_id: str, hook_id: str):
    """A tenant's hook (HOOK_COLUMNS, no secret), or None."""
    return conn.execute(
        f"SELECT {HOOK_COLUMNS} FROM webhooks WHERE id = ? AND tenant_id = ?", (hook_id, tenant_id)
    ).fetchone()


def list_webhooks(conn, project_id: str) -> list:
    return conn.execute(
        f"SELECT {HOOK_COLUMNS} FROM webhooks WHERE project_id = ? ORDER BY created_at, id", (project_id,)
    ).fetchall()


def update_webhook(conn, hook_id: str, changes: dict, now: int) -> None:
    """Set the columns named by `changes` (a subset of UPDATABLE) and updated_at."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"not a column a hook's owner may change: {', '.join(sorted(unknown))}")
    if changes:
        sets = ", ".join(f"{column} = ?" for column in changes)
        conn.execute(f"UPDATE webhooks SET {sets}, updated_at = ? WHERE id = ?", (*changes.values(), now, hook_id))


def delete_webhook(conn, hook_id: str) -> None:
    """Its deliveries and their attempts go with it (ON DELETE CASCADE)."""
    conn.execute("DELETE FROM webhooks WHERE id = ?", (hook_id,))


def active_subscribers(conn, project_id: str) -> list:
    """id, events, format of a project's active hooks."""
    return conn.execute(
        "SELECT id, events, format FROM webhooks WHERE project_id = ? AND active = 1", (project_id,)
    ).fetchall()


def hook_with_project(conn, tenant_id: str, hook_id: str):
    """format, active, and the project (project_id, slug, name, default_branch) of a tenant's hook;
    None when there is no such hook."""
    return conn.execute(
        "SELECT w.format, w.active, p.id AS project_id, p.slug, p.name, p.default_branch FROM webhooks w "
        "JOIN projects p ON p.id = w.project_id WHERE w.id = ? AND w.tenant_id = ?",
        (hook_id, tenant_id),
    ).fetchone()


# --- the outbox -----------------------------------------------------------------------------


def insert_deliveries(conn, deliveries: Sequence[tuple]) -> None:
    """Queue deliveries due at once: (id, webhook_id, event_id, event, body, next_attempt_at,
    redelivery_of, created_at) tuples."""
    conn.executemany(
        "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event, body, state, next_attempt_at, redelivery_of, "
        "created_at) VALUES (?,?,?,?,?,'pending',?,?,?)",
        deliveries,
    )


def claim_due_deliveries(conn, now: int, lease_ms: int, limit: int) -> list:
    """THE sender's claim: up to `limit` due deliveries of active hooks, oldest due first, each
    with its hook's url and secret and the number its attempt will have (attempt); their next
    attempt moves `lease_ms` ahead so that nothing else sends them meanwhile. Atomic in the
    writer's transaction, which runs alone on every engine (engine.py); on PostgreSQL the rows
    are also locked (`FOR UPDATE OF d SKIP LOCKED`), so that the claim stays once-only even
    for a writer that would not take the write lock."""
    lock = " FOR UPDATE OF d SKIP LOCKED" if is_postgresql(conn) else ""
    rows = conn.execute(
        "SELECT d.id, d.webhook_id, w.url, w.secret, d.event, d.event_id, d.body, d.attempts + 1 AS attempt "
        "FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
        "WHERE d.state = 'pending' AND d.next_attempt_at <= ? AND w.active = 1 ORDER BY d.next_attempt_at "
        f"LIMIT ?{lock}",
        (now, limit),
    ).fetchall()
    conn.executemany(
        "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?", [(now + lease_ms, r["id"]) for r in rows]
    )
    return rows


def release_deliveries(conn, delivery_ids: Sequence[str], now: int) -> None:
    conn.executemany(
        "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ? AND state = 'pending'",
        [(now, d) for d in delivery_ids],
    )


def insert_attempts(conn, attempts: Sequence[tuple]) -> None:
    """(delivery_id, attempt, started_at, duration_ms, status_code, error, response_body)
    tuples; an attempt recorded already (a sender that retried its write) is kept as it is."""
    conn.executemany(  # INSERT OR IGNORE: postgresql.py spells it ON CONFLICT DO NOTHING
        "INSERT OR IGNORE INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, "
        "response_body) VALUES (?,?,?,?,?,?,?)",
        attempts,
    )


def delivery_progress(conn, delivery_id: str):
    """created_at and state of a delivery, or None once it is deleted."""
    return conn.execute("SELECT created_at, state FROM webhook_deliveries WHERE id = ?", (delivery_id,)).fetchone()


def mark_delivered(conn, delivery_id: str, attempt: int, status: int | None, error: str | None, now: int) -> None:
    conn.execute(
        "UPDATE webhook_deliveries SET state = 'delivered', attempts = ?, next_attempt_at = NULL, "
        "last_status = ?, last_error = ?, delivered_at = ? WHERE id = ?",
        (attempt, status, error, now, delivery_id),
    )


def mark_given_up(conn, delivery_id: str, attempt: int, status: int | None, error: str | None) -> None:
    conn.execute(
        "UPDATE webhook_deliveries SET state = 'failed', attempts = ?, next_attempt_at = NULL, "
        "last_status = ?, last_error = ? WHERE id = ?",
        (attempt, status, error, delivery_id),
    )


def schedule_retry(
    conn, delivery_id: str, attempt: int, next_attempt_at: int, status: int | None, error: str | None,
) -> None:
    conn.execute(
        "UPDATE webhook_deliveries SET attempts = ?, next_attempt_at = ?, last_status = ?, last_error = ? "
        "WHERE id = ?",
        (attempt, next_attempt_at, status, error, delivery_id),
    )


def prune_finished(conn, before_ms: int, limit: int) -> int:
    """Delete up to `limit` finished deliveries created before `before_ms`; returns how many."""
    ids = [r["id"] for r in conn.execute(
        "SELECT id FROM webhook_deliveries WHERE state != 'pending' AND created_at < ? ORDER BY created_at LIMIT ?",
        (before_ms, limit),
    )]
    conn.executemany("DELETE FROM webhook_deliveries WHERE id = ?", [(i,) for i in ids])
    return len(ids)


# --- what the API shows ---------------------------------------------------------------------


def list_deliveries(conn, webhook_id: str, *, state: str | None, after: tuple[int, str] | None, limit: int) -> list:
    """A hook's deliveries, newest first, after the (created_at, id) position `after`."""
    where, params = ["d.webhook_id = ?"], [webhook_id]
    if state is not None:
        where.append("d.state = ?")
        params.append(state)
    if after:
        where.append("(d.created_at, d.id) < (?, ?)")
        params += [after[0], after[1]]
    return conn.execute(
        f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE {' AND '.join(where)} "
        "ORDER BY d.created_at DESC, d.id DESC LIMIT ?",
        (*params, limit),
    ).fetchall()


def get_delivery(conn, tenant_id: str, delivery_id: str):
    """A tenant's delivery with its body and project_id, or None."""
    return conn.execute(
        f"SELECT {_DELIVERY_COLUMNS}, d.body, w.project_id FROM webhook_deliveries d "
        "JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = ? AND w.tenant_id = ?",
        (delivery_id, tenant_id),
    ).fetchone()


def delivery_attempts(conn, delivery_id: str) -> list:
    return conn.execute(
        "SELECT attempt, started_at, duration_ms, status_code, error, response_body FROM webhook_attempts "
        "WHERE delivery_id = ? ORDER BY attempt",
        (delivery_id,),
    ).fetchall()


def delivery_project(conn, tenant_id: str, delivery_id: str) -> str | None:
    row = conn.execute(
        "SELECT w.project_id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
        "WHERE d.id = ? AND w.tenant_id = ?",
        (delivery_id, tenant_id),
    ).fetchone()
    return None if row is None else row["project_id"]


def delivery_to_repeat(conn, tenant_id: str, delivery_id: str):
    """webhook_id, event_id, event, body, state of a tenant's delivery, or None."""
    return conn.execute(
        "SELECT d.webhook_id, d.event_id, d.event, d.body, d.state FROM webhook_deliveries d "
        "JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = ? AND w.tenant_id = ?",
        (delivery_id, tenant_id),
    ).fetchone()
