"""`qahub upload`: payload shaping (unit), and end to end against the real server process:
corpus reports in with the counts their tools printed, chunking, 207 rejections, attachments,
--dry-run, exit codes, and retries against a local fake server that answers 429 first."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import msgspec
import pytest

from conftest import free_port, start_server
from qahub_lite.cli import main
from qahub_lite.payload import (
    Payload, RunInfo, count, is_saved_payload, load_payload, native_result, resolve_format, save_payload,
)
from qahub_lite.reports import FORMATS, Attempt, ParsedResult
from qahub_lite.upload import split


CORPUS = Path(__file__).resolve().parent / "corpus" / "generated"
# Provider marker variables: a test run inside a CI job must not pick up that job's context.
CI_MARKERS = ("GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "CIRCLECI", "TF_BUILD", "JENKINS_URL", "JENKINS_HOME")


# --- payload shaping ----------------------------------------------------------------------


def test_native_result_keeps_attempts_flaky_and_identity():
    parsed = ParsedResult(
        title="passes on third attempt @qa-hub('TC-042')", status="PASSED", suite_path=["api", "flaky.spec.ts", "Flaky"],
        flaky=True, duration_ms=67, file="flaky.spec.ts", line=19, stdout="out", test_case_code="TC-042",
        attempts=[Attempt("FAILED", 5, "Error: boom"), Attempt("BROKEN", 31), Attempt("PASSED", 67)],
    )
    assert native_result(parsed, "playwright") == {
        "status": "PASSED", "title": "passes on third attempt @qa-hub('TC-042')",
        "suite": "api › flaky.spec.ts › Flaky", "test_case_code": "TC-042", "duration_ms": 67, "stdout": "out",
        "file": "flaky.spec.ts", "line": 19, "framework": "playwright", "flaky": True, "attempts": 3,
        "previous_attempts": [{"status": "FAILED", "duration_ms": 5, "error_message": "Error: boom"},
                              {"status": "BROKEN", "duration_ms": 31}],
    }


def test_native_result_fits_the_server_limits():
    parsed = ParsedResult(
        title="t" * 5000, status="TIMEOUT", suite_path=["s" * 600, "s" * 600], duration_ms=-3,
        test_case_code="X" * 65, attempts=[Attempt("FAILED")] * 150 + [Attempt("PASSED")],
    )
    out = native_result(parsed)
    assert len(out["title"]) == 1000 and out["title"].endswith("[truncated]")
    assert len(out["suite"]) == 1000
    assert out["status"] == "UNKNOWN"  # not a native input status
    assert "duration_ms" not in out and "test_case_code" not in out
    assert out["attempts"] == 151 and len(out["previous_attempts"]) == 100


def test_split_closes_chunks_by_count_and_by_size():
    items = [b"x" * 10] * 7
    assert split(items, 3, 10_000) == [(0, 3), (3, 6), (6, 7)]
    assert split(items, 100, 25) == [(0, 2), (2, 4), (4, 6), (6, 7)]
    assert split([b"x" * 100], 5, 10) == [(0, 1)]  # one item larger than a chunk still goes
    assert split([], 5, 10) == [(0, 0)]


def test_format_names_and_seed_aliases():
    assert resolve_format("playwright", FORMATS) == "playwright-json"
    assert resolve_format("JUnit", FORMATS) == "junit"
    assert resolve_format("cypress", FORMATS) == "mochawesome"
    assert resolve_format("auto", FORMATS) == "auto"
    with pytest.raises(ValueError, match="unknown format 'selenium'"):
        resolve_format("selenium", FORMATS)


def test_saved_payload_round_trip(tmp_path):
    payload = Payload(run=RunInfo(project_id="shop", framework="pytest"),
                      results=[{"status": "PASSED", "title": "a"}, {"status": "FAILED", "title": "b"}])
    path = save_payload(payload, tmp_path / "saved.json")
    assert is_saved_payload(path)
    loaded = load_payload(path)
    assert loaded.results == payload.results and loaded.run == payload.run and loaded.saved_at
    # Reformatted by another tool, still recognised; a report is not mistaken for one.
    (tmp_path / "compact.json").write_text(json.dumps(json.loads(path.read_text())))
    assert is_saved_payload(tmp_path / "compact.json")
    assert not is_saved_payload(CORPUS / "jest" / "jest-ctrf.json")
    assert count(loaded.results).failed == 1


# --- end to end -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_storage_url):
    srv = start_server(tmp_path_factory.mktemp("upload-server"), storage_url=module_storage_url)
    yield srv
    srv.stop()


@pytest.fixture
def remote(server, monkeypatch):
    """The CLI pointed at the server through the environment, as in CI."""
    for name in (*CI_MARKERS, "QAHUB_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QAHUB_URL", server.url)
    monkeypatch.setenv("QAHUB_TOKEN", server.admin_key)
    return server


@pytest.fixture
def project(remote):
    """A fresh project, with the test cases the corpus' tagged tests name."""
    with remote.client() as http:
        created = http.post("/api/v1/projects", json={"name": f"p-{uuid.uuid4().hex[:8]}"}).json()
        for code in ("TC-042", "TC-043", "TC-100"):
            r = http.post(f"/api/v1/projects/{created['id']}/test-cases", json={"code": code, "title": f"case {code}"})
            assert r.status_code == 201, r.text
    return created


def upload(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["upload", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def runs_of(server, project) -> list[dict]:
    with server.client() as http:
        return http.get("/api/v1/runs", params={"project_id": project["id"]}).json()["data"]


def run_json(server, ref: str) -> dict:
    with server.client() as http:
        return http.get(f"/api/v1/runs/{ref}").json()


# (file under corpus/generated, INDEX.md run): passed, failed, broken (error), skipped, flaky,
# as INDEX.md counts them (a flaky test is not in `passed` there; the server counts it in both).
# Where a format cannot hold a fact, the count is what that file holds (tests/test_reports_corpus.py).
GROUND_TRUTH = [
    ("jest/jest-results.json", "JE1", (12, 11, 1, 4, 2)),
    # Vitest's JSON has no trace of the beforeAll hook error (its tests are just skipped).
    ("vitest/vitest-results.json", "VI4", (12, 9, 1, 6, 2)),
    ("mocha/mocha-results.json", "MO1", (12, 12, 0, 5, 2)),
    ("mocha/mocha-ctrf.json", "MO1", (12, 12, 0, 5, 2)),
    ("pytest/allure-results", "PY1", (15, 8, 2, 5, 2)),
    ("pytest/pytest-json-report.json", "PY1", (15, 8, 2, 5, 2)),
    ("go/go-test.json", "GO1", (15, 11, 1, 3, 0)),
    ("node-test/node-test.tap", "NT1", (11, 10, 0, 4, 0)),
]


@pytest.mark.e2e
@pytest.mark.parametrize("rel, run, expected", GROUND_TRUTH, ids=[f"{r[1]}:{r[0]}" for r in GROUND_TRUTH])
def test_corpus_report_arrives_with_its_tools_counts(capsys, server, project, rel, run, expected):
    code, out, err = upload(capsys, str(CORPUS / rel), "--project", project["slug"], "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["rejected"] == 0, answer["errors"]
    counts = run_json(server, answer["short_id"])["counts"]
    passed, failed, broken, skipped, flaky = expected
    assert (counts["passed"] - counts["flaky"], counts["failed"], counts["broken"], counts["skipped"],
            counts["flaky"]) == expected
    assert counts["total"] == passed + failed + broken + skipped + flaky


@pytest.mark.e2e
def test_seed_000_command_line_works_unchanged(server, project, tmp_path):
    """The exact command line of seed 000, through the `qa-hub` console script."""
    script = Path(sys.executable).with_name("qa-hub")
    if not script.exists():
        pytest.skip("the qa-hub console script is not installed (pip install -e .)")
    shutil.copy(CORPUS / "playwright" / "playwright-results.json", tmp_path / "playwright-results.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QAHUB_") and k not in CI_MARKERS}
    done = subprocess.run(
        [str(script), "upload", "--token", server.admin_key, "--url", server.url, "--project", project["id"],
         "--format", "playwright", "--run-name", "CI #442", "playwright-results.json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Uploaded 40 results to run ")
    [created] = runs_of(server, project)
    assert (created["name"], created["framework"], created["status"]) == ("CI #442", "playwright", "COMPLETED")
    # PW1: 18 passed + 2 flaky, 13 failed, 7 skipped. The two projects' runs of TC-043 are two
    # variants of one test case of the library (issue 11): two results, nothing merged.
    counts = created["counts"]
    assert (counts["total"], counts["passed"], counts["failed"], counts["skipped"], counts["flaky"]) == (40, 20, 13, 7, 2)


@pytest.mark.e2e
def test_large_report_is_sent_in_chunks_into_one_run(capsys, server, project, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/shop")
    monkeypatch.setenv("GITHUB_REF_NAME", "main")
    monkeypatch.setenv("GITHUB_SHA", "abc123")
    code, out, err = upload(capsys, str(CORPUS / "playwright" / "playwright-junit-large-5000.xml"),
                            "--project", project["id"], "--chunk-size", "1000", "--environment", "staging")
    assert code == 0, err
    assert "sent 5000 results in 5 requests" in err  # the progress bar's final line off a terminal
    [created] = runs_of(server, project)
    assert created["status"] == "COMPLETED" and created["environment"] == "staging"
    assert created["ci"] == {"branch": "main", "commit": "abc123", "repository": "acme/shop",
                             "ci_provider": "github-actions"}
    counts = created["counts"]
    # PW2 in JUnit (final attempts only, so the 5 flaky tests read as passed).
    assert (counts["total"], counts["passed"], counts["failed"], counts["skipped"]) == (5000, 4930, 20, 50)


@pytest.mark.e2e
def test_rejected_results_are_reported_and_can_fail_the_step(capsys, remote):
    with remote.client() as http:
        bare = http.post("/api/v1/projects", json={"name": f"bare-{uuid.uuid4().hex[:6]}"}).json()
    report = str(CORPUS / "jest" / "jest-results.json")
    # Rejection is asked for (issue 11: by default such results are kept unlinked).
    code, out, err = upload(capsys, report, "--project", bare["id"], "--json", "--strict-codes")
    assert code == 0
    answer = json.loads(out)
    assert (answer["accepted"], answer["rejected"]) == (28, 2)
    assert sorted(e["error"] for e in answer["errors"]) == [
        "test_case_code TC-042 not found in this project", "test_case_code TC-043 not found in this project"]
    assert "the server rejected 2 results:" in err and "TC-042" in err

    code, out, err = upload(capsys, report, "--project", bare["id"], "--fail-on-rejected", "--strict-codes")
    assert code == 2


def _png() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + bytes(64)


@pytest.mark.e2e
def test_report_attachments_go_to_their_results(capsys, server, project, tmp_path):
    """Playwright's JSON with its files: the screenshot, an error context and a trace are
    uploaded to their tests' results; missing files and refused types are only warnings."""
    out_dir = tmp_path / "playwright-test-results"
    text = (CORPUS / "playwright" / "playwright-results.json").read_text(encoding="utf-8")
    report = json.loads(text.replace("/builds/sample/playwright-test-results", str(out_dir)))
    shot_dir = out_dir / "browser-Browser-checks-fai-be694-ssertion-takes-a-screenshot-chromium"
    shot_dir.mkdir(parents=True)
    (shot_dir / "test-failed-1.png").write_bytes(_png())
    (shot_dir / "error-context.md").write_text("# Page snapshot\n- button 'Go'\n", encoding="utf-8")
    with zipfile.ZipFile(shot_dir / "trace.zip", "w") as archive:
        archive.writestr("trace.trace", "{}")
    (shot_dir / "core.bin").write_bytes(bytes(range(256)) * 4)  # no allowed type
    for result in _results_with_attachment(report, "test-failed-1.png"):
        result["attachments"] += [
            {"name": "trace", "contentType": "application/zip", "path": str(shot_dir / "trace.zip")},
            {"name": "dump", "contentType": "application/octet-stream", "path": str(shot_dir / "core.bin")},
        ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(report), encoding="utf-8")

    code, out, err = upload(capsys, str(path), "--project", project["id"])
    assert code == 0, err
    assert "Attachments: 3 uploaded, 28 skipped" in out
    assert "27 attachment files not found" in err and "core.bin not accepted" in err
    with server.client() as http:
        [created] = runs_of(server, project)
        results = http.get(f"/api/v1/runs/{created['id']}/results", params={"limit": 100}).json()["data"]
        [shot] = [r for r in results if r["title"] == "failing locator assertion takes a screenshot"]
        files = http.get(f"/api/v1/results/{shot['id']}/attachments").json()["data"]
    assert sorted((f["fileName"], f["mimeType"]) for f in files) == [
        ("error-context.md", "text/plain"), ("test-failed-1.png", "image/png"), ("trace.zip", "application/zip")]


def _results_with_attachment(node, file_name: str):
    """Playwright JSON `results[]` entries that reference `file_name`."""
    if isinstance(node, dict):
        if any(str(a.get("path", "")).endswith(file_name) for a in node.get("attachments") or []):
            yield node
        for value in node.values():
            yield from _results_with_attachment(value, file_name)
    elif isinstance(node, list):
        for value in node:
            yield from _results_with_attachment(value, file_name)


@pytest.mark.e2e
def test_dry_run_prints_the_table_and_sends_nothing(capsys, server, project):
    code, out, err = upload(capsys, str(CORPUS / "playwright" / "playwright-results.json"),
                            str(CORPUS / "jest" / "jest-results.json"), "--project", project["id"], "--dry-run")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["FILE", "FORMAT", "TESTS", "PASSED", "FAILED", "BROKEN", "SKIPPED", "FLAKY", "FILES"]
    # PASSED includes the FLAKY ones, as the server's counts do: the columns add up to TESTS.
    # The report's 29 files are under /builds/sample, outside the report's folder and the
    # repository root: skipped, with a warning (issue 12 item 7), so FILES counts none.
    assert lines[1].split()[1:] == ["playwright-json", "40", "20", "13", "0", "7", "2", "0"]
    assert lines[2].split()[1:] == ["jest-json", "30", "14", "11", "1", "4", "2", "0"]
    assert lines[4].split() == ["total", "70", "34", "24", "1", "11", "4", "0"]
    assert "29 attachments skipped: outside the report's folder and the repository root" in err
    assert "Dry run, nothing sent." in out
    assert runs_of(server, project) == []


@pytest.mark.e2e
def test_exit_codes(capsys, server, project, tmp_path):
    passing = tmp_path / "passing.xml"
    passing.write_text('<testsuite name="s" tests="2"><testcase classname="c" name="a" time="0.1"/>'
                       '<testcase classname="c" name="b" time="1,5"/></testsuite>')
    failing = str(CORPUS / "jest" / "jest-results.json")
    assert upload(capsys, str(passing), "--project", project["id"], "--fail-on-failures")[0] == 0
    assert upload(capsys, failing, "--project", project["id"])[0] == 0
    assert upload(capsys, failing, "--project", project["id"], "--fail-on-failures")[0] == 1
    assert len(runs_of(server, project)) == 3  # exit 1 means uploaded all the same

    # A malformed file stops the whole upload, even after a good one: no partial run.
    broken = tmp_path / "broken.xml"
    broken.write_text('<testsuite name="s"><testcase name="a">\n<failure>oops</testcase>')
    code, out, err = upload(capsys, str(passing), str(broken), "--project", project["id"])
    assert code == 2 and "broken.xml" in err and "nothing was uploaded" in err
    assert len(runs_of(server, project)) == 3

    assert upload(capsys, str(passing))[0] == 2  # no project
    assert upload(capsys, str(passing), "--project", "no-such-project")[0] == 2  # 404 from the server
    code, out, err = upload(capsys, str(passing), "--project", project["id"], "--token", "qh_bad_key")
    assert code == 2 and "401" in err
    assert upload(capsys, str(passing), "--project", project["id"], "--format", "selenium")[0] == 2
    assert upload(capsys, str(tmp_path / "missing.xml"), "--project", project["id"])[0] == 2
    with pytest.raises(SystemExit) as usage:
        main(["upload"])
    assert usage.value.code == 2


@pytest.mark.e2e
def test_saved_payload_is_sent_with_its_run_fields(capsys, server, project, tmp_path):
    saved = Payload(run=RunInfo(project_id=project["id"], run_name="nightly", framework="pytest"),
                    results=[{"status": "PASSED", "title": "test_a", "suite": "tests/test_a.py"},
                             {"status": "FAILED", "title": "test_b", "suite": "tests/test_a.py"}])
    path = save_payload(saved, tmp_path / "qahub-results.json")
    code, out, err = upload(capsys, str(path), "--dry-run")
    assert code == 0 and "saved payload" in out
    code, out, err = upload(capsys, str(path), "--environment", "ci")  # project from the file
    assert code == 0, err
    [created] = runs_of(server, project)
    assert (created["name"], created["framework"], created["environment"]) == ("nightly", "pytest", "ci")
    assert created["counts"]["failed"] == 1


# --- retries against a fake server -----------------------------------------------------------


class FakeHub:
    """A scripted HTTP server on the loopback: answers each request with the next scripted
    (status, headers, body) for its path, and records what it received."""

    def __init__(self, script: dict[str, list[tuple[int, dict, dict]]]):
        self.script = script
        self.received: list[tuple[float, str, str, bytes]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                hub.received.append((time.monotonic(), self.command, self.path, body))
                status, headers, answer = hub.script[self.path].pop(0)
                data = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 - scripted like POST; the path without its query
                hub.received.append((time.monotonic(), self.command, self.path, b""))
                status, headers, answer = hub.script[self.path.split("?")[0]].pop(0)
                data = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _stored(total, passed, failed=0):
    """The run as the hub answers after an upload, for the CLI's check of what was stored."""
    counts = {"total": total, "passed": passed, "failed": failed, "broken": 0, "skipped": 0, "unknown": 0,
              "pending": 0, "flaky": 0}
    return (200, {}, {"id": "r1", "counts": counts})


def _answer(run_id="r1", accepted=2):
    return {"run_id": run_id, "short_id": "abcd1234", "accepted": accepted, "rejected": 0, "errors": [],
            "url": f"http://hub/runs/{run_id}"}


@pytest.fixture
def fake_env(monkeypatch):
    for name in (*CI_MARKERS, "QAHUB_URL", "QAHUB_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QAHUB_TOKEN", "qh_test_key")


def test_429_is_retried_after_the_time_the_server_asks(capsys, fake_env, tmp_path):
    hub = FakeHub({"/api/v1/ingest": [
        (429, {"Retry-After": "1"}, {"error": "Too Many Requests", "message": "slow down", "retry_after": 1}),
        (201, {}, _answer()),
    ], "/api/v1/runs/r1": [_stored(2, 2)]})
    report = tmp_path / "r.xml"
    report.write_text('<testsuite name="s"><testcase classname="c" name="a"/><testcase classname="c" name="b"/>'
                      '</testsuite>')
    try:
        code, out, err = upload(capsys, str(report), "--url", hub.url, "--project", "p")
    finally:
        hub.close()
    assert code == 0, err
    assert [r[2] for r in hub.received] == ["/api/v1/ingest", "/api/v1/ingest", "/api/v1/runs/r1"]
    assert hub.received[1][0] - hub.received[0][0] >= 0.95  # waited as asked, not the default backoff
    assert "HTTP 429; retrying in 1.0s" in err
    assert json.loads(hub.received[1][3])["results"] == json.loads(hub.received[0][3])["results"]


def test_a_chunk_that_fails_leaves_the_run_marked_error(capsys, fake_env, tmp_path):
    hub = FakeHub({
        "/api/v1/ingest": [(201, {}, _answer(accepted=1))],
        "/api/v1/runs/r1/results": [(400, {}, {"error": "Bad Request", "message": "results: expected an array"})],
        "/api/v1/runs/r1/finish": [(200, {}, {})],
    })
    report = tmp_path / "r.xml"
    report.write_text('<testsuite name="s"><testcase classname="c" name="a"/><testcase classname="c" name="b"/>'
                      '</testsuite>')
    try:
        code, out, err = upload(capsys, str(report), "--url", hub.url, "--project", "p", "--chunk-size", "1")
    finally:
        hub.close()
    assert code == 2
    assert "run abcd1234 is incomplete (marked ERROR) after 1 of 2 results" in err
    assert "results: expected an array" in err
    first = json.loads(hub.received[0][3])
    assert first["status"] == "RUNNING" and len(first["results"]) == 1
    assert (hub.received[-1][2], json.loads(hub.received[-1][3])) == ("/api/v1/runs/r1/finish", {"status": "ERROR"})


def test_unreachable_server_is_exit_2_after_retries(capsys, fake_env, tmp_path):
    report = tmp_path / "r.xml"
    report.write_text('<testsuite name="s"><testcase classname="c" name="a"/></testsuite>')
    port = free_port()  # bound and released: nobody listens there
    code, out, err = upload(capsys, str(report), "--url", f"http://127.0.0.1:{port}", "--project", "p",
                            "--retries", "1")
    assert code == 2 and "cannot reach" in err


def test_outcome_json_is_machine_readable(capsys, fake_env, tmp_path):
    hub = FakeHub({"/api/v1/ingest": [(207, {}, {**_answer(accepted=1), "rejected": 1,
                                                 "errors": [{"index": 1, "error": "invalid status value: 'x'"}]})],
                   "/api/v1/runs/r1": [_stored(1, 1)]})
    report = tmp_path / "r.xml"
    report.write_text('<testsuite name="s"><testcase classname="c" name="a"/><testcase classname="c" name="b"/>'
                      '</testsuite>')
    try:
        code, out, err = upload(capsys, str(report), "--url", hub.url, "--project", "p", "--json")
    finally:
        hub.close()
    answer = msgspec.json.decode(out)
    assert code == 0
    assert (answer["short_id"], answer["accepted"], answer["rejected"], answer["chunks"]) == ("abcd1234", 1, 1, 1)
    assert answer["errors"] == [{"index": 1, "error": "invalid status value: 'x'"}]
    assert "  s › c › b: invalid status value: 'x'" in err


def test_a_retried_file_upload_sends_the_whole_file_again(tmp_path):
    """Files are reopened for every attempt: a retry after a 503 must not send an exhausted stream."""
    from qahub_lite.client import QahubClient

    shot = tmp_path / "shot.png"
    shot.write_bytes(_png())
    bodies: list[bytes] = []

    def answer(request):
        bodies.append(request.read())
        if len(bodies) == 1:
            return httpx.Response(503, headers={"Retry-After": "0"}, json={"error": "Service Unavailable",
                                                                           "message": "busy"})
        return httpx.Response(201, json={"data": []})

    with QahubClient("http://hub", "qh_k", transport=httpx.MockTransport(answer)) as client:
        client.request("POST", "/api/v1/results/1/attachments",
                       files=lambda: {"file": (shot.name, shot.open("rb"), "image/png")})
    assert len(bodies) == 2 and all(_png() in body for body in bodies)


def test_retry_after_as_an_http_date():
    from email.utils import formatdate

    from qahub_lite.client import _retry_after

    later = httpx.Response(429, headers={"Retry-After": formatdate(time.time() + 30, usegmt=True)})
    assert 25 <= _retry_after(later) <= 31
    past = httpx.Response(503, headers={"Retry-After": formatdate(time.time() - 30, usegmt=True)})
    assert _retry_after(past) == 0
    assert _retry_after(httpx.Response(429, json={"retry_after": 7})) == 7
    assert _retry_after(httpx.Response(503)) is None


def test_a_variant_label_longer_than_the_server_keeps_is_a_usage_error(capsys):
    # The server keeps 200 characters of a variant; cutting a longer label would make two matrix
    # entries that differ only at their end one variant, and their results conflicts.
    report = str(CORPUS / "go" / "go-test.json")
    code, _, err = upload(capsys, report, "--dry-run", "--variant", "x" * 201)
    assert code == 2 and "--variant" in err and "200" in err, err
    code, _, err = upload(capsys, report, "--dry-run", "--variant", "x" * 200)
    assert code == 0, err


def test_an_upload_without_a_branch_says_what_that_costs(capsys, monkeypatch, tmp_path):
    # Outside CI and git nothing names a branch, and a run without one is left out of
    # flakiness, grade, trends and the gate: a new team would see empty health pages, untold.
    for name in (*CI_MARKERS, "QAHUB_BRANCH", "QAHUB_COMMIT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    report = str(CORPUS / "go" / "go-test.json")
    code, _, err = upload(capsys, report, "--dry-run")
    assert code == 0 and "no branch" in err and "--branch" in err and "gate" in err, err
    code, _, err = upload(capsys, report, "--dry-run", "--branch", "main")
    assert code == 0 and "no branch" not in err, err


def test_two_reporters_of_one_run_in_one_upload_are_pointed_out(capsys):
    # Playwright set up with both the json and the junit reporter writes both files into one
    # folder; `qahub upload test-results/` then sent every test twice (the copies told apart by
    # a "#2" variant), doubling the run's counts without a word.
    both = [str(CORPUS / "playwright" / name) for name in ("playwright-results.json", "playwright-junit.xml")]
    code, _, err = upload(capsys, *both, "--dry-run", "--branch", "main")
    assert code == 0
    assert "40 tests are in more than one report of this upload" in err, err
    assert "playwright-results.json" in err and "playwright-junit.xml" in err
    code, _, err = upload(capsys, both[0], "--dry-run", "--branch", "main")
    assert code == 0 and "more than one report" not in err, err


def test_an_export_refused_before_its_body_is_asked_again():
    """A key streams at most 2 exports at once: the third is a 429 before any byte, which the
    CLI waits out (Retry-After) instead of failing a CI job; a 4xx is not retried."""
    from qahub_lite.client import ApiError, QahubClient

    calls: list[str] = []

    def answer(request):
        calls.append(request.url.path)
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "0"}, json={"error": "Too Many Requests",
                                                                           "message": "Too many exports at once"})
        if request.url.path.endswith("/gone/export"):
            return httpx.Response(404, json={"error": "Not Found", "message": "Run not found"})
        return httpx.Response(200, content=b"a,b\r\n1,2\r\n")

    with QahubClient("http://hub", "qh_k", transport=httpx.MockTransport(answer)) as client:
        with client.stream("/api/v1/runs/r1/export") as response:
            assert b"".join(response.iter_bytes()) == b"a,b\r\n1,2\r\n"
        assert len(calls) == 2
        with pytest.raises(ApiError) as refused:
            with client.stream("/api/v1/runs/gone/export"):
                pass
    assert refused.value.status == 404 and len(calls) == 3
