"""A triggered run that waits for an agent (issue: week one, item 8): `qahub wait` takes any id
a Qualigate trigger answered, and a job whose framework no agent serves says so, in Qualigate's
status and in `qahub wait`'s output, from the trigger on, against the real server process."""

from __future__ import annotations

import uuid

import httpx
import pytest

from conftest import start_server
from qahub_lite.cli import main



@pytest.fixture(scope="module")
def server(tmp_path_factory, module_storage_url):
    srv = start_server(tmp_path_factory.mktemp("trigger-waits"), storage_url=module_storage_url)
    yield srv
    srv.stop()


def _library(http: httpx.Client, framework: str) -> dict:
    project = http.post("/api/v1/projects", json={"name": f"tw-{uuid.uuid4().hex[:8]}"}).json()
    for i in range(2):
        r = http.post(f"/api/v1/projects/{project['id']}/test-cases",
                      json={"title": f"Flow {i}", "automation": {"framework": framework, "grep": f"flow {i}"}})
        assert r.status_code == 201, r.text
    return project


def _wait(capsys, monkeypatch, server, *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("QAHUB_URL", server.url)
    monkeypatch.setenv("QAHUB_TOKEN", server.admin_key)
    code = main(["wait", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.e2e
def test_a_project_trigger_s_ids_can_be_waited_on_and_say_no_agent_serves_them(server, capsys, monkeypatch):
    framework = f"fw{uuid.uuid4().hex[:6]}"  # no agent of this server has ever served it
    with server.client() as http:
        project = _library(http, framework)
        trigger = http.post("/api/v1/trigger", json={"project_id": project["id"]}).json()
        assert trigger["status"] == "pending"
        # Known at the trigger already: no agent of the tenant has a command for the framework.
        assert f"no agent serves framework {framework}" in trigger["message"]
        test_run_id = trigger["test_run_ids"][0]
        one = http.get("/api/v1/trigger", params={"test_run_id": test_run_id}).json()
        assert one["status"] == "pending" and f"no agent serves framework {framework}" in one["message"]
        suite = http.get("/api/v1/trigger", params={"suite_run_id": test_run_id}).json()
        run_id = suite["run_id"]
        assert f"no agent serves framework {framework}" in suite["message"]

    # Before: "Run not found". Now the test run id leads to its run, and the wait says why it waits.
    code, out, err = _wait(capsys, monkeypatch, server, test_run_id, "--timeout", "1s", "--interval", "200ms")
    assert code == 2, err
    assert f"no agent serves framework {framework}" in err
    assert "Run not found" not in err and "(still PENDING; no agent serves framework" in err
    # --quiet prints only the last line, which says it too.
    code, out, err = _wait(capsys, monkeypatch, server, test_run_id, "--timeout", "1s", "--quiet")
    assert code == 2 and err.count("\n") == 1 and f"no agent serves framework {framework}" in err

    with server.client() as http:
        # An agent with a command for the framework asks for work: the note goes away.
        claim = http.post("/api/v1/agent/claim", json={"agent": "a1", "frameworks": [framework], "wait_s": 0}).json()
        job = claim["job"]
        assert http.get("/api/v1/trigger", params={"suite_run_id": run_id}).json()["message"] is None
        token = {"lease_token": job["lease_token"]}
        results = [{"title": t["title"], "status": "PASSED"} for t in job["tests"]]
        reported = http.post(f"/api/v1/agent/jobs/{job['id']}/results", json={**token, "results": results})
        assert reported.status_code == 200
        assert http.post(f"/api/v1/agent/jobs/{job['id']}/complete",
                         json={**token, "outcome": "DONE"}).status_code == 200

    for ref in (test_run_id, trigger["test_run_ids"][1], run_id):
        code, out, err = _wait(capsys, monkeypatch, server, ref, "--timeout", "20s", "--interval", "200ms")
        assert code == 0, err
        assert "COMPLETED: PASSED (2 passed)" in out


@pytest.mark.e2e
def test_an_unknown_id_is_still_run_not_found(server, capsys, monkeypatch):
    code, out, err = _wait(capsys, monkeypatch, server, "nosuchrun", "--timeout", "5s")
    assert code == 2 and "Run not found" in err
