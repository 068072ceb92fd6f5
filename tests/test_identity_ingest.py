"""Issue 11, on the server: one identity per test (and variant), nothing overwritten silently.

Against the real app on a real SQLite file (the `api` fixture)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.engines


@pytest.fixture
def shop(api):
    project = api.project()
    api.test_case(project["id"], "Adds numbers", code="TC-042")
    return project


def _ingest(api, project, results, **fields):
    r = api.post("/api/v1/ingest", {"project_id": project["id"], "results": results, **fields})
    assert r.status_code in (201, 207), r.text
    return r.json()


def _results(api, run_id, query=""):
    r = api.get(f"/api/v1/runs/{run_id}/results{query}")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_two_items_with_one_identity_in_one_request_are_a_visible_conflict(api, shop):
    # Before: `accepted: 2` and one result stored, the first one silently overwritten.
    answer = _ingest(api, shop, [
        {"test_case_code": "TC-042", "status": "FAILED", "error_message": "add[2]: 5 != 6"},
        {"test_case_code": "TC-042", "status": "PASSED"},
        {"suite": "calc", "title": "subtracts", "status": "PASSED"},
        {"suite": "calc", "title": "subtracts", "status": "FAILED"},
    ])
    assert (answer["accepted"], answer["rejected"]) == (2, 2)
    errors = {e["index"]: e["error"] for e in answer["errors"]}
    assert errors[1].startswith("duplicate of result 0: the same test (TC-042) twice in one request")
    assert errors[3].startswith("duplicate of result 2: the same test (calc › subtracts)")
    stored = _results(api, answer["run_id"])
    assert sorted(r["status"] for r in stored) == ["FAILED", "PASSED"]  # the first of each, kept
    assert api.get(f"/api/v1/runs/{answer['run_id']}").json()["counts"]["total"] == 2


def test_variants_are_results_of_their_own_and_the_case_shows_the_worst(api, shop):
    # The Ant report of issue 11: add[0..3] all tagged TC-042, add[2] fails.
    answer = _ingest(api, shop, [
        {"test_case_code": "TC-042", "status": "PASSED", "variant": "0"},
        {"test_case_code": "TC-042", "status": "PASSED", "variant": "1"},
        {"test_case_code": "TC-042", "status": "FAILED", "variant": "2", "error_message": "5 != 6"},
        {"test_case_code": "TC-042", "status": "PASSED", "variant": "3"},
    ])
    assert (answer["accepted"], answer["rejected"]) == (4, 0)
    run = api.get(f"/api/v1/runs/{answer['run_id']}").json()
    assert (run["counts"]["total"], run["counts"]["failed"], run["verdict"]) == (4, 1, "FAILED")
    stored = _results(api, answer["run_id"])
    assert sorted((r["variant"], r["status"]) for r in stored) == [
        ("0", "PASSED"), ("1", "PASSED"), ("2", "FAILED"), ("3", "PASSED")]
    assert {r["test_case_code"] for r in stored} == {"TC-042"}
    [case] = api.get(f"/api/v1/runs/{answer['run_id']}/cases").json()["data"]
    assert (case["test_case_code"], case["status"], case["variants"], case["results"]) == (
        "TC-042", "FAILED", ["0", "1", "2", "3"], 4)


def test_the_seed_001_upsert_still_updates_the_same_test_and_variant(api, shop):
    answer = _ingest(api, shop, [
        {"test_case_code": "TC-042", "status": "FAILED", "variant": "chromium", "duration_ms": 10},
        {"test_case_code": "TC-042", "status": "PASSED", "variant": "firefox"},
    ], status="RUNNING")
    run_id = answer["run_id"]
    r = api.post(f"/api/v1/runs/{run_id}/results", {"results": [
        {"test_case_code": "TC-042", "status": "PASSED", "variant": "chromium", "bug_ticket_key": "LIN-42"}]})
    assert r.status_code == 201 and r.json()["accepted"] == 1
    stored = {r["variant"]: r for r in _results(api, run_id)}
    assert set(stored) == {"chromium", "firefox"}
    assert (stored["chromium"]["status"], stored["chromium"]["bug_ticket_key"], stored["chromium"]["duration_ms"]) == (
        "PASSED", "LIN-42", 10)


def test_a_variant_keeps_its_own_history_and_no_variant_keeps_the_old_one(api, shop):
    ids = {}
    for variant in ("", "chromium", ""):
        answer = _ingest(api, shop, [{"suite": "cart.spec.ts", "title": "adds", "status": "PASSED",
                                      **({"variant": variant} if variant else {})}], ci={"branch": "main"})
        ids.setdefault(variant, set()).add(_results(api, answer["run_id"])[0]["test_id"])
    assert len(ids[""]) == 1 and len(ids["chromium"]) == 1 and ids[""] != ids["chromium"]


def test_unknown_codes_say_in_this_project(api, shop):
    other = api.project("Other")
    api.test_case(other["id"], "Elsewhere", code="TC-777")
    answer = _ingest(api, shop, [{"test_case_code": "TC-777", "status": "PASSED"}])
    assert answer["errors"] == [{"index": 0, "error": "test_case_code TC-777 not found in this project"}]
    kept = _ingest(api, shop, [{"test_case_code": "TC-777", "status": "PASSED", "title": "elsewhere"}],
                   unknown_codes="unlink")
    assert kept["accepted"] == 1 and _results(api, kept["run_id"])[0]["test_case_code"] is None


def test_tags_are_stored_and_filter_results_and_tests(api, shop):
    answer = _ingest(api, shop, [
        {"suite": "a", "title": "login", "status": "PASSED", "tags": ["smoke", "auth"]},
        {"suite": "a", "title": "logout", "status": "FAILED", "tags": ["auth"]},
        {"suite": "a", "title": "search", "status": "PASSED"},
    ], ci={"branch": "main"})
    run_id = answer["run_id"]
    assert {r["title"]: r["tags"] for r in _results(api, run_id)} == {
        "login": ["smoke", "auth"], "logout": ["auth"], "search": []}
    assert [r["title"] for r in _results(api, run_id, "?tag=smoke")] == ["login"]
    assert sorted(r["title"] for r in _results(api, run_id, "?tag=auth")) == ["login", "logout"]
    assert _results(api, run_id, "?tag=nope") == []
    tests = api.get(f"/api/v1/projects/{shop['id']}/tests?tag=smoke&branch=main")
    assert tests.status_code == 200, tests.text
    assert [t["title"] for t in tests.json()["data"]] == ["login"]
    everything = api.get(f"/api/v1/projects/{shop['id']}/tests?branch=main").json()["data"]
    assert len(everything) == 3


def test_a_run_records_when_its_tests_started(api, shop):
    answer = _ingest(api, shop, [{"title": "t", "status": "PASSED"}], started_at="2026-11-23T03:28:22.138Z",
                     duration_ms=24263)
    run = api.get(f"/api/v1/runs/{answer['run_id']}").json()
    assert run["started_at"].startswith("2026-11-23T03:28:22.138") and run["duration_ms"] == 24263


def test_a_run_start_the_storage_cannot_hold_is_refused_with_its_name(api, shop):
    # Bounded like every other instant of the API (issue 12): year 1 would poison every list.
    r = api.post("/api/v1/ingest", {"project_id": shop["id"], "started_at": "0001-01-01T00:00:00+14:00",
                                    "results": [{"title": "t", "status": "PASSED"}]})
    assert r.status_code == 400 and "started_at" in r.json()["message"], r.text
    schema = api.get("/api/v1/openapi.json").json()["components"]["schemas"]["IngestIn"]
    assert "1970-01-01" in str(schema["properties"]["started_at"])


def test_qualitypilot_duplicates_become_attempts_and_take_a_variant(api):
    body = {"repo": "acme/shop", "branch": "main", "framework": "playwright",
            "summary": {"total": 3, "passed": 2, "failed": 1},
            "cases": [
                {"name": "checkout", "status": "failed", "errorMessage": "boom"},
                {"name": "checkout", "status": "passed"},
                {"name": "checkout", "status": "passed", "variant": "firefox"},
            ]}
    r = api.client.post("/api/v1/test-runs", json=body, headers={"X-API-Key": api.admin_key})
    assert r.status_code == 202, r.text
    stored = {x["variant"]: x for x in _results(api, r.json()["id"])}
    assert set(stored) == {"", "firefox"}
    assert (stored[""]["status"], stored[""]["flaky"], stored[""]["attempts"]) == ("PASSED", True, 2)
    assert stored[""]["previous_attempts"] == [{"status": "FAILED", "error_message": "boom"}]


def test_two_differently_named_qualitypilot_cases_of_one_code_stay_two_results(api):
    # Same @qa-hub code, different tests: not retries of one. Folding them as attempts would
    # turn the failure into a flaky pass and hide it.
    project = api.project("Linked", repo="acme/linked")
    api.test_case(project["id"], "Login", code="TC-7")
    body = {"repo": "acme/linked", "branch": "main", "framework": "jest",
            "summary": {"total": 2, "passed": 1, "failed": 1},
            "cases": [
                {"name": "logs in @qa-hub('TC-7')", "status": "failed", "errorMessage": "boom"},
                {"name": "logs in again @qa-hub('TC-7')", "status": "passed"},
            ]}
    r = api.client.post("/api/v1/test-runs", json=body, headers={"X-API-Key": api.admin_key})
    assert r.status_code == 202, r.text
    stored = _results(api, r.json()["id"])
    assert sorted(x["status"] for x in stored) == ["FAILED", "PASSED"]
    assert not any(x["flaky"] for x in stored)


def test_the_run_page_shows_variants_and_filters_by_tag(api):
    import re

    from qahub_lite.core import users
    from qahub_lite.db.database import direct_connection

    project = api.project("Dash")
    answer = _ingest(api, project, [
        {"suite": "cart.spec.ts", "title": "adds", "status": "PASSED", "variant": "firefox", "tags": ["smoke"]},
        {"suite": "cart.spec.ts", "title": "removes", "status": "PASSED", "tags": ["slow"]},
    ])
    with direct_connection(api.config) as conn:
        users.create_user(conn, "ann", tenant_id=api.tenant_id, role="admin", password="ann's password")
    token = re.search(r'name="csrf" value="([^"]+)"', api.client.get("/login").text).group(1)
    signed_in = api.client.post("/login", data={"csrf": token, "username": "ann", "password": "ann's password"},
                                follow_redirects=False)
    assert signed_in.status_code == 303
    page = api.client.get(f"/runs/{answer['short_id']}").text
    assert '<span class="badge" title="variant">firefox</span>' in page and "#smoke" in page
    tagged = api.client.get(f"/runs/{answer['short_id']}", params={"tag": "smoke"}).text
    table = tagged.split('id="results"', 1)[1]
    assert "adds" in table and "removes" not in table and "Tagged <span" in table


def test_the_failures_of_two_variants_are_told_apart_on_the_run_page(api):
    import re

    from qahub_lite.core import users
    from qahub_lite.db.database import direct_connection

    project = api.project("Browsers")
    answer = _ingest(api, project, [
        {"suite": "cart.spec.ts", "title": "adds VAT", "status": "FAILED", "variant": "chromium", "error_message": "a"},
        {"suite": "cart.spec.ts", "title": "adds VAT", "status": "FAILED", "variant": "firefox", "error_message": "b"},
    ])
    with direct_connection(api.config) as conn:
        users.create_user(conn, "bo", tenant_id=api.tenant_id, role="admin", password="bo's password 1")
    token = re.search(r'name="csrf" value="([^"]+)"', api.client.get("/login").text).group(1)
    api.client.post("/login", data={"csrf": token, "username": "bo", "password": "bo's password 1"})
    page = api.client.get(f"/runs/{answer['short_id']}").text
    failures = page.split('id="failures"', 1)[1].split("</section>", 1)[0]
    headings = re.findall(r"<h3>.*?</h3>", failures, re.S)
    assert len(headings) == 2 and len(set(headings)) == 2  # not two identical "adds VAT" headings
    assert any("chromium" in h for h in headings) and any("firefox" in h for h in headings)


def test_a_runs_cases_come_in_bounded_pages(api, shop):
    """A run can link any number of results to one case (a variant each) or to many cases: the
    cases answer lists at most 100 variants a case and pages of `limit` cases, whatever the run."""
    api.test_case(shop["id"], "Subtracts", code="TC-043")
    api.test_case(shop["id"], "Divides", code="TC-044")
    results = [{"test_case_code": "TC-042", "status": "PASSED", "variant": f"v{i:03d}"} for i in range(150)]
    results += [{"test_case_code": "TC-043", "status": "FAILED"}, {"test_case_code": "TC-044", "status": "SKIPPED"}]
    run = _ingest(api, shop, results)["run_id"]
    [big] = [c for c in api.get(f"/api/v1/runs/{run}/cases").json()["data"] if c["test_case_code"] == "TC-042"]
    assert big["results"] == 150 and big["variants"] == [f"v{i:03d}" for i in range(100)]
    seen, cursor = [], None
    while True:
        page = api.get(f"/api/v1/runs/{run}/cases", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        assert len(page.json()["data"]) <= 2
        seen += [(c["test_case_code"], c["status"]) for c in page.json()["data"]]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == [("TC-042", "PASSED"), ("TC-043", "FAILED"), ("TC-044", "SKIPPED")]
    for bad in ({"limit": 0}, {"limit": 1001}, {"cursor": "YWJj"}, {"offset": 5}):
        assert api.get(f"/api/v1/runs/{run}/cases", params=bad).status_code == 400, bad
