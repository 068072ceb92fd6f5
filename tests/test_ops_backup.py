"""Backups and restores in-process (db/backup.py, db/restore.py), on real data folders written
through the real app: consistency, atomicity, the checks a restore makes before it touches
anything, and the scheduled backup's keep count."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest
from conftest import Api, make_api, qahub_command, write_config

from qahub_lite.config import load_config
from qahub_lite.db import backup as backups
from qahub_lite.db.backup import BackupError, Cancelled, create_backup
from qahub_lite.db.restore import restore_backup

psycopg = pytest.importorskip("psycopg")


def _fill(api, runs: int = 2, attachments: int = 2) -> list[str]:
    """Runs with results and text attachments; returns the attachment contents' hashes."""
    project = api.project("Backups")
    hashes = []
    for r in range(runs):
        body = {"project_id": project["id"], "results": [{"title": f"t{i}", "status": "PASSED"} for i in range(20)]}
        run = api.post("/api/v1/ingest", body).json()
        result_id = api.get(f"/api/v1/runs/{run['run_id']}/results").json()["data"][0]["id"]
        for a in range(attachments):
            content = f"log of run {r} attachment {a}\n".encode()
            up = api.client.post(f"/api/v1/results/{result_id}/attachments", headers=api.h(),
                                 files={"file": ("log.txt", content, "text/plain")})
            assert up.status_code == 201, up.text
            hashes.append(hashlib.sha256(content).hexdigest())
    return hashes


def _rows(db: Path) -> dict:
    conn = sqlite3.connect(db)
    try:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("runs", "results", "attachments", "api_keys", "projects")}
    finally:
        conn.close()


def test_backup_and_restore_round_trip(api, tmp_path):
    hashes = _fill(api)
    cfg = api.config
    report = create_backup(cfg.db_path, cfg.attachments_dir, tmp_path / "b.tar")
    assert report.attachments == len(hashes) and report.snapshots == 1
    with tarfile.open(tmp_path / "b.tar") as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
    assert names[0] == "manifest.json" and "qahub.db" in names
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("attachments/")) == sorted(hashes)
    assert manifest["attachments"] == len(hashes) and manifest["migrations"][0].startswith("0001_")
    # No staging folder or partial file is left behind.
    assert not list(cfg.data_dir.glob(".backup-*")) and not list(tmp_path.glob(".*partial"))

    target = load_config(write_config(tmp_path / "elsewhere"), environ={})
    restored = restore_backup(tmp_path / "b.tar", target.db_path, target.attachments_dir)
    assert restored.previous_data is None and restored.attachments == len(hashes)
    assert _rows(target.db_path) == _rows(cfg.db_path)
    for sha in hashes:
        assert hashlib.sha256((target.attachments_dir / sha[:2] / sha).read_bytes()).hexdigest() == sha
    assert sqlite3.connect(target.db_path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_compressed_archive_by_name(api, tmp_path):
    _fill(api, runs=1, attachments=1)
    report = create_backup(api.config.db_path, api.config.attachments_dir, tmp_path / "b.tar.gz")
    assert (tmp_path / "b.tar.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert report.bytes < report.database_bytes  # an SQLite file compresses well
    target = load_config(write_config(tmp_path / "t"), environ={})
    restore_backup(tmp_path / "b.tar.gz", target.db_path, target.attachments_dir)
    assert _rows(target.db_path)["results"] == 20


def test_restore_moves_current_data_aside(api, tmp_path):
    _fill(api, runs=1)
    cfg = api.config
    create_backup(cfg.db_path, cfg.attachments_dir, tmp_path / "b.tar")
    target = load_config(write_config(tmp_path / "t"), environ={})
    client, _ = make_api(target)
    with client:  # a different, live-looking data folder with its own data
        pass
    before = _rows(target.db_path)
    report = restore_backup(tmp_path / "b.tar", target.db_path, target.attachments_dir)
    kept = Path(report.previous_data)
    assert kept.parent == target.data_dir and kept.name.startswith("pre-restore-")
    assert _rows(kept / "qahub.db") == before
    assert _rows(target.db_path) == _rows(cfg.db_path)


def test_a_snapshot_is_taken_again_when_the_server_deletes_files_meanwhile(api, tmp_path, monkeypatch):
    """The race the design allows: a row in the snapshot whose attachment the server deletes
    (row, then file) before the files are staged. The backup must not ship a row without its
    file; it takes a new snapshot that no longer has the row."""
    hashes = _fill(api, runs=1, attachments=2)
    cfg = api.config
    victim = hashes[0]
    real_stage = backups._stage_files
    calls = []

    def stage_after_a_delete(snapshot, attachments_dir, staging):
        if not calls:
            conn = sqlite3.connect(cfg.db_path)
            conn.execute("DELETE FROM attachments WHERE sha256 = ?", (victim,))
            conn.commit()
            conn.close()
            (cfg.attachments_dir / victim[:2] / victim).unlink()
        calls.append(snapshot)
        return real_stage(snapshot, attachments_dir, staging)

    monkeypatch.setattr(backups, "_stage_files", stage_after_a_delete)
    report = create_backup(cfg.db_path, cfg.attachments_dir, tmp_path / "b.tar")
    assert report.snapshots == 2 and report.attachments == 1
    target = load_config(write_config(tmp_path / "t"), environ={})
    restore_backup(tmp_path / "b.tar", target.db_path, target.attachments_dir)
    conn = sqlite3.connect(target.db_path)
    assert [r[0] for r in conn.execute("SELECT sha256 FROM attachments")] == [hashes[1]]


def test_backup_of_a_busy_database_is_one_consistent_state(api, tmp_path):
    """Ingests keep committing while the backup runs; every run in the snapshot has exactly
    the results its counts say (a half-applied transaction would break that)."""
    project = api.project("Busy")
    stop = threading.Event()

    def ingest_until_stopped():
        while not stop.is_set():
            body = {"project_id": project["id"],
                    "results": [{"title": f"t{i}", "status": "FAILED" if i % 3 else "PASSED"} for i in range(200)]}
            assert api.post("/api/v1/ingest", body).status_code == 201

    worker = threading.Thread(target=ingest_until_stopped)
    worker.start()
    try:
        # Back up once the first ingest has committed (a fixed pause was too short on a loaded
        # machine, and the backup then held no run at all), while the next ones are being written.
        deadline = time.monotonic() + 30
        while not api.get(f"/api/v1/runs?project_id={project['id']}").json()["data"] and time.monotonic() < deadline:
            time.sleep(0.02)
        create_backup(api.config.db_path, api.config.attachments_dir, tmp_path / "b.tar")
    finally:
        stop.set()
        worker.join()
    target = load_config(write_config(tmp_path / "t"), environ={})
    restore_backup(tmp_path / "b.tar", target.db_path, target.attachments_dir)
    conn = sqlite3.connect(target.db_path)
    runs = conn.execute(
        "SELECT r.total, r.passed, r.failed, (SELECT count(*) FROM results x WHERE x.run_id = r.id) FROM runs r"
    ).fetchall()
    assert runs, "the backup caught no run at all"
    assert all(total == counted == 200 and passed + failed == 200 for total, passed, failed, counted in runs)


class _CancelAfter(threading.Event):
    """A cancel flag that turns itself on after it has been looked at `n` times, so that a
    cancel lands at every step of a backup in turn (VACUUM INTO, hashing, archiving)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def is_set(self) -> bool:
        self.n -= 1
        return self.n < 0


@pytest.mark.parametrize("looks", [0, 3, 30, 300, 3000])
def test_a_cancelled_backup_leaves_no_file_behind(api, tmp_path, looks):
    _fill(api, runs=1, attachments=3)
    out = tmp_path / "out"
    out.mkdir()
    try:
        create_backup(api.config.db_path, api.config.attachments_dir, out / "b.tar", cancel=_CancelAfter(looks))
    except Cancelled:
        assert list(out.iterdir()) == []
    else:  # the cancel came after the last look: the backup is whole
        assert [p.name for p in out.iterdir()] == ["b.tar"]
        tarfile.open(out / "b.tar").getmember("qahub.db")
    assert not list(api.config.data_dir.glob(".backup-*"))


def test_backup_refuses_to_overwrite(api, tmp_path):
    (tmp_path / "b.tar").write_bytes(b"precious")
    with pytest.raises(BackupError, match="exists already"):
        create_backup(api.config.db_path, api.config.attachments_dir, tmp_path / "b.tar")
    assert (tmp_path / "b.tar").read_bytes() == b"precious"


def _rewrite(src: Path, dest: Path, change) -> None:
    """Copy archive `src` to `dest`, passing each (TarInfo, bytes) through `change`, which
    returns a list of (TarInfo, bytes) to write instead."""
    with tarfile.open(src) as tar, tarfile.open(dest, "w") as out:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()
            for info, body in change(member, data):
                info.size = len(body)
                out.addfile(info, io.BytesIO(body))


def _member(name: str, body: bytes = b"x", kind: bytes = tarfile.REGTYPE) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    if kind == tarfile.SYMTYPE:
        info.linkname = "/etc/passwd"
        body = b""
    return info, body


@pytest.mark.parametrize("damage, message", [
    (lambda m, d: [(m, d[:-1] + b"!")] if m.name.startswith("attachments/") else [(m, d)], "is damaged"),
    (lambda m, d: [(m, d[:4096] + b"\0" + d[4097:])] if m.name == "qahub.db" else [(m, d)], "database is damaged"),
    (lambda m, d: [(m, d), _member("../escape.txt")] if m.name == "qahub.db" else [(m, d)], "unexpected member"),
    (lambda m, d: [(m, d), _member("attachments/zz/nothex")] if m.name == "qahub.db" else [(m, d)],
     "unexpected member"),
    (lambda m, d: [(m, d), _member("attachments/ab/ab" + "0" * 62, kind=tarfile.SYMTYPE)] if m.name == "qahub.db"
     else [(m, d)], "only plain files"),
    (lambda m, d: [] if m.name.startswith("attachments/") else [(m, d)], "attachment files"),
    (lambda m, d: [(m, json.dumps({**json.loads(d), "format": 99}).encode())] if m.name == "manifest.json"
     else [(m, d)], "newer qahub-lite"),
    (lambda m, d: [] if m.name == "manifest.json" else [(m, d)], "not a qahub backup"),
])
def test_restore_refuses_a_bad_archive_and_changes_nothing(api, tmp_path, damage, message):
    _fill(api, runs=1, attachments=1)
    cfg = api.config
    create_backup(cfg.db_path, cfg.attachments_dir, tmp_path / "good.tar")
    _rewrite(tmp_path / "good.tar", tmp_path / "bad.tar", damage)
    target = load_config(write_config(tmp_path / "t"), environ={})
    target.data_dir.mkdir(parents=True)
    (target.data_dir / "qahub.db").write_bytes(b"current database")
    with pytest.raises(BackupError, match=message):
        restore_backup(tmp_path / "bad.tar", target.db_path, target.attachments_dir)
    assert sorted(p.name for p in target.data_dir.iterdir()) == ["qahub.db"]
    assert (target.data_dir / "qahub.db").read_bytes() == b"current database"


def test_restore_accepts_an_archive_repacked_with_folder_entries(api, tmp_path):
    _fill(api, runs=1, attachments=1)
    create_backup(api.config.db_path, api.config.attachments_dir, tmp_path / "b.tar")
    folder = tarfile.TarInfo("attachments")
    folder.type = tarfile.DIRTYPE
    _rewrite(tmp_path / "b.tar", tmp_path / "repacked.tar",
             lambda m, d: [(folder, b""), (m, d)] if m.name == "qahub.db" else [(m, d)])
    target = load_config(write_config(tmp_path / "t"), environ={})
    assert restore_backup(tmp_path / "repacked.tar", target.db_path, target.attachments_dir).attachments == 1


def test_restore_refuses_a_truncated_archive(api, tmp_path):
    _fill(api, runs=1, attachments=1)
    create_backup(api.config.db_path, api.config.attachments_dir, tmp_path / "b.tar")
    data = (tmp_path / "b.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 2])
    target = load_config(write_config(tmp_path / "t"), environ={})
    with pytest.raises(BackupError):
        restore_backup(tmp_path / "cut.tar", target.db_path, target.attachments_dir)
    assert not target.db_path.exists()


def test_restore_refuses_a_database_from_a_newer_version(api, tmp_path):
    cfg = api.config
    conn = sqlite3.connect(cfg.db_path)
    conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)")
    conn.commit()
    conn.close()
    create_backup(cfg.db_path, cfg.attachments_dir, tmp_path / "b.tar")
    target = load_config(write_config(tmp_path / "t"), environ={})
    with pytest.raises(BackupError, match="9999_future.sql"):
        restore_backup(tmp_path / "b.tar", target.db_path, target.attachments_dir)


def test_scheduled_backup_is_due_by_the_newest_file_and_keeps_the_newest(tmp_path):
    cfg = load_config(write_config(tmp_path, "[backup]\ninterval_minutes = 60\nkeep = 2\n"), environ={})
    client, _ = make_api(cfg)
    folder = cfg.backup_dir
    folder.mkdir(parents=True)
    now = time.time()
    old = [folder / backups.backup_name(now - hours * 3600) for hours in (30, 20, 10)]
    manual = folder / backups.backup_name(now - 40 * 3600, manual=True)
    for path in [*old, manual]:
        path.write_bytes(b"an older backup")
    with client:
        scheduler = client.app.state.services.scheduler
        assert scheduler.tasks["backup"].interval_s == 600  # looks every 10 minutes for a 60-minute interval
        outcome = client.blocking_portal.call(scheduler.run_once, "backup")
        assert outcome and "wrote" in outcome
        kept = sorted(p.name for p in folder.iterdir())
        newest = backups.scheduled_backups(folder)[0][1]
        assert kept == sorted([newest.name, old[2].name, manual.name])
        tarfile.open(newest).getmember("qahub.db")
        # Not due again until the newest scheduled backup is an interval old.
        assert client.blocking_portal.call(scheduler.run_once, "backup") is None
        assert len(list(folder.iterdir())) == 3


def test_scheduled_backups_can_be_turned_off(tmp_path):
    cfg = load_config(write_config(tmp_path, "[backup]\ninterval_minutes = 0\n"), environ={})
    client, _ = make_api(cfg)
    with client:
        assert "backup" not in client.app.state.services.scheduler.tasks


# --- PostgreSQL: pg_dump for the database, the archive for the attachments -----------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*qahub_command(), *args], check=False, capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "QAHUB_STORAGE_URL"})


def _pg_tool(command: str) -> list[str]:
    """A printed pg_dump/pg_restore command, run with the test cluster's own binaries."""
    from pgcluster import bindir

    argv = shlex.split(command)
    return [str(bindir() / argv[0]), *argv[1:]]


def test_backup_and_restore_on_postgresql_print_the_pg_commands_and_keep_the_attachments(pg_cluster, tmp_path):
    plain = pg_cluster.fresh_database()
    # A password in the URL (the test cluster trusts local connections, so any one works): it
    # must never be printed.
    url = plain.replace("qahub@", "qahub:s3cret-pw@")
    cfg_path = write_config(tmp_path / "pg", storage_url=url)
    config = load_config(cfg_path, environ={})
    client, boot = make_api(config)
    with client:
        fill = _fill(Api(client, config, boot.admin_key, boot.tenant_id), runs=2, attachments=2)
    archive = tmp_path / "backups" / "b.tar"
    done = _cli("backup", "--config", str(cfg_path), "--to", str(archive))
    assert done.returncode == 0, done.stderr
    assert "s3cret-pw" not in done.stdout + done.stderr
    assert "pg_dump --format=custom" in done.stdout and "pg_restore --clean" in done.stdout
    assert "password is left out" in done.stdout and "the attachments only, 4 files" in done.stdout
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest["engine"] == "postgresql" and "qahub.db" not in names
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("attachments/")) == sorted(fill)
    report = json.loads(_cli("backup", "--config", str(cfg_path), "--to", str(tmp_path / "b2.tar"), "--json").stdout)
    assert report["engine"] == "postgresql" and report["attachments"] == 4 and "s3cret" not in json.dumps(report)

    # The printed commands work as printed: dump, lose data, restore the dump and the archive.
    dump_cmd = next(line.strip() for line in done.stdout.splitlines() if line.strip().startswith("pg_dump "))
    subprocess.run(_pg_tool(dump_cmd), check=True, capture_output=True, timeout=120)
    with psycopg.connect(plain) as conn:
        runs_before = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        conn.execute("DELETE FROM runs")
    shutil.rmtree(config.attachments_dir)
    restored = _cli("restore", "--config", str(cfg_path), str(archive))
    assert restored.returncode == 0, restored.stderr
    assert "restored the attachments" in restored.stdout and "s3cret-pw" not in restored.stdout
    restore_cmd = next(line.strip() for line in restored.stdout.splitlines() if line.strip().startswith("pg_restore "))
    subprocess.run(_pg_tool(restore_cmd), check=True, capture_output=True, timeout=120)
    with psycopg.connect(plain) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == runs_before
    for sha in fill:
        assert hashlib.sha256((config.attachments_dir / sha[:2] / sha).read_bytes()).hexdigest() == sha
    checked = _cli("check", "--config", str(cfg_path))
    assert checked.returncode == 0 and checked.stdout.rstrip().endswith("OK"), checked.stdout

    # Archives of the other engine are refused with the way to go.
    sqlite_cfg = load_config(write_config(tmp_path / "lite"), environ={})
    with pytest.raises(BackupError, match="no database"):
        restore_backup(archive, sqlite_cfg.db_path, sqlite_cfg.attachments_dir)
