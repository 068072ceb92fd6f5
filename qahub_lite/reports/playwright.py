"""Playwright JSON reporter (``--reporter=json``), proven on Playwright 1.65.

Shape: ``suites`` (one per spec file) nest ``suites`` (describe blocks) and ``specs``; each spec
has one ``tests[]`` entry per project, each with every attempt in ``results[]``.

* Each (spec, project) is one result; the project is the first element of the suite path so that
  the same spec run by projects "api" and "smoke" stays two distinct tests.
* ``test.status`` is Playwright's verdict: expected -> PASSED (or SKIPPED when the expected
  status is "skipped"), unexpected -> FAILED, flaky -> PASSED + flaky, skipped -> SKIPPED.
  ``test.fail()`` tests that failed as declared are "expected", hence PASSED, as Playwright
  itself counts them.
* An attempt passes when its status equals ``expectedStatus``; timedOut/interrupted are failures.
* Error messages carry ANSI colours; they are stripped. Attachment paths are resolved against the
  report's folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .jsonsource import load
from .model import Attempt, ParsedResult, ReportAttachment
from .normalize import FAILED, PASSED, SKIPPED, attempt, build, clean, ms

_VERDICTS = {"unexpected": FAILED, "flaky": PASSED, "skipped": SKIPPED}


def parse(path: Path) -> list[ParsedResult]:
    doc = load(path)
    base = path.parent
    results: list[ParsedResult] = []
    for suite in doc.get("suites") or []:
        _walk(suite, [], base, results)
    # Errors outside any test (config error, file that failed to import) are the run's errors.
    for error in doc.get("errors") or []:
        message = clean(error.get("message"))
        location = error.get("location") or {}
        title = os.path.basename(location.get("file") or "") or "(global error)"
        results.append(build(title, [attempt("BROKEN", None, message, error.get("stack"))],
                             file=location.get("file"), line=location.get("line")))
    return results


def _walk(suite: dict[str, Any], outer: list[str], base: Path, out: list[ParsedResult]) -> None:
    path = [*outer, suite.get("title") or ""]
    for spec in suite.get("specs") or []:
        for test in spec.get("tests") or []:
            out.append(_test(spec, test, path, base))
    for child in suite.get("suites") or []:
        _walk(child, path, base, out)


def _test(spec: dict[str, Any], test: dict[str, Any], path: list[str], base: Path) -> ParsedResult:
    expected = test.get("expectedStatus") or "passed"
    attempts: list[Attempt] = []
    stdout: list[str] = []
    stderr: list[str] = []
    attachments: list[ReportAttachment] = []
    for result in test.get("results") or []:
        raw = result.get("status") or "failed"
        if raw == "skipped":
            status = SKIPPED
        elif raw == expected:
            status = PASSED
        else:
            status = FAILED
        error = result.get("error") or {}
        errors = result.get("errors") or []
        message = error.get("message")
        if not message and errors:
            message = "\n\n".join(e.get("message") or "" for e in errors)
        attempts.append(attempt(status, ms(result.get("duration")), message, error.get("stack")))
        stdout.extend(_chunks(result.get("stdout")))
        stderr.extend(_chunks(result.get("stderr")))
        for item in result.get("attachments") or []:
            raw_path = item.get("path")
            if not raw_path:
                continue  # inline body: nothing on disk to point at
            attachments.append(ReportAttachment(
                name=item.get("name") or os.path.basename(raw_path),
                path=raw_path if os.path.isabs(raw_path) else os.path.normpath(base / raw_path),
                content_type=item.get("contentType"),
            ))
    verdict = test.get("status")
    if verdict == "expected":
        status = SKIPPED if expected == "skipped" else PASSED
    else:
        status = _VERDICTS.get(verdict, attempts[-1].status if attempts else SKIPPED)
    if not attempts:
        attempts = [Attempt(status=status)]
    annotations = [(a.get("type") or "", a.get("description")) for a in test.get("annotations") or []]
    project = test.get("projectName") or ""
    # A skip reason lives in the annotation, not in an error.
    if status == SKIPPED and attempts[-1].error_message is None:
        reason = next((d for t, d in annotations if t in ("skip", "fixme") and d), None)
        if reason:
            attempts[-1] = Attempt(status=SKIPPED, duration_ms=attempts[-1].duration_ms, error_message=reason)
    return build(
        spec.get("title") or "(untitled)",
        attempts,
        suite_path=[project, *path] if project else path,
        file=spec.get("file"),
        line=spec.get("line"),
        stdout="".join(stdout),
        stderr="".join(stderr),
        tags=spec.get("tags") or (),
        annotations=annotations,
        attachments=attachments,
        status=status,
        flaky=verdict == "flaky",
    )


def _chunks(items: Any) -> list[str]:
    out = []
    for item in items or []:
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            out.append(item["text"])
        elif isinstance(item, str):
            out.append(item)
    return out
