"""`qahub check`: is the storage sound? Integrity of the database, attachment files against
their rows (db/orphans.py), and the SQLite features the code relies on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from . import migrations, orphans
from .connection import MIN_SQLITE


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
    if leftovers.files_without_rows:
        problems.append(f"{len(leftovers.files_without_rows)} attachment files have no row "
                        "(`qahub check --repair` removes them)")
    if leftovers.rows_without_files:
        problems.append(f"{len(leftovers.rows_without_files)} attachment rows have no file")
    if leftovers.upload_leftovers:
        problems.append(f"{len(leftovers.upload_leftovers)} unfinished uploads in attachments/tmp "
                        "(`qahub check --repair` removes them)")
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
