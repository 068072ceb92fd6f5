"""Every corpus report parsed, its counts checked against ground truth.

Ground truth (tests/corpus/INDEX.md) is the tools' own console summaries, normalised with these
rules, which the parsers implement:

* passed  -> PASSED: passed on the first attempt, incl. expected failures that behaved as declared
  where the tool counts them as passes (Jest ``test.failing``, Vitest ``test.fails``, Playwright
  ``test.fail``) and pytest non-strict XPASS.
* failed  -> FAILED: final attempt failed (assertion or exception in the test body), incl.
  timeouts, pytest strict XPASS and mocha hook failures (mocha reports them as failing tests).
* skipped -> SKIPPED: skipped, pending, todo, fixme, ignored, aborted assumptions, xfail, and
  tests a runner reported as "did not run".
* error   -> BROKEN: errors outside a test body: fixture setup/teardown, class-level
  @BeforeClass/@BeforeAll/setUpClass, Java non-assertion exceptions where the tool separates
  errors from failures, files/packages that failed to load or build (counted once).
* flaky   -> PASSED with flaky=True: failed at least once then passed on a retry; NOT in passed.

Where a file cannot express what the run did (a reporter drops retries, pending tests or load
errors), the expected counts below are what the *file* says, and the comment names the gap with
the run's truth. Each row: (path under tests/corpus, format, passed, failed, skipped, error, flaky).
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import pytest

from qahub_lite.reports import ReportError, detect_format, iter_report_files, parse_report

CORPUS = Path(__file__).parent / "corpus"
DORNY_DIR = "fetched/dorny__test-reporter/__tests__/fixtures/"
MIKEPENZ_DIR = "fetched/mikepenz__action-junit-report/test_results/"

# ---------------------------------------------------------------------------------------------
# Generated reports (console ground truth per run in INDEX.md)
# ---------------------------------------------------------------------------------------------
GENERATED = [
    # GO1 truth 15/11/3/1/0 (30). gotestsum's JUnit and --jsonfile carry no trace of the package
    # that failed to build (only a header errors="1"), so error 0 / total 29.
    ("generated/go/go-gotestsum-junit.xml", "junit", 15, 11, 3, 0, 0),
    ("generated/go/go-gotestsum.json", "go-json", 15, 11, 3, 0, 0),
    # go test -json prints "FAIL\tpkg [build failed]" as plain text: the build error is read. Exact.
    ("generated/go/go-test.json", "go-json", 15, 11, 3, 1, 0),
    # JE1 truth 12/11/4/1/2 (30). Jest --json: exact.
    ("generated/jest/jest-results.json", "jest-json", 12, 11, 4, 1, 2),
    ("generated/jest/jest-results-with-locations.json", "jest-json", 12, 11, 4, 1, 2),
    # jest-ctrf-json-reporter omits the suite that failed to run: error 0, total 29.
    ("generated/jest/jest-ctrf.json", "ctrf", 12, 11, 4, 0, 2),
    # jest-junit records no retries (2 flaky look passed) and writes the todo test without
    # <skipped/> (looks passed): 12 + 2 + 1 = 15 passed, 3 skipped.
    # Custom config writes the load error ("Test suite failed to run") -> 1 error.
    ("generated/jest/jest-junit-custom.xml", "junit", 15, 11, 3, 1, 0),
    # ... default config omits the file that failed to load: total 29.
    ("generated/jest/jest-junit-default.xml", "junit", 15, 11, 3, 0, 0),
    # MV4 truth 7/4/2/3/3 (19) = sum of the five Surefire JUnit 4 files: exact.
    ("generated/maven-surefire/TEST-com.example.corpus.BrokenSetupTest.xml", "junit", 0, 0, 0, 1, 0),
    ("generated/maven-surefire/TEST-com.example.corpus.CalculatorTest.xml", "junit", 2, 2, 2, 2, 0),
    ("generated/maven-surefire/TEST-com.example.corpus.FlakyTest.xml", "junit", 1, 1, 0, 0, 3),
    ("generated/maven-surefire/TEST-com.example.corpus.NestedSuiteTest.xml", "junit", 1, 0, 0, 0, 0),
    ("generated/maven-surefire/TEST-com.example.corpus.ParameterizedCalcTest.xml", "junit", 3, 1, 0, 0, 0),
    # MV5 truth 12/5/2/3/0 (22) = sum of the two JUnit 5 files: exact.
    ("generated/maven-surefire-junit5/TEST-com.example.corpus.BrokenLifecycleTest.xml", "junit", 0, 0, 0, 1, 0),
    ("generated/maven-surefire-junit5/TEST-com.example.corpus.JupiterSampleTest.xml", "junit", 12, 5, 2, 2, 0),
    # MO1 truth 12/12/5/0/2 (31). Mocha JSON and CTRF: exact.
    ("generated/mocha/mocha-results.json", "mocha-json", 12, 12, 5, 0, 2),
    ("generated/mocha/mocha-ctrf.json", "ctrf", 12, 12, 5, 0, 2),
    # mochawesome, mocha's xunit and tap reporters record no retries: the 2 flaky look passed.
    ("generated/mocha/mochawesome.json", "mochawesome", 14, 12, 5, 0, 0),
    ("generated/mocha/mocha-builtin-xunit.xml", "junit", 14, 12, 5, 0, 0),
    ("generated/mocha/mocha-tap.tap", "tap", 14, 12, 5, 0, 0),
    # mocha-junit-reporter also never writes pending tests: 26 testcases.
    ("generated/mocha/mocha-junit-reporter-default.xml", "junit", 14, 12, 0, 0, 0),
    ("generated/mocha/mocha-junit-reporter-jenkins.xml", "junit", 14, 12, 0, 0, 0),
    # NT1 truth 11/10/4/0/0 (25). TAP: exact (describe suites, YAML type 'suite', not counted).
    ("generated/node-test/node-test.tap", "tap", 11, 10, 4, 0, 0),
    # node's JUnit writes a test that has subtests as a <testsuite>, not a testcase: the parent
    # test that failed because of its child is missing (failed 9, total 24).
    ("generated/node-test/node-test-junit-wellformed.xml", "junit", 11, 9, 4, 0, 0),
    # PL1 truth 9/3/3/1/0 (16) = sum of the five raw TAP streams: exact.
    ("generated/perl-prove/perl-01-basic.tap", "tap", 4, 2, 3, 0, 0),
    ("generated/perl-prove/perl-02-subtests.tap", "tap", 1, 1, 0, 0, 0),
    ("generated/perl-prove/perl-03-dies.tap", "tap", 2, 0, 0, 1, 0),
    ("generated/perl-prove/perl-04-skip-all.tap", "tap", 0, 0, 0, 0, 0),
    ("generated/perl-prove/perl-05-plain.tap", "tap", 2, 0, 0, 0, 0),
    # TAP::Formatter::JUnit turns skips and the TODO failure into plain passing testcases
    # ("4", "5"): 9 + 3 = 12 passed, 0 skipped.
    ("generated/perl-prove/perl-prove-junit.xml", "junit", 12, 3, 0, 1, 0),
    # PW1 truth 18/13/7/0/2 (40), PW2 4925/20/50/0/5. JSON and CTRF: exact.
    ("generated/playwright/playwright-results.json", "playwright-json", 18, 13, 7, 0, 2),
    ("generated/playwright/playwright-ctrf.json", "ctrf", 18, 13, 7, 0, 2),
    # Playwright's JUnit holds the final attempt only: flaky look passed.
    ("generated/playwright/playwright-junit.xml", "junit", 20, 13, 7, 0, 0),
    ("generated/playwright/playwright-junit-large-5000.xml", "junit", 4930, 20, 50, 0, 0),
    # PY1 truth 15/8/5/2/2 (32). JUnit (rerun duplicates merged), JSON and Allure: exact.
    ("generated/pytest/pytest-junit-xunit2-default.xml", "junit", 15, 8, 5, 2, 2),
    ("generated/pytest/pytest-junit-xunit1-logging-all.xml", "junit", 15, 8, 5, 2, 2),
    ("generated/pytest/pytest-junit-xunit2-system-out.xml", "junit", 15, 8, 5, 2, 2),
    ("generated/pytest/pytest-json-report.json", "pytest-json", 15, 8, 5, 2, 2),
    ("generated/pytest/allure-results", "allure", 15, 8, 5, 2, 2),
    # pytest-tap: reruns invisible (2 flaky look passed), the setup error is "not ok" (failed) and
    # the teardown-error test "ok" (passed): 15 + 2 + 1 = 18 passed, 8 + 1 = 9 failed, 0 error.
    ("generated/pytest/pytest-tap-combined.tap", "tap", 18, 9, 5, 0, 0),
    # PY2 truth 1/1/2/1/0 (5): exact in both formats.
    ("generated/pytest/pytest-junit-collection-error.xml", "junit", 1, 1, 2, 1, 0),
    ("generated/pytest/pytest-json-report-collection-error.json", "pytest-json", 1, 1, 2, 1, 0),
    # VI4 truth 12/9/6/2/2 (31). Vitest JUnit records no retries (2 flaky look passed).
    ("generated/vitest/vitest-junit.xml", "junit", 14, 9, 6, 2, 0),
    # Vitest JSON has no trace of the beforeAll hook error (its tests are just skipped): error 1.
    ("generated/vitest/vitest-results.json", "jest-json", 12, 9, 6, 1, 2),
]

# ---------------------------------------------------------------------------------------------
# dorny/test-reporter fixtures. Upstream expectation = first row of its __outputs__/*.md
# (INDEX.md): passed / failed / skipped, where upstream "failed" is our failed + error.
# ---------------------------------------------------------------------------------------------
DORNY_UPSTREAM = {
    "dart-json.json": (1, 4, 1),
    "dotnet-nunit.xml": (3, 5, 1),
    "dotnet-trx.trx": (5, 5, 1),
    "dotnet-xunitv3.trx": (1, 3, 0),
    "external/FluentValidation.Tests.trx": (803, 0, 1),
    "golang-json.json": (5, 6, 1),
    "jest-junit-eslint.xml": (1, 0, 0),
    "jest-junit.xml": (1, 4, 1),
    "external/jest/jest-react-component-test-results.xml": (1, 0, 0),
    "test-errors/jest/jest-test-results.xml": (0, 2, 0),
    "external/jest/jest-test-results.xml": (4207, 2, 30),
    "external/java/junit4-basic.xml": (5, 1, 0),
    "external/java/junit4-complete.xml": (5, 2, 1),
    "junit-with-message.xml": (0, 1, 0),
    "mocha-json.json": (1, 4, 1),
    "external/mocha/mocha-test-results.json": (833, 0, 6),
    "external/phpunit/junit-basic.xml": (8, 1, 0),
    "external/phpunit/phpcheckstyle-phpunit.xml": (28, 2, 0),
    "phpunit/phpunit.xml": (10, 2, 0),
    "external/flutter/provider-test-results.json": (268, 1, 0),
    "external/java/TEST-org.apache.pulsar.AddMissingPatchVersionTest.xml": (0, 1, 1),
    "external/java/pulsar-test-report.xml": (793, 1, 14),
    "python-xunit-pytest.xml": (6, 2, 2),
    "python-xunit-unittest.xml": (4, 2, 2),
    "rspec-json.json": (1, 1, 1),
    "external/SilentNotes.trx": (67, 0, 12),
    "swift-xunit.xml": (2, 1, 0),
    "nette-tester/BootstrapFormRenderer-report.xml": (4, 0, 0),
    "nette-tester/tester-v1.7-report.xml": (61, 1, 3),
}

# Our full reading of every dorny fixture (including those without an upstream expectation).
DORNY = [
    ("dart-json.json", "dart-json", 1, 1, 1, 3, 0),  # Dart separates errors from failures
    ("dotnet-nunit.xml", "nunit", 3, 3, 1, 2, 0),  # 2 x label="Error"
    ("dotnet-trx.trx", "trx", 5, 5, 1, 0, 0),
    ("dotnet-xunitv3.trx", "trx", 1, 1, 0, 2, 0),  # 2 x "[Test Class Cleanup Failure"
    ("golang-json.json", "go-json", 5, 6, 1, 0, 0),
    ("jest-junit-eslint.xml", "junit", 1, 0, 0, 0, 0),
    ("jest-junit.xml", "junit", 1, 4, 1, 0, 0),
    ("junit-with-message.xml", "junit", 0, 0, 0, 1, 0),
    ("mocha-json.json", "mocha-json", 1, 4, 1, 0, 0),
    ("python-xunit-pytest.xml", "junit", 6, 2, 2, 0, 0),
    ("python-xunit-unittest.xml", "junit", 4, 1, 2, 1, 0),
    ("rspec-json.json", "rspec-json", 1, 1, 1, 0, 0),
    ("swift-xunit.xml", "junit", 2, 1, 0, 0, 0),
    ("empty/dart-json.json", "dart-json", 0, 0, 0, 0, 0),
    ("empty/dotnet-trx-empty-test-definitions.trx", "trx", 0, 0, 0, 0, 0),
    ("empty/dotnet-trx.trx", "trx", 0, 0, 0, 0, 0),
    ("empty/java-junit.xml", "junit", 0, 0, 0, 0, 0),
    ("empty/jest-junit-empty-testsuite.xml", "junit", 0, 0, 0, 0, 0),
    ("empty/jest-junit.xml", "junit", 0, 0, 0, 0, 0),
    ("empty/mocha-json.json", "mocha-json", 0, 0, 0, 0, 0),
    ("empty/phpunit-empty.xml", "junit", 0, 0, 0, 0, 0),
    ("empty/rspec-json.json", "rspec-json", 0, 0, 0, 0, 0),
    ("external/FluentValidation.Tests.trx", "trx", 803, 0, 1, 0, 0),
    ("external/SilentNotes.trx", "trx", 67, 0, 12, 0, 0),
    ("external/nunit-sample.xml", "nunit", 12, 1, 4, 1, 0),  # NUnit 2; header 12/2/1 inconclusive/3
    ("external/flutter/provider-test-results.json", "dart-json", 268, 0, 0, 1, 0),
    ("external/java/TEST-org.apache.pulsar.AddMissingPatchVersionTest.xml", "junit", 0, 1, 1, 0, 0),
    ("external/java/empty_failures.xml", "junit", 2, 1, 0, 0, 0),
    ("external/java/junit4-basic.xml", "junit", 5, 1, 0, 0, 0),
    ("external/java/junit4-complete.xml", "junit", 5, 1, 1, 1, 0),
    ("external/java/pulsar-test-report.xml", "junit", 793, 1, 14, 0, 0),
    ("external/jest/jest-react-component-test-results.xml", "junit", 1, 0, 0, 0, 0),
    ("external/jest/jest-test-results.xml", "junit", 4207, 2, 30, 0, 0),
    ("external/mocha/mocha-test-results.json", "mocha-json", 833, 0, 6, 0, 0),
    ("external/phpunit/junit-basic.xml", "junit", 8, 1, 0, 0, 0),
    ("external/phpunit/phpcheckstyle-phpunit.xml", "junit", 28, 2, 0, 0, 0),
    ("nette-tester/BootstrapFormRenderer-report.xml", "junit", 4, 0, 0, 0, 0),
    ("nette-tester/tester-v1.7-report.xml", "junit", 61, 1, 3, 0, 0),
    ("phpunit/phpunit-paths.xml", "junit", 0, 6, 0, 0, 0),
    ("phpunit/phpunit.xml", "junit", 10, 2, 0, 0, 0),
    ("test-errors/jest/jest-test-results.xml", "junit", 0, 0, 0, 2, 0),
]

# ---------------------------------------------------------------------------------------------
# mikepenz/action-junit-report fixtures. Upstream expectation (INDEX.md, from its
# testParser.test.ts): (total, skipped) with retries merged; None where upstream states none.
# ---------------------------------------------------------------------------------------------
MIKEPENZ = [
    ("catch2/report.xml", 0, 1, 0, 0, 0, (1, 0)),
    ("container-structure/test.xml", 3, 0, 0, 0, 0, (3, 0)),
    ("cunit/testEmpty.xml", 0, 0, 0, 0, 0, (0, 0)),
    ("cunit/testFailure.xml", 3, 1, 0, 0, 0, (4, 0)),
    # Retries merged: fail, fail, error -> one BROKEN test; pass, fail, error -> BROKEN (last wins).
    ("flaky_retries/flaky_all_failures.xml", 0, 0, 0, 1, 0, (1, 0)),
    ("flaky_retries/flaky_success_first.xml", 0, 0, 0, 1, 0, (1, 0)),
    ("flaky_retries/flaky_with_classname_file.xml", 2, 0, 0, 0, 1, (3, 0)),
    ("issues/testDisabled.xml", 6, 4, 10, 2, 0, (22, 10)),  # status="disabled" -> skipped
    ("issues/testFailedDisabled.xml", 0, 1, 0, 0, 0, None),  # a failure element beats "disabled"
    ("junit-server-test/report.xml", 1, 0, 1, 0, 1, None),
    ("junit_flaky_failure/marathon_junit_report.xml", 0, 0, 0, 0, 1, (1, 0)),
    ("junit_flaky_failure/mixed_flaky_and_passed.xml", 2, 0, 0, 0, 1, (3, 0)),
    ("marathon_tests/com.mikepenz.DummyTest#test_02_dummy.xml", 1, 0, 0, 0, 0, (1, 0)),
    ("marathon_tests/com.mikepenz.DummyTest3#test_01.xml", 0, 1, 0, 0, 0, (1, 0)),
    ("marathon_tests/com.mikepenz.DummyUtilTest#test_01_dummy.xml", 0, 1, 0, 0, 0, (1, 0)),
    ("maven_surefire_flaky/surefire-report.xml", 0, 0, 0, 0, 1, None),
    ("mocha/mocha.xml", 1, 0, 0, 0, 0, (1, 0)),
    ("multiple/test_10.xml", 3, 0, 0, 0, 0, None),
    ("multiple/test_11.xml", 2, 1, 0, 0, 0, None),
    ("multiple/test_12.xml", 2, 0, 1, 0, 0, None),
    ("multiple_failures/test_multiple_errors.xml", 1, 0, 0, 2, 0, None),
    ("multiple_failures/test_multiple_failures.xml", 1, 2, 1, 0, 0, None),
    ("nested/junit.xml", 2, 3, 0, 0, 0, (5, 0)),
    ("nested/multi-level.xml", 3, 0, 0, 0, 0, None),
    ("nextest/basic.xml", 2, 1, 0, 0, 0, None),
    ("perl/result.xml", 1, 0, 0, 0, 0, None),
    ("python/report.xml", 1, 2, 0, 0, 0, (3, 0)),
    ("python/report_flaky.xml", 2, 2, 0, 0, 0, None),
    ("tests/email/target/surefire-reports/TEST-action.surefire.report.email.EmailAddressTest.xml", 2, 2, 0, 5, 0, None),
    ("tests/utils/target/surefire-reports/TEST-action.surefire.report.calc.AllOkTest.xml", 1, 0, 0, 0, 0, None),
    # upstream: total 1 or 2 depending on its options; we keep both testcases
    ("tests/utils/target/surefire-reports/TEST-action.surefire.report.calc.CalcUtilsTest.xml", 0, 2, 0, 0, 0, (2, 0)),
    ("tests/utils/target/surefire-reports/TEST-action.surefire.report.calc.StringUtilsTest.xml", 2, 2, 1, 0, 0, None),
    ("xunit/report.xml", 3, 1, 0, 0, 0, (4, 0)),
    ("xunit/report_fl_on_f.xml", 3, 1, 0, 0, 0, (4, 0)),
]

# Files that are not well-formed XML: a ReportError naming the file and the line, never a guess.
# (upstream mikepenz parses junit-web-test/* leniently - total 6 / 7 - we refuse the raw "<" in
# time="<<computed>>" like every XML parser must.)
MALFORMED = [
    ("generated/node-test/node-test-junit.xml", 70),  # raw "]]>" in text, per INDEX.md line 70
    (MIKEPENZ_DIR + "corrupt-junit/e2e-tests/corrupt/target/sf-reports/TEST-test.CorruptTest.xml", 18),
    (MIKEPENZ_DIR + "junit-web-test/expected.xml", 9),
    (MIKEPENZ_DIR + "junit-web-test/expectedRetries.xml", 9),
]


def counts(report) -> tuple[int, int, int, int, int]:
    c = collections.Counter("flaky" if r.flaky else r.status for r in report.results)
    # flaky results are PASSED + flaky=True and are counted only as flaky (INDEX.md rule)
    assert all(r.status == "PASSED" for r in report.results if r.flaky)
    return c["PASSED"], c["FAILED"], c["SKIPPED"], c["BROKEN"], c["flaky"]


def _check(rel: str, fmt: str, expected: tuple[int, ...]) -> None:
    path = CORPUS / rel
    assert detect_format(path) == fmt
    report = parse_report(path)
    assert report.format == fmt
    assert counts(report) == expected
    assert len(report.results) == sum(expected)


@pytest.mark.parametrize(("rel", "fmt", "p", "f", "s", "e", "fl"), GENERATED, ids=[g[0] for g in GENERATED])
def test_generated_counts(rel, fmt, p, f, s, e, fl):
    _check(rel, fmt, (p, f, s, e, fl))


@pytest.mark.parametrize(("rel", "fmt", "p", "f", "s", "e", "fl"), DORNY, ids=[d[0] for d in DORNY])
def test_dorny_fixture_counts(rel, fmt, p, f, s, e, fl):
    _check(DORNY_DIR + rel, fmt, (p, f, s, e, fl))
    if rel in DORNY_UPSTREAM:
        # upstream has no flaky/error categories: its failed = failed + error
        assert (p + fl, f + e, s) == DORNY_UPSTREAM[rel]


@pytest.mark.parametrize(("rel", "p", "f", "s", "e", "fl", "upstream"), MIKEPENZ, ids=[m[0] for m in MIKEPENZ])
def test_mikepenz_fixture_counts(rel, p, f, s, e, fl, upstream):
    _check(MIKEPENZ_DIR + rel, "junit", (p, f, s, e, fl))
    if upstream is not None:
        assert (p + f + s + e + fl, s) == upstream


def test_every_corpus_report_is_covered():
    """A report added to tests/corpus without expectations fails here."""
    covered = {g[0] for g in GENERATED} | {DORNY_DIR + d[0] for d in DORNY} | {MIKEPENZ_DIR + m[0] for m in MIKEPENZ}
    covered |= {m[0] for m in MALFORMED}
    found = {str(p.relative_to(CORPUS)) for p in iter_report_files([CORPUS / "generated", CORPUS / "fetched"])}
    assert found == covered


def test_upstream_expectation_files_are_kept():
    outputs = CORPUS / "fetched/dorny__test-reporter/__tests__/__outputs__"
    assert (CORPUS / "fetched/dorny__test-reporter/SOURCE.md").is_file()
    assert (CORPUS / "fetched/mikepenz__action-junit-report/SOURCE.md").is_file()
    text = (outputs / "dotnet-trx.md").read_text(encoding="utf-8")
    assert "fixtures/dotnet-trx.trx" in text


@pytest.mark.parametrize(("rel", "line"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_reports_name_file_and_line(rel, line):
    path = CORPUS / rel
    assert detect_format(path) == "junit"
    with pytest.raises(ReportError) as info:
        parse_report(path)
    message = str(info.value)
    assert path.name in message
    assert f"line {line}" in message


def test_large_generated_reports(tmp_path):
    sys.path.insert(0, str(CORPUS))
    try:
        import make_large
    finally:
        sys.path.remove(str(CORPUS))
    files = make_large.generate(tmp_path)
    junit = parse_report(files["junit"])
    assert counts(junit) == (19740, 40, 200, 20, 0)
    jest = parse_report(files["jest"])
    assert counts(jest) == (4930, 20, 50, 0, 0)
