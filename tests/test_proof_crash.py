"""Crash safety: what a client got a 2xx for survives SIGKILL at any moment, on both engines.

Client threads send ingests, bulk upserts and attachment uploads back to back to a real
`qahub serve`; the test kills the server with SIGKILL at random moments (no shutdown code runs),
starts it again on the same data folder, and finally checks that every acknowledged result and
attachment is there, `PRAGMA integrity_check` says ok, and no attachment file lacks its row or
the reverse (db/orphans.py removes the files a kill leaves between an upload's rename and its
commit, at the next start).

On PostgreSQL the process killed is `qahub serve`, not the database server: the point is that
the hub answers 2xx only once the server committed. The cluster is a dedicated one with fsync
and synchronous commits on (tests/pgcluster.py `durable=True`), as a production server runs; the
shared test cluster has them off for speed and would prove nothing about durability.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time

import httpx
import pytest

from proof_server import ServerProcess
from test_native_api import tiny_png

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KILLS = 20
# How long one start may take before the test calls it hung: ample, because on a loaded two-core
# machine a start was measured at up to 19 s, and ServerProcess's 30 s default was once exceeded.
START_S = 90
STATUSES = ["PASSED", "PASSED", "PASSED", "FAILED", "SKIPPED", "BROKEN"]


class Ledger:
    """What the server acknowledged, as the client saw it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: dict[str, set[str]] = {}  # run id -> titles acknowledged in it
        self.attachments: dict[str, str] = {}  # attachment id -> sha256 of the bytes sent
        self.sent = 0
        self.unanswered = 0

    def ack_results(self, run_id: str, titles: list[str]) -> None:
        with self.lock:
            self.runs.setdefault(run_id, set()).update(titles)

    def pick_run(self, rng: random.Random) -> str | None:
        with self.lock:
            return rng.choice(list(self.runs)) if self.runs else None


def _client_loop(url: str, key: str, project_id: str, name: str, ledger: Ledger, stop: threading.Event) -> None:
    rng = random.Random(name)
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    seq = 0
    while not stop.is_set():
        seq += 1
        action = rng.random()
        try:
            with ledger.lock:
                ledger.sent += 1
            if action < 0.6 or not ledger.runs:
                titles = [f"{name}-{seq}-t{i}" for i in range(rng.randint(1, 40))]
                body = {"project_id": project_id, "run_name": f"{name}-{seq}",
                        "results": [{"title": t, "suite": name, "status": rng.choice(STATUSES)} for t in titles]}
                r = http.post("/api/v1/ingest", json=body)
                if r.status_code == 201:
                    ledger.ack_results(r.json()["run_id"], titles)
            elif action < 0.8:
                run_id = ledger.pick_run(rng)
                titles = [f"{name}-{seq}-u{i}" for i in range(rng.randint(1, 20))]
                body = {"results": [{"title": t, "suite": name, "status": "PASSED"} for t in titles]}
                r = http.post(f"/api/v1/runs/{run_id}/results", json=body)
                if r.status_code == 201:
                    ledger.ack_results(run_id, titles)
            else:
                run_id = ledger.pick_run(rng)
                results = http.get(f"/api/v1/runs/{run_id}/results", params={"limit": 1}).json()["data"]
                # Unique content each time, so that every upload is a file of its own.
                content = tiny_png() + os.urandom(rng.randint(16, 200_000))
                r = http.post(f"/api/v1/results/{results[0]['id']}/attachments",
                              files={"file": (f"{name}-{seq}.png", content, "image/png")})
                if r.status_code == 201:
                    with ledger.lock:
                        ledger.attachments[r.json()["data"][0]["id"]] = hashlib.sha256(content).hexdigest()
        except (httpx.TransportError, ValueError, KeyError, IndexError):
            # The server died under this request (or before we read its answer): not
            # acknowledged, so it may or may not be stored. Wait for the restart.
            with ledger.lock:
                ledger.unanswered += 1
            time.sleep(0.01)
    http.close()


@pytest.fixture(scope="module")
def durable_cluster():
    from pgcluster import Cluster, ClusterUnavailable

    try:
        cluster = Cluster(durable=True).start()
    except ClusterUnavailable as exc:
        pytest.skip(f"PostgreSQL tests need its server binaries: {exc}")
    yield cluster
    cluster.stop()


# Twenty-one starts of `qahub serve`, on either engine: 10 to 19 s each were measured on a two-core
# machine running other suites (load average 10), which takes the test past the suite's 300 s.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_acknowledged_writes_survive_sigkill(tmp_path, engine, request):
    config = None
    if engine == "postgresql":
        cluster = request.getfixturevalue("durable_cluster")
        config = {"storage": {"url": cluster.create_database(f"crash_{os.getpid()}")}}
    server = ServerProcess(tmp_path / "s", config)
    server.start(timeout=START_S)
    with server.client() as http:
        project_id = http.post("/api/v1/projects", json={"name": "crash"}).json()["id"]
    ledger, stop = Ledger(), threading.Event()
    threads = [threading.Thread(target=_client_loop, args=(server.url, server.admin_key, project_id, f"c{i}",
                                                           ledger, stop), daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    rng = random.Random(8)
    try:
        for _ in range(KILLS):
            # Random moments: sometimes right after start, sometimes well into a stream of writes.
            time.sleep(rng.uniform(0.05, 0.9))
            server.kill()
            server.start(timeout=START_S)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    server.kill()
    assert server.starts == KILLS + 1
    final_start = time.time()
    server.start(timeout=START_S)  # the start that must clean up after the last kill

    acknowledged = sum(len(titles) for titles in ledger.runs.values())
    assert len(ledger.runs) > KILLS and acknowledged > 500, (len(ledger.runs), acknowledged)
    assert len(ledger.attachments) >= 10, len(ledger.attachments)
    assert ledger.unanswered >= KILLS // 2  # the kills did land on requests in flight
    with server.client() as http:
        for run_id, titles in ledger.runs.items():
            r = http.get(f"/api/v1/runs/{run_id}/results")
            assert r.status_code == 200, (run_id, r.status_code)
            stored = {x["title"] for x in r.json()["data"]}
            assert titles <= stored, f"run {run_id} lost {len(titles - stored)} acknowledged results"
            run = http.get(f"/api/v1/runs/{run_id}").json()
            assert run["counts"]["total"] == len(stored)  # counts committed with their results
        for attachment_id, sha in ledger.attachments.items():
            r = http.get(f"/api/v1/attachments/{attachment_id}")
            assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sha, attachment_id
    assert server.stop() == 0
    report = server.check()
    if engine == "sqlite":  # PRAGMA integrity_check: the file's own structure
        assert report["integrity"] == ["ok"], report
    assert report["files_without_rows"] == [] and report["rows_without_files"] == [], report
    leftovers = list((server.data_dir / "attachments" / "tmp").iterdir())
    if engine == "sqlite":
        assert report["upload_leftovers"] == [], report
        assert report["ok"], report["problems"]
        assert not leftovers  # one node: at its start no upload can be in flight, every leftover goes
    else:
        # Other nodes may share the folder and be mid-upload, so a start takes only uploads
        # untouched for the grace period (app.py): what is left was younger than that at the
        # final start (the last kills' uploads). By the time check runs some may have passed the
        # grace period, and check names those (the attachment-orphans task takes them later);
        # nothing else may be wrong.
        from qahub_lite.db.orphans import TMP_GRACE_S

        assert all(p.stat().st_mtime > final_start - TMP_GRACE_S for p in leftovers), leftovers
        assert set(report["upload_leftovers"]) <= {p.name for p in leftovers}, report
        assert [p for p in report["problems"] if "unfinished uploads" not in p] == [], report["problems"]


def _write_orphans(attachments, age_s: float) -> tuple[str, str]:
    """A hash-named file without a row, and an upload cut short, both `age_s` old."""
    sha = hashlib.sha256(b"orphan").hexdigest()
    orphan = attachments / sha[:2] / sha
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"orphan")
    leftover = attachments / "tmp" / "upload-cut-short"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"half a file")
    past = time.time() - age_s
    for path in (orphan, leftover):
        os.utime(path, (past, past))
    return sha, leftover.name


def test_check_reports_and_repair_removes_orphans_beside_a_live_server(tmp_path):
    server = ServerProcess(tmp_path / "s")
    server.start()
    attachments = server.data_dir / "attachments"
    with server.client() as http:
        project_id = http.post("/api/v1/projects", json={"name": "p"}).json()["id"]
        run_id = http.post("/api/v1/ingest", json={"project_id": project_id, "results": [
            {"title": "t", "status": "PASSED"}]}).json()["run_id"]
        result_id = http.get(f"/api/v1/runs/{run_id}/results").json()["data"][0]["id"]
        kept = http.post(f"/api/v1/results/{result_id}/attachments",
                         files={"file": ("a.png", tiny_png(), "image/png")}).json()["data"][0]["id"]
        sha, leftover = _write_orphans(attachments, age_s=120)
        fresh = attachments / "tmp" / "upload-in-progress"
        fresh.write_bytes(b"still streaming")

        report = server.check()
        assert not report["ok"]
        assert report["files_without_rows"] == [sha]
        assert report["upload_leftovers"] == [leftover]  # the fresh one may be an upload in flight
        assert report["rows_without_files"] == []

        repaired = server.check("--repair")
        assert repaired["ok"], repaired["problems"]
        assert not (attachments / sha[:2] / sha).exists() and not (attachments / "tmp" / leftover).exists()
        assert fresh.exists()
        assert http.get(f"/api/v1/attachments/{kept}").content == tiny_png()  # rows' files untouched
    assert server.stop() == 0


def test_a_start_removes_everything_a_crash_left(tmp_path):
    server = ServerProcess(tmp_path / "s")
    server.start()
    server.kill()
    attachments = server.data_dir / "attachments"
    sha, leftover = _write_orphans(attachments, age_s=0)  # as young as a kill a moment ago leaves them
    assert not server.check()["ok"]
    server.start()
    assert not (attachments / sha[:2] / sha).exists() and not (attachments / "tmp" / leftover).exists()
    assert "removed 1 attachment files without rows and 1 unfinished uploads" in server.log()
    assert server.stop() == 0
    assert server.check()["ok"]


def test_a_row_whose_file_is_gone_is_reported_not_hidden(tmp_path):
    server = ServerProcess(tmp_path / "s")
    server.start()
    with server.client() as http:
        project_id = http.post("/api/v1/projects", json={"name": "p"}).json()["id"]
        run_id = http.post("/api/v1/ingest", json={"project_id": project_id, "results": [
            {"title": "t", "status": "PASSED"}]}).json()["run_id"]
        result_id = http.get(f"/api/v1/runs/{run_id}/results").json()["data"][0]["id"]
        http.post(f"/api/v1/results/{result_id}/attachments", files={"file": ("a.png", tiny_png(), "image/png")})
    assert server.stop() == 0
    sha = hashlib.sha256(tiny_png()).hexdigest()
    (server.data_dir / "attachments" / sha[:2] / sha).unlink()
    report = server.check("--repair")
    assert report["rows_without_files"] == [sha] and not report["ok"]
