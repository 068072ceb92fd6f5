"""Poison values: numbers and dates that passed validation yesterday and broke every read of a
tenant afterwards (issue 12, item 2). Each attack is sent as the issue describes it; the hub
must refuse it at the edge with a 400 that names the field, and the reads around it must keep
answering. A value already stored (by an older version, or written directly) must not break a
read either: the read clamps it (core/clock.py)."""

from __future__ import annotations

import pytest

import re
import sqlite3

from qahub_lite.core import clock, trends, users
from qahub_lite.db.database import direct_connection

QP = "/api/v1/test-runs"
PASSWORD = "a poisoned tenant's password"


@pytest.fixture
def api(api):
    """The API fixture, also signed in to the dashboard: its pages are reads to protect too."""
    with direct_connection(api.config) as conn:
        users.create_user(conn, "ann", tenant_id=api.tenant_id, role="admin", password=PASSWORD)
    token = re.search(r'name="csrf" value="([^"]+)"', api.client.get("/login").text).group(1)
    r = api.client.post("/login", data={"csrf": token, "username": "ann", "password": PASSWORD},
                        follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    return api


def _qp(api, **summary):
    body = {"repo": "acme/poison", "branch": "main", "summary": {"total": 1, "passed": 1, "failed": 0, **summary}}
    return api.post(QP, body)


def _reads_still_answer(api, run_id: str | None = None) -> None:
    for path in ("/api/v1/runs", "/", "/runs", *( [f"/api/v1/runs/{run_id}", f"/api/v1/runs/{run_id}/results"]
                                                    if run_id else [])):
        r = api.get(path, follow_redirects=False)
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:300]}"


def test_a_duration_of_1e18_ms_is_refused_and_reads_keep_answering(api):
    r = _qp(api, durationMs=1e18)
    assert r.status_code == 400, r.text
    assert "durationMs" in r.json()["message"] or "duration" in r.json()["message"].lower()
    _reads_still_answer(api)
    # The largest duration the schema allows is stored and read back everywhere.
    ok = _qp(api, durationMs=clock.MAX_DURATION_MS)
    assert ok.status_code == 202, ok.text
    _reads_still_answer(api, ok.json()["id"])
    assert api.get(f"/api/v1/runs/{ok.json()['id']}").status_code == 200
    assert api.delete(f"/api/v1/runs/{ok.json()['id']}").status_code in (200, 204)


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1969-12-31T23:59:59Z"])
def test_an_executed_at_outside_the_storable_range_is_refused(api, when):
    project = api.project("Dates")
    r = api.post("/api/v1/ingest", {"project_id": project["id"], "results": [
        {"title": "ok", "status": "PASSED"}, {"title": "odd", "status": "PASSED", "executed_at": when}]})
    # One bad item is a 207 entry naming the field, the rest is stored (seed 000).
    assert r.status_code == 207, r.text
    assert "executed_at" in r.text
    run_id = r.json()["run_id"]
    _reads_still_answer(api, run_id)


def test_two_qualitypilot_runs_at_the_largest_count_do_not_break_trends(api):
    big = 9223372036854775807
    r = _qp(api, total=big, passed=big)
    assert r.status_code == 400, r.text
    assert "total" in r.json()["message"]
    # The largest accepted count, twice on one day: the day's sums still add up.
    for _ in range(2):
        ok = _qp(api, total=clock.MAX_COUNT, passed=clock.MAX_COUNT)
        assert ok.status_code == 202, ok.text
    project = api.get("/api/v1/projects").json()["data"][0]
    r = api.get(f"/api/v1/projects/{project['id']}/trends")
    assert r.status_code == 200, r.text
    assert r.json()["data"][-1]["tests"] == 2 * clock.MAX_COUNT


def test_a_20000_digit_test_run_id_is_a_400(api):
    r = api.get("/api/v1/results", params={"test_run_ids": "9" * 20000})
    assert r.status_code in (400, 404), r.text
    r = api.get("/api/v1/results", params={"test_run_ids": "1" + "0" * 19})
    assert r.status_code in (400, 404), r.text


def test_stored_times_outside_the_calendar_are_clamped_when_read():
    assert clock.to_iso(-10**18) == "0001-01-01T00:00:00.000Z"
    assert clock.to_iso(10**18) == "9999-12-31T23:59:59.999Z"
    assert clock.to_iso(0) == "1970-01-01T00:00:00.000Z"
    assert clock.to_iso(None) is None


def test_values_stored_before_the_bounds_do_not_break_any_read(api):
    """Rows written before the edge checked these bounds (or by hand): every read that shows
    them still answers, clamping what cannot be shown, and the day's sums do not overflow."""
    project = api.project("Stored poison")
    runs = []
    for _ in range(2):
        r = api.post("/api/v1/ingest", {"project_id": project["id"], "ci": {"branch": "main"},
                                        "results": [{"title": "t", "status": "PASSED"}]})
        assert r.status_code == 201, r.text
        runs.append(r.json())
    with sqlite3.connect(api.config.db_path) as conn:
        conn.execute("UPDATE runs SET started_at = ?, finished_at = ?, duration_ms = ?, total = ?, passed = ?",
                     (-10**18, 10**18, 2**63 - 1, 2**63 - 1, 2**63 - 1))
        conn.execute("UPDATE results SET executed_at = ?, duration_ms = ?", (-10**17, 2**63 - 1))
        row = conn.execute("SELECT created_at FROM runs LIMIT 1").fetchone()
        # The day's trend row, recomputed as the writer does when a run finishes.
        trends.refresh_day(conn, project["id"], "main", trends.day_of(row[0]))
        tests = conn.execute("SELECT tests FROM daily_stats WHERE project_id = ?", (project["id"],)).fetchone()[0]
    assert tests == 2**63 - 1  # pinned, not overflowed
    run = runs[0]
    for path in ("/api/v1/runs", f"/api/v1/runs/{run['run_id']}", f"/api/v1/runs/{run['run_id']}/results",
                 f"/v1/run/{run['short_id']}?testCases=all", f"/api/v1/projects/{project['id']}/trends",
                 "/", "/runs", f"/runs/{run['run_id']}"):
        r = api.get(path, follow_redirects=False)
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:300]}"
    assert api.get(f"/api/v1/runs/{run['run_id']}").json()["started_at"] == "0001-01-01T00:00:00.000Z"
    assert api.delete(f"/api/v1/runs/{run['run_id']}").status_code in (200, 204)


@pytest.mark.parametrize("path", ["/api/v1/runs/{run}/results", "/api/v1/projects/{project}/tests",
                                  "/api/v1/runs", "/api/v1/projects"])
@pytest.mark.parametrize("forged", ["1:abc", "99999999999999999999999:1", "1:99999999999999999999999", "x", "1"])
def test_a_forged_cursor_is_a_400(api, path, forged):
    import base64

    project = api.project(f"Cursor {forged} {path}")
    run = api.post("/api/v1/ingest", {"project_id": project["id"], "results": [{"title": "t", "status": "PASSED"}]})
    cursor = base64.urlsafe_b64encode(forged.encode()).decode().rstrip("=")
    r = api.get(path.format(run=run.json()["run_id"], project=project["id"]), params={"cursor": cursor, "limit": 5})
    assert r.status_code in (200, 400), f"{forged}: {r.status_code} {r.text[:300]}"
    if r.status_code == 400:
        assert "cursor" in r.json()["message"]


@pytest.mark.parametrize("query", ["since=0001-01-01&until=9999-12-31", "until=9999-12-31", "since=0001-01-01"])
def test_the_dashboard_runs_list_takes_the_calendar_s_first_and_last_days(api, query):
    r = api.get(f"/runs?{query}", follow_redirects=False)
    assert r.status_code == 200, r.text[:300]


@pytest.mark.parametrize("query", ["to=0001-01-05", "from=9999-12-01&to=9999-12-31", "from=0001-01-01&to=0001-01-02"])
def test_the_dashboard_trends_take_the_calendar_s_first_and_last_days(api, query):
    project = api.project(f"Trend {query}")
    r = api.get(f"/projects/{project['id']}/trends?{query}", follow_redirects=False)
    assert r.status_code == 200, r.text[:300]
