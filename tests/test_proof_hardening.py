"""The smaller holes of issue 12, each reproduced as the review found it: a body that pauses or
drags, a key revoked while its long-poll waits, more waiting polls than a key may hold, output
cut without a word, a multipart header that never ends, and a retention sweep that measured a
result's age from its creation."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import sqlite3
import threading
import time

import pytest

from conftest import Api, make_api, write_config
from proof_server import ServerProcess
from qahub_lite.api.errors import ApiError
from qahub_lite.api.multipart import FilePart, file_chunks
from qahub_lite.config import load_config
from qahub_lite.core.tenancy import create_key, revoke_key

DAY_MS = 86_400_000


# --- request bodies that pause or drag (api/admission.py) ---------------------------------

@pytest.fixture(scope="module")
def strict_bodies(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("bodies") / "s",
                           {"server": {"body_idle_timeout_s": 1, "body_timeout_s": 3}})
    server.start()
    yield server
    server.stop()


def _send_slowly(server, path: str, every_s: float, chunks: int) -> tuple[bytes, float]:
    """A body announced as 60,000 bytes, sent one byte every `every_s`: (answer, seconds)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    started = time.monotonic()
    try:
        kind = "application/x-www-form-urlencoded" if path == "/login" else "application/json"
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
                     f"Authorization: Bearer {server.admin_key}\r\nContent-Length: 60000\r\n\r\n".encode())
        sock.settimeout(every_s)
        answer = b""
        for _ in range(chunks):
            try:
                answer = sock.recv(65536)
                break  # answered (or closed) before the body ended
            except TimeoutError:
                sock.sendall(b" ")
        sock.settimeout(15)
        while answer and b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        return answer, time.monotonic() - started
    finally:
        sock.close()


@pytest.mark.e2e
@pytest.mark.parametrize("path", ["/login", "/api/v1/ingest"])
def test_a_body_that_pauses_is_answered_408(strict_bodies, path):
    answer, took = _send_slowly(strict_bodies, path, every_s=5, chunks=3)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert took < 3, took
    assert b"connection: close" in answer.lower()


@pytest.mark.e2e
def test_a_body_that_drags_is_answered_408_at_the_deadline(strict_bodies):
    answer, took = _send_slowly(strict_bodies, "/api/v1/ingest", every_s=0.4, chunks=40)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert 2.5 < took < 6, took
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1].split(b"\r\n0\r\n")[0].strip() or b"{}")
    assert body["error"] == "Request Timeout" and "body_timeout_s" in body["message"]


# --- long-polls: a revoked key, and the budget of waiting polls (api/agent_api.py) --------

def _hub(tmp_path, extra: str = ""):
    config = load_config(write_config(tmp_path, extra), environ={})
    client, boot = make_api(config)
    with client:
        yield Api(client, config, boot.admin_key, boot.tenant_id)


@pytest.fixture
def hub(tmp_path):
    yield from _hub(tmp_path)


@pytest.fixture
def budget_hub(tmp_path):
    yield from _hub(tmp_path, "[jobs]\nmax_polls_per_key = 2\n")


def _key(api: Api, scope: str) -> tuple[str, str]:
    writer = api.client.app.state.services.db.writer
    created = writer.run_sync(lambda conn: create_key(conn, api.tenant_id, scope=scope))
    return created.key, created.info.id


def _library_suite(api: Api) -> str:
    project = api.project()
    suite = api.post(f"/api/v1/projects/{project['id']}/suites", {"name": "All"}).json()
    r = api.post(f"/api/v1/projects/{project['id']}/test-cases", {
        "title": "Login", "suite_id": suite["id"], "automation": {"framework": "pytest"}})
    assert r.status_code == 201, r.text
    return suite["id"]


def _claim(api: Api, key: str, wait_s: int, name: str = "a1"):
    return api.post("/api/v1/agent/claim", {"agent": name, "frameworks": ["pytest"], "wait_s": wait_s}, key=key)


def test_a_key_revoked_during_a_long_poll_gets_no_job(hub):
    suite = _library_suite(hub)
    key, key_id = _key(hub, "write")
    got = {}
    waiter = threading.Thread(target=lambda: got.setdefault("r", _claim(hub, key, 20)))
    waiter.start()
    time.sleep(0.5)
    writer = hub.client.app.state.services.db.writer
    writer.run_sync(lambda conn: revoke_key(conn, key_id))
    hub.post("/api/v1/trigger", {"test_suite_id": suite})
    waiter.join(15)
    assert got["r"].status_code == 401, got["r"].text
    assert "revoked" in got["r"].json()["message"]
    # The job is still there for an agent whose key is valid.
    other, _ = _key(hub, "write")
    r = _claim(hub, other, 0, "a2")
    assert r.status_code == 200 and r.json()["job"] is not None


def test_a_key_waits_in_at_most_max_polls_per_key_long_polls(budget_hub):
    hub = budget_hub
    key, _ = _key(hub, "write")
    waiters = [threading.Thread(target=_claim, args=(hub, key, 3, f"w{i}")) for i in range(2)]
    for w in waiters:
        w.start()
    time.sleep(0.8)
    r = _claim(hub, key, 3, "third")
    assert r.status_code == 429, r.text
    assert r.json()["retry_after"] > 0 and r.headers["retry-after"]
    assert "max_polls_per_key" in r.json()["message"]
    # A claim that does not wait takes no slot; another key has its own budget.
    assert _claim(hub, key, 0, "quick").status_code == 200
    other, _ = _key(hub, "write")
    started = time.monotonic()
    assert _claim(hub, other, 1, "other").status_code == 200
    assert time.monotonic() - started >= 0.9
    for w in waiters:
        w.join(10)
    assert _claim(hub, key, 1, "later").status_code == 200  # slots come back


# --- output cut to 64 KiB is said in the answer ---------------------------------------------

def test_truncated_output_is_reported_in_the_answer(api):
    project = api.project()
    big = "x" * 70_000
    r = api.post("/api/v1/ingest", {"project_id": project["id"], "results": [
        {"title": "quiet", "status": "PASSED", "stdout": "short"},
        {"title": "loud", "status": "FAILED", "stdout": big, "stderr": big + "yy"}]})
    assert r.status_code == 201, r.text
    cut = r.json()["truncated"]
    assert [(c["index"], c["error"].split()[0]) for c in cut] == [(1, "stdout"), (1, "stderr")]
    assert "70000" in cut[0]["error"] and "70002" in cut[1]["error"]
    run = r.json()["run_id"]
    r = api.post(f"/api/v1/runs/{run}/results", {"results": [{"title": "loud", "status": "PASSED", "stderr": big}]})
    assert r.status_code == 201 and [c["index"] for c in r.json()["truncated"]] == [0]
    r = api.post(f"/api/v1/runs/{run}/results", {"results": [{"title": "quiet", "status": "PASSED"}]})
    assert r.json()["truncated"] == []


# --- multipart part headers ------------------------------------------------------------------

def test_a_never_ending_part_header_is_refused_after_16_kib():
    sent = []

    async def endless():
        yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nX: "
        for _ in range(2000):  # 8 MB of one header line
            sent.append(1)
            yield b"y" * 4096

    async def read():
        return [c async for c in file_chunks(endless(), "multipart/form-data; boundary=b", FilePart())]

    started = time.monotonic()
    with pytest.raises(ApiError) as refused:
        asyncio.run(read())
    assert refused.value.status == 400 and "headers are longer" in refused.value.message
    assert len(sent) <= 6, f"read {len(sent)} chunks of a header past the limit"
    assert time.monotonic() - started < 1


def test_a_header_split_across_many_chunks_is_still_read():
    body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello\r\n--b--\r\n"

    async def byte_by_byte():
        for i in range(len(body)):
            yield body[i:i + 1]

    async def read():
        part = FilePart()
        data = b"".join([c async for c in file_chunks(byte_by_byte(), "multipart/form-data; boundary=b", part)])
        return data, part

    data, part = asyncio.run(read())
    assert data == b"hello" and part.file_name == "a.txt"


# --- retention measures age from the last update ----------------------------------------------

def test_the_sweep_keeps_an_old_result_updated_a_moment_ago(api):
    project = api.project()
    r = api.post("/api/v1/ingest", {"project_id": project["id"], "status": "RUNNING", "results": [
        {"title": "old, untouched", "status": "PASSED"}, {"title": "old, rerun now", "status": "FAILED"}]})
    run = r.json()["run_id"]
    with sqlite3.connect(api.config.db_path) as conn:
        conn.execute("UPDATE results SET created_at = created_at - 40 * ?, updated_at = updated_at - 40 * ?",
                     (DAY_MS, DAY_MS))
    r = api.post(f"/api/v1/runs/{run}/results", {"results": [{"title": "old, rerun now", "status": "PASSED"}]})
    assert r.status_code == 201, r.text
    report = api.post("/api/v1/admin/sweep").json()
    assert report["deleted_results"] == 1
    left = api.get(f"/api/v1/runs/{run}/results").json()["data"]
    assert [x["title"] for x in left] == ["old, rerun now"]


def test_the_attachment_upload_still_works_end_to_end(api):
    project = api.project()
    run = api.post("/api/v1/ingest", {"project_id": project["id"], "results": [{"title": "t", "status": "PASSED"}]})
    result = api.get(f"/api/v1/runs/{run.json()['run_id']}/results").json()["data"][0]
    r = api.client.post(f"/api/v1/results/{result['id']}/attachments", headers=api.h(),
                        files={"file": ("log.txt", io.BytesIO(b"some log"), "text/plain")}, data={"note": "x" * 100})
    assert r.status_code == 201, r.text
