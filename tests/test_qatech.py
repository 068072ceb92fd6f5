"""The QA.tech dialect (seed 003 and its public reference) on the real app: any run read by its
short id in blocking mode, runs started by plan or test cases, and reruns."""

from __future__ import annotations

import pytest

from conftest import Api
from qahub_lite.core.tenancy import create_key

pytestmark = pytest.mark.engines


def new_key(api: Api, scope: str, project_id: str | None = None) -> str:
    writer = api.client.app.state.services.db.writer
    return writer.run_sync(lambda conn: create_key(conn, api.tenant_id, scope=scope, project_id=project_id)).key


def ingested(api: Api, status: str = "COMPLETED") -> tuple[dict, dict]:
    project = api.project()
    api.post(f"/api/v1/projects/{project['id']}/test-cases",
             {"title": "Login", "code": "TC-001", "description": "A user signs in",
              "automation": {"framework": "pytest", "grep": "test_login"}})
    api.test_case(project["id"], "Checkout", "TC-002")
    run = api.post("/api/v1/ingest", {"project_id": project["id"], "status": status, "framework": "pytest",
                                       "results": [
        {"test_case_code": "TC-001", "status": "PASSED"},
        {"test_case_code": "TC-002", "status": "FAILED", "error_message": "Total is wrong\nexpected 10, got 12"},
        {"title": "test_search", "suite": "search", "status": "SKIPPED"},
        {"title": "test_export", "suite": "export", "status": "BROKEN", "error_message": "fixture crashed",
         "file": "tests/test_export.py"},
    ]}).json()
    return project, run


def test_any_run_is_read_by_short_id_with_the_seed_s_fields(api):
    _, run = ingested(api)
    body = api.get(f"/v1/run/{run['short_id']}").json()
    assert body == {"id": run["run_id"], "shortId": run["short_id"], "status": "COMPLETED", "result": "FAILED",
                    "runTestCases": []}
    every = api.get(f"/v1/run/{run['short_id']}?testCases=all").json()["runTestCases"]
    assert [(c["name"], c["status"], c["result"]) for c in every] == [
        ("Login", "COMPLETED", "PASSED"), ("Checkout", "COMPLETED", "FAILED"), ("test_search", "COMPLETED", "SKIPPED"),
        ("test_export", "ERROR", "FAILED")]
    login, checkout = every[0], every[1]
    assert set(login) == {"id", "shortId", "name", "status", "result", "resultTitle", "evaluationThought",
                          "promptGoal", "promptExamples"}
    assert (login["shortId"], login["promptGoal"], login["resultTitle"]) == ("TC-001", "A user signs in", None)
    assert (checkout["resultTitle"], checkout["evaluationThought"]) == (
        "Total is wrong", "Total is wrong\nexpected 10, got 12")
    failed = api.get(f"/v1/run/{run['run_id']}?testCases=failed").json()["runTestCases"]
    assert [c["name"] for c in failed] == ["Checkout", "test_search", "test_export"]


def test_a_running_run_has_no_result_yet_and_a_canceled_one_none_at_all(api):
    _, run = ingested(api, status="RUNNING")
    assert api.get(f"/v1/run/{run['short_id']}").json()["status"] == "RUNNING"
    assert api.get(f"/v1/run/{run['short_id']}").json()["result"] is None
    api.post(f"/api/v1/runs/{run['run_id']}/cancel")
    body = api.get(f"/v1/run/{run['short_id']}").json()
    assert (body["status"], body["result"]) == ("CANCELLED", None)


def test_errors_are_the_one_shape(api):
    _, run = ingested(api)
    r = api.get(f"/v1/run/{run['short_id']}?testCases=passed")
    assert r.status_code == 400 and r.json() == {
        "error": "Bad Request", "message": "testCases must be `failed` or `all`, not 'passed'"}
    r = api.get("/v1/run/nope1234")
    assert r.status_code == 404 and r.json()["message"] == "Run not found"
    assert api.client.get(f"/v1/run/{run['short_id']}").status_code == 401
    other = api.project("Other")
    assert api.get(f"/v1/run/{run['short_id']}", key=new_key(api, "read", other["id"])).status_code == 404


def test_start_a_run_by_plan_by_cases_or_the_whole_project(api):
    project = api.project()
    pid = project["id"]
    plan = api.post(f"/api/v1/projects/{pid}/suites", {"name": "Smoke"}).json()
    child = api.post(f"/api/v1/projects/{pid}/suites", {"name": "Smoke: cart", "parent_id": plan["id"]}).json()
    for title, suite in (("Home", plan["id"]), ("Cart", child["id"]), ("Admin", None)):
        api.post(f"/api/v1/projects/{pid}/test-cases", {"title": title, "suite_id": suite,
                                                        "automation": {"framework": "pytest"}})
    r = api.post("/v1/run", {"testPlanShortId": plan["id"], "projectShortId": pid})
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True and set(body["run"]) == {"id", "shortId", "url", "testCount", "testPlan"}
    assert (body["run"]["testCount"], body["run"]["testPlan"]) == (2, {"name": "Smoke", "shortId": plan["id"]})
    assert body["run"]["url"] == f"{api.config.public_url}/runs/{body['run']['id']}"
    status = api.get(f"/v1/run/{body['run']['shortId']}").json()
    assert (status["status"], status["result"]) == ("INITIATED", None)

    project_key = new_key(api, "write", pid)  # a project's key needs no projectShortId
    whole = api.post("/v1/run", {}, key=project_key).json()["run"]
    assert (whole["testCount"], whole["testPlan"]) == (3, None)
    assert api.client.post("/v1/run", headers=api.h(project_key)).json()["run"]["testCount"] == 3  # no body
    cases = api.post("/v1/run", {"testCaseIds": ["TC-003", "TC-001"], "projectShortId": project["slug"]}).json()
    assert cases["run"]["testCount"] == 2
    union = api.post("/v1/run", {"testPlanShortId": plan["id"], "testCaseIds": ["TC-003", "TC-001"],
                                 "projectShortId": pid}).json()
    assert union["run"]["testCount"] == 3

    assert api.post("/v1/run", {}).status_code == 400  # a tenant-wide key must name the project
    assert api.post("/v1/run", {"testCaseIds": ["TC-404"], "projectShortId": pid}).status_code == 404
    assert api.post("/v1/run", {"testPlan": "x", "projectShortId": pid}).status_code == 400
    other = api.project("Other")
    foreign_plan = api.post(f"/api/v1/projects/{other['id']}/suites", {"name": "Theirs"}).json()
    assert api.post("/v1/run", {"testPlanShortId": foreign_plan["id"], "projectShortId": pid}).status_code == 404


def test_reruns_all_failed_only_or_chosen_tests(api):
    _, run = ingested(api)
    short = run["short_id"]
    everything = api.post(f"/v1/run/{short}", {}).json()["run"]
    assert everything["testCount"] == 4 and everything["shortId"] != short
    failed = api.post(f"/v1/run/{short}", {"failedOnly": True}).json()["run"]
    assert failed["testCount"] == 2  # Checkout (FAILED) and test_export (BROKEN)
    rerun = api.get(f"/v1/run/{failed['shortId']}?testCases=all").json()
    # Checkout has no automation mapping: it fails fast; test_export came by ingest with its
    # framework, so an agent can run it by its title and file.
    by_name = {c["name"]: c for c in rerun["runTestCases"]}
    assert by_name["Checkout"]["status"] == "ERROR" and "no automation mapping" in by_name["Checkout"]["resultTitle"]
    assert by_name["test_export"]["status"] == "INITIATED"
    api.post(f"/api/v1/runs/{everything['id']}/cancel")  # its job is older: out of the way
    job = api.post("/api/v1/agent/claim", {"agent": "a", "frameworks": ["pytest"], "wait_s": 0}).json()["job"]
    assert job["run_id"] == failed["id"]
    assert [(t["title"], t["suite_path"], t["file"], t["code"]) for t in job["tests"]] == [
        ("test_export", "export", "tests/test_export.py", None)]

    original = api.get(f"/v1/run/{short}?testCases=all").json()["runTestCases"]
    chosen = api.post(f"/v1/run/{short}", {"projectTestCaseIds": [original[0]["id"], "TC-002", original[3]["id"]]})
    assert chosen.status_code == 200 and chosen.json()["run"]["testCount"] == 3
    chosen_run = api.get(f"/api/v1/runs/{chosen.json()['run']['id']}").json()
    assert chosen_run["source"] == "qatech" and chosen_run["name"].endswith("(rerun)")

    both = api.post(f"/v1/run/{short}", {"failedOnly": True, "projectTestCaseIds": ["TC-001"]})
    assert both.status_code == 400 and both.json()["message"] == "Pass failedOnly or projectTestCaseIds, not both"
    unknown = api.post(f"/v1/run/{short}", {"projectTestCaseIds": ["TC-999"]})
    assert unknown.status_code == 400 and "TC-999" in unknown.json()["message"]
    passing = api.post("/api/v1/ingest", {"project_id": chosen_run["project_id"], "results": [
        {"test_case_code": "TC-001", "status": "PASSED"}]}).json()
    green = api.post(f"/v1/run/{passing['short_id']}", {"failedOnly": True})
    assert green.status_code == 400
    assert green.json()["message"] == f"Run {passing['short_id']} has no failed tests to rerun"
    assert api.post("/v1/run/nope1234", {}).status_code == 404


@pytest.mark.parametrize("body", [{"failedOnly": "yes"}, {"projectTestCaseIds": "TC-001"}, {"all": True}])
def test_bad_rerun_bodies_are_400(api, body):
    _, run = ingested(api)
    r = api.post(f"/v1/run/{run['short_id']}", body)
    assert r.status_code == 400 and set(r.json()) == {"error", "message"}
