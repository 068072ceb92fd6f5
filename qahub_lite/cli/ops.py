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
        "written under a temporary name and renamed when complete. Restore it with `qahub restore`.",
    )
    add_config_option(b)
    b.add_argument(
        "--to", metavar="PATH",
        help="the archive to write: a file name (.tar, or .tar.gz to compress) or an existing folder "
        "(default: backup.dir, where a -manual name keeps it from being pruned)",
    )
    b.add_argument("--json", action="store_true", help="print the report as JSON")
    b.set_defaults(handler=cmd_backup)

    r = commands.add_parser(
        "restore", help="restore a backup into the data folder (stop the server first)",
        description="Check an archive written by `qahub backup` and make it the data folder's database and "
        "attachments. Refuses while a server uses the data folder. Nothing is deleted: the current files are "
        "moved into pre-restore-<time>/ inside the data folder.",
    )
    add_config_option(r)
    r.add_argument("archive", metavar="PATH", help="the backup archive to restore")
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
        report = restore_backup(Path(args.archive), config.db_path, config.attachments_dir)
    except BackupError as exc:
        _fail(f"nothing was changed: {exc}")
    except OSError as exc:
        _fail(f"restore failed: {exc}")
    finally:
        lock.release()
    if args.json:
        _print_json(report)
        return 0
    print(f"restored {report.archive} (made {to_iso(report.backup_created_at)} by qahub-lite {report.qahub_version}): "
          f"database {_megabytes(report.database_bytes)}, {report.attachments} attachment files")
    if report.previous_data:
        print(f"the previous database and attachments are in {report.previous_data} (remove it once satisfied)")
    print(f"start the server with: qahub serve{' --config ' + args.config if args.config else ''}")
    return 0
