"""Two `qahub serve` nodes on one PostgreSQL database, requests alternating between them
(issue 14): agent jobs are claimed exactly once, each webhook delivery is sent once, a sweep
started on both deletes each row once, and a coordinated maintenance task runs on one node per
round (task leases, maintenance.py and db/task_leases.py).

`server_factory` starts every server of a test on the SAME database when the engine is
PostgreSQL (tests/conftest.py): that is what makes them nodes of one hub.
"""

from __future__ import annotations

import asyncio
import collections
import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from conftest import qahub_command
from qahub_lite.config import load_config
from qahub_lite.db.database import direct_connection

pytestmark = pytest.mark.e2e
ON_POSTGRESQL = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)

# Limits off (the test polls hard on purpose); jobs leased long enough never to expire here and
# never timed out while queued, so that every job ends up claimed by an agent or not at all;
# webhooks polled every second, retried after a second, and allowed to the local receiver.
NODE_CONFIG = (
    "[rate_limits]\ndefault = 0\nqualigate = 0\nqualitypilot_ingest = 0\n"
    "[jobs]\nlease_s = 600\nqueue_timeout_s = 0\ncheck_interval_s = 1\n"
    "[webhooks]\npoll_interval_s = 1\nretry_base_s = 1\nretry_max_s = 1\nbatch_size = 5\n"
    'allow_networks = ["127.0.0.1"]\n'
)


@pytest.fixture
def nodes(engine, server_factory, tmp_path):
    return [server_factory(tmp_path / "node-a", NODE_CONFIG), server_factory(tmp_path / "node-b", NODE_CONFIG)]


def _client(node) -> httpx.Client:
    return httpx.Client(base_url=node.url, headers=node.h(), timeout=30)


def _ok(response: httpx.Response, status: int = 201) -> dict:
    assert response.status_code == status, response.text
    return response.json()


# --- (a) agent jobs --------------------------------------------------------------------------

JOBS = 100
AGENTS_PER_NODE = 4


@ON_POSTGRESQL
def test_each_job_is_claimed_once_by_agents_polling_both_nodes(nodes):
    clients = [_client(n) for n in nodes]
    try:
        project = _ok(clients[0].post("/api/v1/projects", json={"name": "Two nodes"}))
        case = _ok(clients[1].post(f"/api/v1/projects/{project['id']}/test-cases", json={
            "title": "checkout works", "automation": {"framework": "pytest", "grep": "test_checkout"}}))

        claims: list[tuple[str, str, str]] = []  # (job id, agent, node url)
        lock, triggered_all, errors = threading.Lock(), threading.Event(), []

        def agent(name: str, node) -> None:
            with _client(node) as http:
                idle_after_all = 0
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline and idle_after_all < 10:
                    if triggered_all.is_set() and len(claims) >= JOBS:
                        break
                    r = http.post("/api/v1/agent/claim", json={"agent": name, "frameworks": ["pytest"], "wait_s": 0})
                    if r.status_code != 200:
                        errors.append((name, r.status_code, r.text))
                        return
                    job = r.json()["job"]
                    if job is None:
                        idle_after_all += triggered_all.is_set()
                        time.sleep(0.02)
                        continue
                    with lock:
                        claims.append((job["id"], name, node.url))
                    # The agent's end of the job: the run finishes, as a real agent's would.
                    done = http.post(f"/api/v1/agent/jobs/{job['id']}/complete",
                                     json={"lease_token": job["lease_token"], "outcome": "DONE"})
                    if done.status_code != 200:
                        errors.append((name, "complete", done.status_code, done.text))

        agents = [threading.Thread(target=agent, args=(f"agent-{n}-{i}", node), daemon=True)
                  for n, node in enumerate(nodes) for i in range(AGENTS_PER_NODE)]
        for t in agents:
            t.start()
        runs = []
        for i in range(JOBS):  # triggers alternate between the nodes while the agents claim
            queued = _ok(clients[i % 2].post("/api/v1/trigger", json={"test_case_id": case["id"]}))
            runs.append(queued["test_run_id"])
        triggered_all.set()
        for t in agents:
            t.join(120)
        assert not any(t.is_alive() for t in agents), "an agent is still polling"
        ids = [job_id for job_id, _, _ in claims]
        duplicates = [job_id for job_id, n in collections.Counter(ids).items() if n > 1]
        assert not duplicates, f"claimed more than once: {duplicates[:5]}"
        # (A job claimed twice also shows here: the first holder's lease token no longer works.)
        assert not errors, errors[:5]
        assert len(ids) == JOBS
        # Both nodes handed jobs out (the claims really ran concurrently on two processes).
        assert {url for _, _, url in claims} == {n.url for n in nodes}
        # Nothing is left to claim on either node, and the database agrees: every job ran once.
        for n, http in enumerate(clients):  # (an agent's name belongs to one key: each node's own)
            assert _ok(http.post("/api/v1/agent/claim", json={"agent": f"late-{n}", "frameworks": ["pytest"],
                                                              "wait_s": 0}), 200)["job"] is None
        with direct_connection(load_config(nodes[0].config_path, environ={})) as conn:
            rows = conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
            assert {r[0]: r[1] for r in rows} == {"DONE": JOBS}
    finally:
        for http in clients:
            http.close()


# --- (b) webhook deliveries ------------------------------------------------------------------

class CountingReceiver:
    """A local HTTP receiver counting requests per delivery id. Each delivery's first attempt is
    answered 503 and every later one 200, so that each delivery is attempted exactly twice: once
    first, once as a retry (which either node may send). It answers slowly, so that the nodes'
    sending rounds overlap: a delivery claimed by one node is still being sent while the other
    looks for due deliveries."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # delivery id -> [[event id, answer, arrived at, answered at]] (times: time.monotonic())
        self.requests: dict[str, list[list]] = collections.defaultdict(list)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                self.rfile.read(int(self.headers.get("content-length") or 0))
                delivery, event_id = self.headers["X-Qahub-Delivery"], self.headers["X-Qahub-Event-Id"]
                with receiver.lock:
                    seen = receiver.requests[delivery]
                    status = 503 if not seen else 200
                    request = [event_id, status, time.monotonic(), None]
                    seen.append(request)
                time.sleep(0.3)  # slower than the gap between the two nodes' sender ticks
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                self.wfile.flush()
                request[3] = time.monotonic()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def snapshot(self) -> dict[str, list[list]]:
        with self.lock:
            return {k: list(v) for k, v in self.requests.items()}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


RUNS = 30


@ON_POSTGRESQL
def test_each_webhook_delivery_is_sent_once_per_attempt_by_two_nodes(nodes):
    receiver = CountingReceiver()
    clients = [_client(n) for n in nodes]
    try:
        project = _ok(clients[0].post("/api/v1/projects", json={"name": "Hooks"}))
        hook = _ok(clients[1].post(f"/api/v1/projects/{project['id']}/webhooks",
                                   json={"url": receiver.url, "events": ["run.completed"]}))["webhook"]
        for i in range(RUNS):  # each finished run: one run.completed event, one delivery
            _ok(clients[i % 2].post("/api/v1/ingest", json={
                "project_id": project["id"], "run_name": f"run {i}", "results": [{"title": "t", "status": "PASSED"}]}))

        def all_delivered():
            got = receiver.snapshot()
            return got if len(got) == RUNS and all(len(v) >= 2 for v in got.values()) else None

        deadline = time.monotonic() + 60
        while (got := all_delivered()) is None:
            assert time.monotonic() < deadline, f"not every delivery arrived twice: {len(receiver.snapshot())}"
            time.sleep(0.2)
        time.sleep(3)  # three more sender rounds on each node: nothing else may arrive
        got = receiver.snapshot()
        assert len(got) == RUNS
        wrong = {d: [r[1] for r in v] for d, v in got.items() if [r[1] for r in v] != [503, 200]}
        assert not wrong, f"deliveries not attempted exactly once each time: {wrong}"
        # The second request is the retry, sent after the first one's answer and its backoff (1 s
        # +-10%), not a second node sending the first attempt again while it was under way.
        early = {d: round(v[1][2] - v[0][3], 2) for d, v in got.items() if v[1][2] - v[0][3] < 0.8}
        assert not early, f"second requests before the first attempt's answer and backoff (s after): {early}"
        events = [v[0][0] for v in got.values()]
        assert len(set(events)) == RUNS  # one delivery per event, and each event once

        listed = []
        page = f"/api/v1/webhooks/{hook['id']}/deliveries?limit=100"
        listed = _ok(clients[0].get(page), 200)["data"]
        assert len(listed) == RUNS
        assert {(d["state"], d["attempts"]) for d in listed} == {("delivered", 2)}
        with direct_connection(load_config(nodes[0].config_path, environ={})) as conn:
            # Two attempts recorded per delivery, numbered 1 and 2: no attempt was made twice.
            rows = conn.execute("SELECT delivery_id, attempt, count(*) FROM webhook_attempts "
                                "GROUP BY delivery_id, attempt").fetchall()
            assert len(rows) == 2 * RUNS and {r[2] for r in rows} == {1} and {r[1] for r in rows} == {1, 2}
    finally:
        for http in clients:
            http.close()
        receiver.stop()


# --- (c) a sweep on both nodes at once --------------------------------------------------------

@ON_POSTGRESQL
def test_a_sweep_started_on_both_nodes_deletes_each_row_once(engine, server_factory, tmp_path):
    # Small batches, so that the two sweeps take turns many times; the background sweep off, so
    # that the two command-line sweeps are the only ones.
    extra = "[retention]\nunlinked_days = 30\nbatch_size = 7\nsweep_interval_minutes = 0\n"
    nodes = [server_factory(tmp_path / "node-a", extra), server_factory(tmp_path / "node-b", extra)]
    clients = [_client(n) for n in nodes]
    try:
        project = _ok(clients[0].post("/api/v1/projects", json={"name": "Sweep"}))
        run_ids = [
            _ok(clients[i % 2].post("/api/v1/ingest", json={"project_id": project["id"], "results": [
                {"title": f"r{i}-t{j}", "status": "PASSED"} for j in range(100)]}))["run_id"]
            for i in range(4)
        ]
    finally:
        for http in clients:
            http.close()
    config = load_config(nodes[0].config_path, environ={})
    old = int(time.time() * 1000) - 40 * 86_400_000
    with direct_connection(config) as conn:  # three runs' results become 40 days old
        expired = conn.execute("UPDATE results SET updated_at = ? WHERE run_id IN (?, ?, ?)",
                               (old, *run_ids[:3])).rowcount
    assert expired == 300

    sweeps = [subprocess.Popen([*qahub_command(), "sweep", "--json", "--config", str(n.config_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in nodes]
    reports = []
    for proc in sweeps:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        reports.append(json.loads(out))
    assert sum(r["deleted_results"] for r in reports) == expired, reports
    with direct_connection(config) as conn:
        assert conn.execute("SELECT count(*) FROM results").fetchone()[0] == 100
        assert conn.execute("SELECT count(*) FROM results WHERE run_id = ?", (run_ids[3],)).fetchone()[0] == 100


# --- (d) a coordinated maintenance task: one node per round ----------------------------------

@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_a_lease_goes_to_one_holder_until_it_runs_out_or_is_released(config):
    from qahub_lite.db import engine as engines
    from qahub_lite.db import task_leases as leases

    engines.from_config(config).migrate()
    now = int(time.time() * 1000)  # SQLite's clock; PostgreSQL's own is used there
    with direct_connection(config) as conn:
        assert leases.claim(conn, "sweep", "node-a", 60_000, now) is None
        assert leases.claim(conn, "sweep", "node-b", 60_000, now) == "node-a"
        assert leases.claim(conn, "sweep", "node-a", 60_000, now) is None  # its holder keeps it
        assert not leases.renew(conn, "sweep", "node-b", 60_000, now)
        assert leases.renew(conn, "sweep", "node-a", 60_000, now)
        assert leases.claim(conn, "grades", "node-b", 60_000, now) is None  # one lease per task
        leases.release(conn, ["sweep"], "node-b", now)  # not its lease: nothing happens
        assert leases.claim(conn, "sweep", "node-b", 60_000, now) == "node-a"
        leases.release(conn, ["sweep"], "node-a", now)
        assert leases.claim(conn, "sweep", "node-b", 60_000, now) is None
        # A lease that ran out (its holder died): the next node takes it.
        assert leases.claim(conn, "orphans", "node-a", -1, now) is None
        assert leases.claim(conn, "orphans", "node-b", 60_000, now) is None
        assert [(n, h) for n, h, _ in leases.holders(conn)] == [
            ("grades", "node-b"), ("orphans", "node-b"), ("sweep", "node-b")]


def _node_database(url: str):
    from qahub_lite.db.database import Database
    from qahub_lite.db.engine import PostgresqlEngine

    return Database(PostgresqlEngine(url), readers=1, max_group=16)


@ON_POSTGRESQL
def test_a_coordinated_task_runs_on_one_node_per_round_and_moves_when_its_node_stops(engine, storage_url,
                                                                                        monkeypatch):
    from qahub_lite import maintenance
    from qahub_lite.db import task_leases
    from qahub_lite.maintenance import TaskScheduler

    # Short leases so that a dead node's task moves within a second or two; a round's lease
    # lasts 0.1 s past the holder's next tick (the interval is 0.2 s).
    monkeypatch.setattr(maintenance, "RUN_LEASE_S", 1.5)
    monkeypatch.setattr(maintenance, "ROUND_MARGIN_S", 0.1)

    async def scenario():
        runs: list[tuple[str, float, float]] = []  # (node, start, end)
        dbs = [_node_database(storage_url), _node_database(storage_url)]
        for db in dbs:
            await db.open()
        schedulers = [TaskScheduler(task_leases.TaskLeases(db, f"node-{i}")) for i, db in enumerate(dbs)]

        def task(node: str):
            async def run():
                started = time.monotonic()
                await asyncio.sleep(0.05)
                runs.append((node, started, time.monotonic()))
            return run

        for i, s in enumerate(schedulers):
            s.add("sweep-like", 0.2, task(f"node-{i}"), coordinated=True)
        try:
            for s in schedulers:
                s.start()
            await asyncio.sleep(2)
            first = list(runs)
            # The holder stops cleanly: its lease is released, the other node takes over at once.
            holder = first[-1][0]
            await schedulers[int(holder[-1])].stop()
            stopped_at = time.monotonic()
            await asyncio.sleep(1)
            after = [r for r in runs if r[1] > stopped_at]
            # The new holder dies (its loops end, its lease is not released): the first node,
            # back, takes the task over once the lease runs out.
            other = 1 - int(holder[-1])
            for t in schedulers[other].tasks.values():
                t._loop.cancel()
            await asyncio.gather(*(t._loop for t in schedulers[other].tasks.values()), return_exceptions=True)
            died_at = time.monotonic()
            revived = TaskScheduler(task_leases.TaskLeases(dbs[int(holder[-1])], "node-revived"))
            revived.add("sweep-like", 0.2, task("node-revived"), coordinated=True)
            revived.start()
            await asyncio.sleep(3)
            await revived.stop()
            leases = await dbs[0].read(task_leases.holders)
            return first, after, died_at, list(runs), leases
        finally:
            for s in schedulers:
                await s.stop()
            for db in dbs:
                await db.close()

    first, after, died_at, runs, leases = asyncio.run(scenario())
    # Rounds ran, 0.2 s apart plus the run for 2 s: about 8 of them; both nodes running every round
    # would make about 16.
    assert 5 <= len(first) <= 10, first
    # The holder keeps its task from round to round (a node slowed down past the round's margin
    # may lose it to the other, which is a handover, not a second run: hence most, not all).
    by_node = collections.Counter(node for node, _, _ in first)
    assert by_node.most_common(1)[0][1] >= len(first) - 1, by_node
    holder = first[-1][0]
    assert after and {node for node, _, _ in after} == {f"node-{1 - int(holder[-1])}"}
    taken_over = [r for r in runs if r[0] == "node-revived"]
    assert taken_over, "nobody took the task over from the dead node"
    # Within the dead node's lease (its run's, 1.5 s here, or its round's, shorter) and a round.
    assert taken_over[0][1] - died_at < 1.5 + 0.5, taken_over[0][1] - died_at
    # Never two runs at the same time, whatever happened.
    ordered = sorted(runs, key=lambda r: r[1])
    overlaps = [(a, b) for a, b in zip(ordered, ordered[1:]) if b[1] < a[2]]
    assert not overlaps, overlaps[:3]
    assert [name for name, _, _ in leases] == ["sweep-like"]


# --- a node stopping in the middle of a webhook batch -----------------------------------------

@ON_POSTGRESQL
def test_a_stopping_node_records_the_deliveries_answered_and_hands_back_the_others(engine, storage_url, tmp_path):
    """A rolling restart stops a node while its sender waits for answers: a delivery whose
    receiver already answered 2xx is recorded as delivered, not handed back to be sent again by
    the next start or the other node; one still waiting goes back at once."""
    from conftest import make_api, write_config
    from qahub_lite import run_completion_tasks

    answered_once = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.path == "/slow":
                time.sleep(5)
            try:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except (BrokenPipeError, ConnectionResetError):
                return  # the slow one's sender stopped waiting: that is the test
            if self.path == "/fast":
                answered_once.set()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    # The node's own sender off (poll_interval_s = 0): the test drives one tick by hand.
    config = load_config(write_config(tmp_path, '[webhooks]\npoll_interval_s = 0\nallow_networks = ["127.0.0.1"]\n',
                                      storage_url=storage_url), environ={})
    client, boot = make_api(config)
    try:
        with client:
            h = {"Authorization": f"Bearer {boot.admin_key}"}
            project = _ok(client.post("/api/v1/projects", json={"name": "Restart"}, headers=h))
            hooks = {path: _ok(client.post(f"/api/v1/projects/{project['id']}/webhooks", headers=h, json={
                "url": base + path, "events": ["run.completed"]}))["webhook"]["id"] for path in ("/fast", "/slow")}
            _ok(client.post("/api/v1/ingest", headers=h, json={"project_id": project["id"], "results": [
                {"title": "t", "status": "PASSED"}]}))

            def deliveries(hook_id):
                return _ok(client.get(f"/api/v1/webhooks/{hook_id}/deliveries", headers=h), 200)["data"]

            deadline = time.monotonic() + 15
            while not all(deliveries(hook_id) for hook_id in hooks.values()):  # run-completion queued them
                assert time.monotonic() < deadline
                time.sleep(0.1)
            sender = run_completion_tasks.Sender(client.app.state.services)

            async def stop_mid_batch():
                tick = asyncio.ensure_future(sender.tick())
                while not answered_once.is_set():
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.3)  # the fast answer is read; the slow one is still awaited
                tick.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await tick

            client.blocking_portal.call(stop_mid_batch)
            fast, slow = (deliveries(hooks[p])[0] for p in ("/fast", "/slow"))
            assert (fast["state"], fast["attempts"]) == ("delivered", 1)
            assert (slow["state"], slow["attempts"]) == ("pending", 0)
            # Handed back: due now, so that the next tick (of any node) sends it at once.
            due = client.blocking_portal.call(
                lambda: client.app.state.services.db.write(
                    lambda conn: conn.execute("SELECT count(*) FROM webhook_deliveries WHERE state = 'pending' "
                                              "AND next_attempt_at <= ?", (int(time.time() * 1000),)).fetchone()[0]))
            assert due == 1
    finally:
        server.shutdown()
        server.server_close()
