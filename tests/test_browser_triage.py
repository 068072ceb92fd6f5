"""Triage in a real browser (Debian's Chromium driven by Playwright, as tests/test_browser.py)
against a real `qahub serve`, then `qahub gate` against the same server.

A person opens the latest run and sees its failures grouped, triages the group as a known
environment issue from the failures page, sees the next run's failure carry the ticket, compares
two runs, finds a test on the tests page and quarantines it with a reason, a ticket and an
expiry; the gate page then shows what CI got beside what it would be now, and `qahub gate`
says which failures it set aside and why.
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
from dashboard_data import STACK, seed

CHROMIUM = os.environ.get("QAHUB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "dashboard"
PASSWORD = "browser-triage-password-1"

playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is a test dependency")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (.ci/run installs it)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = start_server(tmp_path_factory.mktemp("browser-triage") / "server")
    subprocess.run(
        [*qahub_command(), "users", "create", "ann", "--role", "admin", "--password-stdin", "--config",
         str(live.config_path)], input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )
    with httpx.Client(base_url=live.url, timeout=30) as client:
        data = seed(client, live.h())
    yield live, data
    live.stop()


def test_a_person_triages_compares_and_quarantines(server):
    live, data = server
    http = httpx.Client(base_url=live.url, headers=live.h(), timeout=30)
    # CI asked the gate about the latest run once: FAIL (a new failure). That verdict is kept.
    first = http.get(f"/api/v1/projects/{data.project_id}/gate", params={"run_id": data.latest_run_id}).json()
    assert first["passed"] is False and first["recorded"]["passed"] is False
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
            page.goto(f"{live.url}/runs/{data.latest_short_id}")
            page.fill("input[name=username]", "ann")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r"/runs/"))

            # The run opens with its failures grouped.
            groups = page.locator("section.failure-groups")
            assert groups.locator("h2").inner_text() == "1 failure in 1 group (1 new)"
            assert "AssertionError" in groups.inner_text() and "Checkout completes" in groups.inner_text()
            page.screenshot(path=str(ARTIFACTS / "triage-01-run-groups.png"), full_page=True)

            # Triage the group from the project's failures page.
            groups.locator("a", has_text="signature").click()
            page.wait_for_url(re.compile(r"/failures"))
            row = page.locator("table.failures tbody tr").first
            row.locator("details.triage-form summary").click()
            row.locator("select[name=category]").select_option("environment")
            row.locator("input[name=bug_ticket_key]").fill("LIN-42")
            row.locator("input[name=bug_ticket_url]").fill("https://tracker.example/LIN-42")
            row.locator("input[name=note]").fill("staging database restarts")
            row.locator("button[type=submit]").click()
            page.wait_for_selector("table.failures .badge.s-known")
            assert "known: LIN-42" in page.locator("table.failures tbody tr").first.inner_text()
            page.screenshot(path=str(ARTIFACTS / "triage-02-failures.png"), full_page=True)

            # The next run's same failure carries the ticket; compare it with the latest run.
            nxt = http.post("/api/v1/ingest", json={
                "project_id": data.project_id, "run_name": "nightly #next", "ci": {"branch": "main"},
                "results": [
                    {"test_case_code": "TC-1", "status": "FAILED", "error_message": "TimeoutError: waited 5003ms"},
                    {"test_case_code": "TC-2", "status": "FAILED", "error_message": "expected 200, got 500",
                     "error_stack": STACK.replace("line 42", "line 44")},
                    {"title": "search finds shoes", "suite": "catalog", "status": "PASSED", "duration_ms": 9100},
                ]}).json()
            page.goto(f"{live.url}/runs/{nxt['short_id']}")
            groups = page.locator("section.failure-groups")
            assert groups.locator("h2").inner_text() == "2 failures in 2 groups (1 new)"
            assert "known: LIN-42" in groups.inner_text()
            groups.locator("a", has_text="Compare with the previous run").click()
            page.wait_for_url(re.compile(r"/compare"))
            assert "Login works" in page.locator("section.compare-newly-failing").inner_text()
            assert "Checkout completes" in page.locator("section.compare-still-failing").inner_text()
            assert "search finds shoes" in page.locator("section.compare-durations").inner_text()
            page.screenshot(path=str(ARTIFACTS / "triage-03-compare.png"), full_page=True)

            # Find the checkout test on the tests page and quarantine it with a ticket and expiry.
            page.goto(f"{live.url}/projects/{data.project_id}/tests")
            page.fill("input[name=q]", "checkout")
            page.click("form.filters button[type=submit]")
            page.wait_for_url(re.compile(r"q=checkout"))
            rows = page.locator("table.tests tbody tr")
            assert rows.count() == 1 and "Checkout completes" in rows.first.inner_text()
            rows.first.locator("input[name=reason]").fill("payment sandbox flakes")
            rows.first.locator("input[name=ticket]").fill("LIN-9")
            rows.first.locator("input[name=expires]").fill("2999-01-31")
            rows.first.locator("form.quarantine button").click()
            page.wait_for_selector("table.tests .badge.s-quarantined")
            assert "q=checkout" in page.url  # back on the same search
            assert "QUARANTINED · LIN-9" in page.locator("table.tests tbody tr", has_text="Checkout").inner_text()
            page.screenshot(path=str(ARTIFACTS / "triage-04-tests.png"), full_page=True)

            # The gate page: CI got FAIL for the latest run; with the quarantine it would pass now.
            page.goto(f"{live.url}/projects/{data.project_id}/gate?runs=5")
            assert "CI got FAIL" in page.locator("table").inner_text()
            assert "set aside: Checkout completes (quarantined: payment sandbox flakes; LIN-9)" in page.inner_text(
                "table")
            page.screenshot(path=str(ARTIFACTS / "triage-05-gate.png"), full_page=True)
        finally:
            context.close()

    audit = http.get(f"/api/v1/projects/{data.project_id}/quarantine-audit").json()["data"]
    assert (audit[0]["actor"], audit[0]["ticket"]) == ("dashboard:ann", "LIN-9")
    env = {**os.environ, "QAHUB_URL": live.url, "QAHUB_TOKEN": live.admin_key}
    out = subprocess.run([*qahub_command(), "gate", "--project", data.project_id, "--run", data.latest_short_id],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "- Checkout completes (FAILED): quarantined: payment sandbox flakes; LIN-9" in out.stdout
    assert "first recorded as FAILED" in out.stdout
