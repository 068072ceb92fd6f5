"""The Qualigate dialect (seed 004): trigger tests, poll their status, read aggregated results,
read a project's CI configuration.

Ids: a Qualigate *test run* is one result of a run. A triggered test has its execution's UUID;
a result that came in any other way answers to its result id. A *suite run* is a run: a
`test_suite_id` trigger makes one run of the suite's test cases, a `project_id` trigger one run
of the project's, a `test_case_id` trigger a run of that one test. `suite_run_id` also accepts
a run's short id, and a test run id (its run), which is what the seed's GitHub Actions job
polls with when it triggered a single test case.

Verdicts (the seed contradicts itself: its suite example answers "completed" with a failed
test, while its GitHub Actions job and Node script treat "completed" as success): a finished
suite answers `passed` when no test failed, broke or timed out, `failed` otherwise, `canceled`
when it was canceled; never `completed`. So both scripts stop with the right exit code.
Errors: a resource of the key's tenant outside the project the key is limited to answers 403
(the seed's "valid key, no access to this resource"); one that does not exist, or belongs to
another tenant, 404: tenants never learn of each other's data, on any route. 429 with
`retry_after` comes from the shared rate limiter (group `qualigate`).
"""

from __future__ import annotations

from litestar import Request, Response

from ..core import executions, polls, projects, triggers, unserved
from ..core import runs as runs_core
from ..core.clock import to_iso
from ..core.executions import Owner, TestRun
from ..core.model import CiContext
from ..core.status import QUALIGATE_FAILED_STATES, QUALIGATE_OUT
from ..core.tenancy import Principal
from .agent_api import job_signal
from .auth import authenticate
from .context import services
from .errors import ApiError
from .qualigate_schema import (
    CiConfigAnswer, CiConfigOut, CiConfigQuery, ProjectRunQueued, ResultItem, ResultsAnswer, ResultsQuery,
    StatusQuery, SuiteResultsAnswer, SuiteRunQueued, SuiteRunStatus, TestRunQueued, TestRunStatus, TriggerIn,
)
from .routing import endpoint, read_body, read_query

TAGS = ["Qualigate: triggers and results"]
NOT_YOURS = "You don't have access to this resource"


def _check_owner(principal: Principal, owner: Owner | None, missing: str) -> Owner:
    # Another tenant's resources do not exist for this key (tenant isolation holds on every
    # route); a resource of the key's own tenant outside the one project the key is limited to
    # is the seed's 403.
    if owner is None or owner.tenant_id != principal.tenant_id:
        raise ApiError(404, missing)
    if principal.project_id not in (None, owner.project_id):
        raise ApiError(403, NOT_YOURS)
    return owner


async def _owned(request: Request, principal: Principal, kind: str, ref: str, missing: str) -> Owner:
    return _check_owner(principal, await services(request).db.read(executions.locate, kind, ref), missing)


def _online_window_ms(request: Request) -> int:
    """The agent list's measure of online (api/agent_api.py): one long-poll plus one lease."""
    jobs = services(request).config.jobs
    return (jobs.max_poll_s + jobs.lease_s) * 1000


def _ci(context) -> CiContext:
    if context is None:
        return CiContext()

    def text(value) -> str | None:
        return str(value) if value not in (None, "") else None

    return CiContext(
        ci_provider=text(context.source), pr_number=text(context.pr_number), pr_url=text(context.pr_url),
        commit_sha=text(context.sha), branch=text(context.branch), repository=text(context.repository),
    )


def suite_status(run: runs_core.Run) -> str:
    """A run's Qualigate status: its lifecycle while it is not finished, then its verdict
    (core/runs.py). Qualigate knows no `unknown`: an UNKNOWN result is an `error` there
    (QUALIGATE_OUT), so it fails the suite as well."""
    if run.status == "PENDING":
        return "pending"
    if run.status == "RUNNING":
        return "running"
    if run.status == "CANCELED":
        return "canceled"
    return "failed" if run.verdict == "FAILED" or run.counts.unknown else "passed"


def aggregate_status(statuses: list[str]) -> str:
    """The status of several test runs (Qualigate statuses) taken together."""
    if "running" in statuses:
        return "running"
    if "pending" in statuses:
        return "pending"
    if QUALIGATE_FAILED_STATES.intersection(statuses):
        return "failed"
    return "canceled" if "canceled" in statuses else "passed"


def _plural(n: int) -> str:
    return f"{n} test{'s' if n != 1 else ''}"


@endpoint("POST", "/api/v1/trigger", summary="Trigger a test case, a suite or a whole project (seed 004)", tags=TAGS,
          scope="write", body=TriggerIn, responses={201: TestRunQueued | SuiteRunQueued | ProjectRunQueued},
          description="Exactly one of test_case_id (answers test_run_id), test_suite_id (suite_run_id and "
          "test_count) or project_id (test_run_ids and test_count). The run is queued for an agent; a test case "
          "without an automation mapping fails at once with status `error` and a message saying what to set.")
async def trigger(request: Request) -> Response:
    principal = await authenticate(request, "write")
    data = await read_body(request, TriggerIn)
    given = [(kind, ref) for kind, ref in (("test_case", data.test_case_id), ("suite", data.test_suite_id),
                                          ("project", data.project_id)) if ref]
    if len(given) != 1:
        raise ApiError(400, "Provide exactly one of test_case_id, test_suite_id or project_id")
    kind, ref = given[0]
    missing = {"test_case": "Test case not found", "suite": "Test suite not found", "project": "Project not found"}
    owner = await _owned(request, principal, kind, ref, missing[kind])
    options = triggers.TriggerOptions(
        browser=data.browser_type, viewport=data.viewport_preset, viewport_width=data.viewport_width,
        viewport_height=data.viewport_height,
    )
    tenant_id = principal.tenant_id
    window_ms = _online_window_ms(request)

    def create(conn):
        plan = triggers.plan_trigger(
            conn, tenant_id, owner.project_id, suite_id=owner.id if kind == "suite" else None,
            case_refs=[owner.id] if kind == "test_case" else (),
        )
        done = triggers.create_triggered_run(conn, tenant_id, triggers.Trigger(
            project_id=owner.project_id, name=plan.name, source="qualigate", specs=plan.specs, options=options,
            ci=_ci(data.context), extra={"suite_id": plan.suite_id} if plan.suite_id else {},
        ))
        run = runs_core.get_run(conn, tenant_id, done.run_id)
        return done, run, plan.specs, unserved.no_agent_reason(conn, tenant_id, run.id, window_ms)

    done, run, specs, waiting = await services(request).db.write(create)
    if done.jobs:
        job_signal(services(request)).notify()
    queued = len(specs) - done.failed_fast
    if kind == "test_case":
        reason = specs[0].no_agent_reason()
        return Response(TestRunQueued(
            True, done.execution_ids[0], "error" if reason else "pending",
            reason or "Test run queued successfully" + (f"; {waiting}" if waiting else ""),
        ), status_code=201)
    message = f"{_plural(queued)} queued successfully"
    if done.failed_fast:
        message += f"; {_plural(done.failed_fast)} cannot run: no automation mapping (their status is error)"
    if waiting:
        message += f"; {waiting}"
    status = suite_status(run)
    if kind == "suite":
        return Response(SuiteRunQueued(True, run.id, len(specs), status, message), status_code=201)
    return Response(ProjectRunQueued(True, done.execution_ids, len(specs), status, message), status_code=201)


def _video_url(request: Request, tr: TestRun) -> str | None:
    if tr.video_attachment_id is None:
        return None
    return f"{services(request).config.public_url}/api/v1/attachments/{tr.video_attachment_id}"


@endpoint("GET", "/api/v1/trigger", summary="Status of a test run or a suite run (seed 004)", tags=TAGS,
          scope="read", query=StatusQuery, responses={200: TestRunStatus | SuiteRunStatus},
          description="With test_run_id: one test (status pending, running, passed, failed, error, timeout or "
          "canceled). With suite_run_id: the run, aggregated (pending, running, then passed, failed or canceled).")
async def status(request: Request) -> TestRunStatus | SuiteRunStatus:
    principal = await authenticate(request, "read")
    q = read_query(request, StatusQuery)
    if bool(q.test_run_id) == bool(q.suite_run_id):
        raise ApiError(400, "Provide exactly one of test_run_id or suite_run_id")
    db = services(request).db
    if q.test_run_id:
        polled = await db.read(polls.poll_test_run, q.test_run_id, _online_window_ms(request))
        _check_owner(principal, polled.owner, "Test run not found")
        tr = polled.test_run
        if tr is None:  # its result was deleted (retention, a deleted test case) after the trigger
            raise ApiError(404, "Test run not found")
        qg = QUALIGATE_OUT[tr.status]
        return TestRunStatus(
            id=q.test_run_id, status=qg, started_at=to_iso(tr.started_at), completed_at=to_iso(tr.completed_at),
            duration_ms=tr.duration_ms, steps_completed=0 if qg in ("pending", "running") else 1, steps_total=1,
            error_message=tr.error_message, video_url=_video_url(request, tr),
            message=polled.waiting if qg == "pending" else None,
        )
    polled = await _suite_run(request, principal, q.suite_run_id)
    run = polled.run
    passed, failed = _tally(polled)
    return SuiteRunStatus(
        id=q.suite_run_id, status=suite_status(run), started_at=run.started_at, completed_at=run.finished_at,
        duration_ms=run.duration_ms, total_tests=run.counts.total, passed_tests=passed, failed_tests=failed,
        run_id=run.id, message=polled.waiting,
    )


async def _suite_run(request: Request, principal: Principal, ref: str) -> polls.RunPoll:
    polled = await services(request).db.read(polls.poll_run, ref, _online_window_ms(request))
    _check_owner(principal, polled.owner, "Suite run not found")
    return polled


def _tally(polled: polls.RunPoll) -> tuple[int, int]:
    """(passed_tests, failed_tests) from the run's stored counts, in Qualigate's terms: a skipped
    test passed (QUALIGATE_OUT), a canceled one neither passed nor failed, UNKNOWN is an error."""
    c = polled.run.counts
    return c.passed + c.skipped - polled.canceled, c.failed + c.broken + c.unknown


def _item(request: Request, tr: TestRun, ref: str) -> ResultItem:
    qg = QUALIGATE_OUT[tr.status]
    return ResultItem(
        test_run_id=ref, test_case_name=tr.title, status=qg, duration_ms=tr.duration_ms,
        error_message=tr.error_message if qg != "passed" else None,
        dashboard_url=f"{services(request).config.public_url}/runs/{tr.run_id}",
    )


@endpoint("GET", "/api/v1/results", summary="Aggregated results of test runs or of a suite run (seed 004)",
          tags=TAGS, scope="read", query=ResultsQuery, responses={200: ResultsAnswer | SuiteResultsAnswer},
          description="test_run_ids: comma-separated test run ids (at most 1000). suite_run_id: every test of the "
          "run. `dashboard_url` is the run's page on this server (server.public_url).")
async def results(request: Request) -> ResultsAnswer | SuiteResultsAnswer:
    principal = await authenticate(request, "read")
    q = read_query(request, ResultsQuery)
    if bool(q.test_run_ids) == bool(q.suite_run_id):
        raise ApiError(400, "Provide exactly one of test_run_ids or suite_run_id")
    db = services(request).db
    if q.test_run_ids:
        refs = list(dict.fromkeys(r.strip() for r in q.test_run_ids.split(",") if r.strip()))
        if not refs or len(refs) > 1000:
            raise ApiError(400, "test_run_ids must list between 1 and 1000 comma-separated test run ids")
        too_long = next((ref for ref in refs if len(ref) > 64), None)
        if too_long is not None:
            raise ApiError(400, f"test_run_ids: {too_long[:20]}... is not a test run id (at most 64 characters)")
        read = await db.read(polls.read_test_runs, refs)
        for ref in refs:
            _check_owner(principal, read.owners.get(ref), f"Test run not found: {ref}")
        gone = [ref for ref in refs if ref not in read.test_runs]
        if gone:
            raise ApiError(404, f"Test run not found: {gone[0]}")
        items = [_item(request, read.test_runs[ref], ref) for ref in refs]
        statuses = [i.status for i in items]
        return ResultsAnswer(
            total_tests=len(items), passed_tests=statuses.count("passed"),
            failed_tests=sum(1 for s in statuses if s in QUALIGATE_FAILED_STATES), status=aggregate_status(statuses),
            results=items,
        )
    polled = await _suite_run(request, principal, q.suite_run_id)
    run = polled.run
    items = [_item(request, tr, tr.id) for tr in await db.read(executions.test_runs_of_run, run.id)]
    return SuiteResultsAnswer(
        suite_run_id=q.suite_run_id, suite_name=run.name, total_tests=len(items),
        passed_tests=sum(1 for i in items if i.status == "passed"),
        failed_tests=sum(1 for i in items if i.status in QUALIGATE_FAILED_STATES), status=suite_status(run),
        results=items,
    )


@endpoint("GET", "/api/v1/ci-config", summary="A project's CI configuration (seed 004)", tags=TAGS, scope="read",
          query=CiConfigQuery, responses={200: CiConfigAnswer},
          description="Edited with PATCH /api/v1/projects/{id} {\"ci_config\": {provider, trigger_on, branches, "
          "test_suite_id}}.")
async def ci_config(request: Request) -> CiConfigAnswer:
    principal = await authenticate(request, "read")
    q = read_query(request, CiConfigQuery)
    owner = await _owned(request, principal, "project", q.project_id, "Project not found")
    project = await services(request).db.read(projects.get_project, owner.tenant_id, owner.id)
    c = project.ci_config
    return CiConfigAnswer(project.id, project.name, CiConfigOut(c.provider, c.trigger_on, c.branches, c.test_suite_id))


HANDLERS = [trigger, status, results, ci_config]
