"""QualityPilot dialect (seed 002): POST /api/v1/test-runs against the real app and a real
SQLite file: the seed's own payload, what QualityPilot's pytest reporter sends, the errors,
the case cap, flaky cases, and which project a run lands in."""

from __future__ import annotations

import pytest

from qahub_lite.config import load_config
from qahub_lite.core import tenancy
from qahub_lite.db.database import direct_connection

from conftest import Api, make_api, write_config
from seeds.examples import seed002_payload

pytestmark = pytest.mark.engines

URL = "/api/v1/test-runs"


@pytest.fixture
def qp_api(tmp_path, storage_url):
    """The app with a small case cap, so that dropping is cheap to show."""
    config = load_config(write_config(tmp_path, "[qualitypilot]\nmax_cases = 3\n", storage_url=storage_url), environ={})
    client, boot = make_api(config)
    with client:
        yield Api(client, config, boot.admin_key, boot.tenant_id)


def _key(api, scope="write", project_id=None) -> str:
    with direct_connection(api.config) as conn:
        return tenancy.create_key(conn, api.tenant_id, scope=scope, project_id=project_id).key


def _post(api, body, key=None, header="X-API-Key"):
    value = key or api.admin_key
    headers = {"X-API-Key": value} if header == "X-API-Key" else {"Authorization": f"Bearer {value}"}
    return api.client.post(URL, json=body, headers=headers)


def _results(api, run_id) -> list[dict]:
    r = api.get(f"/api/v1/runs/{run_id}/results")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def _project_by_repo(api, repo) -> dict | None:
    projects = api.get("/api/v1/projects").json()["data"]
    return next((p for p in projects if p["repo"] == repo), None)


def test_seed_002_payload_is_accepted_as_is(api):
    r = _post(api, seed002_payload())
    assert r.status_code == 202, r.text
    body = r.json()
    assert set(body) == {"id", "accepted", "casesStored", "casesDropped"}
    assert body["accepted"] is True and body["casesStored"] == 1 and body["casesDropped"] == 0

    run = api.get(f"/api/v1/runs/{body['id']}").json()
    assert run["source"] == "qualitypilot" and run["status"] == "COMPLETED" and run["framework"] == "jest"
    assert run["ci"] == {"branch": "feature/x", "commit": "abc1234", "repository": "owner/name",
                         "ci_provider": "github_actions"}
    assert run["duration_ms"] == 38241
    # One case came, the summary names 142 tests: the run carries the summary's counts.
    assert run["counts"]["total"] == 142 and run["counts"]["passed"] == 140 and run["counts"]["failed"] == 2
    assert run["counts"]["flaky"] == 1 and run["verdict"] == "FAILED"
    project = _project_by_repo(api, "owner/name")
    assert project is not None and run["project_id"] == project["id"] and project["name"] == "owner/name"

    (result,) = _results(api, body["id"])
    assert (result["suite"], result["title"], result["status"]) == ("auth/login", "rejects invalid password", "FAILED")
    assert result["duration_ms"] == 421 and result["error_message"] == "expected 401, got 500"
    assert result["test_case_id"] is None  # no tag: an unlinked result


def test_bearer_works_as_well_as_x_api_key(api):
    assert _post(api, seed002_payload(), header="Bearer").status_code == 202


def test_what_the_qualitypilot_pytest_reporter_sends(api):
    """qlens-pytest-reporter 0.1.0 posts a summary with flaky counted apart from passed, null
    commit and branch outside CI, ciProvider values the seed does not list, and (with
    QLENS_SEND_CASES=1) cases whose errorMessage may be null."""
    for provider in ("circle", "other", None, "buildkite-enterprise"):
        body = {
            "repo": "acme/shop", "commit": None, "branch": None, "framework": "pytest", "ciProvider": provider,
            "summary": {"total": 9, "passed": 5, "failed": 1, "skipped": 1, "flaky": 2, "durationMs": 1234},
        }
        r = _post(api, body)
        assert r.status_code == 202, r.text
        assert r.json()["casesStored"] == 0
        run = api.get(f"/api/v1/runs/{r.json()['id']}").json()
        assert run["ci"].get("ci_provider") == provider
        # Reporter style: total = passed + failed + skipped + flaky, and flaky ones are passes.
        assert run["counts"]["total"] == 9 and run["counts"]["passed"] == 7 and run["counts"]["flaky"] == 2
        assert run["counts"]["failed"] == 1 and run["counts"]["skipped"] == 1 and run["verdict"] == "FAILED"
    with_cases = {
        "repo": "acme/shop", "commit": "f" * 40, "branch": "main", "framework": "pytest", "ciProvider": "other",
        "summary": {"total": 2, "passed": 1, "failed": 1, "skipped": 0, "flaky": 0, "durationMs": 20},
        "cases": [
            {"suite": "tests/test_a.py", "name": "test_ok", "status": "passed", "durationMs": 3,
             "errorMessage": None, "attempts": 1},
            {"suite": "", "name": "tests/test_b.py::test_bad", "status": "failed", "durationMs": 7,
             "errorMessage": "assert 1 == 2", "attempts": 1},
        ],
    }
    r = _post(api, with_cases)
    assert r.status_code == 202 and r.json()["casesStored"] == 2
    ok, bad = _results(api, r.json()["id"])
    assert ok["status"] == "PASSED" and ok["error_message"] is None
    assert bad["suite"] == "" and bad["title"] == "tests/test_b.py::test_bad" and bad["status"] == "FAILED"
    assert len({p["id"] for p in api.get("/api/v1/projects").json()["data"]}) == 1  # one project for acme/shop


def test_a_flaky_case_is_a_pass_after_failed_attempts(api):
    body = {"repo": "acme/shop", "summary": {"total": 2, "passed": 1, "failed": 0, "flaky": 1},
            "cases": [{"suite": "cart", "name": "adds an item", "status": "flaky", "attempts": 3,
                       "errorMessage": "timeout waiting for #cart", "durationMs": 812.6},
                      {"suite": "cart", "name": "retries once", "status": "FLAKY"}]}
    r = _post(api, body)
    assert r.status_code == 202, r.text
    flaky, once = _results(api, r.json()["id"])
    assert flaky["status"] == "PASSED" and flaky["flaky"] is True and flaky["attempts"] == 3
    assert flaky["duration_ms"] == 813 and flaky["error_message"] is None
    assert flaky["previous_attempts"] == [{"status": "FAILED"},
                                          {"status": "FAILED", "error_message": "timeout waiting for #cart"}]
    # No attempt count sent: a flaky case still had at least one failed attempt.
    assert once["flaky"] is True and once["attempts"] == 2 and once["previous_attempts"] == [{"status": "FAILED"}]
    run = api.get(f"/api/v1/runs/{r.json()['id']}").json()
    assert run["counts"]["passed"] == 2 and run["counts"]["flaky"] == 2 and run["verdict"] == "PASSED"


def test_cases_beyond_the_cap_are_dropped_and_the_summary_kept(qp_api):
    api = qp_api
    cases = [{"suite": "s", "name": f"case {i}", "status": "failed" if i == 4 else "passed"} for i in range(5)]
    body = {"repo": "acme/big", "summary": {"total": 5, "passed": 4, "failed": 1}, "cases": cases}
    r = _post(api, body)
    assert r.status_code == 202, r.text
    assert r.json()["casesStored"] == 3 and r.json()["casesDropped"] == 2
    assert [x["title"] for x in _results(api, r.json()["id"])] == ["case 0", "case 1", "case 2"]
    run = api.get(f"/api/v1/runs/{r.json()['id']}").json()
    # The failing case was dropped, the summary still says a test failed.
    assert run["counts"]["total"] == 5 and run["counts"]["failed"] == 1 and run["verdict"] == "FAILED"


def test_counts_come_from_the_cases_when_they_cover_the_summary(api):
    body = {"repo": "acme/shop", "summary": {"total": 1, "passed": 1, "failed": 0},
            "cases": [{"name": "a", "status": "passed"}, {"name": "b", "status": "skipped"}]}
    r = _post(api, body)
    run = api.get(f"/api/v1/runs/{r.json()['id']}").json()
    assert run["counts"]["total"] == 2 and run["counts"]["passed"] == 1 and run["counts"]["skipped"] == 1


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"summary": {"total": 1, "passed": 1, "failed": 0}}, "`repo`"),
        ({"repo": "a/b"}, "`summary`"),
        ({"repo": "a/b", "summary": {"passed": 1, "failed": 0}}, "`total`"),
        ({"repo": "a/b", "summary": {"total": 1, "failed": 0}}, "`passed`"),
        ({"repo": "a/b", "summary": {"total": 1, "passed": 1}}, "`failed`"),
        ({"repo": None, "summary": {"total": 1, "passed": 1, "failed": 0}}, "`$.repo`"),
        ({"repo": "  ", "summary": {"total": 1, "passed": 1, "failed": 0}}, "`repo`"),
        ({"repo": "a/b", "summary": {"total": -1, "passed": 1, "failed": 0}}, "`$.summary.total`"),
        ({"repo": "a/b", "summary": {"total": 1, "passed": 1, "failed": 0}, "cases": [{"status": "passed"}]},
         "`name`"),
        ({"repo": "a/b", "summary": {"total": 1, "passed": 1, "failed": 0},
          "cases": [{"name": "x", "status": "passed"}, {"name": "y", "status": "broken"}]}, "`$.cases[1].status`"),
    ],
)
def test_400_names_the_missing_or_wrong_field_and_stores_nothing(api, body, named):
    r = _post(api, body)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "Bad Request" and named in r.json()["message"]
    assert api.get("/api/v1/runs").json()["data"] == []
    assert api.get("/api/v1/projects").json()["data"] == []


def test_400_for_invalid_json(api):
    r = api.client.post(URL, content=b'{"repo": "a/b", "summary": {', headers={"X-API-Key": api.admin_key,
                                                                                "Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"]


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "qlens_abc"}, {"X-API-Key": "qh_abc_def"}])
def test_401_for_a_missing_or_wrong_key(api, headers):
    r = api.client.post(URL, json=seed002_payload(), headers=headers)
    assert r.status_code == 401
    assert r.json() == {"error": "Unauthorized", "message": "Missing or invalid API key"}


def test_a_read_key_cannot_post(api):
    assert _post(api, seed002_payload(), key=_key(api, "read")).status_code == 403


def test_the_run_lands_in_the_project_that_has_the_repo(api):
    project = api.project("Web shop", repo="acme/web")
    r = _post(api, {"repo": "acme/web", "summary": {"total": 0, "passed": 0, "failed": 0}})
    assert api.get(f"/api/v1/runs/{r.json()['id']}").json()["project_id"] == project["id"]
    assert len(api.get("/api/v1/projects").json()["data"]) == 1


def test_a_project_key_posts_only_to_its_own_repo(api):
    mine = api.project("Mine", repo="acme/mine")
    api.project("Theirs", repo="acme/theirs")
    key = _key(api, "write", project_id=mine["id"])
    summary = {"total": 1, "passed": 1, "failed": 0}
    assert _post(api, {"repo": "acme/mine", "summary": summary}, key=key).status_code == 202
    for repo in ("acme/theirs", "acme/new"):  # another project's repo and an unknown one look alike
        r = _post(api, {"repo": repo, "summary": summary}, key=key)
        assert r.status_code == 404 and r.json()["error"] == "Not Found" and repo in r.json()["message"]
    assert _project_by_repo(api, "acme/new") is None
    assert len(api.get("/api/v1/runs").json()["data"]) == 1


def test_projects_are_not_created_when_turned_off(tmp_path, storage_url):
    config = load_config(write_config(tmp_path, "[qualitypilot]\ncreate_projects = false\n", storage_url=storage_url), environ={})
    client, boot = make_api(config)
    with client:
        api = Api(client, config, boot.admin_key, boot.tenant_id)
        summary = {"total": 1, "passed": 1, "failed": 0}
        assert _post(api, {"repo": "acme/new", "summary": summary}).status_code == 404
        api.project("New", repo="acme/new")
        assert _post(api, {"repo": "acme/new", "summary": summary}).status_code == 202


def test_a_qa_hub_tag_links_the_case_when_the_test_case_exists(api):
    project = api.project("Shop", repo="acme/shop")
    case = api.test_case(project["id"], "Login works", code="TC-1")
    body = {"repo": "acme/shop", "summary": {"total": 2, "passed": 2, "failed": 0},
            "cases": [{"suite": "auth", "name": "@qa-hub('TC-1') login works", "status": "passed"},
                      {"suite": "auth", "name": "@qa-hub('TC-9') logout works", "status": "passed"}]}
    r = _post(api, body)
    assert r.status_code == 202 and r.json()["casesStored"] == 2
    linked, unknown = _results(api, r.json()["id"])
    assert linked["test_case_id"] == case["id"] and linked["test_case_code"] == "TC-1"
    # TC-9 does not exist: the case is kept, unlinked, under its own name.
    assert unknown["test_case_id"] is None and unknown["title"] == "@qa-hub('TC-9') logout works"


def test_a_storage_failure_is_500_and_stores_nothing(api):
    with direct_connection(api.config) as conn:
        if api.config.storage.url:
            conn.execute("CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk I/O' "
                         "USING ERRCODE = '58030'; END $$ LANGUAGE plpgsql")  # io_error
            conn.execute("CREATE TRIGGER refuse_runs BEFORE INSERT ON runs FOR EACH ROW EXECUTE FUNCTION refuse()")
        else:
            conn.execute("CREATE TRIGGER refuse_runs BEFORE INSERT ON runs BEGIN SELECT RAISE(ABORT, 'disk I/O'); END")
    r = _post(api, seed002_payload())
    assert r.status_code == 500
    assert r.json() == {"error": "Internal Server Error",
                        "message": "Storage failure: the run was not stored. Please try again later."}
    assert api.get("/api/v1/projects").json()["data"] == []  # the project made on the way was rolled back


def test_openapi_documents_the_route(api):
    spec = api.client.get("/api/v1/openapi.json").json()
    op = spec["paths"]["/api/v1/test-runs"]["post"]
    assert "202" in op["responses"] and "429" in op["responses"] and "400" in op["responses"]
    body = spec["components"]["schemas"]["QualityPilotRun"]
    assert set(body["required"]) == {"repo", "summary"} and "ciProvider" in body["properties"]
    assert set(spec["components"]["schemas"]["QualityPilotSummary"]["required"]) == {"total", "passed", "failed"}
