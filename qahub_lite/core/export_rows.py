"""What every export reads: results with their test's identity and their run's context, fetched
in bounded chunks so that no export holds more than one chunk in memory or a reader connection
for longer than one query.

A test's identity is read in ONE place: `IDENTITY_COLUMNS`/`NAME_COLUMNS` (SQL, also used by
summary.py) and `ExportRow`'s identity fields: the library code, `tests.suite_path`,
`tests.title` with its variant (docs/identity.md) and `results.file`. Every format (CSV, NDJSON,
Parquet, JUnit, CTRF) follows them.

Walk order, shaped by the indexes: runs along `runs_project_created` (oldest first), then each
run's results along the results table's `(run_id, test_id)` key, `test_id` as the keyset
cursor (ordering by `results.id` would sort the whole run once per chunk).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple

import time

import msgspec

from ..db import tuples
from .clock import to_iso

CHUNK_ROWS = 5000  # one reader query
RUN_PAGE = 500
# A chunk also stops at this much unbounded text (error messages, stacks, output: up to 1 MB
# each, an attempt log up to the body limit): 5,000 rows of 1 MB messages would otherwise be
# 5 GB in memory at once. A chunk holds at least one row, whatever its size.
CHUNK_TEXT_CHARS = 8 * 1024 * 1024

# The identity of a test, as stored today (see the module docstring); NAME_COLUMNS is its
# display name, which the summary and the timings read too (`t` is tests, `r` results).
# A variant (core/identity.py) is part of the name a report shows: "adds VAT [firefox]", so
# that the executions of one test in a run stay apart in every format (timings.py reads the
# bare title: a file's or test's time is the same question whichever variant ran it).
TITLE_WITH_VARIANT = "t.title || CASE WHEN t.variant = '' THEN '' ELSE ' [' || t.variant || ']' END"
NAME_COLUMNS = f"t.suite_path, {TITLE_WITH_VARIANT}"
IDENTITY_COLUMNS = f"c.code, {NAME_COLUMNS}, r.file, r.line"


class RunContext(NamedTuple):
    """The run's columns repeated on each exported row."""

    id: str
    short_id: str
    name: str
    branch: str | None
    commit: str | None
    pr_number: str | None
    environment: str | None
    created_at: int


class ExportRow(NamedTuple):
    test_id: int
    test_case_code: str | None
    suite: str
    title: str
    file: str | None
    line: int | None
    result_id: int
    status: str
    flaky: int
    attempts: int
    duration_ms: int | None
    error_message: str | None
    framework: str | None
    executed_at: int | None


class DetailRow(NamedTuple):
    """An ExportRow with what one run's report formats (JUnit, CTRF) also carry."""

    row: ExportRow
    error_stack: str | None
    stdout: str | None
    stderr: str | None
    attempt_log: str | None


_ROW_SQL = (
    f"SELECT r.test_id, {IDENTITY_COLUMNS}, r.id, r.status, r.flaky, r.attempts, r.duration_ms, r.error_message, "
    "r.framework, r.executed_at{extra} FROM results r JOIN tests t ON t.id = r.test_id "
    "LEFT JOIN test_cases c ON c.id = t.test_case_id WHERE r.run_id = ? AND r.test_id > ? ORDER BY r.test_id LIMIT ?"
)
ROWS_SQL = _ROW_SQL.format(extra="")
DETAIL_SQL = _ROW_SQL.format(extra=", r.error_stack, r.stdout, r.stderr, r.attempt_log")
# The unbounded text of the rows ROWS_SQL and DETAIL_SQL would read next: (test_id, characters),
# read along the same key without handing the text itself to Python.
_SIZES_SQL = "SELECT test_id, {size} FROM results WHERE run_id = ? AND test_id > ? ORDER BY test_id LIMIT ?"
ROW_SIZES_SQL = _SIZES_SQL.format(size="coalesce(length(error_message), 0)")
DETAIL_SIZES_SQL = _SIZES_SQL.format(size=" + ".join(
    f"coalesce(length({c}), 0)" for c in ("error_message", "error_stack", "stdout", "stderr", "attempt_log")))
_RUN_COLUMNS = "id, short_id, name, branch, commit_sha, pr_number, environment, created_at"


class ResultFilter(msgspec.Struct, kw_only=True):
    project_id: str
    branch: str | None = None
    since: int | None = None  # epoch ms, inclusive, on the run's creation time
    until: int | None = None  # exclusive
    run_id: str | None = None  # one run only


async def _fetch(db, sql: str, params: tuple) -> list[tuple]:
    """One query on a pooled reader, released at once: a long export never parks a connection
    that status polls need. Plain tuples: sqlite3.Row objects would cost more than the query."""
    return await db.read(tuples.fetch, sql, params)


def _run_where(f: ResultFilter) -> tuple[str, list]:
    where, params = ["project_id = ?"], [f.project_id]
    for clause, value in (("id = ?", f.run_id), ("branch = ?", f.branch), ("created_at >= ?", f.since),
                          ("created_at < ?", f.until)):
        if value is not None:
            where.append(clause)
            params.append(value)
    return " AND ".join(where), params


async def _rows_within(db, sizes_sql: str, run_id: str, after: int, limit: int) -> int:
    """How many of the next `limit` rows of the run after `after` fit in CHUNK_TEXT_CHARS
    (at least one)."""
    total = 0
    sizes = await _fetch(db, sizes_sql, (run_id, after, limit))
    for n, (_, size) in enumerate(sizes):
        total += size
        if total > CHUNK_TEXT_CHARS:
            return max(1, n)
    return limit


async def iter_run_pages(db, f: ResultFilter) -> AsyncIterator[list[RunContext]]:
    where, params = _run_where(f)
    after: tuple[int, str] = (-1, "")
    while True:
        rows = await _fetch(
            db, f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where} AND (created_at, id) > (?, ?) "
            "ORDER BY created_at, id LIMIT ?", (*params, *after, RUN_PAGE),
        )
        if rows:
            yield [RunContext(*row) for row in rows]
        if len(rows) < RUN_PAGE:
            return
        after = (rows[-1][7], rows[-1][0])


async def _small_runs(db, runs: list[RunContext]) -> set[str]:
    """The runs of a page whose results fit in one chunk, rows and text: read in one query each,
    without measuring every chunk first (two queries a run halved the rate of exports of many
    small runs). Measured once a page; a run still growing may pass the budget by what arrives
    in between, never by more than CHUNK_ROWS rows."""
    marks = ",".join("?" * len(runs))
    large = {run_id for run_id, n, size in await _fetch(
        db, f"SELECT run_id, count(*), coalesce(sum(length(error_message)), 0) FROM results "
        f"WHERE run_id IN ({marks}) GROUP BY run_id", tuple(run.id for run in runs),
    ) if n > CHUNK_ROWS or size > CHUNK_TEXT_CHARS}
    return {run.id for run in runs} - large


async def iter_chunks(db, f: ResultFilter) -> AsyncIterator[tuple[RunContext, list[tuple]]]:
    """(run, up to CHUNK_ROWS of its results) for every matching run, oldest run first. The
    rows are plain tuples in ExportRow's order: a named tuple per row costs more than its use
    in the bulk encoders (export_bulk.py)."""
    async for page in iter_run_pages(db, f):
        small = await _small_runs(db, page)
        for run in page:
            after = -1
            while True:
                if run.id in small and after == -1:
                    limit = CHUNK_ROWS
                else:
                    limit = await _rows_within(db, ROW_SIZES_SQL, run.id, after, CHUNK_ROWS)
                rows = await _fetch(db, ROWS_SQL, (run.id, after, limit))
                if rows:
                    yield run, rows
                if len(rows) < limit:
                    break
                after = rows[-1][0]


async def count_results(db, f: ResultFilter) -> int:
    """How many rows an export will have (for a client's progress bar): counted along the
    results' run index, not from the runs' counters, which a summary-only sender may have set
    beyond the results it stored."""
    where, params = _run_where(f)
    rows = await _fetch(db, f"SELECT count(*) FROM results WHERE run_id IN (SELECT id FROM runs WHERE {where})",
                        tuple(params))
    return rows[0][0]


# Rows with captured output can be 64 KB each: the report formats read fewer at a time.
DETAIL_CHUNK_ROWS = 500


async def iter_details(db, run_id: str) -> AsyncIterator[list[DetailRow]]:
    """One run's results with their details, in chunks, for the report formats of one run."""
    after = -1
    while True:
        limit = await _rows_within(db, DETAIL_SIZES_SQL, run_id, after, DETAIL_CHUNK_ROWS)
        rows = await _fetch(db, DETAIL_SQL, (run_id, after, limit))
        if rows:
            yield [DetailRow(ExportRow(*r[:14]), *r[14:]) for r in rows]
        if len(rows) < limit:
            return
        after = rows[-1][0]


class RunTotals(NamedTuple):
    by_status: dict[str, int]
    flaky: int
    duration_ms: int
    suites: int


async def run_totals(db, run_id: str) -> RunTotals:
    """What a report's header says before its tests stream: counts by status, flaky, time."""
    by_status: dict[str, int] = {}
    flaky = duration = 0
    for status, is_flaky, n, ms in await _fetch(
        db, "SELECT status, flaky, count(*), coalesce(sum(duration_ms), 0) FROM results WHERE run_id = ? "
        "GROUP BY status, flaky", (run_id,),
    ):
        by_status[status] = by_status.get(status, 0) + n
        flaky += n if is_flaky else 0
        duration += ms
    suites = (await _fetch(db, "SELECT count(DISTINCT t.suite_path) FROM results r JOIN tests t ON t.id = r.test_id "
                           "WHERE r.run_id = ?", (run_id,)))[0][0]
    return RunTotals(by_status, flaky, duration, suites)


# Column names of the flat formats (CSV, NDJSON, Parquet), in order: the run's context, then
# the result. Renaming one is a breaking change for users' scripts: add, never rename.
RUN_FIELDS = ("run_id", "run_short_id", "run_name", "branch", "commit", "pr_number", "environment", "run_created_at")
RESULT_FIELDS = (
    "test_id", "test_case_code", "suite", "title", "file", "line", "result_id", "status", "flaky", "attempts",
    "duration_ms", "error_message", "framework", "executed_at",
)
FIELDS = RUN_FIELDS + RESULT_FIELDS


def run_values(run: RunContext) -> tuple:
    return (run.id, run.short_id, run.name, run.branch, run.commit, run.pr_number, run.environment,
            to_iso(run.created_at))


class IsoTimes:
    """Epoch milliseconds as clock.to_iso's text, fast: formatting a datetime per row cost more
    than reading the row (bench/bench_export.py), and the results of a run share their
    seconds, so each second is formatted once."""

    def __init__(self) -> None:
        self.seconds: dict[int, str] = {}

    def __call__(self, ms: int | None) -> str | None:
        if ms is None:
            return None
        second, milli = divmod(ms, 1000)
        head = self.seconds.get(second)
        if head is None:
            if len(self.seconds) >= 4096:
                self.seconds.clear()
            head = self.seconds[second] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{head}.{milli:03d}Z"
