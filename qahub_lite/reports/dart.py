"""Dart / Flutter ``test --reporter json`` (NDJSON events; proven on dorny/test-reporter's
fixtures, incl. the Flutter ``provider`` package run).

Events used: ``suite`` (file), ``group`` (nested groups), ``testStart``, ``print``, ``error``,
``testDone``. Result -> status: success -> PASSED, or SKIPPED when ``skipped`` is true;
failure (a ``TestFailure``, i.e. an expectation) -> FAILED; error (any other exception) ->
BROKEN, since the Dart runner separates errors from failures as Surefire does.
``hidden`` tests are the runner's own "loading <file>" pseudo-tests: ignored when they pass, a
BROKEN result for the file when it failed to load.
A test's name repeats its group names; the title keeps only its own part.
"""

from __future__ import annotations

from pathlib import Path

from .jsonsource import ndjson
from .model import ParsedResult
from .normalize import BROKEN, FAILED, PASSED, SKIPPED, attempt, build, first_line, ms


def parse(path: Path) -> list[ParsedResult]:
    suites: dict[int, str] = {}
    groups: dict[int, str] = {}
    tests: dict[int, dict] = {}
    order: list[int] = []
    for _number, event, _raw in ndjson(path):
        if event is None:
            continue
        kind = event.get("type")
        if kind == "suite":
            suite = event.get("suite") or {}
            suites[suite.get("id")] = suite.get("path") or ""
        elif kind == "group":
            group = event.get("group") or {}
            groups[group.get("id")] = group.get("name") or ""
        elif kind == "testStart":
            test = event.get("test") or {}
            tests[test.get("id")] = {"test": test, "start": event.get("time"), "errors": [], "prints": []}
            order.append(test.get("id"))
        elif kind == "print" and event.get("testID") in tests:
            tests[event["testID"]]["prints"].append(event.get("message") or "")
        elif kind == "error" and event.get("testID") in tests:
            tests[event["testID"]]["errors"].append(event)
        elif kind == "testDone" and event.get("testID") in tests:
            tests[event["testID"]]["done"] = event
    results = []
    for test_id in order:
        record = tests[test_id]
        test, done = record["test"], record.get("done") or {}
        outcome = done.get("result")
        if done.get("hidden") and outcome == "success":
            continue
        if done.get("skipped") or (test.get("metadata") or {}).get("skip"):
            status = SKIPPED
        elif outcome == "success":
            status = PASSED
        elif outcome == "failure":
            status = FAILED
        elif outcome == "error" or done.get("hidden"):
            status = BROKEN
        else:
            status = FAILED  # never finished: the run stopped while it ran
        errors = record["errors"]
        message = "\n".join(e.get("error") or "" for e in errors) or None
        stack = "\n".join(e.get("stackTrace") or "" for e in errors) or None
        if status == SKIPPED:
            message = (test.get("metadata") or {}).get("skipReason")
        group_names = [groups.get(g, "") for g in test.get("groupIDs") or []]
        group_names = [g for g in group_names if g]
        name = test.get("name") or ""
        innermost = group_names[-1] if group_names else ""
        title = name[len(innermost):].strip() if innermost and name.startswith(innermost + " ") else name
        # Group names are cumulative ("outer inner"); keep each level's own words.
        path_parts, previous = [], ""
        for g in group_names:
            path_parts.append(g[len(previous):].strip() if previous and g.startswith(previous + " ") else g)
            previous = g
        start, end = record.get("start"), done.get("time")
        duration = ms(end - start) if isinstance(start, int) and isinstance(end, int) else None
        suite_file = suites.get(test.get("suiteID"), "")
        results.append(build(
            title or name or "(unnamed test)",
            [attempt(status, duration, first_line(message) if message else None, (message or "") + ("\n" + stack if stack else "") or None)],
            suite_path=[suite_file, *path_parts],
            file=test.get("root_url") or test.get("url") or suite_file or None,
            line=test.get("root_line") or test.get("line"),
            stdout="\n".join(record["prints"]),
        ))
    return results
