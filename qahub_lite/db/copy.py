"""Copying a hub's database into another engine's database (`qahub copy`): SQLite to PostgreSQL
when a team outgrows one machine, PostgreSQL to SQLite the other way.

What it guarantees:

- One consistent source. The source may be a live server's hub: it is read in one snapshot (on
  SQLite one read transaction, which in WAL mode never blocks the server's writer; on PostgreSQL
  one REPEATABLE READ, READ ONLY transaction). Rows a server commits meanwhile are not copied,
  and nothing half-written is.
- All or nothing on the target. The target is migrated first (its engine's own migrations, so its
  schema is the one this version would create), then every row is written in ONE transaction:
  a failure part-way leaves it empty (and migrated), so the command can simply be run again.
- Order without a hand-kept list. Tables are written parents first, in the order of the foreign
  keys the target's schema declares (a topological sort), so each engine checks every key as
  rows arrive; nothing is disabled. A key that points into its own table (a suite's parent, a
  signature merged into another) cannot be ordered that way: such nullable columns are written
  as NULL first and set once the whole table is in.
- Identities continue. On PostgreSQL every identity column's sequence is set past the copied
  maximum, so the next ingest on the copy gets new ids (SQLite's rowid keys do that by themselves).
- Counts checked. Before the commit, every table's row count on the target is compared with the
  source snapshot's; any difference is an error and nothing is committed.

Refused: a target with any row in any table (a copy merges nothing), and the source itself.
Attachment files are not in the database and are not copied: they stay in the data folder.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from . import migrations
from .engine import PostgresqlEngine, SqliteEngine

BATCH_ROWS = 5000
# Kept by each engine's migrations themselves: the target's migrate() writes its own records.
_MIGRATIONS_TABLE = "schema_migrations"
# What running nodes keep to coordinate, not the hub's data: rate-limit windows, task leases and
# the key-change counter (migrations 0011, 0012). The target starts with its own (a counter row
# its migration made, no windows, no leases); they are neither copied nor counted as rows.
NOT_COPIED = frozenset({_MIGRATIONS_TABLE, "rate_limit_hits", "rate_limit_windows", "key_generation", "task_leases"})

ATTACHMENTS_NOTE = ("attachment files are not copied: they stay in the data folder, which the "
                    "new config's [storage] data_dir must name")


class CopyError(Exception):
    """The copy failed; the message says why. Nothing was committed to the target."""


class CopyRefused(CopyError):
    """The copy was not started: a non-empty target, the source itself, a source to migrate first."""


class TableCount(msgspec.Struct):
    table: str
    source: int  # rows in the source snapshot
    target: int  # rows on the target after the copy, counted before its commit


class CopyReport(msgspec.Struct):
    source: str
    target: str
    source_engine: str
    target_engine: str
    tables: list[TableCount]
    rows: int
    seconds: float
    identities: dict[str, int]  # "table.column" -> the next value its sequence hands out (PostgreSQL)
    attachments: str = ATTACHMENTS_NOTE


# (table, rows copied so far, rows in the table)
Progress = Callable[[str, int, int], None]


def target_engine(target: str, *, busy_timeout_ms: int = 5000):
    """The engine a `--to` value names: a PostgreSQL URL, or a path ending in .db (a SQLite file)."""
    if target.startswith(("postgresql://", "postgres://")):
        return PostgresqlEngine(target, busy_timeout_ms=busy_timeout_ms)
    if target.endswith(".db"):
        return SqliteEngine(Path(target).expanduser().resolve(), busy_timeout_ms=busy_timeout_ms)
    raise CopyRefused(f"--to {target!r}: give a postgresql://... URL or a SQLite file path ending in .db")


# --- the schema, read from each engine's catalog -----------------------------------------------


class Table(msgspec.Struct):
    name: str
    columns: list[str]
    nullable: set[str]
    primary_key: list[str]
    parents: list[tuple[str, str]]  # (column, referenced table) of each single-column foreign key
    identities: list[str] = []  # PostgreSQL identity columns


def _q(name: str) -> str:
    """An identifier quoted for both engines (names come from the catalog, never from input)."""
    return '"' + name.replace('"', '""') + '"'


def _is_pg(engine) -> bool:
    return engine.name == "postgresql"


def _tables(conn, engine) -> list[str]:
    if _is_pg(engine):
        sql = ("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
               "AND table_type = 'BASE TABLE' ORDER BY table_name")
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    return [row[0] for row in conn.execute(sql).fetchall()]


def _schema(conn, engine) -> dict[str, Table]:
    out: dict[str, Table] = {}
    if not _is_pg(engine):
        for name in _tables(conn, engine):
            info = conn.execute(f"PRAGMA table_info({_q(name)})").fetchall()
            keys = sorted((row[5], row[1]) for row in info if row[5])
            fks = conn.execute(f"PRAGMA foreign_key_list({_q(name)})").fetchall()
            out[name] = Table(
                name=name, columns=[row[1] for row in info],
                nullable={row[1] for row in info if not row[3] and not row[5]},
                primary_key=[column for _, column in keys],
                parents=[(row[3], row[2]) for row in fks],
            )
        return out
    for name in _tables(conn, engine):
        rows = conn.execute(
            "SELECT column_name, is_nullable, is_identity FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position", (name,)).fetchall()
        out[name] = Table(name=name, columns=[r[0] for r in rows], nullable={r[0] for r in rows if r[1] == "YES"},
                          primary_key=[], parents=[], identities=[r[0] for r in rows if r[2] == "YES"])
    constraints = conn.execute(
        "SELECT c.contype, c.conrelid::regclass::text, c.confrelid::regclass::text, "
        "array(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i) "
        "      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) "
        "FROM pg_constraint c WHERE c.contype IN ('p', 'f') AND c.connamespace = current_schema()::regnamespace"
    ).fetchall()
    for kind, table, referenced, columns in constraints:
        table = table.strip('"')
        if table not in out:
            continue
        if kind == "p":
            out[table].primary_key = list(columns)
        else:
            out[table].parents += [(column, referenced.strip('"')) for column in columns]
    return out


def plan(schema: dict[str, Table]) -> tuple[list[str], dict[str, list[str]]]:
    """The order to write the tables in (every table after the tables its foreign keys point at),
    and per table the nullable columns to write as NULL first and set afterwards: keys into the
    table itself, and (should the schema ever hold one) a key that closes a cycle between tables.
    Raises CopyError for a cycle through NOT NULL keys only, which no order can satisfy."""
    deferred: dict[str, list[str]] = {}
    needs: dict[str, dict[str, str]] = {}  # table -> {column: parent table}
    for table in schema.values():
        needs[table.name] = {}
        for column, parent in table.parents:
            if parent == table.name:
                deferred.setdefault(table.name, []).append(column)
            elif parent in schema:
                needs[table.name][column] = parent
    order: list[str] = []
    left = set(schema)
    while left:
        ready = sorted(t for t in left if all(p not in left for p in needs[t].values()))
        if not ready:
            # A cycle: break it at a nullable key (written later), deterministically.
            breakable = sorted((t, c) for t in left for c, p in needs[t].items()
                               if p in left and c in schema[t].nullable)
            if not breakable:
                raise CopyError(f"the foreign keys of {', '.join(sorted(left))} form a cycle through NOT NULL "
                                "columns: no order can copy them")
            table, column = breakable[0]
            del needs[table][column]
            deferred.setdefault(table, []).append(column)
            continue
        order += ready
        left -= set(ready)
    for table, columns in deferred.items():
        if not schema[table].primary_key:
            raise CopyError(f"{table} has keys into itself but no primary key to set them by")
        not_null = [c for c in columns if c not in schema[table].nullable]
        if not_null:
            raise CopyError(f"{table}.{not_null[0]} refers to its own table and may not be NULL: no order can copy it")
    return order, deferred


# --- the copy ----------------------------------------------------------------------------------


def same_database(source, target) -> bool:
    """Whether the two engines name one database (a copy onto itself would read what it writes)."""
    if source.name != target.name:
        return False
    if not _is_pg(source):
        return target.path.exists() and source.path.exists() and os.path.samefile(source.path, target.path)
    if source.url == target.url:
        return True
    # Different spellings (a host name and its address, a socket and TCP) of one server: the
    # postmaster's start time and port name one running cluster, the database name one database.
    ask = "SELECT current_database(), pg_postmaster_start_time()::text, current_setting('port')"
    ids = []
    for engine in (source, target):
        conn = engine.open_reader()
        try:
            ids.append(tuple(conn.execute(ask).fetchone()))
        finally:
            conn.close()
    return ids[0] == ids[1]


def _non_empty(conn, engine, tables) -> list[str]:
    return [t for t in tables
            if t not in NOT_COPIED and conn.execute(f"SELECT 1 FROM {_q(t)} LIMIT 1").fetchone() is not None]


def _refuse_non_empty(conn, engine, describe: str) -> None:
    full = _non_empty(conn, engine, _tables(conn, engine))
    if full:
        shown = ", ".join(full[:5]) + (f" and {len(full) - 5} more" if len(full) > 5 else "")
        raise CopyRefused(f"the target {describe} is not empty ({shown} hold rows): qahub copy only fills an "
                          "empty database; create a new one (or remove the file) and run it again")


def _check_target_empty(engine) -> None:
    """Before migrating anything: a target holding rows is refused untouched."""
    if not _is_pg(engine):
        if not engine.path.exists():
            return
        conn = sqlite3.connect(f"file:{engine.path}?mode=ro", uri=True)
        try:
            _refuse_non_empty(conn, engine, str(engine.path))
        except sqlite3.DatabaseError as exc:
            raise CopyRefused(f"the target {engine.path} exists and is not a SQLite database ({exc})") from None
        finally:
            conn.close()
        return
    conn = engine.open_reader()
    try:
        _refuse_non_empty(conn, engine, engine.describe())
    finally:
        conn.close()


def _begin_snapshot(conn, engine) -> None:
    if _is_pg(engine):
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    else:
        # A deferred transaction on a reader becomes one read transaction at its first SELECT:
        # every later statement sees that same commit (WAL keeps it while we read).
        conn.execute("BEGIN")
    # Take the snapshot now, so that it is the state when the copy started.
    conn.execute(f"SELECT count(*) FROM {_MIGRATIONS_TABLE}").fetchone()


def _source_migrations(conn, engine) -> None:
    """A copy carries this version's schema: the source must hold exactly its migrations."""
    done = {int(row[0]) for row in conn.execute(f"SELECT version FROM {_MIGRATIONS_TABLE}").fetchall()}
    known = {version: name for version, name, _ in migrations.available(engine.name)}
    unknown = sorted(done - set(known))
    if unknown:
        raise CopyRefused(f"the source was migrated by a newer qahub-lite (migrations {unknown} are unknown to this "
                          "one): copy it with that version")
    pending = [known[v] for v in sorted(set(known) - done)]
    if pending:
        raise CopyRefused(f"the source has pending migrations ({', '.join(pending)}): run `qahub migrate` on it "
                          "first (or start its server once), then copy")


def _rows(conn, engine, sql: str, batch: int):
    """The rows of `sql` in lists of at most `batch`, without holding a whole table in memory."""
    if _is_pg(engine):
        # A server-side cursor inside the snapshot's transaction: the server hands out one batch
        # at a time (a client-side cursor would fetch the whole table first).
        cursor = conn.raw.cursor(name=f"qahub_copy_{time.monotonic_ns()}")
        try:
            cursor.execute(sql)
            while rows := cursor.fetchmany(batch):
                yield rows
        finally:
            cursor.close()
        return
    cursor = conn.execute(sql)
    while rows := cursor.fetchmany(batch):
        yield [tuple(row) for row in rows]


def _write(conn, engine, table: str, columns: list[str], rows: list) -> None:
    names = ", ".join(_q(c) for c in columns)
    if _is_pg(engine):
        # COPY is PostgreSQL's bulk path: one round trip per batch, values adapted by psycopg.
        with conn.raw.cursor().copy(f"COPY {_q(table)} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" * len(columns))
    conn.executemany(f"INSERT INTO {_q(table)} ({names}) VALUES ({marks})", rows)


def copy_hub(source, target, *, batch_rows: int = BATCH_ROWS, progress: Progress | None = None) -> CopyReport:
    """Copy every row of `source`'s hub into `target` (engines of engine.py). Raises CopyRefused
    before anything is written, CopyError after (the target is then left empty)."""
    started = time.perf_counter()
    progress = progress or (lambda table, done, total: None)
    if batch_rows < 1:
        raise CopyRefused("the batch size must be at least 1 row")
    if not _is_pg(source) and not source.path.exists():
        raise CopyRefused(f"no database at {source.path}: nothing to copy")
    try:
        if same_database(source, target):
            raise CopyRefused(f"the target {target.describe()} is the source hub itself")
        _check_target_empty(target)
    except _driver_errors() as exc:
        raise CopyError(f"cannot open the databases: {_message(exc)}") from None
    created = not _is_pg(target) and not target.path.exists()
    try:
        return _copy(source, target, batch_rows, progress, started)
    except BaseException:
        if created:  # a SQLite file this copy made and did not fill: gone, as if never started
            for suffix in ("", "-wal", "-shm"):
                Path(f"{target.path}{suffix}").unlink(missing_ok=True)
        raise


def _driver_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    try:
        import psycopg

        errors += (psycopg.Error,)
    except ImportError:
        pass
    return errors


def _message(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _copy(source, target, batch_rows: int, progress: Progress, started: float) -> CopyReport:
    try:
        src = source.open_reader()
    except _driver_errors() as exc:
        raise CopyError(f"cannot open the source {source.describe()}: {_message(exc)}") from None
    try:
        try:
            _begin_snapshot(src, source)
            _source_migrations(src, source)
            target.migrate()
            dst = target.open_writer()
        except _driver_errors() as exc:
            raise CopyError(f"cannot prepare the copy: {_message(exc)}") from None
        try:
            target.begin_write(dst)
            try:
                report = _copy_tables(src, source, dst, target, batch_rows, progress)
                dst.execute("COMMIT")
            except BaseException:
                dst.execute("ROLLBACK")
                raise
        except _driver_errors() as exc:
            raise CopyError(f"the copy failed and nothing was committed to the target: {_message(exc)}") from None
        finally:
            dst.close()
    finally:
        try:
            src.execute("ROLLBACK")
        except _driver_errors():
            pass
        src.close()
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _copy_tables(src, source, dst, target, batch_rows: int, progress: Progress) -> CopyReport:
    schema = _schema(dst, target)
    # Checked again inside the write transaction: a target filled between the first look and now.
    _refuse_non_empty(dst, target, target.describe())
    source_tables = {t.name: t for t in _schema(src, source).values()}
    tables = sorted(set(schema) - NOT_COPIED)
    if set(source_tables) - NOT_COPIED != set(tables):
        extra = sorted(set(source_tables) - set(schema))
        missing = sorted(set(tables) - set(source_tables))
        raise CopyRefused(f"the source's tables differ from this version's schema (only in the source: {extra}, "
                          f"only in the target: {missing})")
    for name in tables:
        if set(source_tables[name].columns) != set(schema[name].columns):
            raise CopyRefused(f"the source's table {name} has columns {sorted(source_tables[name].columns)}, this "
                              f"version's has {sorted(schema[name].columns)}")
    order, deferred = plan({name: schema[name] for name in tables})
    totals = {name: int(src.execute(f"SELECT count(*) FROM {_q(name)}").fetchone()[0]) for name in order}
    copied: dict[str, int] = {}
    for name in order:
        table = schema[name]
        later = deferred.get(name, [])
        columns = table.columns
        select = ", ".join("NULL" if c in later else _q(c) for c in columns)
        # Ordered by the primary key: a stable order, and the order an index gives cheaply.
        order_by = ", ".join(_q(c) for c in table.primary_key) or "1"
        done = 0
        progress(name, 0, totals[name])
        for rows in _rows(src, source, f"SELECT {select} FROM {_q(name)} ORDER BY {order_by}", batch_rows):
            _write(dst, target, name, columns, rows)
            done += len(rows)
            progress(name, done, totals[name])
        copied[name] = done
    for name, columns in deferred.items():
        keys = schema[name].primary_key
        for column in columns:
            where = " AND ".join(f"{_q(k)} = ?" for k in keys)
            sql = f"UPDATE {_q(name)} SET {_q(column)} = ? WHERE {where}"
            for rows in _rows(src, source, f"SELECT {_q(column)}, {', '.join(_q(k) for k in keys)} FROM {_q(name)} "
                              f"WHERE {_q(column)} IS NOT NULL", batch_rows):
                dst.executemany(sql, rows)
    identities = _continue_identities(dst, target, schema, order)
    counts = []
    for name in order:
        landed = int(dst.execute(f"SELECT count(*) FROM {_q(name)}").fetchone()[0])
        counts.append(TableCount(name, totals[name], landed))
    wrong = [c for c in counts if c.source != c.target or copied[c.table] != c.source]
    if wrong:
        raise CopyError("row counts differ after the copy, so nothing was committed: " + "; ".join(
            f"{c.table}: source {c.source}, copied {copied[c.table]}, target {c.target}" for c in wrong))
    return CopyReport(
        source=source.describe(), target=target.describe(), source_engine=source.name, target_engine=target.name,
        tables=counts, rows=sum(c.target for c in counts), seconds=0.0, identities=identities,
    )


def _continue_identities(dst, target, schema: dict[str, Table], order: list[str]) -> dict[str, int]:
    """PostgreSQL: each identity's sequence continues after the copied maximum (rows arrived with
    their ids, which does not advance a sequence). SQLite's rowid keys need nothing."""
    if not _is_pg(target):
        return {}
    out = {}
    for name in order:
        for column in schema[name].identities:
            (next_value,) = dst.execute(
                f"SELECT setval(pg_get_serial_sequence(?, ?), coalesce(max({_q(column)}), 0) + 1, false) "
                f"FROM {_q(name)}", (_q(name), column)).fetchone()
            out[f"{name}.{column}"] = int(next_value)
    return out
