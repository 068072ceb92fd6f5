"""A project's trends (`/projects/{id}/trends`): pass rate, duration and grade per day, and the
quality gate's verdicts on the latest runs, as SVG charts drawn on the server.

The days come from core/trends.py's daily aggregates (what `GET /api/v1/projects/{id}/trends`
answers), which survive the retention of raw results; the verdicts from core/gate.py. Days
without runs are gaps on the axis, not zeros: nothing ran, so nothing passed or failed.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from litestar import Request, Response, get
from litestar.params import FromPath

from ..http.services import services
from ..http.errors import ApiError
from ..core import projects, runs, trends
from ..core.status import RUN_FINISHED
from . import health_view
from .auth import web_session
from .charts import Series, StripItem, line_chart, result_strip
from .forms import read_query
from .render import duration, page

DEFAULT_DAYS = 30
# The gate is judged anew for each run shown (about 0.15 s each on a history of a million
# results: it reads the flakiness window), so the trends page shows the latest few and the
# gate page, opened on purpose, up to MAX_GATE_RUNS.
TREND_GATE_RUNS = 5
MAX_GATE_RUNS = 30


class TrendsQuery(msgspec.Struct, forbid_unknown_fields=True, rename={"from_day": "from", "to_day": "to"}):
    branch: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    from_day: dt.date | None = None
    to_day: dt.date | None = None


def _ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp() * 1000)


def _charts(points: list[trends.DayPoint], first: dt.date, last: dt.date) -> dict[str, str]:
    """Every day of the range on the x axis; a day without runs has no point."""
    by_day = {p.day: p for p in points}
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    labels = [d.isoformat()[5:] for d in days]
    got = [by_day.get(d.isoformat()) for d in days]

    def values(pick) -> list[float | None]:
        return [pick(p) if p is not None else None for p in got]

    def secs(ms: int | None) -> float | None:
        return ms / 1000 if ms is not None else None

    return {
        "pass_rate": str(line_chart(
            [Series("pass rate", values(lambda p: p.pass_rate * 100 if p.pass_rate is not None else None), "series-3")],
            labels, title="pass rate per day, in percent", y_max=100, y_format=lambda v: f"{v:.0f} %", connect=True,
        )),
        "duration": str(line_chart(
            [Series("95th percentile", values(lambda p: secs(p.duration_p95_ms)), "series-1"),
             Series("median run", values(lambda p: secs(p.duration_p50_ms)), "series-0")],
            labels, title="run duration per day", y_format=lambda v: duration(v * 1000), connect=True,
        )),
        "grade": str(line_chart(
            [Series("grade score", values(lambda p: p.score), "series-0")],
            labels, title="grade score per day (A from 90, B from 80, C from 70, D from 60)", y_max=100,
            y_format=lambda v: f"{v:.0f}", connect=True,
        )),
        "tests": str(line_chart(
            [Series("flaky tests", values(lambda p: p.flaky_tests), "series-2"),
             Series("broken tests", values(lambda p: p.broken_tests), "series-1")],
            labels, title="flaky and broken tests per day", y_format=lambda v: f"{v:.0f}", connect=True, integer=True,
        )),
    }


def _verdict_strip(verdicts: list[health_view.GateVerdict]) -> str:
    items = []
    for v in verdicts:
        if v.result is None:
            tip = f"{v.run.name}: no verdict ({v.error or 'not judged'})"
            items.append(StripItem("none", tip, f"/runs/{v.run.short_id}"))
            continue
        why = "; ".join(v.result.reasons) if v.result.reasons else "every rule passed"
        items.append(StripItem("pass" if v.result.passed else "fail", f"{v.run.name}: {v.result.verdict} · {why}",
                               f"/runs/{v.run.short_id}"))
    return str(result_strip(items, title="quality gate verdicts of the latest runs, oldest first", cell=18))


@get("/projects/{project_id:str}/trends", include_in_schema=False)
async def trends_page(request: Request, project_id: FromPath[str]) -> Response:
    session = await web_session(request)
    q = read_query(request, TrendsQuery)
    today = dt.datetime.now(dt.timezone.utc).date()
    last = q.to_day or today
    # Never before the calendar's first day: `to=0001-01-05` was an OverflowError (a 500).
    first = q.from_day or (last - dt.timedelta(days=min(DEFAULT_DAYS - 1, (last - dt.date.min).days)))
    if first > last:
        raise ApiError(400, "the first day comes after the last day")
    if (last - first).days + 1 > trends.MAX_DAYS:
        raise ApiError(400, f"a trend spans at most {trends.MAX_DAYS} days")
    svc = services(request)
    project = await services(request).db.read(projects.get_project, session.tenant_id, project_id)
    branch = q.branch if q.branch is not None else project.default_branch
    finished = await svc.db.read(_finished_runs, session.tenant_id, project.id, branch, TREND_GATE_RUNS)
    view = await svc.db.read(health_view.trends_view, svc.config, project, branch, _ms(first), _ms(last), finished)
    points = view.series.data
    return page(
        request, "trends.html", project=project, branch=branch, first=first, last=last, points=points,
        charts=_charts(points, first, last), verdicts=view.verdicts, gate_strip=_verdict_strip(view.verdicts),
        grade=view.grade,
    )


class GateQuery(msgspec.Struct, forbid_unknown_fields=True):
    branch: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    runs: Annotated[int, msgspec.Meta(ge=1, le=MAX_GATE_RUNS)] = 20


def _finished_runs(conn, tenant_id: str, project_id: FromPath[str], branch: str | None, count: int) -> list[runs.Run]:
    """The latest `count` finished runs of a branch, newest first (running ones have no verdict)."""
    found: list[runs.Run] = []
    cursor = None
    while len(found) < count:
        batch = runs.list_runs(conn, tenant_id, runs.RunFilter(project_id=project_id, branch=branch),
                               limit=count * 2, cursor=cursor)
        found += [r for r in batch.data if r.status in RUN_FINISHED]
        cursor = batch.next_cursor
        if cursor is None:
            break
    return found[:count]


@get("/projects/{project_id:str}/gate", include_in_schema=False)
async def gate_page(request: Request, project_id: FromPath[str]) -> Response:
    """The gate's verdict on each of the latest finished runs of a branch, with every check."""
    session = await web_session(request)
    q = read_query(request, GateQuery)
    svc = services(request)
    project = await services(request).db.read(projects.get_project, session.tenant_id, project_id)
    branch = q.branch if q.branch is not None else project.default_branch
    finished = await svc.db.read(_finished_runs, session.tenant_id, project.id, branch, q.runs)
    verdicts = await svc.db.read(health_view.gate_verdicts, svc.config, project, finished)
    return page(request, "gate.html", project=project, branch=branch, verdicts=list(reversed(verdicts)),
                strip=_verdict_strip(verdicts), count=q.runs)


HANDLERS = [trends_page, gate_page]
