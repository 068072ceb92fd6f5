"""NUnit 3 result XML (``<test-run>``) and the older NUnit 2 format (``<test-results>``).

NUnit 3: ``test-case/@result`` Passed -> PASSED, Failed -> FAILED (BROKEN when ``label`` is
Error, Invalid or Cancelled: an exception outside an assertion, as NUnit's own summary separates
"errors" from "failures"), Skipped/Inconclusive -> SKIPPED, Warning -> PASSED.
A test-case failing with ``site="Parent"`` failed because its fixture's OneTimeSetUp did: a
class-level setup error, hence BROKEN (INDEX.md's *error* category).
NUnit 2: ``result`` Success -> PASSED, Failure -> FAILED, Error -> BROKEN,
Ignored/Skipped/NotRunnable/Inconclusive (or ``executed="False"``) -> SKIPPED. NUnit 2.0-2.4
files (and tools imitating them) write no ``result``: then ``executed="False"`` is SKIPPED,
``success="False"`` or a ``<failure>`` child is FAILED, ``success="True"`` is PASSED.
NUnit 3 files rooted at ``<test-suite>`` (NUnitLite, the engine's ``TestResult.ToXml``, Unity's
test runner export) hold the same elements without the ``<test-run>`` wrapper.
Suite path = enclosing test-suite names below the assembly (namespaces, fixture, parameterized
method); the file is streamed and each test-case dropped once read.
"""

from __future__ import annotations

from pathlib import Path

from .model import ParsedResult
from .normalize import BROKEN, FAILED, PASSED, SKIPPED, UNKNOWN, attempt, build, seconds_to_ms
from .xmlsource import iterparse, local

_V3 = {"passed": PASSED, "failed": FAILED, "skipped": SKIPPED, "inconclusive": SKIPPED, "warning": PASSED}
_V2 = {
    "success": PASSED, "failure": FAILED, "error": BROKEN, "ignored": SKIPPED, "skipped": SKIPPED,
    "notrunnable": SKIPPED, "inconclusive": SKIPPED, "cancelled": FAILED,
}
_ERROR_LABELS = {"error", "invalid", "cancelled"}


def parse(path: Path) -> list[ParsedResult]:
    results: list[ParsedResult] = []
    suites: list[tuple[str, str]] = []  # (type, name)
    stack = []
    for event, elem in iterparse(path):
        tag = local(elem.tag)
        if event == "start":
            if tag == "test-suite":
                suites.append((elem.get("type") or "", elem.get("name") or ""))
            stack.append(elem)
            continue
        stack.pop()
        if tag == "test-case":
            results.append(_case(elem, [n for t, n in suites if t.lower() != "assembly" and n]))
            if stack:
                stack[-1].remove(elem)
        elif tag == "test-suite":
            suites.pop()
            if stack:
                stack[-1].remove(elem)
    return results


def _case(elem, suite_path: list[str]) -> ParsedResult:
    result = (elem.get("result") or "").lower()
    if result in _V3:
        status = _V3[result]
        label = (elem.get("label") or "").lower()
        if status == FAILED and (label in _ERROR_LABELS or (elem.get("site") or "").lower() == "parent"):
            status = BROKEN
    elif result:
        status = _V2.get(result, UNKNOWN)
        if elem.get("executed") == "False":
            status = SKIPPED
    else:
        status = _without_result(elem)
    message = stack_trace = None
    failure = elem.find("failure")
    if failure is not None:
        message = _text(failure.find("message"))
        stack_trace = _text(failure.find("stack-trace"))
    reason = elem.find("reason")
    if message is None and reason is not None:
        message = _text(reason.find("message"))
    duration = seconds_to_ms(elem.get("duration") or elem.get("time"))
    name = elem.get("name") or elem.get("fullname") or "(unnamed test)"
    if "." in name and elem.get("methodname") is None and suite_path and name.startswith(suite_path[-1] + "."):
        name = name[len(suite_path[-1]) + 1:]  # NUnit 2 names are fully qualified
    properties = [(p.get("name") or "", p.get("value") or "") for p in elem.iterfind("properties/property")]
    categories = [v for k, v in properties if k.lower() == "category"]
    return build(
        name,
        [attempt(status, duration, message, stack_trace)],
        suite_path=suite_path,
        stdout=_text(elem.find("output")),
        tags=categories,
        properties=properties,
    )


def _without_result(elem) -> str:
    executed = (elem.get("executed") or "").lower()
    success = (elem.get("success") or "").lower()
    if executed == "false":
        return SKIPPED
    if success == "false" or elem.find("failure") is not None:
        return FAILED
    if success == "true" or executed == "true":
        return PASSED
    return UNKNOWN


def _text(elem) -> str | None:
    return elem.text if elem is not None else None
