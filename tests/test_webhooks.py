"""Webhooks: subscriptions, signed deliveries to a real HTTP receiver, retries with every
attempt recorded, redelivery, chat formats, giving up, and a restart that loses nothing."""

from __future__ import annotations

import json
import time

import pytest
from conftest import start_server
from health_helpers import Receiver, fast_api, ingest, outcomes, wait_for

from qahub_lite.core import outbox
from qahub_lite.core.tenancy import create_key
from qahub_lite.core.webhooks import sign, verify
from qahub_lite.db.database import direct_connection

pytestmark = pytest.mark.engines


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    import hashlib
    import hmac

    body = b'{"event":"run.completed"}'
    expected = hmac.new(b"whsec_x", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("whsec_x", 1700000000, body) == f"sha256={expected}"
    assert verify("whsec_x", "1700000000", body, f"sha256={expected}")
    assert not verify("whsec_x", "1700000001", body, f"sha256={expected}")
    assert not verify("whsec_y", "1700000000", body, f"sha256={expected}")


def test_backoff_doubles_up_to_its_maximum():
    retry = outbox.Retry(base_s=30, max_s=3600, for_hours=24)
    delays = [outbox.backoff_ms(n, retry) / 1000 for n in (1, 2, 3, 8, 20)]
    for got, want in zip(delays, (30, 60, 120, 3600, 3600)):
        assert want * 0.9 <= got <= want * 1.1


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def hapi(tmp_path, storage_url):
    with fast_api(tmp_path, storage_url=storage_url) as api:
        yield api


def _hook(api, project_id: str, **fields) -> dict:
    r = api.post(f"/api/v1/projects/{project_id}/webhooks", fields)
    assert r.status_code == 201, r.text
    return r.json()


def _deliveries(api, hook_id: str, query: str = "") -> list[dict]:
    r = api.get(f"/api/v1/webhooks/{hook_id}/deliveries{query}")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_subscriptions_are_managed_by_admins_and_the_secret_is_shown_once(hapi, receiver):
    project = hapi.project("Shop")
    created = _hook(hapi, project["id"], url=receiver.url, events=["run.regressed"], description="team channel")
    hook, secret = created["webhook"], created["secret"]
    assert secret.startswith("whsec_") and hook["events"] == ["run.regressed"] and hook["format"] == "json"
    listed = hapi.get(f"/api/v1/projects/{project['id']}/webhooks").json()["data"]
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in json.dumps(listed)
    assert hapi.get(f"/api/v1/webhooks/{hook['id']}").json()["description"] == "team channel"

    changed = hapi.patch(f"/api/v1/webhooks/{hook['id']}", {"events": ["run.completed", "test.flaky"],
                                                            "active": False})
    assert changed.status_code == 200 and changed.json()["events"] == ["run.completed", "test.flaky"]
    assert changed.json()["active"] is False

    for bad in ({"url": "ftp://example.com/x"}, {"url": receiver.url, "events": ["run.exploded"]},
                {"url": receiver.url, "events": []}, {"url": receiver.url, "format": "teams"},
                {"url": receiver.url, "secret": "short"}):
        r = hapi.post(f"/api/v1/projects/{project['id']}/webhooks", bad)
        assert r.status_code == 400, (bad, r.text)
    with direct_connection(hapi.config) as conn:
        writer = create_key(conn, hapi.tenant_id, scope="write").key
    assert hapi.post(f"/api/v1/projects/{project['id']}/webhooks", {"url": receiver.url}, key=writer).status_code == 403
    assert hapi.get(f"/api/v1/projects/{project['id']}/webhooks", key=writer).status_code == 200
    assert hapi.delete(f"/api/v1/webhooks/{hook['id']}", key=writer).status_code == 403
    assert hapi.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 200
    assert hapi.get(f"/api/v1/webhooks/{hook['id']}").status_code == 404


def test_events_are_delivered_signed_to_a_real_receiver(hapi, receiver):
    project = hapi.project("Shop")
    created = _hook(hapi, project["id"], url=receiver.url)
    secret = created["secret"]
    ingest(hapi, project["id"], outcomes(a="PASSED", b="PASSED"), commit="c1")
    run = ingest(hapi, project["id"], outcomes(a="RETRIED", b="FAILED"), commit="c2")
    wait_for(lambda: len(receiver.received) >= 4)  # 2 x run.completed, run.regressed, test.flaky
    for got in receiver.received:
        assert got.headers["content-type"] == "application/json"
        assert verify(secret, got.headers["x-qahub-timestamp"], got.body, got.headers["x-qahub-signature"])
        assert abs(int(got.headers["x-qahub-timestamp"]) - time.time()) < 60
        assert got.json()["event"] == got.headers["x-qahub-event"]
        assert got.json()["id"] == got.headers["x-qahub-event-id"]

    completed = [r.json() for r in receiver.events("run.completed")]
    assert len(completed) == 2
    last = [c for c in completed if c["data"]["run"]["id"] == run["run_id"]][0]
    assert last["project"] == {"id": project["id"], "slug": project["slug"], "name": "Shop", "default_branch": "main"}
    assert last["data"]["run"]["counts"]["failed"] == 1 and last["data"]["new_failures"] == 1
    assert last["data"]["run"]["url"].endswith(f"/runs/{run['run_id']}")
    regressed = receiver.events("run.regressed")[0].json()["data"]
    assert [(f["title"], f["status"]) for f in regressed["new_failures"]] == [("b", "FAILED")]
    flaky = receiver.events("test.flaky")[0].json()["data"]
    assert [(t["title"], t["retry_rate"]) for t in flaky["tests"]] == [("a", 0.5)]

    listed = _deliveries(hapi, created["webhook"]["id"])
    assert len(listed) == 4 and {d["state"] for d in listed} == {"delivered"}
    assert {d["event"] for d in listed} == {"run.completed", "run.regressed", "test.flaky"}


def test_a_failed_delivery_is_retried_and_every_attempt_is_recorded(hapi, receiver):
    receiver.statuses = [500, 503]
    project = hapi.project("Shop")
    hook = _hook(hapi, project["id"], url=receiver.url, events=["run.completed"])["webhook"]
    ingest(hapi, project["id"], outcomes(a="PASSED"))
    delivered = wait_for(lambda: _deliveries(hapi, hook["id"], "?state=delivered"))
    assert delivered[0]["attempts"] == 3 and delivered[0]["last_status"] == 200
    detail = hapi.get(f"/api/v1/deliveries/{delivered[0]['id']}").json()
    log = detail["attempt_log"]
    assert [(a["attempt"], a["status_code"], a["error"]) for a in log] == [
        (1, 500, "HTTP 500"), (2, 503, "HTTP 503"), (3, 200, None)]
    assert log[0]["response_body"] == "receiver says no"
    assert json.loads(detail["body"])["event"] == "run.completed"
    bodies = {r.body for r in receiver.received}
    assert len(bodies) == 1  # every attempt sends the same bytes
    assert len({r.headers["x-qahub-delivery"] for r in receiver.received}) == 1


def test_redelivery_by_hand_sends_the_same_event_again(hapi, receiver):
    project = hapi.project("Shop")
    hook = _hook(hapi, project["id"], url=receiver.url, events=["run.completed"])["webhook"]
    ingest(hapi, project["id"], outcomes(a="PASSED"))
    first = wait_for(lambda: _deliveries(hapi, hook["id"], "?state=delivered"))[0]
    r = hapi.post(f"/api/v1/deliveries/{first['id']}/redeliver")
    assert r.status_code == 202 and r.json()["redelivery_of"] == first["id"]
    new_id = r.json()["id"]
    again = wait_for(lambda: [d for d in _deliveries(hapi, hook["id"], "?state=delivered") if d["id"] == new_id])
    assert again[0]["event_id"] == first["event_id"] and again[0]["redelivery_of"] == first["id"]
    assert len(receiver.received) == 2 and receiver.received[0].body == receiver.received[1].body
    assert hapi.post("/api/v1/deliveries/nope/redeliver").status_code == 404


def test_chat_formats_and_inactive_hooks(hapi, receiver):
    project = hapi.project("Shop & Co")
    slack = _hook(hapi, project["id"], url=receiver.url + "/slack", events=["run.completed"], format="slack")
    _hook(hapi, project["id"], url=receiver.url + "/mm", events=["run.completed"], format="mattermost")
    _hook(hapi, project["id"], url=receiver.url + "/off", events=["run.completed"], active=False)
    run = ingest(hapi, project["id"], outcomes(a="PASSED", b="FAILED"))
    wait_for(lambda: len(receiver.received) >= 2)
    by_path = {r.path: r.json() for r in receiver.received}
    assert set(by_path) == {"/hook/slack", "/hook/mm"}
    url = f"{hapi.config.public_url}/runs/{run['run_id']}"
    assert set(by_path["/hook/slack"]) == {"text"}
    assert f"[Shop &amp; Co] Run <{url}|" in by_path["/hook/slack"]["text"]
    assert "finished failed: 1 passed, 1 failed" in by_path["/hook/slack"]["text"]
    assert "[Shop & Co] Run [" in by_path["/hook/mm"]["text"] and f"]({url})" in by_path["/hook/mm"]["text"]
    assert _deliveries(hapi, slack["webhook"]["id"])[0]["state"] == "delivered"


def test_a_delivery_is_given_up_after_its_day_of_retries(tmp_path, storage_url):
    from qahub_lite.core.clock import now_ms

    with fast_api(tmp_path, storage_url=storage_url) as api:  # nothing listens on port 9: every attempt is refused
        project = api.project("Shop")
        hook = _hook(api, project["id"], url="http://127.0.0.1:9/never", events=["run.completed"])["webhook"]
        ingest(api, project["id"], outcomes(a="PASSED"))
        tried = wait_for(lambda: [d for d in _deliveries(api, hook["id"], "?state=pending") if d["attempts"]])
    retry = outbox.Retry(base_s=1, max_s=2, for_hours=24)
    with direct_connection(api.config) as conn:
        done = conn.execute("SELECT attempts FROM webhook_deliveries").fetchone()[0]
        conn.execute("UPDATE webhook_deliveries SET created_at = ?", (now_ms() - 23 * 3_600_000,))
        early = outbox.AttemptOutcome(tried[0]["id"], done + 1, now_ms(), 3, None, "ConnectError", None)
        outbox.record(conn, [early], retry)
        state = conn.execute("SELECT state, attempts FROM webhook_deliveries").fetchone()
        assert tuple(state) == ("pending", done + 1)
        conn.execute("UPDATE webhook_deliveries SET created_at = ?", (now_ms() - 25 * 3_600_000,))
        late = outbox.AttemptOutcome(tried[0]["id"], done + 2, now_ms(), 3, None, "ConnectError", None)
        outbox.record(conn, [late], retry)
        state = conn.execute("SELECT state, attempts, next_attempt_at FROM webhook_deliveries").fetchone()
        assert tuple(state) == ("failed", done + 2, None)
        assert conn.execute("SELECT count(*) FROM webhook_attempts").fetchone()[0] == done + 2


def test_a_claimed_delivery_is_not_claimed_twice_until_its_lease_ends(tmp_path, storage_url):
    from qahub_lite.core.clock import now_ms

    with fast_api(tmp_path, storage_url=storage_url) as api:
        project = api.project("Shop")
        hook = _hook(api, project["id"], url="http://127.0.0.1:9/never", events=["run.completed"])["webhook"]
        ingest(api, project["id"], outcomes(a="PASSED"))
        wait_for(lambda: _deliveries(api, hook["id"]))
    with direct_connection(api.config) as conn:
        now = now_ms()
        conn.execute("UPDATE webhook_deliveries SET next_attempt_at = ?", (now,))
        assert len(outbox.claim_due(conn, now, 60_000, 10)) == 1
        assert outbox.claim_due(conn, now + 1000, 60_000, 10) == []
        assert len(outbox.claim_due(conn, now + 61_000, 60_000, 10)) == 1


@pytest.mark.e2e
def test_a_restart_loses_no_delivery(tmp_path, storage_url):
    """The receiver is down while the run finishes and the server stops; once both are back,
    the queued event arrives."""
    receiver = Receiver().start()
    port = receiver.port
    receiver.stop()  # nothing listens there now: attempts fail with a connection error
    folder = tmp_path / "server"
    extra = "[webhooks]\npoll_interval_s = 1\nretry_base_s = 1\nretry_max_s = 1\nallow_networks = [\"127.0.0.1\"]\n"
    server = start_server(folder, extra, storage_url=storage_url)
    try:
        with server.client() as http:
            project = http.post("/api/v1/projects", json={"name": "Restart"}).json()
            hook = http.post(f"/api/v1/projects/{project['id']}/webhooks",
                             json={"url": f"http://127.0.0.1:{port}/hook", "events": ["run.completed"]}).json()
            http.post("/api/v1/ingest", json={"project_id": project["id"], "results": [
                {"title": "a", "status": "PASSED"}]}).raise_for_status()
            failed_once = wait_for(lambda: [d for d in http.get(
                f"/api/v1/webhooks/{hook['webhook']['id']}/deliveries").json()["data"] if d["attempts"] >= 1])
            assert failed_once[0]["state"] == "pending" and failed_once[0]["last_error"]
    finally:
        assert server.stop() == 0
    receiver = Receiver().start(port)
    try:
        server = start_server(folder, extra, storage_url=storage_url)
        try:
            got = wait_for(lambda: receiver.events("run.completed"))
            assert verify(hook["secret"], got[0].headers["x-qahub-timestamp"], got[0].body,
                          got[0].headers["x-qahub-signature"])
            with server.client() as http:
                detail = wait_for(lambda: [d for d in http.get(
                    f"/api/v1/webhooks/{hook['webhook']['id']}/deliveries?state=delivered").json()["data"]])
                assert detail[0]["attempts"] >= 2
        finally:
            server.stop()
    finally:
        receiver.stop()


def test_a_finished_run_is_judged_and_announced_once(tmp_path, storage_url):
    from qahub_lite.config import FlakyConfig
    from qahub_lite.core import run_completion

    with fast_api(tmp_path, storage_url=storage_url) as api:
        project = api.project("Shop")
        hook = _hook(api, project["id"], url="http://127.0.0.1:9/never", events=["run.completed"])["webhook"]
        run = ingest(api, project["id"], outcomes(a="PASSED"))
        wait_for(lambda: _deliveries(api, hook["id"]))
    with direct_connection(api.config) as conn:
        assert conn.execute("SELECT count(*) FROM run_health_queue").fetchone()[0] == 0
        queue_id = conn.execute(
            "INSERT INTO run_health_queue (run_id, queued_at) VALUES (?, 0) RETURNING id", (run["run_id"],)
        ).fetchone()[0]
        assert run_completion.process_queued(conn, queue_id, run["run_id"], FlakyConfig(), "http://x") == 1
        # a second worker with the same queue row finds it gone and does nothing
        assert run_completion.process_queued(conn, queue_id, run["run_id"], FlakyConfig(), "http://x") == 0
        assert conn.execute("SELECT count(*) FROM webhook_deliveries").fetchone()[0] == 2
