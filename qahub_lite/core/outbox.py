"""The webhook outbox: deliveries waiting, sent, given up, and every attempt of each.

A delivery is queued in the transaction of its event (webhooks.enqueue), so a crash can lose
none. The sender (the `webhook-delivery` maintenance task, run_completion_tasks.py) claims due ones,
which moves their next attempt a lease into the future so that nothing else sends them
meanwhile, sends them, and records each attempt. After a failure the next attempt waits
retry_base_s x 2^(attempts - 1) seconds (at most retry_max_s, +-10 % so that hooks of a
recovering receiver do not all come back at once); the last attempt is made at created_at + retry_for_hours, and the delivery is then given up.
A restart only delays: a claimed delivery whose sender died is due again when its lease ends.
"""

from __future__ import annotations

import random

import msgspec

from ..db import webhooks as webhooks_db
from .clock import new_id, now_ms, to_iso
from .errors import Conflict, NotFound
from .paging import clamp_limit, decode_cursor, split_page
from .webhooks import Webhook, get_webhook

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


def claim_due(conn, now: int, lease_ms: int, limit: int) -> list[Due]:
    """Writer operation: take up to `limit` due deliveries of active hooks, oldest due first."""
    return [
        Due(r["id"], r["webhook_id"], r["url"], r["secret"], r["event"], r["event_id"], r["body"], r["attempt"])
        for r in webhooks_db.claim_due_deliveries(conn, now, lease_ms, limit)
    ]


def release(conn, delivery_ids: list[str], now: int) -> None:
    """Writer operation: hand claimed deliveries back (the sender is stopping before sending)."""
    webhooks_db.release_deliveries(conn, delivery_ids, now)


def backoff_ms(attempts: int, retry: Retry) -> int:
    delay = min(retry.base_s * 2 ** max(0, attempts - 1), retry.max_s)
    return int(delay * 1000 * random.uniform(0.9, 1.1))


def record(conn, outcomes: list[AttemptOutcome], retry: Retry) -> None:
    """Writer operation: keep each attempt and move its delivery on (delivered, retry later,
    or given up)."""
    now = now_ms()
    webhooks_db.insert_attempts(conn, [
        (o.delivery_id, o.attempt, o.started_at, o.duration_ms, o.status_code, o.error, o.response_body)
        for o in outcomes
    ])
    for o in outcomes:
        row = webhooks_db.delivery_progress(conn, o.delivery_id)
        if row is None or row["state"] != PENDING:
            continue  # deleted with its hook meanwhile
        if o.ok:
            webhooks_db.mark_delivered(conn, o.delivery_id, o.attempt, o.status_code, o.error, now)
            continue
        deadline = row["created_at"] + retry.for_hours * 3_600_000
        if now >= deadline:
            webhooks_db.mark_given_up(conn, o.delivery_id, o.attempt, o.status_code, o.error)
        else:
            due = min(now + backoff_ms(o.attempt, retry), deadline)
            webhooks_db.schedule_retry(conn, o.delivery_id, o.attempt, due, o.status_code, o.error)


def prune(conn, before_ms: int, limit: int = 500) -> int:
    """Writer operation: delete up to `limit` finished deliveries created before `before_ms`."""
    return webhooks_db.prune_finished(conn, before_ms, limit)


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


def _delivery(r) -> Delivery:
    pending = r["state"] == PENDING
    return Delivery(
        r["id"], r["webhook_id"], r["event"], r["event_id"], r["state"], r["attempts"],
        to_iso(r["next_attempt_at"]) if pending else None, r["last_status"], r["last_error"], r["redelivery_of"],
        to_iso(r["created_at"]), to_iso(r["delivered_at"]),
    )


def list_deliveries(
    conn, webhook_id: str, *, state: str | None = None, limit: int | None = None, cursor: str | None = None,
) -> DeliveryPage:
    """A hook's deliveries, newest first."""
    limit = clamp_limit(limit)
    rows = webhooks_db.list_deliveries(conn, webhook_id, state=state, after=decode_cursor(cursor), limit=limit + 1)
    rows, next_cursor = split_page(rows, limit, created_col="created_at", id_col="id")
    return DeliveryPage([_delivery(r) for r in rows], next_cursor)


def get_delivery(conn, tenant_id: str, delivery_id: str, *, with_responses: bool = True) -> DeliveryDetail:
    """A delivery with every attempt. What a receiver answered is shown `with_responses` only
    (to admin keys): an internal service's answer is not for every key of the tenant."""
    r = webhooks_db.get_delivery(conn, tenant_id, delivery_id)
    if r is None:
        raise NotFound("Delivery not found")
    base = _delivery(r)
    return DeliveryDetail(
        *(getattr(base, f) for f in base.__struct_fields__), body=r["body"],
        attempt_log=[
            Attempt(a["attempt"], to_iso(a["started_at"]), a["duration_ms"], a["status_code"], a["error"],
                    a["response_body"] if with_responses else None)
            for a in webhooks_db.delivery_attempts(conn, delivery_id)
        ],
    )


def hook_deliveries(
    conn, tenant_id: str, hook_id: str, *, state: str | None = None, limit: int | None = None,
    cursor: str | None = None,
) -> tuple[Webhook, DeliveryPage]:
    """A tenant's hook and a page of its deliveries, in one read (the caller checks that the
    hook's project is visible before it shows either)."""
    hook = get_webhook(conn, tenant_id, hook_id)
    return hook, list_deliveries(conn, hook.id, state=state, limit=limit, cursor=cursor)


def delivery_with_project(
    conn, tenant_id: str, delivery_id: str, *, with_responses: bool = True,
) -> tuple[str, DeliveryDetail]:
    """(project id, delivery) in one read, for callers that check the project before showing it."""
    return delivery_project(conn, tenant_id, delivery_id), get_delivery(
        conn, tenant_id, delivery_id, with_responses=with_responses
    )


def delivery_with_hook(conn, tenant_id: str, delivery_id: str) -> tuple[DeliveryDetail, Webhook]:
    """A delivery with the hook it belongs to, in one read (the web page shows both)."""
    delivery = get_delivery(conn, tenant_id, delivery_id)
    return delivery, get_webhook(conn, tenant_id, delivery.webhook_id)


def delivery_project(conn, tenant_id: str, delivery_id: str) -> str:
    """The project a delivery belongs to (for keys limited to one project)."""
    project_id = webhooks_db.delivery_project(conn, tenant_id, delivery_id)
    if project_id is None:
        raise NotFound("Delivery not found")
    return project_id


def redeliver(conn, tenant_id: str, delivery_id: str) -> str:
    """Writer operation: queue the same body again, as a new delivery due now (the original
    keeps its attempts). Returns the new delivery's id."""
    row = webhooks_db.delivery_to_repeat(conn, tenant_id, delivery_id)
    if row is None:
        raise NotFound("Delivery not found")
    if row["state"] == PENDING:
        raise Conflict("this delivery is still being retried; redeliver it once it is delivered or given up")
    new, now = new_id(), now_ms()
    webhooks_db.insert_deliveries(
        conn, [(new, row["webhook_id"], row["event_id"], row["event"], row["body"], now, delivery_id, now)]
    )
    return new
