"""``go test -json`` (Go 1.19) and gotestsum ``--jsonfile`` (1.8): newline-delimited events.

* Each ``Test`` in a ``Package`` is a result, including parent tests and every subtest level
  (``TestTable/case``), as ``go test -v`` and gotestsum count them. Suite path = [package,
  parent tests...]; title = the last name segment.
* pass -> PASSED, fail -> FAILED, skip -> SKIPPED. A test that has output but no final action
  (the binary panicked or timed out while it ran) is FAILED.
* Repeated runs of a test in one stream (``-count=N``, gotestsum ``--rerun-fails``) are its
  attempts; pass after fail is flaky.
* A package that failed without running any test failed to build or set up: one BROKEN result.
  Go < 1.24 prints that as a plain text line (``FAIL\tpkg [build failed]``) amid the JSON, so
  non-JSON lines are read for that pattern and otherwise ignored; Go >= 1.24 sends
  ``build-fail``/``FailedBuild`` events.
* Output is collected per test (``=== RUN``/``--- PASS`` framing lines dropped); the failure
  message is the test's own output lines.
"""

from __future__ import annotations

import re
from pathlib import Path

from .jsonsource import ndjson
from .model import Attempt, ParsedResult
from .normalize import BROKEN, FAILED, PASSED, SKIPPED, attempt, build, first_line, seconds_to_ms

_FINAL = {"pass": PASSED, "fail": FAILED, "skip": SKIPPED}
_PLAIN_PKG_FAIL = re.compile(r"^FAIL\s+(\S+)\s+\[(build failed|setup failed)\]")
_FRAMING = re.compile(r"^\s*(=== (RUN|PAUSE|CONT|NAME)|--- (PASS|FAIL|SKIP):)")


class _Run:
    __slots__ = ("output", "attempts")

    def __init__(self) -> None:
        self.output: list[str] = []
        self.attempts: list[Attempt] = []


def parse(path: Path) -> list[ParsedResult]:
    runs: dict[tuple[str, str], _Run] = {}
    package_failed: dict[str, str] = {}
    package_output: dict[str, list[str]] = {}
    packages_with_tests: set[str] = set()
    for _number, event, raw in ndjson(path):
        if event is None:
            match = _PLAIN_PKG_FAIL.match(raw)
            if match:
                package_failed.setdefault(match.group(1), raw.strip())
            continue
        action = event.get("Action")
        package = event.get("Package") or event.get("ImportPath") or ""
        test = event.get("Test")
        if not test:
            if action == "output":
                package_output.setdefault(package, []).append(event.get("Output") or "")
            elif action in ("fail", "build-fail") and (event.get("FailedBuild") or action == "build-fail"):
                package_failed.setdefault(package, f"{package} [build failed]")
            elif action == "fail":
                package_failed.setdefault(package, f"{package} failed")
            continue
        packages_with_tests.add(package)
        run = runs.get((package, test))
        if run is None:
            run = runs[(package, test)] = _Run()
        if action == "run" and run.output and run.attempts:
            run.output = []  # a re-run starts a new attempt
        if action == "output":
            line = event.get("Output") or ""
            if not _FRAMING.match(line):
                run.output.append(line)
        elif action in _FINAL:
            status = _FINAL[action]
            text = "".join(run.output).rstrip() or None
            run.attempts.append(attempt(status, seconds_to_ms(event.get("Elapsed")),
                                        first_line(text) if status != PASSED else None,
                                        text if status == FAILED else None))
            if status == PASSED and text:
                run.attempts[-1] = Attempt(status=PASSED, duration_ms=run.attempts[-1].duration_ms)
            run.output = [text + "\n"] if text else []
    results: list[ParsedResult] = []
    for (package, test), run in runs.items():
        output = "".join(run.output).rstrip() or None
        attempts = run.attempts or [attempt(FAILED, None, "test did not finish (binary panicked or timed out)", output)]
        parts = test.split("/")
        results.append(build(parts[-1], attempts, suite_path=[package, *parts[:-1]], stdout=output))
    for package, message in package_failed.items():
        if package in packages_with_tests:
            continue  # its failing tests already say why
        detail = "".join(package_output.get(package, [])).strip() or message
        results.append(build(package, [attempt(BROKEN, None, first_line(message), detail)]))
    return results
