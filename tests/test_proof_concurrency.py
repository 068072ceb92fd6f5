"""Concurrency against the real server: many clients at once, counts exact, no duplicate rows,
no lost updates.

- 50 clients post results into one run at the same moment (`POST /runs/{id}/results`);
- 50 clients upsert the same test case of one run at the same moment, half setting a comment
  and half a bug ticket: one row, and neither kind of field lost;
- many runs create the same new test identity at once: it is interned once;
- sweeps run while ingests stream in: every expired result goes exactly once, nothing fresh goes.
"""

from __future__ import annotations

import collections
import sqlite3
import threading
import time
import uuid

import httpx
import pytest

from proof_server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CLIENTS = 50
STATUSES = ["PASSED", "FAILED", "BROKEN", "SKIPPED", "UNKNOWN"]


def _at_once(n: int, work) -> list:
    """Run `work(i)` in `n` threads released together; returns their results in order."""
    barrier = threading.Barrier(n)
    out: list = [None] * n
    errors: list = []

    def run(i):
        try:
            barrier.wait(30)
            out[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - reported below with its thread
            errors.append((i, exc))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # Small sweep batches, so that sweeps and ingests interleave many times.
    s = ServerProcess(tmp_path_factory.mktemp("conc") / "s", {"retention": {"unlinked_days": 30, "batch_size": 40}})
    s.start()
    yield s
    assert s.stop() == 0


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=60,
                      limits=httpx.Limits(max_connections=CLIENTS + 10)) as client:
        yield client


def _db(server) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{server.data_dir / 'qahub.db'}?mode=ro", uri=True)


def test_fifty_clients_posting_into_one_run_at_once(server, http):
    pid = http.post("/api/v1/projects", json={"name": f"fan-in {uuid.uuid4().hex[:6]}"}).json()["id"]
    run = http.post("/api/v1/runs", json={"project_id": pid, "name": "fan-in"}).json()
    per_client = 40

    def post(i):
        body = {"results": [{"title": f"client {i} test {j}", "suite": f"s{i % 5}", "status": STATUSES[(i + j) % 5]}
                            for j in range(per_client)]}
        r = http.post(f"/api/v1/runs/{run['id']}/results", json=body)
        assert r.status_code == 201, r.text
        return r.json()["accepted"]

    assert _at_once(CLIENTS, post) == [per_client] * CLIENTS
    expected = collections.Counter(STATUSES[(i + j) % 5] for i in range(CLIENTS) for j in range(per_client))
    counts = http.get(f"/api/v1/runs/{run['id']}").json()["counts"]
    assert counts["total"] == CLIENTS * per_client
    assert [counts[s.lower()] for s in STATUSES] == [expected[s] for s in STATUSES]
    results = http.get(f"/api/v1/runs/{run['id']}/results").json()["data"]
    assert len(results) == len({r["test_id"] for r in results}) == CLIENTS * per_client
    with _db(server) as conn:
        dupes = conn.execute("SELECT count(*) FROM (SELECT test_id FROM results WHERE run_id = ? "
                             "GROUP BY test_id HAVING count(*) > 1)", (run["id"],)).fetchone()[0]
    assert dupes == 0


def test_parallel_upserts_of_one_test_case_lose_nothing(server, http):
    pid = http.post("/api/v1/projects", json={"name": f"upsert {uuid.uuid4().hex[:6]}"}).json()["id"]
    http.post(f"/api/v1/projects/{pid}/test-cases", json={"title": "Login", "code": "TC-001"})
    run = http.post("/api/v1/runs", json={"project_id": pid}).json()

    def upsert(i):
        item = {"test_case_code": "TC-001", "status": STATUSES[i % 5], "error_message": f"from client {i}",
                "duration_ms": i}
        item.update({"comment": f"comment {i}"} if i % 2 else {"bug_ticket_key": f"BUG-{i}"})
        r = http.post(f"/api/v1/runs/{run['id']}/results", json={"results": [item]})
        assert r.status_code == 201, r.text

    _at_once(CLIENTS, upsert)
    (result,) = http.get(f"/api/v1/runs/{run['id']}/results").json()["data"]
    # The last write wins whole: status, message and duration come from one and the same client.
    i = result["duration_ms"]
    assert result["error_message"] == f"from client {i}" and result["status"] == STATUSES[i % 5]
    # Fields only some clients set are kept across the others' upserts (no lost update).
    assert result["comment"] and result["comment"].startswith("comment ")
    assert result["bug_ticket_key"] and result["bug_ticket_key"].startswith("BUG-")
    assert int(result["comment"].split()[1]) % 2 == 1 and int(result["bug_ticket_key"][4:]) % 2 == 0
    counts = http.get(f"/api/v1/runs/{run['id']}").json()["counts"]
    assert counts["total"] == 1 and counts[result["status"].lower()] == 1


def test_one_new_test_reported_by_many_runs_at_once_is_interned_once(server, http):
    pid = http.post("/api/v1/projects", json={"name": f"intern {uuid.uuid4().hex[:6]}"}).json()["id"]
    titles = [f"shared test {k}" for k in range(20)]

    def ingest(i):
        r = http.post("/api/v1/ingest", json={"project_id": pid, "run_name": f"run {i}", "results": [
            {"title": t, "suite": "shared", "status": "PASSED"} for t in titles]})
        assert r.status_code == 201, r.text
        return r.json()["run_id"]

    run_ids = _at_once(CLIENTS, ingest)
    assert len(set(run_ids)) == CLIENTS
    with _db(server) as conn:
        tests = conn.execute("SELECT count(*) FROM tests WHERE project_id = ?", (pid,)).fetchone()[0]
        results = conn.execute("SELECT count(*) FROM results r JOIN runs u ON u.id = r.run_id WHERE u.project_id = ?",
                               (pid,)).fetchone()[0]
    assert tests == len(titles) and results == CLIENTS * len(titles)


def _backdate_unlinked(server, pid: str, runs: int, per_run: int) -> int:
    """Expired unlinked results, written beside the live server as a second writer would
    (SQLite's lock and busy_timeout serialise it with the server's writer)."""
    old = int(time.time() * 1000) - 90 * 86_400_000
    conn = sqlite3.connect(server.data_dir / "qahub.db", timeout=30, isolation_level=None)
    try:
        tenant = conn.execute("SELECT tenant_id FROM projects WHERE id = ?", (pid,)).fetchone()[0]
        conn.execute("BEGIN IMMEDIATE")
        for r in range(runs):
            run_id = str(uuid.uuid4())
            conn.execute("INSERT INTO runs (id, short_id, tenant_id, project_id, name, source, status, created_at) "
                         "VALUES (?,?,?,?,?,?,?,?)", (run_id, f"old{uuid.uuid4().hex[:8]}", tenant, pid, f"old {r}",
                                                      "qahub", "COMPLETED", old))
            for t in range(per_run):
                identity = f"u:old\x1fold {r} {t}"
                conn.execute("INSERT INTO tests (project_id, suite_path, title, identity, created_at) "
                             "VALUES (?,?,?,?,?)", (pid, "old", f"old {r} {t}", identity, old))
                test_id = conn.execute("SELECT id FROM tests WHERE project_id = ? AND identity = ?",
                                       (pid, identity)).fetchone()[0]
                conn.execute("INSERT INTO results (run_id, test_id, status, linked, created_at, updated_at) "
                             "VALUES (?,?,?,?,?,?)", (run_id, test_id, "PASSED", 0, old, old))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return runs * per_run


def test_sweeps_during_ingest_delete_exactly_the_expired(server, http):
    pid = http.post("/api/v1/projects", json={"name": f"sweep {uuid.uuid4().hex[:6]}"}).json()["id"]
    http.post(f"/api/v1/projects/{pid}/test-cases", json={"title": "Kept", "code": "TC-001"})
    cutoff = int(time.time() * 1000) - 30 * 86_400_000
    with _db(server) as conn:
        already = conn.execute("SELECT count(*) FROM results WHERE linked = 0 AND created_at < ?", (cutoff,)).fetchone()[0]
    expired = _backdate_unlinked(server, pid, runs=40, per_run=50) + already
    stop = threading.Event()
    swept: list[tuple[int, int]] = []  # (results deleted, sweeps made) per sweeper

    def sweeper():
        total = sweeps = 0
        while not stop.is_set():
            total += http.post("/api/v1/admin/sweep").json()["deleted_results"]
            sweeps += 1
        swept.append((total, sweeps))

    def ingest(i):
        run_ids = []
        for k in range(5):
            r = http.post("/api/v1/ingest", json={"project_id": pid, "results": [
                {"test_case_code": "TC-001", "status": "PASSED"},
                *({"title": f"fresh {i} {k} {j}", "status": "FAILED"} for j in range(30))]})
            assert r.status_code == 201, r.text
            run_ids.append(r.json()["run_id"])
        return run_ids

    sweepers = [threading.Thread(target=sweeper) for _ in range(6)]
    for t in sweepers:
        t.start()
    try:
        fresh_runs = [run_id for run_ids in _at_once(30, ingest) for run_id in run_ids]
    finally:
        stop.set()
        for t in sweepers:
            t.join(60)
    last = http.post("/api/v1/admin/sweep").json()["deleted_results"]

    assert sum(n for n, _ in swept) + last == expired  # every expired result deleted exactly once
    # The sweeps ran during the ingests: they deleted while fresh results came in (stop is set
    # only once every ingest is answered). How many rounds fit depends on the machine's load:
    # on a busy 2-core machine one round of six sweeps can span all 150 ingests.
    assert sum(n for n, _ in swept) > 0 and sum(k for _, k in swept) >= len(sweepers)
    assert len(fresh_runs) == 150
    for run_id in fresh_runs:  # nothing fresh was swept, nothing half-counted
        counts = http.get(f"/api/v1/runs/{run_id}").json()["counts"]
        assert (counts["total"], counts["failed"], counts["passed"]) == (31, 30, 1)
        assert len(http.get(f"/api/v1/runs/{run_id}/results").json()["data"]) == 31
    with _db(server) as conn:
        left = conn.execute("SELECT count(*) FROM results WHERE linked = 0 AND created_at < ?", (cutoff,)).fetchone()[0]
        old_runs = conn.execute("SELECT count(*) FROM runs WHERE project_id = ? AND name LIKE 'old %'",
                                (pid,)).fetchone()[0]
    assert left == 0
    assert old_runs == 40  # runs stay (their counts are the history); their expired results went
