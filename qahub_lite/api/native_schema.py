"""Request and answer Structs of the native (QA Hub) API, seeds 000 and 001."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from ..core.identity import VARIANT_MAX
from ..core.library import Automation
from ..core.model import ItemError
from ..core.projects import CiConfig
from .bounds import DurationMs, Instant, SmallNumber, check_instants
from .routing import raw_items

Text = Annotated[str, msgspec.Meta(max_length=1000)]
LongText = Annotated[str, msgspec.Meta(max_length=1_000_000)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
# What to do with a result whose test_case_code names no test case: seed 000 rejects it (207);
# "unlink" keeps it as an unlinked result (by suite and title), so a tagged test whose case is
# not in the library yet is not lost.
UnknownCodes = Literal["reject", "unlink"]
# A variant tells executions of one test apart (parameters, browser, matrix label); a tag is
# a label such as `smoke`. Both are short labels, bounded like other names.
Variant = Annotated[str, msgspec.Meta(max_length=VARIANT_MAX)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
UNSET = msgspec.UNSET
Unset = msgspec.UnsetType


class ProjectIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    slug: Annotated[str, msgspec.Meta(max_length=60)] | None = None
    description: Text | None = None
    repo: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    default_branch: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] = "main"
    ci_config: CiConfig | None = None
    settings: dict | None = None


class ProjectPatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Name | Unset = UNSET
    description: Text | None | Unset = UNSET
    repo: Annotated[str, msgspec.Meta(max_length=200)] | None | Unset = UNSET
    default_branch: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | Unset = UNSET
    ci_config: CiConfig | None | Unset = UNSET
    settings: dict | None | Unset = UNSET


class SuiteIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    description: Text | None = None
    parent_id: str | None = None


class SuitePatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Name | Unset = UNSET
    description: Text | None | Unset = UNSET
    parent_id: str | None | Unset = UNSET


class TestCaseIn(msgspec.Struct, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    code: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    suite_id: str | None = None
    description: LongText | None = None
    automation: Automation | None = None


class TestCasePatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)] | Unset = UNSET
    code: Annotated[str, msgspec.Meta(max_length=64)] | Unset = UNSET
    suite_id: str | None | Unset = UNSET
    description: LongText | None | Unset = UNSET
    automation: Automation | None | Unset = UNSET


class CiIn(msgspec.Struct, forbid_unknown_fields=True):
    branch: Text | None = None
    commit: Text | None = None
    pr_number: Text | None = None
    pr_url: Text | None = None
    repository: Text | None = None
    provider: Text | None = None
    build_url: Text | None = None


class AttemptIn(msgspec.Struct):
    status: str
    duration_ms: DurationMs | None = None
    error_message: LongText | None = None


class ResultIn(msgspec.Struct):
    """One result (seed 001's input fields, plus the fields parsers fill: suite, flaky, attempts)."""

    status: str
    test_case_code: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    test_case_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    title: Text | None = None
    suite: Text | None = None
    comment: LongText | None = None
    bug_ticket_key: Text | None = None
    bug_ticket_url: Text | None = None
    duration_ms: DurationMs | None = None
    framework: Text | None = None
    error_message: LongText | None = None
    error_stack: LongText | None = None
    executed_at: Instant | None = None
    flaky: bool = False
    attempts: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1
    previous_attempts: Annotated[list[AttemptIn], msgspec.Meta(max_length=100)] = []
    file: Text | None = None
    line: SmallNumber | None = None
    stdout: LongText | None = None
    stderr: LongText | None = None
    # Executions of one test meant to be distinct each keep a result (docs/identity.md).
    variant: Variant | None = None
    tags: Annotated[list[Tag], msgspec.Meta(max_length=50)] = []

    def __post_init__(self) -> None:
        check_instants(self, "executed_at")


class IngestIn(msgspec.Struct):
    """Seed 000's body; `ci`, `status` and `duration_ms` are qahub-lite additions."""

    project_id: str
    results: list[msgspec.Raw]
    run_name: Text | None = None
    environment: Text | None = None
    framework: Text | None = None
    ci: CiIn | None = None
    # RUNNING keeps the run open for more chunks (POST /runs/{id}/results), then /finish.
    status: str = "COMPLETED"
    duration_ms: DurationMs | None = None
    # When the tests started (from the report); the time of the request when not given.
    started_at: Instant | None = None
    unknown_codes: UnknownCodes = "reject"

    def __post_init__(self) -> None:
        check_instants(self, "started_at")


class ResultsIn(msgspec.Struct):
    results: list[msgspec.Raw]
    unknown_codes: UnknownCodes = "reject"


class RunIn(msgspec.Struct, forbid_unknown_fields=True):
    project_id: str
    name: Text | None = None
    environment: Text | None = None
    framework: Text | None = None
    ci: CiIn | None = None


class IngestAnswer(msgspec.Struct):
    """201 and 207 body. On 207, `errors` lists each rejected item (seed 000)."""

    run_id: str
    short_id: str
    accepted: int
    rejected: int
    errors: list[ItemError]
    url: str
    # Accepted items whose stdout or stderr was longer than 64 KiB: stored cut to that length
    # (ending with "[truncated]"), one entry per cut field, so that a 201 never hides lost output.
    truncated: list[ItemError] = []


class FinishIn(msgspec.Struct, forbid_unknown_fields=True):
    status: str = "COMPLETED"


raw_items(IngestIn, ResultIn)
raw_items(ResultsIn, ResultIn)


class RunQuery(msgspec.Struct, forbid_unknown_fields=True):
    project_id: str | None = None
    branch: str | None = None
    environment: str | None = None
    status: str | None = None  # PENDING RUNNING COMPLETED CANCELED ERROR
    verdict: str | None = None  # PASSED FAILED SKIPPED
    source: str | None = None
    since: Instant | None = None
    until: Instant | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    cursor: str | None = None

    def __post_init__(self) -> None:
        check_instants(self, "since", "until")


class PageQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    cursor: str | None = None


class TestCaseQuery(msgspec.Struct, forbid_unknown_fields=True):
    suite_id: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    cursor: str | None = None


class CaseQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    cursor: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class ResultQuery(msgspec.Struct, forbid_unknown_fields=True):
    status: str | None = None  # comma-separated canonical statuses
    tag: Tag | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    cursor: str | None = None


class Deleted(msgspec.Struct):
    id: str
    deleted: bool = True
