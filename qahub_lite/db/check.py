"""`qahub check`: is the storage sound? Integrity of the database, attachment files against
their rows, and the SQLite features the code relies on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from . import migrations
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
        hashes = {r[0] for r in conn.execute("SELECT DISTINCT sha256 FROM attachments")} if _has_table(
            conn, "attachments") else set()
    finally:
        conn.close()
    on_disk = set()
    if attachments_dir.exists():
        for path in attachments_dir.glob("??/*"):
            if path.is_file():
                on_disk.add(path.name)
    files_without_rows = sorted(on_disk - hashes)
    rows_without_files = sorted(hashes - on_disk)
    if files_without_rows:
        problems.append(f"{len(files_without_rows)} attachment files have no row")
    if rows_without_files:
        problems.append(f"{len(rows_without_files)} attachment rows have no file")
    return CheckReport(
        ok=not problems, sqlite_version=sqlite3.sqlite_version, features=features, integrity=integrity,
        pending_migrations=pending, files_without_rows=files_without_rows, rows_without_files=rows_without_files,
        problems=problems,
    )


def _returning_works(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS t_ret2 (a INTEGER)")
        return conn.execute("INSERT INTO t_ret2 VALUES (1) RETURNING a").fetchone() == (1,)
    except sqlite3.Error:
        return False


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None
