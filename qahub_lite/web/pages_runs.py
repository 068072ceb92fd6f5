"""Runs: the filtered list (`/runs`), a run's page (`/runs/{id}`, where the API's `url` and
`dashboard_url` fields lead), one result's page, and attachment files for the pages.

The run page puts failures first, each with its error, a folded stack and its attachments
shown inline; new failures against the baseline and flaky or quarantined tests are marked.
A run that is still going reloads itself (a <meta> refresh without JavaScript; with it,
dashboard.js waits while the reader has something unfolded).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote, urlencode

import msgspec
from litestar import Request, Response, get
from litestar.params import FromPath
from litestar.response import File

from ..api.context import services
from ..api.errors import ApiError
from ..core import attachments as files
from ..core import projects, runs, triage
from ..core.status import ALL, FAILING, RUN_STATUSES, UNFINISHED
from . import health_view
from .auth import web_session
from .charts import stacked_bar
from .forms import read_query
from .render import page

FAILURE_STATUSES = sorted(FAILING)
FAILURES_PER_PAGE = 50
# Text attachments up to this size are shown in the page; larger ones are a download.
INLINE_TEXT_BYTES = 64 * 1024
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
VIDEO_TYPES = {"video/mp4", "video/webm"}
TEXT_TYPES = {"text/plain", "application/json"}
Text = Annotated[str, msgspec.Meta(max_length=200)]
Cursor = Annotated[str, msgspec.Meta(max_length=200)]


class RunsQuery(msgspec.Struct, forbid_unknown_fields=True):
    project: Text | None = None
    branch: Text | None = None
    environment: Text | None = None
    status: Literal[RUN_STATUSES] | None = None  # type: ignore[valid-type]
    source: Text | None = None
    since: dt.date | None = None  # first day shown (UTC)
    until: dt.date | None = None  # last day shown (UTC), inclusive
    cursor: Cursor | None = None


class RunQuery(msgspec.Struct, forbid_unknown_fields=True):
    status: Literal[ALL] | None = None  # type: ignore[valid-type]  # filter of the "all results" table
    tag: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None  # and by tag (docs/identity.md)
    cursor: Cursor | None = None
    failures: Cursor | None = None  # cursor of the failures list


def _day_ms(day: dt.date, *, end: bool = False) -> int:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    if end:
        start += dt.timedelta(days=1)
    return int(start.timestamp() * 1000)


def _query_string(q: RunsQuery, **changes) -> str:
    values = {**msgspec.structs.asdict(q), **changes}
    return urlencode({k: str(v) for k, v in values.items() if v not in (None, "")})


@get("/runs", include_in_schema=False)
async def runs_list(request: Request) -> Response:
    session = await web_session(request)
    q = read_query(request, RunsQuery)
    if q.since and q.until and q.since > q.until:
        raise ApiError(400, "the first day comes after the last day")
    svc = services(request)
    async with svc.db.read() as conn:
        all_projects = (await projects.list_projects(conn, session.tenant_id, limit=1000)).data
        project = await projects.get_project(conn, session.tenant_id, q.project) if q.project else None
        f = runs.RunFilter(
            project_id=project.id if project else None, branch=q.branch, environment=q.environment, status=q.status,
            source=q.source, since=_day_ms(q.since) if q.since else None,
            until=_day_ms(q.until, end=True) if q.until else None,
        )
        found = await runs.list_runs(conn, session.tenant_id, f, limit=svc.config.dashboard.page_size, cursor=q.cursor)
    names = {p.id: p.name for p in all_projects}
    return page(
        request, "runs.html", q=q, runs=found.data, names=names, projects=all_projects, statuses=RUN_STATUSES,
        next_url=f"/runs?{_query_string(q, cursor=found.next_cursor)}" if found.next_cursor else None,
        first_url=f"/runs?{_query_string(q, cursor=None)}" if q.cursor else None,
    )


class CiLinks(msgspec.Struct):
    commit: str | None
    pr: str | None
    build: str | None


def _forge_url(repository: str | None, provider: str | None) -> str | None:
    """The web address of a repository, when the CI context says where it lives: a full URL
    as given, or `owner/name` on GitHub when the provider is GitHub's. Otherwise None: a
    guessed host would be a wrong link."""
    if not repository:
        return None
    if repository.startswith(("https://", "http://")):
        return repository.rstrip("/").removesuffix(".git")
    if provider and "github" in provider.lower() and repository.count("/") == 1:
        return f"https://github.com/{repository}"
    return None


def ci_links(run: runs.Run) -> CiLinks:
    ci = run.ci
    forge = _forge_url(ci.repository, ci.ci_provider)
    commit = None
    if forge and ci.commit:
        gitlab = "gitlab" in (ci.ci_provider or "").lower()
        commit = f"{forge}/-/commit/{ci.commit}" if gitlab else f"{forge}/commit/{ci.commit}"
    pr = ci.pr_url
    if pr is None and forge and ci.pr_number and "github" in forge:
        pr = f"{forge}/pull/{ci.pr_number}"
    safe = [u if u and u.startswith(("https://", "http://")) else None for u in (commit, pr, ci.build_url)]
    return CiLinks(*safe)


class ShownAttachment(msgspec.Struct):
    meta: files.Attachment
    kind: Literal["image", "video", "text", "file"]
    text: str | None = None
    truncated: bool = False


def _read_text(path: Path) -> tuple[str, bool]:
    with open(path, "rb") as fh:
        data = fh.read(INLINE_TEXT_BYTES + 1)
    return data[:INLINE_TEXT_BYTES].decode("utf-8", errors="replace"), len(data) > INLINE_TEXT_BYTES


async def shown_attachments(conn, attachments_dir: Path, tenant_id: str, result_id: FromPath[int]) -> list[ShownAttachment]:
    """A result's attachments as the page shows them: images and videos inline, small text
    files in the page, everything else as a download."""
    shown = []
    for a in await files.list_attachments(conn, result_id):
        if a.mime_type in IMAGE_TYPES:
            shown.append(ShownAttachment(a, "image"))
        elif a.mime_type in VIDEO_TYPES:
            shown.append(ShownAttachment(a, "video"))
        elif a.mime_type in TEXT_TYPES:
            _, sha = await files.get_attachment(conn, tenant_id, a.id)
            path = files.blob_path(attachments_dir, sha)
            try:
                text, cut = await asyncio.to_thread(_read_text, path)
            except FileNotFoundError:  # reported by `qahub check`; the page still renders
                shown.append(ShownAttachment(a, "file"))
                continue
            shown.append(ShownAttachment(a, "text", text, cut))
        else:
            shown.append(ShownAttachment(a, "file"))
    return shown


class Failure(msgspec.Struct):
    result: runs.Result
    attachments: list[ShownAttachment]
    new: bool
    flaky: bool
    quarantined: bool


@get("/runs/{run_ref:str}", include_in_schema=False)
async def run_page(request: Request, run_ref: FromPath[str]) -> Response:
    session = await web_session(request)
    q = read_query(request, RunQuery)
    svc = services(request)
    async with svc.db.read() as conn:
        run = await runs.get_run(conn, session.tenant_id, run_ref)
        project = await projects.get_project(conn, session.tenant_id, run.project_id)
        marks = await health_view.run_marks(conn, svc.config, project, run)
        failed = await runs.list_results(
            conn, run.id, statuses=FAILURE_STATUSES, limit=FAILURES_PER_PAGE, cursor=q.failures
        )
        failures = [
            Failure(
                r, await shown_attachments(conn, svc.config.attachments_dir, session.tenant_id, int(r.id)),
                new=r.test_id in marks.new_failures, flaky=r.test_id in marks.flaky,
                quarantined=r.test_id in marks.quarantined,
            )
            for r in failed.data
        ]
        listed = await runs.list_results(
            conn, run.id, statuses=[q.status] if q.status else None, limit=svc.config.dashboard.page_size,
            cursor=q.cursor, tag=q.tag,
        )
        verdict = await health_view.run_gate(conn, svc.config, project, run)
        groups = await triage.run_failures(conn, project.id, run.id)  # "N failures in K groups" (docs/triage.md)
    c = run.counts
    bar = stacked_bar(
        [("passed", c.passed), ("failed", c.failed), ("broken", c.broken), ("skipped", c.skipped),
         ("unknown", c.unknown), ("pending", c.pending)],
        title=f"{c.passed} passed, {c.failed} failed, {c.broken} broken, {c.skipped} skipped of {c.total}",
    )
    base = f"/runs/{run.short_id}"
    status_q = (f"status={q.status}&" if q.status else "") + (f"tag={quote(q.tag)}&" if q.tag else "")
    return page(
        request, "run.html", run=run, project=project, failures=failures, results=listed.data, marks=marks,
        gate=verdict, groups=groups,
        bar=bar, status_filter=q.status, tag_filter=q.tag, statuses=ALL, ci=ci_links(run),
        refresh_s=svc.config.dashboard.refresh_s if run.status in UNFINISHED else None,
        more_failures=f"{base}?failures={failed.next_cursor}#failures" if failed.next_cursor else None,
        more_results=f"{base}?{status_q}cursor={listed.next_cursor}#results" if listed.next_cursor else None,
        first_results=f"{base}?{status_q}#results".replace("?#", "#") if q.cursor else None,
    )


@get("/runs/{run_ref:str}/results/{result_id:str}", include_in_schema=False)
async def result_page(request: Request, run_ref: FromPath[str], result_id: FromPath[str]) -> Response:
    session = await web_session(request)
    svc = services(request)
    async with svc.db.read() as conn:
        run = await runs.get_run(conn, session.tenant_id, run_ref)
        result = await runs.get_result(conn, session.tenant_id, result_id)
        if result.run_id != run.id:
            raise ApiError(404, "Result not found")
        project = await projects.get_project(conn, session.tenant_id, run.project_id)
        marks = await health_view.run_marks(conn, svc.config, project, run)
        shown = await shown_attachments(conn, svc.config.attachments_dir, session.tenant_id, int(result.id))
    return page(request, "result.html", run=run, project=project, result=result, attachments=shown, marks=marks)


class AttachmentQuery(msgspec.Struct, forbid_unknown_fields=True):
    download: bool = False


@get("/attachments/{attachment_id:str}", include_in_schema=False)
async def attachment_file(request: Request, attachment_id: FromPath[str]) -> File:
    """An attachment of the session's tenant. Images and videos may be shown inline; types a
    browser could run script from (SVG, PDF, text, JSON) are always a download, and every file
    is served under a sandboxing Content-Security-Policy."""
    session = await web_session(request)
    q = read_query(request, AttachmentQuery)
    svc = services(request)
    async with svc.db.read() as conn:
        attachment, sha = await files.get_attachment(conn, session.tenant_id, attachment_id)
    path = files.blob_path(svc.config.attachments_dir, sha)
    if not path.exists():
        raise ApiError(404, "Attachment file is missing on the server (run `qahub check`)")
    inline = not q.download and attachment.mime_type not in files.ACTIVE_TYPES
    return File(
        path=path, filename=attachment.file_name, media_type=attachment.mime_type,
        content_disposition_type="inline" if inline else "attachment",
        headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
                 "Cache-Control": "private, max-age=3600"},
    )


HANDLERS = [runs_list, run_page, result_page, attachment_file]
