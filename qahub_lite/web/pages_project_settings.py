"""Settings of projects, for tenant admins: create a project, edit its details and its CI
configuration (what Qualigate's `GET /api/v1/ci-config` answers), and manage its webhooks
with their deliveries.

The writes are the same core operations the native API runs (projects.create_project,
projects.update_project, core/webhooks.py), so both edges keep the same rules.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath

from ..http.services import services
from ..core.retention_policy import describe as describe_retention
from ..core import projects, webhooks
from ..core.projects import CiConfig
from .auth import web_session
from .forms import read_form
from .render import page, redirect

Short = Annotated[str, msgspec.Meta(max_length=200)]


class ProjectForm(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    repo: Short | None = None
    default_branch: Short = "main"
    description: Annotated[str, msgspec.Meta(max_length=1000)] | None = None


class CiForm(msgspec.Struct, forbid_unknown_fields=True):
    provider: Short | None = None
    trigger_on: Annotated[str, msgspec.Meta(max_length=500)] | None = None  # comma-separated
    branches: Annotated[str, msgspec.Meta(max_length=2000)] | None = None  # comma-separated
    test_suite_id: Short | None = None


def _list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


@get("/settings/projects", include_in_schema=False)
async def projects_page(request: Request) -> Response:
    session = await web_session(request, "admin")
    found = (await services(request).db.read(projects.list_projects, session.tenant_id, limit=1000)).data
    return page(request, "settings/projects.html", projects=found)


@post("/settings/projects", include_in_schema=False, status_code=303)
async def create_project(request: Request) -> Response:
    session = await web_session(request, "admin")
    form = await read_form(request, ProjectForm, csrf=session.csrf_token)
    project = await services(request).db.write(
        lambda conn: projects.create_project(
            conn, session.tenant_id, name=form.name, repo=form.repo, default_branch=form.default_branch,
            description=form.description,
        )
    )
    return redirect(f"/settings/projects/{project.id}")


async def render_project(
    request: Request, session, project_id: FromPath[str], *, new_secret: str | None = None, status: int = 200
) -> Response:
    """The project's settings page; `new_secret` is a webhook's signing secret, shown once."""
    project = await services(request).db.read(projects.get_project, session.tenant_id, project_id)
    hooks = (await services(request).db.read(webhooks.list_webhooks, project.id)).data
    return page(request, "settings/project.html", project=project, hooks=hooks, new_secret=new_secret,
                events=webhooks.EVENTS, formats=webhooks.FORMATS, status=status,
                retention_note=describe_retention(services(request).config.retention))


@get("/settings/projects/{project_id:str}", include_in_schema=False)
async def project_page(request: Request, project_id: FromPath[str]) -> Response:
    session = await web_session(request, "admin")
    return await render_project(request, session, project_id)


@post("/settings/projects/{project_id:str}", include_in_schema=False, status_code=303)
async def update_project(request: Request, project_id: FromPath[str]) -> Response:
    session = await web_session(request, "admin")
    form = await read_form(request, ProjectForm, csrf=session.csrf_token)
    project = await services(request).db.read(projects.get_project, session.tenant_id, project_id)
    changes = {"name": form.name, "repo": form.repo, "default_branch": form.default_branch,
               "description": form.description}
    await services(request).db.write(projects.update_project, session.tenant_id, project.id, changes)
    return redirect(f"/settings/projects/{project.id}")


@post("/settings/projects/{project_id:str}/ci", include_in_schema=False, status_code=303)
async def update_ci(request: Request, project_id: FromPath[str]) -> Response:
    session = await web_session(request, "admin")
    form = await read_form(request, CiForm, csrf=session.csrf_token)
    project = await services(request).db.read(projects.get_project, session.tenant_id, project_id)
    ci = CiConfig(provider=form.provider, trigger_on=_list(form.trigger_on), branches=_list(form.branches),
                  test_suite_id=form.test_suite_id)
    await services(request).db.write(projects.update_project, session.tenant_id, project.id, {"ci_config": ci})
    return redirect(f"/settings/projects/{project.id}#ci")


HANDLERS = [projects_page, create_project, project_page, update_project, update_ci]
