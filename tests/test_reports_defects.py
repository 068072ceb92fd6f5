"""The parser defects of issue 11 (item 5) and issue 17 (items 4, 5 and TAP TODO), each pinned by a
hand-made fixture in tests/corpus/handmade/ written from the format's documentation.

Sources (see also the comment at the top of each XML fixture):
* go124-build-fail.json: Go >= 1.24 ``go test -json`` build events. Shape checked against published
  fixtures of other projects: ``{"ImportPath":"m [m.test]","Action":"build-output"}`` ...
  ``{"Action":"fail","Package":"m","FailedBuild":"m [m.test]"}`` (captured from Go 1.26 in a
  public Go project's tests) and the ``pkg.test`` ImportPath variant with ``[setup failed]``.
* go-package-fail-after-pass.json: ``go test -json`` of a package whose TestMain fails after
  m.Run and of a package panicking in a goroutine after its test passed (test2json writes the
  package's own output and a package-level ``fail`` without ``Test``).
* jest-retry-all-failed.json: Jest 30 ``--json`` shape (tests/corpus/generated/jest) with a test
  that failed all ``invocations`` and carries no ``retryReasons``.
* tap-todo.tap / tap-todo-node.tap: TAP 14 spec (testanything.org: a TODO test point that passes
  is a bonus, a failing one is not a failure of the suite) and node:test's TAP reporter, whose
  summary counts todo tests apart from pass/fail.
"""

from __future__ import annotations

import collections
import re
from pathlib import Path

import pytest

from qahub_lite.payload import native_result
from qahub_lite.reports import ReportError, detect_format, iter_report_files, parse_report

CORPUS = Path(__file__).parent / "corpus"
HANDMADE = CORPUS / "handmade"
DOCS = Path(__file__).parent.parent / "docs" / "formats.md"

# (file, format, passed, failed, skipped, broken, flaky, framework label)
EXPECTED = [
    ("go124-build-fail.json", "go-json", 1, 0, 0, 2, 0, "go"),
    ("go-package-fail-after-pass.json", "go-json", 3, 0, 0, 2, 0, "go"),
    ("nunit2-success-only.xml", "nunit", 2, 2, 1, 0, 0, "nunit"),
    ("nunit3-test-suite-root.xml", "nunit", 2, 1, 1, 1, 0, "nunit"),
    ("xunit-v2.xml", "xunit-xml", 2, 2, 1, 1, 0, "xunit"),
    ("xunit-v3.xml", "xunit-xml", 1, 1, 1, 0, 0, "xunit"),
    ("junit-nameless-testcases.xml", "junit", 3, 1, 0, 0, 0, "junit"),
    ("jest-junit-todo.xml", "junit", 1, 1, 2, 0, 0, "jest"),
    ("jest-retry-all-failed.json", "jest-json", 1, 1, 0, 0, 0, "jest"),
    ("tap-todo.tap", "tap", 3, 0, 1, 0, 0, "tap"),
    ("tap-todo-node.tap", "tap", 1, 0, 2, 0, 0, "tap"),
]


def counts(report) -> tuple[int, int, int, int, int]:
    c = collections.Counter("flaky" if r.flaky else r.status for r in report.results)
    return c["PASSED"], c["FAILED"], c["SKIPPED"], c["BROKEN"], c["flaky"]


@pytest.mark.parametrize(("name", "fmt", "p", "f", "s", "e", "fl", "label"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_handmade_fixture_counts(name, fmt, p, f, s, e, fl, label):
    path = HANDMADE / name
    assert detect_format(path) == fmt
    report = parse_report(path)
    assert report.format == fmt
    assert counts(report) == (p, f, s, e, fl)
    assert len(report.results) == p + f + s + e + fl
    assert report.framework == label
    assert all(r.status != "UNKNOWN" for r in report.results)


def test_every_handmade_fixture_is_covered():
    found = {p.name for p in iter_report_files([HANDMADE])}
    assert found == {e[0] for e in EXPECTED}


def _by_title(report):
    return {r.title: r for r in report.results}


# --- Go -----------------------------------------------------------------------------------------

def test_go124_build_failure_counted_once_with_compiler_output():
    results = _by_title(parse_report(HANDMADE / "go124-build-fail.json"))
    # one result per failed package, named after the package, never after the ImportPath
    assert set(results) == {"TestTotal", "example.com/shop/pricing", "example.com/shop/stock"}
    pricing = results["example.com/shop/pricing"]
    assert pricing.status == "BROKEN"
    assert "undefined: applyDiscount" in pricing.error_message
    stock = results["example.com/shop/stock"]  # the "pkg.test" ImportPath form, [setup failed]
    assert "expected ';', found is" in stock.error_message


def test_go_build_fail_without_package_event_is_still_one_failure(tmp_path):
    # A stream cut after build-fail (the job was killed): the failure must not vanish.
    path = tmp_path / "cut.json"
    path.write_text(
        '{"ImportPath":"example.com/x [example.com/x.test]","Action":"build-output","Output":"x.go:1: bad\\n"}\n'
        '{"ImportPath":"example.com/x [example.com/x.test]","Action":"build-fail"}\n'
    )
    results = parse_report(path).results
    assert [(r.title, r.status) for r in results] == [("example.com/x", "BROKEN")]
    assert "x.go:1: bad" in results[0].error_message


def test_go_package_failing_after_its_tests_passed_is_kept():
    results = _by_title(parse_report(HANDMADE / "go-package-fail-after-pass.json"))
    db = results["example.com/shop/db"]
    assert db.status == "BROKEN"
    assert db.error_message == "TestMain: 1 connection still open after the tests"
    mail = results["example.com/shop/mail"]
    assert mail.error_message == "panic: send on closed channel"
    assert "goroutine 7 [running]" in mail.error_stack
    assert "FAIL\texample.com/shop/mail" not in mail.error_stack  # go's summary line dropped


def test_go_package_with_a_failing_test_adds_no_package_result():
    # GO1's crash package: the panicking test explains the package failure (INDEX.md counts).
    report = parse_report(CORPUS / "generated/go/go-test.json")
    assert not any(r.title == "example.com/corpus/crash" for r in report.results)


# --- NUnit / xUnit.net --------------------------------------------------------------------------

def test_nunit2_without_result_keeps_status_and_message():
    results = _by_title(parse_report(HANDMADE / "nunit2-success-only.xml"))
    assert results["AppliesCoupon"].status == "FAILED"
    assert "But was:  100" in results["AppliesCoupon"].error_message
    assert results["RejectsNegativeQuantity"].status == "FAILED"  # only a <failure> child
    assert "ArgumentException" in results["RejectsNegativeQuantity"].error_message
    assert results["SyncsWithServer"].error_message == "needs the staging server"
    assert results["AddsItem"].status == "PASSED"


def test_nunit3_rooted_at_test_suite():
    path = HANDMADE / "nunit3-test-suite-root.xml"
    assert detect_format(path) == "nunit"
    results = _by_title(parse_report(path))
    assert results["ReadsRates"].status == "BROKEN"
    assert results["RoundsHalfUp"].tags == ["smoke"]


def test_xunit_fields():
    report = parse_report(HANDMADE / "xunit-v2.xml")
    results = _by_title(report)
    adds = results["Adds"]
    assert adds.suite_path == ["Shop.Tests.CalculatorTests"]
    assert adds.tags == ["smoke"] and adds.test_case_code == "TC-042"
    assert results["Divides(a: 10, b: 2, expected: 5)"].stdout == "dividing 10 by 2"
    failed = results["Divides(a: 1, b: 0, expected: 0)"]
    assert failed.error_message.startswith("System.DivideByZeroException")
    assert "Calculator.cs:line 9" in failed.error_stack
    assert results["Converts"].error_message == "currency service not mocked yet"
    cleanup = results["[test-class-cleanup] Shop.Tests.DatabaseTests"]
    assert cleanup.status == "BROKEN" and "still in use" in cleanup.error_message
    v3 = _by_title(parse_report(HANDMADE / "xunit-v3.xml"))
    assert (v3["RemovesItem"].file, v3["RemovesItem"].line) == ("tests/Shop.Tests/CartTests.cs", 20)
    assert v3["Checkout"].status == "SKIPPED"


def test_xunit_format_documented():
    text = DOCS.read_text(encoding="utf-8")
    assert "| `xunit-xml` |" in text


# --- JUnit --------------------------------------------------------------------------------------

def test_nameless_testcases_are_distinct_results():
    results = parse_report(HANDMADE / "junit-nameless-testcases.xml").results
    assert [r.title for r in results] == [
        "(unnamed test #1)", "(unnamed test #2)", "(unnamed test #3)", "health endpoint answers"]
    assert [r.status for r in results][:3] == ["PASSED", "FAILED", "PASSED"]
    assert all(not r.attempts for r in results)


def test_jest_junit_todo_is_skipped_like_jest_json():
    results = _by_title(parse_report(HANDMADE / "jest-junit-todo.xml"))
    todo = results["cart apply coupon codes"]
    assert todo.status == "SKIPPED" and todo.error_message == "todo"
    # The Jest JSON parser maps "todo" the same way.
    jest = _by_title(parse_report(CORPUS / "generated/jest/jest-results.json"))
    assert jest["todo: implement division"].status == "SKIPPED"


def test_tags_from_junit_properties(tmp_path):
    path = tmp_path / "tags.xml"
    path.write_text(
        '<testsuite name="s"><testcase classname="c" name="t"><properties>'
        '<property name="tags" value="smoke, checkout"/><property name="category" value="slow"/>'
        '<property name="owner" value="me"/></properties></testcase></testsuite>'
    )
    assert parse_report(path).results[0].tags == ["smoke", "checkout", "slow"]


# --- forced formats -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("rel", "forced", "looks_like"),
    [
        ("generated/pytest/pytest-junit-xunit2-default.xml", "jest-json", "junit"),
        ("generated/jest/jest-results.json", "junit", "jest-json"),
        ("handmade/xunit-v2.xml", "trx", "xunit-xml"),
        ("generated/node-test/node-test.tap", "go-json", "tap"),
    ],
)
def test_forced_wrong_format_names_what_the_file_looks_like(rel, forced, looks_like):
    with pytest.raises(ReportError) as info:
        parse_report(CORPUS / rel, format=forced)
    message = str(info.value)
    assert "malformed" not in message
    assert f"not a {forced} report" in message
    assert f"looks like {looks_like}" in message


# --- framework labels (issue 17 item 4) ---------------------------------------------------------

@pytest.mark.parametrize(
    ("rel", "label"),
    [
        ("generated/pytest/pytest-junit-xunit2-default.xml", "pytest"),
        ("generated/pytest/pytest-junit-xunit1-logging-all.xml", "pytest"),
        ("generated/jest/jest-junit-default.xml", "jest"),
        ("generated/jest/jest-junit-custom.xml", "jest"),  # custom suite name: attribute order
        ("generated/maven-surefire/TEST-com.example.corpus.FlakyTest.xml", "surefire"),
        ("generated/vitest/vitest-junit.xml", "vitest"),
        ("generated/playwright/playwright-junit.xml", "playwright"),
        ("generated/mocha/mocha-junit-reporter-default.xml", "mocha"),
        ("generated/go/go-gotestsum-junit.xml", "go"),
        ("fetched/dorny__test-reporter/__tests__/fixtures/phpunit/phpunit.xml", "phpunit"),
        # files that do not say which tool wrote them keep the format's name
        ("generated/node-test/node-test-junit-wellformed.xml", "junit"),
        ("fetched/mikepenz__action-junit-report/test_results/cunit/testFailure.xml", "junit"),
        ("fetched/dorny__test-reporter/__tests__/fixtures/external/java/junit4-complete.xml", "junit"),
        ("generated/vitest/vitest-results.json", "vitest"),
        ("generated/jest/jest-results.json", "jest"),
        ("generated/jest/jest-ctrf.json", "jest"),
        ("generated/playwright/playwright-ctrf.json", "playwright"),
        ("generated/playwright/playwright-results.json", "playwright"),
    ],
)
def test_framework_label_from_the_file(rel, label):
    report = parse_report(CORPUS / rel)
    assert report.framework == label


def test_upload_labels_the_run_with_the_tool(tmp_path):
    from qahub_lite.cli import build_parser
    from qahub_lite.cli.upload import _read

    # The real command line, so a new upload option cannot leave this test behind.
    args = build_parser().parse_args(
        ["upload", "--project", "shop", "--root", str(tmp_path), str(CORPUS / "generated/vitest/vitest-results.json")]
    )
    payload, rows = _read(args)
    assert payload.run.framework == "vitest"
    assert rows[0][1] == "jest-json"  # the format is still shown as the format


# --- Jest attempts (issue 17 item 5) ------------------------------------------------------------

def test_jest_test_failing_every_invocation_keeps_every_attempt():
    result = _by_title(parse_report(HANDMADE / "jest-retry-all-failed.json"))["pays with a card"]
    assert result.status == "FAILED" and not result.flaky
    assert [a.status for a in result.attempts] == ["FAILED", "FAILED", "FAILED"]
    assert native_result(result)["attempts"] == 3


# --- TAP TODO (issue 17 item 6) -----------------------------------------------------------------

def test_tap_todo_follows_the_spec_and_the_docs_say_so():
    results = _by_title(parse_report(HANDMADE / "tap-todo.tap"))
    assert results["rounds half up"].status == "PASSED"  # ok # TODO: a bonus
    assert results["applies coupons"].status == "SKIPPED"  # not ok # TODO: not a failure
    node = _by_title(parse_report(HANDMADE / "tap-todo-node.tap"))
    assert node["coupon codes are applied"].status == "SKIPPED"  # node counts todo apart
    assert node["refunds are booked"].status == "SKIPPED"
    rows = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\|(.*)\| `(PASSED|FAILED|BROKEN|SKIPPED)` \|$", line)
        if match:
            rows[match.group(2)] = match.group(1)
    assert "TAP `ok # TODO`" in rows["PASSED"]
    assert "TAP `not ok # TODO`" in rows["SKIPPED"] and "node:test TAP todo" in rows["SKIPPED"]
    assert "TODO" not in rows["FAILED"]
