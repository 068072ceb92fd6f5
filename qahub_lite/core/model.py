"""Canonical records that every way in is translated into before the one ingest path.

Dialects (api/*) and tools (upload, agent, pytest plugin) build these; `core.ingest` stores
them. Fields are already validated and statuses already canonical when they get here.
"""

from __future__ import annotations

import msgspec


class AttemptRecord(msgspec.Struct, omit_defaults=True):
    status: str
    duration_ms: int | None = None
    error_message: str | None = None


class ResultRecord(msgspec.Struct, kw_only=True):
    """One test's outcome in a run. Linked by `test_case_code`/`test_case_id`, or unlinked
    and identified by (`suite_path`, `title`); in both cases plus `variant` (core/identity.py)."""

    status: str
    test_case_code: str | None = None
    test_case_id: str | None = None
    title: str | None = None
    suite_path: str = ""
    flaky: bool = False
    attempts: int = 1
    previous_attempts: list[AttemptRecord] = []
    duration_ms: int | None = None
    error_message: str | None = None
    error_stack: str | None = None
    comment: str | None = None
    bug_ticket_key: str | None = None
    bug_ticket_url: str | None = None
    framework: str | None = None
    file: str | None = None
    line: int | None = None
    stdout: str | None = None
    stderr: str | None = None
    executed_at: int | None = None  # epoch ms
    variant: str = ""
    tags: list[str] = []


class CiContext(msgspec.Struct, kw_only=True, omit_defaults=True):
    branch: str | None = None
    commit_sha: str | None = None
    pr_number: str | None = None
    pr_url: str | None = None
    repository: str | None = None
    ci_provider: str | None = None
    build_url: str | None = None


class RunRecord(msgspec.Struct, kw_only=True):
    """A run to create. `status` COMPLETED for a finished upload, RUNNING while chunks follow,
    PENDING for triggered work an agent has yet to start."""

    project_id: str
    name: str
    source: str
    status: str = "COMPLETED"
    environment: str | None = None
    framework: str | None = None
    ci: CiContext = msgspec.field(default_factory=CiContext)
    started_at: int | None = None
    duration_ms: int | None = None
    extra: dict | None = None


class ItemError(msgspec.Struct):
    """One rejected item of a bulk body (seed 000's 207 `errors[]`)."""

    index: int
    error: str


class IngestOutcome(msgspec.Struct):
    run_id: str
    short_id: str
    accepted: int
    rejected: int
    errors: list[ItemError]
    result_ids: list[int] = []
