"""`qahub wait RUN`: durations, and its exit codes against the real server process: 0 passed,
1 failed / errored / canceled, 2 on timeout or when the run cannot be read."""

from __future__ import annotations

import argparse
import os
import subprocess
import time
import uuid

import pytest

from conftest import free_port, qahub_command, start_server
from qahub_lite.cli import main
from qahub_lite.cli.wait import parse_duration



@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("1.5h", 5400), ("500ms", 0.5), ("45", 45),
    (" 2m 30s ", 150), ("1M", 60),
])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "m", "10x", "1h30", "-5s", "ten minutes"])
def test_bad_durations(text):
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        parse_duration(text)


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_storage_url):
    srv = start_server(tmp_path_factory.mktemp("wait-server"), storage_url=module_storage_url)
    yield srv
    srv.stop()


@pytest.fixture
def hub(server, monkeypatch):
    monkeypatch.setenv("QAHUB_URL", server.url)
    monkeypatch.setenv("QAHUB_TOKEN", server.admin_key)
    with server.client() as http:
        project = http.post("/api/v1/projects", json={"name": f"w-{uuid.uuid4().hex[:8]}"}).json()
    return server, project


def ingest(server, project, statuses: list[str], status: str = "COMPLETED") -> dict:
    body = {"project_id": project["id"], "status": status,
            "results": [{"title": f"t{i}", "status": s} for i, s in enumerate(statuses)]}
    with server.client() as http:
        r = http.post("/api/v1/ingest", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def wait(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["wait", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.e2e
def test_finished_runs_exit_with_their_verdict(capsys, hub):
    server, project = hub
    passed = ingest(server, project, ["PASSED", "PASSED", "SKIPPED"])
    code, out, err = wait(capsys, passed["short_id"], "--timeout", "10s")
    assert code == 0
    assert out.strip() == f"run {passed['short_id']} COMPLETED: PASSED (2 passed, 1 skipped)"

    assert wait(capsys, ingest(server, project, ["SKIPPED"])["run_id"])[0] == 0  # all skipped is not a failure
    assert wait(capsys, ingest(server, project, ["PASSED", "FAILED"])["short_id"])[0] == 1
    assert wait(capsys, ingest(server, project, ["BROKEN"])["short_id"])[0] == 1

    with server.client() as http:
        errored = ingest(server, project, ["PASSED"], status="RUNNING")
        http.post(f"/api/v1/runs/{errored['run_id']}/finish", json={"status": "ERROR"})
        canceled = ingest(server, project, ["PASSED"], status="RUNNING")
        http.post(f"/api/v1/runs/{canceled['run_id']}/cancel")
    assert wait(capsys, errored["short_id"])[0] == 1
    code, out, err = wait(capsys, canceled["short_id"], "--json")
    assert code == 1 and '"status":"CANCELED"' in out


@pytest.mark.e2e
def test_timeout_and_unknown_run_exit_2(capsys, hub):
    server, project = hub
    running = ingest(server, project, ["PASSED"], status="RUNNING")
    started = time.monotonic()
    code, out, err = wait(capsys, running["short_id"], "--timeout", "1s", "--interval", "200ms")
    assert code == 2
    assert 0.9 <= time.monotonic() - started < 10
    assert f"timed out after 1s waiting for run {running['short_id']} (still RUNNING)" in err
    assert f"run {running['short_id']} RUNNING: 1/1 tests finished" in err  # progress, once

    code, out, err = wait(capsys, "nosuchrun", "--timeout", "5s")
    assert code == 2 and "Run not found" in err
    code, out, err = wait(capsys, running["short_id"], "--token", "qh_bad_key")
    assert code == 2 and "Missing or invalid API key" in err


@pytest.mark.e2e
def test_waits_until_the_run_finishes(hub):
    """The blocking mode of seeds 003/004: a pipeline step waits while results arrive."""
    server, project = hub
    run = ingest(server, project, ["PASSED"], status="RUNNING")
    env = {**os.environ, "QAHUB_URL": server.url, "QAHUB_TOKEN": server.admin_key}
    waiter = subprocess.Popen(
        [*qahub_command(), "wait", run["short_id"], "--timeout", "60s", "--interval", "200ms",
         "--max-interval", "300ms"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        time.sleep(1.5)
        assert waiter.poll() is None  # still waiting on a RUNNING run
        with server.client() as http:
            http.post(f"/api/v1/runs/{run['run_id']}/results", json={"results": [{"title": "late", "status": "FAILED"}]})
            time.sleep(0.5)
            http.post(f"/api/v1/runs/{run['run_id']}/finish")
        out, err = waiter.communicate(timeout=30)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    assert waiter.returncode == 1, err
    assert "1/1 tests finished" in err and "2/2 tests finished, 1 failed" in err
    assert out.strip().startswith(f"run {run['short_id']} COMPLETED: FAILED")


def test_unreachable_server_keeps_waiting_until_the_timeout(capsys, monkeypatch):
    monkeypatch.setenv("QAHUB_TOKEN", "qh_test_key")
    code, out, err = wait(capsys, "abc", "--url", f"http://127.0.0.1:{free_port()}", "--timeout", "1s",
                          "--interval", "300ms")
    assert code == 2
    assert "server not answering" in err and "timed out after 1s" in err


def test_usage_errors_exit_2(capsys, monkeypatch):
    monkeypatch.delenv("QAHUB_URL", raising=False)
    monkeypatch.setenv("QAHUB_TOKEN", "qh_test_key")
    assert wait(capsys, "abc")[0] == 2  # no URL
    with pytest.raises(SystemExit) as usage:
        main(["wait", "abc", "--timeout", "soon"])
    assert usage.value.code == 2
