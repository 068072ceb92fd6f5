"""Honest retention (issue: week one, item 2): a test's daily figures survive the sweep of its
raw results, are served by the API and shown on the test's page, and the retention in force
is said on the dashboard and at first start."""

from __future__ import annotations

import pytest

import datetime as dt
import subprocess

from conftest import qahub_command
from qahub_lite.core import users
from qahub_lite.db.database import direct_connection
from test_web_auth import sign_in

pytestmark = pytest.mark.engines

DAY_MS = 86_400_000


def _age(config, run_ids: list[str], days: int) -> None:
    """Move runs and their results `days` back in time, as if they had been ingested then."""
    marks = ",".join("?" * len(run_ids))
    shift = days * DAY_MS
    with direct_connection(config) as conn:
        conn.execute(f"UPDATE runs SET created_at = created_at - ?, started_at = started_at - ? WHERE id IN ({marks})",
                     (shift, shift, *run_ids))
        conn.execute(f"UPDATE results SET created_at = created_at - ?, updated_at = updated_at - ? "
                     f"WHERE run_id IN ({marks})", (shift, shift, *run_ids))


def _day(days_ago: int) -> str:
    return (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=days_ago)).isoformat()


def test_a_test_s_days_outlive_the_sweep_of_its_results(api):
    project = api.project("Daily")
    pid = project["id"]
    old_runs = []
    # 40 days ago: three runs of an unlinked test (a flaky pass, a failure, a pass) and a linked one.
    api.test_case(pid, "Linked", code="TC-001")
    for status, flaky, duration in (("PASSED", True, 100), ("FAILED", False, 300), ("PASSED", False, 200)):
        r = api.post("/api/v1/ingest", {"project_id": pid, "results": [
            {"title": "checkout", "suite": "cart", "status": status, "flaky": flaky, "duration_ms": duration},
            {"test_case_code": "TC-001", "status": "PASSED", "duration_ms": 5}]})
        assert r.status_code == 201, r.text
        old_runs.append(r.json()["run_id"])
    _age(api.config, old_runs, 40)
    # Today: one more result of the same test, still raw.
    r = api.post("/api/v1/ingest", {"project_id": pid, "results": [
        {"title": "checkout", "suite": "cart", "status": "SKIPPED"}]})
    today_run = r.json()["run_id"]
    test_id = next(x for x in api.get(f"/api/v1/runs/{today_run}/results").json()["data"])["test_id"]

    daily = f"/api/v1/projects/{pid}/tests/{test_id}/daily"
    before = api.get(daily).json()["data"]
    expected_old = {"day": _day(40), "runs": 3, "passed": 2, "failed": 1, "skipped": 0, "flaky": 1,
                    "duration_p50_ms": 200}
    assert before == [
        {"day": _day(0), "runs": 1, "passed": 0, "failed": 0, "skipped": 1, "flaky": 0, "duration_p50_ms": None,
         "rolled_up": False},
        {**expected_old, "rolled_up": False},
    ]

    report = api.post("/api/v1/admin/sweep").json()
    assert report["deleted_results"] == 3  # the old unlinked results are gone ...
    assert all(x["test_case_code"] == "TC-001" for x in api.get(f"/api/v1/runs/{old_runs[0]}/results").json()["data"])
    after = api.get(daily).json()["data"]
    assert after == [before[0], {**expected_old, "rolled_up": True}]  # ... their day is not
    # The linked test's day was rolled up with the rest of the project's day.
    linked = api.get(f"/api/v1/projects/{pid}/tests/TC-001/daily").json()["data"]
    assert linked == [{"day": _day(40), "runs": 3, "passed": 3, "failed": 0, "skipped": 0, "flaky": 0,
                       "duration_p50_ms": 5, "rolled_up": True}]
    # A second sweep finds nothing and changes nothing.
    assert api.post("/api/v1/admin/sweep").json()["deleted_results"] == 0
    assert api.get(daily).json()["data"] == after

    assert api.get(daily, params={"from": "2020-01-01", "to": "2022-01-01"}).status_code == 400  # over 366 days
    assert api.get(f"/api/v1/projects/{pid}/tests/999999/daily").status_code == 404


def test_the_dashboard_says_what_is_kept(api):
    with direct_connection(api.config) as conn:
        users.create_user(conn, "ada", tenant_id=api.tenant_id, role="admin", password="ada's password 1")
    assert sign_in(api.client, "ada", "ada's password 1").status_code == 303
    project = api.project("Kept")
    r = api.post("/api/v1/ingest", {"project_id": project["id"], "results": [{"title": "t", "status": "PASSED"}]})
    test_id = api.get(f"/api/v1/runs/{r.json()['run_id']}/results").json()["data"][0]["test_id"]
    sentence = "Results without a test case code (unlinked) are deleted after 30 days"
    for path in (f"/projects/{project['id']}", f"/settings/projects/{project['id']}",
                 f"/projects/{project['id']}/tests/{test_id}"):
        page = api.client.get(path)
        assert page.status_code == 200 and sentence in page.text, path
    assert "Day by day" in api.client.get(f"/projects/{project['id']}/tests/{test_id}").text


def test_init_says_the_retention_in_force(tmp_path):
    out = subprocess.run([*qahub_command(), "init", "--dir", str(tmp_path)], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Retention: Results without a test case code (unlinked) are deleted after 30 days" in out.stdout
    assert "each test's daily figures are kept" in out.stdout
