"""`qahub upload` (also `qa-hub upload`, seed 000's command line): parse test reports and send
them to a server as one run.

Every file is parsed before anything is sent, so a malformed report stops the upload whole
(exit 2) instead of leaving half a run behind. Exit codes: 0 uploaded; 1 uploaded, but tests
failed and --fail-on-failures was given; 2 usage, parse or server error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

import msgspec

from .remote import add_server_options, make_client


def register(commands) -> None:
    from ..reports import FORMATS

    p = commands.add_parser(
        "upload", help="parse test reports and upload them as one run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Parse test reports (files, or folders searched for reports) and upload them to a qahub-lite "
        "server as one run, with the CI context (branch, commit, PR, build URL) of GitHub Actions, GitLab CI, "
        "Jenkins, CircleCI, Buildkite or Azure Pipelines, and the screenshots, videos and traces the reports "
        "reference. A payload saved by the pytest plugin is sent as it is.",
        epilog="formats (--format):\n" + "\n".join(f"  {name:<16} {text}" for name, text in FORMATS.items())
        + "\n  aliases: playwright, jest, vitest, mocha, cypress, go, rspec, dart, mstest, xunit, ...\n\n"
        "exit codes: 0 uploaded; 1 uploaded but tests failed (with --fail-on-failures); 2 usage, parse or "
        "server error\n\nexample:\n  qa-hub upload --url https://qahub.example.com --project web-shop "
        "--format playwright --run-name \"CI #442\" playwright-results.json",
    )
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="report files, folders to search for reports, or payload files saved by the pytest plugin")
    add_server_options(p)
    p.add_argument("--project", metavar="ID",
                   help="the project's id or slug (default: $QAHUB_PROJECT, else the one in a saved payload)")
    p.add_argument("--format", default="auto", metavar="NAME",
                   help="the reports' format, or auto to detect it from each file's content (default: auto)")
    p.add_argument("--run-name", metavar="NAME", help="the run's display name (default: the server's timestamp)")
    p.add_argument("--environment", metavar="NAME", help="an environment label such as staging")
    p.add_argument("--framework", metavar="NAME",
                   help="the run's framework label (default: from the format, e.g. playwright)")
    p.add_argument("--fail-on-failures", action="store_true",
                   help="exit 1 when a test failed or broke (after uploading)")
    p.add_argument("--fail-on-rejected", action="store_true",
                   help="exit 2 when the server rejected any result (207), e.g. an unknown test case code")
    p.add_argument("--strict-codes", action="store_true",
                   help="let the server reject results whose @qa-hub code is not in the project's library "
                   "(by default they are kept as unlinked results and listed in a warning)")
    p.add_argument("--keep-unknown-codes", action="store_true", help=argparse.SUPPRESS)  # the default now
    p.add_argument("--root", metavar="DIR",
                   help="the repository root test files are named relative to (default: the top of the git "
                   "checkout, else the current folder); see docs/identity.md")
    p.add_argument("--variant", metavar="LABEL",
                   help="a label added to every result's variant, so that the same tests run by other jobs "
                   "(a matrix entry such as py3.12-linux) keep their own histories; see docs/identity.md")
    p.add_argument("--branch", metavar="NAME",
                   help="the run's branch (default: $QAHUB_BRANCH, else the CI provider's, else the git checkout's)")
    p.add_argument("--commit", metavar="SHA",
                   help="the run's commit (default: $QAHUB_COMMIT, else the CI provider's, else the git checkout's)")
    p.add_argument("--attachments-from", metavar="DIR", action="append", default=[],
                   help="also send attachments from this folder (by default only files inside the report's "
                   "folder or the repository root are sent); repeatable")
    p.add_argument("--dry-run", action="store_true",
                   help="parse and print what would be sent, as a summary table; send nothing")
    p.add_argument("--no-attachments", action="store_true",
                   help="do not upload the screenshots, videos and traces the reports reference")
    p.add_argument("--chunk-size", type=int, metavar="N",
                   help="most results per request; larger runs are sent in chunks (default: 5000)")
    p.add_argument("--json", action="store_true",
                   help="print the outcome as JSON {run_id, short_id, url, accepted, rejected, errors, ...}")
    p.add_argument("--summary-file", metavar="PATH",
                   help="after uploading, append the run's Markdown summary to PATH (e.g. \"$GITHUB_STEP_SUMMARY\")")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..payload import VARIANT_MAX
    from ..upload import DEFAULT_CHUNK_RESULTS
    from . import CliError

    if args.chunk_size is not None and args.chunk_size < 1:
        raise CliError("--chunk-size must be 1 or more", 2)
    if args.variant and len(args.variant) > VARIANT_MAX:
        # The server keeps that many characters: a longer label would be cut, and two labels
        # that differ only past the cut would become one variant.
        raise CliError(f"--variant must be at most {VARIANT_MAX} characters, not {len(args.variant)}", 2)
    payload, rows = _read(args)
    if not (payload.run.ci and payload.run.ci.branch):
        print("qahub: warning: no branch for this run (no --branch, QAHUB_BRANCH, CI variables or git "
              "branch): it is left out of flakiness, grade, trends and the gate; pass --branch NAME",
              file=sys.stderr, flush=True)
    project = args.project or os.environ.get("QAHUB_PROJECT") or payload.run.project_id
    payload.run.project_id = project or ""
    if args.no_attachments:
        payload.attachments = []
    if args.dry_run:
        _print_dry_run(payload, rows, args.chunk_size or DEFAULT_CHUNK_RESULTS, sys.stdout)
        return _exit_code(args, payload, rejected=0)
    if not project:
        raise CliError("no project: pass --project or set QAHUB_PROJECT", 2)
    return _send(args, payload)


def _read(args: argparse.Namespace):
    """Parse every path into one payload; (payload, table rows). Nothing is sent here."""
    from ..ci_env import context
    from ..reports import FORMATS, ReportError, iter_report_files, parse_report
    from ..reports.identity import assign_variants, find_root, in_several_reports, normalize
    from ..reports.timing import report_timing
    from ..payload import Payload, RunInfo, add_report, add_saved, count, framework_of, is_saved_payload
    from ..payload import load_payload, resolve_format
    from ..upload import confine
    from . import CliError

    try:
        fmt = resolve_format(args.format, FORMATS)
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    root = find_root(args.root)
    if args.root and not root.is_dir():
        # Reports made on another machine name its folders: the root is a prefix to remove,
        # it need not exist here. Said anyway, in case it is a typo.
        print(f"qahub: warning: --root {args.root} is not a folder here; test files are still named "
              "relative to it", file=sys.stderr, flush=True)
    payload = Payload()
    parsed: list = []  # (path, report or saved payload)
    formats: set[str] = set()
    saved_run = None
    spans: list[tuple[int, int]] = []
    unplaced: list[int] = []  # durations of reports that do not say when they started
    for path in iter_report_files(args.paths):
        try:
            if path.is_file() and is_saved_payload(path):
                saved = load_payload(path)
                saved_run = saved_run or saved.run
                parsed.append((path, saved))
                formats.add(saved.run.framework or "saved")
                continue
            report = parse_report(path, fmt)
        except (ReportError, ValueError) as exc:
            raise CliError(f"{exc} (nothing was uploaded)", 2) from None
        normalize(report, root, args.framework)
        parsed.append((path, report))
        formats.add(report.framework or framework_of(report.format))
        start, took = report_timing(path, report.format)
        if start is not None:
            spans.append((start, start + (took or 0)))
        elif took is not None:
            unplaced.append(took)
    if not parsed:
        raise CliError(f"no test reports found in {', '.join(args.paths)}", 2)
    reports = [(path, item) for path, item in parsed if not isinstance(item, Payload)]
    shared, holders = in_several_reports([item.results for _, item in reports])
    if shared:
        names = ", ".join(Path(reports[i][0]).name for i in holders[:4]) + (" ..." if len(holders) > 4 else "")
        print(f"qahub: warning: {_plural(shared, 'test')} {'is' if shared == 1 else 'are'} in more than one report of this upload ({names}): "
              "each copy is kept as a result of its own (variant #2, ...); if these are two reporters of one "
              "test run, upload one of them", file=sys.stderr, flush=True)
    # Every execution keeps its own result: results of this upload that would share one
    # identity get a variant from what tells them apart (reports/identity.py).
    assign_variants([r for _, item in parsed if not isinstance(item, Payload) for r in item.results], args.variant)
    placed = []
    for path, item in parsed:
        if isinstance(item, Payload):
            start, end = add_saved(payload, item)
            if args.variant:
                for result in payload.results[start:end]:
                    result["variant"] = f"{result['variant']} / {args.variant}" if result.get("variant") else args.variant
            placed.append((path, "saved payload", start, end))
        else:
            start, end = add_report(payload, item, None)
            placed.append((path, item.format, start, end))
    warn = lambda message: print(f"qahub: warning: {message}", file=sys.stderr, flush=True)  # noqa: E731
    confine(payload, root, [Path(d) for d in args.attachments_from], warn)
    rows = [
        (str(path), kind, count(payload.results[start:end]),
         sum(1 for a in payload.attachments if start <= a.index < end))
        for path, kind, start, end in placed
    ]
    base = saved_run or RunInfo()
    framework = args.framework or base.framework or (formats.pop() if len(formats) == 1 else None)
    started_at, duration_ms = base.started_at, base.duration_ms
    if spans and started_at is None:
        import datetime as dt

        first, last = min(s for s, _ in spans), max(e for _, e in spans)
        started_at = dt.datetime.fromtimestamp(first / 1000, dt.timezone.utc).isoformat()
        duration_ms = last - first
    elif unplaced and duration_ms is None:
        # No report says when it started (Surefire writes no `timestamp`): the reports of one
        # upload ran one after another (Maven's classes do), so the run took their sum.
        duration_ms = sum(unplaced)
    payload.run = RunInfo(
        project_id=base.project_id, run_name=args.run_name or base.run_name,
        environment=args.environment or base.environment, framework=framework,
        # A saved payload keeps the CI context of the job that ran the tests, not the sender's.
        ci=base.ci or context(os.environ, branch=args.branch, commit=args.commit, cwd=str(root)),
        started_at=started_at, duration_ms=duration_ms,
    )
    return payload, rows


def _send(args: argparse.Namespace, payload) -> int:
    from ..client import ApiError
    from ..upload import DEFAULT_CHUNK_RESULTS, UploadFailed, send, verify
    from . import CliError

    bar = ProgressBar(sys.stderr, "uploading")
    with make_client(args) as client:
        try:
            outcome = send(
                client, payload, chunk_results=args.chunk_size or DEFAULT_CHUNK_RESULTS, progress=bar.update,
                warn=lambda message: print(f"qahub: warning: {message}", file=sys.stderr, flush=True),
                strict_codes=args.strict_codes,
            )
            mismatch = verify(client, payload, outcome)
        except UploadFailed as exc:
            bar.abandon()
            raise CliError(str(exc), 2) from None
        except ApiError as exc:
            raise CliError(f"uploaded, but the stored run could not be checked: {exc}", 2) from None
        if args.summary_file:
            from .summary import write_after_upload

            write_after_upload(client, outcome.run_id, args.summary_file)
    bar.finish(f"sent {_plural(outcome.accepted + outcome.rejected, 'result')} in {outcome.chunks} requests")
    if args.json:
        sys.stdout.write(msgspec.json.encode(outcome).decode() + "\n")
    else:
        _print_outcome(payload, outcome, sys.stdout)
    if outcome.rejected:
        _print_rejections(payload, outcome, sys.stderr)
    if outcome.unlinked:
        _print_unlinked(payload, outcome.unlinked, sys.stderr)
    if mismatch:
        raise CliError(mismatch, 2)
    return _exit_code(args, payload, outcome.rejected)


def _print_unlinked(payload, unlinked: list[int], out: TextIO, limit: int = 20) -> None:
    codes = sorted({payload.results[i]["test_case_code"] for i in unlinked})
    kept = "1 result kept as an unlinked result" if len(unlinked) == 1 else f"{len(unlinked)} results kept as unlinked results"
    whose = ("its test case code is" if len(unlinked) == 1 else
             "their test case code is" if len(codes) == 1 else "their test case codes are")
    out.write(f"qahub: warning: {kept}: {whose} not in this project "
              f"({', '.join(codes[:limit])}{' ...' if len(codes) > limit else ''}); "
              "add the test cases, or pass --strict-codes to have them rejected\n")


def _exit_code(args: argparse.Namespace, payload, rejected: int) -> int:
    from ..payload import count

    if rejected and args.fail_on_rejected:
        return 2
    if args.fail_on_failures and count(payload.results).failing:
        return 1
    return 0


def _summary(counts) -> str:
    passed = f"{counts.passed} passed" + (f" ({counts.flaky} flaky)" if counts.flaky else "")
    parts = [passed, f"{counts.failed} failed"]
    for label in ("broken", "skipped", "unknown"):
        if getattr(counts, label):
            parts.append(f"{getattr(counts, label)} {label}")
    return ", ".join(parts)


def _print_outcome(payload, outcome, out: TextIO) -> None:
    from ..payload import count

    rejected = {e.index for e in outcome.errors}
    accepted = [r for i, r in enumerate(payload.results) if i not in rejected]
    out.write(f"Uploaded {_plural(outcome.accepted, 'result')} to run {outcome.short_id}: {_summary(count(accepted))}\n")
    if outcome.attachments_uploaded or outcome.attachments_skipped:
        out.write(f"Attachments: {outcome.attachments_uploaded} uploaded, {outcome.attachments_skipped} skipped\n")
    if outcome.url:
        out.write(f"{outcome.url}\n")


def _print_rejections(payload, outcome, out: TextIO, limit: int = 20) -> None:
    out.write(f"qahub: warning: the server rejected {_plural(outcome.rejected, 'result')}:\n")
    for error in outcome.errors[:limit]:
        result = payload.results[error.index] if error.index < len(payload.results) else {}
        name = " › ".join(filter(None, [result.get("suite"), result.get("title")])) or f"result {error.index}"
        out.write(f"  {name}: {error.error}\n")
    if len(outcome.errors) > limit:
        out.write(f"  ... and {len(outcome.errors) - limit} more (see --json)\n")


def _print_dry_run(payload, rows, chunk_size: int, out: TextIO) -> None:
    from ..payload import count

    headers = ("FILE", "FORMAT", "TESTS", "PASSED", "FAILED", "BROKEN", "SKIPPED", "FLAKY", "FILES")
    table = [
        (_short(path), fmt, c.tests, c.passed, c.failed, c.broken, c.skipped, c.flaky, files)
        for path, fmt, c, files in rows
    ]
    total = count(payload.results)
    table.append(("total", "", total.tests, total.passed, total.failed, total.broken, total.skipped, total.flaky,
                  len(payload.attachments)))
    widths = [max(len(str(row[i])) for row in [headers, *table]) for i in range(len(headers))]
    for index, row in enumerate([headers, *table]):
        if index == len(table):  # a rule above the total
            out.write("  ".join("-" * w for w in widths) + "\n")
        cells = [str(v).ljust(w) if i < 2 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths))]
        out.write("  ".join(cells).rstrip() + "\n")
    run = payload.run
    requests = max(1, -(-len(payload.results) // chunk_size))
    out.write(
        f"\nDry run, nothing sent. Would create run {run.run_name or '(named by the server)'!s} in project "
        f"{run.project_id or '(none given)'}"
        + (f", environment {run.environment}" if run.environment else "")
        + (f", framework {run.framework}" if run.framework else "")
        + f", in {requests} request{'s' if requests > 1 else ''}.\n"
    )
    missing = sum(1 for a in payload.attachments if not Path(a.path).is_file())
    if payload.attachments:
        out.write(f"Attachments: {len(payload.attachments)} referenced, {missing} of them missing on disk.\n")
    if run.ci is not None:
        ci = msgspec.to_builtins(run.ci)
        out.write("CI: " + ", ".join(f"{k}={v}" for k, v in ci.items()) + "\n")


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _short(path: str, width: int = 60) -> str:
    return path if len(path) <= width else "…" + path[-(width - 1):]


class ProgressBar:
    """A one-line bar on a terminal; on a CI log (not a TTY) only the final line, and only
    for chunked uploads, where the bar would have shown something."""

    def __init__(self, stream: TextIO, label: str, width: int = 30) -> None:
        self.stream, self.label, self.width = stream, label, width
        self.tty = stream.isatty()
        self.updates = 0

    def update(self, done: int, total: int) -> None:
        self.updates += 1
        if not self.tty:
            return
        filled = self.width if total == 0 else self.width * done // total
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} results")
        self.stream.flush()

    def finish(self, line: str) -> None:
        if self.updates > 1:
            self.stream.write(("\r\033[K" if self.tty else "") + f"qahub: {line}\n")
        elif self.tty and self.updates:
            self.stream.write("\r\033[K")
        self.stream.flush()

    def abandon(self) -> None:
        if self.tty and self.updates:
            self.stream.write("\n")
            self.stream.flush()
