"""`qahub wait RUN`: block a pipeline until a run has finished, and exit with its verdict.

The polling scripts of seeds 003 (QA.tech) and 004 (Qualigate), built in: poll
`GET /api/v1/runs/{id or short id}` with a growing interval until the run is COMPLETED,
ERROR or CANCELED. Exit 0 when it passed (or every test was skipped), 1 when it failed,
errored or was canceled, 2 on timeout or when the run cannot be read.

RUN is any id a trigger answered: a run's id or short id, a suite run id, or one of a Qualigate
project trigger's `test_run_ids` (resolved to the run it belongs to through Qualigate's status,
which names the run). While the run waits for an agent, the server's reason is printed as soon
as it says one ("no agent serves framework jest").

A server that is briefly unreachable or overloaded does not end the wait: deployments often
restart the hub while a pipeline waits on it. Only answers that cannot get better by waiting
(401, 403, 404) stop it early.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

import msgspec

from .remote import add_server_options, make_client

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_PARTS = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
# The interval grows by this factor up to --max-interval: quick feedback for short runs,
# little load for long ones.
_GROWTH = 1.5
TERMINAL = frozenset({"COMPLETED", "ERROR", "CANCELED"})
_NOTE_EVERY_S = 10.0


def parse_duration(text: str) -> float:
    """Seconds in "10m", "90s", "1h30m", "1.5h", "500ms" or a plain number of seconds."""
    value = text.strip().lower().replace(" ", "")
    if _NUMBER.fullmatch(value):
        return float(value)
    if not _PARTS.fullmatch(value):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (examples: 90s, 10m, 1h30m)")
    return sum(float(number) * _UNIT_S[unit] for number, unit in _PART.findall(value))


def register(commands) -> None:
    p = commands.add_parser(
        "wait", help="wait until a run has finished; exit 0 passed, 1 failed, 2 timeout or error",
        description="Poll a run until it is finished (COMPLETED, ERROR or CANCELED), printing its progress, then "
        "exit with its verdict: 0 passed (or all skipped), 1 failed, errored or canceled, 2 on timeout or when "
        "the run cannot be read. Use it to block a deployment on a triggered run.",
    )
    p.add_argument("run", metavar="RUN", help="the run's id or short id, or any id a trigger answered "
                   "(a Qualigate test_run_id or suite_run_id)")
    add_server_options(p)
    p.add_argument("--timeout", type=parse_duration, default=parse_duration("30m"), metavar="DURATION",
                   help="give up after this long, e.g. 90s, 10m, 1h (default: 30m)")
    p.add_argument("--interval", type=parse_duration, default=2.0, metavar="DURATION",
                   help="first pause between polls; it grows to --max-interval (default: 2s)")
    p.add_argument("--max-interval", type=parse_duration, default=30.0, metavar="DURATION",
                   help="longest pause between polls (default: 30s)")
    p.add_argument("--quiet", action="store_true", help="print only the final line")
    p.add_argument("--json", action="store_true", help="print the finished run as JSON instead of a sentence")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..client import ApiError
    from . import CliError

    if args.interval <= 0 or args.max_interval <= 0:
        raise CliError("--interval and --max-interval must be more than 0", 2)
    deadline = time.monotonic() + args.timeout
    interval = args.interval
    last_line = None
    with make_client(args, quiet=args.quiet) as client:
        # One quick attempt per poll: this loop is the retry, and its deadline is the limit.
        client.retries = 0
        run_ref = None  # the run's own id, once known
        note, note_asked = None, float("-inf")
        while True:
            try:
                if run_ref is None:
                    run_ref = _resolve(client, args.run)
                current = client.get(f"/api/v1/runs/{run_ref}")
            except ApiError as exc:
                if exc.status in (400, 401, 403, 404):
                    raise CliError(f"cannot read run {args.run}: {exc.message}", 2) from None
                current = None
                line = f"server not answering ({exc}); still waiting"
            else:
                if current.get("status") in TERMINAL:
                    return _finish(args, current)
                line = _progress(current)
                # Only tests still waiting can lack an agent; asked at most every _NOTE_EVERY_S, as
                # Qualigate's routes have their own rate limit, which a CI script may share.
                if not (current.get("counts") or {}).get("pending"):
                    note = None
                elif time.monotonic() - note_asked >= _NOTE_EVERY_S:
                    note, note_asked = _waiting_note(client, run_ref), time.monotonic()
                if note:
                    line += f" ({note})"
            if line != last_line and not args.quiet:
                print(f"qahub: {line}", file=sys.stderr, flush=True)
                last_line = line
            left = deadline - time.monotonic()
            if left <= 0:
                state = f" (still {current.get('status')}{'; ' + note if note else ''})" if current else ""
                raise CliError(f"timed out after {_human(args.timeout)} waiting for run {args.run}{state}", 2)
            time.sleep(min(interval, left))
            interval = min(interval * _GROWTH, args.max_interval)


def _resolve(client, ref: str) -> str:
    """The run's id for any id a trigger answered. A run id or short id is one already; a
    Qualigate test run id (a project trigger answers only those) is not, and Qualigate's suite
    status, which accepts both, names the run. Raises the runs route's 404 when neither knows it."""
    from ..client import ApiError

    try:
        client.get(f"/api/v1/runs/{ref}")
        return ref
    except ApiError as exc:
        if exc.status != 404:
            raise
        not_found = exc
    try:
        run_id = client.get("/api/v1/trigger", params={"suite_run_id": ref}).get("run_id")
    except ApiError as exc:
        if exc.status in (400, 404):
            raise not_found from None
        raise
    if not run_id:
        raise not_found
    return run_id


def _waiting_note(client, run_id: str) -> str | None:
    """The server's reason why the run waits ("no agent serves framework X"), if it gives one.
    Best effort: a server that cannot say does not stop the wait."""
    from ..client import ApiError

    try:
        return client.get("/api/v1/trigger", params={"suite_run_id": run_id}).get("message")
    except (ApiError, AttributeError):
        return None


def _progress(run: dict) -> str:
    counts = run.get("counts") or {}
    total, pending = counts.get("total", 0), counts.get("pending", 0)
    failing = counts.get("failed", 0) + counts.get("broken", 0)
    text = f"run {run.get('short_id')} {run.get('status')}: {total - pending}/{total} tests finished"
    return text + (f", {failing} failed" if failing else "")


def _finish(args: argparse.Namespace, run: dict) -> int:
    status, verdict = run.get("status"), run.get("verdict")
    passed = status == "COMPLETED" and verdict in ("PASSED", "SKIPPED")
    if args.json:
        sys.stdout.write(msgspec.json.encode(run).decode() + "\n")
    else:
        counts = run.get("counts") or {}
        detail = ", ".join(
            f"{counts[k]} {k}" for k in ("passed", "failed", "broken", "skipped", "flaky") if counts.get(k)
        )
        print(f"run {run.get('short_id')} {status}: {verdict or 'no verdict'}" + (f" ({detail})" if detail else ""))
    return 0 if passed else 1


def _human(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"
