"""Mocha's JSON reporter and mochawesome (proven on Mocha 11.8, mochawesome 8.1).

Mocha ``--reporter json``: ``tests[]`` holds every test that started; ``failures[]`` also holds
hook failures (``"before all" hook for "…"``) as pseudo-tests. Mocha counts those in its
"failing" total, and so do we (INDEX.md: hook failures are *failed*). ``pending[]`` lists skipped
tests. A passed test with ``currentRetry > 0`` passed on a retry: flaky. Mocha keeps no detail
of the failed attempts, so they are recorded without a message.

Describe blocks are not given separately in the JSON reporter, only ``fullTitle`` (describe titles
and title joined by spaces): the part before the title becomes one suite-path element.

mochawesome: ``results[]`` per file, nested ``suites[]`` with ``tests[]`` and
``beforeHooks``/``afterHooks``. Failed hooks are failed results (as above). Tests that never
started because a hook failed carry ``skipped: true`` and no state; Mocha counts them nowhere
and neither do we. mochawesome does not record retries, so flaky tests appear as passed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .jsonsource import load
from .model import Attempt, ParsedResult
from .normalize import FAILED, PASSED, SKIPPED, attempt, build, ms


def parse(path: Path, fmt: str = "mocha-json") -> list[ParsedResult]:
    doc = load(path)
    if fmt == "mochawesome":
        results: list[ParsedResult] = []
        for suite in doc.get("results") or []:
            _awesome_suite(suite, [], results)
        return results
    return _mocha_json(doc)


def _mocha_json(doc: dict[str, Any]) -> list[ParsedResult]:
    pending = {_key(t) for t in doc.get("pending") or []}
    entries = list(doc.get("tests") or [])
    known = {_key(t) for t in entries}
    # Hook failures exist only in failures[]; append them after the tests.
    entries += [t for t in doc.get("failures") or [] if _key(t) not in known]
    if not entries:  # very old reporters wrote passes/failures/pending only
        entries = [*(doc.get("passes") or []), *(doc.get("failures") or []), *(doc.get("pending") or [])]
    results = []
    for test in entries:
        err = test.get("err") or {}
        if _key(test) in pending:
            status = SKIPPED
        elif err:
            status = FAILED
        else:
            status = PASSED
        final = attempt(status, ms(test.get("duration")), err.get("message"), err.get("stack"))
        retries = test.get("currentRetry") or 0
        attempts: list[Attempt] = [Attempt(status=FAILED)] * retries if isinstance(retries, int) else []
        title = test.get("title") or ""
        full = test.get("fullTitle") or title
        describe = full[: -len(title)].strip() if title and full.endswith(title) else ""
        results.append(build(title or full or "(untitled)", [*attempts, final],
                             suite_path=[describe] if describe else [], file=test.get("file")))
    return results


def _key(test: dict[str, Any]) -> tuple[str, str]:
    return (test.get("fullTitle") or test.get("title") or "", test.get("file") or "")


def _awesome_suite(suite: dict[str, Any], outer: list[str], out: list[ParsedResult]) -> None:
    title = suite.get("title") or ""
    path = [*outer, title] if title else outer
    file = suite.get("fullFile") or suite.get("file") or None
    hooks = [*(suite.get("beforeHooks") or []), *(suite.get("afterHooks") or [])]
    for hook in hooks:
        if hook.get("state") == "failed" or hook.get("fail"):
            out.append(_awesome_test(hook, path, file))
    for test in suite.get("tests") or []:
        if test.get("skipped") and not test.get("state"):
            continue  # never started: a hook failed before it
        out.append(_awesome_test(test, path, file))
    for child in suite.get("suites") or []:
        _awesome_suite(child, path, out)


def _awesome_test(test: dict[str, Any], path: list[str], file: str | None) -> ParsedResult:
    if test.get("pending") or test.get("state") == "pending":
        status = SKIPPED
    elif test.get("fail") or test.get("state") == "failed":
        status = FAILED
    else:
        status = PASSED
    err = test.get("err") or {}
    final = attempt(status, ms(test.get("duration")), err.get("message"), err.get("estack") or err.get("stack"))
    context = test.get("context")
    return build(test.get("title") or "(untitled)", [final], suite_path=path, file=file,
                 stdout=context if isinstance(context, str) else None)
