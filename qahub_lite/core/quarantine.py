"""Tests as test health names and shows them, and their quarantine.

A test is an interned identity (`tests` row): a library test case, or an unlinked suite path
and title. Health routes name one by its integer id, or, when it is linked, by its test case's
code (`TC-042`) or id, so that links people paste keep working. A quarantine is set by a
person or by the auto-quarantine policy (triage.py), with a reason, a ticket and an optional
expiry; the gate then ignores the test's failures (docs/health.md, docs/triage.md). Every change
leaves an audit entry and queues a `test.quarantined` / `test.unquarantined` event.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import msgspec

from .clock import now_ms, row_id, to_iso
from .errors import Invalid, NotFound
from .triage_events import quarantine_changed
from .window import Source, drive, source


class TestInfo(msgspec.Struct):
    id: int
    title: str
    suite: str
    test_case_id: str | None
    test_case_code: str | None
    quarantined: bool
    quarantined_at: str | None
    quarantine_reason: str | None
    quarantine_ticket: str | None = None
    quarantine_expires_at: str | None = None
    quarantined_by: str | None = None  # api, dashboard:<user>, policy
    tags: list[str] = []  # of the test's latest tagged result


_SELECT = (
    "SELECT t.id, t.title, t.suite_path, t.test_case_id, c.code, t.quarantined, t.quarantined_at, "
    "t.quarantine_reason, t.quarantine_ticket, t.quarantine_expires_at, t.quarantined_by, t.tags "
    "FROM tests t LEFT JOIN test_cases c ON c.id = t.test_case_id"
)
_CHUNK = 500
_tags = msgspec.json.Decoder(list[str])


def _info(row) -> TestInfo:
    return TestInfo(row[0], row[1], row[2], row[3], row[4], bool(row[5]), to_iso(row[6]), row[7], row[8],
                    to_iso(row[9]), row[10], _tags.decode(row[11]) if row[11] else [])


async def find_test(conn, project_id: str, ref: str) -> TestInfo:
    """A test of the project by integer id, test case code or test case id; 404 otherwise."""
    src = source(conn)
    rows: list = []
    if row_id(ref) is not None:
        rows = await src.fetch(f"{_SELECT} WHERE t.id = ? AND t.project_id = ?", (row_id(ref), project_id))
    if not rows:
        rows = await src.fetch(
            f"{_SELECT} WHERE t.project_id = ? AND t.identity = 'c:' || "
            "coalesce((SELECT id FROM test_cases WHERE project_id = ? AND code = ?), ?)",
            (project_id, project_id, ref, ref),
        )
    if not rows:
        raise NotFound("Test not found in this project")
    return _info(rows[0])


async def test_infos(src: Source, project_id: str, test_ids: Iterable[int]) -> dict[int, TestInfo]:
    ids = list(test_ids)
    out: dict[int, TestInfo] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows = await src.fetch(
            f"{_SELECT} WHERE t.project_id = ? AND t.id IN ({','.join('?' * len(chunk))})", (project_id, *chunk)
        )
        for row in rows:
            out[row[0]] = _info(row)
    return out


async def quarantined_ids(src: Source, project_id: str) -> set[int]:
    rows = await src.fetch("SELECT id FROM tests WHERE project_id = ? AND quarantined = 1", (project_id,))
    return {r[0] for r in rows}


def set_quarantine(
    conn: sqlite3.Connection, project_id: str, ref: str, quarantined: bool, reason: str | None = None, *,
    ticket: str | None = None, expires_at: int | None = None, actor: str = "api",
) -> TestInfo:
    """Writer operation: quarantine a test (or lift it). Setting it twice keeps the first time
    and updates what is given (reason, ticket, expiry). `expires_at`: epoch ms, in the future."""
    test = drive(find_test(conn, project_id, ref))
    now = now_ms()
    if quarantined:
        if expires_at is not None and expires_at <= now:
            raise Invalid("expires_at must be in the future")
        conn.execute(
            "UPDATE tests SET quarantined = 1, quarantined_at = coalesce(quarantined_at, ?), "
            "quarantine_reason = coalesce(?, quarantine_reason), quarantine_ticket = coalesce(?, quarantine_ticket), "
            "quarantine_expires_at = ?, quarantined_by = ? WHERE id = ?",
            (now, reason, ticket, expires_at, actor, test.id),
        )
    else:
        conn.execute(
            "UPDATE tests SET quarantined = 0, quarantined_at = NULL, quarantine_reason = NULL, "
            "quarantine_ticket = NULL, quarantine_expires_at = NULL, quarantined_by = NULL WHERE id = ?",
            (test.id,),
        )
    after = drive(find_test(conn, project_id, str(test.id)))
    if after.quarantined != test.quarantined or quarantined:
        _audit(conn, project_id, after, quarantined, actor, reason, ticket, "quarantined" if quarantined else
               "unquarantined")
    return after


def _audit(conn: sqlite3.Connection, project_id: str, test: TestInfo, on: bool, actor: str, reason: str | None,
           ticket: str | None, action: str) -> None:
    conn.execute(
        "INSERT INTO quarantine_audit (project_id, test_id, action, actor, reason, ticket, at) VALUES (?,?,?,?,?,?,?)",
        (project_id, test.id, action, actor, reason, ticket, now_ms()),
    )
    info = {"test_id": test.id, "title": test.title, "suite": test.suite, "test_case_code": test.test_case_code}
    quarantine_changed(conn, project_id, info, on, actor, reason, ticket or test.quarantine_ticket,
                       test.quarantine_expires_at)


def lift_expired(conn: sqlite3.Connection, now: int | None = None) -> int:
    """Writer operation (a background job): lift every quarantine whose expiry has passed."""
    now = now if now is not None else now_ms()
    expired = conn.execute(
        "SELECT project_id, id FROM tests WHERE quarantined = 1 AND quarantine_expires_at <= ?", (now,)
    ).fetchall()
    for project_id, test_id in expired:
        test = drive(find_test(conn, project_id, str(test_id)))
        conn.execute(
            "UPDATE tests SET quarantined = 0, quarantined_at = NULL, quarantine_reason = NULL, "
            "quarantine_ticket = NULL, quarantine_expires_at = NULL, quarantined_by = NULL WHERE id = ?", (test_id,),
        )
        _audit(conn, project_id, test, False, "expiry", f"the quarantine expired at {test.quarantine_expires_at}",
               test.quarantine_ticket, "expired")
    return len(expired)


class AuditEntry(msgspec.Struct):
    test_id: int
    title: str
    action: str
    actor: str
    reason: str | None
    ticket: str | None
    at: str | None


async def audit_log(src: Source, project_id: str, limit: int = 100) -> list[AuditEntry]:
    rows = await src.fetch(
        "SELECT a.test_id, t.title, a.action, a.actor, a.reason, a.ticket, a.at FROM quarantine_audit a "
        "JOIN tests t ON t.id = a.test_id WHERE a.project_id = ? ORDER BY a.at DESC, a.id DESC LIMIT ?",
        (project_id, limit),
    )
    return [AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], to_iso(r[6])) for r in rows]


# --- a test's health, as routes and pages show it (flaky.py judges it) --------------------


class LastFailure(msgspec.Struct):
    run_id: str
    short_id: str
    at: str | None
    status: str
    error_message: str | None


class TestHealth(msgspec.Struct):
    """A test's state with the figures behind it (docs/health.md)."""

    test_id: int
    title: str
    suite: str
    test_case_id: str | None
    test_case_code: str | None
    state: str
    quarantined: bool
    samples: int
    failures: int
    fail_rate: float
    flips: int
    flip_rate: float
    retry_passes: int
    retry_rate: float
    conflicting_commits: int
    conflict_rate: float
    flakiness: float
    clean_streak: int
    last_failure: LastFailure | None
    tags: list[str] = []
    quarantine_reason: str | None = None
    quarantine_ticket: str | None = None
    quarantine_expires_at: str | None = None


async def last_failures(src: Source, runs: list, wanted: list) -> dict[int, LastFailure]:
    """The latest failing result of each judged test, with its error (read only for the tests shown)."""
    out: dict[int, LastFailure] = {}
    for j in wanted:
        if j.last_failure_pos is None:
            continue
        run = runs[j.last_failure_pos]
        rows = await src.fetch(
            "SELECT status, error_message, coalesce(executed_at, created_at) FROM results "
            "WHERE run_id = ? AND test_id = ?",
            (run.id, j.test_id),
        )
        if rows:
            status, message, at = rows[0]
            out[j.test_id] = LastFailure(run.id, run.short_id, to_iso(at), status, shorten(message))
    return out


def shorten(text: str | None, limit: int = 500) -> str | None:
    """Error messages in lists are cut: the whole one is a click away, on the result."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + "…"


def health_of(j, info: TestInfo, last: LastFailure | None) -> TestHealth:
    """A flaky.Judgement of a test, shown with the test's names."""
    return TestHealth(
        test_id=j.test_id, title=info.title, suite=info.suite, test_case_id=info.test_case_id,
        test_case_code=info.test_case_code, state=j.state, quarantined=info.quarantined, samples=j.samples,
        failures=j.failures, fail_rate=j.fail_rate, flips=j.flips, flip_rate=j.flip_rate,
        retry_passes=j.retry_passes, retry_rate=j.retry_rate, conflicting_commits=j.conflicting_commits,
        conflict_rate=j.conflict_rate, flakiness=j.flakiness, clean_streak=j.clean_streak, last_failure=last,
        tags=info.tags, quarantine_reason=info.quarantine_reason, quarantine_ticket=info.quarantine_ticket,
        quarantine_expires_at=info.quarantine_expires_at,
    )
