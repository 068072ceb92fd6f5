"""Shapes that cross the wire between the server and its clients (the agent, the uploader): what
an agent gets when it claims a job, and the statuses a QA Hub upload may carry.

A leaf: it imports nothing of the project, so that the HTTP-only clients (agent/, payload.py)
and the server (core/jobs.py, core/status.py) share one definition without the clients pulling
in the server's storage and rules (tests/test_layers.py holds both sides to it).
"""

from __future__ import annotations

import msgspec

# QA Hub (native, seeds 000/001) accepts exactly these on input.
QAHUB_INPUT = ("PASSED", "FAILED", "BROKEN", "SKIPPED", "UNKNOWN")


class TriggerOptions(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    """How the tests are to be run, handed to the agent's command as environment variables."""

    browser: str = "chromium"
    viewport: str = "desktop"
    viewport_width: int | None = None
    viewport_height: int | None = None


class JobTest(msgspec.Struct):
    execution_id: str
    test_case_id: str | None
    code: str | None
    title: str
    suite_path: str
    grep: str | None
    file: str | None


class JobCi(msgspec.Struct, omit_defaults=True):
    source: str | None = None
    branch: str | None = None
    sha: str | None = None
    pr_number: str | None = None
    pr_url: str | None = None
    repository: str | None = None


class ClaimedJob(msgspec.Struct):
    """What an agent gets: the tests to run and how, never a command."""

    id: str
    lease_token: str
    lease_s: int
    heartbeat_s: int
    run_id: str
    run_short_id: str
    project_id: str
    framework: str
    options: TriggerOptions
    ci: JobCi
    tests: list[JobTest]
