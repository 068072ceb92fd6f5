"""A test delivery ("ping"): one `webhook.test` event queued for one hook, so that a team can
check a receiver (URL reachable, signature verified, chat message shown) before the first
real event. It goes through the outbox like any delivery (same signing, attempts, retries),
and its attempts are listed with the hook's other deliveries.

The event is sent to the hook whatever events it subscribes to: it is asked for by name.
"""

from __future__ import annotations

import msgspec

from ..db import webhooks as webhooks_db
from .clock import new_id, now_ms
from .errors import Conflict, NotFound
from .webhooks import TEST_EVENT, build_body

EVENT = TEST_EVENT
MESSAGE = "Test delivery from qahub-lite: this webhook works."


class TestDelivery(msgspec.Struct):
    id: str  # the queued delivery: GET /api/v1/deliveries/{id} shows its attempts
    webhook_id: str
    event: str = EVENT
    state: str = "pending"


def _body(fmt: str, event_id: str, created_at: int, project: dict, hook_id: str) -> str:
    # The envelope (and a chat message's escaping of the project's name) of every real event.
    return build_body(fmt, EVENT, event_id, created_at, project, {"webhook_id": hook_id, "message": MESSAGE})


def queue_test_delivery(conn, tenant_id: str, hook_id: str) -> TestDelivery:
    """Writer operation: queue one `webhook.test` delivery for the hook, due now."""
    row = webhooks_db.hook_with_project(conn, tenant_id, hook_id)
    if row is None:
        raise NotFound("Webhook not found")
    if not row["active"]:
        # The sender skips paused hooks (outbox.claim_due): the test would wait for ever.
        raise Conflict("this webhook is paused (active: false); activate it to send a test delivery")
    project = {"id": row["project_id"], "slug": row["slug"], "name": row["name"],
               "default_branch": row["default_branch"]}
    delivery_id, event_id, now = new_id(), new_id(), now_ms()
    body = _body(row["format"], event_id, now, project, hook_id)
    webhooks_db.insert_deliveries(conn, [(delivery_id, hook_id, event_id, EVENT, body, now, None, now)])
    return TestDelivery(delivery_id, hook_id)
