"""Triage end to end through the API (docs/triage.md): failure groups of a run and of a
project, known issues carried to later failures, mask and merge rules, run comparison,
quarantine with ticket, expiry and audit, the gate's set-aside failures and recorded verdict,
the tests search, and the triage webhook events."""

from __future__ import annotations

import time

import pytest
from health_helpers import Receiver, fast_api, ingest, outcomes, wait_for

from qahub_lite.core import quarantine
from qahub_lite.db.database import direct_connection

pytestmark = pytest.mark.engines


@pytest.fixture
def hapi(tmp_path, storage_url):
    with fast_api(tmp_path, storage_url=storage_url) as api:
        yield api


def _fail(title: str, message: str, **extra) -> dict:
    return {"title": title, "status": "FAILED", "error_message": message, **extra}


def _put(api, path: str, body: dict, key=None):
    return api.client.put(path, json=body, headers=api.h(key))


def _key(api, scope: str) -> str:
    from qahub_lite.core import tenancy
    with direct_connection(api.config) as conn:
        return tenancy.create_key(conn, api.tenant_id, scope=scope).key


def test_a_runs_failures_are_grouped_by_what_broke_and_new_ones_are_marked(hapi):
    project = hapi.project()["id"]
    run = ingest(hapi, project, [
        _fail("login a", "TimeoutError: waited 5003ms for #submit"),
        _fail("login b", "TimeoutError: waited 4999ms for #submit"),
        _fail("cart", "TypeError: waited 4999ms for #submit"),
        {"title": "home", "status": "PASSED"},
    ])
    answer = hapi.get(f"/api/v1/runs/{run['run_id']}/failures").json()
    assert (answer["failures"], answer["groups"], answer["new_groups"]) == (3, 2, 2)
    first = answer["data"][0]
    assert first["exception_type"] == "TimeoutError" and first["count"] == 2 and first["new"] is True
    assert sorted(t["title"] for t in first["tests"]) == ["login a", "login b"]
    assert first["normalized"] == "waited <n> for #submit"

    again = ingest(hapi, project, [_fail("login a", "TimeoutError: waited 6000ms for #submit")])
    later = hapi.get(f"/api/v1/runs/{again['run_id']}/failures").json()
    assert later["groups"] == 1 and later["new_groups"] == 0 and later["data"][0]["signature"] == first["signature"]

    listing = hapi.get(f"/api/v1/projects/{project}/failures").json()
    assert listing["total"] == 2
    timeout = next(f for f in listing["data"] if f["signature"] == first["signature"])
    assert (timeout["occurrences"], timeout["tests_affected"], timeout["branches"]) == (3, 2, ["main"])
    assert timeout["first_run_id"] == run["run_id"] and timeout["first_seen"] <= timeout["last_seen"]


def test_project_failures_filter_by_branch_since_and_status(hapi):
    project = hapi.project()["id"]
    ingest(hapi, project, [_fail("a", "Error: on main")])
    ingest(hapi, project, [_fail("b", "Error: on a feature")], branch="feature/x")
    url = f"/api/v1/projects/{project}/failures"
    assert [f["example"] for f in hapi.get(url, params={"branch": "feature/x"}).json()["data"]] == ["Error: on a feature"]
    assert hapi.get(url, params={"since": "2999-01-01"}).json()["total"] == 0
    assert hapi.get(url, params={"since": "2000-01-01T00:00:00Z"}).json()["total"] == 2
    bad = hapi.get(url, params={"since": "yesterday"})
    assert bad.status_code == 400 and "ISO 8601" in bad.json()["message"]
    assert hapi.get(url, params={"status": "untriaged"}).json()["total"] == 2
    assert hapi.get(url, params={"status": "known"}).json()["total"] == 0
    assert hapi.get(url, params={"status": "nope"}).status_code == 400


def test_a_known_issue_carries_its_ticket_and_category_to_later_failures(hapi):
    project = hapi.project()["id"]
    first = ingest(hapi, project, [_fail("login", "Error: connection refused to db-7.internal:5432")])
    signature = hapi.get(f"/api/v1/runs/{first['run_id']}/failures").json()["data"][0]["signature"]
    body = {"bug_ticket_key": "LIN-42", "bug_ticket_url": "https://tracker.example/LIN-42", "category": "environment",
            "note": "the staging database restarts nightly"}
    r = _put(hapi, f"/api/v1/projects/{project}/failures/{signature}", body)
    assert r.status_code == 200, r.text
    assert r.json()["triage"]["category"] == "environment" and r.json()["triage"]["bug_ticket_key"] == "LIN-42"

    later = ingest(hapi, project, [_fail("checkout", "Error: connection refused to db-3.internal:5432")])
    result = hapi.get(f"/api/v1/runs/{later['run_id']}/results").json()["data"][0]
    assert (result["bug_ticket_key"], result["bug_ticket_url"]) == ("LIN-42", "https://tracker.example/LIN-42")
    group = hapi.get(f"/api/v1/runs/{later['run_id']}/failures").json()["data"][0]
    assert group["known"] is True and group["triage"]["category"] == "environment"
    # A ticket the report gave itself wins over the known issue's.
    own = ingest(hapi, project, [_fail("x", "Error: connection refused to db-1.internal:5432", bug_ticket_key="OPS-1")])
    assert hapi.get(f"/api/v1/runs/{own['run_id']}/results").json()["data"][0]["bug_ticket_key"] == "OPS-1"

    # Bad input is refused with a sentence; unknown signatures are 404; read keys cannot triage.
    assert _put(hapi, f"/api/v1/projects/{project}/failures/{signature}", {"category": "bug"}).status_code == 400
    assert _put(hapi, f"/api/v1/projects/{project}/failures/{signature}",
                {"bug_ticket_url": "javascript:alert(1)"}).status_code == 400
    assert _put(hapi, f"/api/v1/projects/{project}/failures/0000000000000000", body).status_code == 404
    assert _put(hapi, f"/api/v1/projects/{project}/failures/{signature}", body, key=_key(hapi, "read")).status_code == 403


def test_mask_rules_and_merges_are_admin_only_and_take_effect(hapi):
    project = hapi.project()["id"]
    rules = f"/api/v1/projects/{project}/signature-rules"
    write = _key(hapi, "write")
    assert hapi.post(rules, {"pattern": "tenant [a-z]+"}, key=write).status_code == 403
    assert hapi.post(rules, {"pattern": "(unclosed"}).status_code == 400
    assert hapi.post(rules, {"pattern": "x*"}).status_code == 400  # matches the empty string
    for slow in ("(a+)+b", "(\\w*x?)*y", "(ab|a+){2,}c"):  # nested repetition: exponential on a miss
        r = hapi.post(rules, {"pattern": slow})
        assert r.status_code == 400 and "exponential" in r.json()["message"], (slow, r.text)
    assert hapi.post(rules, {"pattern": "(build|job)-[0-9]+"}).status_code == 201  # a group, repeated once
    hapi.delete(f"{rules}/{hapi.get(rules).json()['data'][0]['id']}")
    created = hapi.post(rules, {"pattern": "tenant [a-z]+", "note": "tenants differ per run"})
    assert created.status_code == 201, created.text
    a = ingest(hapi, project, [_fail("a", "Error: login failed for tenant acme"),
                               _fail("b", "Error: login failed for tenant globex")])
    assert hapi.get(f"/api/v1/runs/{a['run_id']}/failures").json()["groups"] == 1
    assert hapi.delete(f"{rules}/{created.json()['id']}").status_code == 200
    assert hapi.get(rules).json()["data"] == []

    b = ingest(hapi, project, [_fail("c", "Error: payment declined"), _fail("d", "Error: card declined")])
    groups = hapi.get(f"/api/v1/runs/{b['run_id']}/failures").json()["data"]
    one, other = groups[0]["signature"], groups[1]["signature"]
    merge = f"/api/v1/projects/{project}/failures/{one}/merge"
    assert hapi.post(merge, {"into": other}, key=write).status_code == 403
    merged = hapi.post(merge, {"into": other})
    assert merged.status_code == 200, merged.text
    assert merged.json()["merged_from"] == [one] and merged.json()["occurrences"] == 2
    assert hapi.get(f"/api/v1/runs/{b['run_id']}/failures").json()["groups"] == 1
    c = ingest(hapi, project, [_fail("c", "Error: payment declined")])
    assert hapi.get(f"/api/v1/runs/{c['run_id']}/failures").json()["data"][0]["signature"] == other
    assert hapi.post(merge, {"into": other}).status_code == 409


def test_compare_two_runs(hapi):
    project = hapi.project()["id"]
    base = ingest(hapi, project, [
        {"title": "a", "status": "PASSED", "duration_ms": 100}, {"title": "b", "status": "FAILED"},
        {"title": "c", "status": "FAILED"}, {"title": "gone", "status": "PASSED"},
        {"title": "slow", "status": "PASSED", "duration_ms": 1000},
    ])
    ingest(hapi, project, outcomes(a="PASSED"), branch="other")  # another branch is never the default base
    head = ingest(hapi, project, [
        {"title": "a", "status": "FAILED", "duration_ms": 120}, {"title": "b", "status": "PASSED"},
        {"title": "c", "status": "FAILED"}, {"title": "fresh", "status": "PASSED"},
        {"title": "slow", "status": "PASSED", "duration_ms": 5000},
    ])
    answer = hapi.get(f"/api/v1/runs/{head['run_id']}/compare").json()
    assert answer["base_run_id"] == base["run_id"]
    titles = {k: [t["title"] for t in answer[k]["data"]] for k in
              ("newly_failing", "fixed", "still_failing", "new_tests", "removed_tests")}
    assert titles == {"newly_failing": ["a"], "fixed": ["b"], "still_failing": ["c"], "new_tests": ["fresh"],
                      "removed_tests": ["gone"]}
    assert answer["duration_changes"][0]["title"] == "slow" and answer["duration_changes"][0]["change_ms"] == 4000
    explicit = hapi.get(f"/api/v1/runs/{head['run_id']}/compare", params={"base": base["short_id"]}).json()
    assert explicit["base_reason"] == "asked for"
    assert hapi.get(f"/api/v1/runs/{head['run_id']}/compare", params={"base": "nope"}).status_code == 404
    first = hapi.get(f"/api/v1/runs/{base['run_id']}/compare").json()
    assert first["base_run_id"] is None and first["new_tests"]["total"] == 0


def test_quarantine_with_ticket_and_expiry_is_audited_and_lifted_when_it_expires(hapi):
    project = hapi.project()["id"]
    ingest(hapi, project, outcomes(flaky_one="FAILED"))
    test_id = hapi.get(f"/api/v1/projects/{project}/tests").json()["data"][0]["test_id"]
    url = f"/api/v1/projects/{project}/tests/{test_id}/quarantine"
    assert _put(hapi, url, {"reason": "x", "expires_at": "2000-01-01"}).status_code == 400
    r = _put(hapi, url, {"reason": "flaky on CI", "ticket": "LIN-7", "expires_at": "2999-01-01T00:00:00Z"})
    assert r.status_code == 200, r.text
    assert (r.json()["quarantine_ticket"], r.json()["quarantine_expires_at"]) == ("LIN-7", "2999-01-01T00:00:00.000Z")
    with direct_connection(hapi.config) as conn:
        assert quarantine.lift_expired(conn, now=int(time.time() * 1000)) == 0
        assert quarantine.lift_expired(conn, now=32_503_680_000_001) == 1  # past 2999-01-01
    audit = hapi.get(f"/api/v1/projects/{project}/quarantine-audit").json()["data"]
    assert [(a["action"], a["actor"]) for a in audit] == [("expired", "expiry"), ("quarantined", "api")]
    assert audit[1]["reason"] == "flaky on CI" and audit[1]["ticket"] == "LIN-7"
    assert hapi.get(f"/api/v1/projects/{project}/tests/{test_id}/history").json()["test"]["quarantined"] is False


def test_the_gate_sets_aside_known_environment_issues_when_asked_and_keeps_what_ci_got(hapi):
    project = hapi.project()["id"]
    for i in range(2):
        ingest(hapi, project, outcomes(a="PASSED", b="PASSED"), commit=f"m{i}")
    run = ingest(hapi, project, [_fail("a", "Error: connect ECONNREFUSED 10.0.0.7:5432"),
                                 _fail("b", "AssertionError: total was 41")])
    signature = next(g["signature"] for g in hapi.get(f"/api/v1/runs/{run['run_id']}/failures").json()["data"]
                     if g["exception_type"] == "Error")
    _put(hapi, f"/api/v1/projects/{project}/failures/{signature}", {"category": "environment", "bug_ticket_key": "OPS-9"})
    gate = f"/api/v1/projects/{project}/gate"
    plain = hapi.get(gate, params={"run_id": run["run_id"], "max_failures": 1}).json()
    assert plain["passed"] is False and plain["set_aside"] == [] and plain["failures"] == 2
    assert plain["recorded"]["passed"] is False and plain["changed_since_recorded"] is False
    env = hapi.get(gate, params={"run_id": run["run_id"], "max_failures": 1, "ignore_known_environment": "true"}).json()
    assert env["failures"] == 1
    assert [(s["title"], s["why"], s["detail"]) for s in env["set_aside"]] == [
        ("a", "known_environment_issue", "known: OPS-9")]

    # A quarantine later never rewrites what CI got; the answer shows both.
    b_id = next(t["test_id"] for t in hapi.get(f"/api/v1/projects/{project}/tests").json()["data"] if t["title"] == "b")
    _put(hapi, f"/api/v1/projects/{project}/tests/{b_id}/quarantine", {"reason": "flaky", "ticket": "LIN-8"})
    now = hapi.get(gate, params={"run_id": run["run_id"], "ignore_known_environment": "true"}).json()
    assert now["passed"] is True and now["recorded"]["passed"] is False and now["changed_since_recorded"] is True
    assert {(s["title"], s["why"]) for s in now["set_aside"]} == {("a", "known_environment_issue"), ("b", "quarantined")}
    with direct_connection(hapi.config) as conn:
        assert tuple(conn.execute("SELECT count(*), max(passed) FROM gate_verdicts").fetchone()) == (1, 0)


def test_tests_are_searchable_by_words_and_tag(hapi):
    project = hapi.project()["id"]
    ingest(hapi, project, [
        {"title": "login with SSO", "suite": "auth/login.spec.ts", "status": "PASSED", "tags": ["smoke"]},
        {"title": "checkout 100%", "suite": "shop/cart.spec.ts", "status": "FAILED"},
        {"title": "logout", "suite": "auth/logout.spec.ts", "status": "PASSED"},
    ])
    url = f"/api/v1/projects/{project}/tests"
    titles = lambda **p: sorted(t["title"] for t in hapi.get(url, params=p).json()["data"])  # noqa: E731
    assert titles(q="login") == ["login with SSO"]
    assert titles(q="auth") == ["login with SSO", "logout"]
    assert titles(q="AUTH sso") == ["login with SSO"]
    assert titles(q="100%") == ["checkout 100%"] and titles(q="%") == ["checkout 100%"]
    assert titles(tag="smoke") == ["login with SSO"] and titles(q="auth", tag="smoke") == ["login with SSO"]
    assert hapi.get(url, params={"q": "login"}).json()["data"][0]["tags"] == ["smoke"]


def test_triage_webhook_events(hapi):
    receiver = Receiver().start()
    try:
        project = hapi.project()["id"]
        hook = hapi.post(f"/api/v1/projects/{project}/webhooks", {
            "url": receiver.url, "events": ["failure.new", "test.quarantined", "test.unquarantined"]})
        assert hook.status_code == 201, hook.text
        ingest(hapi, project, [_fail("a", "Error: boom 1"), _fail("b", "Error: boom 2")])
        ingest(hapi, project, [_fail("a", "Error: boom 3")])  # seen before: no event
        new = wait_for(lambda: receiver.events("failure.new"))
        body = new[0].json()
        assert body["data"]["total"] == 1 and body["data"]["signatures"][0]["exception_type"] == "Error"
        test_id = hapi.get(f"/api/v1/projects/{project}/tests").json()["data"][0]["test_id"]
        _put(hapi, f"/api/v1/projects/{project}/tests/{test_id}/quarantine", {"reason": "noisy"})
        hapi.delete(f"/api/v1/projects/{project}/tests/{test_id}/quarantine")
        on = wait_for(lambda: receiver.events("test.quarantined"))[0].json()["data"]
        off = wait_for(lambda: receiver.events("test.unquarantined"))[0].json()["data"]
        assert (on["reason"], on["actor"], off["actor"]) == ("noisy", "api", "api")
        time.sleep(1.5)
        assert len(receiver.events("failure.new")) == 1
    finally:
        receiver.stop()


def test_a_known_flaky_test_failing_again_raises_no_regression(tmp_path, storage_url):
    receiver = Receiver().start()
    try:
        with fast_api(tmp_path, "[flaky]\nmin_samples = 3\n", storage_url=storage_url) as api:
            project = api.project()["id"]
            api.post(f"/api/v1/projects/{project}/webhooks", {"url": receiver.url, "events": ["run.regressed"]})
            for i, x in enumerate(["PASSED", "FAILED", "PASSED", "FAILED", "PASSED"]):
                ingest(api, project, outcomes(x=x, y="PASSED"), commit=f"c{i}")

            def events_of(run_id):
                return [e.json()["data"] for e in receiver.events("run.regressed")
                        if e.json()["data"]["run"]["id"] == run_id]

            run = ingest(api, project, outcomes(x="FAILED", y="FAILED"), commit="c9")
            event = wait_for(lambda: events_of(run["run_id"]))[0]
            assert [f["title"] for f in event["new_failures"]] == ["y"]
            listed = api.get(f"/api/v1/runs/{run['run_id']}/regressions").json()
            assert {f["title"]: f["known_flaky"] for f in listed["data"]} == {"x": True, "y": False}
            # Only x failing again: no regression at all.
            ingest(api, project, outcomes(x="PASSED", y="PASSED"), commit="c10")
            again = ingest(api, project, outcomes(x="FAILED", y="PASSED"), commit="c11")
            wait_for(lambda: api.get(f"/api/v1/runs/{again['run_id']}/regressions").json()["judged_at"])
            time.sleep(1.5)
            assert events_of(again["run_id"]) == []
            assert api.get(f"/api/v1/runs/{again['run_id']}/regressions").json()["regressed"] is False
    finally:
        receiver.stop()


def test_the_auto_quarantine_policy_quarantines_a_test_that_turns_flaky_and_releases_it(tmp_path, storage_url):
    extra = "[flaky]\nmin_samples = 3\nclear_after_clean_runs = 2\n"
    with fast_api(tmp_path, extra, storage_url=storage_url) as api:
        project = api.project(settings={"quarantine": {"auto": True}})["id"]
        hand = api.project(name="Hand")["id"]  # the policy is off unless a project turns it on
        for pid in (project, hand):
            for i, x in enumerate(["PASSED", "FAILED", "PASSED", "FAILED"]):
                ingest(api, pid, outcomes(x=x, y="PASSED"), commit=f"c{i}")

        def x_of(pid):
            return next(t for t in api.get(f"/api/v1/projects/{pid}/tests").json()["data"] if t["title"] == "x")

        x = wait_for(lambda: (lambda t: t if t["quarantined"] else None)(x_of(project)))
        assert x["quarantine_reason"].startswith("turned flaky in run ")
        audit = api.get(f"/api/v1/projects/{project}/quarantine-audit").json()["data"]
        assert [(a["action"], a["actor"]) for a in audit] == [("quarantined", "policy")]
        assert "flip rate" in audit[0]["reason"]
        assert x_of(hand)["quarantined"] is False

        for i in range(2):  # two clean runs in a row: healthy again, released by the policy
            ingest(api, project, outcomes(x="PASSED", y="PASSED"), commit=f"d{i}")
        wait_for(lambda: not x_of(project)["quarantined"])
        audit = api.get(f"/api/v1/projects/{project}/quarantine-audit").json()["data"]
        assert (audit[0]["action"], audit[0]["actor"]) == ("unquarantined", "policy")
        assert audit[0]["reason"].startswith("healthy again")
