"""`qahub copy`: move a hub's database to another engine (db/copy.py does the work)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

import msgspec

from .common import add_config_option, load_existing


def register(commands) -> None:
    c = commands.add_parser(
        "copy", help="copy the hub's database into an empty PostgreSQL database or a new SQLite file",
        description="Copy every row of the hub the config names (its SQLite file, or its [storage] url) into "
        "TARGET: an empty PostgreSQL database (postgresql://...) or a new SQLite file (a path ending in .db). "
        "The target is migrated first, then filled in one transaction, parents before children, and every "
        "table's row count is checked before the commit. Safe beside a running server: the source is read in "
        "one snapshot, so rows written meanwhile are not copied (stop the server for a final move). "
        "Attachment files are not copied: they stay in the data folder, which the new config must name. "
        "Exit codes: 0 copied, 1 failed (nothing committed), 2 refused (a non-empty target, the source "
        "itself, a bad TARGET or config).",
        epilog="Example: qahub copy --config qahub.toml --to postgresql://qahub@db.internal:5432/qahub "
        "(then set [storage] url to that URL and start the servers). See docs/moving-a-hub.md.",
    )
    add_config_option(c)
    c.add_argument(
        "--to", metavar="TARGET", required=True,
        help="where to copy: postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (an existing, empty database) "
        "or PATH.db (a new SQLite file; an existing one must hold no rows)",
    )
    c.add_argument(
        "--batch-rows", type=int, default=None, metavar="N",
        help="rows read and written per batch (default: 5000); lower it for very wide rows on a small machine",
    )
    c.add_argument("--json", action="store_true",
                   help="print the report (per-table row counts, source and target) as JSON on stdout")
    c.set_defaults(handler=cmd_copy)


class TableProgress:
    """Rows copied per table on stderr: a bar redrawn at most ten times a second on a terminal;
    plain lines elsewhere (a CI log, a file): one when a table is done, and one every few
    seconds while a large table is copied, so a long copy shows it is alive."""

    PLAIN_EVERY_S = 5.0

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream, self.width = stream, width
        self.tty = stream.isatty()
        self._drawn_at = 0.0
        self._table = ""

    def __call__(self, table: str, done: int, total: int) -> None:
        now = time.monotonic()
        if table != self._table:
            self._table, self._drawn_at = table, now
        finished = done >= total
        if self.tty:
            if finished or now - self._drawn_at >= 0.1:
                self._drawn_at = now
                filled = self.width * done // total if total else self.width
                self.stream.write(f"\r\033[Kcopy {table:<24} [{'#' * filled}{'.' * (self.width - filled)}] "
                                  f"{done}/{total} rows")
                if finished:
                    self.stream.write("\n")
                self.stream.flush()
            return
        if finished or now - self._drawn_at >= self.PLAIN_EVERY_S:
            self._drawn_at = now
            self.stream.write(f"copy: {table} {done}/{total} rows{'' if finished else ' ...'}\n")
            self.stream.flush()


def cmd_copy(args: argparse.Namespace) -> int:
    from ..db import engine as engines
    from ..db.copy import BATCH_ROWS, CopyError, CopyRefused, copy_hub, target_engine
    from . import CliError

    config = load_existing(args)
    try:
        target = target_engine(args.to, busy_timeout_ms=config.storage.busy_timeout_ms)
        source = engines.from_config(config)
        report = copy_hub(source, target, batch_rows=args.batch_rows or BATCH_ROWS,
                          progress=TableProgress(sys.stderr))
    except CopyRefused as exc:
        raise CliError(f"refusing to copy: {exc}", 2) from None
    except CopyError as exc:
        raise CliError(str(exc), 1) from None
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(report)).decode() + "\n")
        return 0
    print(f"copied {report.rows} rows in {len(report.tables)} tables from {report.source} ({report.source_engine}) "
          f"to {report.target} ({report.target_engine}) in {report.seconds:.1f}s; every table's count matches")
    for count in report.tables:
        print(f"  {count.table:<26} {count.target}")
    print(f"attachments: not copied; the files stay in {config.attachments_dir}: "
          "the new config's [storage] data_dir must name the same data folder (or a copy of it)")
    if report.target_engine == "postgresql":
        print(f'next: set [storage] url = "{report.target}" (with its password) in qahub.toml, then start the server')
    else:
        print("next: a hub's SQLite file is <data_dir>/qahub.db: put the file there and leave [storage] url empty, "
              "then start the server")
    return 0
