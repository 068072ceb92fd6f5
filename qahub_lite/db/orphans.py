"""Attachment files that no row names, and upload leftovers: found, and removed safely.

How they arise. Files first, rows second (core/attachments.py): an upload is streamed into
`attachments/tmp/` and fsynced, then, inside the writer's transaction, renamed to its hash name
before its row is inserted and committed. A crash (SIGKILL, power loss) or a failed commit (a
full disk) between the rename and the commit leaves a hash-named file without a row; a crash
while a body streams leaves a file in `tmp/`. Neither was ever acknowledged to a client, so
removing them loses nothing. The opposite, a row without its file, must never happen (the file
is fsynced and renamed before its row commits); it is reported and never "repaired" away.

Who removes them: `qahub serve` at start-up (before it answers a request), the
`attachment-orphans` background job, and `qahub check --repair`.

Why removal cannot race an upload of the same content: candidates are found without holding
anything, then each one is looked up again and unlinked inside a write transaction (the
server's writer, or `BEGIN IMMEDIATE` from the CLI). An upload renames its file and inserts its
row inside a write transaction too, so the second look either sees the committed row or runs
wholly before the rename. Files in `tmp/` have no row to look up; an upload in progress keeps
writing to its file, so only files untouched for `TMP_GRACE_S` are taken, except at start-up,
when no upload can be in flight because the server does not listen yet.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

# An upload that has not written a byte for this long is abandoned (a client streaming a body
# sends something far more often than this).
TMP_GRACE_S = 60.0
# How often the background job looks; orphans are rare (they need a crash), so rarely is enough.
JOB_INTERVAL_S = 15 * 60
_HASH_NAME = re.compile(r"[0-9a-f]{64}")
_BATCH = 500


class Leftovers(msgspec.Struct):
    files_without_rows: list[str]  # hash names
    rows_without_files: list[str]  # hash names
    upload_leftovers: list[str]  # names in tmp/ untouched for the grace period


class Removed(msgspec.Struct):
    files_without_rows: int = 0
    upload_leftovers: int = 0

    @property
    def total(self) -> int:
        return self.files_without_rows + self.upload_leftovers


def _hash_files(attachments_dir: Path) -> Iterator[str]:
    """Names of the hash-named files under `<attachments>/<2 hex>/`."""
    if not attachments_dir.is_dir():
        return
    with os.scandir(attachments_dir) as shards:
        for shard in shards:
            if len(shard.name) != 2 or not shard.is_dir(follow_symlinks=False):
                continue
            with os.scandir(shard.path) as files:
                for entry in files:
                    if _HASH_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                        yield entry.name


def _stale_uploads(attachments_dir: Path, min_age_s: float, now: float) -> list[str]:
    tmp = attachments_dir / "tmp"
    if not tmp.is_dir():
        return []
    stale = []
    with os.scandir(tmp) as entries:
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False) and now - entry.stat().st_mtime >= min_age_s:
                    stale.append(entry.name)
            except FileNotFoundError:  # finished (renamed) while we looked
                continue
    return sorted(stale)


def _known(conn, names: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(names), _BATCH):
        chunk = names[start : start + _BATCH]
        marks = ",".join("?" * len(chunk))
        found.update(r[0] for r in conn.execute(f"SELECT sha256 FROM attachments WHERE sha256 IN ({marks})", chunk))
    return found


def find(conn, attachments_dir: Path, *, tmp_min_age_s: float = TMP_GRACE_S) -> Leftovers:
    """What is out of step between the attachment rows and the files (read-only)."""
    on_disk = sorted(_hash_files(attachments_dir))
    with_rows = _known(conn, on_disk)
    on_disk_set = set(on_disk)
    rows_without_files = sorted(
        sha for (sha,) in conn.execute("SELECT DISTINCT sha256 FROM attachments") if sha not in on_disk_set
    )
    return Leftovers(
        files_without_rows=[name for name in on_disk if name not in with_rows],
        rows_without_files=rows_without_files,
        upload_leftovers=_stale_uploads(attachments_dir, tmp_min_age_s, time.time()),
    )


def remove(conn, attachments_dir: Path, leftovers: Leftovers, tmp_min_age_s: float) -> Removed:
    """Inside a write transaction: unlink the candidate files that still have no row, and the
    upload leftovers still untouched for `tmp_min_age_s`. Returns what went."""
    removed = Removed()
    still_orphans = set(leftovers.files_without_rows) - _known(conn, leftovers.files_without_rows)
    for sha in sorted(still_orphans):
        try:
            (attachments_dir / sha[:2] / sha).unlink()
            removed.files_without_rows += 1
        except FileNotFoundError:
            pass
    now = time.time()
    tmp = attachments_dir / "tmp"
    for name in leftovers.upload_leftovers:
        path = tmp / name
        try:
            if now - path.stat().st_mtime >= tmp_min_age_s:
                path.unlink()
                removed.upload_leftovers += 1
        except FileNotFoundError:
            pass
    return removed


def scan(engine, attachments_dir: Path, *, tmp_min_age_s: float = TMP_GRACE_S) -> Leftovers:
    """`find` with a connection of its own (run it off the event loop); `engine` is engine.py's,
    or a SQLite file's path."""
    if isinstance(engine, Path):
        from .engine import SqliteEngine

        engine = SqliteEngine(engine)
    conn = engine.open_reader()
    try:
        return find(conn, attachments_dir, tmp_min_age_s=tmp_min_age_s)
    finally:
        conn.close()


async def collect(db, attachments_dir: Path, *, tmp_min_age_s: float = TMP_GRACE_S) -> Removed:
    """The server's way: scan in a thread, then remove through the single writer."""
    leftovers = await asyncio.to_thread(scan, db.engine, attachments_dir, tmp_min_age_s=tmp_min_age_s)
    if not (leftovers.files_without_rows or leftovers.upload_leftovers):
        return Removed()
    return await db.write(remove, attachments_dir, leftovers, tmp_min_age_s)


def repair(engine, attachments_dir: Path, *, tmp_min_age_s: float = TMP_GRACE_S) -> Removed:
    """The CLI's way, beside a live server or not: scan, then remove inside a write transaction,
    which waits for the servers' writers like any other write (engine.py)."""
    from .database import direct_connection

    leftovers = scan(engine, attachments_dir, tmp_min_age_s=tmp_min_age_s)
    if not (leftovers.files_without_rows or leftovers.upload_leftovers):
        return Removed()
    with direct_connection(engine) as conn:
        return remove(conn, attachments_dir, leftovers, tmp_min_age_s)
