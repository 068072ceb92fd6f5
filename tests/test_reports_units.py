"""Unit tests of the report parsers' rules: tags, times, unsafe/malformed XML, empty files,
content-based detection, retries and attachments."""

from __future__ import annotations

import gc
import json
import shutil
from pathlib import Path
from xml.parsers import expat

import pytest

from qahub_lite.reports import FORMATS, ReportError, detect_format, iter_report_files, parse_report
from qahub_lite.reports.model import MAX_OUTPUT_CHARS
from qahub_lite.reports.normalize import bound, seconds_to_ms, strip_ansi, timespan_to_ms
from qahub_lite.reports import xmlsource
from qahub_lite.reports.tags import extract

CORPUS = Path(__file__).parent / "corpus"


# --- tags ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("title", "code"),
    [
        ("@qa-hub('TC-042') login works", "TC-042"),
        ('@qa-hub("TC-042") login works', "TC-042"),
        ("login works @qa-hub( 'TC-7' )", "TC-7"),
        ("TestTableDriven/@qa-hub('TC-042')_login_works", "TC-042"),  # Go: spaces -> "_"
        ("add[2: add(2, 3) = 6 @qa-hub('TC-042')]", "TC-042"),  # Surefire parameterized name
        ("[TC-044] profile page [slow]", None),  # bracket codes are not qa-hub tags
        ("mail a@qa-hub.example", None),
        ("plain title", None),
    ],
)
def test_code_from_title(title, code):
    tags, found = extract(title)
    assert found == code


def test_code_from_marker_keyword_property_and_annotation():
    assert extract("t", keywords=["test_x", 'qahub("TC-042")'])[1] == "TC-042"
    assert extract("t", properties=[("owner", "me"), ("qa_hub_case", "TC-100")])[1] == "TC-100"
    assert extract("t", properties=[("qa-hub", "TC-101")])[1] == "TC-101"
    assert extract("t", annotations=[("issue", "x"), ("qa-hub", "TC-042")])[1] == "TC-042"
    # annotation beats the title, the title is kept untouched by extract
    assert extract("@qa-hub('TC-1') x", annotations=[("qa-hub", "TC-2")])[1] == "TC-2"


def test_plain_tags_from_title_and_tool_tags():
    tags, code = extract("@qa-hub('TC-043') @smoke logout works", tags=["@regression", "qa-hub('TC-043')"])
    assert code == "TC-043"
    assert tags == ["regression", "smoke"]


def test_tag_stays_in_title_in_parsed_results():
    report = parse_report(CORPUS / "generated/playwright/playwright-results.json")
    tagged = [r for r in report.results if r.test_case_code == "TC-042"]
    assert tagged and all(r.title.startswith("@qa-hub('TC-042')") for r in tagged)
    by_title = {(tuple(r.suite_path), r.title): r for r in report.results}
    # the same spec run by two projects stays two results, told apart by the project
    assert ("api", "basic.spec.ts", "Tagged titles") in {k[0] for k in by_title}
    assert ("smoke", "basic.spec.ts", "Tagged titles") in {k[0] for k in by_title}


def test_pytest_property_gives_code():
    for rel in ("generated/pytest/pytest-json-report.json", "generated/pytest/pytest-junit-xunit2-default.xml"):
        result = next(r for r in parse_report(CORPUS / rel).results if r.title == "test_with_property")
        assert result.test_case_code == "TC-100"


# --- times and text -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.017", 17),
        ("1,234.5", 1234500),  # thousands separator (Surefire "#,##0.###")
        ("12,345,678.9", 12345678900),
        ("1,234", 1234000),
        ("0,288", 288),  # decimal comma (locale-formatted MSTest output)
        ("1,5", 1500),
        ("1.234,5", 1234500),
        ("0.000000", 0),
        ("<<computed>>", None),
        ("", None),
        (None, None),
        (2, 2000),
    ],
)
def test_seconds_to_ms(raw, expected):
    assert seconds_to_ms(raw) == expected


def test_junit_time_with_thousands_separator(tmp_path):
    path = tmp_path / "r.xml"
    path.write_text('<testsuite name="s"><testcase name="slow" classname="C" time="1,234.5"/>'
                    '<testcase name="comma" classname="C" time="0,288"/></testsuite>')
    durations = {r.title: r.duration_ms for r in parse_report(path).results}
    assert durations == {"slow": 1234500, "comma": 288}


def test_timespan():
    assert timespan_to_ms("00:00:00.1084258") == 108
    assert timespan_to_ms("1.02:00:01.5") == (26 * 3600 + 1.5) * 1000


def test_ansi_stripped_and_output_bounded():
    assert strip_ansi("\x1b[31mred\x1b[39m \x1b]8;;http://x\x07link\x1b]8;;\x07") == "red link"
    big = bound("x" * (MAX_OUTPUT_CHARS * 2))
    assert len(big) <= MAX_OUTPUT_CHARS and "truncated" in big
    report = parse_report(CORPUS / "generated/playwright/playwright-results.json")
    assert not any("\x1b" in (r.error_message or "") + (r.error_stack or "") for r in report.results)


def test_junit_output_bounded(tmp_path):
    path = tmp_path / "r.xml"
    path.write_text(f'<testsuite><testcase name="t"><system-out>{"y" * (MAX_OUTPUT_CHARS + 10)}</system-out></testcase></testsuite>')
    (result,) = parse_report(path).results
    assert len(result.stdout) <= MAX_OUTPUT_CHARS


# --- unsafe, malformed and empty ----------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<testsuite name="&lol4;"><testcase name="a"/></testsuite>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE testsuite [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<testsuite name="x"><testcase name="&xxe;"/></testsuite>
"""

EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE testsuite SYSTEM "http://example.invalid/evil.dtd">
<testsuite name="x"><testcase name="a"/></testsuite>
"""


@pytest.mark.parametrize("content", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD], ids=["bomb", "xxe", "dtd"])
@pytest.mark.parametrize("root", ["testsuite", "TestRun", "test-run"])
def test_unsafe_xml_rejected(tmp_path, content, root):
    path = tmp_path / "evil.xml"
    path.write_text(content.replace("testsuite", root) if root != "testsuite" else content)
    with pytest.raises(ReportError) as info:
        parse_report(path)
    assert "evil.xml" in str(info.value)
    assert "line" in str(info.value)


def test_malformed_xml_names_file_and_line(tmp_path):
    path = tmp_path / "broken.xml"
    path.write_text('<testsuite name="s">\n<testcase name="a"/>\n<testcase name="b">\n</testsuite>\n')
    with pytest.raises(ReportError, match=r"broken\.xml: line 4"):
        parse_report(path)


# The expat parser of xmlsource.py, layer by layer: what parse_report above relies on.

INTERNAL_DOCTYPE = """<?xml version="1.0"?>
<!DOCTYPE testsuite [<!ELEMENT testsuite ANY>]>
<testsuite name="x"><testcase name="a"/></testsuite>
"""


@pytest.mark.parametrize(
    "content",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, INTERNAL_DOCTYPE, "\n<!DOCTYPE testsuite>\n<testsuite/>"],
    ids=["bomb", "xxe", "external-dtd", "internal-doctype", "bare-doctype"],
)
def test_xmlsource_refuses_any_doctype_at_its_line(tmp_path, content):
    path = tmp_path / "evil.xml"
    path.write_text(content)
    with pytest.raises(ReportError, match=r"evil\.xml: line 2: refused unsafe XML \(DOCTYPE '"):
        list(xmlsource.iterparse(path, frozenset({"testcase"})))


def _without_doctype_check() -> expat.XMLParserType:
    """The hardened parser as if its first defence (refusing any DOCTYPE) were missing."""
    parser = xmlsource.hardened_parser()
    parser.StartDoctypeDeclHandler = None
    return parser


def test_entity_declarations_refused_even_past_the_doctype_check(tmp_path):
    path = tmp_path / "bomb.xml"
    path.write_text(BILLION_LAUGHS)
    with pytest.raises(ReportError, match=r"bomb\.xml: line 3: refused unsafe XML \(entity declaration 'lol'"):
        list(xmlsource.feed(path, _without_doctype_check()))


def test_external_entity_reference_refused_even_past_the_entity_check(tmp_path):
    path = tmp_path / "xxe.xml"
    # in text: in an attribute value, expat itself rejects external entities
    path.write_text(EXTERNAL_ENTITY.replace('<testcase name="&xxe;"/>', '<testcase name="a">&xxe;</testcase>'))
    parser = _without_doctype_check()
    parser.EntityDeclHandler = None  # the declaration goes through; the reference must not
    with pytest.raises(ReportError, match=r"xxe\.xml: line 3: .*external entity reference 'file:///etc/passwd'"):
        list(xmlsource.feed(path, parser))


def test_external_dtd_never_requested_even_past_the_doctype_check(tmp_path):
    (tmp_path / "evil.dtd").write_text('<!ENTITY secret "leaked">')
    path = tmp_path / "dtd.xml"
    path.write_text(f'<!DOCTYPE testsuite SYSTEM "{(tmp_path / "evil.dtd").as_uri()}">\n'
                    '<testsuite><testcase name="a">&secret;</testcase></testsuite>')
    parser = _without_doctype_check()
    requested, text = [], []
    parser.ExternalEntityRefHandler = lambda *args: requested.append(args) or 1
    parser.CharacterDataHandler = text.append
    list(xmlsource.feed(path, parser))
    assert requested == [] and "leaked" not in "".join(text)  # parameter entities: never parsed


def test_undeclared_entity_is_malformed_with_line_and_column(tmp_path):
    path = tmp_path / "ent.xml"
    path.write_text('<testsuite>\n<testcase name="&xxe;"/>\n</testsuite>')
    with pytest.raises(ReportError, match=r"ent\.xml: line 2, column \d+: malformed XML \(undefined entity\)"):
        list(xmlsource.iterparse(path))


def test_malformed_line_counted_across_chunks(tmp_path):
    path = tmp_path / "big.xml"
    cases = "".join(f'<testcase classname="c" name="t{i}" time="0.1"/>\n' for i in range(5000))
    assert len(cases) > 2 * xmlsource.CHUNK_BYTES
    path.write_text(f"<testsuite>\n{cases}<testcase name='bad'></testsuite>\n")
    with pytest.raises(ReportError, match=r"big\.xml: line 5002, column 23: malformed XML \(mismatched tag\)"):
        parse_report(path)


def test_multibyte_character_split_between_chunks(tmp_path):
    path = tmp_path / "utf8.xml"
    head = '<testsuite><testcase name="'
    pad = "x" * (xmlsource.CHUNK_BYTES - len(head) - 1)  # "ü" (2 bytes) straddles the chunk boundary
    path.write_text(f'{head}{pad}über"/></testsuite>', encoding="utf-8")
    (result,) = parse_report(path).results
    assert result.title.endswith("xüber")


def test_iterparse_whole_elements_complete_detached_and_namespaced(tmp_path):
    path = tmp_path / "ns.xml"
    path.write_text('<r xmlns="urn:r" xmlns:x="urn:x"><s x:a="1"><c n="1"><f m="boom">trace</f></c>'
                    "<c n='2'/></s></r>")
    events = list(xmlsource.iterparse(path, frozenset({"c"})))
    assert [(e, el.tag) for e, el in events] == [
        ("start", "{urn:r}r"), ("start", "{urn:r}s"), ("whole", "{urn:r}c"), ("whole", "{urn:r}c"),
        ("end", "{urn:r}s"), ("end", "{urn:r}r"),
    ]
    suite, first = events[1][1], events[2][1]
    assert suite.attrib == {"{urn:x}a": "1"} and len(suite) == 0  # cases were detached
    assert [(child.tag, child.get("m"), child.text) for child in first] == [("{urn:r}f", "boom", "trace")]


@pytest.mark.parametrize("enabled", [True, False])
def test_junit_parse_restores_garbage_collector_state(enabled):
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        parse_report(CORPUS / "generated/pytest/pytest-junit-xunit2-default.xml")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_malformed_json_names_file(tmp_path):
    path = tmp_path / "jest.json"
    path.write_text('{"numTotalTests": 1, "testResults": [\n{"name": "x",\n "assertionResults": [}')
    with pytest.raises(ReportError, match=r"jest\.json"):
        parse_report(path)


@pytest.mark.parametrize("content", [b"", b"   \n\n", b"\xef\xbb\xbf"])
def test_empty_file_is_an_error(tmp_path, content):
    path = tmp_path / "results.xml"
    path.write_bytes(content)
    with pytest.raises(ReportError, match="empty"):
        parse_report(path)


def test_unrecognised_content(tmp_path):
    path = tmp_path / "notes.xml"
    path.write_text("hello, this is not a report\n")
    with pytest.raises(ReportError, match="not a recognised test report"):
        parse_report(path)


def test_missing_file():
    with pytest.raises(ReportError, match="no such file"):
        parse_report("/nonexistent/report.xml")


# --- detection from content, not names ------------------------------------------------------------

@pytest.mark.parametrize(
    ("rel", "fmt"),
    [
        ("generated/pytest/pytest-junit-xunit2-default.xml", "junit"),
        ("generated/jest/jest-results.json", "jest-json"),
        ("generated/vitest/vitest-results.json", "jest-json"),
        ("generated/playwright/playwright-results.json", "playwright-json"),
        ("generated/mocha/mocha-results.json", "mocha-json"),
        ("generated/mocha/mochawesome.json", "mochawesome"),
        ("generated/pytest/pytest-json-report.json", "pytest-json"),
        ("generated/go/go-test.json", "go-json"),
        ("generated/node-test/node-test.tap", "tap"),
        ("generated/mocha/mocha-tap.tap", "tap"),
        ("generated/jest/jest-ctrf.json", "ctrf"),
        ("fetched/dorny__test-reporter/__tests__/fixtures/dotnet-trx.trx", "trx"),
        ("fetched/dorny__test-reporter/__tests__/fixtures/dotnet-nunit.xml", "nunit"),
        ("fetched/dorny__test-reporter/__tests__/fixtures/rspec-json.json", "rspec-json"),
        ("fetched/dorny__test-reporter/__tests__/fixtures/dart-json.json", "dart-json"),
    ],
)
def test_detection_ignores_extension(tmp_path, rel, fmt):
    copy = tmp_path / "report.dat"
    shutil.copyfile(CORPUS / rel, copy)
    assert detect_format(copy) == fmt
    assert parse_report(copy).format == fmt
    assert fmt in FORMATS


def test_go_json_starting_with_plain_text_line(tmp_path):
    path = tmp_path / "go.log"
    path.write_text("FAIL\texample.com/x/broken [build failed]\n"
                    '{"Action":"run","Package":"example.com/x/ok","Test":"TestA"}\n'
                    '{"Action":"pass","Package":"example.com/x/ok","Test":"TestA","Elapsed":0.01}\n')
    report = parse_report(path)
    assert report.format == "go-json"
    assert sorted(r.status for r in report.results) == ["BROKEN", "PASSED"]


def test_explicit_format_overrides_detection_and_unknown_format_fails():
    path = CORPUS / "generated/perl-prove/perl-05-plain.tap"
    assert parse_report(path, format="tap").format == "tap"
    with pytest.raises(ReportError, match="unknown format"):
        parse_report(path, format="nope")


def test_iter_report_files_expands_folders(tmp_path):
    shutil.copytree(CORPUS / "generated/pytest", tmp_path / "pytest")
    (tmp_path / "pytest" / "README.txt").write_text("not a report")
    found = list(iter_report_files([tmp_path]))
    names = [p.name for p in found]
    assert "allure-results" in names  # the folder, once
    assert not any(n.endswith("-result.json") for n in names)
    assert "README.txt" not in names and "pytest-junit-xunit2-default.xml" in names
    assert len(found) == len(set(found))


# --- retries, attempts, attachments, suite paths --------------------------------------------------

def test_surefire_flaky_and_rerun_attempts():
    report = parse_report(CORPUS / "generated/maven-surefire/TEST-com.example.corpus.FlakyTest.xml")
    by = {r.title: r for r in report.results}
    third = by["passesOnThirdAttempt"]
    assert third.status == "PASSED" and third.flaky
    assert [a.status for a in third.attempts] == ["FAILED", "FAILED", "PASSED"]
    assert by["errorsThenPasses"].attempts[0].status == "BROKEN"
    always = by["alwaysFails"]
    assert always.status == "FAILED" and not always.flaky and len(always.attempts) == 3


def test_pytest_rerun_duplicates_become_attempts():
    report = parse_report(CORPUS / "generated/pytest/pytest-junit-xunit2-default.xml")
    by = {r.title: r for r in report.results}
    assert len(report.results) == 32  # 37 testcase elements
    assert by["test_flaky_passes_on_third_attempt"].flaky
    assert [a.status for a in by["test_flaky_passes_on_third_attempt"].attempts] == ["FAILED", "FAILED", "PASSED"]


def test_identical_passing_names_outside_pytest_stay_distinct(tmp_path):
    path = tmp_path / "jest.xml"
    path.write_text('<testsuites name="jest tests"><testsuite name="f"><testcase classname="a b" name="a b"/>'
                    '<testcase classname="a b" name="a b"/></testsuite></testsuites>')
    assert [r.flaky for r in parse_report(path).results] == [False, False]


def test_playwright_json_attempts_annotations_attachments():
    report = parse_report(CORPUS / "generated/playwright/playwright-results.json")
    flaky = next(r for r in report.results if r.title.startswith("passes on third attempt"))
    assert flaky.flaky and [a.status for a in flaky.attempts] == ["FAILED", "FAILED", "PASSED"]
    shot = next(r for r in report.results if r.title.startswith("failing locator assertion"))
    assert any(a.content_type == "image/png" and a.path.endswith(".png") for a in shot.attachments)
    assert shot.suite_path == ["chromium", "browser.spec.ts", "Browser checks"]
    expected_failure = next(r for r in report.results if r.title == "expected failure via test.fail")
    assert expected_failure.status == "PASSED"


def test_junit_attachment_lines_resolved_against_report_folder():
    path = CORPUS / "generated/playwright/playwright-junit.xml"
    report = parse_report(path)
    attached = [a for r in report.results for a in r.attachments]
    assert attached and all(Path(a.path).is_absolute() for a in attached)
    assert not any("[[ATTACHMENT|" in (r.stdout or "") for r in report.results)


def test_suite_paths_outermost_first():
    jest = parse_report(CORPUS / "generated/jest/jest-results.json")
    nested = next(r for r in jest.results if r.title == "deeply nested failing test")
    assert nested.suite_path[-3:] == ["Calculator", "nested level 1", "nested level 2"]
    node = parse_report(CORPUS / "generated/node-test/node-test.tap")
    deep = next(r for r in node.results if r.title == "deeply nested failing test")
    assert deep.suite_path == ["Calculator", "nested level 1", "nested level 2"]


def test_tap_plan_and_directives(tmp_path):
    path = tmp_path / "t.tap"
    path.write_text("TAP version 13\n1..4\nok 1 - a\nnot ok 2 - b # TODO later\nok 3 - c # SKIP no db\n")
    results = parse_report(path).results
    assert [r.status for r in results] == ["PASSED", "SKIPPED", "SKIPPED", "BROKEN"]  # bad plan last
    assert results[2].error_message == "no db"


def test_jest_suite_that_failed_to_run_is_one_broken_result():
    report = parse_report(CORPUS / "generated/jest/jest-results-with-locations.json")
    broken = [r for r in report.results if r.status == "BROKEN"]
    assert len(broken) == 1 and "Cannot find module" in broken[0].error_message


def test_records_serialise_with_msgspec():
    import msgspec

    report = parse_report(CORPUS / "generated/pytest/pytest-json-report.json")
    data = json.loads(msgspec.json.encode(report))
    assert data["format"] == "pytest-json" and len(data["results"]) == 32
