"""Native API (QA Hub): runs, ingest (seed 000), results and attachments (seed 001), retention."""

from __future__ import annotations

import msgspec
from litestar import Request, Response
from litestar.params import FromPath
from litestar.response import File

from ..core import attachments as files
from ..core import ingest, retention, runs
from ..core.clock import from_datetime, now_ms, to_iso
from ..core.model import AttemptRecord, CiContext, ItemError, ResultRecord, RunRecord
from ..core.status import ALL, QAHUB_INPUT, RUN_STATUSES, invalid_status_message, passed_after_failing
from .auth import authenticate, check_project
from .context import services
from .errors import ApiError
from .multipart import FilePart, file_chunks
from .native_library import visible_project
from .native_schema import (
    CaseQuery, Deleted, FinishIn, IngestAnswer, IngestIn, ResultIn, ResultQuery, ResultsIn, RunIn, RunQuery,
)
from .routing import decode_item, endpoint, read_body, read_query

TAGS = ["QA Hub: runs and results"]
OUTPUT_LIMIT = 64 * 1024


def _bounded(text: str | None) -> str | None:
    return text if text is None or len(text) <= OUTPUT_LIMIT else text[:OUTPUT_LIMIT] + "\n[truncated]"


def to_record(item: ResultIn, default_framework: str | None) -> ResultRecord:
    """The native result shape, as a canonical record. Raises ValueError with seed wording."""
    if item.status not in QAHUB_INPUT:
        raise ValueError(invalid_status_message(item.status))
    if not (item.test_case_code or item.test_case_id or item.title):
        raise ValueError("a result needs test_case_code, test_case_id or title")
    previous = []
    for attempt in item.previous_attempts:
        if attempt.status not in QAHUB_INPUT:
            raise ValueError(invalid_status_message(attempt.status))
        previous.append(AttemptRecord(attempt.status, attempt.duration_ms, attempt.error_message))
    # A pass after a failed attempt is flaky even when the sender did not say so.
    flaky = item.flaky or passed_after_failing(item.status, (a.status for a in previous))
    return ResultRecord(
        status=item.status, test_case_code=item.test_case_code, test_case_id=item.test_case_id,
        title=item.title, suite_path=item.suite or "", flaky=flaky and item.status == "PASSED",
        attempts=max(item.attempts, len(previous) + 1), previous_attempts=previous, duration_ms=item.duration_ms,
        error_message=item.error_message, error_stack=item.error_stack, comment=item.comment,
        bug_ticket_key=item.bug_ticket_key, bug_ticket_url=item.bug_ticket_url,
        framework=item.framework or default_framework, file=item.file, line=item.line,
        stdout=_bounded(item.stdout), stderr=_bounded(item.stderr), executed_at=from_datetime(item.executed_at),
        variant=(item.variant or "").strip(), tags=list(dict.fromkeys(t.strip() for t in item.tags if t.strip())),
    )


def _cuts(index: int, item: ResultIn) -> list[ItemError]:
    """What _bounded cut from an item, said in the answer: a 2xx must not hide lost output."""
    return [ItemError(index, f"{name} was cut to its first {OUTPUT_LIMIT} characters (it had {len(text)})")
            for name, text in (("stdout", item.stdout), ("stderr", item.stderr))
            if text is not None and len(text) > OUTPUT_LIMIT]


def validate_items(raws: list[msgspec.Raw], default_framework: str | None,
                   truncated: list[ItemError] | None = None) -> tuple[list, list[ItemError]]:
    """Each item on its own: a bad one becomes an ItemError, never a failed request. Output
    cut to OUTPUT_LIMIT is listed in `truncated` when the caller passes a list."""
    accepted, errors = [], []
    for index, raw in enumerate(raws):
        try:
            item = decode_item(raw, ResultIn)
            accepted.append((index, to_record(item, default_framework)))
            if truncated is not None:
                truncated.extend(_cuts(index, item))
        except msgspec.ValidationError as exc:
            errors.append(ItemError(index, str(exc).replace("`$.", "`")))
        except msgspec.DecodeError as exc:
            errors.append(ItemError(index, f"not a JSON object: {exc}"))
        except ValueError as exc:
            errors.append(ItemError(index, str(exc)))
    return accepted, errors


def _ci(ci) -> CiContext:
    if ci is None:
        return CiContext()
    return CiContext(
        branch=ci.branch, commit_sha=ci.commit, pr_number=ci.pr_number, pr_url=ci.pr_url, repository=ci.repository,
        ci_provider=ci.provider, build_url=ci.build_url,
    )


def _answer(request: Request, outcome, truncated: list[ItemError]) -> Response:
    url = f"{services(request).config.public_url}/runs/{outcome.run_id}"
    body = IngestAnswer(outcome.run_id, outcome.short_id, outcome.accepted, outcome.rejected, outcome.errors, url,
                        truncated)
    return Response(body, status_code=207 if outcome.rejected else 201)


@endpoint("POST", "/api/v1/ingest", summary="Create a run with its results in one call (seed 000)", tags=TAGS,
          scope="write", body=IngestIn, responses={201: IngestAnswer, 207: IngestAnswer})
async def ingest_run(request: Request) -> Response:
    principal = await authenticate(request, "write")
    data = await read_body(request, IngestIn)
    if data.status not in ("COMPLETED", "RUNNING"):
        raise ApiError(400, f"status must be COMPLETED or RUNNING, not {data.status!r}")
    _, project = await visible_project(request, "write", data.project_id)
    truncated: list[ItemError] = []
    accepted, rejected = validate_items(data.results, data.framework, truncated)

    run = RunRecord(
        project_id=project.id, name=data.run_name or f"Run {to_iso(now_ms())}", source="qahub",
        status=data.status, environment=data.environment, framework=data.framework, ci=_ci(data.ci),
        duration_ms=data.duration_ms, started_at=from_datetime(data.started_at),
    )
    outcome = await services(request).db.write(
        lambda conn: ingest.store_results(
            conn, principal.tenant_id, accepted, run=run, rejected=rejected,
            unlink_unknown_codes=data.unknown_codes == "unlink",
        )
    )
    return _answer(request, outcome, truncated)


async def visible_run(request: Request, scope: str, run_ref: str):
    """The caller and a run of its tenant (by id or short id) that its key may see; 404 otherwise.
    Every dialect that reads a run goes through here (QA.tech's short ids included)."""
    principal = await authenticate(request, scope)
    run = await services(request).db.read(runs.get_run_sync, principal.tenant_id, run_ref)
    check_project(principal, run.project_id)
    return principal, run


@endpoint("POST", "/api/v1/runs/{run_id:str}/results", summary="Bulk-upsert results into a run (seed 001)",
          tags=TAGS, scope="write", body=ResultsIn, responses={201: IngestAnswer, 207: IngestAnswer})
async def upsert_results(request: Request, run_id: FromPath[str]) -> Response:
    principal, run = await visible_run(request, "write", run_id)
    data = await read_body(request, ResultsIn)
    truncated: list[ItemError] = []
    accepted, rejected = validate_items(data.results, run.framework, truncated)
    outcome = await services(request).db.write(
        lambda conn: ingest.store_results(
            conn, principal.tenant_id, accepted, run_id=run.id, rejected=rejected,
            unlink_unknown_codes=data.unknown_codes == "unlink",
        )
    )
    return _answer(request, outcome, truncated)


@endpoint("GET", "/api/v1/runs/{run_id:str}/results", summary="List a run's results (seed 001)", tags=TAGS,
          scope="read", query=ResultQuery, responses={200: runs.ResultPage})
async def list_results(request: Request, run_id: FromPath[str]) -> runs.ResultPage:
    _, run = await visible_run(request, "read", run_id)
    q = read_query(request, ResultQuery)
    statuses = [s.strip().upper() for s in q.status.split(",")] if q.status else None
    if statuses and any(s not in ALL for s in statuses):
        raise ApiError(400, f"status must be a comma-separated list of {', '.join(ALL)}")
    async with services(request).db.read_async() as conn:
        return await runs.list_results(conn, run.id, statuses=statuses, limit=q.limit, cursor=q.cursor, tag=q.tag)


@endpoint("GET", "/api/v1/runs/{run_id:str}/cases", summary="A run's library test cases, each once", tags=TAGS,
          scope="read", query=CaseQuery, responses={200: runs.CaseOutcomeList},
          description="Each test case linked by the run's results, with the worst status of its results (FAILED "
          "beats PASSED) and the variants that ran (parameters, browsers, matrix labels; the first 100 by name, "
          "`results` counts them all). Pages of `limit` cases (default and most: 1000); `next_cursor` is set "
          "when there are more.")
async def list_case_outcomes(request: Request, run_id: FromPath[str]) -> runs.CaseOutcomeList:
    _, run = await visible_run(request, "read", run_id)
    q = read_query(request, CaseQuery)
    async with services(request).db.read_async() as conn:
        return await runs.case_outcomes(conn, run.id, limit=q.limit, cursor=q.cursor)


@endpoint("POST", "/api/v1/runs", summary="Create an empty run (add results with POST /runs/{id}/results)",
          tags=TAGS, scope="write", body=RunIn, responses={201: runs.Run})
async def create_run(request: Request) -> Response:
    principal = await authenticate(request, "write")
    data = await read_body(request, RunIn)
    _, project = await visible_project(request, "write", data.project_id)

    record = RunRecord(
        project_id=project.id, name=data.name or f"Run {to_iso(now_ms())}", source="qahub", status="RUNNING",
        environment=data.environment, framework=data.framework, ci=_ci(data.ci),
    )

    def create(conn):
        run_id, _ = ingest.insert_run(conn, principal.tenant_id, record)
        return runs.get_run_sync(conn, principal.tenant_id, run_id)

    return Response(await services(request).db.write(create), status_code=201)


@endpoint("GET", "/api/v1/runs", summary="List runs, newest first, with filters", tags=TAGS, scope="read",
          query=RunQuery, responses={200: runs.RunPage})
async def list_runs(request: Request) -> runs.RunPage:
    principal = await authenticate(request, "read")
    q = read_query(request, RunQuery)
    project_id = q.project_id
    if project_id is not None:
        _, project = await visible_project(request, "read", project_id)
        project_id = project.id
    elif principal.project_id is not None:
        project_id = principal.project_id
    status = q.status.upper() if q.status else None
    if status is not None and status not in RUN_STATUSES:
        raise ApiError(400, f"status must be one of {', '.join(RUN_STATUSES)} (a run's outcome is its verdict: "
                            f"use verdict={'|'.join(runs.VERDICTS)})")
    verdict = q.verdict.upper() if q.verdict else None
    if verdict is not None and verdict not in runs.VERDICTS:
        raise ApiError(400, f"verdict must be one of {', '.join(runs.VERDICTS)}")
    f = runs.RunFilter(
        project_id=project_id, branch=q.branch, environment=q.environment, status=status, verdict=verdict,
        source=q.source, since=from_datetime(q.since), until=from_datetime(q.until),
    )
    async with services(request).db.read_async() as conn:
        return await runs.list_runs(conn, principal.tenant_id, f, limit=q.limit, cursor=q.cursor)


@endpoint("GET", "/api/v1/runs/{run_id:str}", summary="Get a run by id or short id", tags=TAGS, scope="read",
          responses={200: runs.Run})
async def get_run(request: Request, run_id: FromPath[str]) -> runs.Run:
    return (await visible_run(request, "read", run_id))[1]


@endpoint("POST", "/api/v1/runs/{run_id:str}/finish", summary="Mark a run finished", tags=TAGS, scope="write",
          body=FinishIn, responses={200: runs.Run})
async def finish_run(request: Request, run_id: FromPath[str]) -> runs.Run:
    principal, run = await visible_run(request, "write", run_id)
    body = await request.body()
    status = "COMPLETED"
    if body.strip():
        status = (await read_body(request, FinishIn)).status
    if status not in ("COMPLETED", "ERROR"):
        raise ApiError(400, f"status must be COMPLETED or ERROR, not {status!r}")
    return await services(request).db.write(runs.finish_run, principal.tenant_id, run.id, status=status)


@endpoint("POST", "/api/v1/runs/{run_id:str}/cancel", summary="Cancel a run (pending tests become CANCELED)",
          tags=TAGS, scope="write", responses={200: runs.Run})
async def cancel_run(request: Request, run_id: FromPath[str]) -> runs.Run:
    principal, run = await visible_run(request, "write", run_id)
    return await services(request).db.write(runs.finish_run, principal.tenant_id, run.id, status="CANCELED")


@endpoint("DELETE", "/api/v1/runs/{run_id:str}", summary="Delete a run with its results and attachments",
          tags=TAGS, scope="write", responses={200: Deleted})
async def delete_run(request: Request, run_id: FromPath[str]) -> Deleted:
    principal, run = await visible_run(request, "write", run_id)
    svc = services(request)
    hashes = await svc.db.write(runs.delete_run, principal.tenant_id, run.id)
    if hashes:
        await svc.db.write(files.remove_unreferenced, svc.config.attachments_dir, hashes)
    return Deleted(run.id)


# --- results and attachments ----------------------------------------------------------


async def _visible_result(request: Request, scope: str, result_id: FromPath[str]):
    principal = await authenticate(request, scope)
    async with services(request).db.read_async() as conn:
        result = await runs.get_result(conn, principal.tenant_id, result_id)
        run = await runs.get_run(conn, principal.tenant_id, result.run_id)
    check_project(principal, run.project_id)
    return principal, result


@endpoint("GET", "/api/v1/results/{result_id:str}", summary="Get one result", tags=TAGS, scope="read",
          responses={200: runs.Result})
async def get_result(request: Request, result_id: FromPath[str]) -> runs.Result:
    return (await _visible_result(request, "read", result_id))[1]


@endpoint("POST", "/api/v1/results/{result_id:str}/attachments", summary="Upload an attachment (seed 001)",
          tags=TAGS, scope="write", body="multipart", responses={201: files.AttachmentList},
          description="multipart/form-data with a field `file`. Allowed (checked by content): PNG, JPG, GIF, WebP, "
          "SVG, PDF, TXT, JSON, ZIP, MP4, WebM. Larger than attachments.max_bytes: 413.")
async def upload_attachment(request: Request, result_id: FromPath[str]) -> Response:
    principal, result = await _visible_result(request, "write", result_id)
    svc = services(request)
    limit = svc.config.attachments.max_bytes
    too_large = f"Attachment is larger than the limit of {limit} bytes"
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + 64 * 1024:
        raise ApiError(413, too_large)  # refused before reading a byte of it
    part = FilePart()
    chunks = file_chunks(request.stream(), request.headers.get("content-type", ""), part)
    try:
        staged = await files.stage(svc.config.attachments_dir, chunks, limit)
    except files.TooLarge:
        raise ApiError(413, too_large) from None
    name = files.safe_file_name(part.file_name)
    attachment = await svc.db.write(
        files.insert_attachment, svc.config.attachments_dir, principal.tenant_id, result.id, staged, name
    )
    return Response(files.AttachmentList([attachment]), status_code=201)


@endpoint("GET", "/api/v1/results/{result_id:str}/attachments", summary="List a result's attachments", tags=TAGS,
          scope="read", responses={200: files.AttachmentList})
async def list_attachments(request: Request, result_id: FromPath[str]) -> files.AttachmentList:
    _, result = await _visible_result(request, "read", result_id)
    async with services(request).db.read_async() as conn:
        return files.AttachmentList(await files.list_attachments(conn, int(result.id)))


@endpoint("GET", "/api/v1/attachments/{attachment_id:str}", summary="Download an attachment", tags=TAGS,
          scope="read", responses={200: "binary"})
async def download_attachment(request: Request, attachment_id: FromPath[str]) -> File:
    principal = await authenticate(request, "read")
    svc = services(request)
    async with svc.db.read_async() as conn:
        attachment, sha = await files.get_attachment(conn, principal.tenant_id, attachment_id, principal.project_id)
    path = files.blob_path(svc.config.attachments_dir, sha)
    if not path.exists():
        raise ApiError(404, "Attachment file is missing on the server (run `qahub check`)")
    inline = attachment.mime_type not in files.ACTIVE_TYPES
    return File(
        path=path, filename=attachment.file_name, media_type=attachment.mime_type,
        content_disposition_type="inline" if inline else "attachment",
        headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"},
    )


@endpoint("DELETE", "/api/v1/attachments/{attachment_id:str}", summary="Delete an attachment", tags=TAGS,
          scope="write", responses={200: Deleted})
async def delete_attachment(request: Request, attachment_id: FromPath[str]) -> Deleted:
    principal = await authenticate(request, "write")
    svc = services(request)
    hashes = await svc.db.write(files.delete_attachment, principal.tenant_id, attachment_id, principal.project_id)
    await svc.db.write(files.remove_unreferenced, svc.config.attachments_dir, hashes)
    return Deleted(attachment_id)


@endpoint("POST", "/api/v1/admin/sweep", summary="Delete expired unlinked results now (seed 000)",
          tags=["Administration"], scope="admin", responses={200: retention.SweepReport})
async def sweep(request: Request) -> retention.SweepReport:
    principal = await authenticate(request, "admin")
    svc = services(request)
    r = svc.config.retention
    return await retention.sweep(
        svc.db.writer, svc.config.attachments_dir, r.unlinked_days, r.batch_size, principal.tenant_id,
        principal.project_id,
    )


HANDLERS = [
    ingest_run, upsert_results, list_results, list_case_outcomes, create_run, list_runs, get_run, finish_run, cancel_run, delete_run,
    get_result, upload_attachment, list_attachments, download_attachment, delete_attachment, sweep,
]
