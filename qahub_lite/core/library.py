"""The test library: suites and test cases. A test case has a `code` such as TC-042, unique in
its project; a case created without one is numbered from the project's counter."""

from __future__ import annotations

import re

import msgspec

from ..db import library as library_db
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


def _suite(r) -> Suite:
    return Suite(r["id"], r["project_id"], r["parent_id"], r["name"], r["description"], to_iso(r["created_at"]),
                 to_iso(r["updated_at"]))


def _case(r) -> TestCase:
    return TestCase(
        r["id"], r["project_id"], r["suite_id"], r["code"], r["title"], r["description"],
        _automation_decoder.decode(r["automation"]) if r["automation"] else None,
        to_iso(r["created_at"]), to_iso(r["updated_at"]),
    )


def _check_project(conn, tenant_id: str, project_id: str) -> None:
    if not library_db.project_exists(conn, tenant_id, project_id):
        raise NotFound("Project not found")


def _check_suite(conn, project_id: str, suite_id: str | None) -> None:
    if suite_id is not None and not library_db.suite_in_project(conn, project_id, suite_id):
        raise NotFound("Suite not found")


# --- suites ---------------------------------------------------------------------------


def create_suite(
    conn, tenant_id: str, project_id: str, *, name: str, description: str | None = None,
    parent_id: str | None = None,
) -> Suite:
    _check_project(conn, tenant_id, project_id)
    _check_suite(conn, project_id, parent_id)
    if not name.strip():
        raise Invalid("name must not be empty")
    suite_id, now = new_id(), now_ms()
    library_db.insert_suite(conn, {
        "id": suite_id, "project_id": project_id, "parent_id": parent_id, "name": name.strip(),
        "description": description, "created_at": now, "updated_at": now,
    })
    return get_suite(conn, tenant_id, suite_id)


def get_suite(conn, tenant_id: str, suite_id: str) -> Suite:
    row = library_db.suite_row(conn, tenant_id, suite_id)
    if row is None:
        raise NotFound("Suite not found")
    return _suite(row)


def list_suites(conn, project_id: str, *, limit: int | None = None, cursor: str | None = None) -> SuitePage:
    limit = clamp_limit(limit)
    rows = library_db.suite_page(conn, project_id, after=decode_cursor(cursor), limit=limit)
    rows, next_cursor = split_page(rows, limit, created_col="created_at", id_col="id")
    return SuitePage([_suite(r) for r in rows], next_cursor)


def update_suite(conn, tenant_id: str, suite_id: str, changes: dict) -> Suite:
    suite = get_suite(conn, tenant_id, suite_id)
    if "parent_id" in changes:
        _check_suite(conn, suite.project_id, changes["parent_id"])
        if changes["parent_id"] == suite_id:
            raise Invalid("a suite cannot be its own parent")
    if "name" in changes and not str(changes["name"]).strip():
        raise Invalid("name must not be empty")
    library_db.update_suite(conn, suite_id, {**changes, "updated_at": now_ms()})
    return get_suite(conn, tenant_id, suite_id)


def delete_suite(conn, tenant_id: str, suite_id: str) -> None:
    get_suite(conn, tenant_id, suite_id)
    library_db.delete_suite(conn, suite_id)


# --- test cases -----------------------------------------------------------------------


def _next_code(conn, project_id: str) -> str:
    while True:
        code = f"TC-{library_db.take_case_number(conn, project_id):03d}"
        if not library_db.code_taken(conn, project_id, code):
            return code


def create_test_case(
    conn, tenant_id: str, project_id: str, *, title: str, code: str | None = None,
    suite_id: str | None = None, description: str | None = None, automation: Automation | None = None,
) -> TestCase:
    _check_project(conn, tenant_id, project_id)
    _check_suite(conn, project_id, suite_id)
    if not title.strip():
        raise Invalid("title must not be empty")
    if code is not None:
        if not CODE_PATTERN.match(code):
            raise Invalid(f"code {code!r} is not valid: use letters, digits, '-', '_' or '.', starting with a letter")
        if library_db.code_taken(conn, project_id, code):
            raise Conflict(f"test case code {code} exists already in this project")
    else:
        code = _next_code(conn, project_id)
    case_id, now = new_id(), now_ms()
    library_db.insert_case(conn, {
        "id": case_id, "project_id": project_id, "suite_id": suite_id, "code": code, "title": title.strip(),
        "description": description, "automation": msgspec.json.encode(automation).decode() if automation else None,
        "created_at": now, "updated_at": now,
    })
    return get_test_case(conn, tenant_id, case_id)


def get_test_case(conn, tenant_id: str, case_id: str) -> TestCase:
    row = library_db.case_row(conn, tenant_id, case_id)
    if row is None:
        raise NotFound("Test case not found")
    return _case(row)


def list_test_cases(
    conn, project_id: str, *, suite_id: str | None = None, limit: int | None = None, cursor: str | None = None,
) -> TestCasePage:
    limit = clamp_limit(limit)
    rows = library_db.case_page(conn, project_id, suite_id=suite_id, after=decode_cursor(cursor), limit=limit)
    rows, next_cursor = split_page(rows, limit, created_col="created_at", id_col="id")
    return TestCasePage([_case(r) for r in rows], next_cursor)


def update_test_case(conn, tenant_id: str, case_id: str, changes: dict) -> TestCase:
    case = get_test_case(conn, tenant_id, case_id)
    if "suite_id" in changes:
        _check_suite(conn, case.project_id, changes["suite_id"])
    if "title" in changes and not str(changes["title"]).strip():
        raise Invalid("title must not be empty")
    if "code" in changes:
        code = changes["code"]
        if not CODE_PATTERN.match(code or ""):
            raise Invalid(f"code {code!r} is not valid")
        if code != case.code and library_db.code_taken(conn, case.project_id, code):
            raise Conflict(f"test case code {code} exists already in this project")
    columns = {}
    for key, value in changes.items():
        if key == "automation":
            value = msgspec.json.encode(value).decode() if value is not None else None
        columns[key] = value
    library_db.update_case(conn, case_id, {**columns, "updated_at": now_ms()})
    if "title" in changes:  # keep the interned identity's display title in step
        library_db.retitle_case_tests(conn, case_id, changes["title"])
    return get_test_case(conn, tenant_id, case_id)


def delete_test_case(conn, tenant_id: str, case_id: str) -> list[str]:
    """Delete a case and its results; returns attachment hashes to check after commit."""
    get_test_case(conn, tenant_id, case_id)
    hashes = library_db.case_attachment_hashes(conn, case_id)
    library_db.delete_case(conn, case_id)
    return hashes
