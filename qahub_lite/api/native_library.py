"""Native API (QA Hub): projects, suites and test cases."""

from __future__ import annotations

import msgspec
from litestar import Request, Response
from litestar.params import FromPath

from ..core import key_checks, library, projects
from ..core.gate import settings_rules
from ..core.attachments import remove_unreferenced
from .auth import authenticate, check_project
from .context import services
from .errors import ApiError
from .native_schema import (
    Deleted, PageQuery, ProjectIn, ProjectPatch, SuiteIn, SuitePatch, TestCaseIn, TestCasePatch, TestCaseQuery,
)
from .routing import endpoint, read_body, read_query

TAGS = ["QA Hub: library"]


def _changes(patch) -> dict:
    return {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}


async def visible_project(request: Request, scope: str, project_id: str):
    """The caller and a project of its tenant (by id or slug) that its key may see; 404 otherwise."""
    principal = await authenticate(request, scope)
    project = await services(request).db.read(projects.get_project, principal.tenant_id, project_id)
    check_project(principal, project.id)
    return principal, project


# --- projects -------------------------------------------------------------------------


@endpoint("POST", "/api/v1/projects", summary="Create a project", tags=TAGS, scope="write", body=ProjectIn,
          responses={201: projects.Project})
async def create_project(request: Request) -> Response:
    principal = await authenticate(request, "write")
    if principal.project_id is not None:
        raise ApiError(403, "A key limited to one project cannot create projects")
    data = await read_body(request, ProjectIn)
    if data.settings:
        settings_rules(data.settings)  # settings.gate holds quality-gate rules: 400 when they are wrong
    project = await services(request).db.write(
        lambda conn: projects.create_project(
            conn, principal.tenant_id, name=data.name, slug=data.slug, description=data.description, repo=data.repo,
            default_branch=data.default_branch, ci_config=data.ci_config, settings=data.settings,
        )
    )
    return Response(project, status_code=201)


@endpoint("GET", "/api/v1/projects", summary="List projects", tags=TAGS, scope="read", query=PageQuery,
          responses={200: projects.ProjectPage})
async def list_projects(request: Request) -> projects.ProjectPage:
    principal = await authenticate(request, "read")
    q = read_query(request, PageQuery)
    return await services(request).db.read(
        projects.list_projects, principal.tenant_id, limit=q.limit, cursor=q.cursor, only=principal.project_id
    )


@endpoint("GET", "/api/v1/projects/{project_id:str}", summary="Get a project (by id or slug)", tags=TAGS,
          scope="read", responses={200: projects.Project})
async def get_project(request: Request, project_id: FromPath[str]) -> projects.Project:
    _, project = await visible_project(request, "read", project_id)
    return project


@endpoint("PATCH", "/api/v1/projects/{project_id:str}", summary="Update a project (ci_config, settings, ...)",
          tags=TAGS, scope="write", body=ProjectPatch, responses={200: projects.Project})
async def update_project(request: Request, project_id: FromPath[str]) -> projects.Project:
    principal, project = await visible_project(request, "write", project_id)
    changes = _changes(await read_body(request, ProjectPatch))
    if changes.get("settings"):
        settings_rules(changes["settings"])  # settings.gate holds quality-gate rules: 400 when they are wrong
    return await services(request).db.write(projects.update_project, principal.tenant_id, project.id, changes)


@endpoint("DELETE", "/api/v1/projects/{project_id:str}", summary="Delete a project and all its data", tags=TAGS,
          scope="admin", responses={200: Deleted})
async def delete_project(request: Request, project_id: FromPath[str]) -> Deleted:
    principal, project = await visible_project(request, "admin", project_id)
    svc = services(request)
    hashes = await svc.db.write(projects.delete_project, principal.tenant_id, project.id)
    key_checks.keys_changed()  # keys limited to the project went with it; now committed
    if hashes:
        await svc.db.write(remove_unreferenced, svc.config.attachments_dir, hashes)
    return Deleted(project.id)


# --- suites ---------------------------------------------------------------------------


@endpoint("POST", "/api/v1/projects/{project_id:str}/suites", summary="Create a suite", tags=TAGS, scope="write",
          body=SuiteIn, responses={201: library.Suite})
async def create_suite(request: Request, project_id: FromPath[str]) -> Response:
    principal, project = await visible_project(request, "write", project_id)
    data = await read_body(request, SuiteIn)
    suite = await services(request).db.write(
        lambda conn: library.create_suite(
            conn, principal.tenant_id, project.id, name=data.name, description=data.description,
            parent_id=data.parent_id,
        )
    )
    return Response(suite, status_code=201)


@endpoint("GET", "/api/v1/projects/{project_id:str}/suites", summary="List a project's suites", tags=TAGS,
          scope="read", query=PageQuery, responses={200: library.SuitePage})
async def list_suites(request: Request, project_id: FromPath[str]) -> library.SuitePage:
    _, project = await visible_project(request, "read", project_id)
    q = read_query(request, PageQuery)
    return await services(request).db.read(library.list_suites, project.id, limit=q.limit, cursor=q.cursor)


async def _visible_suite(request: Request, scope: str, suite_id: FromPath[str]):
    principal = await authenticate(request, scope)
    suite = await services(request).db.read(library.get_suite, principal.tenant_id, suite_id)
    check_project(principal, suite.project_id)
    return principal, suite


@endpoint("GET", "/api/v1/suites/{suite_id:str}", summary="Get a suite", tags=TAGS, scope="read",
          responses={200: library.Suite})
async def get_suite(request: Request, suite_id: FromPath[str]) -> library.Suite:
    return (await _visible_suite(request, "read", suite_id))[1]


@endpoint("PATCH", "/api/v1/suites/{suite_id:str}", summary="Update a suite", tags=TAGS, scope="write",
          body=SuitePatch, responses={200: library.Suite})
async def update_suite(request: Request, suite_id: FromPath[str]) -> library.Suite:
    principal, suite = await _visible_suite(request, "write", suite_id)
    changes = _changes(await read_body(request, SuitePatch))
    return await services(request).db.write(library.update_suite, principal.tenant_id, suite.id, changes)


@endpoint("DELETE", "/api/v1/suites/{suite_id:str}", summary="Delete a suite (its test cases stay, unfiled)",
          tags=TAGS, scope="write", responses={200: Deleted})
async def delete_suite(request: Request, suite_id: FromPath[str]) -> Deleted:
    principal, suite = await _visible_suite(request, "write", suite_id)
    await services(request).db.write(library.delete_suite, principal.tenant_id, suite.id)
    return Deleted(suite.id)


# --- test cases -----------------------------------------------------------------------


@endpoint("POST", "/api/v1/projects/{project_id:str}/test-cases", summary="Create a test case (code auto-numbered "
          "when not given)", tags=TAGS, scope="write", body=TestCaseIn, responses={201: library.TestCase})
async def create_test_case(request: Request, project_id: FromPath[str]) -> Response:
    principal, project = await visible_project(request, "write", project_id)
    data = await read_body(request, TestCaseIn)
    case = await services(request).db.write(
        lambda conn: library.create_test_case(
            conn, principal.tenant_id, project.id, title=data.title, code=data.code, suite_id=data.suite_id,
            description=data.description, automation=data.automation,
        )
    )
    return Response(case, status_code=201)


@endpoint("GET", "/api/v1/projects/{project_id:str}/test-cases", summary="List a project's test cases", tags=TAGS,
          scope="read", query=TestCaseQuery, responses={200: library.TestCasePage})
async def list_test_cases(request: Request, project_id: FromPath[str]) -> library.TestCasePage:
    _, project = await visible_project(request, "read", project_id)
    q = read_query(request, TestCaseQuery)
    return await services(request).db.read(
        library.list_test_cases, project.id, suite_id=q.suite_id, limit=q.limit, cursor=q.cursor
    )


async def _visible_case(request: Request, scope: str, case_id: FromPath[str]):
    principal = await authenticate(request, scope)
    case = await services(request).db.read(library.get_test_case, principal.tenant_id, case_id)
    check_project(principal, case.project_id)
    return principal, case


@endpoint("GET", "/api/v1/test-cases/{case_id:str}", summary="Get a test case", tags=TAGS, scope="read",
          responses={200: library.TestCase})
async def get_test_case(request: Request, case_id: FromPath[str]) -> library.TestCase:
    return (await _visible_case(request, "read", case_id))[1]


@endpoint("PATCH", "/api/v1/test-cases/{case_id:str}", summary="Update a test case", tags=TAGS, scope="write",
          body=TestCasePatch, responses={200: library.TestCase})
async def update_test_case(request: Request, case_id: FromPath[str]) -> library.TestCase:
    principal, case = await _visible_case(request, "write", case_id)
    changes = _changes(await read_body(request, TestCasePatch))
    return await services(request).db.write(library.update_test_case, principal.tenant_id, case.id, changes)


@endpoint("DELETE", "/api/v1/test-cases/{case_id:str}", summary="Delete a test case and its results", tags=TAGS,
          scope="write", responses={200: Deleted})
async def delete_test_case(request: Request, case_id: FromPath[str]) -> Deleted:
    principal, case = await _visible_case(request, "write", case_id)
    svc = services(request)
    hashes = await svc.db.write(library.delete_test_case, principal.tenant_id, case.id)
    if hashes:
        await svc.db.write(remove_unreferenced, svc.config.attachments_dir, hashes)
    return Deleted(case.id)


HANDLERS = [
    create_project, list_projects, get_project, update_project, delete_project, create_suite, list_suites, get_suite,
    update_suite, delete_suite, create_test_case, list_test_cases, get_test_case, update_test_case, delete_test_case,
]
