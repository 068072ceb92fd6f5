"""Keys, scopes, suspension, and tenant isolation walked over every declared route; the one
error shape pinned on every route."""

from __future__ import annotations

import io
import re
import sqlite3
import time

import pytest

from qahub_lite.api import qualigate
from qahub_lite.api.routing import endpoints
from qahub_lite.app import route_handlers
from qahub_lite.core import key_checks, tenancy
from qahub_lite.db.database import direct_connection

from test_native_api import tiny_png

pytestmark = pytest.mark.engines

ENDPOINTS = endpoints(route_handlers())  # what the app serves


def _new_key(api, scope, tenant_id=None, project_id=None) -> str:
    with direct_connection(api.config) as conn:
        return tenancy.create_key(conn, tenant_id or api.tenant_id, scope=scope, project_id=project_id).key


def _new_tenant(api, name) -> tuple[str, str]:
    with direct_connection(api.config) as conn:
        tenant = tenancy.create_tenant(conn, name)
        return tenant.id, tenancy.create_key(conn, tenant.id, scope="admin").key


def test_bearer_and_x_api_key(api):
    key = _new_key(api, "read")
    assert api.client.get("/api/v1/projects", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert api.client.get("/api/v1/projects", headers={"X-API-Key": key}).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"X-API-Key": "qh_abc_def"},
                                     {"Authorization": "Basic dXNlcjpwYXNz"}])
def test_missing_or_wrong_key_is_401(api, headers):
    r = api.client.get("/api/v1/projects", headers=headers)
    assert r.status_code == 401
    assert r.json() == {"error": "Unauthorized", "message": "Missing or invalid API key"}


def test_a_tampered_secret_is_401(api):
    key = _new_key(api, "read")
    assert api.client.get("/api/v1/projects", headers={"X-API-Key": key[:-2] + "xx"}).status_code == 401


def test_revocation_takes_effect_on_the_next_request(api):
    key = _new_key(api, "read")
    assert api.get("/api/v1/projects", key=key).status_code == 200
    with direct_connection(api.config) as conn:
        tenancy.revoke_key(conn, key)
    assert api.get("/api/v1/projects", key=key).status_code == 401


@pytest.fixture
def remembered(api, monkeypatch):
    """A fresh change history, so that key checks are remembered from the first request on
    (another test's revocation a moment ago would otherwise keep them from being kept)."""
    monkeypatch.setattr(key_checks, "_changed", [float("-inf")])
    return api.client.app.state.services.key_checks


def _polled_run(api, key) -> str:
    project = api.project("Polled")
    body = {"project_id": project["id"], "results": [{"title": "a", "status": "PASSED"}]}
    return api.post("/api/v1/ingest", body).json()["run_id"]


def test_a_key_revoked_right_after_a_poll_is_refused_on_the_next_poll(api, remembered):
    key = _new_key(api, "read")
    run_id = _polled_run(api, key)
    assert api.get(f"/api/v1/runs/{run_id}", key=key).status_code == 200
    assert remembered.get(remembered.digest(key)) is not None  # the next poll would not read the key
    with direct_connection(api.config) as conn:
        tenancy.revoke_key(conn, key)
    r = api.get(f"/api/v1/runs/{run_id}", key=key)
    assert r.status_code == 401 and r.json()["message"] == "Missing or invalid API key"


def test_a_tenant_suspended_right_after_a_poll_is_refused_on_the_next_poll(api, remembered):
    key = _new_key(api, "read")
    run_id = _polled_run(api, key)
    assert api.get(f"/api/v1/runs/{run_id}", key=key).status_code == 200
    assert remembered.get(remembered.digest(key)) is not None
    with direct_connection(api.config) as conn:
        tenancy.set_suspended(conn, api.tenant_id, True)
    assert api.get(f"/api/v1/runs/{run_id}", key=key).status_code == 403


def test_a_key_of_a_deleted_project_is_refused_at_once(api, remembered):
    project = api.project("Short-lived")
    key = _new_key(api, "read", project_id=project["id"])
    assert api.get("/api/v1/projects", key=key).status_code == 200
    assert remembered.get(remembered.digest(key)) is not None
    assert api.delete(f"/api/v1/projects/{project['id']}").status_code == 200
    assert api.get("/api/v1/projects", key=key).status_code == 401


def test_a_key_check_read_before_a_change_committed_is_not_kept(monkeypatch):
    monkeypatch.setattr(key_checks, "_changed", [float("-inf")])
    checks = key_checks.KeyChecks(ttl_s=60, max_entries=2)
    who = tenancy.Principal("k1", "t", "read", None, False)
    read_at = time.monotonic()
    key_checks.keys_changed()  # e.g. a revocation whose transaction commits after the read above
    checks.put(b"a", who, read_at)
    assert checks.get(b"a") is None
    checks.put(b"b", who, time.monotonic())  # within the hold after a change: not kept either
    assert checks.get(b"b") is None
    monkeypatch.setattr(key_checks, "_changed", [float("-inf")])
    for digest in (b"c", b"d", b"e"):
        checks.put(digest, who, time.monotonic())
    assert checks.get(b"c") is None and checks.get(b"e") is who  # bounded: the oldest went
    expired = key_checks.KeyChecks(ttl_s=0.0)
    expired.put(b"f", who, time.monotonic() - 1)
    assert expired.get(b"f") is None


def test_suspended_tenant_gets_403(api):
    key = _new_key(api, "admin")
    with direct_connection(api.config) as conn:
        tenancy.set_suspended(conn, api.tenant_id, True)
    r = api.get("/api/v1/projects", key=key)
    assert r.status_code == 403 and r.json()["error"] == "Forbidden"


def test_scopes(api):
    read, write = _new_key(api, "read"), _new_key(api, "write")
    r = api.post("/api/v1/projects", {"name": "x"}, key=read)
    assert r.status_code == 403 and "write" in r.json()["message"]
    project = api.post("/api/v1/projects", {"name": "x"}, key=write).json()
    assert api.delete(f"/api/v1/projects/{project['id']}", key=write).status_code == 403  # admin only
    assert api.post("/api/v1/admin/sweep", key=write).status_code == 403
    assert api.post("/api/v1/admin/sweep").status_code == 200


def test_keys_are_stored_as_hashes_only(api):
    key = _new_key(api, "write")
    secret = key.split("_", 2)[2]
    conn = sqlite3.connect(api.config.db_path)
    dump = "\n".join(conn.iterdump())
    assert secret not in dump and len(secret) >= 43  # 256 bits in url-safe base64


def test_project_limited_key(api):
    mine, other = api.project("Mine"), api.project("Other")
    key = _new_key(api, "write", project_id=mine["id"])
    listed = api.get("/api/v1/projects", key=key).json()["data"]
    assert [p["id"] for p in listed] == [mine["id"]]
    assert api.get(f"/api/v1/projects/{other['id']}", key=key).status_code == 404
    body = {"project_id": other["id"], "results": [{"title": "a", "status": "PASSED"}]}
    assert api.post("/api/v1/ingest", body, key=key).status_code == 404
    body["project_id"] = mine["id"]
    assert api.post("/api/v1/ingest", body, key=key).status_code == 201


def _one_of_everything(c, h: dict, name: str) -> dict:
    """A project with one of everything, made with the admin key in `h`; its ids by path-parameter name."""
    project = c.post("/api/v1/projects", json={"name": name}, headers=h).json()
    suite = c.post(f"/api/v1/projects/{project['id']}/suites", json={"name": "S"}, headers=h).json()
    case = c.post(f"/api/v1/projects/{project['id']}/test-cases", json={"title": "T", "suite_id": suite["id"]},
                  headers=h).json()
    # A webhook: the run below finishing queues a delivery of its run.completed event.
    hook = c.post(f"/api/v1/projects/{project['id']}/webhooks", headers=h,
                  json={"url": "http://127.0.0.1:9/b", "events": ["run.completed"]}).json()["webhook"]
    run = c.post("/api/v1/ingest", json={"project_id": project["id"], "results": [
        {"test_case_id": case["id"], "status": "FAILED"}]}, headers=h).json()
    result = c.get(f"/api/v1/runs/{run['run_id']}/results", headers=h).json()["data"][0]
    attachment = c.post(f"/api/v1/results/{result['id']}/attachments", headers=h,
                        files={"file": ("a.png", io.BytesIO(tiny_png()), "image/png")}).json()["data"][0]
    automated = c.post(f"/api/v1/projects/{project['id']}/test-cases", headers=h, json={
        "title": "Automated", "automation": {"framework": "pytest"}}).json()
    c.post("/api/v1/trigger", json={"test_case_id": automated["id"]}, headers=h)
    job = c.post("/api/v1/agent/claim", json={"agent": "b", "frameworks": ["pytest"], "wait_s": 0}, headers=h).json()
    ids = {"project_id": project["id"], "suite_id": suite["id"], "case_id": case["id"], "run_id": run["run_id"],
           "result_id": result["id"], "attachment_id": attachment["id"], "test_id": str(result["test_id"]),
           "short_id": run["short_id"], "job_id": job["job"]["id"], "webhook_id": hook["id"]}
    # Triage: the failed result's signature and a mask rule (docs/triage.md).
    ids["signature"] = c.get(f"/api/v1/runs/{run['run_id']}/failures", headers=h).json()["data"][0]["signature"]
    ids["rule_id"] = str(c.post(f"/api/v1/projects/{project['id']}/signature-rules", headers=h,
                                json={"pattern": "build-[0-9]+"}).json()["id"])
    for _ in range(200):  # the run-completion task queues the delivery within a second or two
        deliveries = c.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=h).json()["data"]
        if deliveries:
            ids["delivery_id"] = deliveries[0]["id"]
            break
        time.sleep(0.05)
    return ids


@pytest.fixture
def other_tenant(api):
    """Tenant B with one of everything; returns (ids by path-parameter name, B's admin key)."""
    _, key = _new_tenant(api, "tenant-b")
    return _one_of_everything(api.client, {"Authorization": f"Bearer {key}"}, "B"), key


_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def _body_for(ep, ids) -> dict | None:
    """A body of the route's own fields that names tenant B's project where it can."""
    if not isinstance(ep.body, type):
        return None
    import msgspec

    generic = {"project_id": ids["project_id"], "name": "x", "title": "x", "results": [], "status": "COMPLETED"}
    names = {f.encode_name for f in msgspec.structs.fields(ep.body)}
    return {k: v for k, v in generic.items() if k in names}


def test_no_route_shows_or_changes_another_tenants_data(api, other_tenant):
    ids, _ = other_tenant
    unknown = set()
    checked = 0
    for ep in ENDPOINTS:
        params = _PARAM.findall(ep.path)
        body = _body_for(ep, ids)
        if not params and not (body and "project_id" in body and ep.method != "GET"):
            continue
        missing = [p for p in params if p not in ids]
        if missing:
            unknown.update(missing)
            continue
        path = _PARAM.sub(lambda m: ids[m.group(1)], ep.path)
        if ep.body == "multipart":
            r = api.client.request(ep.method, path, headers=api.h(),
                                   files={"file": ("a.png", io.BytesIO(tiny_png()), "image/png")})
        else:
            r = api.client.request(ep.method, path, headers=api.h(), json=body)
        assert r.status_code == 404, f"{ep.method} {ep.path}: {r.status_code} {r.text[:200]}"
        assert r.json()["error"] == "Not Found"
        checked += 1
    assert not unknown, f"add ids for these path parameters to the other_tenant fixture: {sorted(unknown)}"
    assert checked >= 15


def test_other_tenant_still_sees_its_own_data(api, other_tenant):
    ids, key = other_tenant
    h = {"Authorization": f"Bearer {key}"}
    assert api.client.get(f"/api/v1/runs/{ids['run_id']}", headers=h).status_code == 200
    assert api.get("/api/v1/runs").json()["data"] == []  # tenant A sees none of B's runs


def test_every_route_answers_errors_in_one_shape(api, other_tenant):
    ids, _ = other_tenant
    read = _new_key(api, "read")
    for ep in ENDPOINTS:
        path = _PARAM.sub(lambda m: ids.get(m.group(1), "x"), ep.path)
        if ep.scope is not None:
            r = api.client.request(ep.method, path)
            assert r.status_code == 401, f"{ep.method} {ep.path}"
            assert set(r.json()) == {"error", "message"}
            if ep.scope != "read":
                r = api.client.request(ep.method, path, headers={"X-API-Key": read}, json={})
                assert r.status_code == 403, f"{ep.method} {ep.path}: {r.status_code}"
                assert set(r.json()) == {"error", "message"}
    for method, path in (("GET", "/api/v1/nowhere"), ("PUT", "/api/v1/ingest")):
        r = api.client.request(method, path, headers=api.h())
        assert r.status_code in (404, 405)
        assert set(r.json()) == {"error", "message"}


def _every_keyed_route(ids):
    """(endpoint, concrete path) for every declared route that takes a key, on tenant B's ids."""
    for ep in ENDPOINTS:
        if ep.scope is not None:
            yield ep, _PARAM.sub(lambda m: ids.get(m.group(1), "x"), ep.path)


def _send(api, ep, path, key):
    if ep.body == "multipart":
        return api.client.request(ep.method, path, headers={"X-API-Key": key},
                                  files={"file": ("a.png", io.BytesIO(tiny_png()), "image/png")})
    return api.client.request(ep.method, path, headers={"X-API-Key": key}, json={})


def test_a_revoked_key_is_refused_on_every_route(api, other_tenant):
    ids, key = other_tenant
    with direct_connection(api.config) as conn:
        tenancy.revoke_key(conn, key)
    for ep, path in _every_keyed_route(ids):
        r = _send(api, ep, path, key)
        assert r.status_code == 401, f"{ep.method} {ep.path}: {r.status_code}"
        assert r.json() == {"error": "Unauthorized", "message": "Missing or invalid API key"}


def test_a_suspended_tenant_is_refused_on_every_route(api, other_tenant):
    ids, key = other_tenant
    with direct_connection(api.config) as conn:
        tenancy.set_suspended(conn, "tenant-b", True)
    for ep, path in _every_keyed_route(ids):
        r = _send(api, ep, path, key)
        assert r.status_code == 403, f"{ep.method} {ep.path}: {r.status_code}"
        assert set(r.json()) == {"error", "message"} and "suspended" in r.json()["message"]
    # Nothing of it changed meanwhile; resumed, the same key works again.
    with direct_connection(api.config) as conn:
        tenancy.set_suspended(conn, "tenant-b", False)
    assert api.client.get(f"/api/v1/runs/{ids['run_id']}", headers={"X-API-Key": key}).status_code == 200


def test_a_write_key_is_refused_on_every_admin_route(api, other_tenant):
    ids, _ = other_tenant
    with direct_connection(api.config) as conn:
        b = tenancy.find_tenant(conn, "tenant-b")
        write = tenancy.create_key(conn, b.id, scope="write").key
    admin_routes = [(ep, path) for ep, path in _every_keyed_route(ids) if ep.scope == "admin"]
    assert len(admin_routes) >= 2
    for ep, path in admin_routes:
        r = _send(api, ep, path, write)
        assert r.status_code == 403, f"{ep.method} {ep.path}: {r.status_code}"
        assert r.json()["message"] == "This API key lacks the admin scope"


def _api_routes(app):
    """(method, path, endpoint) of every route the app serves under /api and /v1, read from the
    app itself: a route added later is walked without anybody adding it to a list."""
    for route in app.routes:
        if not route.path.startswith(("/api/", "/v1/")):
            continue
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                yield method, route.path, handler.opt.get("endpoint")


# Routes that take no key by design (the API description and its viewer).
_PUBLIC = {("GET", "/api/v1/openapi.json"), ("GET", "/api/docs")}


def test_a_project_limited_key_reaches_no_other_project_through_any_route(api):
    """Every route with an id, walked with an admin key limited to project Mine on the ids of
    project Other of the same tenant: each answers 404, as if Other did not exist."""
    mine = api.project("Mine")
    ids = _one_of_everything(api.client, api.h(), "Other")
    limited = _new_key(api, "admin", project_id=mine["id"])
    checked, undeclared, unknown = [], [], set()
    for method, path, ep in _api_routes(api.client.app):
        if ep is None:
            if (method, path) not in _PUBLIC:
                undeclared.append(f"{method} {path}")
            continue
        params = _PARAM.findall(path)
        body = _body_for(ep, ids)
        if not params and not (body and "project_id" in body and method != "GET"):
            continue
        if any(p not in ids for p in params):
            unknown.update(p for p in params if p not in ids)
            continue
        concrete = _PARAM.sub(lambda m: ids[m.group(1)], path)
        if ep.body == "multipart":
            r = api.client.request(method, concrete, headers={"X-API-Key": limited},
                                   files={"file": ("a.png", io.BytesIO(tiny_png()), "image/png")})
        else:
            r = api.client.request(method, concrete, headers={"X-API-Key": limited}, json=body)
        if ep.tags == qualigate.TAGS:
            # Seed 004 answers 403 for a resource of another project (api/qualigate.py says so).
            assert (r.status_code, r.json()["message"]) == (403, qualigate.NOT_YOURS), f"{method} {path}: {r.text}"
        else:
            assert r.status_code == 404, f"{method} {path}: {r.status_code} {r.text[:200]}"
            assert r.json()["error"] == "Not Found"
        checked.append(f"{method} {path}")
    assert not undeclared, f"routes outside the endpoint registry escape this walk: {undeclared}"
    assert not unknown, f"add ids for these path parameters to _one_of_everything: {sorted(unknown)}"
    assert {"GET /api/v1/attachments/{attachment_id:str}", "DELETE /api/v1/attachments/{attachment_id:str}"} <= set(
        checked)
    assert len(checked) >= 40
    # Nothing of Other changed: its attachment is still there for a key that may see it.
    assert api.get(f"/api/v1/attachments/{ids['attachment_id']}").status_code == 200
