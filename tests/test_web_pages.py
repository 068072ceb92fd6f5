"""Dashboard pages with real data sent through the API: what each page shows, that filters and
pagination work, that forms change what the API then answers, and that every asset is local.
The real app through Litestar's TestClient, on a real SQLite file."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import make_api, write_config
from dashboard_data import seed
from qahub_lite.config import load_config
from qahub_lite.core import users
from qahub_lite.db.database import direct_connection
from qahub_lite.web import charts

pytestmark = pytest.mark.engines

PASSWORD = "admin's own password"


@pytest.fixture(scope="module")
def site(tmp_path_factory, module_storage_url):
    folder = tmp_path_factory.mktemp("web-pages")
    # Trend days are graded by the `trend-grades` job: every second here, not every minute.
    config = load_config(write_config(folder, "[dashboard]\npage_size = 10\n[grade]\nrefresh_interval_s = 1\n", storage_url=module_storage_url),
                         environ={})
    client, boot = make_api(config)
    with direct_connection(config) as conn:
        users.create_user(conn, "ann", tenant_id=boot.tenant_id, role="admin", password=PASSWORD)
    headers = {"Authorization": f"Bearer {boot.admin_key}"}
    with client:
        data = seed(client, headers, database=config)
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
        r = client.post("/login", data={"csrf": token, "username": "ann", "password": PASSWORD},
                        follow_redirects=False)
        assert r.status_code == 303
        yield client, headers, data


def csrf_of(client, path: str = "/") -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


def between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def test_the_overview_shows_each_project_with_its_health(site):
    client, _, data = site
    deadline = time.monotonic() + 20
    while True:  # the card shows the latest day the background job has graded
        page = client.get("/").text
        if re.search(r'class="grade g-[a-f]"', page) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert f'href="/projects/{data.project_id}"' in page and "Web shop" in page
    assert 'class="spark"' in page  # the pass-rate sparkline
    assert re.search(r'class="grade g-[a-f]"', page)  # 13 runs: enough for a grade
    assert f'href="/runs/{data.running_short_id}"' in page  # the latest run, still running
    assert re.search(rf'href="/projects/{data.project_id}/flaky" class="warn">[1-9]', page)


def test_the_runs_list_filters_and_pages(site):
    client, _, data = site
    first = client.get("/runs").text
    shown = re.findall(r'<td><a href="/runs/(\w+)">', first)
    assert len(shown) == 10 and shown[0] == data.running_short_id  # newest first, page_size 10
    older = re.search(r'href="(/runs\?cursor=[^"]+)">Older runs', first).group(1)
    rest = re.findall(r'<td><a href="/runs/(\w+)">', client.get(older.replace("&amp;", "&")).text)
    assert len(rest) == 5 and not set(rest) & set(shown)  # 15 runs in all, no repeats
    feature = client.get("/runs", params={"branch": "feature/search"}).text
    assert re.findall(r'<td><a href="/runs/\w+">([^<]+)', feature) == ["feature: new search"]
    running = client.get("/runs", params={"status": "RUNNING", "project": "web-shop"}).text
    assert re.findall(r'<td><a href="/runs/(\w+)">', running) == [data.running_short_id]
    staging = client.get("/runs", params={"environment": "staging", "source": "qahub", "since": "2000-01-01",
                                          "branch": "", "until": ""}).text
    assert len(re.findall(r'<td><a href="/runs/', staging)) == 10
    assert "No runs." in client.get("/runs", params={"until": "2000-01-01"}).text
    assert client.get("/runs", params={"since": "2030-01-02", "until": "2030-01-01"}).status_code == 400


def test_a_run_page_puts_failures_first_with_their_evidence(site):
    client, _, data = site
    from_api = client.get(urlsplit(data.latest_url).path)  # where the ingest answer's `url` leads
    assert from_api.status_code == 200 and "<h1>nightly #latest</h1>" in from_api.text
    by_short = client.get(f"/runs/{data.latest_short_id}").text
    failures = between(by_short, 'id="failures"', 'id="results"')
    assert "TC-2 · Checkout completes" in failures and "Login works" not in failures
    assert "NEW FAILURE" in failures
    # The last attempt open: the stack's first lines shown, the rest folded; the earlier attempt folded.
    assert '<pre class="stack-text">Traceback (most recent call last):' in failures
    assert re.search(r'<details class="stack-text-more"><summary>\d+ more lines</summary>', failures)
    assert "AssertionError: expected 200, got 500" in failures.split('class="stack-text-more"')[1]
    assert re.search(r'<details class="attempts"><summary>1 earlier attempt</summary>.*expected 200, got 502',
                     failures, re.S)
    assert f'<img src="/attachments/{data.image_attachment_id}"' in failures
    assert "at CheckoutController.submit" in failures  # the text log, in the page
    assert "Quality gate: FAIL" in by_short and "1 new failure(s) against the baseline" in by_short
    assert 'href="https://github.com/acme/shop/commit/9f8e7d6c5b4a39281706"' in by_short
    assert 'href="https://github.com/acme/shop/pull/42"' in by_short
    assert 'http-equiv="refresh"' not in by_short
    passed_only = client.get(f"/runs/{data.latest_short_id}", params={"status": "PASSED"}).text
    table = between(passed_only, 'id="results"', "</section>")
    assert "Login works" in table and "Checkout completes" not in table


def test_a_running_run_refreshes_itself(site):
    client, _, data = site
    page = client.get(f"/runs/{data.running_short_id}").text
    assert '<noscript><meta http-equiv="refresh" content="10"></noscript>' in page
    assert 'data-refresh="10"' in page and "No failures so far" in page


def test_a_result_page_shows_everything_recorded(site):
    client, headers, data = site
    page = client.get(f"/runs/{data.latest_short_id}/results/{data.checkout_result_id}").text
    assert "POST /checkout -&gt; 500" in page and "checkout.png" in page and "server.log" in page
    other_run = client.get("/api/v1/runs", params={"branch": "feature/search"}, headers=headers).json()["data"][0]
    assert client.get(f"/runs/{other_run['short_id']}/results/{data.checkout_result_id}").status_code == 404


def test_attachments_are_served_to_the_session_safely(site):
    client, _, data = site
    image = client.get(f"/attachments/{data.image_attachment_id}")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert image.headers["content-disposition"].startswith("inline")
    assert "sandbox" in image.headers["content-security-policy"]
    download = client.get(f"/attachments/{data.image_attachment_id}", params={"download": "true"})
    assert download.headers["content-disposition"].startswith("attachment")
    text = client.get(f"/attachments/{data.text_attachment_id}")
    assert text.headers["content-disposition"].startswith("attachment")  # text could carry script: never inline
    assert client.get("/attachments/not-an-attachment").status_code == 404


def test_a_test_page_and_its_quarantine_switch(site):
    client, headers, data = site
    path = f"/projects/{data.project_id}/tests/{data.checkout_test_id}"
    page = client.get(path).text
    assert len(re.findall(r'<rect [^>]*class="cell c-', page)) == 13  # 12 nightly runs and the latest
    assert 'class="chart"' in page and "Not quarantined" in page
    r = client.post(f"{path}/quarantine", data={"action": "on", "reason": "flaky backend", "csrf": csrf_of(client),
                                                "next": path}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == path
    assert "flaky backend" in client.get(path).text
    gate = client.get(f"/api/v1/projects/{data.project_id}/gate", params={"run_id": data.latest_run_id},
                      headers=headers).json()
    assert gate["quarantined_failures_ignored"] == 1  # the API sees the dashboard's quarantine
    client.post(f"{path}/quarantine", data={"action": "off", "csrf": csrf_of(client)})
    assert "Not quarantined" in client.get(path).text
    assert client.get(f"/projects/{data.project_id}/tests/999999").status_code == 404


def test_the_flaky_page_ranks_the_top_offender_first(site):
    client, headers, data = site
    page = client.get(f"/projects/{data.project_id}/flaky").text
    rows = between(page, "<tbody>", "</tbody>")
    assert rows.index(data.flaky_title) < rows.index("</tr>")
    api = client.get(f"/api/v1/projects/{data.project_id}/flaky", headers=headers).json()
    assert api["data"][0]["title"] == data.flaky_title  # the page shows what the API answers


def test_the_trends_page_draws_charts(site):
    client, _, data = site
    page = client.get(f"/projects/{data.project_id}/trends").text
    assert page.count('<svg class="chart"') == 4
    pass_rate = between(page, "<h2>Pass rate</h2>", "</section>")
    assert len(re.findall(r'<circle [^>]*class="point series-3"', pass_rate)) == 13  # one point a day
    assert 'class="strip"' in page  # the gate's verdicts
    assert client.get(f"/projects/{data.project_id}/trends", params={"from": "2030-01-02", "to": "2030-01-01"}
                      ).status_code == 400
    gate = client.get(f"/projects/{data.project_id}/gate", params={"runs": 13}).text
    rows = between(gate, "<tbody>", "</tbody>")
    assert rows.count("<tr>") == 13 and rows.index("nightly #latest") < rows.index("nightly #12")  # newest first
    assert "1 new failure(s) against the baseline" in rows
    assert client.get(f"/projects/{data.project_id}/gate", params={"runs": 31}).status_code == 400


def test_a_key_made_in_settings_is_shown_once_and_works(site):
    client, _, _ = site
    made = client.post("/settings/keys", data={"name": "from the dashboard", "scope": "read", "csrf": csrf_of(client)})
    assert made.status_code == 201
    key = re.search(r'<code id="new-key">(qh_[^<]+)</code>', made.text).group(1)
    auth = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/projects", headers=auth).status_code == 200
    assert key not in client.get("/settings/keys").text
    key_id = key.split("_")[1]
    client.post(f"/settings/keys/{key_id}/revoke", data={"csrf": csrf_of(client)})
    assert client.get("/api/v1/projects", headers=auth).status_code == 401


def test_users_made_in_settings_can_sign_in(site):
    client, _, _ = site
    made = client.post("/settings/users", data={"username": "newbie", "role": "viewer", "csrf": csrf_of(client)})
    assert made.status_code == 201
    password = re.search(r'<code id="new-password">([^<]+)</code>', made.text).group(1)
    member = next(m for m in re.finditer(r'action="/settings/users/([\w-]+)/role"', made.text)
                  if "newbie" in made.text[m.start() - 600 : m.start()])
    user_id = member.group(1)
    client.post(f"/settings/users/{user_id}/role", data={"role": "member", "csrf": csrf_of(client)})
    row = between(client.get("/settings/users").text, "newbie", "</tr>")
    assert '<option value="member" selected>' in row
    cookies = dict(client.cookies)
    client.cookies.clear()
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    r = client.post("/login", data={"csrf": token, "username": "newbie", "password": password}, follow_redirects=False)
    assert r.status_code == 303
    client.cookies.clear()
    client.cookies.update(cookies)
    client.post(f"/settings/users/{user_id}/disable", data={"csrf": csrf_of(client)})
    assert "disabled" in between(client.get("/settings/users").text, "newbie", "</tr>")


def test_project_settings_change_what_the_api_answers(site):
    client, headers, data = site
    token = csrf_of(client)
    client.post(f"/settings/projects/{data.project_id}/ci", data={
        "provider": "github-actions", "trigger_on": "push, pull_request", "branches": "main", "csrf": token})
    project = client.get(f"/api/v1/projects/{data.project_id}", headers=headers).json()
    assert project["ci_config"] == {"provider": "github-actions", "trigger_on": ["push", "pull_request"],
                                    "branches": ["main"]}
    made = client.post("/settings/projects", data={"name": "Mobile app", "default_branch": "develop", "csrf": token},
                       follow_redirects=False)
    assert made.status_code == 303
    assert "Mobile app" in client.get("/").text


def test_webhooks_and_their_deliveries(site):
    client, headers, data = site
    # A closed port on this machine: the delivery job's attempts fail without leaving it.
    made = client.post(f"/settings/projects/{data.project_id}/webhooks", data={
        "url": "http://127.0.0.1:9/hook", "events": ["run.completed", "run.regressed"], "format": "slack",
        "csrf": csrf_of(client)})
    assert made.status_code == 201
    assert re.search(r'<code id="new-secret">whsec_', made.text)
    hook_id = re.search(r'href="/settings/webhooks/([\w-]+)"', made.text).group(1)
    client.post("/api/v1/ingest", headers=headers, json={
        "project_id": data.project_id, "run_name": "after the hook", "ci": {"branch": "main"},
        "results": [{"title": "one", "status": "PASSED"}]})
    # The `run-completion` task queues the run's events within a second or so of its end.
    deadline = time.monotonic() + 20
    while True:
        page = client.get(f"/settings/webhooks/{hook_id}").text
        found = re.search(r'href="/settings/deliveries/([\w-]+)"', page)
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert found, "no delivery was queued for the completed run"
    assert "run.completed" in page and "http://127.0.0.1:9/hook" in page
    delivery_id = found.group(1)
    detail = client.get(f"/settings/deliveries/{delivery_id}").text
    assert "after the hook" in detail  # the body that is (re)sent
    client.post(f"/settings/webhooks/{hook_id}/active", data={"active": "false", "csrf": csrf_of(client)})
    assert "Switch on" in client.get(f"/settings/projects/{data.project_id}").text
    client.post(f"/settings/webhooks/{hook_id}/delete", data={"csrf": csrf_of(client)})
    assert client.get(f"/settings/webhooks/{hook_id}").status_code == 404


def test_a_retention_sweep_from_settings(site):
    client, _, _ = site
    page = client.post("/settings/retention/sweep", data={"csrf": csrf_of(client)})
    assert page.status_code == 200 and "Sweep done" in page.text


def test_every_asset_comes_from_the_package():
    web = Path(charts.__file__).parent
    # Vendored Swagger UI (static/swagger-ui/) names project links in its code; that it loads
    # nothing from outside is proven in Chromium with the network cut (tests/test_api_reference.py).
    files = [*web.glob("templates/**/*.html"), *(p for p in web.glob("static/*") if p.is_file())]
    assert len(files) > 10
    for path in files:
        text = path.read_text(encoding="utf-8")
        for attribute in re.findall(r'(?:src|href)="([^"]*)"', text):
            assert not attribute.startswith(("http:", "https:", "//")), f"{path.name} loads {attribute}"
        assert "@import" not in text and "url(http" not in text, path.name


def test_static_files_are_served_with_a_long_cache(site):
    client, _, _ = site
    css = client.get("/static/dashboard.css")
    assert css.status_code == 200 and "max-age=86400" in css.headers["cache-control"]
    assert client.get("/static/dashboard.js").status_code == 200
    assert client.get("/static/../render.py").status_code == 404


def test_charts_escape_their_text_and_round_their_axes():
    svg = charts.line_chart([charts.Series("<script>", [1.0, None, 3.0])], ["a", "<b>", "c"], title='x"y')
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;b&gt;" in svg
    assert svg.count("<polyline") == 0  # a gap between two single points draws no line
    assert charts.line_chart([charts.Series("s", [1.0, None, 3.0])], ["a", "b", "c"], title="t", connect=True
                             ).count("<polyline") == 1
    assert [charts.nice_ceiling(v) for v in (0.7, 3, 71, 120)] == [1, 5, 100, 200]
    assert charts.nice_ceiling(2, integer=True) == 4 and charts.nice_ceiling(9, integer=True) == 12
    assert "no data" in charts.sparkline([None, None], label="empty")
    assert charts.pass_rate(3, 1, 0) == 0.75 and charts.pass_rate(0, 0, 0) is None
