"""The QA.tech dialect (seed 003 and its public reference, DESIGN.md): start a run, read a run
by its short id in blocking mode, rerun it.

These serve every run, whatever brought it in: an ingested run is read the same way, and can
be rerun when its tests can be executed (linked test cases with an automation mapping, or
unlinked tests whose framework is known). Statuses come from core/status.py: run status
INITIATED RUNNING COMPLETED ERROR CANCELLED; result PASSED (nothing failed), FAILED (anything
failed, broke or timed out), SKIPPED (all skipped), null while running and for a canceled run.
Errors are the one error shape, whose `message` is all QA.tech clients read.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Request
from litestar.params import FromPath

from ..core import executions, projects, triggers
from ..core.status import QATECH_CASE_STATUS, QATECH_FAILED_FILTER, QATECH_RESULT, QATECH_RUN_STATUS
from .agent_api import job_signal
from .auth import authenticate, check_project
from .context import services
from .errors import ApiError
from .native_runs import visible_run
from .routing import endpoint, read_body, read_query

TAGS = ["QA.tech: runs"]
Ref = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class StartIn(msgspec.Struct, forbid_unknown_fields=True):
    testPlanShortId: Ref | None = None  # a suite's id: its test cases and those of suites below it
    testCaseIds: Annotated[list[Ref], msgspec.Meta(max_length=10000)] | None = None  # test case ids or codes
    projectShortId: Ref | None = None  # needed with a key that is not limited to one project


class RerunIn(msgspec.Struct, forbid_unknown_fields=True):
    failedOnly: bool = False
    projectTestCaseIds: Annotated[list[Ref], msgspec.Meta(max_length=10000)] | None = None


class TestPlan(msgspec.Struct):
    name: str
    shortId: str


class RunOut(msgspec.Struct):
    id: str
    shortId: str
    url: str
    testCount: int
    testPlan: TestPlan | None


class StartAnswer(msgspec.Struct):
    success: bool
    run: RunOut


class RunQuery(msgspec.Struct, forbid_unknown_fields=True):
    testCases: str | None = None


class RunTestCase(msgspec.Struct):
    id: str  # the test case's id; for a test without one, its id within the project's tests
    shortId: str | None  # the test case's code
    name: str
    status: str
    result: str | None
    resultTitle: str | None
    evaluationThought: str | None
    promptGoal: str | None
    promptExamples: str | None


class RunStatus(msgspec.Struct):
    id: str
    shortId: str
    status: str
    result: str | None
    runTestCases: list[RunTestCase]


def _run_out(request: Request, done: triggers.Triggered, count: int, plan: TestPlan | None) -> StartAnswer:
    url = f"{services(request).config.public_url}/runs/{done.run_id}"
    return StartAnswer(True, RunOut(done.run_id, done.short_id, url, count, plan))


def _queued(request: Request, done: triggers.Triggered) -> None:
    if done.jobs:
        job_signal(services(request)).notify()


@endpoint("POST", "/v1/run", summary="Start a run (QA.tech)", tags=TAGS, scope="write", body=StartIn,
          responses={200: StartAnswer},
          description="No body or {}: every test case of the project. testPlanShortId: a suite (with the suites "
          "below it); testCaseIds: test case ids or codes; both: their union. The project is the key's, or "
          "projectShortId (id or slug) for a key of the whole tenant.")
async def start_run(request: Request) -> StartAnswer:
    principal = await authenticate(request, "write")
    data = await read_body(request, StartIn) if (await request.body()).strip() else StartIn()
    ref = data.projectShortId or principal.project_id
    if ref is None:
        raise ApiError(400, "This API key is not limited to one project: pass projectShortId (a project's id or slug)")
    project = await services(request).db.read(projects.get_project, principal.tenant_id, ref)
    check_project(principal, project.id)

    def create(conn):
        chosen = triggers.plan_trigger(
            conn, principal.tenant_id, project.id, suite_id=data.testPlanShortId, case_refs=data.testCaseIds or (),
        )
        done = triggers.create_triggered_run(conn, principal.tenant_id, triggers.Trigger(
            project_id=project.id, name=chosen.name, source="qatech", specs=chosen.specs,
            extra={"suite_id": chosen.suite_id} if chosen.suite_id else {},
        ))
        plan = TestPlan(chosen.suite_name, chosen.suite_id) if chosen.suite_id else None
        return done, len(chosen.specs), plan

    done, count, plan = await services(request).db.write(create)
    _queued(request, done)
    return _run_out(request, done, count, plan)


def _case(tr: executions.TestRun) -> RunTestCase:
    message = tr.error_message
    title = message.strip().splitlines()[0][:200] if message and message.strip() else None
    return RunTestCase(
        id=tr.test_case_id or str(tr.test_id), shortId=tr.code, name=tr.title, status=QATECH_CASE_STATUS[tr.status],
        result=QATECH_RESULT[tr.status], resultTitle=title, evaluationThought=message, promptGoal=tr.description,
        promptExamples=None,
    )


@endpoint("GET", "/v1/run/{short_id:str}", summary="A run's status and result, by short id (QA.tech, seed 003)",
          tags=TAGS, scope="read", query=RunQuery, responses={200: RunStatus},
          description="runTestCases is empty unless testCases=all (every test) or testCases=failed (failed, "
          "skipped and errored tests) is given; another value is a 400. Any run: triggered or ingested.")
async def get_run(request: Request, short_id: FromPath[str]) -> RunStatus:
    _, run = await visible_run(request, "read", short_id)
    q = read_query(request, RunQuery)
    if q.testCases not in (None, "failed", "all"):
        raise ApiError(400, f"testCases must be `failed` or `all`, not {q.testCases!r}")
    cases: list[RunTestCase] = []
    if q.testCases:
        found = await services(request).db.read(
            executions.test_runs_of_run, run.id, QATECH_FAILED_FILTER if q.testCases == "failed" else ()
        )
        cases = [_case(tr) for tr in found]
    result = None if run.status == "CANCELED" else run.verdict
    return RunStatus(run.id, run.short_id, QATECH_RUN_STATUS[run.status], result, cases)


@endpoint("POST", "/v1/run/{short_id:str}", summary="Rerun a run's tests as a new run (QA.tech)", tags=TAGS,
          scope="write", body=RerunIn, responses={200: StartAnswer},
          description="{} (or no body): every test of the run; {\"failedOnly\": true}: those whose result was "
          "FAILED (failed, broken, timed out); {\"projectTestCaseIds\": [...]}: those (ids or codes, tests of the "
          "run). failedOnly with projectTestCaseIds is a 400. Answers the new run.")
async def rerun(request: Request, short_id: FromPath[str]) -> StartAnswer:
    principal, run = await visible_run(request, "write", short_id)
    data = await read_body(request, RerunIn) if (await request.body()).strip() else RerunIn()
    if data.failedOnly and data.projectTestCaseIds is not None:
        raise ApiError(400, "Pass failedOnly or projectTestCaseIds, not both")

    def create(conn):
        source = triggers.rerun_specs(
            conn, principal.tenant_id, run.id, failed_only=data.failedOnly, test_refs=data.projectTestCaseIds
        )
        done = triggers.create_triggered_run(conn, principal.tenant_id, triggers.Trigger(
            project_id=run.project_id, name=f"{run.name} (rerun)", source="qatech", specs=source.specs,
            options=source.options, ci=source.ci, extra={"rerun_of": run.id},
        ))
        return done, len(source.specs)

    done, count = await services(request).db.write(create)
    _queued(request, done)
    return _run_out(request, done, count, None)


HANDLERS = [start_run, get_run, rerun]
