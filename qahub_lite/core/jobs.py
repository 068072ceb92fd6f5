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
from collections.abc import Sequence

import msgspec

from ..db import jobs as jobs_db
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


def job_exists(conn, tenant_id: str, job_id: str, project_id: str | None = None) -> bool:
    """True for a job of the tenant (and of `project_id`, for a key limited to one project)."""
    return jobs_db.job_exists(conn, tenant_id, job_id, project_id)


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# --- claim ----------------------------------------------------------------------------


def claim(
    conn, tenant_id: str, hello: agents.AgentHello, *, lease_s: int, project_id: str | None = None,
) -> ClaimedJob | None:
    """The tenant's oldest queued job of one of the agent's frameworks, leased to it; None when
    there is none. The job's tests and its run become RUNNING."""
    agent_id = agents.touch_agent(conn, tenant_id, hello)
    if not hello.frameworks:
        return None
    # Canceled while queued: such a job will never run, and must not hold the queue.
    for stale in jobs_db.queued_jobs_of_finished_runs(conn, tenant_id, hello.frameworks, project_id, RUN_FINISHED):
        _end_job(conn, stale["id"], "CANCELED",
                 f"the run was {stale['run_status'].lower()} before an agent took the job")
    now = now_ms()
    token = secrets.token_urlsafe(24)
    job = jobs_db.claim_oldest_job(
        conn, tenant_id, hello.frameworks, project_id, finished=RUN_FINISHED, agent_id=agent_id,
        token_hash=_hash(token), lease_expires_at=now + lease_s * 1000, now=now,
    )
    if job is None:
        agents.seen(conn, agent_id, None)
        return None
    job_id, run_id = job["id"], job["run_id"]
    jobs_db.start_job_tests(conn, run_id, job_id, now)
    runs_core.refresh_counts(conn, run_id)
    jobs_db.start_run(conn, run_id, now)
    agents.seen(conn, agent_id, job_id)
    return _claimed(conn, job_id, token, lease_s)


def _claimed(conn, job_id: str, token: str, lease_s: int) -> ClaimedJob:
    j = jobs_db.claimed_job(conn, job_id)
    tests = [
        JobTest(t["execution_id"], t["test_case_id"], t["code"], t["title"], t["suite_path"], t["grep"], t["file"])
        for t in jobs_db.job_tests(conn, job_id)
    ]
    return ClaimedJob(
        id=j["id"], lease_token=token, lease_s=lease_s, heartbeat_s=max(1, lease_s // 3), run_id=j["run_id"],
        run_short_id=j["short_id"], project_id=j["project_id"], framework=j["framework"],
        options=_options_decoder.decode(j["options"]) if j["options"] else TriggerOptions(),
        ci=JobCi(source=j["ci_provider"], branch=j["branch"], sha=j["commit_sha"], pr_number=j["pr_number"],
                 pr_url=j["pr_url"], repository=j["repository"]),
        tests=tests,
    )


# --- the lease holder's calls -----------------------------------------------------------


def _leased(conn, tenant_id: str, job_id: str):
    """The lease row (status, run_id, run_status, agent_id, ...) of a job whose lease `token`
    holds."""
    row = jobs_db.job_lease(conn, tenant_id, job_id)
    if row is None:
        raise NotFound("Job not found")
    return row


def _check_token(row, token: str) -> None:
    stored = row["lease_token_hash"]
    if stored is None or not hmac.compare_digest(stored, _hash(token)):
        raise Conflict("this job is not leased to the caller (wrong or stale lease_token)")


def _holder(conn, tenant_id: str, job_id: str, token: str):
    row = _leased(conn, tenant_id, job_id)
    _check_token(row, token)
    return row


def _state(conn, job_id: str) -> JobState:
    row = jobs_db.job_state(conn, job_id)
    status = row["status"]
    running = status == "RUNNING"
    return JobState(job_id, status, not running and status != "DONE", None if running else row["message"],
                    to_iso(row["lease_expires_at"]) if running else None)


def _cancel_if_run_finished(conn, job_id: str, run_status: str) -> bool:
    if run_status not in RUN_FINISHED:
        return False
    _end_job(conn, job_id, "CANCELED", f"the run was {run_status.lower()}")
    return True


def heartbeat(conn, tenant_id: str, job_id: str, token: str, *, lease_s: int) -> JobState:
    """Renew the lease; or tell the agent to stop when the run was canceled or the lease lost."""
    lease = _holder(conn, tenant_id, job_id, token)
    agent_id = lease["agent_id"]
    if lease["status"] == "RUNNING" and not _cancel_if_run_finished(conn, job_id, lease["run_status"]):
        jobs_db.renew_lease(conn, job_id, now_ms() + lease_s * 1000)
        agents.seen(conn, agent_id, job_id)
    else:
        agents.seen(conn, agent_id, None)
    return _state(conn, job_id)


def _matcher(tests: list):
    """Find the job's test a report entry is about: by test case code (an @qa-hub tag), else by
    title, else by the grep pattern that selected it (pytest's `-k name` selects `name` and its
    parametrizations `name[...]`). An entry with a code of another test matches nothing."""
    by_code = {t["code"]: t for t in tests if t["code"]}
    by_case = {t["test_case_id"]: t for t in tests if t["test_case_id"]}
    by_title = {t["title"].casefold(): t for t in tests}
    by_grep = {t["grep"]: t for t in tests if t["grep"]}

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
    conn, tenant_id: str, job_id: str, token: str, items: Sequence[tuple[int, ResultRecord]],
    *, rejected: Sequence[ItemError] = (), lease_s: int,
) -> ReportOutcome:
    """Store the outcomes an agent parsed from the command's report into the job's run."""
    lease = _holder(conn, tenant_id, job_id, token)
    run_id, agent_id = lease["run_id"], lease["agent_id"]
    if lease["status"] != "RUNNING" or _cancel_if_run_finished(conn, job_id, lease["run_status"]):
        raise Conflict(f"the job is {_state(conn, job_id).status} already; results were not stored")
    match = _matcher(jobs_db.job_tests(conn, job_id))
    chosen: dict[str, tuple[int, ResultRecord, object]] = {}
    ignored, indexes = [], {}
    for index, record in items:
        test = match(record)
        if test is None:
            ignored.append(index)
            continue
        execution_id = test["execution_id"]
        indexes.setdefault(execution_id, []).append(index)
        best = chosen.get(execution_id)
        # Several report entries for one test (a parametrized test selected by its name): the
        # test's outcome is the worst of them, in the one order of core/identity.py.
        if best is None or SEVERITY.get(record.status, 3) > SEVERITY.get(best[1].status, 3):
            chosen[execution_id] = (index, record, test)
    records = []
    for index, record, test in chosen.values():
        linked = test["test_case_id"] is not None
        records.append((index, msgspec.structs.replace(
            record, test_case_code=None, test_case_id=test["test_case_id"],
            title=None if linked else test["title"], suite_path="" if linked else test["suite_path"], variant="",
        )))
    # Nothing dropped (issue 11): an entry tagged with a code this project's library lacks is
    # none of the job's tests, but it ran; it is kept as an unlinked result of the run, in the
    # same ingest as the job's tests, so its refusals (a duplicate) are reported like theirs.
    ignored_now = set(ignored)
    tagged = [(i, r) for i, r in items if i in ignored_now and r.test_case_code]
    unknown: list[tuple[int, ResultRecord]] = []
    if tagged:
        known = jobs_db.library_codes_of_run(conn, run_id, sorted({r.test_case_code for _, r in tagged}))
        unknown = [(i, r) for i, r in tagged if r.test_case_code not in known]
        kept = {i for i, _ in unknown}
        ignored = [i for i in ignored if i not in kept]
    outcome = store_results(conn, tenant_id, [*records, *unknown], run_id=run_id, rejected=rejected,
                            unlink_unknown_codes=bool(unknown))
    result_ids = jobs_db.result_ids_of_job(conn, job_id)
    stored = [
        StoredResult(index, execution_id, str(result_ids[execution_id]))
        for execution_id, all_indexes in indexes.items()
        for index in all_indexes
    ]
    jobs_db.renew_lease(conn, job_id, now_ms() + lease_s * 1000)
    agents.seen(conn, agent_id, job_id)
    stored.sort(key=lambda s: s.index)
    return ReportOutcome(stored, ignored, outcome.errors)


# Why tests that have no outcome when their job ends get the status they get.
UNREPORTED = "the report never mentioned this test: it did not run (check its automation grep/file)"


def complete(conn, tenant_id: str, job_id: str, token: str, *, outcome: str, message: str | None = None) -> JobState:
    """The agent is done with the job. `outcome`: DONE (the report was read; tests it never
    mentioned end BROKEN), ERROR (no usable report: every unfinished test ends BROKEN with
    `message`) or TIMEOUT (the command ran out of time: unfinished tests end TIMEOUT)."""
    lease = _holder(conn, tenant_id, job_id, token)
    run_id = lease["run_id"]
    if lease["status"] == "RUNNING" and not _cancel_if_run_finished(conn, job_id, lease["run_status"]):
        if outcome == "DONE":
            _settle(conn, tenant_id, job_id, run_id, "BROKEN", UNREPORTED)
        else:
            _settle(conn, tenant_id, job_id, run_id, "TIMEOUT" if outcome == "TIMEOUT" else "BROKEN",
                    message or "the agent could not run the tests")
        _end_job(conn, job_id, outcome, message)
    agents.seen(conn, lease["agent_id"], None)
    return _state(conn, job_id)


# --- endings --------------------------------------------------------------------------


def _time_out(conn, tenant_id: str, job_id: str, run_id: str, message: str) -> None:
    """A job that ran out of time: its unfinished tests become TIMEOUT, then the job ends."""
    _settle(conn, tenant_id, job_id, run_id, "TIMEOUT", message)
    _end_job(conn, job_id, "TIMEOUT", message)


def _settle(conn, tenant_id: str, job_id: str, run_id: str, status: str, message: str) -> int:
    """Give every test of the job that has no outcome yet `status` and `message`."""
    records = [
        (i, ResultRecord(status=status, test_case_id=t["test_case_id"],
                         title=None if t["test_case_id"] else t["title"],
                         suite_path="" if t["test_case_id"] else t["suite_path"], error_message=message))
        for i, t in enumerate(jobs_db.unfinished_tests_of_job(conn, job_id))
    ]
    if records:
        store_results(conn, tenant_id, records, run_id=run_id)
    return len(records)


def _end_job(conn, job_id: str, status: str, message: str | None) -> None:
    """Close a job; when it was its run's last open job, finish the run: ERROR when a job broke
    or timed out, else COMPLETED (a canceled run is finished already)."""
    run = jobs_db.close_job(conn, job_id, status, message, now_ms())
    if not run["open_jobs"] and run["run_status"] not in RUN_FINISHED:
        runs_core.finish_run(conn, run["tenant_id"], run["run_id"],
                             status="ERROR" if run["bad_jobs"] else "COMPLETED")


def expire(conn, *, queue_timeout_s: int) -> list[str]:
    """Background writer operation: end jobs whose lease ran out (their unfinished tests become
    TIMEOUT) and queued jobs nobody claimed in time. Returns one line per job ended."""
    now = now_ms()
    ended = []
    for job in jobs_db.expired_leases(conn, now):
        # Read per job: ending one job can finish the run another job belongs to.
        if _cancel_if_run_finished(conn, job["id"], jobs_db.run_status(conn, job["run_id"])):
            continue
        agent_name = job["agent_name"]
        message = (
            f"timed out: agent {agent_name!r} stopped renewing its lease (last heard from at "
            f"{to_iso(job['last_seen_at'])}); it died, was stopped, or lost the network"
        )
        _time_out(conn, job["tenant_id"], job["id"], job["run_id"], message)
        ended.append(f"job {job['id']}: lease of agent {agent_name!r} expired")
    if queue_timeout_s:
        for job in jobs_db.queued_before(conn, now - queue_timeout_s * 1000):
            if _cancel_if_run_finished(conn, job["id"], jobs_db.run_status(conn, job["run_id"])):
                continue
            message = (
                f"timed out: no agent with a {job['framework']!r} command took this job within {queue_timeout_s} s "
                "(GET /api/v1/agents lists the agents and their frameworks)"
            )
            _time_out(conn, job["tenant_id"], job["id"], job["run_id"], message)
            ended.append(f"job {job['id']}: nobody claimed it")
    return ended
