"""One run in the report formats other tools read: JUnit XML (GitLab's unit-test reports,
Jenkins, anything that reads Surefire) and CTRF JSON (https://ctrf.io). CSV and NDJSON of one
run are the bulk formats filtered to it (export_bulk.py).

Attempts and flaky marks are kept where the format can hold them:
- JUnit: a flaky pass carries its failed attempts as Surefire's `<flakyFailure>`/`<flakyError>`;
  a test that kept failing carries its earlier attempts as `<rerunFailure>`/`<rerunError>`
  (what Maven Surefire writes with rerunFailingTestsCount, and Jenkins shows).
- CTRF: `flaky`, `retries` and `retryAttempts` (the earlier attempts; the final one is the test).

Status mapping (docs/export.md): FAILED and TIMEOUT are failures, BROKEN an error, SKIPPED and
CANCELED skipped; UNKNOWN, PENDING and RUNNING have no JUnit outcome and are written as skipped
with a message naming the status (CTRF: `other` / `pending`, with `rawStatus`).
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape, quoteattr

from collections.abc import AsyncIterator

import msgspec

from .export_rows import DetailRow, iter_details, run_totals
from .model import AttemptRecord
from .runs import Run

SUITE_SEPARATOR = " › "  # how the native API joins a suite path (payload.py)
_attempts = msgspec.json.Decoder(list[AttemptRecord])
_json = msgspec.json.Encoder()
# XML 1.0 cannot hold these at all, not even escaped; test output often has ANSI escapes.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_FAILURE = frozenset({"FAILED", "TIMEOUT"})
_ERROR = frozenset({"BROKEN"})
_SKIPPED = frozenset({"SKIPPED", "CANCELED", "UNKNOWN", "PENDING", "RUNNING"})


def _text(value: str | None) -> str:
    return escape(_NOT_XML.sub("\ufffd", value or ""))


def _attr(value: str | None) -> str:
    return quoteattr(_NOT_XML.sub("\ufffd", value or ""))


def _seconds(ms: int | None) -> str:
    return f"{(ms or 0) / 1000:.3f}"


def earlier_attempts(detail: DetailRow) -> list[AttemptRecord]:
    """The attempts before the final one: those logged, padded to the stored count (a sender
    may give a count without details)."""
    logged = _attempts.decode(detail.attempt_log) if detail.attempt_log else []
    missing = max(0, detail.row.attempts - 1 - len(logged))
    fill = "FAILED" if detail.row.flaky or detail.row.status in _FAILURE | _ERROR else detail.row.status
    return logged + [AttemptRecord(fill)] * missing


def _counts(by_status: dict[str, int]) -> tuple[int, int, int, int]:
    failures = sum(n for status, n in by_status.items() if status in _FAILURE)
    errors = sum(n for status, n in by_status.items() if status in _ERROR)
    skipped = sum(n for status, n in by_status.items() if status in _SKIPPED)
    return sum(by_status.values()), failures, errors, skipped


def _testcase(d: DetailRow) -> str:
    r = d.row
    attrs = f"name={_attr(r.title)} classname={_attr(r.suite or r.title)} time={_attr(_seconds(r.duration_ms))}"
    if r.file:
        attrs += f" file={_attr(r.file)}"
    if r.line is not None:
        attrs += f" line=\"{int(r.line)}\""
    parts = []
    if r.test_case_code:
        parts.append(f"<properties><property name=\"test_case_code\" value={_attr(r.test_case_code)}/></properties>")
    if r.status in _FAILURE or r.status in _ERROR:
        tag = "failure" if r.status in _FAILURE else "error"
        kind = f" type={_attr(r.status.lower())}" if r.status == "TIMEOUT" else ""
        parts.append(f"<{tag} message={_attr(r.error_message)}{kind}>{_text(d.error_stack or r.error_message)}</{tag}>")
    elif r.status in _SKIPPED:
        message = r.error_message if r.status == "SKIPPED" else f"not run to an outcome: {r.status}"
        parts.append(f"<skipped message={_attr(message)}/>")
    if r.status == "PASSED" or r.status in _FAILURE | _ERROR:
        kind = "flaky" if r.status == "PASSED" else "rerun"
        for attempt in earlier_attempts(d):
            if attempt.status not in _FAILURE | _ERROR:
                continue
            tag = f"{kind}{'Error' if attempt.status in _ERROR else 'Failure'}"
            parts.append(f"<{tag} message={_attr(attempt.error_message)} type={_attr(attempt.status.lower())}/>")
    if d.stdout:
        parts.append(f"<system-out>{_text(d.stdout)}</system-out>")
    if d.stderr:
        parts.append(f"<system-err>{_text(d.stderr)}</system-err>")
    if not parts:
        return f"    <testcase {attrs}/>\n"
    return f"    <testcase {attrs}>{''.join(parts)}</testcase>\n"


async def junit_xml(db, run: Run) -> AsyncIterator[bytes]:
    """JUnit XML, streamed chunk by chunk: a <testsuite> per suite path within each chunk of
    results (a suite that spans chunks appears as several <testsuite> elements of the same
    name, which JUnit readers add up), the totals from one aggregate query up front."""
    totals = await run_totals(db, run.id)
    tests, failures, errors, skipped = _counts(totals.by_status)
    yield (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<testsuites name={_attr(run.name)} tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" "
        f"skipped=\"{skipped}\" time={_attr(_seconds(run.duration_ms or totals.duration_ms))}"
        + (f" timestamp={_attr(run.created_at)}" if run.created_at else "") + ">\n"
    ).encode()
    async for chunk in iter_details(db, run.id):
        suites: dict[str, list[DetailRow]] = {}
        for d in chunk:
            suites.setdefault(d.row.suite, []).append(d)
        out = []
        for name, members in suites.items():
            by_status: dict[str, int] = {}
            for d in members:
                by_status[d.row.status] = by_status.get(d.row.status, 0) + 1
            t, f, e, k = _counts(by_status)
            suite_ms = sum(d.row.duration_ms or 0 for d in members)
            out.append(
                f"  <testsuite name={_attr(name or run.name)} tests=\"{t}\" failures=\"{f}\" errors=\"{e}\" "
                f"skipped=\"{k}\" time={_attr(_seconds(suite_ms))}>\n"
            )
            out.extend(_testcase(d) for d in members)
            out.append("  </testsuite>\n")
        yield "".join(out).encode()
    yield b"</testsuites>\n"


# canonical -> CTRF status (its enum: passed failed skipped pending other)
CTRF_STATUS = {
    "PASSED": "passed", "FAILED": "failed", "BROKEN": "failed", "TIMEOUT": "failed", "SKIPPED": "skipped",
    "CANCELED": "skipped", "PENDING": "pending", "RUNNING": "pending", "UNKNOWN": "other",
}
CTRF_SPEC_VERSION = "1.0.0"


def _lines(text: str | None) -> list[str] | None:
    return text.splitlines() if text else None


def _ctrf_test(d: DetailRow) -> dict:
    r = d.row
    test: dict = {
        "name": r.title or "(unnamed test)", "status": CTRF_STATUS.get(r.status, "other"),
        "duration": int(r.duration_ms or 0), "rawStatus": r.status,
    }
    if r.suite:
        test["suite"] = r.suite.split(SUITE_SEPARATOR)
    if r.error_message:
        test["message"] = r.error_message
    if d.error_stack:
        test["trace"] = d.error_stack
    if r.file:
        test["filePath"] = r.file
    if r.line is not None:
        test["line"] = int(r.line)
    earlier = earlier_attempts(d)
    if earlier:
        test["retries"] = len(earlier)
        test["retryAttempts"] = [
            {"attempt": i, "status": CTRF_STATUS.get(a.status, "other"), **({"duration": a.duration_ms}
             if a.duration_ms is not None else {}), **({"message": a.error_message} if a.error_message else {})}
            for i, a in enumerate(earlier, start=1)
        ]
    test["flaky"] = bool(r.flaky)
    for key, text in (("stdout", d.stdout), ("stderr", d.stderr)):
        if _lines(text):
            test[key] = _lines(text)
    extra = {"result_id": str(r.result_id), "test_id": r.test_id}
    if r.test_case_code:
        extra["test_case_code"] = r.test_case_code
    test["extra"] = extra
    return test


async def ctrf(db, run: Run, *, started_ms: int, stopped_ms: int, url: str) -> AsyncIterator[bytes]:
    """CTRF JSON, streamed: the document up to `"tests":[` from the totals, then the tests
    chunk by chunk. `tests` is the last key of `results` and `results` the document's last."""
    totals = await run_totals(db, run.id)
    summary = dict.fromkeys(("passed", "failed", "skipped", "pending", "other"), 0)
    for status, n in totals.by_status.items():
        summary[CTRF_STATUS.get(status, "other")] += n
    summary = {
        "tests": sum(totals.by_status.values()), **summary, "flaky": totals.flaky, "suites": totals.suites,
        "start": started_ms, "stop": stopped_ms, "duration": max(0, stopped_ms - started_ms),
    }
    environment = {"reportName": run.name, "extra": {"run_id": run.id, "short_id": run.short_id, "url": url}}
    for key, value in (("branchName", run.ci.branch), ("commit", run.ci.commit), ("buildUrl", run.ci.build_url),
                       ("repositoryName", run.ci.repository), ("testEnvironment", run.environment)):
        if value:
            environment[key] = value
    head = _json.encode({
        "reportFormat": "CTRF", "specVersion": CTRF_SPEC_VERSION, "reportId": run.id, "timestamp": run.created_at,
        "generatedBy": "qahub-lite",
        "results": {"tool": {"name": run.framework or "qahub-lite"}, "summary": summary, "environment": environment,
                    "tests": []},
    })
    if not head.endswith(b"[]}}"):  # the splice below relies on the key order written above
        raise RuntimeError("CTRF head does not end with its empty tests list")
    yield head[:-3]
    first = True
    async for chunk in iter_details(db, run.id):
        items = b",".join(_json.encode(_ctrf_test(d)) for d in chunk)
        yield items if first else b"," + items
        first = False
    yield b"]}}"
