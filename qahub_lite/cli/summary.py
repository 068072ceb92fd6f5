"""`qahub summary RUN`: a run's summary for a pull request or a CI log (at most ~60 lines):
verdict, counts, the quality gate, new failures first, failures grouped, flaky and slowest
tests, a link to the run. `--output "$GITHUB_STEP_SUMMARY"` appends it where GitHub Actions
shows it; `qahub upload --summary-file PATH` does the same right after an upload."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .remote import add_server_options, make_client


def register(commands) -> None:
    p = commands.add_parser(
        "summary", help="print a run's summary (Markdown or text) for a pull request or a CI log",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print a run's summary: verdict, counts, the quality gate's verdict and reasons, new failures "
        "first, the other failures grouped by their first error line, flaky and slowest tests and a link to the "
        "run page; at most about 60 lines whatever the run's size. See docs/ci.md.",
        epilog="examples:\n"
        "  qahub summary 7f3k2p9q --output \"$GITHUB_STEP_SUMMARY\"   # GitHub Actions job summary\n"
        "  qahub summary 7f3k2p9q --format text                    # a CI log",
    )
    p.add_argument("run", metavar="RUN", help="the run's id or short id")
    add_server_options(p)
    p.add_argument("--format", choices=("markdown", "text"), default="markdown",
                   help="markdown (default) or plain text")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="append the summary to this file (as $GITHUB_STEP_SUMMARY expects) instead of printing it")
    p.set_defaults(handler=run)


def fetch(client, run_ref: str, fmt: str = "markdown") -> str:
    return client.request("GET", f"/api/v1/runs/{run_ref}/summary", params={"format": fmt}).text


def append(path: str, text: str) -> None:
    """Append, never overwrite: GitHub gives every step of a job the same summary file."""
    target = Path(path)
    with target.open("a", encoding="utf-8") as handle:
        if target.stat().st_size:
            handle.write("\n")
        handle.write(text)


def write_after_upload(client, run_ref: str, path: str) -> None:
    """`qahub upload --summary-file`: the results are stored whatever happens here, so a
    summary that cannot be had or written is a warning, not a failed upload."""
    from ..client import ApiError

    try:
        append(path, fetch(client, run_ref))
    except ApiError as exc:
        print(f"qahub: warning: no summary written: {exc.message}", file=sys.stderr, flush=True)
    except OSError as exc:
        print(f"qahub: warning: cannot write the summary to {path}: {exc.strerror or exc}", file=sys.stderr,
              flush=True)


def run(args: argparse.Namespace) -> int:
    from ..client import ApiError
    from . import CliError

    with make_client(args) as client:
        try:
            text = fetch(client, args.run, args.format)
        except ApiError as exc:
            raise CliError(f"no summary for run {args.run}: {exc.message}", 2) from None
    if args.output:
        try:
            append(args.output, text)
        except OSError as exc:
            raise CliError(f"cannot write {args.output}: {exc.strerror or exc}", 2) from None
    else:
        sys.stdout.write(text)
    return 0
