"""Webhooks of a project, for tenant admins: create (the signing secret is shown once), switch
on and off, delete, and look at every delivery with its attempts, redelivering by hand.

The same operations as the native API's webhook routes (core/webhooks.py, core/outbox.py): a
delivery made here goes through the same durable outbox and the same maintenance task.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath

from ..http.services import services
from ..core import outbox, projects, webhook_ping, webhooks
from .auth import web_session
from .forms import read_form, read_query
from .pages_project_settings import render_project
from .render import page, redirect

DELIVERIES_PER_PAGE = 50


class WebhookForm(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(max_length=2000)]
    events: list[Literal[webhooks.EVENTS]]  # type: ignore[valid-type]
    format: Literal[webhooks.FORMATS] = "json"  # type: ignore[valid-type]
    description: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class ActiveForm(msgspec.Struct, forbid_unknown_fields=True):
    active: bool


class EmptyForm(msgspec.Struct, forbid_unknown_fields=True):
    """A button: nothing but the CSRF token."""


class DeliveriesQuery(msgspec.Struct, forbid_unknown_fields=True):
    cursor: Annotated[str, msgspec.Meta(max_length=200)] | None = None


@post("/settings/projects/{project_id:str}/webhooks", include_in_schema=False, status_code=201)
async def create_webhook(request: Request, project_id: FromPath[str]) -> Response:
    session = await web_session(request, "admin")
    form = await read_form(request, WebhookForm, csrf=session.csrf_token)
    svc = services(request)
    project = await services(request).db.read(projects.get_project, session.tenant_id, project_id)
    new = await svc.db.write(
        lambda conn: webhooks.create_webhook(
            conn, session.tenant_id, project.id, url=form.url, events=list(form.events), fmt=form.format,
            description=form.description,
        )
    )
    return await render_project(request, session, project.id, new_secret=new.secret, status=201)


@post("/settings/webhooks/{hook_id:str}/active", include_in_schema=False, status_code=303)
async def set_active(request: Request, hook_id: FromPath[str]) -> Response:
    session = await web_session(request, "admin")
    form = await read_form(request, ActiveForm, csrf=session.csrf_token)
    hook = await services(request).db.write(
        webhooks.update_webhook, session.tenant_id, hook_id, {"active": form.active}
    )
    return redirect(f"/settings/projects/{hook.project_id}#webhooks")


@post("/settings/webhooks/{hook_id:str}/delete", include_in_schema=False, status_code=303)
async def delete_webhook(request: Request, hook_id: FromPath[str]) -> Response:
    session = await web_session(request, "admin")
    await read_form(request, EmptyForm, csrf=session.csrf_token)
    svc = services(request)
    hook = await svc.db.read(webhooks.get_webhook, session.tenant_id, hook_id)
    await svc.db.write(webhooks.delete_webhook, session.tenant_id, hook.id)
    return redirect(f"/settings/projects/{hook.project_id}#webhooks")


@get("/settings/webhooks/{hook_id:str}", include_in_schema=False)
async def deliveries_page(request: Request, hook_id: FromPath[str]) -> Response:
    session = await web_session(request, "admin")
    q = read_query(request, DeliveriesQuery)
    svc = services(request)
    hook, found = await svc.db.read(
        outbox.hook_deliveries, session.tenant_id, hook_id, limit=DELIVERIES_PER_PAGE, cursor=q.cursor
    )
    project = await svc.db.read(projects.get_project, session.tenant_id, hook.project_id)
    return page(request, "settings/webhook.html", hook=hook, project=project, deliveries=found.data,
                next_cursor=found.next_cursor, first_page=q.cursor is None)


@get("/settings/deliveries/{delivery_id:str}", include_in_schema=False)
async def delivery_page(request: Request, delivery_id: FromPath[str]) -> Response:
    session = await web_session(request, "admin")
    delivery, hook = await services(request).db.read(outbox.delivery_with_hook, session.tenant_id, delivery_id)
    return page(request, "settings/delivery.html", delivery=delivery, hook=hook)


@post("/settings/deliveries/{delivery_id:str}/redeliver", include_in_schema=False, status_code=303)
async def redeliver(request: Request, delivery_id: FromPath[str]) -> Response:
    """Queue the same body again; the `webhook-delivery` maintenance task sends it within seconds."""
    session = await web_session(request, "admin")
    await read_form(request, EmptyForm, csrf=session.csrf_token)
    svc = services(request)
    delivery = await svc.db.read(outbox.get_delivery, session.tenant_id, delivery_id)
    await svc.db.write(outbox.redeliver, session.tenant_id, delivery.id)
    return redirect(f"/settings/webhooks/{delivery.webhook_id}")


@post("/settings/webhooks/{hook_id:str}/test", include_in_schema=False, status_code=303)
async def send_test(request: Request, hook_id: FromPath[str]) -> Response:
    """Queue a `webhook.test` delivery and show it: its attempts appear there within seconds."""
    session = await web_session(request, "admin")
    await read_form(request, EmptyForm, csrf=session.csrf_token)
    queued = await services(request).db.write(webhook_ping.queue_test_delivery, session.tenant_id, hook_id)
    return redirect(f"/settings/deliveries/{queued.id}")


HANDLERS = [create_webhook, set_active, delete_webhook, deliveries_page, delivery_page, redeliver, send_test]
