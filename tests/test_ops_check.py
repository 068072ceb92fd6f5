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


def test_check_on_postgresql_reports_the_server_migrations_and_attachments(pg_cluster, tmp_path):
    """On PostgreSQL: the server's version, migrations applied and pending, the same attachment
    checks, and --repair removing files without rows (rows without files are only reported)."""
    url = pg_cluster.fresh_database()
    cfg_path = write_config(tmp_path, storage_url=url)
    config = load_config(cfg_path, environ={})
    client, boot = make_api(config)
    with client:
        h = {"Authorization": f"Bearer {boot.admin_key}"}
        project = client.post("/api/v1/projects", json={"name": "Check"}, headers=h).json()
        run = client.post("/api/v1/ingest", headers=h, json={
            "project_id": project["id"], "results": [{"title": "t", "status": "PASSED"}]}).json()
        result = client.get(f"/api/v1/runs/{run['run_id']}/results", headers=h).json()["data"][0]
        for content in (b"kept\n", b"lost\n"):
            up = client.post(f"/api/v1/results/{result['id']}/attachments", headers=h,
                             files={"file": ("a.txt", content, "text/plain")})
            assert up.status_code == 201
    import psycopg

    with psycopg.connect(url) as conn:
        hashes = [r[0] for r in conn.execute("SELECT sha256 FROM attachments ORDER BY created_at")]
    ok = check(cfg_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PostgreSQL:  15" in ok.stdout or "PostgreSQL:  1" in ok.stdout
    assert "none pending" in ok.stdout and ok.stdout.rstrip().endswith("OK")
    assert "integrity" not in ok.stdout and "qahub.db" not in ok.stdout

    stray = "cd" + "1" * 62
    (config.attachments_dir / "cd").mkdir(exist_ok=True)
    (config.attachments_dir / "cd" / stray).write_bytes(b"nobody's file")
    lost = hashes[1]
    (config.attachments_dir / lost[:2] / lost).unlink()
    report = json.loads(check(cfg_path, "--json").stdout)
    assert report["ok"] is False and report["engine"] == "postgresql"
    assert report["files_without_rows"] == [stray] and report["rows_without_files"] == [lost]
    assert report["server_version"] and report["pending_migrations"] == []
    assert report["applied_migrations"][0].startswith("0001_")

    repaired = check(cfg_path, "--repair")
    assert "removed 1 attachment files without rows" in repaired.stdout
    assert not (config.attachments_dir / "cd" / stray).exists()
    assert repaired.returncode == 1 and "1 attachment rows have no file" in repaired.stdout

    # A migration the database lacks is reported as pending.
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)")
    pending = check(cfg_path)
    assert pending.returncode == 1 and "pending:" in pending.stdout and "qahub migrate" in pending.stdout


def test_check_on_an_unreachable_postgresql_says_so(tmp_path):
    from conftest import free_port

    cfg_path = write_config(tmp_path, storage_url=f"postgresql://nobody:pw@127.0.0.1:{free_port()}/none")
    done = check(cfg_path)
    assert done.returncode == 1 and "cannot connect" in done.stdout and "Traceback" not in done.stderr
    assert ":pw@" not in done.stdout
