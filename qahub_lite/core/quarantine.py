"""Tests as test health names and shows them, and their quarantine.

A test is an interned identity (`tests` row): a library test case, or an unlinked suite path
and title. Health routes name one by its integer id, or, when it is linked, by its test case's
code (`TC-042`) or id, so that links people paste keep working. A quarantine is set by a
person or by the auto-quarantine policy (triage.py), with a reason, a ticket and an optional
expiry; the gate then ignores the test's failures (docs/health.md, docs/triage.md). Every change
leaves an audit entry and queues a `test.quarantined` / `test.unquarantined` event.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ..db import tests as tests_db
from .clock import now_ms, row_id, to_iso
from .errors import Invalid, NotFound
from .triage_events import quarantine_changed


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


_tags = msgspec.json.Decoder(list[str])


def _info(row) -> TestInfo:
    return TestInfo(
        row["id"], row["title"], row["suite_path"], row["test_case_id"], row["test_case_code"],
        bool(row["quarantined"]), to_iso(row["quarantined_at"]), row["quarantine_reason"], row["quarantine_ticket"],
        to_iso(row["quarantine_expires_at"]), row["quarantined_by"], _tags.decode(row["tags"]) if row["tags"] else [],
    )


def find_test(conn, project_id: str, ref: str) -> TestInfo:
    """A test of the project by integer id, test case code or test case id; 404 otherwise."""
    row = None
    if row_id(ref) is not None:
        row = tests_db.test_by_id(conn, project_id, row_id(ref))
    if row is None:
        row = tests_db.test_by_case(conn, project_id, ref)
    if row is None:
        raise NotFound("Test not found in this project")
    return _info(row)


def test_infos(conn, project_id: str, test_ids: Iterable[int]) -> dict[int, TestInfo]:
    return {row["id"]: _info(row) for row in tests_db.tests_by_ids(conn, project_id, test_ids)}


def quarantined_ids(conn, project_id: str) -> set[int]:
    return set(tests_db.quarantined_tests(conn, project_id))


def set_quarantine(
    conn, project_id: str, ref: str, quarantined: bool, reason: str | None = None, *,
    ticket: str | None = None, expires_at: int | None = None, actor: str = "api",
) -> TestInfo:
    """Writer operation: quarantine a test (or lift it). Setting it twice keeps the first time
    and updates what is given (reason, ticket, expiry). `expires_at`: epoch ms, in the future."""
    test = find_test(conn, project_id, ref)
    now = now_ms()
    if quarantined:
        if expires_at is not None and expires_at <= now:
            raise Invalid("expires_at must be in the future")
        tests_db.quarantine_test(conn, test.id, now, reason, ticket, expires_at, actor)
    else:
        tests_db.lift_quarantine(conn, test.id)
    after = find_test(conn, project_id, str(test.id))
    if after.quarantined != test.quarantined or quarantined:
        _audit(conn, project_id, after, quarantined, actor, reason, ticket, "quarantined" if quarantined else
               "unquarantined")
    return after


def _audit(conn, project_id: str, test: TestInfo, on: bool, actor: str, reason: str | None,
           ticket: str | None, action: str) -> None:
    tests_db.add_quarantine_audit(conn, project_id, test.id, action, actor, reason, ticket, now_ms())
    info = {"test_id": test.id, "title": test.title, "suite": test.suite, "test_case_code": test.test_case_code}
    quarantine_changed(conn, project_id, info, on, actor, reason, ticket or test.quarantine_ticket,
                       test.quarantine_expires_at)


def lift_expired(conn, now: int | None = None) -> int:
    """Writer operation (a background job): lift every quarantine whose expiry has passed."""
    now = now if now is not None else now_ms()
    expired = tests_db.expired_quarantines(conn, now)
    for row in expired:
        project_id, test_id = row["project_id"], row["id"]
        test = find_test(conn, project_id, str(test_id))
        tests_db.lift_quarantine(conn, test_id)
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


def audit_log(conn, project_id: str, limit: int = 100) -> list[AuditEntry]:
    return [
        AuditEntry(r["test_id"], r["title"], r["action"], r["actor"], r["reason"], r["ticket"], to_iso(r["at"]))
        for r in tests_db.quarantine_audit(conn, project_id, limit)
    ]


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


def last_failures(conn, runs: list, wanted: list) -> dict[int, LastFailure]:
    """The latest failing result of each judged test, with its error (read only for the tests shown)."""
    out: dict[int, LastFailure] = {}
    for j in wanted:
        if j.last_failure_pos is None:
            continue
        run = runs[j.last_failure_pos]
        row = tests_db.result_of(conn, run.id, j.test_id)
        if row is not None:
            out[j.test_id] = LastFailure(
                run.id, run.short_id, to_iso(row["at"]), row["status"], shorten(row["error_message"])
            )
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
