"""The canonical record every report parser produces.

Every format (JUnit XML dialects, Playwright JSON, Jest JSON, TAP, TRX, ...) is read into a
stream of `ParsedResult`. `qahub upload`, the agent and the pytest plugin turn these records into
the native ingest payload; nothing downstream knows which format a result came from.

Statuses are the canonical ones of the hub (see `qahub_lite.core.status`):
PASSED, FAILED, BROKEN, SKIPPED, UNKNOWN. A test that failed and then passed on a retry is
`status="PASSED"` with `flaky=True`, and keeps every attempt in `attempts`.
Mapping of the corpus' normalized categories: passed -> PASSED, failed -> FAILED,
error -> BROKEN, skipped -> SKIPPED, flaky -> PASSED + flaky.
"""

from __future__ import annotations

import msgspec

# Captured output is bounded so that one chatty test cannot blow up a payload.
MAX_OUTPUT_CHARS = 64 * 1024


class Attempt(msgspec.Struct, omit_defaults=True):
    """One execution of a test; retries give several, oldest first."""

    status: str
    duration_ms: int | None = None
    error_message: str | None = None
    error_stack: str | None = None


class ReportAttachment(msgspec.Struct, omit_defaults=True):
    """A file a report points at (screenshot, video, trace). `path` is as resolved
    against the report's folder; it may not exist (reports often outlive their files)."""

    name: str
    path: str
    content_type: str | None = None


class ParsedResult(msgspec.Struct, omit_defaults=True):
    title: str
    status: str
    suite_path: list[str] = []
    flaky: bool = False
    duration_ms: int | None = None
    error_message: str | None = None
    error_stack: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    file: str | None = None
    line: int | None = None
    attempts: list[Attempt] = []
    tags: list[str] = []
    # From an @qa-hub('TC-042') tag, a pytest marker or an annotation.
    test_case_code: str | None = None
    attachments: list[ReportAttachment] = []
    # Executions of one test meant to be distinct (a Playwright project, parameters); set by
    # reports/identity.py, which also puts the location first in `suite_path`.
    variant: str = ""


class ParsedReport(msgspec.Struct):
    format: str  # the detected or requested format name, e.g. "junit", "playwright-json"
    source: str  # the file or folder it came from
    results: list[ParsedResult]
    # The tool that wrote it ("pytest", "jest", "vitest", "surefire"...) where the file says so,
    # else the format's name: the run's framework label (see framework.py). Not the format:
    # one format has many writers.
    framework: str = ""


class ReportError(Exception):
    """A report that cannot be read. The message names the file (and line where known)."""
