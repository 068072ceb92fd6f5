"""Canonical result statuses and every dialect's mapping, in one table (DESIGN.md).

Canonical outcome statuses: PASSED FAILED BROKEN SKIPPED UNKNOWN; lifecycle statuses of
executed (triggered) tests: PENDING RUNNING TIMEOUT CANCELED. Flaky is a flag on PASSED.
"""

from __future__ import annotations

from ..wire import QAHUB_INPUT  # noqa: F401 - shared with the uploader (payload.py)

OUTCOMES = ("PASSED", "FAILED", "BROKEN", "SKIPPED", "UNKNOWN")
LIFECYCLE = ("PENDING", "RUNNING", "TIMEOUT", "CANCELED")
ALL = OUTCOMES + LIFECYCLE
# Result statuses that are a failure: they fail a run's verdict, and an attempt with one
# followed by a pass makes the result flaky.
FAILURE_STATUSES = frozenset({"FAILED", "BROKEN", "TIMEOUT"})
# Statuses that mean the test has not finished yet.
UNFINISHED = frozenset({"PENDING", "RUNNING"})

# Run lifecycle.
RUN_STATUSES = ("PENDING", "RUNNING", "COMPLETED", "CANCELED", "ERROR")
RUN_FINISHED = frozenset({"COMPLETED", "CANCELED", "ERROR"})

# QualityPilot case status -> (canonical, flaky)
QUALITYPILOT_IN = {
    "passed": ("PASSED", False),
    "failed": ("FAILED", False),
    "skipped": ("SKIPPED", False),
    "flaky": ("PASSED", True),
}

# canonical -> Qualigate status (seed 004). SKIPPED has no Qualigate value: a skipped test
# did not fail, and Qualigate's polling scripts treat only `passed` as success, so a skipped
# test is reported as `passed` (its result's error_message says it was skipped).
QUALIGATE_OUT = {
    "PASSED": "passed",
    "FAILED": "failed",
    "BROKEN": "error",
    "SKIPPED": "passed",
    "UNKNOWN": "error",
    "TIMEOUT": "timeout",
    "CANCELED": "canceled",
    "PENDING": "pending",
    "RUNNING": "running",
}
# Qualigate's statuses of a test that did not pass, derived from the mapping above.
QUALIGATE_FAILED_STATES = frozenset(QUALIGATE_OUT[s] for s in ("FAILED", "BROKEN", "UNKNOWN", "TIMEOUT"))

# canonical -> QA.tech test case result (seed 003); None while it has not finished.
QATECH_RESULT = {
    "PASSED": "PASSED",
    "FAILED": "FAILED",
    "BROKEN": "FAILED",
    "SKIPPED": "SKIPPED",
    "UNKNOWN": "FAILED",
    "TIMEOUT": "FAILED",
    "CANCELED": None,
    "PENDING": None,
    "RUNNING": None,
}

# canonical run status -> QA.tech run status
QATECH_RUN_STATUS = {
    "PENDING": "INITIATED",
    "RUNNING": "RUNNING",
    "COMPLETED": "COMPLETED",
    "ERROR": "ERROR",
    "CANCELED": "CANCELLED",
}

# canonical result status -> QA.tech test case `status` (seed 003 names no values for a case;
# these reuse its run vocabulary: a test that broke or timed out is an ERROR, not COMPLETED).
QATECH_CASE_STATUS = {
    "PASSED": "COMPLETED",
    "FAILED": "COMPLETED",
    "SKIPPED": "COMPLETED",
    "BROKEN": "ERROR",
    "UNKNOWN": "ERROR",
    "TIMEOUT": "ERROR",
    "CANCELED": "CANCELLED",
    "PENDING": "INITIATED",
    "RUNNING": "RUNNING",
}
# QA.tech `?testCases=failed`: "only failed/skipped/error test cases".
QATECH_FAILED_FILTER = ("FAILED", "BROKEN", "UNKNOWN", "TIMEOUT", "SKIPPED")
# What a rerun with {"failedOnly": true} runs again: every test whose QA.tech result is FAILED.
RERUN_FAILED = ("FAILED", "BROKEN", "UNKNOWN", "TIMEOUT")


def passed_after_failing(status: str, previous_statuses) -> bool:
    """The flaky rule, once: a final PASSED after an attempt that failed, broke or timed out."""
    return status == "PASSED" and any(p in FAILURE_STATUSES for p in previous_statuses)


def invalid_status_message(value: object) -> str:
    """Seed 000's wording: invalid status value: 'pass' (use PASSED)."""
    text = str(value)
    upper = text.upper()
    suggestion = None
    for status in QAHUB_INPUT:
        if upper == status or status.startswith(upper[:4]) and upper[:4]:
            suggestion = status
            break
    if suggestion is None:
        return f"invalid status value: {text!r} (use one of {', '.join(QAHUB_INPUT)})"
    return f"invalid status value: {text!r} (use {suggestion})"
