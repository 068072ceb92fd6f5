"""The A-F grade: the formula and its weights, not-enough-data, and the route over real runs."""

from __future__ import annotations

import pytest
from health_helpers import fast_api, ingest, outcomes

from qahub_lite.core.grade import letter, score_of


def test_the_formula_and_its_weights():
    # 99 % passing final results and 1 of 100 tests flaky: 100 - 5 x 1 - 3 x 1 = 92
    score, b = score_of(passed=990, failed=10, tests=100, flaky_tests=1, broken_tests=0)
    assert score == 92.0 and letter(score) == "A"
    assert (b.pass_rate, b.failures.points, b.flaky.points, b.broken.points) == (0.99, 5.0, 3.0, 0.0)
    # 95 % passing, 5 % flaky, 2 % broken: 100 - 25 - 15 - 8 = 52
    score, _ = score_of(passed=95, failed=5, tests=100, flaky_tests=5, broken_tests=2)
    assert score == 52.0 and letter(score) == "F"


def test_each_penalty_has_its_cap_and_the_caps_add_up_to_100():
    score, b = score_of(passed=0, failed=10, tests=10, flaky_tests=10, broken_tests=10)
    assert (b.failures.points, b.flaky.points, b.broken.points, score) == (50.0, 30.0, 20.0, 0.0)


@pytest.mark.parametrize("score,name", [(100, "A"), (90, "A"), (89.99, "B"), (80, "B"), (70, "C"), (60, "D"),
                                        (59.99, "F"), (0, "F")])
def test_letters(score, name):
    assert letter(score) == name


def test_nothing_ran_means_a_perfect_figure_not_a_division_by_zero():
    score, b = score_of(passed=0, failed=0, tests=0, flaky_tests=0, broken_tests=0)
    assert score == 100.0 and b.pass_rate == 1.0


@pytest.fixture
def hapi(tmp_path):
    with fast_api(tmp_path) as api:  # grade.min_runs = 3
        yield api


def test_the_route_grades_a_branch_with_its_breakdown(hapi):
    project = hapi.project("Shop")
    url = f"/api/v1/projects/{project['id']}/grade"
    ingest(hapi, project["id"], outcomes(a="PASSED", b="PASSED", c="PASSED", d="FAILED"))
    early = hapi.get(url).json()
    assert early["status"] == "not_enough_data" and early["grade"] is None and early["breakdown"] is None
    assert "1 completed run(s), a grade needs 3" in early["message"]
    for _ in range(3):
        ingest(hapi, project["id"], outcomes(a="PASSED", b="PASSED", c="PASSED", d="FAILED"))
    body = hapi.get(url).json()
    # 12 passing, 4 failing final results: failing 25 % costs min(50, 125) = 50; d is broken
    # (failing every time lately): 1 of 4 tests, 25 % x 4 = min(20, 100) = 20: score 30, F
    b = body["breakdown"]
    assert (b["passed"], b["failed"], b["tests"], b["broken_tests"], b["flaky_tests"]) == (12, 4, 4, 1, 0)
    assert (body["status"], body["score"], body["grade"], body["runs"]) == ("graded", 30.0, "F", 4)
    assert body["formula"].startswith("100 - min(50, 5 x failing%)")


def test_a_healthy_branch_gets_an_a_and_branches_are_graded_apart(hapi):
    project = hapi.project("Shop")
    for i in range(4):
        ingest(hapi, project["id"], outcomes(a="PASSED", b="PASSED"), commit=f"m{i}")
        ingest(hapi, project["id"], outcomes(a="FAILED", b="PASSED"), branch="pr-9", commit=f"p{i}")
    main = hapi.get(f"/api/v1/projects/{project['id']}/grade").json()
    assert (main["branch"], main["grade"], main["score"]) == ("main", "A", 100.0)
    pr = hapi.get(f"/api/v1/projects/{project['id']}/grade?branch=pr-9").json()
    assert pr["branch"] == "pr-9" and pr["grade"] == "F"


def test_a_summary_without_cases_counts_through_its_run_counts(hapi):
    """QualityPilot may send only a summary: the pass rate comes from the run's counts."""
    for i in range(3):
        body = {"repo": "acme/api", "branch": "main", "commit": f"s{i}",
                "summary": {"total": 100, "passed": 98, "failed": 2}}
        r = hapi.client.post("/api/v1/test-runs", json=body, headers={"X-API-Key": hapi.admin_key})
        assert r.status_code == 202, r.text
    project = [p for p in hapi.get("/api/v1/projects").json()["data"] if p["repo"] == "acme/api"][0]
    body = hapi.get(f"/api/v1/projects/{project['id']}/grade").json()
    b = body["breakdown"]
    assert (b["passed"], b["failed"], b["pass_rate"], b["tests"]) == (294, 6, 0.98, 0)
    assert body["score"] == 90.0 and body["grade"] == "A"  # 2 % failing x 5 = 10 points
