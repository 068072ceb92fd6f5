"""A test's page (its history, flakiness figures, duration trend and quarantine), the project's
flaky tests ranked, and the quarantine switch both pages post to.

The figures are core/flaky.py's (the API's `/flaky` and `/history` routes answer the same),
the switch is core/quarantine.py's writer operation; a member may quarantine, a viewer only
looks.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath

from ..http.services import services
from ..core import flaky, projects, quarantine, test_daily, trends
from ..core.clock import now_ms
from ..core.retention_policy import describe as retention_note
from ..core.triage import parse_moment
from . import health_view
from .auth import safe_next, web_session
from .charts import Series, StripItem, line_chart, result_strip
from .forms import read_form, read_query
from .render import duration, page, redirect

HISTORY_LENGTH = 50
DAILY_DAYS = 90


class TestQuery(msgspec.Struct, forbid_unknown_fields=True):
    branch: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class QuarantineForm(msgspec.Struct, forbid_unknown_fields=True):
    action: Literal["on", "off"]
    reason: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    ticket: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    expires: Annotated[str, msgspec.Meta(max_length=10)] | None = None  # YYYY-MM-DD: lifted at that UTC midnight
    next: Annotated[str, msgspec.Meta(max_length=2000)] = "/"


def history_strip(project_id: FromPath[str], entries: list[flaky.HistoryEntry]) -> str:
    """The last results as squares, oldest left, each a link to its run."""
    items = []
    for e in reversed(entries):
        status = "FLAKY" if e.flaky else e.status
        tip = f"{e.status}{' (flaky)' if e.flaky else ''} · {e.run_name} · {e.branch or 'no branch'}"
        if e.duration_ms is not None:
            tip += f" · {duration(e.duration_ms)}"
        items.append(StripItem(status, tip, f"/runs/{e.short_id}"))
    return str(result_strip(items, title=f"last {len(items)} results, oldest first"))


def duration_chart(entries: list[flaky.HistoryEntry]) -> str:
    timed = list(reversed(entries))
    values = [e.duration_ms / 1000 if e.duration_ms is not None else None for e in timed]
    labels = [(e.at or "")[5:10] for e in timed]
    return str(line_chart(
        [Series("duration (s)", values, "series-0")], labels, title="duration of the last results, in seconds",
        y_format=lambda v: f"{v:.1f} s", height=200,
    ))


@get("/projects/{project_id:str}/tests/{test_ref:str}", include_in_schema=False)
async def test_page(request: Request, project_id: FromPath[str], test_ref: FromPath[str]) -> Response:
    session = await web_session(request)
    q = read_query(request, TestQuery)
    svc = services(request)
    project = await svc.db.read(projects.get_project, session.tenant_id, project_id)
    found, days = await svc.db.read(_test_view, project.id, test_ref, q.branch, svc.config.flaky)
    return page(
        request, "test.html", project=project, test=found.test, health=found.health, entries=found.data,
        branch=q.branch, strip=history_strip(project.id, found.data), chart=duration_chart(found.data),
        rules=svc.config.flaky, days=days, daily_days=DAILY_DAYS, retention_note=retention_note(svc.config.retention),
    )


def _test_view(conn, project_id: str, test_ref: str, branch: str | None, rules) -> tuple:
    """(flaky.TestHistory, test_daily.TestDays) of a test's page, in one reader hop."""
    found = flaky.history(conn, project_id, test_ref, HISTORY_LENGTH, branch=branch, rules=rules)
    today = trends.day_of(now_ms())
    days = test_daily.test_days(conn, project_id, found.test.id, today - (DAILY_DAYS - 1) * trends.DAY_MS, today)
    return found, days


@get("/projects/{project_id:str}/flaky", include_in_schema=False)
async def flaky_page(request: Request, project_id: FromPath[str]) -> Response:
    session = await web_session(request)
    svc = services(request)
    project = await svc.db.read(projects.get_project, session.tenant_id, project_id)
    ranking = await svc.db.read(health_view.flaky_ranking, svc.config, project, limit=100)
    return page(request, "flaky.html", project=project, ranking=ranking, rules=svc.config.flaky)


@post("/projects/{project_id:str}/tests/{test_ref:str}/quarantine", include_in_schema=False, status_code=303)
async def set_quarantine(request: Request, project_id: FromPath[str], test_ref: FromPath[str]) -> Response:
    """Quarantine a test (the gate ignores its failures) or lift it; members and admins."""
    session = await web_session(request, "member")
    form = await read_form(request, QuarantineForm, csrf=session.csrf_token)
    svc = services(request)
    project = await services(request).db.read(projects.get_project, session.tenant_id, project_id)
    reason = form.reason or f"set in the dashboard by {session.username}"
    expires = parse_moment(form.expires) if form.expires else None
    await svc.db.write(lambda conn: quarantine.set_quarantine(
        conn, project.id, test_ref, form.action == "on", reason, ticket=form.ticket or None, expires_at=expires,
        actor=f"dashboard:{session.username}"))
    return redirect(safe_next(form.next))


HANDLERS = [test_page, flaky_page, set_quarantine]
