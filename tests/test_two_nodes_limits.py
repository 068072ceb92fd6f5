"""Two `qahub serve` nodes on one PostgreSQL database, requests alternating between them (what a
round-robin load balancer does): the limits that must hold for the whole hub hold across both.

- the QualityPilot post limit (60 per minute per key): exactly 60 x 202, then 429 on either node,
  one after the other and at once;
- a key revoked through one node's dashboard is refused by the other within the key generation's
  poll (core/key_checks.py), and a dashboard session made on one node is valid on the other;
- failed sign-ins count against one budget whichever node they reach.

SQLite serves from one process, so these run on PostgreSQL only (docs/scaling.md)."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from qahub_lite.config import load_config
from qahub_lite.core import key_checks, tenancy, users
from qahub_lite.db.database import direct_connection

from seeds.examples import seed002_payload

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("engine", ["postgresql"], indirect=True)]

PASSWORD = "correct horse battery"


@pytest.fixture
def nodes(tmp_path, server_factory):
    a = server_factory(tmp_path / "a")
    b = server_factory(tmp_path / "b")
    config = load_config(a.config_path, environ={})
    with direct_connection(config) as conn:
        tenant_id = tenancy.list_tenants(conn)[0].id
    clients = [httpx.Client(base_url=s.url, timeout=60) for s in (a, b)]
    yield clients, config, tenant_id
    for client in clients:
        client.close()


def _new_key(config, tenant_id, scope="write") -> tenancy.NewKey:
    with direct_connection(config) as conn:
        return tenancy.create_key(conn, tenant_id, scope=scope)


def test_the_qualitypilot_limit_holds_across_nodes(nodes):
    """One key's posts one after the other, another key's at once (each node starts in ~6 s,
    so one pair of nodes serves both)."""
    clients, config, tenant_id = nodes
    _one_after_the_other(clients, config, tenant_id)
    _at_once(clients, config, tenant_id)


def _one_after_the_other(clients, config, tenant_id):
    headers = {"X-API-Key": _new_key(config, tenant_id).key}
    payload = seed002_payload()
    answers = [clients[n % 2].post("/api/v1/test-runs", json=payload, headers=headers) for n in range(61)]
    assert [r.status_code for r in answers] == [202] * 60 + [429]
    assert [int(r.headers["x-ratelimit-remaining"]) for r in answers[:60]] == list(range(59, -1, -1))
    refused = answers[60]
    assert refused.json()["message"] == "Rate limit exceeded. Please try again later."
    assert refused.headers["retry-after"] == str(refused.json()["retry_after"])
    assert 1 <= refused.json()["retry_after"] <= 60 and refused.headers["x-ratelimit-limit"] == "60"
    # Whichever node gets the next one, it is refused too.
    assert [c.post("/api/v1/test-runs", json=payload, headers=headers).status_code for c in clients] == [429, 429]
    runs = clients[0].get("/api/v1/runs", params={"limit": 100}, headers=headers).json()["data"]
    assert len(runs) == 60


def _at_once(clients, config, tenant_id):
    """70 posts at once, 35 on each node: exactly 60 accepted, each remaining count handed out once."""
    headers = {"X-API-Key": _new_key(config, tenant_id).key}
    payload = seed002_payload()
    barrier = threading.Barrier(70)

    def post(n):
        barrier.wait()
        return clients[n % 2].post("/api/v1/test-runs", json=payload, headers=headers)

    with ThreadPoolExecutor(70) as pool:
        answers = list(pool.map(post, range(70)))
    accepted = [r for r in answers if r.status_code == 202]
    assert len(accepted) == 60 and sum(r.status_code == 429 for r in answers) == 10
    assert sorted(int(r.headers["x-ratelimit-remaining"]) for r in accepted) == list(range(60))


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def _sign_in(client: httpx.Client, username: str, password: str) -> httpx.Response:
    token = _csrf(client.get("/login").text)
    return client.post("/login", data={"csrf": token, "username": username, "password": password, "next": "/"},
                       follow_redirects=False)


def test_the_dashboard_and_key_checks_across_nodes(nodes):
    clients, config, tenant_id = nodes
    _revoked_on_one_node_refused_by_the_other(clients, config, tenant_id)
    _failed_sign_ins_share_one_budget(clients, config, tenant_id)


def _revoked_on_one_node_refused_by_the_other(clients, config, tenant_id):
    """A key revoked through node A's dashboard (signed in on A, the session used on B too)."""
    a, b = clients
    with direct_connection(config) as conn:
        users.create_user(conn, "ops", tenant_id=tenant_id, role="admin", password=PASSWORD)
    key = _new_key(config, tenant_id, scope="read")
    headers = {"X-API-Key": key.key}
    for _ in range(3):  # both nodes now remember the key's check
        assert a.get("/api/v1/projects", headers=headers).status_code == 200
        assert b.get("/api/v1/projects", headers=headers).status_code == 200

    assert _sign_in(a, "ops", PASSWORD).status_code == 303  # signed in on node A ...
    b.cookies.set("qahub_session", a.cookies.get("qahub_session"))
    page = b.get("/settings/keys")  # ... and the session is valid on node B
    assert page.status_code == 200 and key.info.id in page.text

    r = a.post(f"/settings/keys/{key.info.id}/revoke", data={"csrf": _csrf(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    revoked_at = time.monotonic()
    assert a.get("/api/v1/projects", headers=headers).status_code == 401  # at once on the node that revoked
    while b.get("/api/v1/projects", headers=headers).status_code == 200:
        assert time.monotonic() - revoked_at < key_checks.GENERATION_POLL_S + 2, "node B still takes the key"
        time.sleep(0.05)
    waited = time.monotonic() - revoked_at
    assert b.get("/api/v1/projects", headers=headers).status_code == 401
    print(f"node B refused the revoked key {waited:.2f} s after node A revoked it")


def _failed_sign_ins_share_one_budget(clients, config, tenant_id):
    fresh = [httpx.Client(base_url=str(c.base_url), timeout=60) for c in clients]  # without the session
    try:
        _count_failures(fresh, config, tenant_id)
    finally:
        for client in fresh:
            client.close()


def _count_failures(clients, config, tenant_id):
    with direct_connection(config) as conn:
        users.create_user(conn, "alice", tenant_id=tenant_id, role="viewer", password=PASSWORD)
    # The default budget is 5 failures per name and address in 15 minutes.
    statuses = [_sign_in(clients[n % 2], "alice", "wrong wrong wrong").status_code for n in range(7)]
    assert statuses == [401] * 5 + [429, 429]
    refused = _sign_in(clients[0], "alice", PASSWORD)  # even the right password waits its turn
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 900
