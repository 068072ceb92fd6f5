"""A webhook's test delivery (issue: week one, item 7): one signed `webhook.test` event, queued
through the outbox like any delivery, from the API and from the dashboard, to check a receiver
before the first real event."""

from __future__ import annotations

import pytest

import json
import re

from health_helpers import wait_for

from qahub_lite.core import users
from qahub_lite.core.tenancy import create_key
from qahub_lite.core.webhooks import verify
from qahub_lite.db.database import direct_connection
from test_web_auth import sign_in
from test_webhooks import hapi, receiver  # noqa: F401 (fixtures)

pytestmark = pytest.mark.engines


def test_a_test_delivery_reaches_the_receiver_signed(hapi, receiver):
    project = hapi.project("Pinged [shop] @here")
    created = hapi.post(f"/api/v1/projects/{project['id']}/webhooks",
                        {"url": receiver.url, "events": ["run.regressed"]}).json()  # subscribes to no test event
    hook, secret = created["webhook"], created["secret"]
    r = hapi.post(f"/api/v1/webhooks/{hook['id']}/test")
    assert r.status_code == 202, r.text
    queued = r.json()
    assert queued["webhook_id"] == hook["id"] and queued["event"] == "webhook.test" and queued["state"] == "pending"

    wait_for(lambda: receiver.received)
    got = receiver.received[0]
    body = json.loads(got.body)
    assert body["event"] == "webhook.test" and body["project"]["id"] == project["id"]
    assert body["data"]["webhook_id"] == hook["id"] and "this webhook works" in body["data"]["message"]
    assert verify(secret, got.headers["x-qahub-timestamp"], got.body, got.headers["x-qahub-signature"])
    delivery = wait_for(lambda: (d := hapi.get(f"/api/v1/deliveries/{queued['id']}").json())["state"] == "delivered"
                        and d)
    assert delivery["event"] == "webhook.test" and delivery["attempt_log"][0]["status_code"] == 200


def test_chat_formats_get_a_plain_message_and_paused_or_foreign_hooks_refuse(hapi, receiver):
    project = hapi.project("Pinged [shop] @here")
    hook = hapi.post(f"/api/v1/projects/{project['id']}/webhooks",
                     {"url": receiver.url, "format": "mattermost"}).json()["webhook"]
    assert hapi.post(f"/api/v1/webhooks/{hook['id']}/test").status_code == 202
    wait_for(lambda: receiver.received)
    text = json.loads(receiver.received[0].body)["text"]
    assert "Test delivery from qahub-lite" in text
    assert "[shop]" not in text and "@here" not in text  # a project name makes no link and no mention

    assert hapi.patch(f"/api/v1/webhooks/{hook['id']}", {"active": False}).status_code == 200
    paused = hapi.post(f"/api/v1/webhooks/{hook['id']}/test")
    assert paused.status_code == 409 and "paused" in paused.json()["message"]
    assert hapi.post("/api/v1/webhooks/nosuchhook/test").status_code == 404
    with direct_connection(hapi.config) as conn:
        read_key = create_key(conn, hapi.tenant_id, scope="read").key
    assert hapi.post(f"/api/v1/webhooks/{hook['id']}/test", key=read_key).status_code == 403


def test_the_dashboard_sends_a_test_delivery(hapi, receiver):
    with direct_connection(hapi.config) as conn:
        users.create_user(conn, "ann", tenant_id=hapi.tenant_id, role="admin", password="ann's password 1")
    project = hapi.project("Dash")
    hook = hapi.post(f"/api/v1/projects/{project['id']}/webhooks", {"url": receiver.url}).json()["webhook"]
    client = hapi.client
    assert sign_in(client, "ann", "ann's password 1").status_code == 303
    page = client.get(f"/settings/webhooks/{hook['id']}").text
    assert f'action="/settings/webhooks/{hook["id"]}/test"' in page and "Send a test delivery" in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    sent = client.post(f"/settings/webhooks/{hook['id']}/test", data={"csrf": csrf}, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"].startswith("/settings/deliveries/")
    wait_for(lambda: receiver.received)
    assert json.loads(receiver.received[0].body)["event"] == "webhook.test"
    shown = client.get(sent.headers["location"]).text
    assert "webhook.test" in shown
    forged = client.post(f"/settings/webhooks/{hook['id']}/test", data={"csrf": "forged"}, follow_redirects=False)
    assert forged.status_code == 403


def test_a_project_name_makes_no_link_in_a_mattermost_test_delivery():
    """The real events' escaping: a bare URL, www., ~channel and Markdown in a project's name
    (a write key can rename a project) neither link nor format in the test message."""
    from qahub_lite.core.webhook_ping import _body

    name = "~town-square https://evil.example/phish www.evil.example **bold** [x](https://evil.example)"
    text = json.loads(_body("mattermost", "event", 0, {"name": name}, "hook"))["text"]
    assert "evil" in text and "town" in text
    for markup in ("~town", "://", "www.", "**", "](", "[x]"):
        assert markup not in text, markup
