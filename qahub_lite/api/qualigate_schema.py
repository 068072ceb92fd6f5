"""Request and answer Structs of the Qualigate dialect (seed 004), field for field."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from .bounds import SmallNumber

Text = Annotated[str, msgspec.Meta(max_length=1000)]
Id = Annotated[str, msgspec.Meta(max_length=64)]
Pixels = Annotated[int, msgspec.Meta(ge=1, le=20000)]


class TriggerContext(msgspec.Struct, forbid_unknown_fields=True):
    """CI metadata. The seed says every field is a string; a number is taken too (pr_number: 42),
    and an empty string (a workflow variable that was not set) counts as absent."""

    source: Text | None = None
    pr_number: Text | SmallNumber | None = None
    pr_url: Text | None = None
    sha: Text | None = None
    branch: Text | None = None
    repository: Text | None = None


class TriggerIn(msgspec.Struct, forbid_unknown_fields=True):
    test_case_id: Id | None = None
    test_suite_id: Id | None = None
    project_id: Id | None = None
    browser_type: Annotated[str, msgspec.Meta(min_length=1, max_length=50)] = msgspec.field(
        default="chromium", name="browserType"
    )
    viewport_preset: Literal["desktop", "tablet", "mobile"] = msgspec.field(default="desktop", name="viewportPreset")
    viewport_width: Pixels | None = msgspec.field(default=None, name="viewportWidth")
    viewport_height: Pixels | None = msgspec.field(default=None, name="viewportHeight")
    context: TriggerContext | None = None


class TestRunQueued(msgspec.Struct):
    success: bool
    test_run_id: str
    status: str
    message: str


class SuiteRunQueued(msgspec.Struct):
    success: bool
    suite_run_id: str
    test_count: int
    status: str
    message: str


class ProjectRunQueued(msgspec.Struct):
    success: bool
    test_run_ids: list[str]
    test_count: int
    status: str
    message: str


class StatusQuery(msgspec.Struct, forbid_unknown_fields=True):
    test_run_id: Id | None = None
    suite_run_id: Id | None = None


class TestRunStatus(msgspec.Struct):
    id: str
    status: str
    started_at: str | None
    completed_at: str | None
    duration_ms: int | None
    # qahub-lite does not see inside a test: a test run is one step.
    steps_completed: int
    steps_total: int
    error_message: str | None
    video_url: str | None
    # While the test waits: why no agent has taken it yet ("no agent serves framework X").
    message: str | None = None


class SuiteRunStatus(msgspec.Struct):
    id: str
    status: str
    started_at: str | None
    completed_at: str | None
    duration_ms: int | None
    total_tests: int
    passed_tests: int
    failed_tests: int
    # The run behind the id asked for (a project trigger's test_run_ids lead here too), and,
    # while it waits, why no agent has taken some of its tests ("no agent serves framework X").
    run_id: str | None = None
    message: str | None = None


class ResultsQuery(msgspec.Struct, forbid_unknown_fields=True):
    test_run_ids: Annotated[str, msgspec.Meta(max_length=20000)] | None = None
    suite_run_id: Id | None = None


class ResultItem(msgspec.Struct, omit_defaults=True, kw_only=True):
    test_run_id: str
    test_case_name: str
    status: str
    duration_ms: int | None
    error_message: str | None = None  # present when there is one (a test that did not pass)
    dashboard_url: str


class ResultsAnswer(msgspec.Struct):
    total_tests: int
    passed_tests: int
    failed_tests: int
    status: str
    results: list[ResultItem]


class SuiteResultsAnswer(msgspec.Struct):
    suite_run_id: str
    suite_name: str
    total_tests: int
    passed_tests: int
    failed_tests: int
    status: str
    results: list[ResultItem]


class CiConfigQuery(msgspec.Struct, forbid_unknown_fields=True):
    project_id: Id


class CiConfigOut(msgspec.Struct):
    provider: str | None
    trigger_on: list[str]
    branches: list[str]
    test_suite_id: str | None


class CiConfigAnswer(msgspec.Struct):
    project_id: str
    project_name: str
    ci_config: CiConfigOut
