"""Restoring a backup archive (written by db/backup.py) into a data folder.

The caller must hold the data folder's lock (db/datalock.py), so that no server is using the
files being replaced and none can start half-way through.

Everything is checked before the data folder is touched: the archive holds only the members
a backup writes (no links, no paths outside the folder), the database's checksum matches the
manifest, every attachment file's content matches its hash name, the database passes
`PRAGMA integrity_check`, it was not made by a newer qahub-lite (its migrations are all known
here), and every attachment row has its file. The archive is unpacked into a staging folder
inside the data folder, so the final moves are renames on one file system.

Nothing is deleted: whatever the data folder held (database, WAL, attachments) is moved into
`pre-restore-<UTC time>/` beside it, for the operator to remove once the restore is trusted.

On PostgreSQL the database is restored by pg_restore (db/backup.py prints the command) and
`restore_attachments` restores the attachments archive only, with the same checks on its files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from pathlib import Path

import msgspec

from . import migrations
from .backup import ATTACHMENTS, BLOB_MEMBER, DATABASE, FORMAT, MANIFEST, BackupError, Manifest, fsync_dir

_CHUNK = 1024 * 1024


class RestoreReport(msgspec.Struct):
    archive: str
    backup_created_at: int  # epoch ms
    qahub_version: str
    database_bytes: int
    attachments: int
    previous_data: str | None  # where the replaced files went; None when there were none
    engine: str = "sqlite"  # "postgresql": the attachments only were restored


def restore_backup(archive: Path, db_path: Path, attachments_dir: Path) -> RestoreReport:
    if not archive.is_file():
        raise BackupError(f"{archive}: no such file")
    data_dir = db_path.parent
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=data_dir))
    try:
        manifest, blobs = _unpack(archive, staging)
        if manifest.engine != "sqlite":
            raise BackupError(f"{archive} holds the attachments of a {manifest.engine} hub and no database: restore "
                              "it with that hub's config (the database comes back with pg_restore)")
        _verify_database(staging / DATABASE, manifest, blobs)
        previous = _swap_in(staging, db_path, attachments_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return RestoreReport(
        archive=str(archive), backup_created_at=manifest.created_at, qahub_version=manifest.qahub_version,
        database_bytes=manifest.database_bytes, attachments=len(blobs),
        previous_data=str(previous) if previous else None,
    )


def _unpack(archive: Path, staging: Path) -> tuple[Manifest, set[str]]:
    """Extract the members a backup writes, member by member (never extractall: the archive is
    input), checking each file's content against its expected hash on the way."""
    manifest: Manifest | None = None
    database_sha: str | None = None
    blobs: set[str] = set()
    try:
        tar = tarfile.open(archive, mode="r:*")
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"{archive}: not a qahub backup archive ({exc})") from None
    with tar:
        try:
            for member in tar:
                name = member.name
                if member.isdir():
                    continue  # an archive re-packed by hand may list folders; nothing is made from them
                if not member.isfile():
                    raise BackupError(f"{archive}: unexpected member {name!r} (only plain files belong in a backup)")
                source = tar.extractfile(member)
                if name == MANIFEST:
                    try:
                        manifest = msgspec.json.decode(source.read(64 * 1024), type=Manifest)
                    except msgspec.DecodeError as exc:
                        raise BackupError(f"{archive}: unreadable manifest: {exc}") from None
                    if manifest.format > FORMAT:
                        raise BackupError(f"{archive}: written by a newer qahub-lite ({manifest.qahub_version}, "
                                          f"backup format {manifest.format}); restore it with that version")
                elif name == DATABASE and database_sha is None:
                    database_sha = _copy(source, staging / DATABASE)
                elif (match := BLOB_MEMBER.fullmatch(name)) and match.group(2) not in blobs:
                    sha = match.group(2)
                    if _copy(source, staging / name) != sha:
                        raise BackupError(f"{archive}: attachment {sha} is damaged (its content does not match)")
                    blobs.add(sha)
                else:
                    raise BackupError(f"{archive}: unexpected member {name!r}: not a qahub backup")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise BackupError(f"{archive}: the archive is damaged or truncated ({exc})") from None
    if manifest is None:
        raise BackupError(f"{archive}: not a qahub backup (no {MANIFEST})")
    if manifest.engine == "sqlite" and database_sha is None:
        raise BackupError(f"{archive}: not a qahub backup (no {DATABASE})")
    if manifest.engine != "sqlite" and database_sha is not None:
        raise BackupError(f"{archive}: unexpected member {DATABASE!r} in a {manifest.engine} hub's attachments archive")
    if database_sha is not None and database_sha != manifest.database_sha256:
        raise BackupError(f"{archive}: the database is damaged (its checksum does not match the manifest)")
    if len(blobs) != manifest.attachments:
        raise BackupError(f"{archive}: holds {len(blobs)} attachment files, its manifest says {manifest.attachments}")
    return manifest, blobs


def _copy(source, target: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _verify_database(path: Path, manifest: Manifest, blobs: set[str]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            raise BackupError(f"the backup's database fails integrity_check: {'; '.join(integrity[:3])}")
        known = {version for version, _, _ in migrations.available()}
        newer = [name for version, name in conn.execute("SELECT version, name FROM schema_migrations")
                 if version not in known]
        if newer:
            raise BackupError(f"the backup was made by a newer qahub-lite (migrations {', '.join(newer)} are "
                              f"unknown to this one, {manifest.qahub_version} wrote it); restore it with that version")
        referenced = {r[0] for r in conn.execute("SELECT DISTINCT sha256 FROM attachments")}
        if referenced - blobs:
            raise BackupError(f"the backup lacks {len(referenced - blobs)} attachment files its rows refer to")
        # VACUUM INTO writes a rollback-journal database; the server runs it in WAL mode, and
        # `qahub check` expects that, so the restored file is switched here, once.
        if str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower() != "wal":
            raise BackupError("could not switch the restored database to WAL mode")
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the backup's database cannot be read: {exc}") from None
    finally:
        conn.close()


def _swap_in(staging: Path, db_path: Path, attachments_dir: Path) -> Path | None:
    """Move the current files aside (if any), then the restored ones in. Renames only."""
    data_dir = db_path.parent
    current = [p for p in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm"), attachments_dir) if p.exists()]
    previous = None
    if current:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        previous = data_dir / f"pre-restore-{stamp}"
        n = 1
        while previous.exists():
            n += 1
            previous = data_dir / f"pre-restore-{stamp}-{n}"
        previous.mkdir()
        for path in current:
            os.replace(path, previous / path.name)
    os.replace(staging / DATABASE, db_path)
    if (staging / ATTACHMENTS).exists():
        os.replace(staging / ATTACHMENTS, attachments_dir)
    else:
        attachments_dir.mkdir()
    fsync_dir(data_dir)
    return previous


def restore_attachments(archive: Path, attachments_dir: Path) -> RestoreReport:
    """PostgreSQL's `qahub restore`: the attachments archive `qahub backup` wrote beside pg_dump's
    dump, checked file by file, swapped in for the attachments folder (the old one is moved into
    pre-restore-<time>/). The database is pg_restore's."""
    if not archive.is_file():
        raise BackupError(f"{archive}: no such file")
    data_dir = attachments_dir.parent
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=data_dir))
    try:
        manifest, blobs = _unpack(archive, staging)
        if manifest.engine == "sqlite":
            raise BackupError(f"{archive} is a SQLite hub's backup (with its database): restore it with a SQLite "
                              "config, then move it with `qahub copy --to postgresql://...` (docs/moving-a-hub.md)")
        previous = None
        if attachments_dir.exists():
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            previous = data_dir / f"pre-restore-{stamp}"
            n = 1
            while previous.exists():
                n += 1
                previous = data_dir / f"pre-restore-{stamp}-{n}"
            previous.mkdir()
            os.replace(attachments_dir, previous / attachments_dir.name)
        if (staging / ATTACHMENTS).exists():
            os.replace(staging / ATTACHMENTS, attachments_dir)
        else:
            attachments_dir.mkdir()
        fsync_dir(data_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return RestoreReport(
        archive=str(archive), backup_created_at=manifest.created_at, qahub_version=manifest.qahub_version,
        database_bytes=0, attachments=len(blobs), previous_data=str(previous) if previous else None,
        engine=manifest.engine,
    )
