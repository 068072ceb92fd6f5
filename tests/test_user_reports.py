"""Regression tests for what a new user ran into (each test names the surprise it prevents)."""

from __future__ import annotations

import io
import os
import subprocess

import pytest

from conftest import qahub_command, start_server
from qahub_lite.reports import ReportError, parse_report
from test_native_api import tiny_png

pytestmark = pytest.mark.engines


def test_a_second_server_on_a_taken_port_refuses_to_start(tmp_path, storage_url):
    first = start_server(tmp_path / "one", storage_url=storage_url)
    try:
        port = first.url.rsplit(":", 1)[1]
        other = tmp_path / "two"
        subprocess.run([*qahub_command(), "init", "--dir", str(other)], check=True, capture_output=True)
        out = subprocess.run([*qahub_command(), "serve", "--config", str(other / "qahub.toml"), "--port", port],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 2
        assert "Address already in use" in out.stderr and "Traceback" not in out.stderr
    finally:
        first.stop()


def test_a_port_out_of_range_is_a_usage_error():
    out = subprocess.run([*qahub_command(), "serve", "--port", "99999"], capture_output=True, text=True)
    assert out.returncode == 2 and "between 0 and 65535" in out.stderr


def test_admin_commands_outside_a_hub_folder_do_not_create_a_new_hub(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "QAHUB_CONFIG"}
    out = subprocess.run([*qahub_command(), "keys", "create", "--scope", "admin"], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 2 and "--config" in out.stderr
    assert not (tmp_path / "data").exists()


def test_a_forced_format_that_does_not_fit_is_an_error(tmp_path):
    other = tmp_path / "other.json"
    other.write_text('{"foo": 1}')
    with pytest.raises(ReportError, match="not a playwright-json report"):
        parse_report(other, "playwright-json")
    page = tmp_path / "page.xml"
    page.write_text("<html><body>hi</body></html>")
    with pytest.raises(ReportError, match="not a junit report"):
        parse_report(page, "junit")


def test_truncated_json_is_called_malformed(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"suites": [')
    with pytest.raises(ReportError, match="malformed JSON"):
        parse_report(broken)


def test_run_status_filter_is_validated_and_verdict_filters(api):
    project = api.project()
    api.post("/api/v1/ingest", {"project_id": project["id"], "results": [{"title": "a", "status": "FAILED"}]})
    api.post("/api/v1/ingest", {"project_id": project["id"], "results": [{"title": "a", "status": "PASSED"}]})
    r = api.get("/api/v1/runs?status=FAILED")
    assert r.status_code == 400 and "verdict" in r.json()["message"]
    assert len(api.get("/api/v1/runs?status=completed").json()["data"]) == 2
    failed = api.get("/api/v1/runs?verdict=FAILED").json()["data"]
    assert [run["verdict"] for run in failed] == ["FAILED"]
    assert [run["verdict"] for run in api.get("/api/v1/runs?verdict=passed").json()["data"]] == ["PASSED"]


def test_a_canceled_run_has_no_verdict(api):
    project = api.project()
    run = api.post("/api/v1/runs", {"project_id": project["id"]}).json()
    canceled = api.post(f"/api/v1/runs/{run['id']}/cancel").json()
    assert canceled["status"] == "CANCELED" and canceled["verdict"] is None


def test_one_attachment_per_request_named_file(api):
    project = api.project()
    run = api.post("/api/v1/ingest", {"project_id": project["id"], "results": [{"title": "a", "status": "FAILED"}]})
    result_id = api.get(f"/api/v1/runs/{run.json()['run_id']}/results").json()["data"][0]["id"]
    url = f"/api/v1/results/{result_id}/attachments"
    two = [("file", ("a.txt", io.BytesIO(b"note"), "text/plain")), ("file", ("b.png", io.BytesIO(tiny_png()), "image/png"))]
    r = api.client.post(url, headers=api.h(), files=two)
    assert r.status_code == 400 and "one file per request" in r.json()["message"]
    r = api.client.post(url, headers=api.h(), files={"other": ("a.txt", io.BytesIO(b"note"), "text/plain")})
    assert r.status_code == 400 and "'file'" in r.json()["message"]
    assert api.get(f"{url}").json()["data"] == []
    assert list((api.config.attachments_dir / "tmp").glob("*")) == []


def test_an_upsert_that_leaves_fields_out_keeps_them(api):
    project = api.project()
    api.test_case(project["id"], "Checkout", code="TC-002")
    r = api.post("/api/v1/ingest", {"project_id": project["id"], "results": [
        {"test_case_code": "TC-002", "status": "FAILED", "error_message": "boom", "duration_ms": 3800}]})
    run_id = r.json()["run_id"]
    api.post(f"/api/v1/runs/{run_id}/results", {"results": [
        {"test_case_code": "TC-002", "status": "FAILED", "bug_ticket_key": "LIN-42"}]})
    result = api.get(f"/api/v1/runs/{run_id}/results").json()["data"][0]
    assert (result["duration_ms"], result["error_message"], result["bug_ticket_key"]) == (3800, "boom", "LIN-42")
    api.post(f"/api/v1/runs/{run_id}/results", {"results": [{"test_case_code": "TC-002", "status": "PASSED"}]})
    result = api.get(f"/api/v1/runs/{run_id}/results").json()["data"][0]
    assert result["status"] == "PASSED" and result["error_message"] is None and result["duration_ms"] == 3800


def test_keys_can_be_limited_to_a_project_by_slug(tmp_path, storage_url):
    server = start_server(tmp_path / "s", storage_url=storage_url)
    try:
        with server.client() as http:
            http.post("/api/v1/projects", json={"name": "Web shop"})
        out = subprocess.run([*qahub_command(), "keys", "create", "--scope", "write", "--project", "web-shop",
                              "--config", str(server.config_path), "--json"], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        bad = subprocess.run([*qahub_command(), "keys", "create", "--scope", "write", "--project", "nope",
                              "--config", str(server.config_path)], capture_output=True, text=True)
        assert bad.returncode == 1 and "'nope'" in bad.stderr
    finally:
        server.stop()


def test_unknown_codes_can_be_kept_unlinked(api):
    project = api.project()
    body = {"project_id": project["id"], "results": [
        {"test_case_code": "TC-404", "title": "login @qa-hub('TC-404')", "suite": "auth", "status": "PASSED"}]}
    assert api.post("/api/v1/ingest", body).status_code == 207  # seed 000: rejected by default
    r = api.post("/api/v1/ingest", {**body, "unknown_codes": "unlink"})
    assert r.status_code == 201 and r.json()["accepted"] == 1
    stored = api.get(f"/api/v1/runs/{r.json()['run_id']}/results").json()["data"][0]
    assert stored["test_case_code"] is None and stored["title"] == "login @qa-hub('TC-404')"
    assert api.post("/api/v1/ingest", {**body, "unknown_codes": "drop"}).status_code == 400
