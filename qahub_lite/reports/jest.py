"""Jest ``--json`` (proven on Jest 30.5) and Vitest's JSON reporter (Vitest 4.1, same shape).

* ``testResults[]`` is one test file; ``assertionResults[]`` its tests, with ``ancestorTitles``
  as the describe path. Suite path = [file relative to rootDir, *describe blocks].
* Status: passed -> PASSED (Jest ``test.failing`` / Vitest ``test.fails`` that failed as declared
  are reported "passed" by the tools and stay PASSED); failed -> FAILED;
  pending/skipped/todo/disabled -> SKIPPED.
* Retries (``jest.retryTimes``, Vitest ``retry``): Jest lists failed earlier attempts in
  ``retryReasons`` (and ``invocations``); Vitest puts every failed attempt's message in
  ``failureMessages`` even when the test finally passed. Either way, passed after a failure is
  flaky and each attempt is kept. Jest's ``invocations`` is the number of runs, whatever the
  final status: a test that failed all three runs of ``jest.retryTimes(2)`` has three attempts
  even where the file kept no ``retryReasons`` for the first two.
* A file that failed to run (import error, syntax error) has no tests and a ``message``
  (``testExecError`` in Jest), or a title-less pseudo-test with status "error": it becomes one
  BROKEN result named after the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .jsonsource import load
from .model import Attempt, ParsedResult
from .normalize import BROKEN, FAILED, PASSED, SKIPPED, attempt, build, first_line, ms

_STATUSES = {
    "passed": PASSED,
    "failed": FAILED,
    "pending": SKIPPED,
    "skipped": SKIPPED,
    "todo": SKIPPED,
    "disabled": SKIPPED,
    "focused": PASSED,
    # A title-less pseudo-test Jest adds when the file failed to run (seen with jest-junit in
    # the reporters list); same meaning as testExecError.
    "error": BROKEN,
}


def parse(path: Path) -> list[ParsedResult]:
    doc = load(path)
    root = _common_root([r.get("name") or "" for r in doc.get("testResults") or []])
    results: list[ParsedResult] = []
    for file_result in doc.get("testResults") or []:
        file = file_result.get("name") or ""
        shown = os.path.relpath(file, root) if root and file.startswith(root) else file
        tests = file_result.get("assertionResults") or []
        for test in tests:
            results.append(_test(test, shown, file))
        exec_error = file_result.get("testExecError") or {}
        message = file_result.get("message") or exec_error.get("message")
        if not tests and (file_result.get("status") == "failed" or exec_error) and message:
            stack = exec_error.get("stack") or message
            results.append(build(shown or "(test file)", [attempt(BROKEN, None, first_line(_strip_bullet(message)), stack)],
                                 suite_path=[], file=file or None))
    return results


def _test(test: dict[str, Any], shown: str, file: str) -> ParsedResult:
    status = _STATUSES.get(test.get("status") or "", FAILED)
    messages = [m for m in test.get("failureMessages") or [] if m]
    earlier = [m for m in test.get("retryReasons") or [] if m]
    invocations = test.get("invocations")
    jest_counted = isinstance(invocations, int) and not isinstance(invocations, bool)
    attempts: list[Attempt] = []
    if earlier:  # Jest: failureMessages is the final attempt only
        attempts = [attempt(FAILED, None, first_line(m), m) for m in earlier]
        final_messages = messages
    elif status == PASSED and messages:  # Vitest: failed attempts before the final pass
        attempts = [attempt(FAILED, None, first_line(m), m) for m in messages]
        final_messages = []
    elif status == FAILED and len(messages) > 1 and not jest_counted:
        # Vitest (no `invocations`): one message per failed attempt. Jest's several messages
        # are one attempt's (the test body and an afterEach hook both threw).
        attempts = [attempt(FAILED, None, first_line(m), m) for m in messages[:-1]]
        final_messages = messages[-1:]
    else:
        final_messages = messages
    if jest_counted and invocations > len(attempts) + 1:
        # Jest counted more runs than it kept reasons for (Jest versions without retryReasons
        # write only `invocations`), whatever the final status: the runs not described failed,
        # since jest.retryTimes re-runs a test only after it failed.
        attempts = [Attempt(status=FAILED)] * (invocations - 1 - len(attempts)) + attempts
    text = "\n\n".join(final_messages) or None
    attempts.append(attempt(status, ms(test.get("duration")), first_line(text), text))
    location = test.get("location") or {}
    return build(
        test.get("title") or test.get("fullName") or shown or "(untitled)",
        attempts,
        suite_path=[shown, *(test.get("ancestorTitles") or [])],
        file=file or None,
        line=location.get("line") if isinstance(location, dict) else None,
        tags=test.get("tags") or (),
    )


def _strip_bullet(message: str) -> str:
    # Jest prefixes suite errors with "  ● Test suite failed to run\n\n"; keep the cause.
    lines = [line for line in message.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].strip().startswith("●"):
        return "\n".join(lines[1:]).strip()
    return message.strip()


def _common_root(names: list[str]) -> str:
    absolute = [n for n in names if os.path.isabs(n)]
    if not absolute:
        return ""
    try:
        root = os.path.commonpath([os.path.dirname(n) for n in absolute])
    except ValueError:
        return ""
    return root + os.sep if root and root != os.sep else ""
