"""Test health routes: flaky tests, tests with their states, one test's history, quarantine,
grade, trends, the quality gate and a run's regressions (docs/health.md).

They read the canonical tables only, so they answer for every run whatever dialect brought it
in. Each is a thin edge: validate the query, check the key may see the project, call core.
"""

from __future__ import annotations

from litestar import Request
from litestar.params import FromPath

from ..core import flaky, gate, grade, quarantine, regressions, trends
from ..core.clock import now_ms
from ..core.errors import NotFound
from .context import services
from .errors import ApiError
from .health_schema import FlakyQuery, GateQuery, GradeQuery, HistoryQuery, QuarantineIn, TestsQuery, TrendsQuery
from .native_library import visible_project
from ..core.triage import parse_moment as parse_since
from .native_runs import visible_run
from .routing import endpoint, read_body, read_query

TAGS = ["Test health"]
_P = "/api/v1/projects/{project_id:str}"


@endpoint("GET", f"{_P}/flaky", summary="The project's flaky tests, top offenders first", tags=TAGS, scope="read",
          query=FlakyQuery, responses={200: flaky.FlakyRanking},
          description="Judged over the last flaky.window_runs completed runs of the branch (default: the default "
          "branch), infrastructure failures left out. Ranked by flakiness = max(flip rate, retry rate, conflict "
          "rate), then fail rate, then the latest failure. docs/health.md has every formula.")
async def flaky_tests(request: Request, project_id: FromPath[str]) -> flaky.FlakyRanking:
    _, project = await visible_project(request, "read", project_id)
    q = read_query(request, FlakyQuery)
    cfg = services(request).config
    return await services(request).db.read(
        flaky.rank, project.id, branch=q.branch if q.branch is not None else project.default_branch, rules=cfg.flaky,
        limit=q.limit, include_quarantined=q.include_quarantined,
    )


@endpoint("GET", f"{_P}/tests", summary="Tests with their states (broken, flaky, healthy) and quarantine",
          tags=TAGS, scope="read", query=TestsQuery, responses={200: flaky.TestHealthPage},
          description="Tests that ran in the window, and every quarantined test: broken first, then flaky (top "
          "offenders first), then healthy.")
async def list_tests(request: Request, project_id: FromPath[str]) -> flaky.TestHealthPage:
    _, project = await visible_project(request, "read", project_id)
    q = read_query(request, TestsQuery)
    cfg = services(request).config
    return await services(request).db.read(
        flaky.list_tests, project.id, branch=q.branch if q.branch is not None else project.default_branch,
        rules=cfg.flaky, state=q.state, quarantined=q.quarantined, limit=q.limit, cursor=q.cursor, tag=q.tag, q=q.q,
    )


@endpoint("GET", f"{_P}/tests/{{test_id:str}}/history", summary="One test's last results, with its state",
          tags=TAGS, scope="read", query=HistoryQuery, responses={200: flaky.TestHistory},
          description="`test_id`: the test's integer id, or its test case's code (TC-042) or id. Newest first, "
          "with run, branch, commit, status and duration; `health` is its state on the default branch.")
async def test_history(request: Request, project_id: FromPath[str], test_id: FromPath[str]) -> flaky.TestHistory:
    _, project = await visible_project(request, "read", project_id)
    q = read_query(request, HistoryQuery)
    return await services(request).db.read(
        flaky.history, project.id, test_id, q.limit, branch=q.branch, rules=services(request).config.flaky
    )


async def _quarantine(request: Request, project_id: FromPath[str], test_id: FromPath[str], on: bool) -> quarantine.TestInfo:
    _, project = await visible_project(request, "write", project_id)
    body = QuarantineIn()
    if on and (await request.body()).strip():
        body = await read_body(request, QuarantineIn)
    expires = parse_since(body.expires_at) if body.expires_at else None
    return await services(request).db.write(
        lambda conn: quarantine.set_quarantine(conn, project.id, test_id, on, body.reason, ticket=body.ticket,
                                               expires_at=expires, actor="api"))


@endpoint("PUT", f"{_P}/tests/{{test_id:str}}/quarantine", summary="Quarantine a test (the gate ignores it)",
          tags=TAGS, scope="write", body=QuarantineIn, responses={200: quarantine.TestInfo},
          description="The body is optional: {\"reason\", \"ticket\", \"expires_at\"} (expires_at: an ISO date or "
          "date-time; the quarantine is lifted then). Quarantining twice keeps the first time.")
async def quarantine_on(request: Request, project_id: FromPath[str], test_id: FromPath[str]) -> quarantine.TestInfo:
    return await _quarantine(request, project_id, test_id, True)


@endpoint("DELETE", f"{_P}/tests/{{test_id:str}}/quarantine", summary="Lift a test's quarantine", tags=TAGS,
          scope="write", responses={200: quarantine.TestInfo})
async def quarantine_off(request: Request, project_id: FromPath[str], test_id: FromPath[str]) -> quarantine.TestInfo:
    return await _quarantine(request, project_id, test_id, False)


@endpoint("GET", f"{_P}/grade", summary="The A-F grade of a branch, with its breakdown", tags=TAGS, scope="read",
          query=GradeQuery, responses={200: grade.Grade},
          description="score = 100 - min(50, 5 x failing%) - min(30, 3 x flaky%) - min(20, 4 x broken%); A >= 90, "
          "B >= 80, C >= 70, D >= 60, else F. Fewer than grade.min_runs runs: status not_enough_data.")
async def project_grade(request: Request, project_id: FromPath[str]) -> grade.Grade:
    _, project = await visible_project(request, "read", project_id)
    q = read_query(request, GradeQuery)
    cfg = services(request).config
    return await services(request).db.read(
        grade.compute, project.id, q.branch if q.branch is not None else project.default_branch,
        flaky_rules=cfg.flaky, grade_rules=cfg.grade,
    )


@endpoint("GET", f"{_P}/trends", summary="Daily aggregates of a branch over a date range", tags=TAGS, scope="read",
          query=TrendsQuery, responses={200: trends.TrendSeries},
          description="`from` and `to` are UTC dates (YYYY-MM-DD, inclusive; default: the last 30 days, at most "
          "366). Days without completed runs are left out. Kept apart from raw results: retention never erases them.")
async def project_trends(request: Request, project_id: FromPath[str]) -> trends.TrendSeries:
    _, project = await visible_project(request, "read", project_id)
    q = read_query(request, TrendsQuery)
    to_day = trends.parse_day(q.to_day, "to") if q.to_day else trends.day_of(now_ms())
    from_day = trends.parse_day(q.from_day, "from") if q.from_day else to_day - 29 * trends.DAY_MS
    branch = q.branch if q.branch is not None else project.default_branch
    return await services(request).db.read(trends.series, project.id, branch, from_day, to_day)


@endpoint("GET", f"{_P}/gate", summary="Quality gate: pass or fail for a run, with every reason", tags=TAGS,
          scope="read", query=GateQuery, responses={200: gate.GateResult},
          description="Judges `run_id` (id or short id), else the latest finished run of `branch` (default: the "
          "default branch). Rules from the query win over the project's settings.gate; defaults: no_new_failures "
          "and ignore_quarantined true, ignore_known_environment false. 200 for both verdicts: read `passed`; "
          "`set_aside` lists the failures not counted and why. The first verdict of a run is recorded (`recorded`); "
          "`changed_since_recorded` says when it would differ now. 409 while the run is unfinished.")
async def quality_gate(request: Request, project_id: FromPath[str]) -> gate.GateResult:
    _, project = await visible_project(request, "read", project_id)
    q = read_query(request, GateQuery)
    if q.run_id and q.branch is not None:
        raise ApiError(400, "give run_id or branch, not both")
    rules = gate.GateRules(q.min_grade, q.max_failures, q.no_new_failures, q.ignore_quarantined,
                           q.ignore_known_environment)
    svc = services(request)
    result = await svc.db.read(
        gate.evaluate_with_recorded, project.id, run_ref=q.run_id, branch=q.branch, rules=rules,
        flaky_rules=svc.config.flaky, grade_rules=svc.config.grade,
    )
    # What CI got is kept: the first verdict of a run is recorded, later ones are compared with
    # it. Only the first asks the writer: CI polls the gate with read keys.
    if result.recorded is not None:
        return result
    return await svc.db.write(gate.record_first, result)


@endpoint("GET", "/api/v1/runs/{run_id:str}/regressions", summary="A run's new failures against its baseline",
          tags=TAGS, scope="read", responses={200: regressions.RunRegressions},
          description="The baseline is the latest completed run on the project's default branch created before this "
          "run. A new failure: a test that passed in the baseline and fails in this run.")
async def run_regressions(request: Request, run_id: FromPath[str]) -> regressions.RunRegressions:
    _, run = await visible_run(request, "read", run_id)
    try:
        return await services(request).db.read(
            regressions.of_run, run.project_id, run.id, services(request).config.flaky
        )
    except NotFound:
        raise ApiError(404, "Run not found") from None


HANDLERS = [
    flaky_tests, list_tests, test_history, quarantine_on, quarantine_off, project_grade, project_trends, quality_gate,
    run_regressions,
]
