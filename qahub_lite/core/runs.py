"""Runs and their results, as the native API and every dialect read them."""

from __future__ import annotations

import sqlite3

import aiosqlite
import msgspec

from . import identity, run_completion
from .clock import now_ms, row_id, to_iso
from .errors import Conflict, NotFound
from .model import AttemptRecord
from .paging import MAX_LIMIT, clamp_limit, decode_cursor, decode_int_cursor, split_page
from .status import RUN_FINISHED


class RunCounts(msgspec.Struct):
    total: int
    passed: int
    failed: int
    broken: int
    skipped: int
    unknown: int
    pending: int
    flaky: int


class CiInfo(msgspec.Struct, omit_defaults=True):
    branch: str | None = None
    commit: str | None = None
    pr_number: str | None = None
    pr_url: str | None = None
    repository: str | None = None
    ci_provider: str | None = None
    build_url: str | None = None


class Run(msgspec.Struct):
    id: str
    short_id: str
    project_id: str
    name: str
    environment: str | None
    framework: str | None
    source: str
    status: str
    verdict: str | None  # PASSED / FAILED / SKIPPED once finished, None while it runs
    ci: CiInfo
    counts: RunCounts
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    duration_ms: int | None


class RunPage(msgspec.Struct):
    data: list[Run]
    next_cursor: str | None


class Result(msgspec.Struct):
    id: str
    run_id: str
    test_id: int
    test_case_id: str | None
    test_case_code: str | None
    title: str
    suite: str
    status: str
    flaky: bool
    attempts: int
    previous_attempts: list[AttemptRecord]
    duration_ms: int | None
    error_message: str | None
    error_stack: str | None
    comment: str | None
    bug_ticket_key: str | None
    bug_ticket_url: str | None
    framework: str | None
    file: str | None
    line: int | None
    stdout: str | None
    stderr: str | None
    executed_at: str | None
    created_at: str | None
    updated_at: str | None
    variant: str = ""
    tags: list[str] = []


class ResultPage(msgspec.Struct):
    data: list[Result]
    next_cursor: str | None


RUN_COLUMNS = (
    "id, short_id, project_id, name, environment, framework, source, status, branch, commit_sha, pr_number, "
    "pr_url, repository, ci_provider, build_url, created_at, started_at, finished_at, duration_ms, total, passed, "
    "failed, broken, skipped, unknown, pending, flaky"
)
_attempts_decoder = msgspec.json.Decoder(list[AttemptRecord])
_tags_decoder = msgspec.json.Decoder(list[str])
# A stored tag list contains the tag: JSON text, matched by SQLite's own JSON reader.
TAG_SQL = "EXISTS (SELECT 1 FROM json_each({col}) WHERE json_each.value = ?)"


def verdict(status: str, counts: RunCounts) -> str | None:
    """A finished run's verdict: FAILED if anything failed, broke or timed out, or the run
    ended in ERROR; SKIPPED when everything was skipped; PASSED otherwise. None while it runs
    and for a canceled run, which reached no verdict (QA.tech's `result` is null for both).
    `VERDICT_SQL` below says the same in SQL, for filters."""
    if status not in RUN_FINISHED or status == "CANCELED":
        return None
    if status == "ERROR" or counts.failed or counts.broken:
        return "FAILED"
    if counts.total and counts.skipped == counts.total:
        return "SKIPPED"
    return "PASSED"


VERDICTS = ("PASSED", "FAILED", "SKIPPED")
VERDICT_SQL = {
    "FAILED": "(status = 'ERROR' OR (status = 'COMPLETED' AND (failed > 0 OR broken > 0)))",
    "SKIPPED": "(status = 'COMPLETED' AND failed = 0 AND broken = 0 AND total > 0 AND skipped = total)",
    "PASSED": "(status = 'COMPLETED' AND failed = 0 AND broken = 0 AND NOT (total > 0 AND skipped = total))",
}


def run_from_row(r) -> Run:
    counts = RunCounts(r[19], r[20], r[21], r[22], r[23], r[24], r[25], r[26])
    return Run(
        id=r[0], short_id=r[1], project_id=r[2], name=r[3], environment=r[4], framework=r[5], source=r[6],
        status=r[7], verdict=verdict(r[7], counts),
        ci=CiInfo(r[8], r[9], r[10], r[11], r[12], r[13], r[14]), counts=counts,
        created_at=to_iso(r[15]), started_at=to_iso(r[16]), finished_at=to_iso(r[17]), duration_ms=r[18],
    )


class CaseOutcome(msgspec.Struct):
    """A library test case in one run: the worst status of its results (FAILED beats PASSED,
    core/identity.py) and the variants that ran (the first MAX_CASE_VARIANTS by name);
    `results` counts them all."""

    test_case_id: str
    test_case_code: str
    title: str
    status: str
    variants: list[str]
    results: int


class CaseOutcomeList(msgspec.Struct):
    data: list[CaseOutcome]
    next_cursor: str | None = None


# One run can link a million results to one case (a variant each) or to a million cases: a
# page holds at most MAX_LIMIT cases and this many variants of each, so neither the answer nor
# the memory behind it grows with the run.
MAX_CASE_VARIANTS = 100
_CASE_RESULTS = "FROM results r JOIN tests t ON t.id = r.test_id WHERE r.run_id = ? AND t.test_case_id"


async def case_outcomes(conn: aiosqlite.Connection, run_id: str, *, limit: int | None = None,
                        cursor: str | None = None) -> CaseOutcomeList:
    """Each linked test case of a run once, however many of its variants ran; by case id."""
    limit = clamp_limit(limit) if limit is not None else MAX_LIMIT
    after = decode_cursor(cursor)
    page = [r[0] for r in await conn.execute_fetchall(
        f"SELECT DISTINCT t.test_case_id {_CASE_RESULTS} > ? ORDER BY t.test_case_id LIMIT ?",
        (run_id, after[1] if after else "", limit + 1),
    )]
    page, next_cursor = split_page([(case_id,) for case_id in page], limit, created_col=None)
    ids = [row[0] for row in page]
    if not ids:
        return CaseOutcomeList([], None)
    marks = ",".join("?" * len(ids))
    names = {r[0]: (r[1], r[2]) for r in await conn.execute_fetchall(
        f"SELECT id, code, title FROM test_cases WHERE id IN ({marks})", ids)}
    statuses: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for case_id, status, n in await conn.execute_fetchall(
        f"SELECT t.test_case_id, r.status, count(*) {_CASE_RESULTS} IN ({marks}) GROUP BY 1, 2", (run_id, *ids)
    ):
        statuses.setdefault(case_id, []).append(status)
        counts[case_id] = counts.get(case_id, 0) + n
    variants: dict[str, list[str]] = {}
    for case_id, variant in await conn.execute_fetchall(
        f"SELECT test_case_id, variant FROM (SELECT t.test_case_id, t.variant, row_number() OVER "
        f"(PARTITION BY t.test_case_id ORDER BY t.variant) AS n {_CASE_RESULTS} IN ({marks}) AND t.variant != '') "
        "WHERE n <= ? ORDER BY test_case_id, variant", (run_id, *ids, MAX_CASE_VARIANTS)
    ):
        variants.setdefault(case_id, []).append(variant)
    return CaseOutcomeList([
        CaseOutcome(case_id, *names[case_id], identity.worst(statuses[case_id]), variants.get(case_id, []),
                    counts[case_id])
        for case_id in ids if case_id in names and case_id in statuses
    ], next_cursor)


def refresh_counts(conn: sqlite3.Connection, run_id: str) -> None:
    """Recount a run from its results (TIMEOUT counts as broken, CANCELED/RUNNING as pending)."""
    c = dict.fromkeys(("passed", "failed", "broken", "skipped", "unknown", "pending", "flaky"), 0)
    total = 0
    for status, flaky, n in conn.execute(
        "SELECT status, flaky, count(*) FROM results WHERE run_id = ? GROUP BY status, flaky", (run_id,)
    ):
        total += n
        key = {
            "PASSED": "passed", "FAILED": "failed", "BROKEN": "broken", "TIMEOUT": "broken", "SKIPPED": "skipped",
            "UNKNOWN": "unknown", "PENDING": "pending", "RUNNING": "pending", "CANCELED": "skipped",
        }[status]
        c[key] += n
        if flaky:
            c["flaky"] += n
    conn.execute(
        "UPDATE runs SET total=?, passed=?, failed=?, broken=?, skipped=?, unknown=?, pending=?, flaky=? WHERE id=?",
        (total, c["passed"], c["failed"], c["broken"], c["skipped"], c["unknown"], c["pending"], c["flaky"], run_id),
    )


def adopt_reported_counts(conn: sqlite3.Connection, run_id: str, counts: RunCounts) -> None:
    """Give a run the counts its sender reported when they cover more tests than its stored
    results: a summary sent without its cases, or with cases cut at the cap (QualityPilot).
    A run whose results are all stored keeps the counts recomputed from them."""
    conn.execute(
        "UPDATE runs SET total=?, passed=?, failed=?, broken=?, skipped=?, unknown=?, pending=?, flaky=? "
        "WHERE id=? AND total < ?",
        (
            counts.total, counts.passed, counts.failed, counts.broken, counts.skipped, counts.unknown,
            counts.pending, counts.flaky, run_id, counts.total,
        ),
    )


async def get_run(conn: aiosqlite.Connection, tenant_id: str, run_ref: str) -> Run:
    """A run by id or short id."""
    rows = await conn.execute_fetchall(
        f"SELECT {RUN_COLUMNS} FROM runs WHERE (id = ? OR short_id = ?) AND tenant_id = ?", (run_ref, run_ref, tenant_id)
    )
    if not rows:
        raise NotFound("Run not found")
    return run_from_row(rows[0])


def get_run_sync(conn: sqlite3.Connection, tenant_id: str, run_ref: str) -> Run:
    row = conn.execute(
        f"SELECT {RUN_COLUMNS} FROM runs WHERE (id = ? OR short_id = ?) AND tenant_id = ?", (run_ref, run_ref, tenant_id)
    ).fetchone()
    if row is None:
        raise NotFound("Run not found")
    return run_from_row(row)


class RunFilter(msgspec.Struct, kw_only=True):
    project_id: str | None = None
    branch: str | None = None
    environment: str | None = None
    status: str | None = None
    source: str | None = None
    verdict: str | None = None  # PASSED, FAILED or SKIPPED (see VERDICT_SQL)
    since: int | None = None  # epoch ms
    until: int | None = None


async def list_runs(
    conn: aiosqlite.Connection, tenant_id: str, f: RunFilter, *, limit: int | None = None, cursor: str | None = None
) -> RunPage:
    limit = clamp_limit(limit)
    after = decode_cursor(cursor)
    where, params = ["tenant_id = ?"], [tenant_id]
    for column, value in (
        ("project_id", f.project_id), ("branch", f.branch), ("environment", f.environment), ("status", f.status),
        ("source", f.source),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if f.verdict is not None:
        where.append(VERDICT_SQL[f.verdict])
    if f.since is not None:
        where.append("created_at >= ?")
        params.append(f.since)
    if f.until is not None:
        where.append("created_at < ?")
        params.append(f.until)
    if after:
        where.append("(created_at, id) < (?, ?)")
        params += [after[0], after[1]]
    rows = list(
        await conn.execute_fetchall(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT ?",
            (*params, limit + 1),
        )
    )
    rows, next_cursor = split_page(rows, limit, created_col=15)
    return RunPage([run_from_row(r) for r in rows], next_cursor)


def finish_run(conn: sqlite3.Connection, tenant_id: str, run_ref: str, *, status: str = "COMPLETED") -> Run:
    run = get_run_sync(conn, tenant_id, run_ref)
    if run.status in RUN_FINISHED:
        if run.status == status:
            return run  # finishing twice is harmless (a retried request)
        raise Conflict(f"run is {run.status} already")
    now = now_ms()
    conn.execute(
        "UPDATE runs SET status = ?, finished_at = ?, "
        "duration_ms = coalesce(duration_ms, ? - coalesce(started_at, created_at)) WHERE id = ?",
        (status, now, now, run.id),
    )
    if status == "CANCELED":
        conn.execute(
            "UPDATE results SET status = 'CANCELED', updated_at = ? WHERE run_id = ? AND status IN ('PENDING','RUNNING')",
            (now, run.id),
        )
        refresh_counts(conn, run.id)
    run_completion.on_run_completed(conn, run.id)  # trend, regressions, webhooks (core/run_completion.py)
    return get_run_sync(conn, tenant_id, run.id)


def delete_run(conn: sqlite3.Connection, tenant_id: str, run_ref: str) -> list[str]:
    """Delete a run with its results; returns attachment hashes to check after commit."""
    run = get_run_sync(conn, tenant_id, run_ref)
    hashes = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT a.sha256 FROM attachments a JOIN results r ON r.id = a.result_id WHERE r.run_id = ?",
            (run.id,),
        )
    ]
    conn.execute("DELETE FROM runs WHERE id = ?", (run.id,))
    return hashes


_RESULT_SELECT = (
    "SELECT r.id, r.run_id, r.test_id, t.test_case_id, c.code, t.title, t.suite_path, r.status, r.flaky, r.attempts, "
    "r.attempt_log, r.duration_ms, r.error_message, r.error_stack, r.comment, r.bug_ticket_key, r.bug_ticket_url, "
    "r.framework, r.file, r.line, r.stdout, r.stderr, r.executed_at, r.created_at, r.updated_at, t.variant, r.tags "
    "FROM results r JOIN tests t ON t.id = r.test_id LEFT JOIN test_cases c ON c.id = t.test_case_id"
)


def result_from_row(r) -> Result:
    return Result(
        id=str(r[0]), run_id=r[1], test_id=r[2], test_case_id=r[3], test_case_code=r[4], title=r[5], suite=r[6],
        status=r[7], flaky=bool(r[8]), attempts=r[9], previous_attempts=_attempts_decoder.decode(r[10]) if r[10] else [],
        duration_ms=r[11], error_message=r[12], error_stack=r[13], comment=r[14], bug_ticket_key=r[15],
        bug_ticket_url=r[16], framework=r[17], file=r[18], line=r[19], stdout=r[20], stderr=r[21],
        executed_at=to_iso(r[22]), created_at=to_iso(r[23]), updated_at=to_iso(r[24]), variant=r[25],
        tags=_tags_decoder.decode(r[26]) if r[26] else [],
    )


async def list_results(
    conn: aiosqlite.Connection, run_id: str, *, statuses: list[str] | None = None, limit: int | None = None,
    cursor: str | None = None, tag: str | None = None,
) -> ResultPage:
    """Results of a run in insertion order; all of them unless `limit` is given."""
    where, params = ["r.run_id = ?"], [run_id]
    if tag:
        where.append(TAG_SQL.format(col="r.tags"))
        params.append(tag)
    if statuses:
        where.append(f"r.status IN ({','.join('?' * len(statuses))})")
        params += statuses
    if cursor:
        after = decode_int_cursor(cursor)
        where.append("r.id > ?")
        params.append(after[1])
    sql = f"{_RESULT_SELECT} WHERE {' AND '.join(where)} ORDER BY r.id"
    if limit is not None:
        limit = clamp_limit(limit)
        rows = list(await conn.execute_fetchall(sql + " LIMIT ?", (*params, limit + 1)))
        rows, next_cursor = split_page(rows, limit, created_col=None)  # by id: insertion order
    else:
        rows, next_cursor = list(await conn.execute_fetchall(sql, params)), None
    return ResultPage([result_from_row(r) for r in rows], next_cursor)


async def get_result(conn: aiosqlite.Connection, tenant_id: str, result_id: str) -> Result:
    key = row_id(result_id)
    if key is None:
        raise NotFound("Result not found")
    rows = await conn.execute_fetchall(
        f"{_RESULT_SELECT} JOIN runs u ON u.id = r.run_id WHERE r.id = ? AND u.tenant_id = ?", (key, tenant_id)
    )
    if not rows:
        raise NotFound("Result not found")
    return result_from_row(rows[0])
