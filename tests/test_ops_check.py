"""`qahub check` as an operator runs it (the real command line, or the frozen executable when
QAHUB_EXE names it): a readable report, JSON on request, and a non-zero exit on any problem:
attachment files without rows, rows without files, a damaged database."""

from __future__ import annotations

import json
import sqlite3
import subprocess

from conftest import make_api, qahub_command, write_config

from qahub_lite.config import load_config


def check(cfg, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*qahub_command(), "check", "--config", str(cfg), *extra], capture_output=True, text=True,
                          timeout=120)


def _data_folder_with_an_attachment(tmp_path):
    cfg_path = write_config(tmp_path)
    config = load_config(cfg_path, environ={})
    client, boot = make_api(config)
    with client:
        h = {"Authorization": f"Bearer {boot.admin_key}"}
        project = client.post("/api/v1/projects", json={"name": "Check"}, headers=h).json()
        run = client.post("/api/v1/ingest", headers=h, json={
            "project_id": project["id"], "results": [{"title": "t", "status": "PASSED"}]}).json()
        result = client.get(f"/api/v1/runs/{run['run_id']}/results", headers=h).json()["data"][0]
        up = client.post(f"/api/v1/results/{result['id']}/attachments", headers=h,
                         files={"file": ("a.txt", b"evidence\n", "text/plain")})
        assert up.status_code == 201
    (sha,) = sqlite3.connect(config.db_path).execute("SELECT sha256 FROM attachments").fetchone()
    return cfg_path, config, sha


def test_check_reports_orphan_and_missing_files(tmp_path):
    cfg_path, config, sha = _data_folder_with_an_attachment(tmp_path)
    ok = check(cfg_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "integrity:   ok" in ok.stdout and "strict_tables yes" in ok.stdout and "returning yes" in ok.stdout
    assert "SQLite:" in ok.stdout and ok.stdout.rstrip().endswith("OK")

    stray = "ab" + "0" * 62
    (config.attachments_dir / "ab").mkdir(exist_ok=True)
    (config.attachments_dir / "ab" / stray).write_bytes(b"nobody's file")
    (config.attachments_dir / sha[:2] / sha).unlink()

    bad = check(cfg_path)
    assert bad.returncode == 1
    assert "1 attachment files have no row" in bad.stdout and "1 attachment rows have no file" in bad.stdout
    report = json.loads(check(cfg_path, "--json").stdout)
    assert report["ok"] is False
    assert report["files_without_rows"] == [stray] and report["rows_without_files"] == [sha]


def test_check_reports_a_damaged_database(tmp_path):
    cfg_path, config, _ = _data_folder_with_an_attachment(tmp_path)
    conn = sqlite3.connect(config.db_path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'results'").fetchone()
    conn.close()
    with open(config.db_path, "r+b") as f:  # break the b-tree page header of the results table
        f.seek((root - 1) * page_size)
        f.write(b"\xff" * 8)
    damaged = check(cfg_path)
    assert damaged.returncode == 1, damaged.stdout + damaged.stderr
    assert "Traceback" not in damaged.stderr
    assert "integrity" in damaged.stdout.lower() or "integrity" in damaged.stderr.lower()
