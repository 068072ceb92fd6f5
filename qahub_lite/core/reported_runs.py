"""Runs a CI reporter posts whole, as a summary with (some of) its cases (QualityPilot, seed 002):
the project the run's repository names, the counts its summary gives, and the one write that
stores both with the cases.

The reporter names no project, only a repository, and its summary may cover more tests than the
cases it sends (a reporter that sends none, or cases cut at the cap): the run keeps the counts
that cover the most tests, so that its verdict is right either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from . import ingest, projects, runs
from .errors import NotFound
from .model import IngestOutcome, ResultRecord, RunRecord


def project_for_repo(
    conn, tenant_id: str, key_project_id: str | None, repo: str, *, create: bool
) -> projects.Project:
    """The tenant's project whose `repo` is `repo`. A key of the whole tenant (`key_project_id`
    None) creates it on first use, named after the repo, when `create` allows; a key limited to
    one project may name only that project's repo. Anything else is NotFound, worded the same
    whether the repo is another project's or nobody's."""
    project = projects.find_project_by_repo(conn, tenant_id, repo)
    if project is not None and key_project_id in (None, project.id):
        return project
    if project is None and key_project_id is None and create:
        return projects.create_project(conn, tenant_id, name=repo, repo=repo)
    raise NotFound(
        f"No project has repo {repo!r}: set it as a project's repo (PATCH /api/v1/projects/{{id}} "
        'with {"repo": ...}) or post with a write key of the whole tenant'
    )


def reconcile_counts(*, total: int, passed: int, failed: int, skipped: int, flaky: int) -> runs.RunCounts:
    """A reporter's summary as canonical run counts, where flaky tests are passes with a flag.

    Reporters disagree on where flaky tests go: QualityPilot's pytest reporter counts them apart
    from passed ones (total = passed + failed + skipped + flaky); seed 002's example counts them
    inside passed (142 = 140 + 2 with 1 flaky). When passed + failed + skipped + flaky fits in
    total, flaky ones were counted apart and are added to passed; otherwise they are already in
    it. Tests the summary does not place anywhere count as unknown."""
    if passed + failed + skipped + flaky <= total:
        passed += flaky
    placed = passed + failed + skipped
    total = max(total, placed)
    return runs.RunCounts(
        total=total, passed=passed, failed=failed, broken=0, skipped=skipped, unknown=total - placed, pending=0,
        flaky=min(flaky, passed),
    )


class ReportedRun(msgspec.Struct, kw_only=True):
    repo: str
    run: RunRecord  # its project_id is the repo's project, found (or made) when stored
    items: Sequence[tuple[int, ResultRecord]]  # (index in the payload, case)
    counts: runs.RunCounts  # what the summary says (reconcile_counts)


def store_reported_run(
    conn, tenant_id: str, key_project_id: str | None, reported: ReportedRun, *, create_projects: bool
) -> IngestOutcome:
    """Writer operation: the repo's project, the run with its cases, and the summary's counts
    where they cover more tests than the cases stored, all in one transaction (a project made
    on the way is rolled back with a run that fails to store).

    The reporter answers 202 or an error, with no list of refused items: a case whose
    @qa-hub('TC-…') tag names no test case is kept, unlinked, rather than lost, and two cases
    with one identity (name, suite, variant) are kept as attempts of one result rather than
    refused or overwritten."""
    project = project_for_repo(conn, tenant_id, key_project_id, reported.repo, create=create_projects)
    run = msgspec.structs.replace(reported.run, project_id=project.id)
    outcome = ingest.store_results(
        conn, tenant_id, reported.items, run=run, unlink_unknown_codes=True, duplicates="attempts",
    )
    runs.adopt_reported_counts(conn, outcome.run_id, reported.counts)
    return outcome
