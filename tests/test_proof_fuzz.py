"""Fuzzing the whole API, and property tests of the status mappings.

1. schemathesis reads `/api/v1/openapi.json` from a real `qahub serve` (so every route declared
   with `routing.endpoint`, of every dialect, is covered the day it is added), generates valid
   and invalid requests for each operation, and sends each one with a read, a write and an
   admin key. Every answer must not be a 5xx, must have a documented status and content type,
   must match its documented schema, and every error must be `{error, message, ...}`.
   Path parameters and `project_id` fields are often swapped for ids of real seeded data, so
   that requests get past "not found" into the handlers.
2. Hypothesis properties of core/status.py: every dialect's table is total and agrees with the
   canonical meaning of each status, and a run's verdict follows from its results.
"""

from __future__ import annotations

import collections
import io
import json
import os
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_schema_conformance, status_code_conformance,
)

from proof_server import ServerProcess
from qahub_lite.core import status
from qahub_lite.core.runs import RunCounts, verdict
from test_native_api import tiny_png

# Bounded so that the whole walk stays well under a minute on two cores in CI; a deeper local
# run: QAHUB_FUZZ_EXAMPLES=500 pytest tests/test_proof_fuzz.py
EXAMPLES_PER_OPERATION = int(os.environ.get("QAHUB_FUZZ_EXAMPLES", "12"))
# A walk of a given length instead (`make fuzz`: 240 s): the time is shared evenly between the
# operations, each repeating rounds of fresh examples until its share is spent.
FUZZ_SECONDS = float(os.environ.get("QAHUB_FUZZ_SECONDS", "0"))
SCOPES = ("read", "write", "admin")


def _seed(server: ServerProcess) -> dict[str, str]:
    """One of everything the path parameters name, owned by the keys' tenant."""
    with server.client() as http:
        project = http.post("/api/v1/projects", json={"name": "Fuzzed", "repo": "fuzz/fuzzed"}).json()
        pid = project["id"]
        suite = http.post(f"/api/v1/projects/{pid}/suites", json={"name": "S"}).json()
        case = http.post(f"/api/v1/projects/{pid}/test-cases", json={"title": "T", "code": "TC-001",
                                                                      "suite_id": suite["id"]}).json()
        run = http.post("/api/v1/ingest", json={"project_id": pid, "results": [
            {"test_case_code": "TC-001", "status": "FAILED", "error_message": "boom"},
            {"title": "unlinked", "suite": "a › b", "status": "PASSED"}]}).json()
        result = http.get(f"/api/v1/runs/{run['run_id']}/results").json()["data"][0]
        attachment = http.post(f"/api/v1/results/{result['id']}/attachments",
                               files={"file": ("a.png", io.BytesIO(tiny_png()), "image/png")}).json()["data"][0]
    return {"project_id": pid, "suite_id": suite["id"], "case_id": case["id"], "run_id": run["run_id"],
            "short_id": run["short_id"], "result_id": result["id"], "attachment_id": attachment["id"],
            "test_ref": str(result["test_id"])}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    # Long polls (an agent's claim) as short as allowed: the walk is about answers, not waits.
    server = ServerProcess(tmp_path_factory.mktemp("fuzz") / "s", {"jobs": {"max_poll_s": 1}})
    server.start()
    keys = {scope: json.loads(server.cli("keys", "create", "--scope", scope, "--json").stdout)["key"]
            for scope in SCOPES}
    ids = _seed(server)
    yield server, keys, ids
    server.stop()
    assert "unexpected error serving" not in server.log(), "a request hit an internal error (see server.log)"


@pytest.fixture(scope="module")
def api_schema(fuzz_server):
    server, _, ids = fuzz_server
    schema = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json")

    @schema.hook
    def flatmap_path_parameters(context, path_parameters):
        # Deletes keep their generated ids: the seeded data must outlive the walk.
        if not path_parameters or (context.operation is not None and context.operation.method.upper() == "DELETE"):
            return st.just(path_parameters)
        return st.fixed_dictionaries({
            name: st.sampled_from([value, ids[name]]) if name in ids else st.just(value)
            for name, value in path_parameters.items()
        })

    @schema.hook
    def flatmap_body(context, body):
        if isinstance(body, dict) and isinstance(body.get("wait_s"), int):
            body = {**body, "wait_s": 0}  # an agent's long poll would only make the walk wait
        if isinstance(body, dict) and "project_id" in body:
            return st.sampled_from([body, {**body, "project_id": ids["project_id"]}])
        return st.just(body)

    return schema


def error_shape(ctx, response, case) -> None:
    """Every answer of 400 and above is the one error shape (api/errors.py)."""
    if response.status_code < 400:
        return
    request = response.request
    where = f"{request.method} {request.url} -> {response.status_code} {response.headers.get('content-type')}"
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"{where}: error body is not JSON: {response.content[:300]!r}") from None
    assert isinstance(body, dict), f"{where}: error body is not an object: {body!r}"
    assert isinstance(body.get("error"), str) and body["error"], f"{where}: no `error`: {body!r}"
    assert isinstance(body.get("message"), str) and body["message"], f"{where}: no `message`: {body!r}"


# hyper, inside granian, refuses a request whose URI is longer than this with a bare 414 before
# the app sees it: one of the two answers that cannot carry the error shape (docs/robustness.md).
HTTP_LAYER_MAX_URI = 65534


def _refused_by_http_layer(response) -> bool:
    url = response.request.url
    path_and_query = url.split("/", 3)[-1] if url.count("/") >= 3 else url
    if response.status_code == 414 and len(path_and_query) + 1 >= HTTP_LAYER_MAX_URI:
        return True
    # A generated `Content-Length: @b7` header: hyper answers a bare 400 before the app sees
    # the request (the third answer without the error shape, docs/robustness.md).
    length = response.request.headers.get("content-length")
    return response.status_code == 400 and not response.content and length is not None and not length.isdigit()


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          error_shape]


def _operations() -> list[str]:
    """Every operation the app declares, as schemathesis labels them (`GET /api/v1/runs`).
    Built in-process to name the tests; `test_the_served_document_is_the_declared_one` proves
    the served document is this one."""
    from qahub_lite.api.openapi import build_document
    from qahub_lite.api.routing import endpoints
    from qahub_lite.app import route_handlers

    paths = build_document(endpoints(route_handlers()))["paths"]
    return [f"{method.upper()} {path}" for path, methods in paths.items() for method in methods]


def test_the_served_document_is_the_declared_one(fuzz_server):
    server, _, _ = fuzz_server
    import httpx

    from qahub_lite.api.openapi import build_document
    from qahub_lite.api.routing import endpoints
    from qahub_lite.app import route_handlers

    served = httpx.get(f"{server.url}/api/v1/openapi.json", timeout=30).json()
    assert served == json.loads(json.dumps(build_document(endpoints(route_handlers()))))


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("label", _operations())
def test_every_route_with_every_scope(label, api_schema, fuzz_server):
    server, keys, _ = fuzz_server
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label
    # Valid requests reach the handlers; invalid ones (wrong types, missing fields, bad
    # enums, hostile strings) must be refused with a clear 4xx.
    strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.generate, Phase.shrink], database=None)
    @given(strategy)
    def call_with_each_key(case):
        for scope in SCOPES:
            response = case.call(base_url=server.url, headers={"Authorization": f"Bearer {keys[scope]}"}, timeout=30)
            if _refused_by_http_layer(response):
                continue
            case.validate_response(response, checks=CHECKS)

    if not FUZZ_SECONDS:
        call_with_each_key()
        return
    share = FUZZ_SECONDS / len(_operations())
    deadline = time.monotonic() + share
    rounds = 0
    while rounds == 0 or time.monotonic() < deadline:
        call_with_each_key()  # database=None: every round draws new examples
        rounds += 1


# --- the status mappings ---------------------------------------------------------------

canonical = st.sampled_from(status.ALL)


def test_every_dialect_table_is_total():
    for table in (status.QUALIGATE_OUT, status.QATECH_RESULT, status.QATECH_CASE_STATUS):
        assert set(table) == set(status.ALL)
    assert set(status.QATECH_RUN_STATUS) == set(status.RUN_STATUSES)
    assert set(status.QAHUB_INPUT) == set(status.OUTCOMES)
    assert {canon for canon, _ in status.QUALITYPILOT_IN.values()} <= set(status.OUTCOMES)


@given(canonical)
def test_each_mapping_keeps_the_meaning_of_a_status(s):
    qatech = status.QATECH_RESULT[s]
    qualigate = status.QUALIGATE_OUT[s]
    if s in status.FAILURE_STATUSES:
        assert qatech == "FAILED" and qualigate not in ("passed", "pending", "running")
    if s == "PASSED":
        assert qatech == "PASSED" and qualigate == "passed"
    if s in status.UNFINISHED or s == "CANCELED":
        assert qatech is None  # QA.tech: no result until the test has finished
    if s in status.UNFINISHED:
        assert qualigate in ("pending", "running") and status.QATECH_CASE_STATUS[s] in ("INITIATED", "RUNNING")
    else:
        assert qualigate not in ("pending", "running")
    # The QA.tech filters are exactly the statuses whose result says so.
    assert (s in status.RERUN_FAILED) == (qatech == "FAILED")
    assert (s in status.QATECH_FAILED_FILTER) == (qatech in ("FAILED", "SKIPPED"))


@given(st.sampled_from(sorted(status.QUALITYPILOT_IN)))
def test_qualitypilot_flaky_is_a_passed_flag_not_a_status(name):
    canon, flaky = status.QUALITYPILOT_IN[name]
    assert canon in status.OUTCOMES
    assert not flaky or canon == "PASSED"


@given(st.sampled_from(status.QAHUB_INPUT), st.text(max_size=6), st.data())
def test_a_misspelt_status_gets_the_right_suggestion(s, tail, data):
    # Any casing of a status's first four letters, whatever follows, suggests that status.
    prefix = "".join(data.draw(st.sampled_from([c.lower(), c.upper()])) for c in s[:4])
    message = status.invalid_status_message(prefix + tail)
    assert message.endswith(f"(use {s})"), message


@given(st.text())
def test_the_invalid_status_message_never_fails(text):
    message = status.invalid_status_message(text)
    assert message.startswith("invalid status value: ") and "(use " in message


_COUNT_KEY = {"PASSED": "passed", "FAILED": "failed", "BROKEN": "broken", "TIMEOUT": "broken", "SKIPPED": "skipped",
              "UNKNOWN": "unknown", "PENDING": "pending", "RUNNING": "pending", "CANCELED": "skipped"}


def _counts(results: list[tuple[str, bool]]) -> RunCounts:
    c = collections.Counter(_COUNT_KEY[s] for s, _ in results)
    return RunCounts(len(results), c["passed"], c["failed"], c["broken"], c["skipped"], c["unknown"], c["pending"],
                     sum(1 for s, f in results if f and s == "PASSED"))


@given(st.lists(st.tuples(canonical, st.booleans()), max_size=30), st.sampled_from(status.RUN_STATUSES))
def test_a_runs_verdict_follows_from_its_results(results, run_status):
    v = verdict(run_status, _counts(results))
    statuses = {s for s, _ in results}
    if run_status not in status.RUN_FINISHED or run_status == "CANCELED":
        assert v is None  # QA.tech: null while it runs, and for a run that reached no verdict
    elif run_status == "ERROR" or statuses & status.FAILURE_STATUSES:
        assert v == "FAILED"  # the run broke, or anything failed, broke or timed out
    elif results and all(s in ("SKIPPED", "CANCELED") for s in statuses):
        assert v == "SKIPPED"
    else:
        assert v == "PASSED"
    # Qualigate's polling scripts stop on a terminal verdict: a completed run always has one.
    assert (v is not None) == (run_status in ("COMPLETED", "ERROR"))


def test_verdicts_agree_with_the_stored_counts(api):
    """The same property through the one ingest path: counts and verdict computed by the
    server from what was stored equal the ones computed here from what was sent."""
    project = api.project("verdicts")

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.lists(st.tuples(st.sampled_from(status.QAHUB_INPUT), st.booleans()), min_size=1, max_size=25))
    def ingest_and_compare(results):
        body = {"project_id": project["id"], "results": [
            {"title": f"t{i}", "status": s, "flaky": f} for i, (s, f) in enumerate(results)]}
        r = api.post("/api/v1/ingest", body)
        assert r.status_code == 201, r.text
        run = api.get(f"/api/v1/runs/{r.json()['run_id']}").json()
        expected = _counts(results)
        assert run["counts"] == {f: getattr(expected, f) for f in run["counts"]}
        assert run["verdict"] == verdict("COMPLETED", expected)

    ingest_and_compare()
