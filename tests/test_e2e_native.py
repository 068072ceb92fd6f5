"""End to end: the real `qahub serve` process on a free port, spoken to over HTTP as a CI job
would, with the seeds' own example payloads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx
import pytest

from conftest import qahub_command, start_server
from seeds.examples import seed000_ingest_body, seed001_upsert_body
from test_native_api import tiny_png

pytestmark = [pytest.mark.e2e, pytest.mark.engines]


def test_seed_examples_over_http(live_server):
    with live_server.client() as http:
        project = http.post("/api/v1/projects", json={"name": "Shop"}).json()
        for code, title in (("TC-001", "Login"), ("TC-002", "Checkout")):
            assert http.post(f"/api/v1/projects/{project['id']}/test-cases",
                             json={"code": code, "title": title}).status_code == 201
        body = seed000_ingest_body()
        body["project_id"] = project["id"]
        r = http.post("/api/v1/ingest", json=body)
        assert r.status_code == 201, r.text
        run_id = r.json()["run_id"]
        assert r.json()["url"] == f"{live_server.url}/runs/{run_id}"

        # Seed 001: read back, then bulk-upsert the same cases.
        results = http.get(f"/api/v1/runs/{run_id}/results").json()["data"]
        assert sorted(x["status"] for x in results) == ["FAILED", "PASSED", "PASSED"]
        assert http.post(f"/api/v1/runs/{run_id}/results", json=seed001_upsert_body()).status_code == 201
        results = http.get(f"/api/v1/runs/{run_id}/results").json()["data"]
        assert len(results) == 3
        assert next(x for x in results if x["test_case_code"] == "TC-002")["bug_ticket_key"] == "LIN-42"

        # The 207 path.
        bad = {"project_id": project["id"], "results": [{"test_case_code": "TC-999", "status": "PASSED"},
                                                         {"test_case_code": "TC-001", "status": "pass"}]}
        r = http.post("/api/v1/ingest", json=bad)
        assert r.status_code == 207
        assert [e["error"] for e in r.json()["errors"]] == [
            "test_case_code TC-999 not found in this project", "invalid status value: 'pass' (use PASSED)"]

        # Attach a PNG and download it.
        result_id = results[0]["id"]
        png = tiny_png()
        up = http.post(f"/api/v1/results/{result_id}/attachments", files={"file": ("shot.png", png, "image/png")})
        assert up.status_code == 201
        got = http.get(f"/api/v1/attachments/{up.json()['data'][0]['id']}")
        assert got.content == png and got.headers["content-type"] == "image/png"

        assert http.post("/api/v1/admin/sweep").json()["deleted_results"] == 0
    assert live_server.stop() == 0
    assert "Admin key" not in live_server.log()  # the key was printed by `keys create`, never logged


def test_first_start_prints_the_admin_key_once(tmp_path, storage_url):
    from conftest import free_port, write_config

    cfg = write_config(tmp_path, port=free_port(), storage_url=storage_url)
    outputs = []
    for _ in range(2):
        proc = subprocess.Popen([*qahub_command(), "serve", "--config", str(cfg)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "serving on" in line:
                break
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=15)
        outputs.append("".join(lines) + rest)
        assert proc.returncode == 0
    assert "Admin key (shown once" in outputs[0] and "qh_" in outputs[0]
    assert "qh_" not in outputs[1]


def test_sigterm_finishes_in_flight_requests_and_exits_0(tmp_path, storage_url):
    server = start_server(tmp_path / "s", storage_url=storage_url)
    with server.client() as http:
        project = http.post("/api/v1/projects", json={"name": "p"}).json()
        body = {"project_id": project["id"],
                "results": [{"title": f"t{i}", "status": "PASSED"} for i in range(5000)]}
        import threading

        answers = []
        t = threading.Thread(target=lambda: answers.append(http.post("/api/v1/ingest", json=body)))
        t.start()
        import time

        time.sleep(0.05)
        server.process.send_signal(signal.SIGTERM)
        t.join(20)
        assert server.process.wait(15) == 0
    if answers and answers[0].status_code == 201:
        # What was acknowledged is stored.
        from conftest import run_sql
        from qahub_lite.config import load_config

        assert run_sql(load_config(server.config_path, environ={}), "SELECT count(*) FROM results") == [(5000,)]


def test_cli_help_for_every_command():
    from qahub_lite.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        assert sub.description or sub.format_help(), name
        out = subprocess.run([sys.executable, "-m", "qahub_lite", name, "--help"], capture_output=True, text=True)
        assert out.returncode == 0, (name, out.stderr)
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"qahub {name} {action.option_strings[0]} has no help"


def test_init_json_and_keys_cli(tmp_path):
    out = subprocess.run([*qahub_command(), "init", "--dir", str(tmp_path / "site"), "--json"],
                         capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    assert info["admin_key"].startswith("qh_") and (tmp_path / "site" / "qahub.toml").exists()
    again = subprocess.run([*qahub_command(), "init", "--dir", str(tmp_path / "site")], capture_output=True, text=True)
    assert again.returncode == 1 and again.stderr.startswith("qahub: ") and len(again.stderr.splitlines()) == 1
    cfg = str(tmp_path / "site" / "qahub.toml")
    key = json.loads(subprocess.run([*qahub_command(), "keys", "create", "--scope", "write", "--config", cfg,
                                     "--json"], capture_output=True, text=True, check=True).stdout)
    assert key["scope"] == "write" and key["key"].startswith("qh_")
    listed = subprocess.run([*qahub_command(), "keys", "list", "--config", cfg], capture_output=True, text=True,
                            check=True).stdout
    assert key["id"] in listed and key["key"] not in listed
    subprocess.run([*qahub_command(), "keys", "revoke", key["id"], "--config", cfg], check=True, capture_output=True)
    assert "revoked" in subprocess.run([*qahub_command(), "keys", "list", "--config", cfg], capture_output=True,
                                       text=True).stdout
    bad = subprocess.run([*qahub_command(), "keys", "create", "--scope", "root", "--config", cfg],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    check = subprocess.run([*qahub_command(), "check", "--config", cfg], capture_output=True, text=True)
    assert check.returncode == 0 and "OK" in check.stdout
    migrations = subprocess.run([*qahub_command(), "migrate", "--list", "--config", cfg], capture_output=True,
                                text=True, check=True).stdout
    assert "applied  0001_core.sql" in migrations


def test_config_error_is_one_line_with_exit_2(tmp_path):
    cfg = tmp_path / "qahub.toml"
    cfg.write_text("[server]\nprot = 1\n")
    out = subprocess.run([*qahub_command(), "serve", "--config", str(cfg)], capture_output=True, text=True)
    assert out.returncode == 2 and "prot" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_environment_variables_configure_serve(tmp_path):
    from conftest import free_port

    port = free_port()
    env = {**os.environ, "QAHUB_PORT": str(port), "QAHUB_HOST": "127.0.0.1", "QAHUB_DATA_DIR": str(tmp_path / "d")}
    proc = subprocess.Popen([*qahub_command(), "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if "serving on" in line:
                break
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        assert (tmp_path / "d" / "qahub.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
