"""The job queue: claims, leases, heartbeats, reports, completion, expiry and cancellation.

A job is one framework's share of a triggered run (core/triggers.py queues them). Its life:

    QUEUED --claim--> RUNNING --complete--> DONE | ERROR | TIMEOUT
       |                 |--lease runs out--> TIMEOUT   (unfinished tests: TIMEOUT)
       |                 '--run canceled----> CANCELED  (seen by the agent's next heartbeat)
       '--nobody claims it in time--> TIMEOUT

Every function that changes state is a writer operation, so a claim is atomic: two agents
asking at once get two different jobs or none. A claim returns a random lease token (only its
hash is stored); heartbeats, reports and completion must present it, so an agent whose lease
was taken away cannot write into the run afterwards. Results go in through THE ingest path.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from collections.abc import Sequence

import aiosqlite
import msgspec

from . import agents
from . import runs as runs_core
from .clock import now_ms, to_iso
from .errors import Conflict, NotFound
from .identity import SEVERITY
from .ingest import store_results
from .model import ItemError, ResultRecord
from .status import RUN_FINISHED
from .triggers import TriggerOptions
from ..wire import ClaimedJob, JobCi, JobTest  # noqa: F401 - shared with the agent

_options_decoder = msgspec.json.Decoder(TriggerOptions)


class JobState(msgspec.Struct):
    """The answer to a heartbeat or a completion: `cancel` tells the agent to stop the command."""

    job_id: str
    status: str
    cancel: bool
    reason: str | None
    lease_expires_at: str | None


class StoredResult(msgspec.Struct):
    index: int
    execution_id: str
    result_id: str


class ReportOutcome(msgspec.Struct):
    stored: list[StoredResult]
    ignored: list[int]  # report entries that are none of the job's tests
    errors: list[ItemError]


async def job_exists(conn: aiosqlite.Connection, tenant_id: str, job_id: str, project_id: str | None = None) -> bool:
    """True for a job of the tenant (and of `project_id`, for a key limited to one project)."""
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM jobs WHERE id = ? AND tenant_id = ? AND (? IS NULL OR project_id = ?)",
        (job_id, tenant_id, project_id, project_id),
    )
    return bool(rows)


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# --- claim ----------------------------------------------------------------------------


def claim(
    conn: sqlite3.Connection, tenant_id: str, hello: agents.AgentHello, *, lease_s: int,
    project_id: str | None = None,
) -> ClaimedJob | None:
    """The tenant's oldest queued job of one of the agent's frameworks, leased to it; None when
    there is none. The job's tests and its run become RUNNING."""
    agent_id = agents.touch_agent(conn, tenant_id, hello)
    if not hello.frameworks:
        return None
    marks = ",".join("?" * len(hello.frameworks))
    sql = (
        "SELECT j.id, j.run_id, r.status FROM jobs j JOIN runs r ON r.id = j.run_id "
        f"WHERE j.tenant_id = ? AND j.status = 'QUEUED' AND j.framework IN ({marks})"
    )
    params: list = [tenant_id, *hello.frameworks]
    if project_id is not None:  # a key limited to one project runs only that project's work
        sql += " AND j.project_id = ?"
        params.append(project_id)
    while True:
        row = conn.execute(sql + " ORDER BY j.created_at, j.rowid LIMIT 1", params).fetchone()
        if row is None:
            agents.seen(conn, agent_id, None)
            return None
        job_id, run_id, run_status = row
        if run_status not in RUN_FINISHED:
            break
        # Canceled while queued: it will never run.
        _end_job(conn, job_id, "CANCELED", f"the run was {run_status.lower()} before an agent took the job")
    now = now_ms()
    token = secrets.token_urlsafe(24)
    conn.execute(
        "UPDATE jobs SET status = 'RUNNING', agent_id = ?, lease_token_hash = ?, lease_expires_at = ?, claimed_at = ? "
        "WHERE id = ?",
        (agent_id, _hash(token), now + lease_s * 1000, now, job_id),
    )
    conn.execute(
        "UPDATE results SET status = 'RUNNING', executed_at = coalesce(executed_at, ?), updated_at = ? "
        "WHERE run_id = ? AND status = 'PENDING' AND test_id IN (SELECT test_id FROM executions WHERE job_id = ?)",
        (now, now, run_id, job_id),
    )
    runs_core.refresh_counts(conn, run_id)
    conn.execute(
        "UPDATE runs SET status = 'RUNNING', started_at = coalesce(started_at, ?) WHERE id = ? AND status = 'PENDING'",
        (now, run_id),
    )
    agents.seen(conn, agent_id, job_id)
    return _claimed(conn, job_id, token, lease_s)


def _claimed(conn: sqlite3.Connection, job_id: str, token: str, lease_s: int) -> ClaimedJob:
    j = conn.execute(
        "SELECT j.id, j.run_id, r.short_id, j.project_id, j.framework, j.options, r.ci_provider, r.branch, "
        "r.commit_sha, r.pr_number, r.pr_url, r.repository FROM jobs j JOIN runs r ON r.id = j.run_id WHERE j.id = ?",
        (job_id,),
    ).fetchone()
    tests = [
        JobTest(*r)
        for r in conn.execute(
            "SELECT e.id, t.test_case_id, c.code, t.title, t.suite_path, e.grep, e.file FROM executions e "
            "JOIN tests t ON t.id = e.test_id LEFT JOIN test_cases c ON c.id = t.test_case_id "
            "WHERE e.job_id = ? ORDER BY e.position",
            (job_id,),
        )
    ]
    return ClaimedJob(
        id=j[0], lease_token=token, lease_s=lease_s, heartbeat_s=max(1, lease_s // 3), run_id=j[1],
        run_short_id=j[2], project_id=j[3], framework=j[4],
        options=_options_decoder.decode(j[5]) if j[5] else TriggerOptions(),
        ci=JobCi(source=j[6], branch=j[7], sha=j[8], pr_number=j[9], pr_url=j[10], repository=j[11]), tests=tests,
    )


# --- the lease holder's calls -----------------------------------------------------------


def _leased(conn: sqlite3.Connection, tenant_id: str, job_id: str, token: str):
    """(status, run_id, agent_id, lease_expires_at) of a job whose lease `token` holds."""
    row = conn.execute(
        "SELECT status, run_id, agent_id, lease_expires_at, lease_token_hash FROM jobs WHERE id = ? AND tenant_id = ?",
        (job_id, tenant_id),
    ).fetchone()
    if row is None:
        raise NotFound("Job not found")
    if row[4] is None or not hmac.compare_digest(row[4], _hash(token)):
        raise Conflict("this job is not leased to the caller (wrong or stale lease_token)")
    return row[0], row[1], row[2], row[3]


def _state(conn: sqlite3.Connection, job_id: str) -> JobState:
    status, message, expires = conn.execute(
        "SELECT status, message, lease_expires_at FROM jobs WHERE id = ?", (job_id,)
    ).fetchone()
    running = status == "RUNNING"
    return JobState(job_id, status, not running and status != "DONE", None if running else message,
                    to_iso(expires) if running else None)


def _cancel_if_run_finished(conn: sqlite3.Connection, job_id: str, run_id: str) -> bool:
    run_status = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
    if run_status not in RUN_FINISHED:
        return False
    _end_job(conn, job_id, "CANCELED", f"the run was {run_status.lower()}")
    return True


def heartbeat(conn: sqlite3.Connection, tenant_id: str, job_id: str, token: str, *, lease_s: int) -> JobState:
    """Renew the lease; or tell the agent to stop when the run was canceled or the lease lost."""
    status, run_id, agent_id, _ = _leased(conn, tenant_id, job_id, token)
    if status == "RUNNING" and not _cancel_if_run_finished(conn, job_id, run_id):
        conn.execute("UPDATE jobs SET lease_expires_at = ? WHERE id = ?", (now_ms() + lease_s * 1000, job_id))
        agents.seen(conn, agent_id, job_id)
    else:
        agents.seen(conn, agent_id, None)
    return _state(conn, job_id)


def _job_tests(conn: sqlite3.Connection, job_id: str) -> list[tuple]:
    """(execution id, test id, test case id, code, title, suite path, grep) of a job's tests."""
    return conn.execute(
        "SELECT e.id, e.test_id, t.test_case_id, c.code, t.title, t.suite_path, e.grep FROM executions e "
        "JOIN tests t ON t.id = e.test_id LEFT JOIN test_cases c ON c.id = t.test_case_id "
        "WHERE e.job_id = ? ORDER BY e.position",
        (job_id,),
    ).fetchall()


def _matcher(tests: list[tuple]):
    """Find the job's test a report entry is about: by test case code (an @qa-hub tag), else by
    title, else by the grep pattern that selected it (pytest's `-k name` selects `name` and its
    parametrizations `name[...]`). An entry with a code of another test matches nothing."""
    by_code = {t[3]: t for t in tests if t[3]}
    by_case = {t[2]: t for t in tests if t[2]}
    by_title = {t[4].casefold(): t for t in tests}
    by_grep = {t[6]: t for t in tests if t[6]}

    def match(record: ResultRecord):
        if record.test_case_code:
            return by_code.get(record.test_case_code)
        if record.test_case_id:
            return by_case.get(record.test_case_id)
        title = (record.title or "").strip()
        base = title.split("[", 1)[0] if title.endswith("]") else title
        for key in (title, base):
            found = by_title.get(key.casefold()) or by_grep.get(key)
            if found:
                return found
        return None

    return match


def report(
    conn: sqlite3.Connection, tenant_id: str, job_id: str, token: str, items: Sequence[tuple[int, ResultRecord]],
    *, rejected: Sequence[ItemError] = (), lease_s: int,
) -> ReportOutcome:
    """Store the outcomes an agent parsed from the command's report into the job's run."""
    status, run_id, agent_id, _ = _leased(conn, tenant_id, job_id, token)
    if status != "RUNNING" or _cancel_if_run_finished(conn, job_id, run_id):
        raise Conflict(f"the job is {_state(conn, job_id).status} already; results were not stored")
    match = _matcher(_job_tests(conn, job_id))
    chosen: dict[str, tuple[int, ResultRecord, tuple]] = {}
    ignored, indexes = [], {}
    for index, record in items:
        test = match(record)
        if test is None:
            ignored.append(index)
            continue
        indexes.setdefault(test[0], []).append(index)
        best = chosen.get(test[0])
        # Several report entries for one test (a parametrized test selected by its name): the
        # test's outcome is the worst of them, in the one order of core/identity.py.
        if best is None or SEVERITY.get(record.status, 3) > SEVERITY.get(best[1].status, 3):
            chosen[test[0]] = (index, record, test)
    records = []
    for index, record, test in chosen.values():
        linked = test[2] is not None
        records.append((index, msgspec.structs.replace(
            record, test_case_code=None, test_case_id=test[2],
            title=None if linked else test[4], suite_path="" if linked else test[5], variant="",
        )))
    # Nothing dropped (issue 11): an entry tagged with a code this project's library lacks is
    # none of the job's tests, but it ran; it is kept as an unlinked result of the run, in the
    # same ingest as the job's tests, so its refusals (a duplicate) are reported like theirs.
    ignored_now = set(ignored)
    tagged = [(i, r) for i, r in items if i in ignored_now and r.test_case_code]
    unknown: list[tuple[int, ResultRecord]] = []
    if tagged:
        project_id = conn.execute("SELECT project_id FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
        codes = sorted({r.test_case_code for _, r in tagged})
        known = {row[0] for row in conn.execute(
            f"SELECT code FROM test_cases WHERE project_id = ? AND code IN ({','.join('?' * len(codes))})",
            (project_id, *codes),
        )}
        unknown = [(i, r) for i, r in tagged if r.test_case_code not in known]
        kept = {i for i, _ in unknown}
        ignored = [i for i in ignored if i not in kept]
    outcome = store_results(conn, tenant_id, [*records, *unknown], run_id=run_id, rejected=rejected,
                            unlink_unknown_codes=bool(unknown))
    result_ids = dict(conn.execute(
        "SELECT e.id, r.id FROM executions e JOIN results r ON r.run_id = e.run_id AND r.test_id = e.test_id "
        "WHERE e.job_id = ?",
        (job_id,),
    ).fetchall())
    stored = [
        StoredResult(index, execution_id, str(result_ids[execution_id]))
        for execution_id, all_indexes in indexes.items()
        for index in all_indexes
    ]
    conn.execute("UPDATE jobs SET lease_expires_at = ? WHERE id = ?", (now_ms() + lease_s * 1000, job_id))
    agents.seen(conn, agent_id, job_id)
    stored.sort(key=lambda s: s.index)
    return ReportOutcome(stored, ignored, outcome.errors)


# Why tests that have no outcome when their job ends get the status they get.
UNREPORTED = "the report never mentioned this test: it did not run (check its automation grep/file)"


def complete(
    conn: sqlite3.Connection, tenant_id: str, job_id: str, token: str, *, outcome: str, message: str | None = None,
) -> JobState:
    """The agent is done with the job. `outcome`: DONE (the report was read; tests it never
    mentioned end BROKEN), ERROR (no usable report: every unfinished test ends BROKEN with
    `message`) or TIMEOUT (the command ran out of time: unfinished tests end TIMEOUT)."""
    status, run_id, agent_id, _ = _leased(conn, tenant_id, job_id, token)
    if status == "RUNNING" and not _cancel_if_run_finished(conn, job_id, run_id):
        if outcome == "DONE":
            _settle(conn, tenant_id, job_id, run_id, "BROKEN", UNREPORTED)
        else:
            _settle(conn, tenant_id, job_id, run_id, "TIMEOUT" if outcome == "TIMEOUT" else "BROKEN",
                    message or "the agent could not run the tests")
        _end_job(conn, job_id, outcome, message)
    agents.seen(conn, agent_id, None)
    return _state(conn, job_id)


# --- endings --------------------------------------------------------------------------


def _time_out(conn: sqlite3.Connection, tenant_id: str, job_id: str, run_id: str, message: str) -> None:
    """A job that ran out of time: its unfinished tests become TIMEOUT, then the job ends."""
    _settle(conn, tenant_id, job_id, run_id, "TIMEOUT", message)
    _end_job(conn, job_id, "TIMEOUT", message)


def _settle(conn: sqlite3.Connection, tenant_id: str, job_id: str, run_id: str, status: str, message: str) -> int:
    """Give every test of the job that has no outcome yet `status` and `message`."""
    rows = conn.execute(
        "SELECT t.test_case_id, t.suite_path, t.title FROM executions e "
        "JOIN results r ON r.run_id = e.run_id AND r.test_id = e.test_id JOIN tests t ON t.id = e.test_id "
        "WHERE e.job_id = ? AND r.status IN ('PENDING', 'RUNNING')",
        (job_id,),
    ).fetchall()
    records = [
        (i, ResultRecord(status=status, test_case_id=case_id, title=None if case_id else title,
                         suite_path="" if case_id else suite, error_message=message))
        for i, (case_id, suite, title) in enumerate(rows)
    ]
    if records:
        store_results(conn, tenant_id, records, run_id=run_id)
    return len(records)


def _end_job(conn: sqlite3.Connection, job_id: str, status: str, message: str | None) -> None:
    """Close a job; when it was its run's last open job, finish the run: ERROR when a job broke
    or timed out, else COMPLETED (a canceled run is finished already)."""
    conn.execute(
        "UPDATE jobs SET status = ?, message = ?, finished_at = ?, lease_expires_at = NULL WHERE id = ?",
        (status, message, now_ms(), job_id),
    )
    conn.execute("UPDATE agents SET current_job_id = NULL WHERE current_job_id = ?", (job_id,))
    run_id, tenant_id = conn.execute("SELECT run_id, tenant_id FROM jobs WHERE id = ?", (job_id,)).fetchone()
    open_jobs, bad_jobs = conn.execute(
        "SELECT sum(status IN ('QUEUED', 'RUNNING')), sum(status IN ('ERROR', 'TIMEOUT')) FROM jobs WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    run_status = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
    if not open_jobs and run_status not in RUN_FINISHED:
        runs_core.finish_run(conn, tenant_id, run_id, status="ERROR" if bad_jobs else "COMPLETED")


def expire(conn: sqlite3.Connection, *, queue_timeout_s: int) -> list[str]:
    """Background writer operation: end jobs whose lease ran out (their unfinished tests become
    TIMEOUT) and queued jobs nobody claimed in time. Returns one line per job ended."""
    now = now_ms()
    ended = []
    for job_id, tenant_id, run_id, agent_name, seen_at in conn.execute(
        "SELECT j.id, j.tenant_id, j.run_id, a.name, a.last_seen_at FROM jobs j "
        "LEFT JOIN agents a ON a.id = j.agent_id "
        "WHERE j.status = 'RUNNING' AND j.lease_expires_at < ?",
        (now,),
    ).fetchall():
        if _cancel_if_run_finished(conn, job_id, run_id):
            continue
        message = (
            f"timed out: agent {agent_name!r} stopped renewing its lease (last heard from at {to_iso(seen_at)}); "
            "it died, was stopped, or lost the network"
        )
        _time_out(conn, tenant_id, job_id, run_id, message)
        ended.append(f"job {job_id}: lease of agent {agent_name!r} expired")
    if queue_timeout_s:
        for job_id, tenant_id, run_id, framework in conn.execute(
            "SELECT id, tenant_id, run_id, framework FROM jobs WHERE status = 'QUEUED' AND created_at < ?",
            (now - queue_timeout_s * 1000,),
        ).fetchall():
            if _cancel_if_run_finished(conn, job_id, run_id):
                continue
            message = (
                f"timed out: no agent with a {framework!r} command took this job within {queue_timeout_s} s "
                "(GET /api/v1/agents lists the agents and their frameworks)"
            )
            _time_out(conn, tenant_id, job_id, run_id, message)
            ended.append(f"job {job_id}: nobody claimed it")
    return ended
