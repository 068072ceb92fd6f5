"""Runs and their results, as the native API and every dialect read them."""

from __future__ import annotations

import msgspec

from ..db import results as results_db
from ..db import runs as runs_db
from . import identity, run_completion
from .clock import now_ms, row_id, to_iso
from .errors import Conflict, NotFound
from .model import AttemptRecord
from .paging import MAX_LIMIT, clamp_limit, decode_cursor, decode_int_cursor, encode_cursor, split_page
from .status import RUN_FINISHED, UNFINISHED


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


_attempts_decoder = msgspec.json.Decoder(list[AttemptRecord])
_tags_decoder = msgspec.json.Decoder(list[str])


def verdict(status: str, counts: RunCounts) -> str | None:
    """A finished run's verdict: FAILED if anything failed, broke or timed out, or the run
    ended in ERROR; SKIPPED when everything was skipped; PASSED otherwise. None while it runs
    and for a canceled run, which reached no verdict (QA.tech's `result` is null for both).
    db/runs.VERDICT_SQL says the same in SQL, for filters."""
    if status not in RUN_FINISHED or status == "CANCELED":
        return None
    if status == "ERROR" or counts.failed or counts.broken:
        return "FAILED"
    if counts.total and counts.skipped == counts.total:
        return "SKIPPED"
    return "PASSED"


VERDICTS = ("PASSED", "FAILED", "SKIPPED")


def run_from_row(r) -> Run:
    counts = RunCounts(*(r[c] for c in runs_db.COUNT_COLUMNS))
    return Run(
        id=r["id"], short_id=r["short_id"], project_id=r["project_id"], name=r["name"], environment=r["environment"],
        framework=r["framework"], source=r["source"], status=r["status"], verdict=verdict(r["status"], counts),
        ci=CiInfo(r["branch"], r["commit_sha"], r["pr_number"], r["pr_url"], r["repository"], r["ci_provider"],
                  r["build_url"]),
        counts=counts, created_at=to_iso(r["created_at"]), started_at=to_iso(r["started_at"]),
        finished_at=to_iso(r["finished_at"]), duration_ms=r["duration_ms"],
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

def case_outcomes(conn, run_id: str, *, limit: int | None = None, cursor: str | None = None) -> CaseOutcomeList:
    """Each linked test case of a run once, however many of its variants ran; by case id."""
    limit = clamp_limit(limit) if limit is not None else MAX_LIMIT
    after = decode_cursor(cursor)
    page = results_db.linked_case_ids(conn, run_id, after[1] if after else "", limit + 1)
    page, next_cursor = split_page([(case_id,) for case_id in page], limit, created_col=None)
    ids = [row[0] for row in page]
    if not ids:
        return CaseOutcomeList([], None)
    names = results_db.case_names(conn, ids)
    statuses: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for row in results_db.case_statuses(conn, run_id, ids):
        statuses.setdefault(row["test_case_id"], []).append(row["status"])
        counts[row["test_case_id"]] = counts.get(row["test_case_id"], 0) + row["n"]
    variants: dict[str, list[str]] = {}
    for row in results_db.case_variants(conn, run_id, ids, MAX_CASE_VARIANTS):
        variants.setdefault(row["test_case_id"], []).append(row["variant"])
    return CaseOutcomeList([
        CaseOutcome(case_id, *names[case_id], identity.worst(statuses[case_id]), variants.get(case_id, []),
                    counts[case_id])
        for case_id in ids if case_id in names and case_id in statuses
    ], next_cursor)


# How each result status counts in a run's counts (TIMEOUT counts as broken, CANCELED as
# skipped, RUNNING as pending).
_COUNTED_AS = {
    "PASSED": "passed", "FAILED": "failed", "BROKEN": "broken", "TIMEOUT": "broken", "SKIPPED": "skipped",
    "UNKNOWN": "unknown", "PENDING": "pending", "RUNNING": "pending", "CANCELED": "skipped",
}


def refresh_counts(conn, run_id: str) -> None:
    """Recount a run from its results."""
    c = dict.fromkeys(runs_db.COUNT_COLUMNS, 0)
    for row in results_db.count_by_status(conn, run_id):
        n = row["n"]
        c["total"] += n
        c[_COUNTED_AS[row["status"]]] += n
        if row["flaky"]:
            c["flaky"] += n
    runs_db.set_counts(conn, run_id, c)


def adopt_reported_counts(conn, run_id: str, counts: RunCounts) -> None:
    """Give a run the counts its sender reported when they cover more tests than its stored
    results: a summary sent without its cases, or with cases cut at the cap (QualityPilot).
    A run whose results are all stored keeps the counts recomputed from them."""
    runs_db.set_counts(conn, run_id, msgspec.structs.asdict(counts), only_if_more=True)


def get_run(conn, tenant_id: str, run_ref: str) -> Run:
    """A run by id or short id."""
    row = runs_db.find_run(conn, tenant_id, run_ref)
    if row is None:
        raise NotFound("Run not found")
    return run_from_row(row)


def find_run_of_any_tenant(conn, run_ref: str) -> tuple[str, Run] | None:
    """(tenant id, run) of a run by id or short id, whoever owns it: the caller checks."""
    row = runs_db.find_run_of_any_tenant(conn, run_ref)
    return (row["tenant_id"], run_from_row(row)) if row is not None else None


class RunFilter(msgspec.Struct, kw_only=True):
    project_id: str | None = None
    branch: str | None = None
    environment: str | None = None
    status: str | None = None
    source: str | None = None
    verdict: str | None = None  # PASSED, FAILED or SKIPPED (see db/runs.VERDICT_SQL)
    since: int | None = None  # epoch ms
    until: int | None = None


def list_runs(conn, tenant_id: str, f: RunFilter, *, limit: int | None = None, cursor: str | None = None) -> RunPage:
    limit = clamp_limit(limit)
    rows = runs_db.list_runs(
        conn, tenant_id,
        equal={"project_id": f.project_id, "branch": f.branch, "environment": f.environment, "status": f.status,
               "source": f.source},
        verdict=f.verdict, since=f.since, until=f.until, after=decode_cursor(cursor), limit=limit + 1,
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"])
    return RunPage([run_from_row(r) for r in rows], next_cursor)


def finish_run(conn, tenant_id: str, run_ref: str, *, status: str = "COMPLETED") -> Run:
    run = get_run(conn, tenant_id, run_ref)
    if run.status in RUN_FINISHED:
        if run.status == status:
            return run  # finishing twice is harmless (a retried request)
        raise Conflict(f"run is {run.status} already")
    now = now_ms()
    runs_db.mark_finished(conn, run.id, status, now)
    if status == "CANCELED":
        results_db.set_status_where(conn, run.id, "CANCELED", tuple(UNFINISHED), now)
        refresh_counts(conn, run.id)
    run_completion.on_run_completed(conn, run.id)  # trend, regressions, webhooks (core/run_completion.py)
    return get_run(conn, tenant_id, run.id)


def delete_run(conn, tenant_id: str, run_ref: str) -> list[str]:
    """Delete a run with its results; returns attachment hashes to check after commit."""
    return runs_db.delete_run(conn, get_run(conn, tenant_id, run_ref).id)



def result_from_row(r) -> Result:
    log, tags = r["attempt_log"], r["tags"]
    return Result(
        id=str(r["id"]), run_id=r["run_id"], test_id=r["test_id"], test_case_id=r["test_case_id"],
        test_case_code=r["test_case_code"], title=r["title"], suite=r["suite_path"], status=r["status"],
        flaky=bool(r["flaky"]), attempts=r["attempts"], previous_attempts=_attempts_decoder.decode(log) if log else [],
        duration_ms=r["duration_ms"], error_message=r["error_message"], error_stack=r["error_stack"],
        comment=r["comment"], bug_ticket_key=r["bug_ticket_key"], bug_ticket_url=r["bug_ticket_url"],
        framework=r["framework"], file=r["file"], line=r["line"], stdout=r["stdout"], stderr=r["stderr"],
        executed_at=to_iso(r["executed_at"]), created_at=to_iso(r["created_at"]), updated_at=to_iso(r["updated_at"]),
        variant=r["variant"], tags=_tags_decoder.decode(tags) if tags else [],
    )


def list_results(
    conn, run_id: str, *, statuses: list[str] | None = None, limit: int | None = None,
    cursor: str | None = None, tag: str | None = None,
) -> ResultPage:
    """Results of a run in insertion order; all of them unless `limit` is given."""
    after = decode_int_cursor(cursor)[1] if cursor else None
    if limit is None:
        rows = results_db.list_results(conn, run_id, statuses=statuses, tag=tag, after_id=after)
        return ResultPage([result_from_row(r) for r in rows], None)
    limit = clamp_limit(limit)
    rows = results_db.list_results(conn, run_id, statuses=statuses, tag=tag, after_id=after, limit=limit + 1)
    next_cursor = None
    if len(rows) > limit:  # by id: insertion order
        rows = rows[:limit]
        next_cursor = encode_cursor(0, rows[-1]["id"])
    return ResultPage([result_from_row(r) for r in rows], next_cursor)


def get_result(conn, tenant_id: str, result_id: str) -> Result:
    key = row_id(result_id)
    row = results_db.find_result(conn, tenant_id, key) if key is not None else None
    if row is None:
        raise NotFound("Result not found")
    return result_from_row(row)


def get_result_with_run(conn, tenant_id: str, result_id: str) -> tuple[Result, Run]:
    """A result and its run, in one read."""
    result = get_result(conn, tenant_id, result_id)
    return result, get_run(conn, tenant_id, result.run_id)


def get_run_result(conn, tenant_id: str, run_ref: str, result_id: str) -> tuple[Run, Result]:
    """A run and one of its results, in one read; NotFound when the result is another run's."""
    run = get_run(conn, tenant_id, run_ref)
    result = get_result(conn, tenant_id, result_id)
    if result.run_id != run.id:
        raise NotFound("Result not found")
    return run, result
