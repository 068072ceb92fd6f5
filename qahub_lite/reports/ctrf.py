"""CTRF JSON, the Common Test Report Format (https://ctrf.io), proven on
jest-ctrf-json-reporter 0.0.11, mocha-ctrf-json-reporter 0.0.11 and
playwright-ctrf-json-reporter 0.0.29.

``results.tests[]`` is flat. Status: passed -> PASSED, failed -> FAILED,
skipped/pending -> SKIPPED, other -> by ``rawStatus`` (Jest's ``todo`` -> SKIPPED), else UNKNOWN.
``flaky: true`` (passed after ``retries`` failed attempts) -> PASSED + flaky; the failed attempts
come from ``retryAttempts`` when the reporter wrote them, else are recorded without detail.
``suite`` ("project > file > describe") is split into the suite path; messages lose ANSI codes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .jsonsource import load
from .model import Attempt, ParsedResult, ReportAttachment
from .normalize import BROKEN, FAILED, PASSED, SKIPPED, UNKNOWN, as_int, attempt, build, ms

_STATUSES = {"passed": PASSED, "failed": FAILED, "skipped": SKIPPED, "pending": SKIPPED}
_RAW = {
    "todo": SKIPPED, "disabled": SKIPPED, "pending": SKIPPED, "skipped": SKIPPED,
    "timedOut": FAILED, "interrupted": FAILED, "error": BROKEN, "passed": PASSED, "failed": FAILED,
}


def parse(path: Path) -> list[ParsedResult]:
    doc = load(path)
    results_obj = doc.get("results") or {}
    base = path.parent
    return [_test(test, base) for test in results_obj.get("tests") or []]


def _test(test: dict[str, Any], base: Path) -> ParsedResult:
    raw_status = test.get("status") or ""
    status = _STATUSES.get(raw_status) or _RAW.get(test.get("rawStatus") or "", UNKNOWN)
    final = attempt(status, ms(test.get("duration")), test.get("message"), test.get("trace"))
    attempts: list[Attempt] = []
    for retry in test.get("retryAttempts") or []:
        if not isinstance(retry, dict):
            continue
        retry_status = _STATUSES.get(retry.get("status") or "") or _RAW.get(retry.get("status") or "", FAILED)
        attempts.append(attempt(retry_status, ms(retry.get("duration")), retry.get("message"), retry.get("trace")))
    retries = as_int(test.get("retries")) or 0
    if attempts and len(attempts) == retries + 1:
        attempts = attempts[:-1]  # some reporters include the final attempt in retryAttempts
    if not attempts and retries > 0:
        attempts = [Attempt(status=FAILED)] * retries
    suite = test.get("suite")
    if isinstance(suite, list):
        suite_path = [str(s) for s in suite]
    elif isinstance(suite, str) and suite:
        suite_path = [part.strip() for part in suite.split(" > ")]
    else:
        suite_path = []
    extra = test.get("extra") if isinstance(test.get("extra"), dict) else {}
    annotations = [(a.get("type") or "", a.get("description")) for a in extra.get("annotations") or []
                   if isinstance(a, dict)]
    attachments = []
    for item in test.get("attachments") or []:
        if isinstance(item, dict) and item.get("path"):
            raw = item["path"]
            attachments.append(ReportAttachment(
                name=item.get("name") or os.path.basename(raw),
                path=raw if os.path.isabs(raw) or "://" in raw else os.path.normpath(base / raw),
                content_type=item.get("contentType"),
            ))
    flaky = bool(test.get("flaky")) and status == PASSED
    return build(
        test.get("name") or "(untitled)",
        [*attempts, final],
        suite_path=suite_path,
        file=test.get("filePath"),
        line=as_int(test.get("line")),
        stdout="".join(s for s in test.get("stdout") or [] if isinstance(s, str)),
        stderr="".join(s for s in test.get("stderr") or [] if isinstance(s, str)),
        tags=[t for t in test.get("tags") or [] if isinstance(t, str)],
        annotations=annotations,
        attachments=attachments,
        status=status,
        flaky=flaky or None,
    )
