"""Webhook routes: a project's hooks, their deliveries with every attempt, and redelivery by
hand (docs/health.md: events, bodies, signature, retries).

Creating, changing and redelivering need an admin key: a hook sends project data to any URL
its creator names, which is an administrator's decision. Keys below admin see a hook's URL as
its scheme and host only (a chat webhook URL is a credential) and no receiver's answers.
"""

from __future__ import annotations

import msgspec
from litestar import Request, Response
from litestar.params import FromPath

from ..core import outbox, webhook_ping, webhooks
from .auth import authenticate, check_project
from .context import services
from .errors import ApiError
from .health_schema import DeliveriesQuery, Redelivered, WebhookIn, WebhookPatch
from .native_library import visible_project
from .native_schema import Deleted
from .routing import endpoint, read_body, read_query

TAGS = ["Webhooks"]


async def _visible_hook(request: Request, scope: str, hook_id: str):
    principal = await authenticate(request, scope)
    hook = await services(request).db.read(webhooks.get_webhook, principal.tenant_id, hook_id)
    check_project(principal, hook.project_id)
    return principal, hook


@endpoint("POST", "/api/v1/projects/{project_id:str}/webhooks", summary="Create a webhook (its secret is shown once)",
          tags=TAGS, scope="admin", body=WebhookIn, responses={201: webhooks.NewWebhook},
          description="Events: run.completed, run.regressed, test.flaky, failure.new, test.quarantined, test.unquarantined. Format json (signed envelope), slack or "
          "mattermost ({\"text\": ...} for incoming webhooks). Bodies are signed: X-Qahub-Signature: sha256=<hex "
          "HMAC-SHA256 of \"<X-Qahub-Timestamp>.<body>\">.")
async def create_webhook(request: Request, project_id: FromPath[str]) -> Response:
    principal, project = await visible_project(request, "admin", project_id)
    data = await read_body(request, WebhookIn)
    created = await services(request).db.write(
        lambda conn: webhooks.create_webhook(
            conn, principal.tenant_id, project.id, url=data.url, events=list(data.events), fmt=data.format,
            description=data.description, active=data.active, secret=data.secret,
        )
    )
    return Response(created, status_code=201)


@endpoint("GET", "/api/v1/projects/{project_id:str}/webhooks", summary="List a project's webhooks", tags=TAGS,
          scope="read", responses={200: webhooks.WebhookList},
          description="Keys below admin see each `url` as its scheme and host only: a chat webhook URL is a credential.")
async def list_webhooks(request: Request, project_id: FromPath[str]) -> webhooks.WebhookList:
    principal, project = await visible_project(request, "read", project_id)
    hooks = await services(request).db.read(webhooks.list_webhooks, project.id)
    if not principal.allows("admin"):
        hooks = webhooks.WebhookList([webhooks.without_secrets(h) for h in hooks.data])
    return hooks


@endpoint("GET", "/api/v1/webhooks/{webhook_id:str}", summary="Get a webhook", tags=TAGS, scope="read",
          responses={200: webhooks.Webhook},
          description="Keys below admin see `url` as its scheme and host only: a chat webhook URL is a credential.")
async def get_webhook(request: Request, webhook_id: FromPath[str]) -> webhooks.Webhook:
    principal, hook = await _visible_hook(request, "read", webhook_id)
    return hook if principal.allows("admin") else webhooks.without_secrets(hook)


@endpoint("PATCH", "/api/v1/webhooks/{webhook_id:str}", summary="Change a webhook (url, events, format, active, "
          "description, secret)", tags=TAGS, scope="admin", body=WebhookPatch, responses={200: webhooks.Webhook})
async def update_webhook(request: Request, webhook_id: FromPath[str]) -> webhooks.Webhook:
    principal, hook = await _visible_hook(request, "admin", webhook_id)
    patch = await read_body(request, WebhookPatch)
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    if "events" in changes:
        changes["events"] = list(changes["events"])
    return await services(request).db.write(webhooks.update_webhook, principal.tenant_id, hook.id, changes)


@endpoint("DELETE", "/api/v1/webhooks/{webhook_id:str}", summary="Delete a webhook and its deliveries", tags=TAGS,
          scope="admin", responses={200: Deleted})
async def delete_webhook(request: Request, webhook_id: FromPath[str]) -> Deleted:
    principal, hook = await _visible_hook(request, "admin", webhook_id)
    await services(request).db.write(webhooks.delete_webhook, principal.tenant_id, hook.id)
    return Deleted(hook.id)


@endpoint("GET", "/api/v1/webhooks/{webhook_id:str}/deliveries", summary="A webhook's deliveries, newest first",
          tags=TAGS, scope="read", query=DeliveriesQuery, responses={200: outbox.DeliveryPage})
async def list_deliveries(request: Request, webhook_id: FromPath[str]) -> outbox.DeliveryPage:
    principal = await authenticate(request, "read")
    try:
        q = read_query(request, DeliveriesQuery)
    except ApiError:
        await _visible_hook(request, "read", webhook_id)  # an unknown or hidden hook answers 404 first
        raise
    hook, found = await services(request).db.read(
        outbox.hook_deliveries, principal.tenant_id, webhook_id, state=q.state, limit=q.limit, cursor=q.cursor
    )
    check_project(principal, hook.project_id)
    return found


async def _visible_delivery(request: Request, scope: str, delivery_id: FromPath[str]):
    principal = await authenticate(request, scope)
    check_project(principal, await services(request).db.read(outbox.delivery_project, principal.tenant_id, delivery_id))
    return principal


@endpoint("GET", "/api/v1/deliveries/{delivery_id:str}", summary="One delivery: its body and every attempt",
          tags=TAGS, scope="read", responses={200: outbox.DeliveryDetail},
          description="Each attempt's `response_body` (the receiver's answer) is shown to admin keys only.")
async def get_delivery(request: Request, delivery_id: FromPath[str]) -> outbox.DeliveryDetail:
    principal = await authenticate(request, "read")
    project_id, delivery = await services(request).db.read(
        outbox.delivery_with_project, principal.tenant_id, delivery_id, with_responses=principal.allows("admin")
    )
    check_project(principal, project_id)
    return delivery


@endpoint("POST", "/api/v1/deliveries/{delivery_id:str}/redeliver", summary="Send a delivery again, now",
          tags=TAGS, scope="admin", responses={202: Redelivered},
          description="Queues the same body (same event id) as a new delivery with its own attempts and a new day "
          "of retries. 409 while the original is still being retried.")
async def redeliver(request: Request, delivery_id: FromPath[str]) -> Response:
    principal = await _visible_delivery(request, "admin", delivery_id)
    new_id = await services(request).db.write(outbox.redeliver, principal.tenant_id, delivery_id)
    return Response(Redelivered(new_id, delivery_id), status_code=202)


@endpoint("POST", "/api/v1/webhooks/{webhook_id:str}/test", summary="Send a test delivery (event webhook.test)",
          tags=TAGS, scope="admin", responses={202: webhook_ping.TestDelivery},
          description="Queues one `webhook.test` event for this hook, signed and retried like any delivery, whatever "
          "events the hook subscribes to; follow it with GET /api/v1/deliveries/{id}. 409 when the hook is paused.")
async def test_delivery(request: Request, webhook_id: FromPath[str]) -> Response:
    principal, hook = await _visible_hook(request, "admin", webhook_id)
    queued = await services(request).db.write(webhook_ping.queue_test_delivery, principal.tenant_id, hook.id)
    return Response(queued, status_code=202)


HANDLERS = [
    create_webhook, list_webhooks, get_webhook, update_webhook, delete_webhook, list_deliveries, get_delivery,
    redeliver, test_delivery,
]
