""".NET TRX (Visual Studio Test Results: MSTest, xUnit and NUnit through VSTest/``dotnet test``).

Proven on the TRX fixtures kept by dorny/test-reporter (MSTest, xUnit v3, FluentValidation's
1.1 MB run, SilentNotes). ``Results/UnitTestResult`` holds outcomes; ``TestDefinitions/UnitTest``
maps a ``testId`` to its class (``TestMethod/@className``) and usually comes *after* the results,
so results are collected first and joined at the end.

Outcome -> status: Passed/PassedButRunAborted/Warning -> PASSED; Failed/Timeout/Aborted ->
FAILED; Error -> BROKEN; NotExecuted/Inconclusive/Pending/NotRunnable/Disconnected -> SKIPPED.
xUnit reports fixture teardown failures as pseudo-tests named ``[Test Class Cleanup Failure (…)]``
(also Collection/Assembly): they are class-level errors, hence BROKEN.
Data-driven rows (``InnerResults``) are separate results. ``duration`` is a TimeSpan.
"""

from __future__ import annotations

from pathlib import Path

from .model import ParsedResult, ReportAttachment
from .normalize import BROKEN, FAILED, PASSED, SKIPPED, UNKNOWN, attempt, build, timespan_to_ms
from .xmlsource import iterparse, local

_FIXTURE_FAILURE_PREFIXES = ("[Test Class Cleanup Failure", "[Test Collection Cleanup Failure",
                             "[Test Assembly Cleanup Failure", "[Test Class Setup Failure")
_OUTCOMES = {
    "passed": PASSED, "passedbutrunaborted": PASSED, "warning": PASSED, "completed": PASSED,
    "failed": FAILED, "timeout": FAILED, "aborted": FAILED,
    "error": BROKEN,
    "notexecuted": SKIPPED, "inconclusive": SKIPPED, "pending": SKIPPED,
    "notrunnable": SKIPPED, "disconnected": SKIPPED,
}


def parse(path: Path) -> list[ParsedResult]:
    pending: list[tuple[str, dict]] = []  # (testId, fields) in report order
    classes: dict[str, str] = {}
    depth_inner = 0
    for event, elem in iterparse(path):
        tag = local(elem.tag)
        if tag == "InnerResults":
            depth_inner += 1 if event == "start" else -1
            continue
        if event != "end":
            continue
        if tag == "UnitTestResult":
            # A row with InnerResults only summarises its data rows, which are reported on their own.
            if depth_inner > 0 or elem.find("./{*}InnerResults") is None:
                pending.append((elem.get("testId") or "", _result_fields(elem, path)))
            if depth_inner == 0:
                elem.clear()
        elif tag == "UnitTest":
            method = elem.find("./{*}TestMethod")
            if method is not None and method.get("className"):
                classes[elem.get("id") or ""] = method.get("className") or ""
            elem.clear()
    results = []
    for test_id, fields in pending:
        class_name = classes.get(test_id, "")
        title = fields.pop("title")
        # testName is often "Namespace.Class.Method"; keep only what the class does not say.
        if class_name and title.startswith(class_name + "."):
            title = title[len(class_name) + 1:]
        results.append(build(title, [fields.pop("attempt")], suite_path=[class_name] if class_name else [], **fields))
    return results


def _result_fields(elem, path: Path) -> dict:
    outcome = (elem.get("outcome") or "").lower()
    status = _OUTCOMES.get(outcome, UNKNOWN)
    if status == FAILED and (elem.get("testName") or "").startswith(_FIXTURE_FAILURE_PREFIXES):
        status = BROKEN
    message = stack = stdout = stderr = None
    attachments = []
    output = elem.find("./{*}Output")
    if output is not None:
        stdout = _text(output.find("./{*}StdOut"))
        stderr = _text(output.find("./{*}StdErr"))
        info = output.find("./{*}ErrorInfo")
        if info is not None:
            message = _text(info.find("./{*}Message"))
            stack = _text(info.find("./{*}StackTrace"))
    for item in elem.iterfind(".//{*}ResultFiles/{*}ResultFile"):
        raw = item.get("path")
        if raw:
            attachments.append(ReportAttachment(name=Path(raw).name, path=str(path.parent / raw)))
    if status == SKIPPED and not message and stdout:
        message = stdout.strip().splitlines()[0] if stdout.strip() else None
    return {
        "title": elem.get("testName") or "(unnamed test)",
        "attempt": attempt(status, timespan_to_ms(elem.get("duration")), message, stack),
        "stdout": stdout,
        "stderr": stderr,
        "attachments": attachments,
    }


def _text(elem) -> str | None:
    return elem.text if elem is not None else None
