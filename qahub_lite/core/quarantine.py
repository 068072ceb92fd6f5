"""Tests as test health names and shows them, and their quarantine.

A test is an interned identity (`tests` row): a library test case, or an unlinked suite path
and title. Health routes name one by its integer id, or, when it is linked, by its test case's
code (`TC-042`) or id, so that links people paste keep working. A quarantine is set by a
person; the gate then ignores the test's failures (docs/health.md).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import msgspec

from .clock import now_ms, row_id, to_iso
from .errors import NotFound
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


_SELECT = (
    "SELECT t.id, t.title, t.suite_path, t.test_case_id, c.code, t.quarantined, t.quarantined_at, "
    "t.quarantine_reason FROM tests t LEFT JOIN test_cases c ON c.id = t.test_case_id"
)
_CHUNK = 500


def _info(row) -> TestInfo:
    return TestInfo(row[0], row[1], row[2], row[3], row[4], bool(row[5]), to_iso(row[6]), row[7])


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
    conn: sqlite3.Connection, project_id: str, ref: str, quarantined: bool, reason: str | None = None
) -> TestInfo:
    """Writer operation: quarantine a test (or lift it). Setting it twice keeps the first time."""
    test = drive(find_test(conn, project_id, ref))
    if quarantined:
        conn.execute(
            "UPDATE tests SET quarantined = 1, quarantined_at = coalesce(quarantined_at, ?), "
            "quarantine_reason = coalesce(?, quarantine_reason) WHERE id = ?",
            (now_ms(), reason, test.id),
        )
    else:
        conn.execute(
            "UPDATE tests SET quarantined = 0, quarantined_at = NULL, quarantine_reason = NULL WHERE id = ?",
            (test.id,),
        )
    return drive(find_test(conn, project_id, str(test.id)))


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
    )
