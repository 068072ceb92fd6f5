"""Allure 2 results folder (``*-result.json`` + ``*-container.json``), proven on allure-pytest 2.16.

The folder is one report. Each result file is one execution; executions sharing a ``historyId``
are attempts of one test (pytest-rerunfailures writes one file per rerun), ordered by ``start``.

Status: passed -> PASSED, failed -> FAILED, skipped -> SKIPPED, unknown -> UNKNOWN.
Allure's *broken* means "an exception other than an assertion". The corpus normalisation counts
an exception inside the test body as *failed* and keeps *error* for fixture/setup/teardown
failures; Allure records fixtures in the containers, so *broken* becomes BROKEN when one of the
test's container fixtures (``befores``/``afters``) failed or broke, FAILED otherwise.

Suite path: ``parentSuite``/``suite``/``subSuite`` labels (the subSuite is "A > B");
tags: ``tag`` labels; a ``qa-hub``/``qahub`` label or link named so gives the test-case code.
Attachments point at files in the same folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .jsonsource import load
from .model import ParsedResult, ReportAttachment
from .normalize import BROKEN, FAILED, PASSED, SKIPPED, UNKNOWN, attempt, build, ms

_STATUSES = {"passed": PASSED, "failed": FAILED, "skipped": SKIPPED, "broken": BROKEN, "unknown": UNKNOWN}
_BAD_FIXTURE = {"failed", "broken"}


def parse(path: Path) -> list[ParsedResult]:
    fixture_failed: set[str] = set()
    for container_file in sorted(path.glob("*-container.json")):
        container = load(container_file)
        fixtures = [*(container.get("befores") or []), *(container.get("afters") or [])]
        if any(f.get("status") in _BAD_FIXTURE for f in fixtures if isinstance(f, dict)):
            fixture_failed.update(container.get("children") or [])
    groups: dict[str, list[dict[str, Any]]] = {}
    for result_file in sorted(path.glob("*-result.json")):
        result = load(result_file)
        key = result.get("historyId") or result.get("testCaseId") or result.get("fullName") or result.get("uuid")
        groups.setdefault(str(key), []).append(result)
    ordered = sorted(groups.values(), key=lambda runs: min(r.get("start") or 0 for r in runs))
    return [_test(sorted(runs, key=lambda r: r.get("start") or 0), path, fixture_failed) for runs in ordered]


def _test(runs: list[dict[str, Any]], folder: Path, fixture_failed: set[str]) -> ParsedResult:
    attempts = []
    for run in runs:
        status = _STATUSES.get(run.get("status") or "unknown", UNKNOWN)
        if status == BROKEN and run.get("uuid") not in fixture_failed:
            status = FAILED
        details = run.get("statusDetails") or {}
        start, stop = run.get("start"), run.get("stop")
        duration = ms(stop - start) if isinstance(start, int) and isinstance(stop, int) else None
        attempts.append(attempt(status, duration, details.get("message"), details.get("trace")))
    last = runs[-1]
    labels = [(l.get("name") or "", l.get("value") or "") for l in last.get("labels") or [] if isinstance(l, dict)]
    suite_path: list[str] = []
    for wanted in ("parentSuite", "suite", "subSuite"):
        for name, value in labels:
            if name == wanted and value:
                suite_path.extend(v.strip() for v in value.split(" > "))
    links = [(l.get("name") or l.get("type") or "", l.get("name") or l.get("url") or "")
             for l in last.get("links") or [] if isinstance(l, dict)]
    title = last.get("name") or last.get("fullName") or "(unnamed test)"
    params = [p for p in last.get("parameters") or [] if isinstance(p, dict) and not p.get("excluded")]
    if params and "[" not in title:
        # allure-pytest names parametrized runs after the function; the parameters make it unique.
        title += "[" + "-".join(str(p.get("value")) for p in params) + "]"
    attachments = [
        ReportAttachment(name=a.get("name") or a.get("source") or "", path=str(folder / a["source"]),
                         content_type=a.get("type"))
        for run in runs for a in run.get("attachments") or [] if isinstance(a, dict) and a.get("source")
    ]
    return build(
        title,
        attempts,
        suite_path=suite_path,
        tags=[v for n, v in labels if n == "tag"],
        properties=[*labels, *links],
        attachments=attachments,
    )
