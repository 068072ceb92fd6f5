"""Triage routes (docs/triage.md): a run's failures grouped by signature, a project's failure
signatures with their triage, mask and merge rules, run comparison, and the quarantine audit.

Thin edges like every other route: validate the query or body, check the key may see the
project or run, call core.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Request, Response
from litestar.params import FromPath

from ..core import compare, quarantine, triage
from .context import services
from .native_library import visible_project
from .native_runs import visible_run
from .routing import endpoint, read_body, read_query

TAGS = ["Triage"]
_P = "/api/v1/projects/{project_id:str}"
Short = Annotated[str, msgspec.Meta(max_length=200)]


class RunFailuresQuery(msgspec.Struct, forbid_unknown_fields=True):
    pass


class ProjectFailuresQuery(msgspec.Struct, forbid_unknown_fields=True):
    branch: Short | None = None  # '' for runs that named no branch
    since: Annotated[str, msgspec.Meta(max_length=40)] | None = None  # ISO date or date-time (UTC when no zone)
    status: Literal["untriaged", "triaged", "known"] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class TriageBody(msgspec.Struct, forbid_unknown_fields=True):
    bug_ticket_key: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    bug_ticket_url: Annotated[str, msgspec.Meta(min_length=8, max_length=2000)] | None = None
    category: triage.Category | None = None
    note: Annotated[str, msgspec.Meta(max_length=5000)] | None = None


class MergeIn(msgspec.Struct, forbid_unknown_fields=True):
    into: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{16}$")]


class RuleIn(msgspec.Struct, forbid_unknown_fields=True):
    pattern: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    note: Annotated[str, msgspec.Meta(max_length=1000)] | None = None


class RuleList(msgspec.Struct):
    data: list[triage.Rule]


class RuleDeleted(msgspec.Struct):
    id: str
    deleted: bool = True


class CompareQuery(msgspec.Struct, forbid_unknown_fields=True):
    base: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class AuditQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class AuditList(msgspec.Struct):
    data: list[quarantine.AuditEntry]


parse_since = triage.parse_moment


@endpoint("GET", "/api/v1/runs/{run_id:str}/failures", summary="A run's failures grouped by signature", tags=TAGS,
          scope="read", responses={200: triage.RunFailures},
          description="Each group: signature, a representative message, count, the tests, `new` (never seen in the "
          "project before this run), `known` and the signature's triage. Largest group first.")
async def run_failures(request: Request, run_id: FromPath[str]) -> triage.RunFailures:
    _, run = await visible_run(request, "read", run_id)
    read_query(request, RunFailuresQuery)
    return await services(request).db.read(triage.run_failures, run.project_id, run.id)


@endpoint("GET", f"{_P}/failures", summary="Every failure signature of the project, with its triage", tags=TAGS,
          scope="read", query=ProjectFailuresQuery, responses={200: triage.ProjectFailures},
          description="Latest first: first_seen, last_seen, occurrences, tests affected, branches and triage. "
          "`branch` counts and dates that branch only; `since` keeps signatures seen since then; `status`: "
          "untriaged (no category), triaged, or known (a ticket, or a category other than to_investigate).")
async def project_failures(request: Request, project_id: FromPath[str]) -> triage.ProjectFailures:
    _, project = await visible_project(request, "read", project_id)
    q = read_query(request, ProjectFailuresQuery)
    since = parse_since(q.since) if q.since else None
    return await services(request).db.read(triage.project_failures, project.id, branch=q.branch, since=since,
                                           status=q.status, limit=q.limit)


@endpoint("GET", f"{_P}/failures/{{signature:str}}", summary="One failure signature with its triage", tags=TAGS,
          scope="read", responses={200: triage.ProjectFailure})
async def get_failure(request: Request, project_id: FromPath[str], signature: FromPath[str]) -> triage.ProjectFailure:
    _, project = await visible_project(request, "read", project_id)
    return await services(request).db.read(triage.get_failure, project.id, signature)


@endpoint("PUT", f"{_P}/failures/{{signature:str}}", summary="Triage a failure signature (a known issue)", tags=TAGS,
          scope="write", body=TriageBody, responses={200: triage.ProjectFailure},
          description="{bug_ticket_key, bug_ticket_url, category, note}; category: product_bug, automation_bug, "
          "environment, to_investigate (ReportPortal's defect types). Replaces the triage (a field left out is "
          "cleared). Later failures with this signature carry the ticket on their result.")
async def put_triage(request: Request, project_id: FromPath[str], signature: FromPath[str]) -> triage.ProjectFailure:
    _, project = await visible_project(request, "write", project_id)
    body = await read_body(request, TriageBody)
    data = triage.TriageIn(body.bug_ticket_key, body.bug_ticket_url, body.category, body.note)
    return await services(request).db.write(triage.set_triage, project.id, signature, data)


@endpoint("POST", f"{_P}/failures/{{signature:str}}/merge", summary="Merge a signature into another (admin)",
          tags=TAGS, scope="admin", body=MergeIn, responses={200: triage.ProjectFailure},
          description="Its results, tests, branches and counts move to `into`; later failures with its hash count "
          "on `into`. Answers the target.")
async def merge_failure(request: Request, project_id: FromPath[str], signature: FromPath[str]) -> triage.ProjectFailure:
    _, project = await visible_project(request, "admin", project_id)
    body = await read_body(request, MergeIn)
    return await services(request).db.write(triage.merge, project.id, signature, body.into)


@endpoint("GET", f"{_P}/signature-rules", summary="The project's mask rules for failure signatures", tags=TAGS,
          scope="read", responses={200: RuleList})
async def list_rules(request: Request, project_id: FromPath[str]) -> RuleList:
    _, project = await visible_project(request, "read", project_id)
    return RuleList(await services(request).db.read(triage.list_rules, project.id))


@endpoint("POST", f"{_P}/signature-rules", summary="Add a mask rule (admin)", tags=TAGS, scope="admin", body=RuleIn,
          responses={201: triage.Rule},
          description="A Python regular expression; its matches in messages and stacks become <masked> before the "
          "signature is computed, for failures ingested from now on.")
async def add_rule(request: Request, project_id: FromPath[str]) -> Response:
    _, project = await visible_project(request, "admin", project_id)
    body = await read_body(request, RuleIn)
    rule = await services(request).db.write(triage.add_rule, project.id, body.pattern, body.note)
    return Response(content=msgspec.to_builtins(rule), status_code=201)


@endpoint("DELETE", f"{_P}/signature-rules/{{rule_id:str}}", summary="Delete a mask rule (admin)", tags=TAGS,
          scope="admin", responses={200: RuleDeleted})
async def delete_rule(request: Request, project_id: FromPath[str], rule_id: FromPath[str]) -> RuleDeleted:
    _, project = await visible_project(request, "admin", project_id)
    await services(request).db.write(triage.delete_rule, project.id, rule_id)
    return RuleDeleted(rule_id)


@endpoint("GET", "/api/v1/runs/{run_id:str}/compare", summary="Compare a run with a base run", tags=TAGS,
          scope="read", query=CompareQuery, responses={200: compare.RunComparison},
          description="`base`: a run id or short id of the same project; default: the previous finished run of the "
          "same branch. Newly failing, fixed, still failing, new and removed tests, the largest duration changes.")
async def compare_runs(request: Request, run_id: FromPath[str]) -> compare.RunComparison:
    _, run = await visible_run(request, "read", run_id)
    q = read_query(request, CompareQuery)
    return await services(request).db.read(compare.compare, run.project_id, run.id, q.base)


@endpoint("GET", f"{_P}/quarantine-audit", summary="Who quarantined or released which test, and why", tags=TAGS,
          scope="read", query=AuditQuery, responses={200: AuditList})
async def quarantine_audit(request: Request, project_id: FromPath[str]) -> AuditList:
    _, project = await visible_project(request, "read", project_id)
    q = read_query(request, AuditQuery)
    return AuditList(await services(request).db.read(quarantine.audit_log, project.id, q.limit))


HANDLERS = [
    run_failures, project_failures, get_failure, put_triage, merge_failure, list_rules, add_rule, delete_rule,
    compare_runs, quarantine_audit,
]
