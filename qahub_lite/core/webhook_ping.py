"""A test delivery ("ping"): one `webhook.test` event queued for one hook, so that a team can
check a receiver (URL reachable, signature verified, chat message shown) before the first
real event. It goes through the outbox like any delivery (same signing, attempts, retries),
and its attempts are listed with the hook's other deliveries.

The event is sent to the hook whatever events it subscribes to: it is asked for by name.
"""

from __future__ import annotations

import sqlite3

import msgspec

from .clock import new_id, now_ms, to_iso
from .errors import Conflict, NotFound
from .webhooks import _plain as chat_plain

EVENT = "webhook.test"


class TestDelivery(msgspec.Struct):
    id: str  # the queued delivery: GET /api/v1/deliveries/{id} shows its attempts
    webhook_id: str
    event: str = EVENT
    state: str = "pending"


def _body(fmt: str, event_id: str, created_at: int, project: dict, hook_id: str) -> str:
    if fmt == "json":
        return msgspec.json.encode({
            "id": event_id, "event": EVENT, "created_at": to_iso(created_at), "project": project,
            "data": {"webhook_id": hook_id, "message": "Test delivery from qahub-lite: this webhook works."},
        }).decode()
    # Project names are a user's text: in a chat message they must not become links, mentions or
    # channel links; the escaping of the real events' messages (bare URLs, ~channel, Markdown).
    name = chat_plain(fmt, project["name"])
    return msgspec.json.encode({"text": f"[{name}] Test delivery from qahub-lite: this webhook works."}).decode()


def queue_test_delivery(conn: sqlite3.Connection, tenant_id: str, hook_id: str) -> TestDelivery:
    """Writer operation: queue one `webhook.test` delivery for the hook, due now."""
    row = conn.execute(
        "SELECT w.format, w.active, p.id, p.slug, p.name, p.default_branch FROM webhooks w "
        "JOIN projects p ON p.id = w.project_id WHERE w.id = ? AND w.tenant_id = ?",
        (hook_id, tenant_id),
    ).fetchone()
    if row is None:
        raise NotFound("Webhook not found")
    if not row[1]:
        # The sender skips paused hooks (outbox.claim_due): the test would wait for ever.
        raise Conflict("this webhook is paused (active: false); activate it to send a test delivery")
    project = {"id": row[2], "slug": row[3], "name": row[4], "default_branch": row[5]}
    delivery_id, event_id, now = new_id(), new_id(), now_ms()
    conn.execute(
        "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event, body, state, next_attempt_at, created_at) "
        "VALUES (?,?,?,?,?,'pending',?,?)",
        (delivery_id, hook_id, event_id, EVENT, _body(row[0], event_id, now, project, hook_id), now, now),
    )
    return TestDelivery(delivery_id, hook_id)
