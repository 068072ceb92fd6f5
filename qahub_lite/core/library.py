"""The test library: suites and test cases. A test case has a `code` such as TC-042, unique in
its project; a case created without one is numbered from the project's counter."""

from __future__ import annotations

import re
import sqlite3

import aiosqlite
import msgspec

from .clock import new_id, now_ms, to_iso
from .errors import Conflict, Invalid, NotFound
from .paging import clamp_limit, decode_cursor, split_page

CODE_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


class Automation(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """How an agent finds this test in the repository: the framework whose command runs it,
    and what selects it (a grep pattern, a file, a test id). Never a command."""

    framework: str | None = None
    grep: str | None = None
    file: str | None = None


class Suite(msgspec.Struct):
    id: str
    project_id: str
    parent_id: str | None
    name: str
    description: str | None
    created_at: str | None
    updated_at: str | None


class TestCase(msgspec.Struct):
    id: str
    project_id: str
    suite_id: str | None
    code: str
    title: str
    description: str | None
    automation: Automation | None
    created_at: str | None
    updated_at: str | None


class SuitePage(msgspec.Struct):
    data: list[Suite]
    next_cursor: str | None


class TestCasePage(msgspec.Struct):
    data: list[TestCase]
    next_cursor: str | None


_automation_decoder = msgspec.json.Decoder(Automation)
_SUITE_COLUMNS = "id, project_id, parent_id, name, description, created_at, updated_at"
_CASE_COLUMNS = "id, project_id, suite_id, code, title, description, automation, created_at, updated_at"


def _suite(r) -> Suite:
    return Suite(r[0], r[1], r[2], r[3], r[4], to_iso(r[5]), to_iso(r[6]))


def _case(r) -> TestCase:
    return TestCase(
        r[0], r[1], r[2], r[3], r[4], r[5], _automation_decoder.decode(r[6]) if r[6] else None,
        to_iso(r[7]), to_iso(r[8]),
    )


def _check_project(conn: sqlite3.Connection, tenant_id: str, project_id: str) -> None:
    if conn.execute("SELECT 1 FROM projects WHERE id = ? AND tenant_id = ?", (project_id, tenant_id)).fetchone() is None:
        raise NotFound("Project not found")


def _check_suite(conn: sqlite3.Connection, project_id: str, suite_id: str | None) -> None:
    if suite_id is not None and conn.execute(
        "SELECT 1 FROM suites WHERE id = ? AND project_id = ?", (suite_id, project_id)
    ).fetchone() is None:
        raise NotFound("Suite not found")


# --- suites ---------------------------------------------------------------------------


def create_suite(
    conn: sqlite3.Connection, tenant_id: str, project_id: str, *, name: str, description: str | None = None,
    parent_id: str | None = None,
) -> Suite:
    _check_project(conn, tenant_id, project_id)
    _check_suite(conn, project_id, parent_id)
    if not name.strip():
        raise Invalid("name must not be empty")
    suite_id, now = new_id(), now_ms()
    conn.execute(
        f"INSERT INTO suites ({_SUITE_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
        (suite_id, project_id, parent_id, name.strip(), description, now, now),
    )
    return get_suite_sync(conn, tenant_id, suite_id)


def get_suite_sync(conn: sqlite3.Connection, tenant_id: str, suite_id: str) -> Suite:
    row = conn.execute(
        f"SELECT {', '.join('s.' + c.strip() for c in _SUITE_COLUMNS.split(','))} FROM suites s "
        "JOIN projects p ON p.id = s.project_id WHERE s.id = ? AND p.tenant_id = ?",
        (suite_id, tenant_id),
    ).fetchone()
    if row is None:
        raise NotFound("Suite not found")
    return _suite(row)


async def get_suite(conn: aiosqlite.Connection, tenant_id: str, suite_id: str) -> Suite:
    rows = await conn.execute_fetchall(
        f"SELECT {', '.join('s.' + c.strip() for c in _SUITE_COLUMNS.split(','))} FROM suites s "
        "JOIN projects p ON p.id = s.project_id WHERE s.id = ? AND p.tenant_id = ?",
        (suite_id, tenant_id),
    )
    if not rows:
        raise NotFound("Suite not found")
    return _suite(rows[0])


async def list_suites(
    conn: aiosqlite.Connection, project_id: str, *, limit: int | None = None, cursor: str | None = None
) -> SuitePage:
    limit = clamp_limit(limit)
    after = decode_cursor(cursor)
    sql, params = f"SELECT {_SUITE_COLUMNS} FROM suites WHERE project_id = ?", [project_id]
    if after:
        sql += " AND (created_at, id) > (?, ?)"
        params += [after[0], after[1]]
    rows = list(await conn.execute_fetchall(sql + " ORDER BY created_at, id LIMIT ?", (*params, limit + 1)))
    rows, next_cursor = split_page(rows, limit, created_col=5)
    return SuitePage([_suite(r) for r in rows], next_cursor)


def update_suite(conn: sqlite3.Connection, tenant_id: str, suite_id: str, changes: dict) -> Suite:
    suite = get_suite_sync(conn, tenant_id, suite_id)
    if "parent_id" in changes:
        _check_suite(conn, suite.project_id, changes["parent_id"])
        if changes["parent_id"] == suite_id:
            raise Invalid("a suite cannot be its own parent")
    if "name" in changes and not str(changes["name"]).strip():
        raise Invalid("name must not be empty")
    sets = [f"{k} = ?" for k in changes] + ["updated_at = ?"]
    conn.execute(f"UPDATE suites SET {', '.join(sets)} WHERE id = ?", (*changes.values(), now_ms(), suite_id))
    return get_suite_sync(conn, tenant_id, suite_id)


def delete_suite(conn: sqlite3.Connection, tenant_id: str, suite_id: str) -> None:
    get_suite_sync(conn, tenant_id, suite_id)
    conn.execute("DELETE FROM suites WHERE id = ?", (suite_id,))


# --- test cases -----------------------------------------------------------------------


def _next_code(conn: sqlite3.Connection, project_id: str) -> str:
    while True:
        number = conn.execute(
            "UPDATE projects SET next_case_number = next_case_number + 1 WHERE id = ? RETURNING next_case_number - 1",
            (project_id,),
        ).fetchone()[0]
        code = f"TC-{number:03d}"
        if conn.execute("SELECT 1 FROM test_cases WHERE project_id = ? AND code = ?", (project_id, code)).fetchone() is None:
            return code


def create_test_case(
    conn: sqlite3.Connection, tenant_id: str, project_id: str, *, title: str, code: str | None = None,
    suite_id: str | None = None, description: str | None = None, automation: Automation | None = None,
) -> TestCase:
    _check_project(conn, tenant_id, project_id)
    _check_suite(conn, project_id, suite_id)
    if not title.strip():
        raise Invalid("title must not be empty")
    if code is not None:
        if not CODE_PATTERN.match(code):
            raise Invalid(f"code {code!r} is not valid: use letters, digits, '-', '_' or '.', starting with a letter")
        if conn.execute("SELECT 1 FROM test_cases WHERE project_id = ? AND code = ?", (project_id, code)).fetchone():
            raise Conflict(f"test case code {code} exists already in this project")
    else:
        code = _next_code(conn, project_id)
    case_id, now = new_id(), now_ms()
    conn.execute(
        f"INSERT INTO test_cases ({_CASE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
        (
            case_id, project_id, suite_id, code, title.strip(), description,
            msgspec.json.encode(automation).decode() if automation else None, now, now,
        ),
    )
    return get_test_case_sync(conn, tenant_id, case_id)


_CASE_SELECT = (
    f"SELECT {', '.join('c.' + c.strip() for c in _CASE_COLUMNS.split(','))} FROM test_cases c "
    "JOIN projects p ON p.id = c.project_id"
)


def get_test_case_sync(conn: sqlite3.Connection, tenant_id: str, case_id: str) -> TestCase:
    row = conn.execute(f"{_CASE_SELECT} WHERE c.id = ? AND p.tenant_id = ?", (case_id, tenant_id)).fetchone()
    if row is None:
        raise NotFound("Test case not found")
    return _case(row)


async def get_test_case(conn: aiosqlite.Connection, tenant_id: str, case_id: str) -> TestCase:
    rows = await conn.execute_fetchall(f"{_CASE_SELECT} WHERE c.id = ? AND p.tenant_id = ?", (case_id, tenant_id))
    if not rows:
        raise NotFound("Test case not found")
    return _case(rows[0])


async def list_test_cases(
    conn: aiosqlite.Connection, project_id: str, *, suite_id: str | None = None, limit: int | None = None,
    cursor: str | None = None,
) -> TestCasePage:
    limit = clamp_limit(limit)
    after = decode_cursor(cursor)
    sql, params = f"SELECT {_CASE_COLUMNS} FROM test_cases WHERE project_id = ?", [project_id]
    if suite_id:
        sql += " AND suite_id = ?"
        params.append(suite_id)
    if after:
        sql += " AND (created_at, id) > (?, ?)"
        params += [after[0], after[1]]
    rows = list(await conn.execute_fetchall(sql + " ORDER BY created_at, id LIMIT ?", (*params, limit + 1)))
    rows, next_cursor = split_page(rows, limit, created_col=7)
    return TestCasePage([_case(r) for r in rows], next_cursor)


def update_test_case(conn: sqlite3.Connection, tenant_id: str, case_id: str, changes: dict) -> TestCase:
    case = get_test_case_sync(conn, tenant_id, case_id)
    if "suite_id" in changes:
        _check_suite(conn, case.project_id, changes["suite_id"])
    if "title" in changes and not str(changes["title"]).strip():
        raise Invalid("title must not be empty")
    if "code" in changes:
        code = changes["code"]
        if not CODE_PATTERN.match(code or ""):
            raise Invalid(f"code {code!r} is not valid")
        if code != case.code and conn.execute(
            "SELECT 1 FROM test_cases WHERE project_id = ? AND code = ?", (case.project_id, code)
        ).fetchone():
            raise Conflict(f"test case code {code} exists already in this project")
    values = []
    for key, value in changes.items():
        if key == "automation":
            value = msgspec.json.encode(value).decode() if value is not None else None
        values.append(value)
    sets = [f"{k} = ?" for k in changes] + ["updated_at = ?"]
    conn.execute(f"UPDATE test_cases SET {', '.join(sets)} WHERE id = ?", (*values, now_ms(), case_id))
    if "title" in changes:  # keep the interned identity's display title in step
        conn.execute("UPDATE tests SET title = ? WHERE test_case_id = ?", (changes["title"], case_id))
    return get_test_case_sync(conn, tenant_id, case_id)


def delete_test_case(conn: sqlite3.Connection, tenant_id: str, case_id: str) -> list[str]:
    """Delete a case and its results; returns attachment hashes to check after commit."""
    get_test_case_sync(conn, tenant_id, case_id)
    hashes = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT a.sha256 FROM attachments a JOIN results r ON r.id = a.result_id "
            "JOIN tests t ON t.id = r.test_id WHERE t.test_case_id = ?",
            (case_id,),
        )
    ]
    conn.execute("DELETE FROM test_cases WHERE id = ?", (case_id,))
    return hashes
