"""Data out, back into CI (docs/export.md, docs/ci.md): a run in JUnit/CTRF/CSV/NDJSON, results
in bulk as a stream (CSV/NDJSON/Parquet), a run's summary for pull requests, and the timings
`qahub split` balances CI nodes by. Read scope; tenant and project-limited keys as everywhere
(visible_run, visible_project: another tenant's ids are 404)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec
from litestar import Request, Response
from litestar.params import FromPath
from litestar.response import Stream

from ..core import export_bulk, export_run, summary, timings
from ..core.clock import from_datetime, now_ms
from ..core.export_rows import ResultFilter, count_results
from .bounds import Instant, check_instants
from .context import services
from .errors import ApiError
from .native_library import visible_project
from .native_runs import visible_run
from .routing import endpoint, read_query

TAGS = ["Data out: exports, summaries, timings"]
Branch = Annotated[str, msgspec.Meta(max_length=200)]


class RunExportQuery(msgspec.Struct, forbid_unknown_fields=True):
    format: Literal["junit", "ctrf", "csv", "ndjson"] = "junit"


class BulkExportQuery(msgspec.Struct, forbid_unknown_fields=True):
    format: Literal["csv", "ndjson", "parquet"] = "csv"
    since: Instant | None = None  # on the run's creation time, inclusive
    until: Instant | None = None  # exclusive
    branch: Branch | None = None

    def __post_init__(self) -> None:
        check_instants(self, "since", "until")


class SummaryQuery(msgspec.Struct, forbid_unknown_fields=True):
    format: Literal["markdown", "text"] = "markdown"


class TimingsQuery(msgspec.Struct, forbid_unknown_fields=True):
    by: Literal["file", "test"] = "file"
    branch: Branch | None = None  # default: the project's default branch
    runs: Annotated[int, msgspec.Meta(ge=1, le=timings.MAX_RUNS)] = timings.DEFAULT_RUNS


# A run's export is a document of its format's type: CTRF is JSON (an object, not the
# "binary" string a generic file would be documented as), the others are text.
_TEXT = {"type": "string"}
RUN_EXPORT_TYPES = {"application/xml": _TEXT, "application/json": {"type": "object"},
                    "text/csv": _TEXT, "application/x-ndjson": _TEXT}


def _download(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', "X-Content-Type-Options": "nosniff"}


@endpoint("GET", "/api/v1/runs/{run_id:str}/export", summary="A run as JUnit XML, CTRF JSON, CSV or NDJSON",
          tags=TAGS, scope="read", query=RunExportQuery, responses={200: RUN_EXPORT_TYPES},
          description="format=junit (default; GitLab unit-test reports, Jenkins), ctrf (https://ctrf.io), csv or "
          "ndjson (the bulk export's columns). Attempts and flaky marks are kept where the format can hold them "
          "(docs/export.md). Streamed, as the bulk export.")
async def export_one_run(request: Request, run_id: FromPath[str]) -> Response:
    principal, run = await visible_run(request, "read", run_id)
    q = read_query(request, RunExportQuery)
    svc = services(request)
    name = f"qahub-run-{run.short_id}"
    if q.format in ("csv", "ndjson"):
        body = export_bulk.stream(svc.db, ResultFilter(project_id=run.project_id, run_id=run.id), q.format)
        media_type, filename = export_bulk.MEDIA_TYPES[q.format], f"{name}.{q.format}"
    elif q.format == "junit":
        body, media_type, filename = export_run.junit_xml(svc.db, run), "application/xml", f"{name}.xml"
    else:
        started, stopped = _run_span(run)
        url = f"{svc.config.public_url}/runs/{run.id}"
        body = export_run.ctrf(svc.db, run, started_ms=started, stopped_ms=stopped, url=url)
        media_type, filename = "application/json", f"{name}.ctrf.json"
    return _stream(svc, principal.key_id, body, media_type, _download(filename))


def _stream(svc, key_id: str, body, media_type: str, headers: dict[str, str]) -> Stream:
    """The export's stream inside one of the key's export slots (api/export_slots.py), or 429."""
    slots = svc.export_slots
    slots.take(key_id)
    return Stream(slots.hold(key_id, body), media_type=media_type, headers=headers)


def _run_span(run) -> tuple[int, int]:
    def ms(iso: str | None) -> int | None:
        return from_datetime(dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))) if iso else None

    start = ms(run.started_at) or ms(run.created_at) or now_ms()
    stop = ms(run.finished_at) or (start + (run.duration_ms or 0))
    return start, max(start, stop)


@endpoint("GET", "/api/v1/projects/{project_id:str}/results/export",
          summary="Results in bulk, streamed: CSV, NDJSON or Parquet, the run's context on each row", tags=TAGS,
          scope="read", query=BulkExportQuery, responses={200: "binary"},
          description="Runs filtered by since/until (their creation time) and branch, oldest first; every result "
          "with its run's id, name, branch, commit, PR and environment. Streamed: memory stays flat whatever the "
          "size. `X-Result-Count` says how many rows follow. Parquet needs the optional extra "
          "`qahub-lite[parquet]`; without it: 400 saying so.")
async def export_results(request: Request, project_id: FromPath[str]) -> Response:
    principal, project = await visible_project(request, "read", project_id)
    q = read_query(request, BulkExportQuery)
    since, until = from_datetime(q.since), from_datetime(q.until)
    if since is not None and until is not None and until <= since:
        raise ApiError(400, "until must be later than since")
    if q.format == "parquet":
        export_bulk.require_parquet()  # before the response starts: a 400, not a cut stream
    f = ResultFilter(project_id=project.id, branch=q.branch, since=since, until=until)
    svc = services(request)
    count = await count_results(svc.db, f)
    headers = {**_download(f"qahub-{project.slug}-results.{q.format}"), "X-Result-Count": str(count)}
    return _stream(svc, principal.key_id, export_bulk.stream(svc.db, f, q.format),
                   export_bulk.MEDIA_TYPES[q.format], headers)


@endpoint("GET", "/api/v1/runs/{run_id:str}/summary", summary="A run's summary for a pull request or a CI log",
          tags=TAGS, scope="read", query=SummaryQuery, responses={200: "text"},
          description="format=markdown (default; for $GITHUB_STEP_SUMMARY or a merge-request note) or text. Verdict, "
          "counts, the quality gate's verdict and reasons, new failures first, the other failures grouped by failure "
          "signature (docs/triage.md), flaky and slowest tests, a link to the run; at most 60 lines whatever the "
          "run's size.")
async def run_summary(request: Request, run_id: FromPath[str]) -> Response:
    _, run = await visible_run(request, "read", run_id)
    q = read_query(request, SummaryQuery)
    svc = services(request)
    url = f"{svc.config.public_url}/runs/{run.id}"
    facts = await svc.db.read(summary.gather, run, url, svc.config.flaky, svc.config.grade)
    return Response(summary.render(facts, q.format), media_type="text/plain; charset=utf-8")


@endpoint("GET", "/api/v1/projects/{project_id:str}/timings",
          summary="Median duration of each test file (or test) over recent runs: what `qahub split` balances by",
          tags=TAGS, scope="read", query=TimingsQuery, responses={200: timings.Timings},
          description="by=file (default) or test; over the last `runs` (default 20) completed runs of `branch` "
          "(default: the project's default branch). `default_ms` is the median of the known figures, what a new "
          "file or test is given.")
async def project_timings(request: Request, project_id: FromPath[str]) -> timings.Timings:
    _, project = await visible_project(request, "read", project_id)
    q = read_query(request, TimingsQuery)
    return await services(request).db.read(timings.timings, project.id, by=q.by, branch=q.branch, runs=q.runs)


HANDLERS = [export_one_run, export_results, run_summary, project_timings]
