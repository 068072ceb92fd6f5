"""The job queue through the agents' API, on the real app and a real SQLite file: claims go to
exactly one agent, leases expire into TIMEOUT, a cancel reaches the lease holder, reports are
matched to the job's tests, and a job's end finishes its run."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from conftest import Api, make_api, write_config
from qahub_lite.config import load_config
from qahub_lite.core import agents, jobs
from qahub_lite.core.tenancy import create_key

pytestmark = pytest.mark.engines


@pytest.fixture
def hub(tmp_path, storage_url):
    config = load_config(write_config(tmp_path, "[jobs]\nlease_s = 1\nqueue_timeout_s = 2\n", storage_url=storage_url), environ={})
    client, boot = make_api(config)
    with client:
        yield Api(client, config, boot.admin_key, boot.tenant_id)


def library(api: Api, *specs) -> tuple[str, list[dict]]:
    """A project with test cases (title, framework, grep) and a suite holding them all."""
    project = api.project()
    suite = api.post(f"/api/v1/projects/{project['id']}/suites", {"name": "All"}).json()
    cases = []
    for title, framework, grep in specs:
        body = {"title": title, "suite_id": suite["id"]}
        if framework:
            body["automation"] = {"framework": framework, **({"grep": grep} if grep else {})}
        r = api.post(f"/api/v1/projects/{project['id']}/test-cases", body)
        assert r.status_code == 201, r.text
        cases.append(r.json())
    return suite["id"], cases


def claim(api: Api, name="a1", frameworks=("pytest",), key=None, wait_s=0):
    r = api.post("/api/v1/agent/claim", {"agent": name, "frameworks": list(frameworks), "wait_s": wait_s}, key=key)
    assert r.status_code == 200, r.text
    return r.json()["job"]


def lease(api: Api, job: dict, action: str, **body):
    return api.post(f"/api/v1/agent/jobs/{job['id']}/{action}", {"lease_token": job["lease_token"], **body})


def suite_status(api: Api, run_id: str) -> dict:
    return api.get(f"/api/v1/trigger?suite_run_id={run_id}").json()


def test_a_claim_goes_to_exactly_one_of_two_agents_asking_at_once(hub):
    suite, _ = library(hub, ("Login", "pytest", "test_login"))
    hub.post("/api/v1/trigger", {"test_suite_id": suite})
    svc = hub.client.app.state.services

    async def both():
        def ask(name):
            hello = agents.AgentHello(name=name, frameworks=["pytest"], key_id="k")
            return svc.db.write(lambda conn: jobs.claim(conn, hub.tenant_id, hello, lease_s=60))

        return await asyncio.gather(ask("a1"), ask("a2"))

    first, second = hub.client.blocking_portal.call(both)
    assert [j is not None for j in (first, second)].count(True) == 1
    assert claim(hub, "a3") is None


def test_claims_respect_frameworks_and_project_keys(hub):
    suite, cases = library(hub, ("Web", "playwright", None), ("Api", "pytest", None))
    run_id = hub.post("/api/v1/trigger", {"test_suite_id": suite}).json()["suite_run_id"]
    job = claim(hub, "py", ["pytest"])
    assert job["framework"] == "pytest" and [t["title"] for t in job["tests"]] == ["Api"]
    assert job["lease_s"] == 1 and job["heartbeat_s"] == 1
    # A key of another project sees nothing of this project's queue.
    other = hub.project("Other")
    assert claim(hub, "pw-other", ["playwright"], key=new_key(hub, "write", other["id"])) is None
    assert claim(hub, "pw", ["playwright"])["run_id"] == run_id
    assert suite_status(hub, run_id)["status"] == "running"
    assert hub.post("/api/v1/agent/claim", {"agent": "x", "frameworks": ["pytest"]},
                    key=new_key(hub, "read")).status_code == 403


def new_key(api: Api, scope: str, project_id: str | None = None) -> str:
    writer = api.client.app.state.services.db.writer
    return writer.run_sync(lambda conn: create_key(conn, api.tenant_id, scope=scope, project_id=project_id)).key


def test_long_poll_wakes_when_work_is_queued_and_answers_null_when_none_comes(hub):
    suite, _ = library(hub, ("Login", "pytest", None))
    started = time.monotonic()
    assert claim(hub, wait_s=1) is None
    assert 0.9 <= time.monotonic() - started < 5

    got = {}
    waiter = threading.Thread(target=lambda: got.setdefault("job", claim(hub, "waiter", wait_s=20)))
    waiter.start()
    time.sleep(0.3)
    started = time.monotonic()
    hub.post("/api/v1/trigger", {"test_suite_id": suite})
    waiter.join(10)
    assert got["job"] is not None and time.monotonic() - started < 5


def test_report_matching_and_what_a_job_s_end_does_to_unreported_tests(hub):
    suite, cases = library(
        hub, ("Login works", "pytest", None), ("Cart", "pytest", "test_cart"), ("Coded", "pytest", "test_x"),
        ("Forgotten", "pytest", "test_forgotten"), ("Param", "pytest", "test_param"),
    )
    run_id = hub.post("/api/v1/trigger", {"test_suite_id": suite}).json()["suite_run_id"]
    job = claim(hub)
    r = lease(hub, job, "results", results=[
        {"status": "PASSED", "title": "login WORKS"},                              # by title, any case
        {"status": "FAILED", "title": "test_cart", "error_message": "boom"},      # by grep
        {"status": "PASSED", "title": "whatever", "test_case_code": cases[2]["code"]},  # by code
        {"status": "PASSED", "title": "test_param[1]"},                           # parametrized, by grep
        {"status": "FAILED", "title": "test_param[2]", "error_message": "p2"},    # worst wins
        {"status": "PASSED", "title": "test_unrelated"},                          # not one of the job's
        {"status": "PASSED", "title": "Cart", "test_case_code": "NOPE-1"},        # a code in no library: kept unlinked
        {"status": "pass", "title": "bad"},                                       # invalid: an item error
    ])
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["index"] for s in body["stored"]] == [0, 1, 2, 3, 4]
    # Issue 11: nothing dropped. The entry tagged with a code this project's library lacks is
    # none of the job's tests, but it ran: it is kept as an unlinked result of the run.
    assert body["ignored"] == [5] and [e["index"] for e in body["errors"]] == [7]
    assert lease(hub, job, "complete", outcome="DONE").json()["status"] == "DONE"
    listed = hub.get(f"/api/v1/results?suite_run_id={run_id}").json()["results"]
    assert sorted((r["test_case_name"], r["status"]) for r in listed if r["test_case_name"] == "Cart") == [
        ("Cart", "failed"), ("Cart", "passed")]
    results = {r["test_case_name"]: r for r in listed if (r["test_case_name"], r["status"]) != ("Cart", "passed")}
    assert {k: v["status"] for k, v in results.items()} == {
        "Login works": "passed", "Cart": "failed", "Coded": "passed", "Forgotten": "error", "Param": "failed"}
    assert results["Param"]["error_message"] == "p2"
    assert "never mentioned" in results["Forgotten"]["error_message"]
    assert suite_status(hub, run_id)["status"] == "failed"
    assert hub.get(f"/api/v1/runs/{run_id}").json()["status"] == "COMPLETED"
    # The lease is gone with the job: nothing more goes into the run.
    assert lease(hub, job, "results", results=[]).status_code == 409
    assert hub.post(f"/api/v1/agent/jobs/{job['id']}/heartbeat", {"lease_token": "forged"}).status_code == 409
    assert hub.post("/api/v1/agent/jobs/nope/heartbeat", {"lease_token": "x"}).status_code == 404


@pytest.mark.parametrize("outcome,status", [("ERROR", "error"), ("TIMEOUT", "timeout")])
def test_a_job_that_could_not_report_ends_its_tests_with_the_agent_s_message(hub, outcome, status):
    suite, _ = library(hub, ("One", "pytest", None), ("Two", "pytest", None))
    run_id = hub.post("/api/v1/trigger", {"test_suite_id": suite}).json()["suite_run_id"]
    job = claim(hub)
    lease(hub, job, "complete", outcome=outcome, message="pytest: command not found")
    results = hub.get(f"/api/v1/results?suite_run_id={run_id}").json()["results"]
    assert {(r["status"], r["error_message"]) for r in results} == {(status, "pytest: command not found")}
    assert hub.get(f"/api/v1/runs/{run_id}").json()["status"] == "ERROR"
    assert suite_status(hub, run_id)["status"] == "failed"


def test_an_expired_lease_turns_the_job_s_tests_into_timeout(hub):
    suite, _ = library(hub, ("Slow", "pytest", None))
    run_id = hub.post("/api/v1/trigger", {"test_suite_id": suite}).json()["suite_run_id"]
    job = claim(hub, "dies")
    assert lease(hub, job, "heartbeat").json()["cancel"] is False
    time.sleep(1.2)
    scheduler = hub.client.app.state.services.scheduler
    assert "expired" in hub.client.blocking_portal.call(scheduler.run_once, "job-expiry")
    test_run = hub.get(f"/api/v1/results?suite_run_id={run_id}").json()["results"][0]
    assert test_run["status"] == "timeout" and "'dies' stopped renewing its lease" in test_run["error_message"]
    assert hub.get(f"/api/v1/runs/{run_id}").json()["status"] == "ERROR"
    # The agent comes back: told to stop; its late results are refused.
    state = lease(hub, job, "heartbeat").json()
    assert state["cancel"] is True and state["status"] == "TIMEOUT" and "renewing" in state["reason"]
    assert lease(hub, job, "results", results=[{"status": "PASSED", "title": "Slow"}]).status_code == 409


def test_a_job_nobody_claims_times_out_naming_its_framework(hub):
    suite, _ = library(hub, ("Native app", "xcuitest", None))
    run_id = hub.post("/api/v1/trigger", {"test_suite_id": suite}).json()["suite_run_id"]
    time.sleep(2.1)
    scheduler = hub.client.app.state.services.scheduler
    assert "nobody claimed" in hub.client.blocking_portal.call(scheduler.run_once, "job-expiry")
    test_run = hub.get(f"/api/v1/results?suite_run_id={run_id}").json()["results"][0]
    assert test_run["status"] == "timeout" and "'xcuitest'" in test_run["error_message"]


def test_cancel_reaches_the_lease_holder_and_a_queued_job_is_never_handed_out(hub):
    suite, _ = library(hub, ("A", "pytest", None))
    running = hub.post("/api/v1/trigger", {"test_suite_id": suite}).json()["suite_run_id"]
    job = claim(hub)
    queued = hub.post("/api/v1/trigger", {"test_suite_id": suite}).json()["suite_run_id"]
    for run_id in (running, queued):
        assert hub.post(f"/api/v1/runs/{run_id}/cancel").json()["status"] == "CANCELED"
    state = lease(hub, job, "heartbeat").json()
    assert state["cancel"] is True and state["status"] == "CANCELED" and "canceled" in state["reason"]
    assert claim(hub) is None
    assert suite_status(hub, running)["status"] == "canceled"
    assert [r["status"] for r in hub.get(f"/api/v1/results?suite_run_id={queued}").json()["results"]] == ["canceled"]


def test_agents_are_listed_with_their_last_heartbeat_and_job(hub):
    suite, _ = library(hub, ("A", "pytest", None))
    hub.post("/api/v1/trigger", {"test_suite_id": suite})
    job = claim(hub, "runner-7", ["pytest", "jest"])
    claim(hub, "idle-1", ["go"])
    listed = {a["name"]: a for a in hub.get("/api/v1/agents").json()["data"]}
    assert listed["runner-7"]["status"] == "busy" and listed["runner-7"]["current_job_id"] == job["id"]
    assert listed["runner-7"]["frameworks"] == ["jest", "pytest"] and listed["runner-7"]["last_heartbeat_at"]
    assert listed["idle-1"]["status"] == "idle" and listed["idle-1"]["current_job_id"] is None
    lease(hub, job, "complete", outcome="DONE")
    assert {a["name"]: a["status"] for a in hub.get("/api/v1/agents").json()["data"]}["runner-7"] == "idle"


def test_a_write_key_cannot_take_over_another_live_key_s_agent_name(hub):
    owner, intruder = new_key(hub, "write"), new_key(hub, "write")
    assert claim(hub, "ci-runner-1", key=owner) is None
    r = hub.post("/api/v1/agent/claim", {"agent": "ci-runner-1", "frameworks": ["pytest"], "wait_s": 0}, key=intruder)
    assert r.status_code == 409 and "belongs to another API key" in r.json()["message"]
    assert claim(hub, "ci-runner-1", key=owner) is None  # the owner goes on as before
    writer = hub.client.app.state.services.db.writer
    from qahub_lite.core.tenancy import revoke_key
    writer.run_sync(lambda conn: revoke_key(conn, owner))
    assert claim(hub, "ci-runner-1", key=intruder) is None  # a revoked owner's name is free again


def test_a_project_limited_key_lists_only_its_project_s_agents(hub):
    mine, other = hub.project("Mine"), hub.project("Other")
    claim(hub, "mine-runner", key=new_key(hub, "write", mine["id"]))
    claim(hub, "other-runner", key=new_key(hub, "write", other["id"]))
    claim(hub, "shared-runner", ["go"])  # a tenant-wide agent, idle
    everyone = {a["name"] for a in hub.get("/api/v1/agents").json()["data"]}
    assert everyone == {"mine-runner", "other-runner", "shared-runner"}
    limited = new_key(hub, "read", mine["id"])
    seen = {a["name"] for a in hub.get("/api/v1/agents", key=limited).json()["data"]}
    assert seen == {"mine-runner"}
    # A tenant-wide agent running one of Mine's jobs works for Mine: it is listed while it does.
    suite = hub.post(f"/api/v1/projects/{mine['id']}/suites", {"name": "S"}).json()
    hub.post(f"/api/v1/projects/{mine['id']}/test-cases",
             {"title": "Go test", "suite_id": suite["id"], "automation": {"framework": "go"}})
    hub.post("/api/v1/trigger", {"test_suite_id": suite["id"]})
    assert claim(hub, "shared-runner", ["go"]) is not None
    seen = {a["name"] for a in hub.get("/api/v1/agents", key=limited).json()["data"]}
    assert seen == {"mine-runner", "shared-runner"}
