"""The webhook outbox: deliveries waiting, sent, given up, and every attempt of each.

A delivery is queued in the transaction of its event (webhooks.enqueue), so a crash can lose
none. The sender (qahub_lite/delivery.py) claims due ones, which moves their next attempt a
lease into the future so that nothing else sends them meanwhile, sends them, and records each
attempt. After a failure the next attempt waits retry_base_s x 2^(attempts - 1) seconds (at
most retry_max_s, +-10 % so that hooks of a recovering receiver do not all come back at once);
the last attempt is made at created_at + retry_for_hours, and the delivery is then given up.
A restart only delays: a claimed delivery whose sender died is due again when its lease ends.
"""

from __future__ import annotations

import random
import sqlite3

import aiosqlite
import msgspec

from .clock import new_id, now_ms, to_iso
from .errors import Conflict, NotFound
from .paging import clamp_limit, decode_cursor, split_page

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
RESPONSE_KEEP = 1000  # characters of an answer kept for diagnosis


class Due(msgspec.Struct):
    id: str
    webhook_id: str
    url: str
    secret: str
    event: str
    event_id: str
    body: str
    attempt: int  # the number this attempt will have


class AttemptOutcome(msgspec.Struct):
    delivery_id: str
    attempt: int
    started_at: int
    duration_ms: int
    status_code: int | None
    error: str | None
    response_body: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Retry(msgspec.Struct):
    base_s: int
    max_s: int
    for_hours: int


def claim_due(conn: sqlite3.Connection, now: int, lease_ms: int, limit: int) -> list[Due]:
    """Writer operation: take up to `limit` due deliveries of active hooks, oldest due first."""
    rows = conn.execute(
        "SELECT d.id, d.webhook_id, w.url, w.secret, d.event, d.event_id, d.body, d.attempts + 1 "
        "FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
        "WHERE d.state = 'pending' AND d.next_attempt_at <= ? AND w.active = 1 ORDER BY d.next_attempt_at LIMIT ?",
        (now, limit),
    ).fetchall()
    conn.executemany(
        "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?", [(now + lease_ms, r[0]) for r in rows]
    )
    return [Due(*r) for r in rows]


def release(conn: sqlite3.Connection, delivery_ids: list[str], now: int) -> None:
    """Writer operation: hand claimed deliveries back (the sender is stopping before sending)."""
    conn.executemany(
        "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ? AND state = 'pending'",
        [(now, d) for d in delivery_ids],
    )


def backoff_ms(attempts: int, retry: Retry) -> int:
    delay = min(retry.base_s * 2 ** max(0, attempts - 1), retry.max_s)
    return int(delay * 1000 * random.uniform(0.9, 1.1))


def record(conn: sqlite3.Connection, outcomes: list[AttemptOutcome], retry: Retry) -> None:
    """Writer operation: keep each attempt and move its delivery on (delivered, retry later,
    or given up)."""
    now = now_ms()
    conn.executemany(
        "INSERT OR IGNORE INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, "
        "response_body) VALUES (?,?,?,?,?,?,?)",
        [(o.delivery_id, o.attempt, o.started_at, o.duration_ms, o.status_code, o.error, o.response_body)
         for o in outcomes],
    )
    for o in outcomes:
        row = conn.execute("SELECT created_at, state FROM webhook_deliveries WHERE id = ?", (o.delivery_id,)).fetchone()
        if row is None or row[1] != PENDING:
            continue  # deleted with its hook meanwhile
        common = (o.status_code, o.error)
        if o.ok:
            conn.execute(
                "UPDATE webhook_deliveries SET state = 'delivered', attempts = ?, next_attempt_at = NULL, "
                "last_status = ?, last_error = ?, delivered_at = ? WHERE id = ?",
                (o.attempt, *common, now, o.delivery_id),
            )
            continue
        deadline = row[0] + retry.for_hours * 3_600_000
        if now >= deadline:
            conn.execute(
                "UPDATE webhook_deliveries SET state = 'failed', attempts = ?, next_attempt_at = NULL, "
                "last_status = ?, last_error = ? WHERE id = ?",
                (o.attempt, *common, o.delivery_id),
            )
        else:
            conn.execute(
                "UPDATE webhook_deliveries SET attempts = ?, next_attempt_at = ?, last_status = ?, last_error = ? "
                "WHERE id = ?",
                (o.attempt, min(now + backoff_ms(o.attempt, retry), deadline), *common, o.delivery_id),
            )


def prune(conn: sqlite3.Connection, before_ms: int, limit: int = 500) -> int:
    """Writer operation: delete up to `limit` finished deliveries created before `before_ms`."""
    ids = [r[0] for r in conn.execute(
        "SELECT id FROM webhook_deliveries WHERE state != 'pending' AND created_at < ? ORDER BY created_at LIMIT ?",
        (before_ms, limit),
    )]
    conn.executemany("DELETE FROM webhook_deliveries WHERE id = ?", [(i,) for i in ids])
    return len(ids)


# --- what the API shows -------------------------------------------------------------------


class Attempt(msgspec.Struct):
    attempt: int
    started_at: str | None
    duration_ms: int
    status_code: int | None
    error: str | None
    response_body: str | None


class Delivery(msgspec.Struct):
    id: str
    webhook_id: str
    event: str
    event_id: str
    state: str
    attempts: int
    next_attempt_at: str | None
    last_status: int | None
    last_error: str | None
    redelivery_of: str | None
    created_at: str | None
    delivered_at: str | None


class DeliveryDetail(Delivery):
    body: str
    attempt_log: list[Attempt]


class DeliveryPage(msgspec.Struct):
    data: list[Delivery]
    next_cursor: str | None


_COLUMNS = (
    "d.id, d.webhook_id, d.event, d.event_id, d.state, d.attempts, d.next_attempt_at, d.last_status, d.last_error, "
    "d.redelivery_of, d.created_at, d.delivered_at"
)


def _delivery(r) -> Delivery:
    return Delivery(r[0], r[1], r[2], r[3], r[4], r[5], to_iso(r[6]) if r[4] == PENDING else None, r[7], r[8], r[9],
                    to_iso(r[10]), to_iso(r[11]))


async def list_deliveries(
    conn: aiosqlite.Connection, webhook_id: str, *, state: str | None = None, limit: int | None = None,
    cursor: str | None = None,
) -> DeliveryPage:
    """A hook's deliveries, newest first."""
    limit = clamp_limit(limit)
    where, params = ["d.webhook_id = ?"], [webhook_id]
    if state is not None:
        where.append("d.state = ?")
        params.append(state)
    after = decode_cursor(cursor)
    if after:
        where.append("(d.created_at, d.id) < (?, ?)")
        params += [after[0], after[1]]
    rows = list(await conn.execute_fetchall(
        f"SELECT {_COLUMNS} FROM webhook_deliveries d WHERE {' AND '.join(where)} "
        "ORDER BY d.created_at DESC, d.id DESC LIMIT ?",
        (*params, limit + 1),
    ))
    rows, next_cursor = split_page(rows, limit, created_col=10)
    return DeliveryPage([_delivery(r) for r in rows], next_cursor)


async def get_delivery(
    conn: aiosqlite.Connection, tenant_id: str, delivery_id: str, *, with_responses: bool = True,
) -> DeliveryDetail:
    """A delivery with every attempt. What a receiver answered is shown `with_responses` only
    (to admin keys): an internal service's answer is not for every key of the tenant."""
    rows = await conn.execute_fetchall(
        f"SELECT {_COLUMNS}, d.body, w.project_id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
        "WHERE d.id = ? AND w.tenant_id = ?",
        (delivery_id, tenant_id),
    )
    if not rows:
        raise NotFound("Delivery not found")
    r = rows[0]
    attempts = await conn.execute_fetchall(
        "SELECT attempt, started_at, duration_ms, status_code, error, response_body FROM webhook_attempts "
        "WHERE delivery_id = ? ORDER BY attempt",
        (delivery_id,),
    )
    base = _delivery(r)
    return DeliveryDetail(
        *(getattr(base, f) for f in base.__struct_fields__), body=r[12],
        attempt_log=[Attempt(a[0], to_iso(a[1]), a[2], a[3], a[4], a[5] if with_responses else None)
                     for a in attempts],
    )


async def delivery_project(conn: aiosqlite.Connection, tenant_id: str, delivery_id: str) -> str:
    """The project a delivery belongs to (for keys limited to one project)."""
    rows = await conn.execute_fetchall(
        "SELECT w.project_id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
        "WHERE d.id = ? AND w.tenant_id = ?",
        (delivery_id, tenant_id),
    )
    if not rows:
        raise NotFound("Delivery not found")
    return rows[0][0]


def redeliver(conn: sqlite3.Connection, tenant_id: str, delivery_id: str) -> str:
    """Writer operation: queue the same body again, as a new delivery due now (the original
    keeps its attempts). Returns the new delivery's id."""
    row = conn.execute(
        "SELECT d.webhook_id, d.event_id, d.event, d.body, d.state FROM webhook_deliveries d "
        "JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = ? AND w.tenant_id = ?",
        (delivery_id, tenant_id),
    ).fetchone()
    if row is None:
        raise NotFound("Delivery not found")
    if row[4] == PENDING:
        raise Conflict("this delivery is still being retried; redeliver it once it is delivered or given up")
    new, now = new_id(), now_ms()
    conn.execute(
        "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event, body, state, next_attempt_at, redelivery_of, "
        "created_at) VALUES (?,?,?,?,?,'pending',?,?,?)",
        (new, row[0], row[1], row[2], row[3], now, delivery_id, now),
    )
    return new
