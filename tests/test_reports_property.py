"""Property test: any JUnit document we generate parses back to the counts we wrote.

Generated documents vary the root (<testsuites> or a bare <testsuite>), nesting depth, names
with XML-special and non-ASCII characters, time formats, outcome elements and output.
"""

from __future__ import annotations

import collections
from xml.sax.saxutils import escape, quoteattr

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from qahub_lite.reports import parse_report  # noqa: E402

OUTCOMES = ["passed", "failed", "error", "skipped"]
STATUS = {"passed": "PASSED", "failed": "FAILED", "error": "BROKEN", "skipped": "SKIPPED"}
text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=20)
times = st.one_of(st.none(), st.sampled_from(["0", "0.017", "1,234.5", "0,288", "12"]))


@st.composite
def cases(draw):
    outcome = draw(st.sampled_from(OUTCOMES))
    return outcome, draw(text), draw(times), draw(st.booleans())


@st.composite
def documents(draw):
    suites = draw(st.lists(st.lists(cases(), max_size=8), min_size=1, max_size=4))
    nested = draw(st.booleans())
    wrap = draw(st.booleans())
    parts, expected, n = [], collections.Counter(), 0
    for index, suite in enumerate(suites):
        body = []
        for outcome, message, time, output in suite:
            n += 1
            name = f"case {n} <&> ünï {message}"  # unique by construction
            attrs = f"name={quoteattr(name)} classname={quoteattr('pkg.Class' + str(index))}"
            if time is not None:
                attrs += f' time="{time}"'
            inner = ""
            if outcome != "passed":
                tag = {"failed": "failure", "error": "error", "skipped": "skipped"}[outcome]
                inner += f"<{tag} message={quoteattr(message)}>{escape(message)}</{tag}>"
            if output:
                inner += f"<system-out>{escape(message)}</system-out>"
            body.append(f"<testcase {attrs}>{inner}</testcase>" if inner else f"<testcase {attrs}/>")
            expected[STATUS[outcome]] += 1
        content = "".join(body)
        if nested:
            content = f'<testsuite name="inner {index}">{content}</testsuite>'
        parts.append(f'<testsuite name="suite {index}" tests="999">{content}</testsuite>')
    xml = "".join(parts)
    if wrap or len(parts) > 1:
        xml = f"<testsuites>{xml}</testsuites>"
    return '<?xml version="1.0" encoding="utf-8"?>\n' + xml, expected


@settings(max_examples=150, deadline=None)
@given(documents())
def test_generated_junit_round_trips_counts(tmp_path_factory, doc):
    xml, expected = doc
    path = tmp_path_factory.mktemp("junit") / "report.xml"
    path.write_text(xml, encoding="utf-8")
    report = parse_report(path)
    assert report.format == "junit"
    got = collections.Counter(r.status for r in report.results)
    assert got == expected
    assert not any(r.flaky for r in report.results)
