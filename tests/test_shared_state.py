"""State that several nodes share, on both engines: the sign-in throttle kept in the database
(the rule of the in-memory one, shared by two Databases on one store), and the key generation
that makes every node forget its remembered key checks when a key changes."""

from __future__ import annotations

import asyncio
import time

import pytest

from qahub_lite.app import create_app
from qahub_lite.bootstrap import ensure_initialized
from qahub_lite.core import key_checks, tenancy
from qahub_lite.db.database import direct_connection
from qahub_lite.web.throttle import SharedSignInThrottle, SignInThrottle, throttle_for

from conftest import OpenDatabase

pytestmark = pytest.mark.engines


@pytest.fixture
def nodes(config):
    ensure_initialized(config)
    opened = [OpenDatabase(config), OpenDatabase(config)]  # two nodes' worth
    yield opened
    for node in opened:
        node.close()


def test_the_engine_chooses_where_sign_in_failures_live(nodes, engine):
    throttle = throttle_for(nodes[0].db, 5, 900)
    assert isinstance(throttle, SignInThrottle if engine == "sqlite" else SharedSignInThrottle)


def test_the_shared_throttle_slides_like_the_in_memory_one_and_is_shared(nodes):
    now = [1000.0]
    a, b = (SharedSignInThrottle(node.db, 3, 60, clock=lambda: now[0]) for node in nodes)
    run_a, run_b = nodes[0].run, nodes[1].run
    # Three failures, alternating nodes: each node sees the others' (names fold their case).
    for throttle, run in ((a, run_a), (b, run_b), (a, run_a)):
        assert run(throttle.reserve_attempt("Ann", "10.0.0.1")) == 0
        now[0] += 10
    assert run_b(b.reserve_attempt("ann", "10.0.0.1")) == 30  # the first leaves the window at 1060
    assert run_a(a.reserve_attempt("ann", "10.0.0.1")) == 30  # a refusal is not counted
    assert run_a(a.reserve_attempt("ann", "10.0.0.2")) == 0  # another address has its own
    now[0] = 1060.0
    assert run_b(b.reserve_attempt("ann", "10.0.0.1")) == 0  # one left: room for one
    assert run_a(a.reserve_attempt("ann", "10.0.0.1")) == 10
    run_a(a.release_attempt("ann", "10.0.0.1"))  # given back: the newest went, not the oldest
    now[0] = 1070.0  # 1010 left; 1020 stays
    assert [run_a(a.reserve_attempt("ann", "10.0.0.1")) for _ in range(3)] == [0, 0, 10]
    run_b(b.clear_failures("ANN", "10.0.0.1"))  # a success on either node clears the pair
    assert [run_a(a.reserve_attempt("ann", "10.0.0.1")) for _ in range(4)] == [0, 0, 0, 60]
    assert run_a(a.pairs_held()) == 2
    now[0] = 1200.0
    assert run_b(b.prune()) == 4  # every failure left the window
    assert run_a(a.pairs_held()) == 0


def test_parallel_guesses_on_two_nodes_get_the_budget_once(nodes):
    """20 reservations at once on each of two nodes, for one pair with a budget of 5."""
    from concurrent.futures import ThreadPoolExecutor

    throttles = [SharedSignInThrottle(node.db, 5, 900) for node in nodes]

    def burst(index):
        async def guesses():
            return await asyncio.gather(*(throttles[index].reserve_attempt("bob", "10.0.0.7") for _ in range(20)))
        return nodes[index].run(guesses())

    with ThreadPoolExecutor(2) as pool:
        waits = [w for answers in pool.map(burst, range(2)) for w in answers]
    assert waits.count(0) == 5 and all(1 <= w <= 900 for w in waits if w)


def test_every_key_change_moves_the_key_generation(config, engine):
    boot = ensure_initialized(config)
    with direct_connection(config) as conn:
        start = key_checks.current_generation(conn)
        key = tenancy.create_key(conn, boot.tenant_id, scope="read").key
    with direct_connection(config) as conn:
        assert key_checks.current_generation(conn) == start  # a new key changes no remembered check
        tenancy.revoke_key(conn, key)
    with direct_connection(config) as conn:
        assert key_checks.current_generation(conn) == start + 1
        tenancy.set_suspended(conn, boot.tenant_id, True)
        tenancy.set_suspended(conn, boot.tenant_id, False)
    with pytest.raises(Exception):  # a change rolled back takes its bump with it
        with direct_connection(config) as conn:
            tenancy.revoke_key(conn, boot.admin_key)
            raise RuntimeError("rolled back")
    with direct_connection(config) as conn:
        assert key_checks.current_generation(conn) == start + 3


def test_a_remembered_check_is_forgotten_when_the_generation_moves(monkeypatch):
    monkeypatch.setattr(key_checks, "_changed", [float("-inf")])
    checks = key_checks.KeyChecks(ttl_s=60)
    who = tenancy.Principal("k1", "t", "read", None, False)
    assert checks.observe_generation(7, time.monotonic())  # the first reading: nothing was kept
    checks.put(b"a", who, time.monotonic())
    assert not checks.observe_generation(7, time.monotonic())
    assert checks.get(b"a") is who
    read_at = time.monotonic()  # a check read before the change was seen ...
    assert checks.observe_generation(8, time.monotonic())
    assert checks.get(b"a") is None
    checks.put(b"b", who, read_at)  # ... is not kept when it arrives after it
    assert checks.get(b"b") is None
    checks.put(b"c", who, time.monotonic())  # one read after it is
    assert checks.get(b"c") is who


def test_a_key_revoked_by_another_process_is_refused_within_the_poll(config, monkeypatch):
    """A check remembered by the app is forgotten by its `key-generation` task once another
    process revokes the key: well before the cache's own TTL (5 s)."""
    from litestar.testing import TestClient

    boot = ensure_initialized(config)
    with direct_connection(config) as conn:
        key = tenancy.create_key(conn, boot.tenant_id, scope="read").key
    with TestClient(app=create_app(config), raise_server_exceptions=False) as client:
        svc = client.app.state.services
        headers = {"X-API-Key": key}
        monkeypatch.setattr(key_checks, "_changed", [float("-inf")])
        assert client.get("/api/v1/projects", headers=headers).status_code == 200
        assert svc.key_checks.get(svc.key_checks.digest(key)) is not None
        # What another node does: the revocation and the bump, without this process's own
        # keys_changed() (which would forget at once, and prove nothing about the poll).
        with direct_connection(config) as conn:
            tenancy.revoke_key(conn, key)
        monkeypatch.setattr(key_checks, "_changed", [float("-inf")])
        started = time.monotonic()
        while client.get("/api/v1/projects", headers=headers).status_code == 200:
            assert time.monotonic() - started < key_checks.GENERATION_POLL_S + 1.5
            time.sleep(0.05)
        assert client.get("/api/v1/projects", headers=headers).status_code == 401
