"""`qahub check`: is the storage sound? Integrity of the database, attachment files against
their rows (db/orphans.py), and the SQLite features the code relies on. On PostgreSQL: the
server's version, the migrations applied and pending, and the same attachment checks (the
server guards its own files' integrity; `amcheck` is an administrator's tool, not ours)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from . import migrations, orphans
from .connection import MIN_SQLITE
from .errors import StorageError


class CheckReport(msgspec.Struct):
    ok: bool
    sqlite_version: str
    features: dict[str, bool]
    integrity: list[str]
    pending_migrations: list[str]
    files_without_rows: list[str]
    rows_without_files: list[str]
    problems: list[str]
    # Files in attachments/tmp/ untouched for a minute: uploads a crash cut short.
    upload_leftovers: list[str] = []
    engine: str = "sqlite"
    server_version: str = ""  # PostgreSQL's
    applied_migrations: list[str] = []


# PostgreSQL releases the schema and the SQL were written for (identity columns, ON CONFLICT,
# FOR UPDATE SKIP LOCKED, and CI's release); older ones are reported as a problem.
MIN_POSTGRESQL = 12


def check_engine(engine, attachments_dir: Path) -> CheckReport:
    """`run_check` for any engine of engine.py."""
    if engine.name == "sqlite":
        return run_check(engine.path, attachments_dir)
    return _check_postgresql(engine, attachments_dir)


def _check_postgresql(engine, attachments_dir: Path) -> CheckReport:
    try:
        conn = engine.open_reader()
    except StorageError as exc:  # the message is the finding (engine.py translates the driver's)
        return CheckReport(False, "", {}, [], [], [], [], [
            f"cannot connect to {engine.describe()}: {' '.join(str(exc).split())}"], engine="postgresql")
    problems: list[str] = []
    try:
        version = str(conn.execute("SHOW server_version").fetchone()[0])
        number = int(conn.execute("SHOW server_version_num").fetchone()[0])
        if number < MIN_POSTGRESQL * 10000:
            problems.append(f"PostgreSQL {version} is older than {MIN_POSTGRESQL}")
        has_table = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_name IN ('schema_migrations', 'attachments')").fetchone()[0]
        done = {int(r[0]): str(r[1]) for r in conn.execute("SELECT version, name FROM schema_migrations")} if (
            has_table == 2) else {}
        known = {v for v, _, _ in migrations.available("postgresql")}
        pending = [name for version, name, _ in migrations.available("postgresql") if version not in done]
        unknown = [name for version, name in sorted(done.items()) if version not in known]
        if unknown:
            problems.append(f"the database has migrations this qahub-lite does not know ({', '.join(unknown)}): "
                            "a newer version migrated it")
        leftovers = orphans.find(conn, attachments_dir) if has_table == 2 else orphans.Leftovers([], [], [])
    finally:
        conn.close()
    if pending:
        problems.append(f"{len(pending)} migrations pending (`qahub migrate` applies them)")
    problems += _leftover_problems(leftovers)
    return CheckReport(
        ok=not problems, sqlite_version="", features={}, integrity=[], pending_migrations=pending,
        files_without_rows=leftovers.files_without_rows, rows_without_files=leftovers.rows_without_files,
        problems=problems, upload_leftovers=leftovers.upload_leftovers, engine="postgresql",
        server_version=version, applied_migrations=[done[v] for v in sorted(done)],
    )


def _leftover_problems(leftovers) -> list[str]:
    problems = []
    if leftovers.files_without_rows:
        problems.append(f"{len(leftovers.files_without_rows)} attachment files have no row "
                        "(`qahub check --repair` removes them)")
    if leftovers.rows_without_files:
        problems.append(f"{len(leftovers.rows_without_files)} attachment rows have no file")
    if leftovers.upload_leftovers:
        problems.append(f"{len(leftovers.upload_leftovers)} unfinished uploads in attachments/tmp "
                        "(`qahub check --repair` removes them)")
    return problems


def _feature(conn: sqlite3.Connection, sql: str) -> bool:
    try:
        conn.execute("SAVEPOINT probe")
        conn.execute(sql).fetchall()
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.execute("ROLLBACK TO probe")
        conn.execute("RELEASE probe")


def run_check(db_path: Path, attachments_dir: Path) -> CheckReport:
    try:
        return _run_check(db_path, attachments_dir)
    except sqlite3.DatabaseError as exc:
        # A damaged file can fail any query, integrity_check included: that is the finding.
        return CheckReport(False, sqlite3.sqlite_version, {}, [str(exc)], [], [], [], [
            f"the database cannot be read ({exc}): restore the latest backup (docs/operations.md)"])


def _run_check(db_path: Path, attachments_dir: Path) -> CheckReport:
    problems: list[str] = []
    if not db_path.exists():
        return CheckReport(False, sqlite3.sqlite_version, {}, [], [], [], [], [f"no database at {db_path}"])
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
    try:
        probe = sqlite3.connect(":memory:", isolation_level=None)
        features = {
            "strict_tables": _feature(probe, "CREATE TABLE t_strict (a INTEGER) STRICT"),
            "returning": _feature(probe, "CREATE TABLE t_ret (a INTEGER)")
            and _returning_works(probe),
            "json": _feature(probe, "SELECT json_extract('{\"a\":1}', '$.a')"),
            "wal": conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal",
        }
        probe.close()
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            problems.append(f"SQLite {sqlite3.sqlite_version} is older than {'.'.join(map(str, MIN_SQLITE))}")
        for name, present in features.items():
            if not present:
                problems.append(f"SQLite feature missing or off: {name}")
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        if integrity != ["ok"]:
            problems.append("PRAGMA integrity_check reported problems")
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            problems.append(f"{len(fk)} rows break foreign keys")
        done = migrations.applied(conn) if _has_table(conn, "schema_migrations") else {}
        pending = [name for version, name, _ in migrations.available() if version not in done]
        leftovers = orphans.find(conn, attachments_dir) if _has_table(conn, "attachments") else None
    finally:
        conn.close()
    leftovers = leftovers or orphans.Leftovers([], [], [])
    problems += _leftover_problems(leftovers)
    return CheckReport(
        ok=not problems, sqlite_version=sqlite3.sqlite_version, features=features, integrity=integrity,
        pending_migrations=pending, files_without_rows=leftovers.files_without_rows,
        rows_without_files=leftovers.rows_without_files, problems=problems,
        upload_leftovers=leftovers.upload_leftovers,
    )


def _returning_works(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS t_ret2 (a INTEGER)")
        return conn.execute("INSERT INTO t_ret2 VALUES (1) RETURNING a").fetchone() == (1,)
    except sqlite3.Error:
        return False


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None
