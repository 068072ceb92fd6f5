"""The dashboard in a real browser: Debian's Chromium, driven by the Playwright Python package
(no browser download: `executable_path`), against a real `qahub serve` process.

One session walks what a person does: sign in (after a wrong password), open the run the API's
`url` points at, unfold a failure's stack and see its screenshot, quarantine the test and lift
it, look at a chart, try a forged CSRF token, read the page on a phone, sign out. Screenshots of
every page are kept in tests/artifacts/dashboard/ (git-ignored) for people to look at.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from conftest import qahub_command, start_server
from dashboard_data import seed

CHROMIUM = os.environ.get("QAHUB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "dashboard"
PASSWORD = "browser-test-password-1"

playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is a test dependency")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (.ci/run installs it)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser")
    live = start_server(folder / "server", extra_config="[grade]\nrefresh_interval_s = 1\n")
    subprocess.run(
        [*qahub_command(), "users", "create", "ann", "--role", "admin", "--password-stdin", "--config",
         str(live.config_path)], input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )
    with httpx.Client(base_url=live.url, timeout=30) as client:
        data = seed(client, live.h(), database=live.folder / "data" / "qahub.db")
    yield live, data
    live.stop()


@pytest.fixture(scope="module")
def browser_page():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, viewport={"width": 1280, "height": 900},
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_a_person_uses_the_dashboard(server, browser_page):
    live, data = server
    page = browser_page
    outside = []  # any request leaving this server would break an air-gapped install
    page.on("request", lambda req: outside.append(req.url) if not req.url.startswith(live.url) else None)

    # Not signed in: the run's URL leads to the sign-in page, which comes back to it.
    page.goto(data.latest_url)
    assert "/login" in page.url
    shot(page, "01-login")

    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert page.locator(".alert").inner_text() == "Wrong user name or password"
    shot(page, "02-login-wrong-password")

    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/runs/"))
    assert page.locator("h1").inner_text() == "nightly #latest"

    # Failures first, with the message; the stack's first lines, the rest folded until asked for.
    failure = page.locator("article.failure").first
    assert "Checkout completes" in failure.locator("h3").inner_text()
    assert "expected 200, got 500" in failure.locator(".attempt-last .error-message").inner_text()
    assert failure.locator(".badge.s-new").count() == 1
    assert "Traceback" in failure.locator(".trace > pre.stack-text").inner_text()
    stack = failure.locator("details.stack-text-more pre")
    assert not stack.is_visible()
    failure.locator("details.stack-text-more summary").click()
    assert stack.is_visible() and "AssertionError" in stack.inner_text()
    earlier = failure.locator("details.attempts")
    assert not earlier.locator("pre").is_visible()  # the earlier attempt is folded
    image = failure.locator(".attachment img")
    image.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth === 160", arg=image.element_handle())
    assert "CheckoutController" in failure.locator("pre.text-attachment").inner_text()
    shot(page, "03-run")

    # The test's page: its history strip, then a quarantine set and lifted again.
    failure.locator("h3 a").click()
    page.wait_for_url(re.compile(r"/tests/"))
    assert page.locator("svg.strip rect").count() >= 10
    page.click("form.quarantine button")
    page.wait_for_selector(".page-head .badge.s-quarantined")
    shot(page, "04-test-quarantined")
    page.click("form.quarantine button")
    page.wait_for_function("() => !document.querySelector('.page-head .badge.s-quarantined')")

    # Flaky tests, ranked, with the flip-flopping search test on top.
    page.goto(f"{live.url}/projects/{data.project_id}/flaky")
    assert data.flaky_title in page.locator("table.flaky tbody tr").first.inner_text()
    shot(page, "05-flaky")

    # Trends: charts drawn on the server, with points.
    page.goto(f"{live.url}/projects/{data.project_id}/trends")
    chart = page.locator("svg.chart").first
    assert chart.is_visible() and chart.locator("circle.point").count() >= 10
    shot(page, "06-trends")
    page.click("text=More verdicts")
    page.wait_for_url(re.compile(r"/gate"))
    assert page.locator("tbody tr").count() == 13  # every finished run of main, newest first
    shot(page, "06-gate")

    page.goto(f"{live.url}/")
    assert page.locator(".project-card h2").inner_text() == "Web shop"
    shot(page, "07-projects")
    page.click(".project-card h2 a")
    shot(page, "07-project")
    page.goto(f"{live.url}/runs?branch=main")
    shot(page, "08-runs")
    page.goto(f"{live.url}/runs/{data.running_short_id}")
    assert page.locator("[data-refresh]").count() == 1
    shot(page, "09-running-run")

    # Settings: a key made here is shown once; a forged CSRF token is refused.
    page.goto(f"{live.url}/settings/keys")
    page.fill("input[name=name]", "browser key")
    page.click("form.row-form button[type=submit]")
    key = page.locator("#new-key").inner_text()
    assert httpx.get(f"{live.url}/api/v1/projects", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    shot(page, "10-settings-keys")
    page.goto(f"{live.url}/settings/keys")
    page.fill("input[name=name]", "forged")
    page.eval_on_selector("form.row-form input[name=csrf]", "el => el.value = 'forged-token'")
    page.click("form.row-form button[type=submit]")
    assert "security token" in page.locator(".message").inner_text()
    shot(page, "11-forged-csrf")
    for name in ("users", "retention", "projects"):
        page.goto(f"{live.url}/settings/{name}")
        shot(page, f"12-settings-{name}")
    page.goto(f"{live.url}/settings/projects/{data.project_id}")
    shot(page, "13-settings-project")

    # A phone: one column, nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live.url}/runs/{data.latest_short_id}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "14-run-phone")
    page.goto(f"{live.url}/")
    shot(page, "15-projects-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # Sign out: the session is gone, pages ask to sign in again.
    page.click("form[action='/logout'] button")
    page.wait_for_url(re.compile(r"/login"))
    page.goto(f"{live.url}/runs/{data.latest_short_id}")
    assert "/login" in page.url
    assert outside == []


def test_the_api_reference_works_offline_and_tries_a_call_with_a_key(server, browser_page):
    """The interactive reference (vendored Swagger UI) with the network cut to everything but
    this server: it renders every operation with its schemas and examples, and a call tried
    with a key typed into "Authorize" reaches the server and shows its answer."""
    live, data = server
    page = browser_page
    blocked, problems = [], []

    def only_this_server(route):
        if route.request.url.startswith(live.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        page.goto(f"{live.url}/api/docs")
        page.wait_for_selector(".swagger-ui .info .title")
        assert "qahub-lite" in page.locator(".swagger-ui .info .title").inner_text()
        page.wait_for_selector(".opblock")
        assert page.locator(".opblock").count() >= 50
        shot(page, "20-api-reference")

        # Field-level request schema with its example: the ingest body.
        ingest = page.locator(".opblock-post", has=page.locator("[data-path='/api/v1/ingest']")).first
        ingest.locator(".opblock-summary").click()
        ingest.locator(".body-param__example, .microlight").first.wait_for()
        assert "TC-001" in ingest.inner_text() and "previous_attempts" in ingest.inner_text()
        codes = ingest.locator(".responses-table tbody tr.response").evaluate_all(
            "rows => rows.map(r => r.getAttribute('data-code'))")
        assert {"201", "207", "400", "401", "413", "429"} <= set(codes) and "409" not in codes
        shot(page, "21-api-reference-ingest")

        # Authorize with a key, then try a call.
        page.click(".btn.authorize")
        dialog = page.locator(".dialog-ux")
        dialog.locator("input").first.fill(live.admin_key)
        dialog.locator("button.authorize").first.click()
        dialog.locator("button.btn-done, button.close-modal").first.click()
        listing = page.locator(".opblock-get", has=page.locator("[data-path='/api/v1/projects']")).first
        listing.locator(".opblock-summary").click()
        listing.locator("button.try-out__btn").click()
        listing.locator("button.execute").click()
        answer = listing.locator(".live-responses-table .response .response-col_status").first
        answer.wait_for()
        assert answer.inner_text().strip().startswith("200")
        assert "Web shop" in listing.locator(".responses-inner").inner_text()  # the answer's body
        shot(page, "22-api-reference-tried")
    finally:
        page.unroute("**/*")
    assert blocked == [], f"the reference tried to reach outside the server: {blocked}"
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems


def test_a_person_checks_retention_and_a_webhook_receiver(server, browser_page):
    """Week one: the retention in force is said where history is shown, and a webhook can be
    checked with a test delivery from its page before any real event."""
    live, data = server
    page = browser_page
    with httpx.Client(base_url=live.url, headers=live.h(), timeout=30) as http:
        # No receiver listens on this port: the test delivery is recorded with its failed attempt.
        hook = http.post(f"/api/v1/projects/{data.project_id}/webhooks",
                         json={"url": "http://127.0.0.1:9/hook"}).json()["webhook"]
    page.goto(f"{live.url}/login")
    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))

    page.goto(f"{live.url}/projects/{data.project_id}")
    assert "deleted after 30 days" in page.locator("#retention").inner_text()
    page.goto(f"{live.url}/projects/{data.project_id}/tests/TC-2")
    daily = page.locator("#daily")
    assert daily.locator("tbody tr").count() >= 1 and "deleted after 30 days" in daily.inner_text()
    shot(page, "23-test-days")

    page.goto(f"{live.url}/settings/webhooks/{hook['id']}")
    page.click("text=Send a test delivery")
    page.wait_for_url(re.compile(r"/settings/deliveries/"))
    assert "webhook.test" in page.locator("main").inner_text()
    shot(page, "24-test-delivery")
    page.click("form[action='/logout'] button")
    page.wait_for_url(re.compile(r"/login"))
