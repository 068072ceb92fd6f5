"""The quality gate and regressions: rules from the query and from project settings, new
failures against the default branch's baseline, quarantine, and `qahub gate` end to end."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import qahub_command
from health_helpers import fast_api, ingest, outcomes

pytestmark = pytest.mark.engines


@pytest.fixture
def hapi(tmp_path, storage_url):
    with fast_api(tmp_path, storage_url=storage_url) as api:
        yield api


def _gate(api, project_id: str, query: str = "", status: int = 200) -> dict:
    r = api.get(f"/api/v1/projects/{project_id}/gate{query}")
    assert r.status_code == status, r.text
    return r.json()


def _main_history(api, project_id: str, runs: int = 3) -> list[dict]:
    return [ingest(api, project_id, outcomes(a="PASSED", b="PASSED"), commit=f"m{i}") for i in range(runs)]


def test_a_new_failure_against_the_baseline_fails_the_gate_by_default(hapi):
    project = hapi.project("Shop")
    main = _main_history(hapi, project["id"])
    pr = ingest(hapi, project["id"], outcomes(a="PASSED", b="FAILED", c="FAILED"), branch="pr-1")
    verdict = _gate(hapi, project["id"], f"?run_id={pr['short_id']}")
    assert (verdict["passed"], verdict["verdict"], verdict["run_id"]) == (False, "fail", pr["run_id"])
    assert verdict["baseline_run_id"] == main[-1]["run_id"]
    # c has no baseline result: a new test that fails is a new failure too (nobody has seen
    # it fail before; calling it "no change" would hide it)
    assert [f["title"] for f in verdict["new_failures"]] == ["b", "c"] and verdict["failures"] == 2
    assert verdict["reasons"] == ["2 new failure(s) against the baseline: b, c"]
    assert {c["rule"]: c["passed"] for c in verdict["checks"]} == {"status": True, "no_new_failures": False}
    assert verdict["rules"] == {"min_grade": None, "max_failures": None, "no_new_failures": True,
                                "ignore_quarantined": True, "ignore_known_environment": False}

    regressions = hapi.get(f"/api/v1/runs/{pr['run_id']}/regressions").json()
    assert regressions["regressed"] is True and regressions["baseline_run_id"] == main[-1]["run_id"]
    assert [(f["title"], f["status"]) for f in regressions["data"]] == [("b", "FAILED"), ("c", "FAILED")]
    clean = hapi.get(f"/api/v1/runs/{main[-1]['run_id']}/regressions").json()
    assert (clean["regressed"], clean["new_failures"], clean["baseline_run_id"]) == (False, 0, main[-2]["run_id"])

    # without a run: the latest finished run of the branch, else of the default branch
    assert _gate(hapi, project["id"], "?branch=pr-1")["run_id"] == pr["run_id"]
    assert _gate(hapi, project["id"])["run_id"] == main[-1]["run_id"] and _gate(hapi, project["id"])["passed"]


def test_quarantined_tests_are_ignored_unless_asked_not_to(hapi):
    project = hapi.project("Shop")
    _main_history(hapi, project["id"])
    pr = ingest(hapi, project["id"], outcomes(a="PASSED", b="FAILED"), branch="pr-2")
    test_b = [t for t in hapi.get(f"/api/v1/projects/{project['id']}/tests").json()["data"] if t["title"] == "b"][0]
    r = hapi.client.put(f"/api/v1/projects/{project['id']}/tests/{test_b['test_id']}/quarantine", headers=hapi.h())
    assert r.status_code == 200
    verdict = _gate(hapi, project["id"], f"?run_id={pr['run_id']}&max_failures=0")
    assert verdict["passed"] is True and verdict["quarantined_failures_ignored"] == 1 and verdict["failures"] == 0
    strict = _gate(hapi, project["id"], f"?run_id={pr['run_id']}&max_failures=0&ignore_quarantined=false")
    assert strict["passed"] is False and len(strict["reasons"]) == 2


def test_max_failures_and_min_grade(hapi):
    project = hapi.project("Shop")
    for i in range(4):
        ingest(hapi, project["id"], outcomes(a="PASSED", b="PASSED", c="FAILED" if i == 3 else "PASSED"))
    assert _gate(hapi, project["id"], "?max_failures=1&no_new_failures=false")["passed"] is True
    tight = _gate(hapi, project["id"], "?max_failures=0&no_new_failures=false")
    assert tight["reasons"] == ["1 failing test(s), more than the maximum of 0"]
    # 11 of 12 results passing: failing 8.33 % x 5 = 41.67 points off: 58.33, F
    graded = _gate(hapi, project["id"], "?min_grade=D&no_new_failures=false")
    assert (graded["grade"]["grade"], graded["passed"]) == ("F", False)
    assert graded["reasons"] == ["grade F (58.33/100) is below the minimum D"]
    assert _gate(hapi, project["id"], "?min_grade=F&no_new_failures=false")["passed"] is True


def test_a_grade_rule_with_too_few_runs_is_skipped_and_says_so(hapi):
    project = hapi.project("Shop")
    ingest(hapi, project["id"], outcomes(a="FAILED"))
    verdict = _gate(hapi, project["id"], "?min_grade=A")
    check = [c for c in verdict["checks"] if c["rule"] == "min_grade"][0]
    assert check["passed"] is True and check["message"].startswith("skipped: not enough data")


def test_rules_from_project_settings_and_the_query_wins(hapi):
    project = hapi.project("Shop")
    _main_history(hapi, project["id"])
    ingest(hapi, project["id"], outcomes(a="PASSED", b="PASSED", c="FAILED"))
    r = hapi.patch(f"/api/v1/projects/{project['id']}", {"settings": {"gate": {"max_failures": 0}}})
    assert r.status_code == 200, r.text
    assert _gate(hapi, project["id"])["passed"] is False
    # c is a new test that fails: the new-failure rule off, max_failures alone judges
    assert _gate(hapi, project["id"], "?max_failures=3&no_new_failures=false")["passed"] is True
    bad = hapi.patch(f"/api/v1/projects/{project['id']}", {"settings": {"gate": {"min_grade": "Z"}}})
    assert bad.status_code == 400 and "gate.min_grade" in bad.json()["message"]
    bad = hapi.patch(f"/api/v1/projects/{project['id']}", {"settings": {"gate": {"max_fails": 1}}})
    assert bad.status_code == 400 and "max_fails" in bad.json()["message"]


def test_what_the_gate_refuses(hapi):
    project = hapi.project("Shop")
    base = f"/api/v1/projects/{project['id']}/gate"
    assert hapi.get(base).status_code == 404  # no finished run yet
    running = ingest(hapi, project["id"], outcomes(a="PASSED"), status="RUNNING")
    r = hapi.get(f"{base}?run_id={running['run_id']}")
    assert r.status_code == 409 and "RUNNING" in r.json()["message"]
    assert hapi.get(f"{base}?run_id={running['run_id']}&branch=main").status_code == 400
    assert hapi.get(f"{base}?run_id=nope").status_code == 404
    assert hapi.get(f"{base}?min_grade=Q").status_code == 400
    assert hapi.get(f"{base}?max_failures=-1").status_code == 400
    finished = hapi.post(f"/api/v1/runs/{running['run_id']}/finish", {"status": "COMPLETED"})
    assert finished.status_code == 200
    assert _gate(hapi, project["id"], f"?run_id={running['run_id']}")["passed"] is True
    errored = ingest(hapi, project["id"], outcomes(a="PASSED"), status="RUNNING")
    hapi.post(f"/api/v1/runs/{errored['run_id']}/finish", {"status": "ERROR"})
    verdict = _gate(hapi, project["id"], f"?run_id={errored['run_id']}")
    assert verdict["passed"] is False and verdict["reasons"] == [f"run {errored['short_id']} is ERROR"]


@pytest.mark.e2e
def test_qahub_gate_exits_0_1_2_and_prints_every_check(live_server):
    with live_server.client() as http:
        project = http.post("/api/v1/projects", json={"name": "Gate"}).json()

        def run(results, branch="main"):
            body = {"project_id": project["id"], "results": results, "ci": {"branch": branch}}
            answer = http.post("/api/v1/ingest", json=body)
            assert answer.status_code == 201, answer.text
            return answer.json()

        run([{"title": "a", "status": "PASSED"}, {"title": "b", "status": "PASSED"}])
        good = run([{"title": "a", "status": "PASSED"}, {"title": "b", "status": "PASSED"}], branch="pr-1")
        bad = run([{"title": "a", "status": "PASSED"}, {"title": "b", "status": "FAILED"}], branch="pr-2")
    env = {**os.environ, "QAHUB_URL": live_server.url, "QAHUB_TOKEN": live_server.admin_key}

    def gate(*args):
        return subprocess.run([*qahub_command(), "gate", "--project", project["slug"], *args],
                              capture_output=True, text=True, env=env, timeout=60)

    ok = gate("--run", good["short_id"], "--max-failures", "0")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[0].startswith(f"gate PASSED for run {good['short_id']} on pr-1")
    assert "ok   max_failures: 0 failing test(s), within the maximum of 0" in ok.stdout
    failed = gate("--branch", "pr-2")
    assert failed.returncode == 1
    assert "FAIL no_new_failures: 1 new failure(s) against the baseline: b" in failed.stdout
    assert gate("--run", bad["short_id"], "--allow-new-failures").returncode == 0
    missing = gate("--run", "nosuchrun")
    assert missing.returncode == 2 and "no gate verdict: Run not found in this project" in missing.stderr
    usage = gate("--run", "x", "--branch", "y")
    assert usage.returncode == 2

    # Quarantined later: the gate says what it set aside and why, and that CI first got FAILED.
    with live_server.client() as http:
        b_id = next(t["test_id"] for t in http.get(f"/api/v1/projects/{project['id']}/tests").json()["data"]
                    if t["title"] == "b")
        http.put(f"/api/v1/projects/{project['id']}/tests/{b_id}/quarantine",
                 json={"reason": "flaky login", "ticket": "LIN-8"}).raise_for_status()
    now = gate("--run", bad["short_id"])
    assert now.returncode == 0, now.stdout
    assert "  set aside 1 failure(s), not counted:\n    - b (FAILED): quarantined: flaky login; LIN-8" in now.stdout
    assert "verdict was first recorded as FAILED" in now.stdout and "it would be PASSED now" in now.stdout


def test_without_a_baseline_every_failure_counts_and_fails_the_gate(hapi):
    # A project's first run, or one with no default-branch run yet: nothing to tell new failures
    # from old ones, so a failing run must not pass ("never hide a failure").
    project = hapi.project("Fresh")
    pr = ingest(hapi, project["id"], outcomes(a="PASSED", b="FAILED"), branch="pr-1")
    verdict = _gate(hapi, project["id"], f"?run_id={pr['short_id']}")
    assert verdict["baseline_run_id"] is None and verdict["passed"] is False
    assert verdict["reasons"] == ["1 failing test(s) and no baseline run on the default branch to compare with"]
    green = ingest(hapi, project["id"], outcomes(a="PASSED", b="PASSED"), branch="pr-2")
    assert _gate(hapi, project["id"], f"?run_id={green['short_id']}")["passed"] is True
