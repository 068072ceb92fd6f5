"""Runs: the filtered list (`/runs`), a run's page (`/runs/{id}`, where the API's `url` and
`dashboard_url` fields lead), one result's page, and attachment files for the pages.

The run page puts failures first, each with its last attempt open (its error, the first lines
of its stack, the rest folded), its earlier attempts folded, and its attachments: images and
small text files inline, larger files as links with their size. Every long text is bounded
(web/folding.py) and linked to in full, so a page of 50 failures of 1 MB each stays small.
New failures against the baseline and flaky or quarantined tests are marked.
A run that is still going reloads itself (a <meta> refresh without JavaScript; with it,
dashboard.js waits while the reader has something unfolded).
"""

from __future__ import annotations

import asyncio
import re
import datetime as dt
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote, urlencode

import msgspec
from litestar import Request, Response, get
from litestar.params import FromPath
from litestar.response import File

from ..http.services import services
from ..http.errors import ApiError
from ..core import attachments as files
from ..core import projects, runs, triage
from ..core.clock import from_datetime
from ..core.status import ALL, FAILURE_STATUSES, RUN_STATUSES, UNFINISHED
from . import health_view
from .auth import web_session
from .charts import stacked_bar
from .folding import Folded, fold, human_size
from .forms import read_query
from .render import page

FAILURES_PER_PAGE = 50
# Text attachments up to this size are shown in the result's page; larger ones are a download.
INLINE_TEXT_BYTES = 64 * 1024
# On a run's page, which lists many failures, only text attachments up to a few KB are shown
# (at most this many per failure); the others are links with their size.
RUN_PAGE_TEXT_BYTES = 4 * 1024
RUN_PAGE_TEXT_ATTACHMENTS = 3
# Earlier attempts listed per failure on the run page (the latest ones; the result page has all).
RUN_PAGE_ATTEMPTS = 10
# The text fields of a result that can be long, served whole by `result_text`.
TEXT_FIELDS = ("error_message", "error_stack", "stdout", "stderr")
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
    # Integer arithmetic: the day after 9999-12-31 is no `date`, but it is a number of ms.
    start = from_datetime(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc))
    return start + 86_400_000 if end else start


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
    all_projects = (await services(request).db.read(projects.list_projects, session.tenant_id, limit=1000)).data
    project = await services(request).db.read(projects.get_project, session.tenant_id, q.project) if q.project else None
    f = runs.RunFilter(
        project_id=project.id if project else None, branch=q.branch, environment=q.environment, status=q.status,
        source=q.source, since=_day_ms(q.since) if q.since else None,
        until=_day_ms(q.until, end=True) if q.until else None,
    )
    found = await svc.db.read(runs.list_runs, session.tenant_id, f, limit=svc.config.dashboard.page_size,
                              cursor=q.cursor)
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

    @property
    def size_text(self) -> str:
        return human_size(self.meta.size)


def _read_text(path: Path) -> tuple[str, bool]:
    with open(path, "rb") as fh:
        data = fh.read(INLINE_TEXT_BYTES + 1)
    return data[:INLINE_TEXT_BYTES].decode("utf-8", errors="replace"), len(data) > INLINE_TEXT_BYTES


async def shown_attachments(
    db, attachments_dir: Path, tenant_id: str, result_id: FromPath[int], *,
    text_bytes: int = INLINE_TEXT_BYTES, text_count: int | None = None,
) -> list[ShownAttachment]:
    """A result's attachments as the page shows them: images and videos inline, text files up
    to `text_bytes` (at most `text_count` of them) in the page, everything else as a link."""
    shown = []
    texts = 0
    for a in await db.read(files.list_attachments, result_id):
        if a.mime_type in IMAGE_TYPES:
            shown.append(ShownAttachment(a, "image"))
        elif a.mime_type in VIDEO_TYPES:
            shown.append(ShownAttachment(a, "video"))
        elif a.mime_type in TEXT_TYPES and (text_count is None or texts < text_count) and (
            text_bytes >= INLINE_TEXT_BYTES or a.size <= text_bytes
        ):
            texts += 1
            _, sha = await db.read(files.get_attachment, tenant_id, a.id)
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


class EarlierAttempt(msgspec.Struct):
    number: int  # 1 is the first attempt
    status: str
    duration_ms: int | None
    message: Folded | None


class Texts(msgspec.Struct):
    """A result's long text fields, folded for a page."""

    message: Folded | None
    stack: Folded | None
    stdout: Folded | None
    stderr: Folded | None
    earlier: list[EarlierAttempt]  # newest first
    earlier_hidden: int  # earlier attempts not listed here (the result page lists them)


def folded_texts(r: runs.Result, *, whole_page: bool) -> Texts:
    """The run page (`whole_page` False) shows a failure's message head and the first lines of
    its stack; the result page shows up to 64 KB of each. Beyond that, a link."""
    big = 64 * 1024
    if whole_page:
        message = fold(r.error_message, head_lines=1000, head_chars=big, rest_chars=0)
        stack = fold(r.error_stack, head_lines=12, head_chars=4000, rest_chars=big)
        out = [fold(t, head_lines=0, head_chars=0, rest_chars=big) for t in (r.stdout, r.stderr)]
        attempt_chars, shown = 2000, len(r.previous_attempts)
    else:
        message = fold(r.error_message, head_lines=20, head_chars=2000, rest_chars=0)
        stack = fold(r.error_stack, head_lines=8, head_chars=1500, rest_chars=4000)
        out = [fold(t, head_lines=0, head_chars=0, rest_chars=4000) for t in (r.stdout, r.stderr)]
        attempt_chars, shown = 300, RUN_PAGE_ATTEMPTS
    attempts = list(enumerate(r.previous_attempts, start=1))[::-1][:shown]
    earlier = [
        EarlierAttempt(n, a.status, a.duration_ms,
                       fold(a.error_message, head_lines=5, head_chars=attempt_chars, rest_chars=0))
        for n, a in attempts
    ]
    return Texts(message, stack, out[0], out[1], earlier, len(r.previous_attempts) - len(earlier))


class Failure(msgspec.Struct):
    result: runs.Result
    attachments: list[ShownAttachment]
    new: bool
    flaky: bool
    quarantined: bool
    texts: Texts


@get("/runs/{run_ref:str}", include_in_schema=False)
async def run_page(request: Request, run_ref: FromPath[str]) -> Response:
    session = await web_session(request)
    q = read_query(request, RunQuery)
    svc = services(request)
    run = await svc.db.read(runs.get_run, session.tenant_id, run_ref)
    project = await svc.db.read(projects.get_project, session.tenant_id, run.project_id)
    marks = await svc.db.read(health_view.run_marks, svc.config, project, run)
    failed = await svc.db.read(
        runs.list_results, run.id, statuses=sorted(FAILURE_STATUSES), limit=FAILURES_PER_PAGE, cursor=q.failures
    )
    failures = [
        Failure(
            r, await shown_attachments(svc.db, svc.config.attachments_dir, session.tenant_id, int(r.id),
                                       text_bytes=RUN_PAGE_TEXT_BYTES, text_count=RUN_PAGE_TEXT_ATTACHMENTS),
            new=r.test_id in marks.new_failures, flaky=r.test_id in marks.flaky,
            quarantined=r.test_id in marks.quarantined, texts=folded_texts(r, whole_page=False),
        )
        for r in failed.data
    ]
    listed = await svc.db.read(
        runs.list_results, run.id, statuses=[q.status] if q.status else None, limit=svc.config.dashboard.page_size,
        cursor=q.cursor, tag=q.tag,
    )
    verdict = await svc.db.read(health_view.run_gate, svc.config, project, run)
    groups = await svc.db.read(triage.run_failures, project.id, run.id)  # "N failures in K groups" (docs/triage.md)
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
    run, result = await svc.db.read(runs.get_run_result, session.tenant_id, run_ref, result_id)
    project = await svc.db.read(projects.get_project, session.tenant_id, run.project_id)
    marks = await svc.db.read(health_view.run_marks, svc.config, project, run)
    shown = await shown_attachments(svc.db, svc.config.attachments_dir, session.tenant_id, int(result.id))
    return page(request, "result.html", run=run, project=project, result=result, attachments=shown, marks=marks,
                texts=folded_texts(result, whole_page=True))


@get("/runs/{run_ref:str}/results/{result_id:str}/text/{field:str}", include_in_schema=False)
async def result_text(
    request: Request, run_ref: FromPath[str], result_id: FromPath[str], field: FromPath[str]
) -> Response:
    """One long text field of a result, whole, as plain text: where a page's folded text links."""
    session = await web_session(request)
    attempt = re.fullmatch(r"attempt-([1-9][0-9]{0,3})", field)  # an earlier attempt's message
    if field not in TEXT_FIELDS and attempt is None:
        raise ApiError(404, f"no text field {field!r}; one of {', '.join(TEXT_FIELDS)} or attempt-N")
    run, result = await services(request).db.read(runs.get_run_result, session.tenant_id, run_ref, result_id)
    if attempt is not None:
        number = int(attempt.group(1))  # 1 is the first attempt; the last one is the result itself
        if number > len(result.previous_attempts):
            raise ApiError(404, f"no earlier attempt {number}")
        text = result.previous_attempts[number - 1].error_message
    else:
        text = getattr(result, field)
    return Response(
        text or "", media_type="text/plain; charset=utf-8",
        headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
                 "Cache-Control": "private, no-cache"},
    )


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
    attachment, sha = await svc.db.read(files.get_attachment, session.tenant_id, attachment_id)
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


HANDLERS = [runs_list, run_page, result_page, result_text, attachment_file]
