"""The storage layer on both engines: the same Database (writer with group commit, read-only
readers), the same errors, and PostgreSQL's spelling of SQLite's statements (db/postgresql.py)."""

from __future__ import annotations

import asyncio

import pytest

from qahub_lite.config import load_config
from qahub_lite.db import engine as engines
from qahub_lite.db.database import Database, direct_connection
from qahub_lite.db.errors import ConstraintFailed, Duplicate, OutOfRange, StorageError, StorageFailed

pytestmark = pytest.mark.engines


def _database(config) -> Database:
    return Database(engines.from_config(config), readers=2, max_group=64)


def _run(coro):
    return asyncio.run(coro)


def test_writes_commit_together_and_a_failing_operation_is_rolled_back_alone(config):
    async def main():
        db = _database(config)
        await db.open()
        try:
            await db.write(lambda c: c.execute("CREATE TABLE t (v BIGINT UNIQUE)"))

            def put(conn, value):
                conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
                return value

            # Queued together: one transaction; the duplicate's savepoint alone is rolled back.
            outcomes = await asyncio.gather(*(db.write(put, v) for v in (1, 2, 2, 3)), return_exceptions=True)
            assert outcomes[:2] == [1, 2] and outcomes[3] == 3
            assert isinstance(outcomes[2], Duplicate)
            assert await db.read(lambda c: [r[0] for r in c.execute("SELECT v FROM t ORDER BY v")]) == [1, 2, 3]
            # A row read by name and by position, as sqlite3.Row.
            row = await db.read(lambda c: c.execute("SELECT v, v + 1 AS w FROM t WHERE v = ?", (3,)).fetchone())
            assert (row["v"], row["w"], row[0], tuple(row)) == (3, 4, 3, (3, 4))
        finally:
            await db.close()

    _run(main())


def test_readers_cannot_write(config):
    async def main():
        db = _database(config)
        await db.open()
        try:
            with pytest.raises(StorageError):
                await db.read(lambda c: c.execute("CREATE TABLE nope (a BIGINT)"))
        finally:
            await db.close()

    _run(main())


def test_driver_errors_become_storage_errors(config):
    from qahub_lite.bootstrap import ensure_initialized

    ensure_initialized(config)
    with direct_connection(config) as conn:
        conn.execute("CREATE TABLE numbers (v BIGINT)")
    with pytest.raises(OutOfRange):
        with direct_connection(config) as conn:
            conn.execute("INSERT INTO numbers (v) VALUES (?)", (2**70,))
    with pytest.raises(ConstraintFailed):
        with direct_connection(config) as conn:
            conn.execute("INSERT INTO projects (id, tenant_id, name, slug, created_at, updated_at) "
                         "VALUES ('p', 'no such tenant', 'n', 's', 0, 0)")


def test_insert_or_ignore_and_null_safe_comparisons_mean_the_same_on_both(config):
    with direct_connection(config) as conn:
        conn.execute("CREATE TABLE pairs (a TEXT, b TEXT, n BIGINT, UNIQUE (a))")
        conn.execute("INSERT OR IGNORE INTO pairs (a, b, n) VALUES (?, ?, 1)", ("x", None))
        conn.execute("INSERT OR IGNORE INTO pairs (a, b) VALUES (?, ?)", ("x", "dropped"))
        conn.execute("INSERT INTO pairs (a, b, n) VALUES (?, ?, 1)", ("y", "50%"))
        assert [r[0] for r in conn.execute("SELECT a FROM pairs WHERE b IS ?", (None,))] == ["x"]
        assert [r[0] for r in conn.execute("SELECT a FROM pairs WHERE b IS NOT ?", (None,))] == ["y"]
        assert [r[0] for r in conn.execute("SELECT a FROM pairs WHERE b LIKE '%\\%' ESCAPE '\\'")] == ["y"]
        assert conn.execute("SELECT total(n) FROM pairs").fetchone()[0] == 2.0
        assert conn.execute("SELECT sum(n) FROM pairs").fetchone()[0] == 2  # an int, never a Decimal


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_a_lost_connection_fails_one_write_and_the_next_one_reconnects(config):
    """A PostgreSQL restart or failover drops the writer's connection: the write that finds it
    gone fails as a storage error (nothing acknowledged is lost), the next one works."""
    import psycopg

    async def main():
        db = _database(config)
        await db.open()
        try:
            await db.write(lambda c: c.execute("CREATE TABLE t (v BIGINT)"))
            with psycopg.connect(config.storage.url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE application_name = 'qahub-lite' AND pid != pg_backend_pid()")
            with pytest.raises(StorageFailed):
                await db.write(lambda c: c.execute("INSERT INTO t (v) VALUES (1)"))
            await db.write(lambda c: c.execute("INSERT INTO t (v) VALUES (2)"))
            assert await db.read(lambda c: [r[0] for r in c.execute("SELECT v FROM t")]) == [2]
        finally:
            await db.close()

    _run(main())


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_write_transactions_of_two_nodes_run_one_at_a_time(config):
    """Every write transaction takes the write lock first (engine.py): a second node's write
    waits for the first one's commit instead of interleaving with it."""
    import threading
    import time

    first, second = engines.from_config(config), engines.from_config(config)
    a, b = first.open_writer(), second.open_writer()
    try:
        first.begin_write(a)
        a.execute("CREATE TABLE t (v BIGINT)")
        entered = threading.Event()

        def other():
            second.begin_write(b)
            entered.set()
            b.execute("INSERT INTO t (v) VALUES (2)")
            b.execute("COMMIT")

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.3)
        assert not entered.is_set()  # held at the lock while the first transaction runs
        a.execute("INSERT INTO t (v) VALUES (1)")
        a.execute("COMMIT")
        thread.join(5)
        assert entered.is_set()
        assert [r[0] for r in a.execute("SELECT v FROM t ORDER BY v")] == [1, 2]
    finally:
        a.close()
        b.close()


def test_the_storage_url_is_checked_and_never_printed_with_its_password(tmp_path):
    from qahub_lite.config import ConfigError
    from qahub_lite.db.postgresql import redact

    (tmp_path / "qahub.toml").write_text('[storage]\nurl = "mysql://root@db/qahub"\n')
    with pytest.raises(ConfigError, match="url"):
        load_config(tmp_path / "qahub.toml", environ={})
    config = load_config(tmp_path / "qahub.toml", environ={"QAHUB_STORAGE_URL": "postgresql://qa:s3cret@db:5432/hub"})
    assert config.storage.url == "postgresql://qa:s3cret@db:5432/hub"
    described = engines.from_config(config).describe()
    assert "s3cret" not in described and described == redact(config.storage.url) == "postgresql://qa:***@db:5432/hub"


@pytest.mark.parametrize(("sqlite", "postgresql"), [
    ("SELECT a FROM t WHERE b = ? AND c IS ?", "SELECT a FROM t WHERE b = %s AND c IS NOT DISTINCT FROM %s"),
    ("SELECT a FROM t WHERE c IS NOT ?", "SELECT a FROM t WHERE c IS DISTINCT FROM %s"),
    ("SELECT 'a?b', '50%' FROM t WHERE x LIKE ?", "SELECT 'a?b', '50%%' FROM t WHERE x LIKE %s"),
    ("INSERT OR IGNORE INTO t (a) VALUES (?)", "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING"),
    ("INSERT OR IGNORE INTO t (a) VALUES (?) RETURNING id", "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING RETURNING id"),
    ("SELECT id FROM results INDEXED BY results_x WHERE a = ?", "SELECT id FROM results WHERE a = %s"),
    ("SELECT 1 FROM runs u CROSS JOIN results r ON r.run_id = u.id", "SELECT 1 FROM runs u JOIN results r ON r.run_id = u.id"),
    ("SELECT total(x), total(r.y) FROM t", "SELECT COALESCE(SUM(x), 0)::float8, COALESCE(SUM(r.y), 0)::float8 FROM t"),
])
def test_postgresql_spells_sqlite_statements_its_own_way(sqlite, postgresql):
    psycopg = pytest.importorskip("psycopg")  # noqa: F841 - postgresql.py needs the driver
    from qahub_lite.db.postgresql import translate_sql

    assert translate_sql(sqlite) == postgresql


def test_numbered_parameters_are_refused_as_not_portable():
    pytest.importorskip("psycopg")
    from qahub_lite.db.postgresql import translate_sql

    with pytest.raises(ValueError, match="numbered"):
        translate_sql("SELECT 1 FROM runs WHERE id = ?1 OR short_id = ?1")
