"""`qahub export`: a run as JUnit XML, CTRF JSON, CSV or NDJSON (`qahub export run RUN`), and a
project's results in bulk as CSV, NDJSON or Parquet (`qahub export results --project P`), from
a server over HTTP, streamed to a file or stdout with a progress bar on a terminal.

A file is written beside its destination and renamed into place only once the whole export
arrived: a cut connection never leaves a truncated file that looks complete. Exit codes: 0
written; 2 usage error, refused request, unreachable server or cut stream.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from .progress import Progress, human_bytes
from .remote import add_server_options, make_client

RUN_FORMATS = ("junit", "ctrf", "csv", "ndjson")
BULK_FORMATS = ("csv", "ndjson", "parquet")


def register(commands) -> None:
    p = commands.add_parser(
        "export", help="export a run (JUnit, CTRF, CSV, NDJSON) or results in bulk (CSV, NDJSON, Parquet)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Download data out of the hub: one run in a format other tools read, or every result of a "
        "project (filtered by time and branch) as one streamed file. See docs/export.md.",
        epilog="examples:\n"
        "  qahub export run 7f3k2p9q --format junit -o report.xml\n"
        "  qahub export results --project web-shop --since 2026-11-01 --branch main --format parquet "
        "-o results.parquet",
    )
    kinds = p.add_subparsers(dest="kind", metavar="WHAT", required=True)
    run = kinds.add_parser("run", help="one run: JUnit XML (default), CTRF JSON, CSV or NDJSON",
                           description="Export one run. junit: GitLab unit-test reports, Jenkins; ctrf: "
                           "https://ctrf.io; csv/ndjson: one row per result with the run's context.")
    run.add_argument("run", metavar="RUN", help="the run's id or short id")
    run.add_argument("--format", choices=RUN_FORMATS, default="junit", help="the format (default: junit)")
    _common(run)
    run.set_defaults(handler=export_run)
    bulk = kinds.add_parser("results", help="a project's results in bulk: CSV (default), NDJSON or Parquet",
                            description="Export every result of a project's runs (oldest run first), with the run's "
                            "id, name, branch, commit, PR and environment on each row; filtered by the runs' "
                            "creation time and branch. Parquet needs the server installed with "
                            "'qahub-lite[parquet]'.")
    bulk.add_argument("--project", required=True, metavar="ID", help="the project's id or slug")
    bulk.add_argument("--format", choices=BULK_FORMATS, default="csv", help="the format (default: csv)")
    bulk.add_argument("--since", metavar="WHEN", help="runs created at or after this ISO date or time, e.g. 2026-11-01")
    bulk.add_argument("--until", metavar="WHEN", help="runs created before this ISO date or time")
    bulk.add_argument("--branch", metavar="BRANCH", help="runs of this branch only")
    _common(bulk)
    bulk.set_defaults(handler=export_results)


def _common(p: argparse.ArgumentParser) -> None:
    add_server_options(p)
    p.add_argument("-o", "--output", metavar="PATH",
                   help="the file to write (default: stdout; '-' is stdout too)")
    p.add_argument("--quiet", action="store_true", help="no progress and no final line on stderr")


def _when(text: str | None, option: str) -> str | None:
    """An ISO date becomes midnight UTC; the server checks the rest."""
    from . import CliError

    if text is None:
        return None
    value = text.strip()
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        return f"{value}T00:00:00Z"
    if "T" not in value:
        raise CliError(f"{option} must be an ISO date (2026-11-01) or date and time (2026-11-01T12:00:00Z)", 2)
    return value


def export_run(args: argparse.Namespace) -> int:
    return _download(args, f"/api/v1/runs/{args.run}/export", {"format": args.format}, "results")


def export_results(args: argparse.Namespace) -> int:
    params = {"format": args.format}
    for name, value in (("since", _when(args.since, "--since")), ("until", _when(args.until, "--until")),
                        ("branch", args.branch)):
        if value is not None:
            params[name] = value
    return _download(args, f"/api/v1/projects/{args.project}/results/export", params, "rows")


def _download(args: argparse.Namespace, path: str, params: dict, unit: str) -> int:
    from ..client import ApiError
    from . import CliError

    to_stdout = args.output in (None, "-")
    if not to_stdout and Path(args.output).is_dir():
        raise CliError(f"--output {args.output} is a folder: name a file", 2)
    progress = Progress(sys.stderr, "exporting", unit) if not args.quiet else None
    counts_lines = args.format in ("csv", "ndjson")
    with make_client(args, quiet=args.quiet) as client:
        handle, tmp = _open(args.output, to_stdout)
        received = 0
        records = _Records(args.format)
        try:
            with client.stream(path, params=params) as response:
                total = response.headers.get("x-result-count")
                expected = int(total) if total and total.isdigit() else None
                for chunk in response.iter_bytes():
                    handle.write(chunk)
                    received += len(chunk)
                    if counts_lines:
                        records.feed(chunk)
                    if progress:
                        progress.update(records.count, expected, received)
            handle.flush()
            if tmp is not None:
                os.fsync(handle.fileno())
                handle.close()
                os.replace(tmp, args.output)
                tmp = None
        except ApiError as exc:
            if progress:
                progress.abandon()
            raise CliError(f"export failed: {exc.message}", 2) from None
        except BrokenPipeError:
            # `qahub export ... | head`: the reader has all it wanted. Point stdout at nothing
            # so that the interpreter's last flush does not fail once more on the closed pipe.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except Exception as exc:  # a cut stream (httpx.ReadError, RemoteProtocolError...)
            if progress:
                progress.abandon()
            raise CliError(f"export failed: the download was cut ({type(exc).__name__}: {exc})", 2) from None
        finally:
            if tmp is not None:
                handle.close()
                Path(tmp).unlink(missing_ok=True)
    if progress:
        rows = f"{records.count} {unit}, " if counts_lines else ""
        where = "stdout" if to_stdout else args.output
        progress.finish(f"wrote {rows}{human_bytes(received)} to {where}")
    return 0


class _Records:
    """Rows of a CSV or NDJSON stream, counted chunk by chunk as they arrive. In CSV a value with
    a newline (a multi-line error message) is quoted, so only a newline outside quotes ends a
    row; a doubled quote inside a value toggles twice, which keeps the parity right. NDJSON
    escapes newlines in its strings: there every line is a row."""

    def __init__(self, fmt: str) -> None:
        self.csv = fmt == "csv"
        self.quoted = False
        self.lines = 0

    def feed(self, chunk: bytes) -> None:
        if not self.csv:
            self.lines += chunk.count(b"\n")
            return
        parts = chunk.split(b'"')
        self.lines += sum(part.count(b"\n") for part in parts[1 if self.quoted else 0::2])
        if len(parts) % 2 == 0:  # an odd number of quotes in the chunk
            self.quoted = not self.quoted

    @property
    def count(self) -> int:
        return max(0, self.lines - 1) if self.csv else self.lines  # CSV starts with a header line


def _open(output: str | None, to_stdout: bool):
    if to_stdout:
        return sys.stdout.buffer, None
    from . import CliError

    target = Path(output)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent or Path("."))
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc.strerror or exc}", 2) from None
    return os.fdopen(fd, "wb"), tmp
