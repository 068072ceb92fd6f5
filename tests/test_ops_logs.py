"""Logs of the real server process: with --log-format json every line on stderr is one JSON
object (granian's own lines too), the access log has one line per request, and no key secret
ever reaches the output, whichever way a client sends it."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import httpx
import pytest
from conftest import free_port, qahub_command, write_config

pytestmark = pytest.mark.e2e


def test_json_logs_carry_every_line_and_never_a_key(tmp_path):
    port = free_port()
    cfg = write_config(tmp_path, port=port).read_text().replace("access_log = false", "access_log = true")
    (tmp_path / "qahub.toml").write_text(cfg)
    key = json.loads(subprocess.run(
        [*qahub_command(), "keys", "create", "--scope", "admin", "--config", str(tmp_path / "qahub.toml"), "--json"],
        capture_output=True, text=True, check=True).stdout)["key"]
    secret = key.split("_", 2)[2]  # qh_<id>_<secret>; the secret itself may hold "_"
    key_id = key.split("_")[1]
    proc = subprocess.Popen(
        [*qahub_command(), "serve", "--config", str(tmp_path / "qahub.toml"), "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        assert httpx.get(f"{url}/api/v1/projects", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert httpx.get(f"{url}/api/v1/projects", headers={"X-API-Key": key}).status_code == 200
        assert httpx.get(f"{url}/api/v1/projects?api_key={key}&token={secret}").status_code == 401
        assert httpx.get(f"{url}/api/v1/projects", headers={"Authorization": f"Bearer {key}x"}).status_code == 401
        assert httpx.get(f"{url}/no/such/{secret[:6]}").status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err

    entries = []
    for line in err.splitlines():
        entry = json.loads(line)  # every line, or this raises
        assert {"ts", "level", "logger", "message"} <= entry.keys(), line
        entries.append(entry)
    loggers = {e["logger"] for e in entries}
    assert any(name.startswith("_granian") for name in loggers), loggers  # granian's lines are ours too
    assert not any("experimental" in e["message"] for e in entries)
    assert any("serving on" in e["message"] for e in entries) and "serving on" not in out

    access = [e for e in entries if e["logger"] == "qahub.access"]
    assert [(e["method"], e["path"], e["status"]) for e in access if e["path"] != "/readyz"] == [
        ("GET", "/api/v1/projects", 200), ("GET", "/api/v1/projects", 200), ("GET", "/api/v1/projects", 401),
        ("GET", "/api/v1/projects", 401), ("GET", f"/no/such/{secret[:6]}", 404)]
    assert [e.get("key_id") for e in access if e["path"] == "/api/v1/projects"][:2] == [key_id, key_id]
    assert secret not in out and secret not in err
    assert "api_key" not in err and "token=" not in err


def test_text_logs_are_for_people(live_server):
    with live_server.client() as http:
        http.get("/api/v1/projects")
    assert live_server.stop() == 0
    log = live_server.log()
    assert "qahub-lite serving on" in log and "received SIGTERM" in log
    assert "INFO    _granian: Starting granian" in log  # granian's lines in our format
    assert not any(line.startswith("{") for line in log.splitlines())
