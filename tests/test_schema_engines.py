"""The two engines' migrations build the same schema: the same tables, columns (name, NOT NULL,
primary key), foreign keys (with their ON DELETE), unique keys and named indexes (columns,
uniqueness, partial or not). Types are spelled per engine and are not compared, except that
every column keeps its family (text, integer, real, bytes)."""

from __future__ import annotations

import sqlite3

import pytest

from qahub_lite.db import migrations
from qahub_lite.db.connection import open_writer

psycopg = pytest.importorskip("psycopg")

# Where the engines cannot say the same thing the same way, written down once, with why.
# SQLite's `username TEXT COLLATE NOCASE UNIQUE` is PostgreSQL's unique index on lower(username).
ENGINE_SPELLINGS = {("users", "unique", ("username",)): ("users", "index", "users_username")}

FAMILY_SQLITE = {"TEXT": "text", "INTEGER": "integer", "REAL": "real", "BLOB": "bytes"}
FAMILY_PG = {"text": "text", "bigint": "integer", "double precision": "real", "bytea": "bytes"}


def sqlite_schema(path) -> dict:
    conn = open_writer(path)
    migrations.apply_pending(conn)
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    schema = {"tables": set(tables), "columns": {}, "fks": set(), "uniques": set(), "indexes": {}}
    for table in tables:
        for cid, name, ctype, notnull, default, pk in conn.execute(f"PRAGMA table_info({table})"):
            schema["columns"][(table, name)] = (FAMILY_SQLITE[ctype.upper()], bool(notnull or pk), pk)
        fk_rows = conn.execute(f"PRAGMA foreign_key_list({table})").fetchall()
        by_id: dict[int, list] = {}
        for row in fk_rows:
            by_id.setdefault(row[0], []).append(row)
        for rows in by_id.values():
            rows.sort(key=lambda r: r[1])
            schema["fks"].add((table, tuple(r[3] for r in rows), rows[0][2], tuple(r[4] for r in rows),
                               rows[0][6].upper()))
        for _, index, unique, origin, partial in conn.execute(f"PRAGMA index_list({table})"):
            cols = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({index})"))
            if origin == "u":
                schema["uniques"].add((table, cols))
            elif origin == "c":
                schema["indexes"][index] = (table, cols, bool(unique), bool(partial))
    conn.close()
    return schema


def pg_schema(url: str) -> dict:
    with psycopg.connect(url) as conn:
        applied = migrations.apply_pending_postgresql(conn)
        assert applied, "no migration applied on an empty database"
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")]
        schema = {"tables": set(tables), "columns": {}, "fks": set(), "uniques": set(), "indexes": {}}
        pk_cols = {}
        for table, column, position in conn.execute("""
                SELECT tc.table_name, kcu.column_name, kcu.ordinal_position
                FROM information_schema.table_constraints tc
                JOIN information_schema.key_column_usage kcu USING (constraint_schema, constraint_name)
                WHERE tc.table_schema = 'public' AND tc.constraint_type = 'PRIMARY KEY'"""):
            pk_cols[(table, column)] = position
        for table, column, dtype, nullable in conn.execute("""
                SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns
                WHERE table_schema = 'public'"""):
            schema["columns"][(table, column)] = (FAMILY_PG[dtype], nullable == "NO", pk_cols.get((table, column), 0))
        for table, cols, ref_table, ref_cols, on_delete in conn.execute("""
                SELECT c.conrelid::regclass::text,
                       array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
                       c.confrelid::regclass::text,
                       array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i),
                       c.confdeltype
                FROM pg_constraint c WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace"""):
            action = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}[on_delete]
            schema["fks"].add((table, tuple(cols), ref_table, tuple(ref_cols), action))
        for table, cols in conn.execute("""
                SELECT c.conrelid::regclass::text,
                       array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i)
                FROM pg_constraint c WHERE c.contype = 'u' AND c.connamespace = 'public'::regnamespace"""):
            schema["uniques"].add((table, tuple(cols)))
        for index, table, cols, unique, partial in conn.execute("""
                SELECT i.relname, t.relname,
                       array(SELECT coalesce(a.attname, pg_get_indexdef(x.indexrelid, k.i::int, true))
                             FROM unnest(x.indkey) WITH ORDINALITY k(n, i)
                             LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n ORDER BY k.i),
                       x.indisunique, x.indpred IS NOT NULL
                FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
                JOIN pg_namespace s ON s.oid = t.relnamespace
                WHERE s.nspname = 'public' AND NOT x.indisprimary
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"""):
            schema["indexes"][index] = (table, tuple(cols), unique, partial)
    return schema


@pytest.fixture(scope="module")
def cluster():
    from pgcluster import Cluster, ClusterUnavailable

    try:
        c = Cluster().start()
    except ClusterUnavailable as exc:  # `make test` installs it when it may (root with apt-get)
        pytest.skip(str(exc))
    yield c
    c.stop()


def test_both_engines_build_the_same_schema(tmp_path, cluster):
    lite = sqlite_schema(tmp_path / "q.db")
    pg = pg_schema(cluster.create_database("schema_check"))

    assert lite["tables"] == pg["tables"]
    assert lite["columns"] == pg["columns"]
    assert lite["fks"] == pg["fks"]
    for (table, kind, cols), (pg_table, _, pg_index) in ENGINE_SPELLINGS.items():
        lite["uniques"].discard((table, cols))
        assert pg["indexes"].pop(pg_index)[0] == pg_table
    assert lite["uniques"] == pg["uniques"]
    assert lite["indexes"] == pg["indexes"]


def test_postgresql_migrations_are_recorded_and_not_applied_twice(cluster):
    url = cluster.create_database("migrate_twice")
    with psycopg.connect(url) as conn:
        first = migrations.apply_pending_postgresql(conn)
        again = migrations.apply_pending_postgresql(conn)
        recorded = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY version")]
    assert first == recorded == [name for _, name, _ in migrations.available("postgresql")]
    assert again == []
    assert [n for _, n, _ in migrations.available("sqlite")] == recorded


def test_a_failing_postgresql_migration_leaves_nothing_half_done(cluster, monkeypatch):
    url = cluster.create_database("migrate_fail")
    real = migrations.available

    def broken(engine="sqlite"):
        found = real(engine)
        version, name, sql = found[0]
        return [(version, name, sql + "\nCREATE TABLE tenants (id TEXT);")] + found[1:]

    monkeypatch.setattr(migrations, "available", broken)
    with psycopg.connect(url) as conn:
        with pytest.raises(psycopg.errors.DuplicateTable):
            migrations.apply_pending_postgresql(conn)
        conn.rollback()
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert tables == {"schema_migrations"}
