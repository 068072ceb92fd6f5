"""Storage: migrations, PRAGMAs, the single writer with group commit, read-only readers."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from qahub_lite.db import migrations
from qahub_lite.db.connection import open_writer
from qahub_lite.db.database import Database, direct_connection, migrate
from qahub_lite.db.engine import SqliteEngine
from qahub_lite.db.errors import (
    ConstraintFailed, Duplicate, OutOfRange, StorageError, StorageFailed, StorageFull, translate,
)


def test_migrations_are_recorded_and_forward_only(tmp_path):
    path = tmp_path / "q.db"
    applied = migrate(path)
    assert applied and applied[0].startswith("0001_")
    assert migrate(path) == []  # nothing twice
    conn = sqlite3.connect(path)
    recorded = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY version")]
    assert recorded == [name for _, name, _ in migrations.available()]
    strict = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'results'").fetchone()[0]
    assert "STRICT" in strict


def test_a_failing_migration_leaves_no_trace(tmp_path, monkeypatch):
    path = tmp_path / "q.db"
    migrate(path)
    real = migrations.available()
    broken = (9999, "9999_broken.sql", "CREATE TABLE half (a INTEGER) STRICT;\nTHIS IS NOT SQL;")
    monkeypatch.setattr(migrations, "available", lambda: [*real, broken])
    conn = open_writer(path)
    with pytest.raises(sqlite3.Error):
        migrations.apply_pending(conn)
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'half'").fetchone() is None
    assert 9999 not in migrations.applied(conn)


def test_pragmas(tmp_path):
    conn = open_writer(tmp_path / "q.db", busy_timeout_ms=1234, synchronous="FULL")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def _db(tmp_path) -> Database:
    return Database(SqliteEngine(tmp_path / "q.db"), readers=2, max_group=64)


def test_group_commit_and_per_operation_savepoints(tmp_path):
    async def main():
        db = _db(tmp_path)
        await db.open()
        await db.write(lambda c: c.execute("CREATE TABLE t (v INTEGER UNIQUE) STRICT"))

        def insert(conn, v):
            conn.execute("INSERT INTO t VALUES (?)", (v,))
            return v

        # 200 concurrent writes, one of them a duplicate that fails on its own.
        ops = [db.write(insert, i) for i in range(200)] + [db.write(insert, 5)]
        outcomes = await asyncio.gather(*ops, return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, Exception)]
        assert len(failures) == 1 and isinstance(failures[0], Duplicate)
        rows = await db.read(lambda conn: conn.execute("SELECT count(*) FROM t").fetchall())
        assert rows[0][0] == 200
        stats = db.writer.stats
        assert stats.operations >= 201
        assert stats.commits < stats.operations  # writes shared transactions
        await db.close()

    asyncio.run(main())


def test_readers_cannot_write(tmp_path):
    async def main():
        db = _db(tmp_path)
        await db.open()
        with pytest.raises(StorageError):
            await db.read(lambda conn: conn.execute("CREATE TABLE nope (a INTEGER)"))
        await db.close()

    asyncio.run(main())


def test_driver_errors_leave_the_storage_layer_as_storage_errors(tmp_path):
    """Callers see Duplicate, OutOfRange, StorageFull..., never the driver's exceptions; the
    driver's error stays on __cause__ for the log."""

    async def main():
        db = _db(tmp_path)
        await db.open()
        await db.write(lambda c: c.execute("CREATE TABLE t (v INTEGER UNIQUE, w INTEGER CHECK (w > 0)) STRICT"))
        await db.write(lambda c: c.execute("INSERT INTO t VALUES (1, 1)"))
        with pytest.raises(Duplicate) as duplicate:
            await db.write(lambda c: c.execute("INSERT INTO t VALUES (1, 1)"))
        assert isinstance(duplicate.value.__cause__, sqlite3.IntegrityError)
        with pytest.raises(ConstraintFailed) as refused:
            await db.write(lambda c: c.execute("INSERT INTO t VALUES (2, 0)"))
        assert not isinstance(refused.value, Duplicate)
        with pytest.raises(OutOfRange):
            await db.write(lambda c: c.execute("INSERT INTO t VALUES (?, 1)", (2**63,)))
        with pytest.raises(OutOfRange):
            await db.read(lambda c: c.execute("SELECT * FROM t WHERE v = ?", (-(2**63) - 1,)).fetchall())
        with pytest.raises(OutOfRange):
            await db.read(lambda c: c.execute("SELECT * FROM t WHERE v = ?", (10**30,)).fetchall())

        def fill(conn):
            # A database allowed no more pages than it has: SQLite answers SQLITE_FULL, as on a full disk.
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")
            conn.executemany("INSERT INTO t VALUES (?, 1)", ((i, ) for i in range(10, 50_000)))

        with pytest.raises(StorageFull):
            await db.write(fill)
        assert (await db.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0])) == 1
        await db.close()

    asyncio.run(main())
    with pytest.raises(Duplicate):
        with direct_connection(tmp_path / "q.db") as conn:
            conn.execute("INSERT INTO t VALUES (1, 1)")


def test_an_io_error_is_storage_failed_and_other_errors_pass_unchanged():
    io = sqlite3.OperationalError("disk I/O error")
    io.sqlite_errorcode = 10 | (3 << 8)  # SQLITE_IOERR_WRITE
    assert isinstance(translate(io), StorageFailed) and translate(io).__cause__ is io
    full = sqlite3.OperationalError("database or disk is full")  # raised without a result code
    assert isinstance(translate(full), StorageFull)
    plain = ValueError("not the driver's")
    assert translate(plain) is plain
    assert isinstance(translate(sqlite3.OperationalError("no such table: x")), StorageError)


def test_stop_drains_queued_writes(tmp_path):
    async def main():
        db = _db(tmp_path)
        await db.open()
        await db.write(lambda c: c.execute("CREATE TABLE t (v INTEGER) STRICT"))
        pending = [asyncio.ensure_future(db.write(lambda c, v=v: c.execute("INSERT INTO t VALUES (?)", (v,))))
                   for v in range(50)]
        await asyncio.sleep(0)
        db.readers.close()
        db.writer.stop()
        await asyncio.gather(*pending)
        conn = sqlite3.connect(tmp_path / "q.db")
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 50

    asyncio.run(main())


def _mode(path) -> int:
    import stat

    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_folder_and_database_files_are_private_to_their_owner(tmp_path):
    """The database holds every tenant's data and webhook secrets: 0700 folder, 0600 files,
    whatever the umask (022 makes files 0644)."""
    import os
    import subprocess

    from conftest import qahub_command, write_config

    from qahub_lite.bootstrap import ensure_initialized
    from qahub_lite.config import load_config
    from qahub_lite.db.datalock import DataFolderLock

    old = os.umask(0o022)
    try:
        config = load_config(write_config(tmp_path / "new"), environ={})
        lock = DataFolderLock(config.data_dir)
        lock.acquire("test")
        ensure_initialized(config)
        with open_writer(config.db_path) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER) STRICT")  # makes -wal and -shm exist
            assert {_mode(config.data_dir), _mode(config.attachments_dir)} == {0o700}
            for name in ("qahub.db", "qahub.db-wal", "qahub.db-shm", "qahub.lock"):
                assert _mode(config.data_dir / name) == 0o600, name
        lock.release()

        # A data folder made by an older version (0755, database 0644) is tightened at start.
        older = load_config(write_config(tmp_path / "old"), environ={})
        older.data_dir.mkdir(parents=True, mode=0o755)
        sqlite3.connect(older.db_path).close()
        os.chmod(older.db_path, 0o644)
        subprocess.run([*qahub_command(), "keys", "list", "--config", str(tmp_path / "old" / "qahub.toml")],
                       check=True, capture_output=True)
        assert _mode(older.data_dir) == 0o700 and _mode(older.db_path) == 0o600
    finally:
        os.umask(old)
