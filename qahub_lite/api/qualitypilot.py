"""QualityPilot dialect (seed 002): `POST /api/v1/test-runs`, a CI run's summary and its cases.

A thin mapping onto the canonical model: the payload becomes one RunRecord (source
`qualitypilot`, the summary kept in `extra`) and one ResultRecord per case, stored by the one
ingest path. Decisions where the seed is silent (docs/qualitypilot.md says the same):

- The run lands in the project whose `repo` is the payload's `repo`. A write key of the whole
  tenant creates that project on first use (named after the repo) unless
  `qualitypilot.create_projects` is false; a key limited to one project may post only its own
  project's repo, and any other repo is answered 404 as if it did not exist.
- Cases beyond `qualitypilot.max_cases` are dropped, the summary is kept, and the answer's
  `casesDropped` says how many. When the summary names more tests than the cases stored (a
  reporter that sends no cases, or cut ones), the run's counts are the summary's, so that its
  verdict is right.
- Unknown fields are ignored: reporters add fields over time, and a run must not be lost for
  them. Known fields are validated, and a 400 names the field.
- Storage failures answer 500, as the seed lists them (not the 507 of other dialects).
"""

from __future__ import annotations

import logging
from typing import Annotated

import msgspec
from litestar import Request, Response

from ..core import reported_runs, runs
from ..core.clock import now_ms
from ..core.errors import DomainError, StorageError
from ..core.model import AttemptRecord, CiContext, ResultRecord, RunRecord
from ..core.status import QUALITYPILOT_IN
from ..reports.tags import code_in_text
from . import bounds
from .auth import authenticate
from .context import services
from .errors import ApiError
from .routing import endpoint, read_body

log = logging.getLogger("qahub.api.qualitypilot")
TAGS = ["QualityPilot"]

# Bounded by what a run's counts and the sums of trends can hold (api/bounds.py): a total of
# 2**63 - 1 once overflowed the day's sum and skipped the run's webhooks.
Count = bounds.Count
Millis = bounds.DurationMsFloat
Text = Annotated[str, msgspec.Meta(max_length=1000)]
# Parametrised test names get long; generous, but bounded.
CaseText = Annotated[str, msgspec.Meta(max_length=4000)]
LongText = Annotated[str, msgspec.Meta(max_length=1_000_000)]
Repo = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


STORAGE_FAILURE = "Storage failure: the run was not stored. Please try again later."


class QualityPilotSummary(msgspec.Struct, rename="camel", omit_defaults=True):
    total: Count
    passed: Count
    failed: Count
    skipped: Count | None = None
    flaky: Count | None = None
    duration_ms: Millis | None = None


class QualityPilotCase(msgspec.Struct, rename="camel"):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
    # passed | failed | skipped | flaky (core/status.py QUALITYPILOT_IN), any letter case.
    status: Annotated[str, msgspec.Meta(max_length=32)]
    suite: CaseText | None = None
    duration_ms: Millis | None = None
    error_message: LongText | None = None
    attempts: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    # qahub-lite addition: executions of one case meant to be distinct (browser, parameters).
    variant: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class QualityPilotRun(msgspec.Struct, rename="camel"):
    """Seed 002's payload. `ciProvider` is any string: the real pytest reporter sends values
    such as `circle` and `other` that the seed's list does not name."""

    repo: Repo
    summary: QualityPilotSummary
    commit: Text | None = None
    branch: Text | None = None
    framework: Text | None = None
    ci_provider: Text | None = None
    cases: list[QualityPilotCase] | None = None


class QualityPilotAccepted(msgspec.Struct, rename="camel"):
    id: str
    accepted: bool
    cases_stored: int
    cases_dropped: int


def reported_counts(summary: QualityPilotSummary) -> runs.RunCounts:
    """The summary as canonical run counts (core/reported_runs.py places its flaky tests)."""
    return reported_runs.reconcile_counts(
        total=summary.total, passed=summary.passed, failed=summary.failed, skipped=summary.skipped or 0,
        flaky=summary.flaky or 0,
    )


def to_record(case: QualityPilotCase, framework: str | None) -> ResultRecord:
    """One case as a canonical result (its status already checked against QUALITYPILOT_IN)."""
    status, flaky = QUALITYPILOT_IN[case.status.lower()]
    attempts = max(case.attempts or 1, 1)
    error = case.error_message
    previous: list[AttemptRecord] = []
    if flaky:
        # Flaky is a pass after a failed attempt; reporters rerun only after a failure, so
        # every earlier attempt failed. The error, if any was sent, belongs to the last of them.
        attempts = max(attempts, 2)
        previous = [AttemptRecord("FAILED") for _ in range(attempts - 1)]
        if error:
            previous[-1] = AttemptRecord("FAILED", error_message=error)
            error = None
    return ResultRecord(
        status=status, title=case.name, suite_path=case.suite or "", test_case_code=code_in_text(case.name),
        flaky=flaky, attempts=attempts, previous_attempts=previous,
        duration_ms=None if case.duration_ms is None else round(case.duration_ms),
        error_message=error, framework=framework, variant=(case.variant or "").strip(),
    )


def _check_statuses(cases: list[QualityPilotCase]) -> None:
    for index, case in enumerate(cases):
        if case.status.lower() not in QUALITYPILOT_IN:
            allowed = ", ".join(QUALITYPILOT_IN)
            raise ApiError(
                400, f"Invalid case status {case.status!r} - at `$.cases[{index}].status` (use one of {allowed})"
            )


def _run_name(data: QualityPilotRun, repo: str) -> str:
    parts = [repo, data.branch, data.commit[:12] if data.commit else None]
    return " · ".join(p for p in parts if p)


@endpoint(
    "POST", "/api/v1/test-runs", summary="Post a CI run's summary and cases (QualityPilot, seed 002)", tags=TAGS,
    scope="write", body=QualityPilotRun, responses={202: QualityPilotAccepted},
    description="The run lands in the project whose `repo` matches (a write key of the whole tenant creates it on "
    "first use). Cases beyond `qualitypilot.max_cases` (10,000) are dropped while the summary is kept; "
    "`casesDropped` says how many. A `flaky` case is a pass with a failed attempt. "
    "Rate limit: `rate_limits.qualitypilot_ingest` per key per window (60 per 60 s).",
)
async def post_test_run(request: Request) -> Response:
    principal = await authenticate(request, "write")
    data = await read_body(request, QualityPilotRun)
    svc = services(request)
    cfg = svc.config.qualitypilot
    repo = data.repo.strip()
    if not repo:
        raise ApiError(400, "Field `repo` must not be empty - at `$.repo`")
    cases = data.cases or []
    _check_statuses(cases)
    kept = cases[: cfg.max_cases]
    dropped = len(cases) - len(kept)
    items = [(index, to_record(case, data.framework)) for index, case in enumerate(kept)]
    duration = None if data.summary.duration_ms is None else round(data.summary.duration_ms)
    extra = {"summary": msgspec.to_builtins(data.summary), "casesReceived": len(cases), "casesDropped": dropped}

    reported = reported_runs.ReportedRun(
        repo=repo, items=items, counts=reported_counts(data.summary),
        run=RunRecord(
            project_id="", name=_run_name(data, repo), source="qualitypilot", status="COMPLETED",
            framework=data.framework, duration_ms=duration,
            started_at=now_ms() - duration if duration is not None else None,
            ci=CiContext(branch=data.branch, commit_sha=data.commit, repository=repo, ci_provider=data.ci_provider),
            extra=extra,
        ),
    )
    try:
        outcome = await svc.db.write(
            reported_runs.store_reported_run, principal.tenant_id, principal.project_id, reported,
            create_projects=cfg.create_projects,
        )
    except DomainError:
        raise  # the repo's project is not the key's (404), and the like: answered as they are
    except (StorageError, OSError) as exc:
        log.error("storing a QualityPilot run of %s failed: %s", repo, exc)
        raise ApiError(500, STORAGE_FAILURE) from None
    except Exception:
        # The seed lists 500 for any storage failure (not the 507/503 of other dialects), and
        # whatever failed, the writer rolled the whole run back: say so rather than guess why.
        log.exception("storing a QualityPilot run of %s failed", repo)
        raise ApiError(500, STORAGE_FAILURE) from None
    body = QualityPilotAccepted(outcome.run_id, True, outcome.accepted, dropped)
    return Response(body, status_code=202)


HANDLERS = [post_test_run]
