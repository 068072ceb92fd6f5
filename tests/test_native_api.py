"""The native (QA Hub) API through the real app: seeds 000 and 001."""

from __future__ import annotations

import io
import struct
import zlib

import pytest

from conftest import run_sql
from seeds.examples import seed000_ingest_body, seed001_upsert_body

pytestmark = pytest.mark.engines


def tiny_png() -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


def _seeded_project(api):
    project = api.project()
    api.test_case(project["id"], "Login", code="TC-001")
    api.test_case(project["id"], "Checkout", code="TC-002")
    return project


def test_projects_crud_and_pagination(api):
    created = [api.project(f"Project {i}") for i in range(5)]
    assert created[0]["slug"] == "project-0"
    page = api.get("/api/v1/projects?limit=2").json()
    assert len(page["data"]) == 2 and page["next_cursor"]
    seen = [p["id"] for p in page["data"]]
    while page["next_cursor"]:
        page = api.get(f"/api/v1/projects?limit=2&cursor={page['next_cursor']}").json()
        seen += [p["id"] for p in page["data"]]
    assert seen == [p["id"] for p in created]
    pid = created[0]["id"]
    assert api.get(f"/api/v1/projects/{pid}").json()["name"] == "Project 0"
    assert api.get("/api/v1/projects/project-1").json()["id"] == created[1]["id"]  # by slug
    r = api.patch(f"/api/v1/projects/{pid}", {"description": "shop", "ci_config": {"provider": "github-actions",
                  "trigger_on": ["push"], "branches": ["main"]}})
    assert r.status_code == 200 and r.json()["ci_config"]["provider"] == "github-actions"
    assert api.delete(f"/api/v1/projects/{pid}").status_code == 200
    assert api.get(f"/api/v1/projects/{pid}").status_code == 404


def test_project_needs_a_name(api):
    r = api.post("/api/v1/projects", {})
    assert r.status_code == 400 and "name" in r.json()["message"]
    r = api.post("/api/v1/projects", {"name": ""})
    assert r.status_code == 400


def test_test_case_codes_are_numbered_and_unique(api):
    project = api.project()
    first = api.test_case(project["id"], "A")
    explicit = api.test_case(project["id"], "B", code="TC-002")
    third = api.test_case(project["id"], "C")
    assert first["code"] == "TC-001" and explicit["code"] == "TC-002" and third["code"] == "TC-003"
    r = api.post(f"/api/v1/projects/{project['id']}/test-cases", {"title": "D", "code": "TC-001"})
    assert r.status_code == 409
    listed = api.get(f"/api/v1/projects/{project['id']}/test-cases").json()["data"]
    assert [c["code"] for c in listed] == ["TC-001", "TC-002", "TC-003"]


def test_seed000_ingest_example_gives_201_and_reads_back(api):
    project = _seeded_project(api)
    body = seed000_ingest_body()
    body["project_id"] = project["id"]
    r = api.post("/api/v1/ingest", body)
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["accepted"] == 3 and answer["rejected"] == 0 and answer["errors"] == []
    run = api.get(f"/api/v1/runs/{answer['run_id']}").json()
    assert run["name"] == "CI build #442 — main branch"
    assert run["environment"] == "staging" and run["framework"] == "playwright"
    assert run["counts"]["total"] == 3 and run["counts"]["failed"] == 1 and run["verdict"] == "FAILED"
    assert api.get(f"/api/v1/runs/{answer['short_id']}").json()["id"] == run["id"]  # by short id
    results = api.get(f"/api/v1/runs/{run['id']}/results").json()["data"]
    by_title = {r["title"]: r for r in results}
    assert by_title["Checkout"]["test_case_code"] == "TC-002"
    assert by_title["Checkout"]["error_message"] == "Assertion failed: expected 200 but got 500"
    unlinked = by_title["Should load the homepage in < 2s"]
    assert unlinked["test_case_code"] is None and unlinked["framework"] == "playwright"


def test_ingest_207_uses_the_seed_wording(api):
    project = _seeded_project(api)
    body = {"project_id": project["id"], "results": [
        {"test_case_code": "TC-001", "status": "PASSED"},
        {"test_case_code": "TC-999", "status": "PASSED"},
        {"title": "t", "status": "pass"},
        {"title": "u", "status": "PASSED", "duration_ms": "slow"},
        {"status": "PASSED"},
        "not an object",
    ]}
    r = api.post("/api/v1/ingest", body)
    assert r.status_code == 207
    answer = r.json()
    assert answer["accepted"] == 1 and answer["rejected"] == 5
    errors = {e["index"]: e["error"] for e in answer["errors"]}
    assert errors[1] == "test_case_code TC-999 not found in this project"
    assert errors[2] == "invalid status value: 'pass' (use PASSED)"
    assert "duration_ms" in errors[3]
    assert "title" in errors[4]
    assert 5 in errors
    assert answer["run_id"]


def test_ingest_400_names_the_path_and_stores_nothing(api):
    project = api.project()
    for body, needle in (({"results": []}, "project_id"), ({"project_id": project["id"]}, "results"),
                         ({"project_id": project["id"], "results": {}}, "results")):
        r = api.post("/api/v1/ingest", body)
        assert r.status_code == 400 and needle in r.json()["message"], r.text
    r = api.client.post("/api/v1/ingest", content=b"{not json", headers=api.h())
    assert r.status_code == 400 and "JSON" in r.json()["message"]
    assert api.get("/api/v1/runs").json()["data"] == []


def test_run_name_defaults_to_a_timestamp(api):
    project = api.project()
    r = api.post("/api/v1/ingest", {"project_id": project["id"], "results": [{"title": "a", "status": "PASSED"}]})
    assert api.get(f"/api/v1/runs/{r.json()['run_id']}").json()["name"].startswith("Run 20")


def test_seed001_bulk_upsert_updates_instead_of_duplicating(api):
    project = _seeded_project(api)
    run = api.post("/api/v1/runs", {"project_id": project["id"], "name": "manual"}).json()
    r = api.post(f"/api/v1/runs/{run['id']}/results", seed001_upsert_body())
    assert r.status_code == 201, r.text
    again = seed001_upsert_body()
    again["results"][1]["status"] = "PASSED"
    again["results"][1]["comment"] = "fixed"
    assert api.post(f"/api/v1/runs/{run['id']}/results", again).status_code == 201
    results = api.get(f"/api/v1/runs/{run['id']}/results").json()["data"]
    assert len(results) == 2
    tc2 = next(r for r in results if r["test_case_code"] == "TC-002")
    assert tc2["status"] == "PASSED" and tc2["comment"] == "fixed" and tc2["bug_ticket_key"] == "LIN-42"
    counts = api.get(f"/api/v1/runs/{run['id']}").json()["counts"]
    assert counts == {**counts, "total": 2, "passed": 2, "failed": 0}


def test_run_filters_finish_cancel_delete(api):
    project = api.project()
    for branch in ("main", "main", "feature/x"):
        api.post("/api/v1/ingest", {"project_id": project["id"], "ci": {"branch": branch},
                                    "results": [{"title": "a", "status": "PASSED"}]})
    assert len(api.get("/api/v1/runs?branch=main").json()["data"]) == 2
    assert len(api.get(f"/api/v1/runs?project_id={project['id']}&branch=feature/x").json()["data"]) == 1
    assert api.get("/api/v1/runs?since=2999-01-01T00:00:00Z").json()["data"] == []
    assert api.get("/api/v1/runs?bogus=1").status_code == 400
    open_run = api.post("/api/v1/ingest", {"project_id": project["id"], "status": "RUNNING",
                                           "results": [{"title": "a", "status": "PASSED"}]}).json()
    assert api.get(f"/api/v1/runs/{open_run['run_id']}").json()["verdict"] is None
    finished = api.post(f"/api/v1/runs/{open_run['run_id']}/finish").json()
    assert finished["status"] == "COMPLETED" and finished["verdict"] == "PASSED"
    other = api.post("/api/v1/runs", {"project_id": project["id"]}).json()
    assert api.post(f"/api/v1/runs/{other['id']}/cancel").json()["status"] == "CANCELED"
    assert api.post(f"/api/v1/runs/{other['id']}/finish").status_code == 409
    assert api.delete(f"/api/v1/runs/{other['id']}").status_code == 200
    assert api.get(f"/api/v1/runs/{other['id']}").status_code == 404


def _result_id(api) -> str:
    project = api.project()
    r = api.post("/api/v1/ingest", {"project_id": project["id"], "results": [{"title": "shot", "status": "FAILED"}]})
    run_id = r.json()["run_id"]
    return api.get(f"/api/v1/runs/{run_id}/results").json()["data"][0]["id"]


def test_attachment_upload_list_download(api):
    result_id = _result_id(api)
    png = tiny_png()
    r = api.client.post(f"/api/v1/results/{result_id}/attachments", headers=api.h(),
                        files={"file": ("screenshot.png", io.BytesIO(png), "image/png")})
    assert r.status_code == 201, r.text
    item = r.json()["data"][0]
    assert item["fileName"] == "screenshot.png" and item["mimeType"] == "image/png" and item["size"] == len(png)
    listed = api.get(f"/api/v1/results/{result_id}/attachments").json()["data"]
    assert [a["id"] for a in listed] == [item["id"]]
    download = api.get(f"/api/v1/attachments/{item['id']}")
    assert download.status_code == 200 and download.content == png
    assert download.headers["x-content-type-options"] == "nosniff"


def test_attachment_type_is_checked_by_content(api):
    result_id = _result_id(api)
    r = api.client.post(f"/api/v1/results/{result_id}/attachments", headers=api.h(),
                        files={"file": ("evil.png", io.BytesIO(b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 64), "image/png")})
    assert r.status_code == 400 and "not allowed" in r.json()["message"]
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    r = api.client.post(f"/api/v1/results/{result_id}/attachments", headers=api.h(),
                        files={"file": ("../../etc/passwd.svg", io.BytesIO(svg), "image/svg+xml")})
    assert r.status_code == 201
    item = r.json()["data"][0]
    assert item["mimeType"] == "image/svg+xml" and item["fileName"] == "passwd.svg"
    download = api.get(f"/api/v1/attachments/{item['id']}")
    assert download.headers["content-disposition"].startswith("attachment")


def test_attachment_over_the_limit_is_413(tmp_path, storage_url):
    from conftest import make_api, write_config
    from qahub_lite.config import load_config

    config = load_config(write_config(tmp_path, "[attachments]\nmax_bytes = 1000\n", storage_url=storage_url), environ={})
    client, boot = make_api(config)
    with client:
        from conftest import Api

        api = Api(client, config, boot.admin_key, boot.tenant_id)
        result_id = _result_id(api)
        r = client.post(f"/api/v1/results/{result_id}/attachments", headers=api.h(),
                        files={"file": ("big.txt", io.BytesIO(b"a" * 5000), "text/plain")})
        assert r.status_code == 413 and r.json()["error"] == "Request Entity Too Large"
        assert list((config.attachments_dir / "tmp").iterdir()) == []  # the partial file is gone


def test_sweep_deletes_old_unlinked_results_only(api):
    project = api.project()
    api.test_case(project["id"], "Linked", code="TC-001")
    r = api.post("/api/v1/ingest", {"project_id": project["id"], "results": [
        {"title": "old unlinked", "status": "PASSED"}, {"test_case_code": "TC-001", "status": "PASSED"}]})
    run_id = r.json()["run_id"]
    results = api.get(f"/api/v1/runs/{run_id}/results").json()["data"]
    unlinked = next(x for x in results if x["test_case_code"] is None)
    up = api.client.post(f"/api/v1/results/{unlinked['id']}/attachments", headers=api.h(),
                         files={"file": ("log.txt", io.BytesIO(b"some log"), "text/plain")})
    assert up.status_code == 201
    # Age the rows by 40 days.
    run_sql(api.config, "UPDATE results SET created_at = created_at - ?, updated_at = updated_at - ?",
            (40 * 86_400_000,) * 2)
    report = api.post("/api/v1/admin/sweep").json()
    assert report["deleted_results"] == 1 and report["deleted_attachments"] == 1 and report["removed_files"] == 1
    left = api.get(f"/api/v1/runs/{run_id}/results").json()["data"]
    assert [x["test_case_code"] for x in left] == ["TC-001"]
    assert list(api.config.attachments_dir.glob("??/*")) == []
    assert api.get(f"/api/v1/projects/{project['id']}/test-cases").json()["data"][0]["code"] == "TC-001"


def test_health_and_openapi(api):
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").status_code == 200
    doc = api.client.get("/api/v1/openapi.json")
    assert doc.headers["access-control-allow-origin"] == "*"
    spec = doc.json()
    assert spec["openapi"].startswith("3.1")
    ingest = spec["paths"]["/api/v1/ingest"]["post"]
    assert ingest["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("IngestIn")
    assert set(ingest["responses"]) >= {"201", "207", "400", "401"}
    assert "ResultIn" in spec["components"]["schemas"]
    page = api.client.get("/api/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert "http" not in page.text.split("<body>")[0]


def test_a_project_limited_admin_key_sweeps_its_own_project_only(api):
    from qahub_lite.core import tenancy
    from qahub_lite.db.database import direct_connection

    mine, other = api.project("Mine"), api.project("Other")
    runs = {}
    for project in (mine, other):
        runs[project["id"]] = api.post("/api/v1/ingest", {"project_id": project["id"], "results": [
            {"title": "old unlinked", "status": "PASSED"}]}).json()["run_id"]
    # Old by every clock a sweep might read.
    run_sql(api.config, "UPDATE results SET created_at = created_at - ?, updated_at = updated_at - ?",
            (40 * 86_400_000,) * 2)
    with direct_connection(api.config) as c:
        limited = tenancy.create_key(c, api.tenant_id, scope="admin", project_id=mine["id"]).key
    assert api.post("/api/v1/admin/sweep", key=limited).json()["deleted_results"] == 1
    assert api.get(f"/api/v1/runs/{runs[mine['id']]}/results").json()["data"] == []
    assert len(api.get(f"/api/v1/runs/{runs[other['id']]}/results").json()["data"]) == 1


def test_project_settings_are_bounded_since_every_listing_returns_them(api):
    big = {"notes": "x" * 1_000_000}
    r = api.post("/api/v1/projects", {"name": "Bloated", "settings": big})
    assert r.status_code == 400 and "at most 65,536" in r.json()["message"]
    project = api.post("/api/v1/projects", {"name": "Fine", "settings": {"notes": "x" * 10_000}}).json()
    r = api.patch(f"/api/v1/projects/{project['id']}", {"settings": big})
    assert r.status_code == 400 and "settings are" in r.json()["message"]
    listing = api.get("/api/v1/projects")
    assert listing.status_code == 200 and len(listing.content) < 100_000
    assert api.get(f"/api/v1/projects/{project['id']}").json()["settings"] == {"notes": "x" * 10_000}
