"""Rate limits: the sliding window itself (with a clock the test moves), the answers of the
real app (headers, 429 body, route groups, counted once per request), and exactness under
concurrency against the real `qahub serve` process.

On both engines (the engines marker): the window's tests run against the in-memory limiter
(SQLite's) and the database's (PostgreSQL's, tried on both engines' storage); the app's and the
server's tests against whichever the engine's app chooses."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from qahub_lite.api.ratelimit import (
    DEFAULT, QUALIGATE, QUALITYPILOT_INGEST, SharedWindowLimiter, SlidingWindowLimiter, route_group,
)
from qahub_lite.config import load_config
from qahub_lite.core import tenancy
from qahub_lite.db.database import direct_connection

from conftest import Api, OpenDatabase, make_api, write_config
from seeds.examples import seed002_payload

pytestmark = pytest.mark.engines

RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-window")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limiter(limit=3, window=60, clock=None) -> SlidingWindowLimiter:
    return SlidingWindowLimiter({QUALITYPILOT_INGEST: limit, QUALIGATE: limit, DEFAULT: limit}, window, clock or Clock())


@pytest.fixture
def opened(config):
    databases = []

    def open_one():
        databases.append(OpenDatabase(config))
        return databases[-1]

    yield open_one
    for database in databases:
        database.close()


class Synced:
    """A limiter's awaited `count`, called as the window's tests call `hit`."""

    def __init__(self, limiter, run) -> None:
        self.limiter, self.run = limiter, run

    def hit(self, key_id, group):
        return self.run(self.limiter.count(key_id, group))


@pytest.fixture(params=["memory", "database"])
def make_limiter(request, engine):
    """Limiters of one kind: SQLite's in-memory one (tried once, beside SQLite), or the
    database's, on the test's engine."""
    if request.param == "memory":
        if engine != "sqlite":
            pytest.skip("the in-memory limiter does not depend on the engine")
        loop = asyncio.new_event_loop()
        request.addfinalizer(loop.close)
        return lambda limit=3, window=60, clock=None: Synced(_limiter(limit, window, clock), loop.run_until_complete)
    database = request.getfixturevalue("opened")()

    def make(limit=3, window=60, clock=None):
        limits = {QUALITYPILOT_INGEST: limit, QUALIGATE: limit, DEFAULT: limit}
        return Synced(SharedWindowLimiter(database.db, limits, window, clock or Clock()), database.run)

    return make


# --- the window -------------------------------------------------------------------------


def test_the_limit_is_exact_and_the_refusal_says_when_to_retry(make_limiter):
    clock = Clock()
    limiter = make_limiter(limit=3, clock=clock)
    remaining = []
    for _ in range(3):
        d = limiter.hit("k", DEFAULT)
        assert d.allowed
        remaining.append(d.remaining)
        clock.now += 10
    assert remaining == [2, 1, 0]
    refused = limiter.hit("k", DEFAULT)
    assert not refused.allowed and refused.remaining == 0
    assert refused.reset_s == 30  # the first request (30 s ago) leaves the 60-s window in 30 s
    assert (refused.limit, refused.window_s) == (3, 60)


def test_the_window_slides_rather_than_resetting(make_limiter):
    clock = Clock()
    limiter = make_limiter(limit=4, clock=clock)
    for _ in range(2):
        assert limiter.hit("k", DEFAULT).allowed  # two at t=0
    clock.now += 30
    for _ in range(2):
        assert limiter.hit("k", DEFAULT).allowed  # two at t=30
    assert not limiter.hit("k", DEFAULT).allowed
    clock.now += 30  # t=60: the two from t=0 have left, the two from t=30 still count
    assert [limiter.hit("k", DEFAULT).allowed for _ in range(3)] == [True, True, False]
    clock.now += 29.5  # t=89.5: nothing has left yet
    assert not limiter.hit("k", DEFAULT).allowed
    clock.now += 0.5  # t=90: the two from t=30 have left
    assert [limiter.hit("k", DEFAULT).allowed for _ in range(3)] == [True, True, False]


def test_refused_requests_do_not_use_up_the_window(make_limiter):
    clock = Clock()
    limiter = make_limiter(limit=1, clock=clock)
    assert limiter.hit("k", DEFAULT).allowed
    for _ in range(100):
        clock.now += 0.5
        assert not limiter.hit("k", DEFAULT).allowed
    clock.now = 1000.0 + 60  # only the one allowed request counted
    assert limiter.hit("k", DEFAULT).allowed


def test_keys_and_groups_have_windows_of_their_own(make_limiter):
    limiter = make_limiter(limit=1)
    assert limiter.hit("a", DEFAULT).allowed
    assert limiter.hit("a", QUALIGATE).allowed
    assert limiter.hit("b", DEFAULT).allowed
    assert not limiter.hit("a", DEFAULT).allowed


def test_a_limit_of_zero_turns_the_group_off():
    limiter = SlidingWindowLimiter({QUALITYPILOT_INGEST: 0, QUALIGATE: 1, DEFAULT: 1}, 60, Clock())
    assert all(limiter.hit("k", QUALITYPILOT_INGEST) is None for _ in range(1000))
    assert len(limiter) == 0


def test_idle_keys_are_forgotten():
    clock = Clock()
    limiter = _limiter(limit=5, clock=clock)
    for n in range(1000):
        limiter.hit(f"key{n}", DEFAULT)
        clock.now += 0.01
    assert len(limiter) == 1000
    clock.now += 55  # the first ones are idle for 65 s, the last ones for 55 s
    limiter.hit("busy", DEFAULT)
    assert 1 < len(limiter) < 1000
    clock.now += 6
    limiter.hit("busy", DEFAULT)
    assert len(limiter) == 1
    # A key that keeps being refused is forgotten too, once its allowed requests age out.
    assert all(limiter.hit("spammer", DEFAULT).allowed for _ in range(5))
    for _ in range(30):
        clock.now += 1
        assert not limiter.hit("spammer", DEFAULT).allowed
    clock.now += 31
    limiter.hit("other", DEFAULT)
    assert len(limiter) == 1


def test_the_shared_limiter_turns_a_group_off_and_prunes_idle_keys(opened):
    database, clock = opened(), Clock()
    limiter = SharedWindowLimiter(database.db, {QUALITYPILOT_INGEST: 0, QUALIGATE: 1, DEFAULT: 5}, 60, clock)
    assert all(database.run(limiter.count("k", QUALITYPILOT_INGEST)) is None for _ in range(100))
    assert database.run(limiter.keys_held(QUALITYPILOT_INGEST)) == 0
    for n in range(50):
        database.run(limiter.count(f"key{n}", DEFAULT))
        clock.now += 1
    assert database.run(limiter.keys_held(DEFAULT)) == 50
    clock.now += 39  # t=89: the hits of keys 0..29 (t=0..29) are 60 s old or more: out of the window
    assert database.run(limiter.prune()) == 30
    assert database.run(limiter.keys_held(DEFAULT)) == 20
    clock.now += 60
    database.run(limiter.prune())
    assert database.run(limiter.keys_held(DEFAULT)) == 0


def test_two_nodes_on_one_database_share_each_window_exactly(opened):
    """Two Databases on one store (two writers: two nodes' worth), 40 concurrent hits on each
    against one limit of 50, timed by the database's clock: exactly 50 allowed, each count once."""
    nodes = [opened(), opened()]
    limiters = [SharedWindowLimiter(node.db, {DEFAULT: 50}, 60) for node in nodes]

    def burst(index):
        async def hits():
            return await asyncio.gather(*(limiters[index].count("k", DEFAULT) for _ in range(40)))
        return nodes[index].run(hits())

    with ThreadPoolExecutor(2) as pool:
        decisions = [d for answers in pool.map(burst, range(2)) for d in answers]
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 50
    assert sorted(d.remaining for d in allowed) == list(range(50))
    refused = [d for d in decisions if not d.allowed]
    assert all(d.remaining == 0 and 1 <= d.reset_s <= 60 for d in refused)


@pytest.mark.parametrize(
    ("method", "path", "group"),
    [
        ("POST", "/api/v1/test-runs", QUALITYPILOT_INGEST),
        ("GET", "/api/v1/test-runs", DEFAULT),
        ("POST", "/api/v1/trigger", QUALIGATE),
        ("GET", "/api/v1/trigger", QUALIGATE),
        ("GET", "/api/v1/trigger/", QUALIGATE),
        ("GET", "/api/v1/results", QUALIGATE),
        ("GET", "/api/v1/ci-config", QUALIGATE),
        ("GET", "/api/v1/results/42", DEFAULT),  # QA Hub's result, not Qualigate's list
        ("POST", "/api/v1/ingest", DEFAULT),
        ("GET", "/api/v1/runs", DEFAULT),
    ],
)
def test_route_groups(method, path, group):
    assert route_group(method, path) == group


# --- the app's answers ------------------------------------------------------------------


@pytest.fixture
def limited_api(tmp_path, storage_url):
    extra = "[rate_limits]\nwindow_s = 60\nqualitypilot_ingest = 2\nqualigate = 5\ndefault = 3\n"
    config = load_config(write_config(tmp_path, extra, storage_url=storage_url), environ={})
    client, boot = make_api(config)
    with client:
        yield Api(client, config, boot.admin_key, boot.tenant_id)


def _new_key(api) -> str:
    with direct_connection(api.config) as conn:
        return tenancy.create_key(conn, api.tenant_id, scope="admin").key


def test_allowed_answers_carry_the_headers(api):
    r = api.get("/api/v1/projects")
    assert r.status_code == 200
    assert [r.headers[h] for h in RATE_HEADERS] == ["1200", "1199", "60", "60s"]
    r = api.client.post("/api/v1/test-runs", json=seed002_payload(), headers={"X-API-Key": api.admin_key})
    assert r.status_code == 202
    assert [r.headers[h] for h in RATE_HEADERS] == ["60", "59", "60", "60s"]
    assert "retry-after" not in r.headers


def test_over_the_limit_is_429_with_seed_004_body_and_seed_002_headers(limited_api):
    api = limited_api
    for remaining in ("2", "1", "0"):
        r = api.get("/api/v1/projects")
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining"] == remaining
    r = api.get("/api/v1/projects")
    assert r.status_code == 429
    body = r.json()
    assert body["error"] == "Too Many Requests" and body["message"] == "Rate limit exceeded. Please try again later."
    assert isinstance(body["retry_after"], int) and 1 <= body["retry_after"] <= 60
    assert r.headers["retry-after"] == str(body["retry_after"])
    assert r.headers["x-ratelimit-limit"] == "3" and r.headers["x-ratelimit-remaining"] == "0"
    assert r.headers["x-ratelimit-reset"] == str(body["retry_after"]) and r.headers["x-ratelimit-window"] == "60s"
    # The QualityPilot group has its own window, another key its own too.
    assert api.client.post("/api/v1/test-runs", json=seed002_payload(), headers=api.h()).status_code == 202
    assert api.get("/api/v1/projects", key=_new_key(api)).status_code == 200
    metrics = api.client.get("/metrics").text
    assert 'qahub_rate_limited_total{group="default"} 1' in metrics


def test_qualitypilot_ingest_is_limited_to_its_own_count(limited_api):
    api = limited_api
    codes = [api.client.post("/api/v1/test-runs", json=seed002_payload(), headers={"X-API-Key": api.admin_key})
             .status_code for _ in range(3)]
    assert codes == [202, 202, 429]
    assert len(api.get("/api/v1/runs").json()["data"]) == 2


def test_a_request_is_counted_once_even_when_its_handler_checks_the_key_twice(limited_api):
    api = limited_api
    project = api.project("Shop")  # 1 request
    r = api.post("/api/v1/ingest", {"project_id": project["id"], "results": []})  # authenticates twice inside
    assert r.status_code == 201, r.text
    assert r.headers["x-ratelimit-remaining"] == "1"


def test_routes_without_a_key_are_neither_counted_nor_marked(limited_api):
    api = limited_api
    for _ in range(5):
        r = api.client.get("/healthz")
        assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
    for _ in range(5):  # bad keys are refused before any window is kept for them
        r = api.client.get("/api/v1/projects", headers={"X-API-Key": "qh_nope_nope"})
        assert r.status_code == 401 and "x-ratelimit-limit" not in r.headers
    assert api.get("/api/v1/projects").headers["x-ratelimit-remaining"] == "2"


def test_the_window_slides_over_real_time(tmp_path, storage_url):
    config = load_config(write_config(tmp_path, "[rate_limits]\nwindow_s = 1\ndefault = 2\n", storage_url=storage_url),
                         environ={})
    client, boot = make_api(config)
    with client:
        api = Api(client, config, boot.admin_key, boot.tenant_id)
        assert [api.get("/api/v1/projects").status_code for _ in range(3)] == [200, 200, 429]
        time.sleep(1.05)
        r = api.get("/api/v1/projects")
        assert r.status_code == 200 and r.headers["x-ratelimit-window"] == "1s"


# --- the real server --------------------------------------------------------------------


@pytest.mark.e2e
def test_parallel_posts_are_counted_exactly_by_the_real_server(tmp_path, server_factory):
    """70 QualityPilot posts at once against the default 60 per 60 s: exactly 60 stored."""
    server = server_factory(tmp_path / "server")
    try:
        barrier = threading.Barrier(70)
        payload = seed002_payload()
        limits = httpx.Limits(max_connections=70, max_keepalive_connections=70)
        with httpx.Client(base_url=server.url, timeout=60, limits=limits) as client:

            def post(_):
                barrier.wait()
                return client.post("/api/v1/test-runs", json=payload, headers={"X-API-Key": server.admin_key})

            with ThreadPoolExecutor(70) as pool:
                answers = list(pool.map(post, range(70)))
            accepted = [r for r in answers if r.status_code == 202]
            refused = [r for r in answers if r.status_code == 429]
            assert len(accepted) == 60 and len(refused) == 10, sorted(r.status_code for r in answers)
            # Every slot was handed out once: the remaining counts are 59 down to 0, each once.
            assert sorted(int(r.headers["x-ratelimit-remaining"]) for r in accepted) == list(range(60))
            for r in refused:
                assert r.json()["retry_after"] >= 1 and r.headers["retry-after"] == str(r.json()["retry_after"])
                assert r.headers["x-ratelimit-limit"] == "60" and r.headers["x-ratelimit-remaining"] == "0"
                assert r.headers["x-ratelimit-window"] == "60s" and "x-ratelimit-reset" in r.headers
            runs = client.get("/api/v1/runs", params={"limit": 100}, headers=server.h()).json()["data"]
            assert len(runs) == 60
    finally:
        server.stop()
