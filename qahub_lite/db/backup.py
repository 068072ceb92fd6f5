"""Backups and restores of a data folder: the database and the attachment files it references,
in one tar file.

Consistency while the server keeps serving. The database is copied with `VACUUM INTO` on a
short-lived read-only connection of our own: in WAL mode that is a read transaction, so it
sees one committed state and never blocks the server's writer. The files come second and
are chosen from that snapshot's rows. "Files first, rows second" (core/attachments.py)
guarantees every row in the snapshot had its file on disk before the row committed; the only
way to miss one is that the server deleted the row and then the file after our snapshot. So
the referenced files are hard-linked into a staging folder at once (a few milliseconds even
for thousands of files; a link keeps the content even if the server unlinks the name), and if
one has gone the snapshot is simply taken again.

Atomic: the archive is written to a temporary name beside its destination, fsynced, and
renamed; a crash or a cancel leaves either no backup or a whole one, never a partial file
under the final name.

Layout of the archive (plain tar, or gzip when the name ends in .gz/.tgz):
    manifest.json            format, versions, checksum of the database, counts
    qahub.db                 the snapshot
    attachments/ab/ab12...   one file per referenced hash (the layout of the data folder)

On PostgreSQL (`[storage] url`) the database is the server's to back up: `pg_dump` is the tool
(consistent, online, restorable with `pg_restore`), and `qahub backup` prints its command.
The attachment files are still ours: the archive then holds the manifest (engine
"postgresql") and the files the database's rows reference, in the same layout, without
qahub.db. Run pg_dump first, then `qahub backup`: every row in the dump that still exists
when the archive's snapshot is read has its file in the archive (files first, rows second).
"""

from __future__ import annotations

import calendar
import hashlib
import io
import json
import logging
import os
import re
import shlex
import shutil
import sqlite3
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from .. import __version__

log = logging.getLogger("qahub.backup")

FORMAT = 1
MANIFEST = "manifest.json"
DATABASE = "qahub.db"
ATTACHMENTS = "attachments"
_SNAPSHOT_ATTEMPTS = 5
_CHUNK = 1024 * 1024
_SCHEDULED = re.compile(r"qahub-backup-(\d{8}T\d{6}Z)\.tar")
# The data folder's attachment layout (core/attachments.py, blob_path): <aa>/<sha256>.
BLOB_MEMBER = re.compile(r"attachments/([0-9a-f]{2})/(\1[0-9a-f]{62})")


class BackupError(Exception):
    """A backup could not be written, or an archive cannot be restored; the message says why."""


class Cancelled(BackupError):
    """The backup was stopped (the server is shutting down)."""


class Manifest(msgspec.Struct):
    format: int
    created_at: int  # epoch ms
    qahub_version: str
    sqlite_version: str
    migrations: list[str]
    database_sha256: str
    database_bytes: int
    attachments: int
    attachment_bytes: int
    # "postgresql": an archive of the attachments only (the database is pg_dump's); archives
    # written before this field existed are SQLite ones.
    engine: str = "sqlite"


class BackupReport(msgspec.Struct):
    path: str
    bytes: int
    database_bytes: int
    attachments: int
    attachment_bytes: int
    seconds: float
    snapshots: int  # how many snapshots it took (more than 1 when files were deleted meanwhile)
    engine: str = "sqlite"  # "postgresql": the archive holds the attachments only


def backup_name(when: float | None = None, *, manual: bool = False) -> str:
    """qahub-backup-20260101T020000Z.tar; `-manual` marks the ones `keep` never prunes."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    return f"qahub-backup-{stamp}{'-manual' if manual else ''}.tar"


def scheduled_backups(folder: Path) -> list[tuple[float, Path]]:
    """(time, path) of the scheduled backups in `folder`, newest first. The time comes from the
    name, not the file's mtime, so copying backups around does not change which are kept."""
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            match = _SCHEDULED.fullmatch(path.name)
            if match and path.is_file():
                found.append((calendar.timegm(time.strptime(match.group(1), "%Y%m%dT%H%M%SZ")), path))
    return sorted(found, reverse=True)


def run_scheduled(
    db_path: Path, attachments_dir: Path, folder: Path, *, interval_s: float, keep: int, busy_timeout_ms: int,
    cancel: threading.Event,
) -> BackupReport | None:
    """The server's scheduled backup. It is due when the newest scheduled backup in `folder` is
    `interval_s` old (deciding from the files, not from the server's uptime, means restarts
    never postpone it). After writing one, only the newest `keep` scheduled backups stay;
    manual ones are never pruned."""
    existing = scheduled_backups(folder)
    now = time.time()
    if existing and now - existing[0][0] < interval_s:
        return None
    report = create_backup(
        db_path, attachments_dir, folder / backup_name(now), busy_timeout_ms=busy_timeout_ms, cancel=cancel
    )
    for _, old in scheduled_backups(folder)[keep:]:
        old.unlink(missing_ok=True)
        log.info("backup: removed %s (backup.keep = %d)", old.name, keep)
    return report


def blob_relpath(sha256: str) -> str:
    return f"{ATTACHMENTS}/{sha256[:2]}/{sha256}"


def create_backup(
    db_path: Path, attachments_dir: Path, dest: Path, *, busy_timeout_ms: int = 5000,
    cancel: threading.Event | None = None,
) -> BackupReport:
    """Write a consistent backup of the database at `db_path` and its attachment files to
    `dest`. Safe beside a live server. Raises BackupError (Cancelled when `cancel` is set)."""
    started = time.perf_counter()
    cancel = cancel or threading.Event()
    if not db_path.exists():
        raise BackupError(f"no database at {db_path}: nothing to back up")
    if dest.exists():
        raise BackupError(f"{dest} exists already; not overwriting it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Staging beside the attachments, on the same file system, so that hard links work.
    staging = Path(tempfile.mkdtemp(prefix=".backup-", dir=db_path.parent))
    try:
        for attempt in range(1, _SNAPSHOT_ATTEMPTS + 1):
            snapshot = staging / DATABASE
            snapshot.unlink(missing_ok=True)
            shutil.rmtree(staging / ATTACHMENTS, ignore_errors=True)
            _snapshot(db_path, snapshot, busy_timeout_ms, cancel)
            files, missing = _stage_files(snapshot, attachments_dir, staging)
            if not missing:
                break
            log.info("backup: %d attachment files were deleted after the snapshot; taking it again", missing)
        else:
            raise BackupError("attachment files kept disappearing while the backup ran; try again")
        manifest = Manifest(
            format=FORMAT, created_at=time.time_ns() // 1_000_000, qahub_version=__version__,
            sqlite_version=sqlite3.sqlite_version, migrations=_migration_names(snapshot),
            database_sha256=_sha256(snapshot, cancel), database_bytes=snapshot.stat().st_size,
            attachments=len(files), attachment_bytes=sum(size for _, size in files),
        )
        _write_archive(dest, staging, manifest, files, cancel)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BackupReport(
        path=str(dest), bytes=dest.stat().st_size, database_bytes=manifest.database_bytes,
        attachments=manifest.attachments, attachment_bytes=manifest.attachment_bytes,
        seconds=round(time.perf_counter() - started, 3), snapshots=attempt,
    )


def _snapshot(db_path: Path, target: Path, busy_timeout_ms: int, cancel: threading.Event) -> None:
    # mode=ro: this connection can never write the live database; VACUUM INTO only reads it.
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        # Lets a shutting-down server stop a long VACUUM INTO: a non-zero answer interrupts it.
        conn.set_progress_handler(lambda: int(cancel.is_set()), 10_000)
        conn.execute("VACUUM INTO ?", (str(target),))
    except sqlite3.OperationalError as exc:
        if cancel.is_set():
            raise Cancelled("backup cancelled") from None
        raise BackupError(f"could not snapshot {db_path}: {exc}") from None
    finally:
        conn.close()
    # A backup that cannot be restored is worse than none: check the copy before shipping it.
    check = sqlite3.connect(target, isolation_level=None)
    try:
        verdict = check.execute("PRAGMA quick_check").fetchone()[0]
    finally:
        check.close()
    if verdict != "ok":
        raise BackupError(f"the snapshot of {db_path} fails quick_check ({verdict}); run `qahub check`")


def _stage_files(snapshot: Path, attachments_dir: Path, staging: Path) -> tuple[list[tuple[str, int]], int]:
    """Link (or copy, across file systems) every file the snapshot references into staging.
    Returns ([(sha256, size)], how many were missing)."""
    conn = sqlite3.connect(f"file:{snapshot}?mode=ro", uri=True)
    try:
        has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='attachments'").fetchone()
        rows = conn.execute("SELECT sha256 FROM attachments GROUP BY sha256 ORDER BY sha256").fetchall() if (
            has_table) else []
    finally:
        conn.close()
    return _link_files([sha for (sha,) in rows], attachments_dir, staging)


def _link_files(hashes: list[str], attachments_dir: Path, staging: Path) -> tuple[list[tuple[str, int]], int]:
    files, missing = [], 0
    for sha in hashes:
        source = attachments_dir / sha[:2] / sha
        target = staging / blob_relpath(sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except FileNotFoundError:
            missing += 1
            continue
        except OSError:  # another file system, or hard links not allowed there
            try:
                shutil.copyfile(source, target)
            except FileNotFoundError:
                missing += 1
                continue
        files.append((sha, target.stat().st_size))
    return files, missing


def _migration_names(snapshot: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{snapshot}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY version")]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def _sha256(path: Path, cancel: threading.Event | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            if cancel is not None and cancel.is_set():
                raise Cancelled("backup cancelled")
            digest.update(chunk)
    return digest.hexdigest()


def _write_archive(
    dest: Path, staging: Path, manifest: Manifest, files: list[tuple[str, int]], cancel: threading.Event
) -> None:
    mode = "w:gz" if dest.name.endswith((".gz", ".tgz")) else "w"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode=mode, format=tarfile.PAX_FORMAT) as tar:
                body = json.dumps(msgspec.to_builtins(manifest), indent=2).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mtime, info.mode = len(body), manifest.created_at // 1000, 0o644
                tar.addfile(info, io.BytesIO(body))
                members = [DATABASE] if (staging / DATABASE).exists() else []
                for name in [*members, *(blob_relpath(sha) for sha, _ in files)]:
                    path = staging / name
                    info = _plain(tar.gettarinfo(path, arcname=name))
                    with open(path, "rb") as source:
                        tar.addfile(info, _CancellableReader(source, cancel))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _CancellableReader:
    """A file for tarfile to read that stops when the backup is cancelled, so that a server
    shutting down never waits for a large database file to be copied."""

    def __init__(self, source, cancel: threading.Event) -> None:
        self._source = source
        self._cancel = cancel

    def read(self, size: int = -1) -> bytes:
        if self._cancel.is_set():
            raise Cancelled("backup cancelled")
        return self._source.read(size)


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Nothing of this machine's users or permissions goes into the archive.
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o644
    return info


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- PostgreSQL: pg_dump for the database, this archive for the attachments ---------------------


def _without_password(url: str) -> str:
    """The URL with its password left out (in the user part or a `password=` parameter): the
    commands printed for an operator never carry it; libpq prompts for it, or reads PGPASSWORD
    or ~/.pgpass."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"])
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def has_password(url: str) -> bool:
    parts = urlsplit(url)
    return parts.password is not None or any(k == "password" for k, _ in parse_qsl(parts.query))


def pg_dump_command(url: str, dump: Path) -> str:
    """The pg_dump command that backs up the hub's database into `dump` (custom format: compressed,
    and pg_restore can restore it whole or in part)."""
    return shlex.join(["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={dump}",
                       f"--dbname={_without_password(url)}"])


def pg_restore_command(url: str, dump: Path) -> str:
    """The pg_restore command that puts a dump back into the hub's database: what the dump holds
    replaces what is there (--clean), in one transaction that stops at the first error."""
    return shlex.join(["pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges",
                       "--single-transaction", "--exit-on-error", f"--dbname={_without_password(url)}", str(dump)])


def dump_name(archive: Path) -> Path:
    """The dump file named after the attachments archive: qahub-backup-<time>.pgdump beside it."""
    name = archive.name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return archive.with_name(name + ".pgdump")


def create_attachments_backup(
    engine, attachments_dir: Path, dest: Path, *, cancel: threading.Event | None = None,
) -> BackupReport:
    """PostgreSQL's `qahub backup`: the attachment files the database's rows reference, read in
    one snapshot, in the archive layout (without qahub.db; the database is pg_dump's). `engine` is
    engine.py's. Raises BackupError."""
    started = time.perf_counter()
    cancel = cancel or threading.Event()
    if dest.exists():
        raise BackupError(f"{dest} exists already; not overwriting it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    attachments_dir.mkdir(parents=True, exist_ok=True)
    # Staging beside the attachments, on the same file system, so that hard links work.
    staging = Path(tempfile.mkdtemp(prefix=".backup-", dir=attachments_dir.parent))
    try:
        for attempt in range(1, _SNAPSHOT_ATTEMPTS + 1):
            shutil.rmtree(staging / ATTACHMENTS, ignore_errors=True)
            hashes, applied = _referenced(engine)
            files, missing = _link_files(hashes, attachments_dir, staging)
            if not missing:
                break
            log.info("backup: %d attachment files were deleted after the snapshot; taking it again", missing)
        else:
            raise BackupError("attachment files kept disappearing while the backup ran; try again")
        manifest = Manifest(
            format=FORMAT, created_at=time.time_ns() // 1_000_000, qahub_version=__version__,
            sqlite_version="", migrations=applied, database_sha256="", database_bytes=0,
            attachments=len(files), attachment_bytes=sum(size for _, size in files), engine=engine.name,
        )
        _write_archive(dest, staging, manifest, files, cancel)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BackupReport(
        path=str(dest), bytes=dest.stat().st_size, database_bytes=0, attachments=manifest.attachments,
        attachment_bytes=manifest.attachment_bytes, seconds=round(time.perf_counter() - started, 3),
        snapshots=attempt, engine=engine.name,
    )


def _referenced(engine) -> tuple[list[str], list[str]]:
    """(the hashes the attachment rows name, the migrations applied), read in one transaction."""
    import psycopg  # only PostgreSQL hubs come here

    try:
        conn = engine.open_reader()
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                hashes = [r[0] for r in conn.execute("SELECT sha256 FROM attachments GROUP BY sha256 ORDER BY sha256")]
                applied = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY version")]
            finally:
                conn.execute("ROLLBACK")
        finally:
            conn.close()
    except psycopg.Error as exc:
        message = " ".join(str(exc).split())
        raise BackupError(f"cannot read the attachment rows of {engine.describe()}: {message}") from None
    return hashes, applied
