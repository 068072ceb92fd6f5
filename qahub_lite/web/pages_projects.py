"""The projects overview (`/`) and a project's page (`/projects/{id}`).

Everything comes from the core queries the API answers with (projects.list_projects,
runs.list_runs, and the health modules through web/health_view.py); this module only
arranges it for people.
"""

from __future__ import annotations

import msgspec
from litestar import Request, Response, get
from litestar.params import FromPath

from ..http.services import services
from ..core.retention_policy import describe as describe_retention
from ..core import projects, runs
from ..core.projects import Project
from . import health_view
from .auth import web_session
from .charts import pass_rate, sparkline
from .forms import read_query
from .render import page

# Runs drawn in a project's pass-rate sparkline, newest last.
SPARK_RUNS = 20


class ProjectCard(msgspec.Struct):
    project: Project
    last_run: runs.Run | None
    spark: str
    latest_rate: float | None
    health: health_view.CardHealth


class OverviewQuery(msgspec.Struct, forbid_unknown_fields=True):
    cursor: str | None = None


def _card_runs(conn, tenant_id: str, project: Project) -> tuple[runs.RunPage, list[runs.Run]]:
    """The latest run of a project, and the finished runs its sparkline shows, oldest first."""
    latest = runs.list_runs(conn, tenant_id, runs.RunFilter(project_id=project.id), limit=1)
    recent = runs.list_runs(
        conn, tenant_id, runs.RunFilter(project_id=project.id, branch=project.default_branch), limit=SPARK_RUNS
    )
    history = [r for r in reversed(recent.data) if r.verdict is not None]
    if not history:  # nothing on the default branch yet: show what there is
        history = [r for r in reversed(runs.list_runs(
            conn, tenant_id, runs.RunFilter(project_id=project.id), limit=SPARK_RUNS).data) if r.verdict is not None]
    return latest, history


async def _card(db, tenant_id: str, project: Project) -> ProjectCard:
    latest, history = await db.read(_card_runs, tenant_id, project)
    rates = [pass_rate(r.counts.passed, r.counts.failed, r.counts.broken) for r in history]
    spark = sparkline(rates, label=f"pass rate of the last {len(rates)} runs of {project.name}")
    return ProjectCard(
        project=project, last_run=latest.data[0] if latest.data else None, spark=str(spark),
        latest_rate=next((r for r in reversed(rates) if r is not None), None),
        health=await db.read(health_view.card_health, project),
    )


@get("/", include_in_schema=False)
async def overview(request: Request) -> Response:
    session = await web_session(request)
    q = read_query(request, OverviewQuery)
    svc = services(request)
    found = await svc.db.read(projects.list_projects, session.tenant_id, limit=50, cursor=q.cursor)
    cards = [await _card(svc.db, session.tenant_id, p) for p in found.data]
    return page(request, "overview.html", cards=cards, next_cursor=found.next_cursor, first_page=q.cursor is None)


@get("/projects/{project_id:str}", include_in_schema=False)
async def project_page(request: Request, project_id: FromPath[str]) -> Response:
    session = await web_session(request)
    svc = services(request)
    project = await svc.db.read(projects.get_project, session.tenant_id, project_id)
    card = await _card(svc.db, session.tenant_id, project)
    recent = await svc.db.read(runs.list_runs, session.tenant_id, runs.RunFilter(project_id=project.id), limit=15)
    health = await svc.db.read(health_view.project_health, svc.config, project, 5)
    return page(request, "project.html", project=project, card=card, recent=recent.data, ranking=health.ranking,
                retention_note=describe_retention(svc.config.retention),
                grade=health.grade)


HANDLERS = [overview, project_page]
