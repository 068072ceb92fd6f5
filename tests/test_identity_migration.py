"""Migration 0005 on a database made by the release before it (commit 7203173): no history lost.

`fixtures/release-7203173.db` was written by that release's own server through its API (how:
`fixtures/make_release_db.py`): 3 runs on main, 2 linked test cases, 4 unlinked tests (two of
them parametrized), a flaky one."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from qahub_lite.config import load_config
from qahub_lite.core import tenancy
from qahub_lite.db import migrations

from conftest import Api, make_api, write_config

FIXTURE = Path(__file__).parent / "fixtures" / "release-7203173.db"


def _snapshot(db: Path) -> dict:
    with sqlite3.connect(db) as conn:
        return {
            "runs": conn.execute("SELECT id, name, branch, total, passed, failed, flaky FROM runs ORDER BY id").fetchall(),
            "tests": conn.execute("SELECT id, identity, title, suite_path FROM tests ORDER BY id").fetchall(),
            "results": conn.execute(
                "SELECT id, run_id, test_id, status, flaky, attempts, attempt_log, error_message FROM results ORDER BY id"
            ).fetchall(),
            "migrations": [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")],
        }


@pytest.fixture
def old_api(tmp_path):
    folder = tmp_path / "hub"
    (folder / "data").mkdir(parents=True)
    shutil.copyfile(FIXTURE, folder / "data" / "qahub.db")
    before = _snapshot(folder / "data" / "qahub.db")
    config = load_config(write_config(folder), environ={})
    client, boot = make_api(config)  # applies the pending migrations, as `qahub serve` does
    with sqlite3.connect(config.db_path) as conn:
        key = tenancy.create_key(conn, boot.tenant_id, scope="admin").key
    with client:
        yield Api(client, config, key, boot.tenant_id), before


def test_the_fixture_is_from_the_release_before_0005():
    assert _snapshot(FIXTURE)["migrations"] == [1, 2, 3, 4]


def test_every_row_survives_and_keeps_its_identity(old_api):
    api, before = old_api
    after = _snapshot(api.config.db_path)
    # 0005 and every migration after it: later ones must keep the history too.
    assert after["migrations"] == [version for version, *_ in migrations.available()]
    assert 5 in after["migrations"]
    for table in ("runs", "tests", "results"):
        assert after[table] == before[table], table
    with sqlite3.connect(api.config.db_path) as conn:
        assert {r[0] for r in conn.execute("SELECT variant FROM tests")} == {""}


def test_history_continues_on_the_same_tests_after_the_upgrade(old_api):
    api, before = old_api
    project = api.get("/api/v1/projects").json()["data"][0]
    old_tests = {(suite, title): test_id for test_id, _, title, suite in before["tests"]}
    r = api.post("/api/v1/ingest", {"project_id": project["id"], "ci": {"branch": "main"}, "results": [
        {"test_case_code": "TC-001", "status": "FAILED"},
        {"suite": "tests/test_shop.py", "title": "test_cart_total", "status": "PASSED"},
        {"suite": "tests/test_shop.py", "title": "test_add[1-2]", "status": "PASSED"},
        # A new execution of TC-001 in another browser: a test of its own, the old one untouched.
        {"test_case_code": "TC-001", "status": "PASSED", "variant": "firefox"},
    ]})
    assert r.status_code == 201, r.text
    stored = {(x["suite"], x["title"], x["variant"]): x["test_id"]
              for x in api.get(f"/api/v1/runs/{r.json()['run_id']}/results").json()["data"]}
    assert stored[("tests/test_shop.py", "test_cart_total", "")] == old_tests[("tests/test_shop.py", "test_cart_total")]
    assert stored[("tests/test_shop.py", "test_add[1-2]", "")] == old_tests[("tests/test_shop.py", "test_add[1-2]")]
    assert stored[("", "Login works", "")] == old_tests[("", "Login works")]
    assert stored[("", "Login works", "firefox")] not in old_tests.values()

    history = api.get(f"/api/v1/projects/{project['id']}/tests/TC-001/history").json()
    assert [h["status"] for h in history["data"]] == ["FAILED", "PASSED", "FAILED", "PASSED"]
    flaky = api.get(f"/api/v1/projects/{project['id']}/tests/{old_tests[('tests/test_shop.py', 'test_retry')]}/history")
    assert flaky.status_code == 200 and len(flaky.json()["data"]) == 3
