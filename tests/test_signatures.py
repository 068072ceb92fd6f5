"""Failure signature rules (core/signatures.py, docs/triage.md), pinned by tables of real
messages from Python, Java, JavaScript, Go and .NET: which failures must be one signature and
which must stay apart.

Messages quoted inline come from the shared test-report corpus (the file is named beside
each); the report-file tests parse corpus reports kept in tests/corpus with the real parsers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qahub_lite.core.signatures import compile_masks, compute, frames, split_type
from qahub_lite.reports import parse_report

pytestmark = pytest.mark.engines

CORPUS = Path(__file__).resolve().parent / "corpus"

JEST_STACK = (
    "Error: expect(received).toBe(expected) // Object.is equality\n\nExpected: {e}\nReceived: {r}\n"
    "    at Object.toBe (/builds/sample/projects/jest/large/large_9.test.js:9:23)\n"
    "    at Promise.finally.completed (/builds/sample/projects/jest/node_modules/jest-circus/build/jestAdapterInit.js:1834:28)\n"
    "    at new Promise (<anonymous>)\n"
    "    at callAsyncCircusFn (/builds/sample/projects/jest/node_modules/jest-circus/build/jestAdapterInit.js:1774:10)"
)
JAVA_STACK = (
    "java.lang.AssertionError: Add(2, 2) should be 5 expected:<5> but was:<4>\n"
    "\tat org.junit.Assert.fail(Assert.java:89)\n\tat org.junit.Assert.failNotEquals(Assert.java:835)\n"
    "\tat org.junit.Assert.assertEquals(Assert.java:647)\n"
    "\tat com.example.corpus.CalculatorTest.failsWithAssertion(CalculatorTest.java:{line})\n"
    "\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke0(Native Method)"
)
DOTNET_STACK = (
    "   at DotnetTests.Unit.Calculator.Div(Int32 a, Int32 b) in {root}/DotnetTests.Unit/Calculator.cs:line 9\n"
    "   at DotnetTests.XUnitTests.CalculatorTests.Exception_In_TargetTest() in "
    "{root}/DotnetTests.XUnitTests/CalculatorTests.cs:line {line}"
)
PY_STACK = (
    'Traceback (most recent call last):\n  File "{root}/tests/test_login.py", line {line}, in test_login\n'
    '    page.login(user)\n  File "{root}/app/pages.py", line 88, in login\n    wait_for("#submit")\n'
    '  File "{root}/.venv/lib/python3.11/site-packages/playwright/sync_api/_generated.py", line 9, in wait_for\n'
)

# (language, why, (message, stack), (message, stack)): each pair must be ONE signature.
SAME = [
    ("python", "numbers differ (pytest-junit-large-20000.xml)",
     ("AssertionError: case 10007 failed: expected value 20014 but got 20015\nassert (10007 % 500) != 7", None),
     ("AssertionError: case 1507 failed: expected value 3014 but got 3015\nassert (1507 % 500) != 7", None)),
    ("python", "quoted values and the diff below differ (pytest-junit-xunit1)",
     ("AssertionError: assert 'a' == 'b'\n  \n  - b\n  + a", None),
     ("AssertionError: assert 'test' == 'xyz'\n  - xyz\n  + test", None)),
    ("python", "durations, line numbers and checkout folders differ",
     ("TimeoutError: waited 5003ms for #submit", PY_STACK.format(root="/home/runner/work/shop", line=12)),
     ("TimeoutError: waited 4999ms for #submit", PY_STACK.format(root="/builds/acme/shop", line=14))),
    ("javascript", "Expected/Received numbers differ (jest-results-large-5000.json)",
     (None, JEST_STACK.format(e=20367170, r=20367169)), (None, JEST_STACK.format(e=1026170, r=1026169))),
    ("javascript", "a timeout's duration differs (playwright-results.json)",
     ("\x1b[31mTest timeout of 300ms exceeded.\x1b[39m", None), ("Test timeout of 30000ms exceeded.", None)),
    ("java", "line numbers of the frames differ (TEST-...CalculatorTest.xml)",
     ("Add(2, 2) should be 5 expected:<5> but was:<4>", JAVA_STACK.format(line=19)),
     ("Add(2, 3) should be 6 expected:<6> but was:<5>", JAVA_STACK.format(line=27))),
    ("go", "line and values differ (go-test.json)",
     ("calc_test.go:21: Add(2, 2) = 4; want 5", None), ("calc_test.go:65: Add(2, 3) = 5; want 6", None)),
    ("go", "a goroutine address differs",
     ("panic: runtime error: invalid memory address or nil pointer dereference [signal SIGSEGV: segmentation "
      "violation code=0x1 addr=0x0 pc=0x4f3a2c]", None),
     ("panic: runtime error: invalid memory address or nil pointer dereference [signal SIGSEGV: segmentation "
      "violation code=0x1 addr=0x18 pc=0x4f9b11]", None)),
    (".net", "paths and lines differ (dotnet-trx.trx)",
     ("System.DivideByZeroException : Attempted to divide by zero.", DOTNET_STACK.format(root="C:/src", line=33)),
     ("System.DivideByZeroException : Attempted to divide by zero.", DOTNET_STACK.format(root="/home/x", line=35))),
    (".net", "expected and actual numbers differ (dotnet-trx.trx)",
     ("Assert.Equal() Failure\r\nExpected: 3\r\nActual:   2", None),
     ("Assert.Equal() Failure\r\nExpected: 10\r\nActual:   12", None)),
    ("any", "UUIDs, timestamps, hex ids and temporary paths differ",
     ("Error: order 3f1e8c2a-9b7d-4c1e-8f00-1a2b3c4d5e6f not found at 2026-12-04T10:00:01.123Z (trace 9f86d081884c7d65) "
      "reading /tmp/pytest-of-ci/pytest-7/data.json", None),
     ("Error: order 0b9d2e11-7a3c-4d2f-9e8e-aa00bb11cc22 not found at 2026-12-05T23:59:59Z (trace 1b4f0e9851971998) "
      "reading /tmp/pytest-of-ci/pytest-12/data.json", None)),
]

# Each pair must be TWO signatures.
DIFFERENT = [
    ("any", "another exception type, same words",
     ("TimeoutError: waited 5003ms for #submit", None), ("TypeError: waited 5003ms for #submit", None)),
    ("python", "ValueError vs AssertionError (pytest-junit-xunit2-default.xml)",
     ("ValueError: deep failure: xxx", None), ("AssertionError: deep failure: xxx", None)),
    ("python", "the same message raised from another function of the project",
     ("TimeoutError: waited 5003ms for #submit", PY_STACK.format(root="/r", line=12)),
     ("TimeoutError: waited 5003ms for #submit",
      PY_STACK.format(root="/r", line=12).replace("in login", "in checkout"))),
    ("javascript", "a TypeError is not an assertion (jest-results.json)",
     ("TypeError: Cannot read properties of undefined (reading 'property')", None),
     ("Error: expect(received).toBe(expected) // Object.is equality", None)),
    ("javascript", "one assertion in two test files (jest-results.json, hooks vs math)",
     (None, JEST_STACK.format(e=1, r=2)), (None, JEST_STACK.format(e=1, r=2).replace("large_9.test", "checkout.test"))),
    ("java", "ArithmeticException vs IllegalStateException (TEST-...CalculatorTest.xml)",
     ("java.lang.ArithmeticException: / by zero", None), ("java.lang.IllegalStateException: / by zero", None)),
    ("java", "another message text",
     ("java.lang.AssertionError: Add(2, 2) should be 5 expected:<5> but was:<4>", None),
     ("java.lang.AssertionError: Sub(2, 2) should be 1 expected:<1> but was:<0>", None)),
    ("go", "a panic is not a failed check (go-test.json)",
     ("panic: assignment to entry in nil map [recovered]", None), ("assignment to entry in nil map [recovered]", None)),
    (".net", "DivideByZeroException vs System.Exception (dotnet-nunit.xml)",
     ("System.DivideByZeroException : Attempted to divide by zero.", None), ("System.Exception : Test", None)),
]


@pytest.mark.parametrize("lang,why,a,b", SAME, ids=[f"{s[0]}: {s[1]}" for s in SAME])
def test_these_are_one_signature(lang, why, a, b):
    assert compute(*a)[0] == compute(*b)[0], (compute(*a), compute(*b))


@pytest.mark.parametrize("lang,why,a,b", DIFFERENT, ids=[f"{s[0]}: {s[1]}" for s in DIFFERENT])
def test_these_are_two_signatures(lang, why, a, b):
    assert compute(*a)[0] != compute(*b)[0], (compute(*a), compute(*b))


@pytest.mark.parametrize("message,kind,rest", [
    ("TimeoutError: waited 5003ms", "TimeoutError", "waited 5003ms"),
    ("java.lang.AssertionError: expected:<5>", "AssertionError", "expected:<5>"),
    ("org.opentest4j.AssertionFailedError: expected: <5> but was: <4>", "AssertionFailedError", "expected: <5> but was: <4>"),
    ("System.DivideByZeroException : Attempted to divide by zero.", "DivideByZeroException", "Attempted to divide by zero."),
    ("System.Exception : Test", "Exception", "Test"),
    ("Error: beforeAll hook failed", "Error", "beforeAll hook failed"),
    ("panic: assignment to entry in nil map", "panic", "assignment to entry in nil map"),
    ("E       AssertionError: assert 1 == 2", "AssertionError", "assert 1 == 2"),
    ("calc_test.go:21: Add(2, 2) = 4; want 5", "", "calc_test.go:21: Add(2, 2) = 4; want 5"),
    ("Assert.True() Failure", "", "Assert.True() Failure"),
])
def test_the_exception_type_is_read_from_the_message(message, kind, rest):
    assert split_type(message) == (kind, rest)


def test_frames_are_the_projects_own_innermost_without_lines_or_folders():
    assert frames(JEST_STACK.format(e=1, r=2)) == ["Object.toBe@large_<n>.test.js"]
    assert frames(JAVA_STACK.format(line=19)) == ["com.example.corpus.CalculatorTest.failsWithAssertion@CalculatorTest.java"]
    assert frames(DOTNET_STACK.format(root="C:/x", line=1)) == [
        "DotnetTests.Unit.Calculator.Div", "DotnetTests.XUnitTests.CalculatorTests.Exception_In_TargetTest"]
    # Python prints the innermost frame last; site-packages frames are skipped.
    assert frames(PY_STACK.format(root="/r", line=1)) == ["login@pages.py", "test_login@test_login.py"]


def test_a_project_mask_rule_merges_what_the_built_in_rules_keep_apart():
    a = ("Error: login failed for tenant acme-eu", None)
    b = ("Error: login failed for tenant globex-us", None)
    assert compute(*a)[0] != compute(*b)[0]
    masks = compile_masks([r"tenant [a-z]+-[a-z]+"])
    assert compute(*a, "FAILED", masks)[0] == compute(*b, "FAILED", masks)[0]
    assert "<masked>" in compute(*a, "FAILED", masks)[2]


def test_only_the_head_of_a_huge_message_counts():
    huge = "AssertionError: boom " + "x" * 5_000_000
    digest, kind, normalized = compute(huge, "y" * 5_000_000)
    assert kind == "AssertionError" and len(normalized) <= 400 and len(digest) == 16


@pytest.mark.parametrize("path,groups,failures", [
    ("generated/pytest/pytest-junit-xunit2-default.xml", 10, 10),
    ("generated/maven-surefire/TEST-com.example.corpus.CalculatorTest.xml", 4, 4),
    ("generated/jest/jest-results.json", 10, 12),
    ("generated/go/go-test.json", 10, 12),
    ("fetched/dorny__test-reporter/__tests__/fixtures/dotnet-trx.trx", 5, 5),
])
def test_real_reports_group_as_expected(path, groups, failures):
    """Whole corpus reports through the real parsers: how many distinct problems each holds."""
    report = parse_report(CORPUS / path)
    failing = [r for r in report.results if r.status in ("FAILED", "BROKEN", "TIMEOUT")]
    signatures = {compute(r.error_message, r.error_stack, r.status)[0] for r in failing}
    assert (len(signatures), len(failing)) == (groups, failures)
