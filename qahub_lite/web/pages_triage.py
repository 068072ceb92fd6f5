"""Dashboard pages of triage (docs/triage.md): a project's failure signatures with their triage
form, a run compared with a base run, and the searchable tests page.

The figures are core's (triage.py, compare.py, flaky.py); the API answers the same. Members
and admins may triage; viewers only look.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath

from ..http.services import services
from ..core import compare, flaky, projects, runs, triage
from .auth import web_session
from .forms import read_form, read_query
from .render import page, redirect

Short = Annotated[str, msgspec.Meta(max_length=200)]


class FailuresQuery(msgspec.Struct, forbid_unknown_fields=True):
    branch: Short | None = None
    status: Literal["untriaged", "triaged", "known", ""] | None = None


class TriageForm(msgspec.Struct, forbid_unknown_fields=True):
    category: Literal["product_bug", "automation_bug", "environment", "to_investigate", ""] = ""
    bug_ticket_key: Short = ""
    bug_ticket_url: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    note: Annotated[str, msgspec.Meta(max_length=5000)] = ""


class CompareQuery(msgspec.Struct, forbid_unknown_fields=True):
    base: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class TestsQuery(msgspec.Struct, forbid_unknown_fields=True):
    q: Short | None = None
    tag: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    state: Literal["flaky", "broken", "healthy", ""] | None = None
    branch: Short | None = None


@get("/projects/{project_id:str}/failures", include_in_schema=False)
async def failures_page(request: Request, project_id: FromPath[str]) -> Response:
    session = await web_session(request)
    q = read_query(request, FailuresQuery)
    project = await services(request).db.read(projects.get_project, session.tenant_id, project_id)
    found = await services(request).db.read(triage.project_failures, project.id, branch=q.branch or None,
                                            status=q.status or None, limit=200)
    return page(request, "failures.html", project=project, failures=found, branch=q.branch or "",
                status_filter=q.status or "", categories=triage.CATEGORIES)


@post("/projects/{project_id:str}/failures/{signature:str}", include_in_schema=False, status_code=303)
async def triage_form(request: Request, project_id: FromPath[str], signature: FromPath[str]) -> Response:
    """Save a signature's triage from the failures page; members and admins."""
    session = await web_session(request, "member")
    form = await read_form(request, TriageForm, csrf=session.csrf_token)
    svc = services(request)
    project = await services(request).db.read(projects.get_project, session.tenant_id, project_id)
    data = triage.TriageIn(form.bug_ticket_key or None, form.bug_ticket_url or None, form.category or None,
                           form.note or None)
    await svc.db.write(triage.set_triage, project.id, signature, data)
    return redirect(f"/projects/{project.id}/failures#sig-{signature}")


@get("/runs/{run_ref:str}/compare", include_in_schema=False)
async def compare_page(request: Request, run_ref: FromPath[str]) -> Response:
    session = await web_session(request)
    q = read_query(request, CompareQuery)
    run = await services(request).db.read(runs.get_run, session.tenant_id, run_ref)
    project = await services(request).db.read(projects.get_project, session.tenant_id, run.project_id)
    result = await services(request).db.read(compare.compare, project.id, run.id, q.base or None)
    return page(request, "compare.html", project=project, run=run, cmp=result)


@get("/projects/{project_id:str}/tests", include_in_schema=False)
async def tests_page(request: Request, project_id: FromPath[str]) -> Response:
    session = await web_session(request)
    q = read_query(request, TestsQuery)
    svc = services(request)
    project = await svc.db.read(projects.get_project, session.tenant_id, project_id)
    found = await svc.db.read(
        flaky.list_tests, project.id, branch=q.branch or project.default_branch, rules=svc.config.flaky,
        state=q.state or None, limit=200, tag=q.tag or None, q=q.q or None,
    )
    query = request.url.query
    return page(request, "tests.html", project=project, tests=found, q=q.q or "", tag=q.tag or "",
                state=q.state or "", branch=q.branch or "",
                back_url=request.url.path + (f"?{query}" if query else ""))  # the quarantine form comes back here


HANDLERS = [failures_page, triage_form, compare_page, tests_page]
