"""Tests as test health names them, and their quarantine.

A test is an interned identity (`tests` row): a library test case, or an unlinked suite path
and title. Health routes name one by its integer id, or, when it is linked, by its test case's
code (`TC-042`) or id, so that links people paste keep working. A quarantine is set by a
person; the gate then ignores the test's failures (docs/health.md).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import msgspec

from .clock import now_ms, to_iso
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
    if ref.isdigit():
        rows = await src.fetch(f"{_SELECT} WHERE t.id = ? AND t.project_id = ?", (int(ref), project_id))
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
