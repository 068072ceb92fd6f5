"""Generate the large performance reports instead of storing them in the repository.

The corpus' real large files (``pytest-junit-large-20000.xml``, 2.2 MB, and
``jest-results-large-5000.json``, 1.7 MB) are reproduced in shape and counts, deterministically:

* ``pytest-junit-large-20000.xml``: pytest xunit1 JUnit, one line, 20,000 parametrized cases;
  case i is skipped when i % 100 == 3 (200), errors in fixture setup when i % 1000 == 11 (20),
  fails when i % 500 == 7 (40); the rest pass (19,740). Same element/attribute layout and
  similar failure texts as the real file (PY3 in INDEX.md).
* ``jest-results-large-5000.json``: Jest ``--json``, 10 files x 500 tests; failed when
  i % 250 == 17 (20), skipped when i % 100 == 42 (50), passed otherwise (4,930) (JE2).

Usage: ``python tests/corpus/make_large.py OUT_DIR`` (prints the paths it wrote).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

JUNIT_NAME = "pytest-junit-large-20000.xml"
JEST_NAME = "jest-results-large-5000.json"
JUNIT_COUNTS = {"total": 20000, "passed": 19740, "failed": 40, "skipped": 200, "error": 20}
JEST_COUNTS = {"total": 5000, "passed": 4930, "failed": 20, "skipped": 50}

_FAIL_TEXT = """resource = {i}

    @pytest.mark.parametrize("resource", range(N), indirect=True, ids=lambda i: f"case-{{i:05d}}")
    def test_case(resource):
        i = resource
        if i % 100 == 3:
            pytest.skip(f"skipping case {{i}}")
>       assert i % 500 != 7, f"case {{i}} failed: expected value {double} but got {odd}"
E       AssertionError: case {i} failed: expected value {double} but got {odd}
E       assert ({i} % 500) != 7

test_large.py:22: AssertionError"""

_ERROR_TEXT = """request = <SubRequest 'resource' for <Function test_case[case-{i:05d}]>>

    @pytest.fixture
    def resource(request):
        i = request.param
        if i % 1000 == 11:
>           raise RuntimeError(f"resource {{i}} unavailable")
E           RuntimeError: resource {i} unavailable

test_large.py:9: RuntimeError"""


def junit_case(i: int) -> str:
    head = f'<testcase classname="test_large" name="test_case[case-{i:05d}]" file="test_large.py" line="15" time="0.{i % 7:03d}"'
    if i % 100 == 3:
        return (f'{head}><skipped type="pytest.skip" message="skipping case {i}">'
                f"/builds/sample/projects/pytest-large/test_large.py:20: skipping case {i}</skipped></testcase>")
    if i % 1000 == 11:
        message = f'failed on setup with "RuntimeError: resource {i} unavailable"'
        return f"{head}><error message={quoteattr(message)}>{escape(_ERROR_TEXT.format(i=i))}</error></testcase>"
    if i % 500 == 7:
        message = f"AssertionError: case {i} failed: expected value {2 * i} but got {2 * i + 1}\nassert ({i} % 500) != 7"
        text = _FAIL_TEXT.format(i=i, double=2 * i, odd=2 * i + 1)
        return f"{head}><failure message={quoteattr(message).replace(chr(10), '&#10;')}>{escape(text)}</failure></testcase>"
    return head + " />"


def write_junit(path: Path, n: int = 20000) -> Path:
    counts = JUNIT_COUNTS
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">')
        out.write(f'<testsuite name="pytest" errors="{counts["error"]}" failures="{counts["failed"]}" '
                  f'skipped="{counts["skipped"]}" tests="{n}" time="8.785" '
                  'timestamp="2026-11-23T03:24:33.259205+00:00" hostname="vm">')
        for i in range(n):
            out.write(junit_case(i))
        out.write("</testsuite></testsuites>")
    return path


def jest_test(i: int, suite: int) -> dict:
    title = f"case {i:05d} computes square"
    base = {
        "ancestorTitles": [f"large suite {suite}"],
        "duration": i % 5,
        "failing": False,
        "failureDetails": [],
        "failureMessages": [],
        "fullName": f"large suite {suite} {title}",
        "invocations": 1,
        "location": None,
        "numPassingAsserts": 1,
        "retryMessages": [],
        "retryReasons": [],
        "status": "passed",
        "title": title,
        "startAt": 1795404344319 + i,
    }
    if i % 250 == 17:
        message = (f"Error: expect(received).toBe(expected) // Object.is equality\n\nExpected: {i * i}\n"
                   f"Received: {i * i + 1}\n    at Object.<anonymous> (large/large_{suite}.test.js:8:25)")
        base.update(status="failed", failureMessages=[message], failureDetails=[{"matcherResult": {"pass": False}}],
                    numPassingAsserts=0)
    elif i % 100 == 42:
        base.update(status="pending", duration=None, numPassingAsserts=0)
    return base


def write_jest(path: Path, files: int = 10, per_file: int = 500) -> Path:
    results = []
    for suite in range(files):
        tests = [jest_test(suite * per_file + k, suite) for k in range(per_file)]
        failed = any(t["status"] == "failed" for t in tests)
        results.append({
            "assertionResults": tests,
            "endTime": 1795404345000 + suite,
            "message": "  ● large suite failed" if failed else "",
            "name": f"/builds/sample/projects/jest/large/large_{suite}.test.js",
            "startTime": 1795404344300 + suite,
            "status": "failed" if failed else "passed",
            "summary": "",
        })
    doc = {
        "numFailedTestSuites": sum(r["status"] == "failed" for r in results),
        "numFailedTests": JEST_COUNTS["failed"],
        "numPassedTestSuites": sum(r["status"] == "passed" for r in results),
        "numPassedTests": JEST_COUNTS["passed"],
        "numPendingTestSuites": 0,
        "numPendingTests": JEST_COUNTS["skipped"],
        "numRuntimeErrorTestSuites": 0,
        "numTodoTests": 0,
        "numTotalTestSuites": files,
        "numTotalTests": files * per_file,
        "openHandles": [],
        "startTime": 1795404344090,
        "success": False,
        "testResults": results,
        "wasInterrupted": False,
    }
    path.write_text(json.dumps(doc, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
    return path


def generate(out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "junit": write_junit(out_dir / JUNIT_NAME),
        "jest": write_jest(out_dir / JEST_NAME),
    }


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    for path in generate(target).values():
        print(path, path.stat().st_size)
