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
  non-JSON lines are read for that pattern and otherwise ignored. Go >= 1.24 sends the compiler
  output as ``build-output`` events keyed by ``ImportPath`` (``pkg [pkg.test]`` or ``pkg.test``),
  a ``build-fail`` for that ImportPath, then the package's ``fail`` naming it in ``FailedBuild``:
  one failure told twice, counted once, with the compiler output as its message.
* A package that failed although none of its tests did (TestMain exiting non-zero after
  ``m.Run``, a panic in a goroutine between tests, a leak check) would otherwise vanish and the
  run look green: it is one BROKEN result named after the package, with the package's output.
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
# Package summary lines the go tool prints around a package's own output; they say nothing
# the status does not.
_AFTER_PASS = "the package failed although its tests passed (TestMain, a panic between tests, a timeout)"
_PACKAGE_SUMMARY = re.compile(r"^(PASS|FAIL|ok\s+\S+.*|FAIL\s+\S+(\s+[\d.]+s|\s+\[.*\])?|\?\s+\S+.*)\s*$")


class _Run:
    __slots__ = ("output", "attempts")

    def __init__(self) -> None:
        self.output: list[str] = []
        self.attempts: list[Attempt] = []


def parse(path: Path) -> list[ParsedResult]:
    runs: dict[tuple[str, str], _Run] = {}
    package_failed: dict[str, str] = {}
    package_output: dict[str, list[str]] = {}
    build_output: dict[str, list[str]] = {}  # ImportPath -> compiler output (Go >= 1.24)
    build_failed: list[str] = []  # ImportPaths with a build-fail event, in stream order
    failed_build_of: dict[str, str] = {}  # package -> the ImportPath its FailedBuild names
    for _number, event, raw in ndjson(path):
        if event is None:
            match = _PLAIN_PKG_FAIL.match(raw)
            if match:
                package_failed.setdefault(match.group(1), raw.strip())
            continue
        action = event.get("Action")
        package = event.get("Package") or ""
        test = event.get("Test")
        if not package and event.get("ImportPath"):
            import_path = event["ImportPath"]
            if action == "build-output":
                build_output.setdefault(import_path, []).append(event.get("Output") or "")
            elif action == "build-fail" and import_path not in build_failed:
                build_failed.append(import_path)
            continue
        if not test:
            if action == "output":
                package_output.setdefault(package, []).append(event.get("Output") or "")
            elif action == "fail" and event.get("FailedBuild"):
                failed_build_of[package] = event["FailedBuild"]
                package_failed.setdefault(package, f"{package} [build failed]")
            elif action == "fail":
                package_failed.setdefault(package, f"{package} failed")
            continue
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
    packages_with_failing_tests: set[str] = set()
    packages_with_tests = {package for package, _test in runs}
    for (package, test), run in runs.items():
        output = "".join(run.output).rstrip() or None
        attempts = run.attempts or [attempt(FAILED, None, "test did not finish (binary panicked or timed out)", output)]
        parts = test.split("/")
        result = build(parts[-1], attempts, suite_path=[package, *parts[:-1]], stdout=output)
        if result.status in (FAILED, BROKEN):
            packages_with_failing_tests.add(package)
        results.append(result)
    # A build failure nobody's FailedBuild points at (a truncated stream, a failed dependency
    # build) is still a failure; it is named after the package the ImportPath is for.
    explained = set(failed_build_of.values())
    for import_path in build_failed:
        if import_path not in explained:
            package_failed.setdefault(_package_of(import_path), f"{import_path} [build failed]")
            failed_build_of.setdefault(_package_of(import_path), import_path)
    for package, message in package_failed.items():
        if package in packages_with_failing_tests:
            continue  # its failing tests already say why
        own = _own_output(package_output.get(package, []))
        if package in failed_build_of or message.endswith("]"):  # [build failed], [setup failed]
            compiler = "".join(build_output.get(failed_build_of.get(package, ""), [])).strip()
            failure = attempt(BROKEN, None, compiler or own or message, compiler or own or None)
        elif package in packages_with_tests:
            failure = attempt(BROKEN, None, first_line(own) or f"{package}: {_AFTER_PASS}", own or None)
        else:
            failure = attempt(BROKEN, None, first_line(own) or message, own or None)
        results.append(build(package, [failure]))
    return results


def _package_of(import_path: str) -> str:
    """``pkg [pkg.test]`` and ``pkg.test`` -> ``pkg`` (the ImportPath of a test binary's build)."""
    base = import_path.split(" [", 1)[0]
    return base.removesuffix(".test") if " [" not in import_path else base


def _own_output(lines: list[str]) -> str:
    """The package's output without the go tool's PASS/FAIL/ok summary lines."""
    return "".join(line for line in lines if not _PACKAGE_SUMMARY.match(line.rstrip("\n"))).strip()
