"""The Qualigate dialect (seed 004) on the real app: the trigger's three answers, status
polling through a test's whole life, aggregated results, ci-config, and the seed's errors in
the `{error, message}` shape."""

from __future__ import annotations

import pytest

from conftest import Api, make_api, write_config
from qahub_lite.config import load_config
from qahub_lite.core.tenancy import create_key, create_tenant

pytestmark = pytest.mark.engines


NO_AGENT = ("; no agent serves framework playwright: its tests wait until an agent with a command for it asks for "
            "work, or until jobs.queue_timeout_s")


def new_key(api: Api, scope: str, *, project_id: str | None = None, tenant_id: str | None = None) -> str:
    writer = api.client.app.state.services.db.writer
    return writer.run_sync(
        lambda conn: create_key(conn, tenant_id or api.tenant_id, scope=scope, project_id=project_id)
    ).key


def library(api: Api, n_automated: int = 2, manual: int = 0) -> dict:
    project = api.project()
    suite = api.post(f"/api/v1/projects/{project['id']}/suites", {"name": "Critical User Flows"}).json()
    cases = []
    for i in range(n_automated + manual):
        body = {"title": f"Flow {i}", "suite_id": suite["id"]}
        if i < n_automated:
            body["automation"] = {"framework": "playwright", "grep": f"flow {i}"}
        cases.append(api.post(f"/api/v1/projects/{project['id']}/test-cases", body).json())
    return {"project": project, "suite": suite, "cases": cases}


def run_job(api: Api, outcomes: dict[str, str]) -> None:
    """Play an agent: claim the job, report `outcomes` (title -> status), complete it."""
    job = api.post("/api/v1/agent/claim", {"agent": "a", "frameworks": ["playwright"], "wait_s": 0}).json()["job"]
    token = {"lease_token": job["lease_token"]}
    results = [{"title": title, "status": status, "duration_ms": 45000,
                **({"error_message": "Element not found: button[data-test='submit-order']"} if status != "PASSED"
                   else {})}
               for title, status in outcomes.items()]
    assert api.post(f"/api/v1/agent/jobs/{job['id']}/results", {**token, "results": results}).status_code == 200
    assert api.post(f"/api/v1/agent/jobs/{job['id']}/complete", {**token, "outcome": "DONE"}).status_code == 200


def test_the_three_trigger_answers_are_the_seed_s(api):
    lib = library(api, n_automated=3)
    r = api.post("/api/v1/trigger", {"test_case_id": lib["cases"][0]["id"], "browserType": "chromium",
                                      "viewportPreset": "desktop",
                                      "context": {"source": "github-actions", "pr_number": "42", "branch": "main",
                                                  "sha": "abc123def456"}})
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"success", "test_run_id", "status", "message"}
    # No agent has asked for work on this server yet: the answer says so from the start.
    assert (body["success"], body["status"], body["message"]) == (True, "pending",
                                                                    "Test run queued successfully" + NO_AGENT)

    r = api.post("/api/v1/trigger", {"test_suite_id": lib["suite"]["id"], "context": {"source": "python-script",
                                                                                      "branch": "develop"}})
    body = r.json()
    assert r.status_code == 201 and set(body) == {"success", "suite_run_id", "test_count", "status", "message"}
    assert (body["test_count"], body["status"]) == (3, "pending")
    assert body["message"] == "3 tests queued successfully" + NO_AGENT

    r = api.post("/api/v1/trigger", {"project_id": lib["project"]["id"]})
    body = r.json()
    assert r.status_code == 201 and set(body) == {"success", "test_run_ids", "test_count", "status", "message"}
    assert len(body["test_run_ids"]) == body["test_count"] == 3 and len(set(body["test_run_ids"])) == 3
    for test_run_id in body["test_run_ids"]:
        assert api.get(f"/api/v1/trigger?test_run_id={test_run_id}").json()["status"] == "pending"


def test_a_test_run_from_pending_to_passed_and_failed(api):
    lib = library(api, n_automated=2)
    ids = api.post("/api/v1/trigger", {"project_id": lib["project"]["id"]}).json()["test_run_ids"]
    first = api.get(f"/api/v1/trigger?test_run_id={ids[0]}").json()
    assert set(first) == {"id", "status", "started_at", "completed_at", "duration_ms", "steps_completed",
                          "steps_total", "error_message", "video_url", "message"}
    assert (first["id"], first["status"], first["started_at"], first["steps_completed"]) == (ids[0], "pending", None, 0)
    job = api.post("/api/v1/agent/claim", {"agent": "a", "frameworks": ["playwright"], "wait_s": 0}).json()["job"]
    running = api.get(f"/api/v1/trigger?test_run_id={ids[0]}").json()
    assert running["status"] == "running" and running["started_at"] and running["completed_at"] is None
    token = {"lease_token": job["lease_token"]}
    api.post(f"/api/v1/agent/jobs/{job['id']}/results", {**token, "results": [
        {"title": "Flow 0", "status": "PASSED", "duration_ms": 135000},
        {"title": "Flow 1", "status": "FAILED", "error_message": "assertion failed", "duration_ms": 60000}]})
    api.post(f"/api/v1/agent/jobs/{job['id']}/complete", {**token, "outcome": "DONE"})
    passed, failed = (api.get(f"/api/v1/trigger?test_run_id={i}").json() for i in ids)
    assert (passed["status"], passed["duration_ms"], passed["steps_completed"], passed["error_message"]) == (
        "passed", 135000, 1, None)
    assert passed["completed_at"] >= passed["started_at"]
    assert (failed["status"], failed["error_message"]) == ("failed", "assertion failed")

    agg = api.get(f"/api/v1/results?test_run_ids={ids[0]},{ids[1]}").json()
    assert (agg["total_tests"], agg["passed_tests"], agg["failed_tests"], agg["status"]) == (2, 1, 1, "failed")
    assert [set(r) for r in agg["results"]] == [
        {"test_run_id", "test_case_name", "status", "duration_ms", "dashboard_url"},
        {"test_run_id", "test_case_name", "status", "duration_ms", "error_message", "dashboard_url"}]
    run_id = api.get(f"/api/v1/results?test_run_ids={ids[0]}").json()["results"][0]["dashboard_url"].rsplit("/", 1)[1]
    assert agg["results"][0]["dashboard_url"] == f"{api.config.public_url}/runs/{run_id}"


def test_a_suite_run_answers_passed_or_failed_never_completed(api):
    lib = library(api, n_automated=2)
    green = api.post("/api/v1/trigger", {"test_suite_id": lib["suite"]["id"]}).json()["suite_run_id"]
    run_job(api, {"Flow 0": "PASSED", "Flow 1": "SKIPPED"})
    red = api.post("/api/v1/trigger", {"test_suite_id": lib["suite"]["id"]}).json()["suite_run_id"]
    assert api.get(f"/api/v1/trigger?suite_run_id={red}").json()["status"] == "pending"
    run_job(api, {"Flow 0": "PASSED", "Flow 1": "FAILED"})
    g = api.get(f"/api/v1/trigger?suite_run_id={green}").json()
    assert set(g) == {"id", "status", "started_at", "completed_at", "duration_ms", "total_tests", "passed_tests",
                      "failed_tests", "run_id", "message"}
    assert (g["status"], g["total_tests"], g["passed_tests"], g["failed_tests"]) == ("passed", 2, 2, 0)
    r = api.get(f"/api/v1/trigger?suite_run_id={red}").json()
    assert (r["status"], r["passed_tests"], r["failed_tests"]) == ("failed", 1, 1)
    # The run's short id and one of its test run ids poll the same suite run.
    short = api.get(f"/api/v1/runs/{red}").json()["short_id"]
    assert api.get(f"/api/v1/trigger?suite_run_id={short}").json()["status"] == "failed"
    results = api.get(f"/api/v1/results?suite_run_id={red}").json()
    assert (results["suite_run_id"], results["suite_name"], results["status"]) == (red, "Critical User Flows", "failed")
    one = results["results"][0]["test_run_id"]
    assert api.get(f"/api/v1/trigger?suite_run_id={one}").json()["id"] == one


def test_a_suite_run_s_counts_keep_canceled_and_unknown_tests_apart(api):
    lib = library(api, n_automated=3)
    canceled = api.post("/api/v1/trigger", {"test_suite_id": lib["suite"]["id"]}).json()["suite_run_id"]
    assert api.post(f"/api/v1/runs/{canceled}/cancel", {}).status_code == 200
    c = api.get(f"/api/v1/trigger?suite_run_id={canceled}").json()
    # Canceled tests neither passed nor failed, though the run's own counts file them as skipped.
    assert (c["status"], c["total_tests"], c["passed_tests"], c["failed_tests"]) == ("canceled", 3, 0, 0)

    unknown = api.post("/api/v1/ingest", {"project_id": lib["project"]["id"], "results": [
        {"title": "a", "status": "PASSED"}, {"title": "b", "status": "SKIPPED"},
        {"title": "c", "status": "UNKNOWN"}]}).json()["run_id"]
    u = api.get(f"/api/v1/trigger?suite_run_id={unknown}").json()
    # UNKNOWN is Qualigate's `error`: it fails the suite; a skipped test counts as passed.
    assert (u["status"], u["total_tests"], u["passed_tests"], u["failed_tests"]) == ("failed", 3, 2, 1)


def test_a_test_case_without_automation_fails_fast_with_a_clear_message(api):
    lib = library(api, n_automated=1, manual=1)
    r = api.post("/api/v1/trigger", {"test_case_id": lib["cases"][1]["id"]})
    assert r.status_code == 201
    body = r.json()
    assert body["status"] == "error" and "no automation mapping" in body["message"]
    assert api.get(f"/api/v1/trigger?test_run_id={body['test_run_id']}").json()["status"] == "error"
    suite = api.post("/api/v1/trigger", {"test_suite_id": lib["suite"]["id"]}).json()
    assert suite["status"] == "pending"
    assert suite["message"] == (
        "1 test queued successfully; 1 test cannot run: no automation mapping (their status is error)" + NO_AGENT)


def test_results_of_an_ingested_run_answer_to_their_result_ids(api):
    project = api.project()
    api.test_case(project["id"], "Login", "TC-001")
    run = api.post("/api/v1/ingest", {"project_id": project["id"], "results": [
        {"test_case_code": "TC-001", "status": "PASSED", "duration_ms": 10},
        {"title": "unlinked", "status": "BROKEN", "error_message": "crash"}]}).json()
    results = api.get(f"/api/v1/results?suite_run_id={run['run_id']}").json()
    assert [(r["test_case_name"], r["status"]) for r in results["results"]] == [
        ("Login", "passed"), ("unlinked", "error")]
    assert results["status"] == "failed"
    ref = results["results"][1]["test_run_id"]
    assert ref.isdigit()
    one = api.get(f"/api/v1/trigger?test_run_id={ref}").json()
    assert (one["status"], one["error_message"]) == ("error", "crash")


def test_results_of_many_test_run_ids_are_checked_together_and_in_order(api):
    project = api.project()
    rows = [{"title": f"t{i}", "status": "FAILED" if i % 7 == 0 else "PASSED"} for i in range(1000)]
    run = api.post("/api/v1/ingest", {"project_id": project["id"], "results": rows}).json()
    refs = [r["test_run_id"] for r in api.get(f"/api/v1/results?suite_run_id={run['run_id']}").json()["results"]]
    assert len(refs) == 1000
    many = api.get(f"/api/v1/results?test_run_ids={','.join(reversed(refs))}").json()
    assert [r["test_run_id"] for r in many["results"]] == refs[::-1]
    assert (many["total_tests"], many["failed_tests"], many["status"]) == (1000, 143, "failed")
    twice = api.get(f"/api/v1/results?test_run_ids={refs[1]},0{refs[1]}").json()["results"]
    assert [r["test_run_id"] for r in twice] == [refs[1], f"0{refs[1]}"]  # two spellings of one result id

    # The first id that fails its check is the one named, whatever its kind: another project's
    # result before a missing execution is 403, a missing one before it 404 naming it.
    other = api.project("Other")
    theirs = api.post("/api/v1/ingest", {"project_id": other["id"], "results": [{"title": "x", "status": "PASSED"}]})
    their_ref = api.get(f"/api/v1/results?suite_run_id={theirs.json()['run_id']}").json()["results"][0]["test_run_id"]
    confined = new_key(api, "read", project_id=project["id"])
    forbidden = api.get(f"/api/v1/results?test_run_ids={refs[0]},{their_ref},nope-0", key=confined)
    assert forbidden.status_code == 403
    missing = api.get(f"/api/v1/results?test_run_ids={refs[0]},nope-0,{their_ref}", key=confined)
    assert (missing.status_code, missing.json()["message"]) == (404, "Test run not found: nope-0")


def test_ci_config_is_read_here_and_edited_through_the_native_api(api):
    lib = library(api)
    pid = lib["project"]["id"]
    empty = api.get(f"/api/v1/ci-config?project_id={pid}").json()
    assert empty == {"project_id": pid, "project_name": "Web shop", "ci_config": {
        "provider": None, "trigger_on": [], "branches": [], "test_suite_id": None}}
    config = {"provider": "github-actions", "trigger_on": ["push", "pull_request"], "branches": ["main", "develop"],
              "test_suite_id": lib["suite"]["id"]}
    assert api.patch(f"/api/v1/projects/{pid}", {"ci_config": config}).status_code == 200
    assert api.get(f"/api/v1/ci-config?project_id={pid}").json()["ci_config"] == config


@pytest.mark.parametrize("body,message", [
    ({}, "Provide exactly one of test_case_id, test_suite_id or project_id"),
    ({"test_case_id": "a", "project_id": "b"}, "Provide exactly one of test_case_id, test_suite_id or project_id"),
    ({"test_suite_id": "", "project_id": ""}, "Provide exactly one of test_case_id, test_suite_id or project_id"),
    ({"project_id": "x", "viewportPreset": "watch"}, "Invalid enum value 'watch' - at `$.viewportPreset`"),
    ({"project_id": "x", "testSuiteId": "y"}, "unknown field `testSuiteId`"),
])
def test_bad_trigger_bodies_are_400_naming_the_problem(api, body, message):
    r = api.post("/api/v1/trigger", body)
    assert r.status_code == 400 and r.json()["error"] == "Bad Request"
    assert message in r.json()["message"]


def test_the_seed_s_error_answers(api):
    lib = library(api)
    case_id = lib["cases"][0]["id"]
    unauthorized = api.client.post("/api/v1/trigger", json={"test_case_id": case_id})
    assert unauthorized.status_code == 401
    assert unauthorized.json() == {"error": "Unauthorized", "message": "Missing or invalid API key"}
    bad_key = api.client.get("/api/v1/trigger?test_run_id=x", headers={"X-API-Key": "qg_your_api_key_here"})
    assert bad_key.status_code == 401

    assert api.post("/api/v1/trigger", {"test_case_id": "550e8400-e29b-41d4-a716-446655440000"}).json() == {
        "error": "Not Found", "message": "Test case not found"}
    for path in ("/api/v1/trigger?test_run_id=660e8400", "/api/v1/trigger?suite_run_id=880e8400",
                 "/api/v1/results?test_run_ids=aa0e8400", "/api/v1/ci-config?project_id=990e8400"):
        assert api.get(path).status_code == 404, path

    # Another project's resources for a key limited to one: 403. Another tenant's: they do not
    # exist for it (404), as on every route.
    other_project = api.project("Other")
    confined = new_key(api, "write", project_id=other_project["id"])
    forbidden = api.post("/api/v1/trigger", {"test_case_id": case_id}, key=confined)
    assert forbidden.status_code == 403
    assert forbidden.json() == {"error": "Forbidden", "message": "You don't have access to this resource"}
    run = api.post("/api/v1/trigger", {"test_suite_id": lib["suite"]["id"]}).json()["suite_run_id"]
    assert api.get(f"/api/v1/trigger?suite_run_id={run}", key=confined).status_code == 403
    assert api.get(f"/api/v1/ci-config?project_id={lib['project']['id']}", key=confined).status_code == 403
    writer = api.client.app.state.services.db.writer
    other_tenant = writer.run_sync(lambda conn: create_tenant(conn, "Other org"))
    outsider = new_key(api, "admin", tenant_id=other_tenant.id)
    assert api.post("/api/v1/trigger", {"test_case_id": case_id}, key=outsider).json() == {
        "error": "Not Found", "message": "Test case not found"}
    assert api.get(f"/api/v1/trigger?suite_run_id={run}", key=outsider).status_code == 404
    # A read key can poll but not trigger.
    reader = new_key(api, "read")
    assert api.get(f"/api/v1/trigger?suite_run_id={run}", key=reader).status_code == 200
    assert api.post("/api/v1/trigger", {"test_case_id": case_id}, key=reader).status_code == 403

    for path in ("/api/v1/trigger", "/api/v1/trigger?test_run_id=a&suite_run_id=b", "/api/v1/results",
                 "/api/v1/trigger?run=1"):
        r = api.get(path)
        assert r.status_code == 400 and set(r.json()) == {"error", "message"}, path


@pytest.fixture
def limited(tmp_path, storage_url):
    config = load_config(write_config(tmp_path, "[rate_limits]\nqualigate = 3\n", storage_url=storage_url), environ={})
    client, boot = make_api(config)
    with client:
        yield Api(client, config, boot.admin_key, boot.tenant_id)


def test_over_the_limit_is_429_with_retry_after(limited):
    lib = library(limited)
    run = limited.post("/api/v1/trigger", {"test_suite_id": lib["suite"]["id"]}).json()["suite_run_id"]
    answers = [limited.get(f"/api/v1/trigger?suite_run_id={run}") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    body = answers[-1].json()
    assert body["error"] == "Too Many Requests" and isinstance(body["retry_after"], int) and body["retry_after"] > 0
    assert body["message"]
