"""xUnit.net XML (format v2, schema versions 1-3): ``xunit.console -xml``, the v3 in-process
runner's ``-xml`` and ``dotnet test --logger xunit`` (the Spekt XunitXml.TestLogger).

Layout (xunit.net "XML Format v2"): ``<assemblies>`` > ``<assembly>`` > ``<collection>`` >
``<test>``, plus ``<assembly><errors><error>`` for failures outside any test.

* ``test/@result`` Pass -> PASSED, Fail -> FAILED, Skip -> SKIPPED, NotRun (schema 3: a test
  the run did not reach or filtered out explicitly) -> SKIPPED. xUnit.net does not separate an
  assertion failure from an exception in the test body (its summary says "Failed" for both), so
  neither does this parser.
* ``<errors><error type="...">`` (assembly/collection/class/method/test-case cleanup, fatal) are
  failures outside any test that xUnit.net counts as "Errors": each is one BROKEN result named
  after the type and the thing that failed, as TRX's ``[Test Class Cleanup Failure (...)]``.
* Suite path = [``type``] (the class); the title drops the ``type.`` prefix of ``name``, as the
  TRX reader does. ``source-file``/``source-line`` (schema 3) give the location.
* ``<traits>``: a ``Category`` (or ``Tag``) trait becomes a tag; every trait is also a property,
  so ``[Trait("qa-hub", "TC-042")]`` links a test case as a JUnit property would.
* Output from ``<output>``, skip reason from ``<reason>``, message/stack from
  ``<failure><message>``/``<stack-trace>``. The file is streamed; each test dropped once read.
"""

from __future__ import annotations

from pathlib import Path

from .model import ParsedResult
from .normalize import BROKEN, FAILED, PASSED, SKIPPED, UNKNOWN, attempt, build, seconds_to_ms
from .xmlsource import iterparse, local

_RESULTS = {"pass": PASSED, "fail": FAILED, "skip": SKIPPED, "notrun": SKIPPED}
_TAG_TRAITS = {"category", "tag", "tags"}


def parse(path: Path) -> list[ParsedResult]:
    results: list[ParsedResult] = []
    errors: list[ParsedResult] = []
    for event, elem in iterparse(path, frozenset({"test", "error"})):
        if event != "whole":
            continue
        tag = local(elem.tag)
        if tag == "test":
            results.append(_test(elem))
        elif tag == "error":
            errors.append(_error(elem))
    return results + errors


def _test(elem) -> ParsedResult:
    status = _RESULTS.get((elem.get("result") or "").lower(), UNKNOWN)
    name = elem.get("name") or elem.get("method") or "(unnamed test)"
    class_name = elem.get("type") or ""
    title = name[len(class_name) + 1:] if class_name and name.startswith(class_name + ".") else name
    message = stack = None
    failure = _child(elem, "failure")
    if failure is not None:
        message = _child_text(failure, "message")
        stack = _child_text(failure, "stack-trace")
        if message is None and failure.get("exception-type"):
            message = failure.get("exception-type")
    if status == SKIPPED:
        message = _child_text(elem, "reason") or message
    traits = []
    traits_elem = _child(elem, "traits")
    if traits_elem is not None:
        traits = [(t.get("name") or "", t.get("value") or "") for t in traits_elem if local(t.tag) == "trait"]
    line = elem.get("source-line")
    return build(
        title,
        [attempt(status, seconds_to_ms(elem.get("time")), message, stack)],
        suite_path=[class_name] if class_name else [],
        file=elem.get("source-file"),
        line=int(line) if line and line.isdigit() else None,
        stdout=_child_text(elem, "output"),
        tags=[value for key, value in traits if key.lower() in _TAG_TRAITS and value],
        properties=traits,
    )


def _error(elem) -> ParsedResult:
    kind = elem.get("type") or "error"
    name = elem.get("name")
    failure = _child(elem, "failure")
    message = stack = None
    if failure is not None:
        message = _child_text(failure, "message") or failure.get("exception-type")
        stack = _child_text(failure, "stack-trace")
    title = f"[{kind}] {name}" if name else f"[{kind}]"
    return build(title, [attempt(BROKEN, None, message or f"xUnit.net reported a {kind} error", stack)])


def _child(elem, name: str):
    for child in elem:
        if local(child.tag) == name:
            return child
    return None


def _child_text(elem, name: str) -> str | None:
    child = _child(elem, name)
    return child.text if child is not None and child.text and child.text.strip() else None
