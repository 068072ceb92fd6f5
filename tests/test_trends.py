"""Daily trend aggregates: kept per project, branch and day, graded by the background job, and
never erased by the retention of raw results."""

from __future__ import annotations

import datetime as dt

import pytest
from health_helpers import fast_api, ingest, outcomes, wait_for

from qahub_lite.core.trends import percentile
from qahub_lite.db.database import direct_connection

pytestmark = pytest.mark.engines


def test_percentiles_by_nearest_rank():
    values = [100, 200, 300, 400, 1000]
    assert (percentile(values, 50), percentile(values, 95), percentile([], 50)) == (300, 1000, None)
    assert percentile([7], 95) == 7
    assert percentile(list(range(1, 101)), 95) == 95


@pytest.fixture
def hapi(tmp_path, storage_url):
    with fast_api(tmp_path, storage_url=storage_url) as api:
        yield api


def _today() -> str:
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


def _trend(api, project_id: str, query: str = "") -> dict:
    r = api.get(f"/api/v1/projects/{project_id}/trends{query}")
    assert r.status_code == 200, r.text
    return r.json()


def test_a_day_holds_runs_tests_pass_rate_flaky_durations_and_grade(hapi):
    project = hapi.project("Shop")
    for i, duration in enumerate((100, 200, 1000)):
        ingest(hapi, project["id"], outcomes(a="PASSED", b="FAILED" if i == 0 else "PASSED", c="RETRIED"),
               duration_ms=duration)
    ingest(hapi, project["id"], outcomes(a="FAILED"), branch="pr-1")
    day = _trend(hapi, project["id"])["data"]
    assert len(day) == 1
    point = day[0]
    assert point["day"] == _today()
    assert (point["runs"], point["tests"], point["passed"], point["failed"], point["flaky_results"]) == (3, 9, 8, 1, 3)
    assert (point["pass_rate"], point["duration_p50_ms"], point["duration_p95_ms"]) == (round(8 / 9, 4), 200, 1000)

    graded = wait_for(lambda: [p for p in _trend(hapi, project["id"])["data"] if p["graded"]])
    grade = hapi.get(f"/api/v1/projects/{project['id']}/grade").json()
    assert (graded[0]["grade"], graded[0]["score"]) == (grade["grade"], grade["score"])
    assert graded[0]["flaky_tests"] == 1  # c passed on retry in every run

    pr = _trend(hapi, project["id"], "?branch=pr-1")["data"]
    assert [(p["runs"], p["failed"]) for p in pr] == [(1, 1)]


def test_retention_of_raw_results_never_erases_the_trend(hapi):
    project = hapi.project("Shop")
    runs = [ingest(hapi, project["id"], outcomes(a="PASSED", b="FAILED")) for _ in range(3)]
    before = wait_for(lambda: [p for p in _trend(hapi, project["id"])["data"] if p["graded"]])
    with direct_connection(hapi.config) as conn:  # the results grow old
        conn.execute("UPDATE results SET created_at = created_at - ?, updated_at = updated_at - ?",
                     (40 * 86_400_000,) * 2)
    swept = hapi.post("/api/v1/admin/sweep")
    assert swept.status_code == 200 and swept.json()["deleted_results"] == 6
    assert hapi.get(f"/api/v1/runs/{runs[0]['run_id']}/results").json()["data"] == []
    assert _trend(hapi, project["id"])["data"] == before


def test_the_date_range_is_inclusive_and_checked(hapi):
    project = hapi.project("Shop")
    ingest(hapi, project["id"], outcomes(a="PASSED"))
    today = dt.datetime.now(dt.timezone.utc).date()
    base = f"/api/v1/projects/{project['id']}/trends"
    assert len(_trend(hapi, project["id"], f"?from={today}&to={today}")["data"]) == 1
    yesterday = today - dt.timedelta(days=1)
    body = _trend(hapi, project["id"], f"?from={yesterday - dt.timedelta(days=5)}&to={yesterday}")
    assert body["data"] == [] and body["to_day"] == yesterday.isoformat()
    for query, words in (
        ("?from=31-12-2024", "from"), ("?from=2024-02-30", "from"), (f"?from={today}&to={yesterday}", "before"),
        ("?from=2020-01-01&to=2024-01-01", "366"),
    ):
        r = hapi.get(base + query)
        assert r.status_code == 400 and words in r.json()["message"], (query, r.text)
