"""Graceful stop of the real server process: under a load of ingests with writes queued, it
exits 0 within its budget, every acknowledged write is on disk, nothing is half-written, and
the WAL is checkpointed; a request still running at the deadline gets a 503 it can retry."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_sigterm_under_load_commits_every_acknowledged_write(tmp_path, server_factory):
    server = server_factory(tmp_path / "s")
    with server.client() as http:
        project = http.post("/api/v1/projects", json={"name": "Load"}).json()
    acknowledged: list[str] = []
    refused: list[str] = []
    go = threading.Event()

    def client(n: int):
        body = {"project_id": project["id"], "results": [{"title": f"c{n} t{i}", "status": "PASSED"}
                                                         for i in range(300)]}
        with httpx.Client(base_url=server.url, headers=server.h(), timeout=30) as own:
            go.wait()
            while True:
                try:
                    r = own.post("/api/v1/ingest", json=body)
                except httpx.HTTPError:
                    return  # the server stopped listening: this client is done
                if r.status_code == 201:
                    acknowledged.append(r.json()["run_id"])
                else:
                    refused.append(f"{r.status_code} {r.text}")
                    return

    clients = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in clients:
        t.start()
    go.set()
    time.sleep(1.0)  # eight clients keep the writer's queue busy
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(15)
    took = time.monotonic() - started
    for t in clients:
        t.join(30)
    log = server.log()
    assert code == 0, log
    assert took < 10, f"stop took {took:.1f}s"
    assert "database closed cleanly" in log
    assert len(acknowledged) >= 8, "the load never got going"
    assert all(r.startswith("503") for r in refused), refused  # the only refusal allowed: "restarting"

    conn = sqlite3.connect(tmp_path / "s" / "data" / "qahub.db")
    stored = dict(conn.execute(
        "SELECT r.id, (SELECT count(*) FROM results x WHERE x.run_id = r.id) FROM runs r").fetchall())
    assert all(stored.get(run_id) == 300 for run_id in acknowledged)  # a 201 means committed
    assert all(n == 300 for n in stored.values())  # and nothing is half-written
    wal = tmp_path / "s" / "data" / "qahub.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed at the end


def test_a_request_still_running_at_the_deadline_gets_a_503(tmp_path, server_factory):
    # A 3 s budget: requests get 1 s, the app's shutdown the 2 s reserve (api/shutdown.py).
    server = server_factory(tmp_path / "s", env={"QAHUB_SERVER_SHUTDOWN_TIMEOUT_S": "3"})
    with server.client() as http:
        project = http.post("/api/v1/projects", json={"name": "Slow"}).json()
    payload = (
        '{"project_id": "%s", "results": [%s]}'
        % (project["id"], ",".join('{"title": "t%d", "status": "PASSED"}' % i for i in range(200)))
    ).encode()

    def trickle():  # a client on a slow link: the body takes 6 s to arrive
        step = len(payload) // 12 + 1
        for i in range(0, len(payload), step):
            yield payload[i:i + step]
            time.sleep(0.5)

    answer: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: answer.append(httpx.post(
        f"{server.url}/api/v1/ingest", content=trickle(), timeout=30,
        headers={**server.h(), "content-type": "application/json"})))
    sender.start()
    time.sleep(0.8)
    started = time.monotonic()
    server.process.send_signal(signal.SIGINT)
    code = server.process.wait(15)
    took = time.monotonic() - started
    sender.join(30)
    assert code == 0, server.log()
    assert took < 3.5, f"stop took {took:.1f}s"
    assert answer and answer[0].status_code == 503, answer
    assert answer[0].json() == {"error": "Service Unavailable",
                                "message": "The server is restarting; try again shortly.", "retry_after": 5}
    assert answer[0].headers["retry-after"] == "5"
    assert "1 requests still running at the deadline" in server.log()
