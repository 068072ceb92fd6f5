"""`qahub backup` and `qahub restore`: the operator's side of db/backup.py and db/restore.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec

from .common import add_config_option, load


def register(commands) -> None:
    b = commands.add_parser(
        "backup", help="write a consistent backup while the server keeps serving",
        description="Write one archive holding a consistent snapshot of the database and every attachment file "
        "it references. Safe while the server runs: it only reads, on its own connection. The archive is "
        "written under a temporary name and renamed when complete. Restore it with `qahub restore`. "
        "On PostgreSQL ([storage] url) the database is backed up with pg_dump: this command prints the exact "
        "pg_dump and pg_restore commands and archives the attachment files only.",
    )
    add_config_option(b)
    b.add_argument(
        "--to", metavar="PATH",
        help="the archive to write: a file name (.tar, or .tar.gz to compress) or an existing folder "
        "(default: backup.dir, where a -manual name keeps it from being pruned). On PostgreSQL it holds the "
        "attachment files only, and the pg_dump command printed names a .pgdump file beside it",
    )
    b.add_argument("--json", action="store_true", help="print the report as JSON")
    b.set_defaults(handler=cmd_backup)

    r = commands.add_parser(
        "restore", help="restore a backup into the data folder (stop the server first)",
        description="Check an archive written by `qahub backup` and make it the data folder's database and "
        "attachments. Refuses while a server uses the data folder. Nothing is deleted: the current files are "
        "moved into pre-restore-<time>/ inside the data folder. On PostgreSQL ([storage] url) it restores the "
        "attachments archive only and prints the pg_restore command that restores the database (stop every "
        "node first).",
    )
    add_config_option(r)
    r.add_argument("archive", metavar="PATH", help="the backup archive to restore (on PostgreSQL: the attachments "
                   "archive; the .pgdump beside it goes to pg_restore)")
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    r.set_defaults(handler=cmd_restore)


def _fail(message: str, code: int = 1):
    from . import CliError

    raise CliError(message, code)


def _print_json(obj) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(obj)).decode() + "\n")


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def cmd_backup(args: argparse.Namespace) -> int:
    from ..db.backup import BackupError, backup_name, create_backup

    config = load(args)
    if not args.to:
        dest = config.backup_dir / backup_name(manual=True)
    elif Path(args.to).is_dir() or args.to.endswith("/"):
        dest = Path(args.to) / backup_name(manual=True)
    else:
        dest = Path(args.to)
    if config.storage.url:
        return _backup_postgresql(args, config, dest)
    try:
        report = create_backup(
            config.db_path, config.attachments_dir, dest, busy_timeout_ms=config.storage.busy_timeout_ms
        )
    except BackupError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot write {dest}: {exc.strerror or exc}")
    if args.json:
        _print_json(report)
    else:
        print(f"wrote {report.path} ({_megabytes(report.bytes)}): database {_megabytes(report.database_bytes)}, "
              f"{report.attachments} attachment files ({_megabytes(report.attachment_bytes)}) in {report.seconds:.1f}s")
    return 0


def _password_note(url: str) -> str | None:
    from ..db.backup import has_password

    if not has_password(url):
        return None
    return ("the URL's password is left out of these commands: they prompt for it, or set PGPASSWORD "
            "(or use ~/.pgpass) where you run them")


def _backup_postgresql(args: argparse.Namespace, config, dest: Path) -> int:
    """On PostgreSQL the database server owns consistent backups: pg_dump is the tool. What is
    still ours, the attachment files, goes into the archive."""
    from ..db import engine as engines
    from ..db.backup import BackupError, create_attachments_backup, dump_name, pg_dump_command, pg_restore_command

    url = config.storage.url
    dump = dump_name(dest)
    try:
        report = create_attachments_backup(engines.from_config(config), config.attachments_dir, dest)
    except BackupError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot write {dest}: {exc.strerror or exc}")
    dump_cmd, restore_cmd = pg_dump_command(url, dump), pg_restore_command(url, dump)
    if args.json:
        _print_json({**msgspec.to_builtins(report), "pg_dump": dump_cmd, "pg_restore": restore_cmd,
                     "password_note": _password_note(url)})
        return 0
    print("the database is on PostgreSQL: pg_dump backs it up, consistent while the servers run (in a scheduled "
          "job run it just before `qahub backup`, so the archive holds every file the dump's rows name):")
    print(f"  {dump_cmd}")
    print(f"wrote {report.path} ({_megabytes(report.bytes)}): the attachments only, {report.attachments} files "
          f"({_megabytes(report.attachment_bytes)}) in {report.seconds:.1f}s")
    print("to restore (every node stopped): the database with")
    print(f"  {restore_cmd}")
    print(f"and the attachments with: qahub restore {report.path}{' --config ' + args.config if args.config else ''}")
    note = _password_note(url)
    if note:
        print(note)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from ..core.clock import to_iso
    from ..db.backup import BackupError
    from ..db.datalock import DataFolderInUse, DataFolderLock, describe
    from ..db.restore import restore_backup

    config = load(args)
    lock = DataFolderLock(config.data_dir)
    try:
        lock.acquire("restore")
    except DataFolderInUse as exc:
        pid = exc.holder.get("pid")
        how = f"`systemctl stop qahub` if it runs as a service, else `kill -TERM {pid}`" if pid else (
            "stop that process")
        _fail(f"refusing to restore: {describe(exc.holder)} is using {config.data_dir}. "
              f"Stop it first ({how}), then run this command again.")
    try:
        if config.storage.url:
            from ..db.restore import restore_attachments

            report = restore_attachments(Path(args.archive), config.attachments_dir)
        else:
            report = restore_backup(Path(args.archive), config.db_path, config.attachments_dir)
    except BackupError as exc:
        _fail(f"nothing was changed: {exc}")
    except OSError as exc:
        _fail(f"restore failed: {exc}")
    finally:
        lock.release()
    if config.storage.url:
        return _restored_postgresql(args, config, report)
    if args.json:
        _print_json(report)
        return 0
    print(f"restored {report.archive} (made {to_iso(report.backup_created_at)} by qahub-lite {report.qahub_version}): "
          f"database {_megabytes(report.database_bytes)}, {report.attachments} attachment files")
    if report.previous_data:
        print(f"the previous database and attachments are in {report.previous_data} (remove it once satisfied)")
    print(f"start the server with: qahub serve{' --config ' + args.config if args.config else ''}")
    return 0


def _restored_postgresql(args: argparse.Namespace, config, report) -> int:
    from ..core.clock import to_iso
    from ..db.backup import dump_name, pg_restore_command

    restore_cmd = pg_restore_command(config.storage.url, dump_name(Path(report.archive)))
    if args.json:
        _print_json({**msgspec.to_builtins(report), "pg_restore": restore_cmd,
                     "password_note": _password_note(config.storage.url)})
        return 0
    print(f"restored the attachments of {report.archive} (made {to_iso(report.backup_created_at)} by qahub-lite "
          f"{report.qahub_version}): {report.attachments} attachment files")
    if report.previous_data:
        print(f"the previous attachments are in {report.previous_data} (remove it once satisfied)")
    print("the database is on PostgreSQL: restore it with pg_restore (every node stopped), from the dump "
          "pg_dump wrote with this archive:")
    print(f"  {restore_cmd}")
    note = _password_note(config.storage.url)
    if note:
        print(note)
    print(f"then `qahub check{' --config ' + args.config if args.config else ''}` (every attachment row has its file) "
          "and start the servers")
    return 0
