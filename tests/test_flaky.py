"""Flakiness: the rules one by one (core/flaky.judge), then the routes over real runs of
several dialects: ranking, states, history, quarantine, infrastructure failures."""

from __future__ import annotations

import pytest
from health_helpers import fast_api, ingest, outcomes

from qahub_lite.config import FlakyConfig
from qahub_lite.core.flaky import BROKEN, FLAKY, HEALTHY, judge

pytestmark = pytest.mark.engines

RULES = FlakyConfig()  # N 30, min samples 10, threshold 0.2, M 10, broken after 3


def judged(pattern: str, commits: list[str | None] | None = None, rules: FlakyConfig = RULES):
    """P pass, F fail, R pass on retry; oldest first."""
    n = len(pattern)
    return judge(
        7, list(range(n)), [c == "F" for c in pattern], [c == "R" for c in pattern], commits or [None] * n, rules
    )


# --- the rules ------------------------------------------------------------------------------


def test_a_test_that_only_passes_is_healthy():
    j = judged("P" * 30)
    assert (j.state, j.samples, j.flips, j.flip_rate, j.clean_streak) == (HEALTHY, 30, 0, 0.0, 30)


def test_flip_rate_is_changes_over_n_minus_one_and_flags_at_the_threshold():
    # 12 samples, 11 possible changes; PPPPPPPFPPFP has 4 changes: 4 / 11 = 0.36
    j = judged("PPPPPPPFPPFP")
    assert (j.flips, j.flip_rate, j.state) == (4, round(4 / 11, 4), FLAKY)
    # the rate is judged when a failure happens, over the samples up to it: one failure after
    # nine passes is 1 change / 9 = 0.11 then, below 0.2 (the recovery is no evidence)
    assert judged("PPPPPPPPPFPP").state == HEALTHY
    # the same failure after the test had failed twice before: 5 changes / 9 = 0.56
    assert judged("PFPPFPPPPFPP").state == FLAKY


def test_the_flip_rate_needs_min_samples():
    assert judged("PFPFPFPP").state == HEALTHY  # 8 samples < 10: the rate may not flag yet
    assert judged("PFPFPFPP", rules=FlakyConfig(min_samples=5)).state == FLAKY


def test_a_pass_on_retry_is_evidence_on_its_own():
    j = judged("PPPRPP")
    assert (j.state, j.retry_passes, j.retry_rate) == (FLAKY, 1, round(1 / 6, 4))


def test_the_same_commit_passing_and_failing_is_evidence():
    j = judged("PPFP", commits=["a", "b", "c", "c"])
    assert (j.state, j.conflicting_commits, j.conflict_rate) == (FLAKY, 1, 0.5)
    assert judged("PPFP", commits=["a", "b", "c", "d"]).state == HEALTHY


def test_a_flagged_test_is_cleared_only_after_m_clean_runs():
    assert judged("PPR" + "P" * 9).state == FLAKY  # 9 clean passes since the evidence
    j = judged("PPR" + "P" * 10)
    assert (j.state, j.clean_streak) == (HEALTHY, 10)
    # a failure among the clean passes starts the count again, without being evidence itself
    assert judged("PPR" + "P" * 5 + "F" + "P" * 9).state == FLAKY
    # once cleared, a lone later failure does not flag it again
    assert judged("PPR" + "P" * 10 + "F" + "P").state == HEALTHY


def test_flip_evidence_keeps_a_test_flaky_until_m_clean_passes():
    busy = "PFPFPFPFPFPF"  # rate 1.0 with 12 samples
    assert judged(busy + "P" * 9).state == FLAKY
    assert judged(busy + "P" * 10).state == HEALTHY


def test_broken_means_failing_every_time_lately_and_wins_over_flaky():
    assert judged("P" * 10 + "FFF").state == BROKEN
    assert judged("P" * 10 + "FF").state == HEALTHY  # two failures: not yet
    assert judged("PFPFPFPFPFPF" + "FFF").state == BROKEN


def test_rates_are_over_the_last_n_results():
    j = judged("F" * 20 + "P" * 30, rules=FlakyConfig(broken_after_failures=3))
    assert (j.samples, j.failures, j.fail_rate) == (30, 0, 0.0)


# --- the routes -----------------------------------------------------------------------------


@pytest.fixture
def hapi(tmp_path, storage_url):
    with fast_api(tmp_path, storage_url=storage_url) as api:
        yield api


def _history_of_runs(api, project_id: str, patterns: dict[str, str], **kw) -> list[dict]:
    """Ingest one run per position of the patterns (title -> P/F/R string)."""
    length = len(next(iter(patterns.values())))
    codes = {"P": "PASSED", "F": "FAILED", "R": "RETRIED", "S": "SKIPPED"}
    return [
        ingest(api, project_id, outcomes(**{t: codes[p[i]] for t, p in patterns.items()}), commit=f"c{i}", **kw)
        for i in range(length)
    ]


def test_ranking_lists_flaky_tests_top_offenders_first_with_rates_and_last_failure(hapi):
    project = hapi.project("Shop")
    _history_of_runs(hapi, project["id"], {
        "alternates": "PFPFPFPFPFPF",  # flip rate 1.0
        "wobbles": "PPFPPFPPFPPP",  # 6 changes / 11 = 0.55
        "retried": "PPPPPPPPPPRP",  # retry rate 1/12
        "solid": "PPPPPPPPPPPP",
        "broke": "PPPPPPPPPFFF",
    })
    r = hapi.get(f"/api/v1/projects/{project['id']}/flaky")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["branch"] == "main" and body["runs_analysed"] == 12 and body["total"] == 3
    assert [t["title"] for t in body["data"]] == ["alternates", "wobbles", "retried"]
    top = body["data"][0]
    assert (top["state"], top["flip_rate"], top["fail_rate"], top["samples"]) == ("flaky", 1.0, 0.5, 12)
    assert top["last_failure"]["status"] == "FAILED"
    assert hapi.get(f"/api/v1/projects/{project['id']}/flaky?limit=1").json()["data"][0]["title"] == "alternates"
    assert hapi.get(f"/api/v1/projects/{project['id']}/flaky?limit=0").status_code == 400
    assert hapi.get(f"/api/v1/projects/{project['id']}/flaky?bogus=1").status_code == 400

    tests = hapi.get(f"/api/v1/projects/{project['id']}/tests").json()
    assert tests["counts"] == {"flaky": 3, "broken": 1, "healthy": 1, "quarantined": 0}
    assert [t["title"] for t in tests["data"]][:2] == ["broke", "alternates"]  # broken first
    page = hapi.get(f"/api/v1/projects/{project['id']}/tests?limit=2").json()
    assert len(page["data"]) == 2 and page["next_cursor"]
    rest = hapi.get(f"/api/v1/projects/{project['id']}/tests?limit=2&cursor={page['next_cursor']}").json()
    assert [t["title"] for t in rest["data"]] == ["wobbles", "retried"]
    healthy = hapi.get(f"/api/v1/projects/{project['id']}/tests?state=healthy").json()["data"]
    assert [t["title"] for t in healthy] == ["solid"]


def test_only_the_default_branch_counts_and_other_branches_can_be_asked_for(hapi):
    project = hapi.project("Shop", default_branch="trunk")
    _history_of_runs(hapi, project["id"], {"x": "PFPFPFPFPFPF"}, branch="feature")
    assert hapi.get(f"/api/v1/projects/{project['id']}/flaky").json()["total"] == 0
    other = hapi.get(f"/api/v1/projects/{project['id']}/flaky?branch=feature").json()
    assert other["branch"] == "feature" and other["total"] == 1


def test_infrastructure_failures_are_left_out(hapi):
    project = hapi.project("Shop")
    names = [f"t{i}" for i in range(10)]
    for i in range(12):
        # every third run most tests fail at once: the machine, not the tests
        status = "FAILED" if i % 3 == 2 else "PASSED"
        ingest(hapi, project["id"], [{"title": n, "status": status} for n in names])
    body = hapi.get(f"/api/v1/projects/{project['id']}/flaky").json()
    assert body["total"] == 0 and body["runs_analysed"] == 8 and body["infra_runs_excluded"] == 4


def test_history_walks_the_last_results_with_run_branch_commit_status_and_duration(hapi):
    project = hapi.project("Shop")
    case = hapi.test_case(project["id"], "Checkout works", code="TC-7")
    for i in range(5):
        results = [{"test_case_code": "TC-7", "status": "FAILED" if i == 3 else "PASSED", "duration_ms": 100 + i}]
        ingest(hapi, project["id"], results, branch="main" if i % 2 == 0 else "pr-1", commit=f"sha{i}")
    ingest(hapi, project["id"], [{"title": "other", "status": "PASSED"}])  # a run without it
    r = hapi.get(f"/api/v1/projects/{project['id']}/tests/TC-7/history?limit=3")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["test"]["test_case_id"] == case["id"]
    assert [(e["commit"], e["branch"], e["status"], e["duration_ms"]) for e in body["data"]] == [
        ("sha4", "main", "PASSED", 104), ("sha3", "pr-1", "FAILED", 103), ("sha2", "main", "PASSED", 102),
    ]
    assert body["health"]["state"] == "healthy" and body["health"]["samples"] == 3  # main only
    main_only = hapi.get(f"/api/v1/projects/{project['id']}/tests/{body['test']['id']}/history?branch=pr-1").json()
    assert [e["commit"] for e in main_only["data"]] == ["sha3", "sha1"]
    assert hapi.get(f"/api/v1/projects/{project['id']}/tests/TC-404/history").status_code == 404
    assert hapi.get(f"/api/v1/projects/{project['id']}/tests/999999/history").status_code == 404


def test_quarantine_on_and_off(hapi):
    project = hapi.project("Shop")
    _history_of_runs(hapi, project["id"], {"wobbly": "PFPFPFPFPFPF"})
    test_id = hapi.get(f"/api/v1/projects/{project['id']}/flaky").json()["data"][0]["test_id"]
    base = f"/api/v1/projects/{project['id']}/tests/{test_id}/quarantine"
    r = hapi.client.put(base, json={"reason": "times out on CI"}, headers=hapi.h())
    assert r.status_code == 200, r.text
    assert r.json()["quarantined"] is True and r.json()["quarantine_reason"] == "times out on CI"
    assert r.json()["quarantined_at"]
    assert hapi.client.put(base, headers=hapi.h()).json()["quarantine_reason"] == "times out on CI"  # kept
    listed = hapi.get(f"/api/v1/projects/{project['id']}/tests?quarantined=true").json()
    assert [t["test_id"] for t in listed["data"]] == [test_id] and listed["counts"]["quarantined"] == 1
    assert hapi.get(f"/api/v1/projects/{project['id']}/flaky?include_quarantined=false").json()["total"] == 0
    r = hapi.delete(base)
    assert r.status_code == 200 and r.json()["quarantined"] is False and r.json()["quarantine_reason"] is None
    assert hapi.client.put(base, json={"reason": 5}, headers=hapi.h()).status_code == 400


def test_a_key_of_another_project_sees_nothing(hapi):
    from qahub_lite.core.tenancy import create_key
    from qahub_lite.db.database import direct_connection

    mine, theirs = hapi.project("Mine"), hapi.project("Theirs")
    _history_of_runs(hapi, theirs["id"], {"x": "PFPFPFPFPFPF"})
    with direct_connection(hapi.config) as conn:
        key = create_key(conn, hapi.tenant_id, scope="write", project_id=mine["id"]).key
    for path in ("flaky", "tests", "grade", "trends", "gate", "tests/1/history"):
        assert hapi.get(f"/api/v1/projects/{theirs['id']}/{path}", key=key).status_code == 404, path
    assert hapi.client.put(f"/api/v1/projects/{theirs['id']}/tests/1/quarantine",
                           headers=hapi.h(key)).status_code == 404
    assert hapi.get(f"/api/v1/projects/{mine['id']}/flaky", key=key).status_code == 200


def test_runs_of_every_dialect_count(hapi):
    """QualityPilot's test-runs land on the same tables: its flaky cases are passes on retry."""
    for i in range(3):
        body = {
            "repo": "acme/shop", "branch": "main", "commit": f"q{i}",
            "summary": {"total": 2, "passed": 2, "failed": 0},
            "cases": [{"suite": "cart", "name": "adds items", "status": "flaky" if i == 1 else "passed"},
                      {"suite": "cart", "name": "empties", "status": "passed"}],
        }
        r = hapi.client.post("/api/v1/test-runs", json=body, headers={"X-API-Key": hapi.admin_key})
        assert r.status_code == 202, r.text
    project = [p for p in hapi.get("/api/v1/projects").json()["data"] if p["repo"] == "acme/shop"][0]
    ranking = hapi.get(f"/api/v1/projects/{project['id']}/flaky").json()
    assert [(t["title"], t["suite"], t["retry_passes"]) for t in ranking["data"]] == [("adds items", "cart", 1)]
