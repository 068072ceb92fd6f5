"""The invariants of DESIGN.md "What the same test means", as Hypothesis properties.

For any generated report (JUnit XML or Jest JSON, with repeated names, parameters and
@qa-hub codes shared by several tests), parsed and sent the way `qahub upload` does it
(reports/identity.py, then upload.send into the real app on a real SQLite file):

1. the multiset of final statuses the parser produced equals what the hub stored for the run;
2. the run's verdict is FAILED exactly when a final result failed, broke or timed out;
3. the client's own check (upload.verify) agrees.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qahub_lite.client import QahubClient
from qahub_lite.payload import Payload, RunInfo, add_report
from qahub_lite.reports import parse_report
from qahub_lite.reports.identity import assign_variants, normalize
from qahub_lite.upload import send, verify

_CODES = ("TC-1", "TC-2", "TC-404")  # TC-404 is in no library: kept unlinked
_FAILING = {"FAILED", "BROKEN", "TIMEOUT"}

names = st.tuples(
    st.sampled_from(["adds", "subtracts", "ünïcödé 名前", "a > b › c"]),
    st.one_of(st.none(), st.integers(0, 3).map(lambda n: f"[{n}]")),
    st.one_of(st.none(), st.sampled_from(_CODES).map(lambda c: f" @qa-hub('{c}')")),
).map(lambda parts: "".join(p for p in parts if p))
junit_case = st.tuples(st.sampled_from(["calc.A", "calc.B", "tests.test_shop"]), names,
                       st.sampled_from(["pass", "failure", "error", "skipped"]), st.integers(0, 1))
# Which tool wrote the JUnit file changes how reports/identity.py reads it: a plain writer,
# pytest (classname -> file), Playwright (one suite per project of the same spec -> variants).
dialects = st.sampled_from([
    ("", [("s", None), ("t", None)]),
    (' name="pytest tests"', [("pytest", None), ("pytest", None)]),
    (' id=""', [("cart.spec.ts", "chromium"), ("cart.spec.ts", "firefox")]),
])
jest_case = st.tuples(st.sampled_from(["src/a.test.js", "src/pricing/b.test.js"]),
                      st.lists(st.sampled_from(["Cart", "totals"]), max_size=2), names,
                      st.sampled_from(["passed", "failed", "pending", "todo"]))


def _junit(dialect, cases) -> str:
    head, suites = dialect
    body: list[list[str]] = [[], []]
    for classname, name, outcome, suite in cases:
        inner = "" if outcome == "pass" else f'<{outcome} message="m"/>'
        body[suite].append(f"<testcase classname={quoteattr(classname)} name={quoteattr(name)}>{inner}</testcase>")
    xml = "".join(
        f'<testsuite name="{suite}"{f" hostname={quoteattr(host)}" if host else ""}>{"".join(cases)}</testsuite>'
        for (suite, host), cases in zip(suites, body) if cases
    )
    return f"<testsuites{head}>{xml}</testsuites>"


def _jest(cases) -> str:
    files: dict[str, list] = {}
    for file, ancestors, title, status in cases:
        files.setdefault(file, []).append({"ancestorTitles": ancestors, "title": title, "status": status,
                                           "failureMessages": ["Error: x"] if status == "failed" else []})
    return json.dumps({"numTotalTests": len(cases), "startTime": 1795404334754, "testResults": [
        {"name": f"/repo/{file}", "status": "passed", "assertionResults": tests} for file, tests in files.items()]})


@pytest.fixture
def hub(api):
    project = api.project("Property")
    for code in _CODES[:2]:
        api.test_case(project["id"], f"case {code}", code=code)
    # The CLI's own HTTP client, over the test client's transport: the real send/verify code.
    client = QahubClient("http://testserver.local", api.admin_key, transport=api.client._transport, retries=0)
    return api, project, client


def _check(hub, suffix: str, text: str) -> None:
    api, project, client = hub
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"report{suffix}"
        path.write_text(text, encoding="utf-8")
        report = parse_report(path)
        normalize(report, Path("/repo"))
        assign_variants(report.results)
        payload = Payload(run=RunInfo(project_id=project["id"]))
        add_report(payload, report)
        outcome = send(client, payload)
    parsed = Counter(r.status for r in report.results)
    assert outcome.rejected == 0, outcome.errors
    stored = Counter(r["status"] for r in api.get(f"/api/v1/runs/{outcome.run_id}/results").json()["data"])
    assert stored == parsed
    run = api.get(f"/api/v1/runs/{outcome.run_id}").json()
    assert (run["verdict"] == "FAILED") == any(s in _FAILING for s in parsed.elements())
    assert verify(client, payload, outcome) is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dialect=dialects, cases=st.lists(junit_case, min_size=1, max_size=25))
def test_junit_statuses_stored_equal_statuses_parsed(hub, dialect, cases):
    _check(hub, ".xml", _junit(dialect, cases))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=st.lists(jest_case, min_size=1, max_size=25))
def test_jest_statuses_stored_equal_statuses_parsed(hub, cases):
    _check(hub, ".json", _jest(cases))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(statuses=st.lists(st.sampled_from(["PASSED", "FAILED", "BROKEN", "SKIPPED", "UNKNOWN", "TIMEOUT"]),
                         min_size=1, max_size=30),
       variants=st.lists(st.sampled_from(["", "chromium", "firefox"]), min_size=30, max_size=30))
def test_a_run_is_failed_exactly_when_a_final_result_failed_broke_or_timed_out(hub, statuses, variants):
    """Every canonical status, TIMEOUT included (agents' leases), through the one ingest path;
    several variants of one test case among them."""
    from qahub_lite.core import ingest, runs
    from qahub_lite.core.model import ResultRecord, RunRecord
    from qahub_lite.db.database import direct_connection

    api, project, _ = hub
    items = [
        (i, ResultRecord(status=s, test_case_code="TC-1", variant=f"{variants[i]}-{i}") if i % 3 == 0
         else ResultRecord(status=s, title=f"t{i}", variant=variants[i]))
        for i, s in enumerate(statuses)
    ]
    with direct_connection(api.config) as conn:
        outcome = ingest.store_results(conn, api.tenant_id, items, run=RunRecord(
            project_id=project["id"], name="p", source="qahub"))
        run = runs.get_run(conn, api.tenant_id, outcome.run_id)
        stored = Counter(r[0] for r in conn.execute("SELECT status FROM results WHERE run_id = ?", (outcome.run_id,)))
    assert stored == Counter(statuses) and outcome.rejected == 0
    assert (run.verdict == "FAILED") == any(s in _FAILING for s in statuses)
