"""The triage pages through the app (docs/triage.md): a viewer reads them but cannot triage
or quarantine, another tenant's ids are 404, bad form input is refused."""

from __future__ import annotations

import re

import pytest
from conftest import make_api, write_config

from qahub_lite.config import load_config
from qahub_lite.core import users
from qahub_lite.db.database import direct_connection

pytestmark = pytest.mark.engines

PASSWORD = "triage pages password 1"


def _login(client, name: str) -> None:
    client.cookies.clear()
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    r = client.post("/login", data={"csrf": token, "username": name, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303


def _csrf(client, path: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


@pytest.fixture
def site(tmp_path, storage_url):
    config = load_config(write_config(tmp_path, storage_url=storage_url), environ={})
    client, boot = make_api(config)
    with direct_connection(config) as conn:
        users.create_user(conn, "ann", tenant_id=boot.tenant_id, role="member", password=PASSWORD)
        users.create_user(conn, "vic", tenant_id=boot.tenant_id, role="viewer", password=PASSWORD)
    h = {"Authorization": f"Bearer {boot.admin_key}"}
    with client:
        project = client.post("/api/v1/projects", json={"name": "Shop"}, headers=h).json()
        runs = [client.post("/api/v1/ingest", headers=h, json={"project_id": project["id"], "ci": {"branch": "main"},
                                                               "results": results}).json()
                for results in (
                    [{"title": "pay", "status": "PASSED", "duration_ms": 10}],
                    [{"title": "pay", "status": "FAILED", "error_message": "Error: card 4242 declined",
                      "duration_ms": 90}, {"title": "new one", "status": "PASSED"}],
                )]
        signature = client.get(f"/api/v1/runs/{runs[1]['run_id']}/failures", headers=h).json()["data"][0]["signature"]
        yield client, h, project, runs, signature


def test_a_member_triages_from_the_failures_page_and_a_viewer_cannot(site):
    client, h, project, runs, signature = site
    _login(client, "ann")
    page = client.get(f"/projects/{project['id']}/failures").text
    assert signature in page and "card &lt;n&gt; declined" in page  # the normalized text, escaped
    action = f"/projects/{project['id']}/failures/{signature}"
    bad = client.post(action, data={"csrf": _csrf(client, f"/projects/{project['id']}/failures"), "category": "bug"})
    assert bad.status_code == 400
    r = client.post(action, data={"csrf": _csrf(client, f"/projects/{project['id']}/failures"),
                                  "category": "product_bug", "bug_ticket_key": "PAY-1"}, follow_redirects=False)
    assert r.status_code == 303
    assert "known: PAY-1" in client.get(f"/runs/{runs[1]['short_id']}").text
    assert "1 failure in 1 group (1 new)" in client.get(f"/runs/{runs[1]['short_id']}").text

    _login(client, "vic")
    assert "known: PAY-1" in client.get(f"/projects/{project['id']}/failures").text
    assert "<summary>Triage</summary>" not in client.get(f"/projects/{project['id']}/failures").text
    r = client.post(action, data={"csrf": _csrf(client, f"/projects/{project['id']}/failures"), "category": ""})
    assert r.status_code == 403
    assert client.get(f"/api/v1/projects/{project['id']}/failures/{signature}", headers=h).json()["triage"][
        "bug_ticket_key"] == "PAY-1"


def test_compare_and_tests_pages(site):
    client, h, project, runs, _ = site
    _login(client, "vic")
    page = client.get(f"/runs/{runs[1]['short_id']}/compare").text
    newly = page.split('class="card compare-newly-failing"', 1)[1].split("</section>", 1)[0]
    assert "pay" in newly and "PASSED → FAILED" in newly
    assert "new one" in page.split('class="card compare-new-tests"', 1)[1].split("</section>", 1)[0]
    assert client.get(f"/runs/{runs[1]['short_id']}/compare?base=nope").status_code == 404
    tests = client.get(f"/projects/{project['id']}/tests?q=pay").text
    assert "pay" in tests and "new one" not in tests
    assert client.get(f"/projects/{project['id']}/tests?state=bogus").status_code == 400
    assert client.get("/projects/no-such-project/failures").status_code == 404
