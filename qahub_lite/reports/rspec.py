"""RSpec ``--format json`` (RSpec 3.x; proven on dorny/test-reporter's 3.13 fixtures).

``examples[]``: passed -> PASSED, failed -> FAILED, pending -> SKIPPED (RSpec's pending is
"not expected to pass yet": a skip in the hub's terms). Suite path = [spec file, example group
description]; the group description is ``full_description`` minus the example's own text.
``summary.errors_outside_of_examples_count`` (a spec file that failed to load) becomes one BROKEN
result carrying RSpec's ``messages``.
"""

from __future__ import annotations

from pathlib import Path

from .jsonsource import load
from .model import ParsedResult
from .normalize import BROKEN, FAILED, PASSED, SKIPPED, UNKNOWN, as_int, attempt, build, seconds_to_ms

_STATUSES = {"passed": PASSED, "failed": FAILED, "pending": SKIPPED}


def parse(path: Path) -> list[ParsedResult]:
    doc = load(path)
    results = []
    for example in doc.get("examples") or []:
        status = _STATUSES.get(example.get("status") or "", UNKNOWN)
        exception = example.get("exception") or {}
        message = exception.get("message")
        if exception.get("class") and message:
            message = f"{exception['class']}: {message}"
        backtrace = exception.get("backtrace") or []
        stack = "\n".join(backtrace) if isinstance(backtrace, list) else str(backtrace)
        if status == SKIPPED:
            message = example.get("pending_message") or message
        description = example.get("description") or ""
        full = example.get("full_description") or description
        group = full[: -len(description)].strip() if description and full.endswith(description) else ""
        file = example.get("file_path")
        results.append(build(
            description or full or example.get("id") or "(unnamed example)",
            [attempt(status, seconds_to_ms(example.get("run_time")), message, stack or None)],
            suite_path=[p for p in (file, group) if p],
            file=file,
            line=as_int(example.get("line_number")),
        ))
    summary = doc.get("summary") or {}
    outside = as_int(summary.get("errors_outside_of_examples_count")) or 0
    if outside:
        messages = "\n\n".join(m for m in doc.get("messages") or [] if isinstance(m, str))
        results.append(build("errors outside of examples", [attempt(
            BROKEN, None, f"{outside} error(s) occurred outside of examples (a spec file failed to load)",
            messages or None)]))
    return results
