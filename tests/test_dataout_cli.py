"""`qahub export`, `qahub summary`, `qahub split` and `qahub upload --summary-file` as a CI job
runs them: the real server process on a free port, the real command line in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from conftest import qahub_command, start_server
from qahub_lite.reports import parse_report

# The command-line client against a server: its behaviour does not depend on the server's engine,
# whose API is tested on both engines elsewhere; one engine keeps make test short.
pytestmark = pytest.mark.e2e
REPORT = Path(__file__).resolve().parent / "corpus" / "generated" / "pytest" / "pytest-junit-xunit1-logging-all.xml"
CI_MARKERS = ("GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "CIRCLECI", "TF_BUILD", "JENKINS_URL", "JENKINS_HOME",
              "CI_NODE_TOTAL", "CI_NODE_INDEX", "CIRCLE_NODE_TOTAL", "CIRCLE_NODE_INDEX")


@pytest.fixture(scope="module")
def hub(tmp_path_factory, module_storage_url):
    server = start_server(tmp_path_factory.mktemp("dataout-server"), storage_url=module_storage_url)
    with server.client() as c:
        project = c.post("/api/v1/projects", json={"name": "CLI shop"}).json()
    yield server, project
    server.stop()


def qahub(hub, *args, stdin: str | None = None, cwd=None) -> subprocess.CompletedProcess:
    server, _ = hub
    env = {k: v for k, v in os.environ.items() if not k.startswith("QAHUB_") and k not in CI_MARKERS}
    env.update(QAHUB_URL=server.url, QAHUB_TOKEN=server.admin_key)
    return subprocess.run([*qahub_command(), *args], env=env, input=stdin, capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_upload_writes_the_summary_then_summary_and_export_read_the_run(hub, tmp_path):
    server, project = hub
    summary_file = tmp_path / "step-summary.md"
    summary_file.write_text("earlier step\n")
    done = qahub(hub, "upload", "--project", project["id"], "--summary-file", str(summary_file), "--json", "--keep-unknown-codes",
                 str(REPORT))
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    text = summary_file.read_text()
    assert text.startswith("earlier step\n\n## ")  # appended, as $GITHUB_STEP_SUMMARY expects
    assert f"run {run['short_id']}" in text and len(text.splitlines()) <= 62

    plain = qahub(hub, "summary", run["short_id"], "--format", "text")
    assert plain.returncode == 0 and plain.stdout.startswith(f"qahub: run {run['short_id']} ")

    out = tmp_path / "run.xml"
    exported = qahub(hub, "export", "run", run["short_id"], "--format", "junit", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "wrote" in exported.stderr
    original, back = parse_report(REPORT), parse_report(out)
    assert len(back.results) == len(original.results) == run["accepted"]
    assert sorted(r.status for r in back.results) == sorted(r.status for r in original.results)
    assert sum(r.flaky for r in back.results) == sum(r.flaky for r in original.results)

    rows = tmp_path / "all.ndjson"
    bulk = qahub(hub, "export", "results", "--project", project["id"], "--format", "ndjson", "-o", str(rows))
    assert bulk.returncode == 0, bulk.stderr
    lines = rows.read_text().splitlines()
    assert len(lines) == run["accepted"] and f"wrote {run['accepted']} rows" in bulk.stderr
    assert {json.loads(line)["run_short_id"] for line in lines} == {run["short_id"]}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_a_summary_that_cannot_be_written_does_not_fail_the_upload(hub, tmp_path):
    _, project = hub
    done = qahub(hub, "upload", "--project", project["id"], "--summary-file", str(tmp_path / "no" / "dir.md"),
                 "--keep-unknown-codes", str(REPORT))
    assert done.returncode == 0 and "warning: cannot write the summary" in done.stderr


def test_export_to_a_missing_folder_or_a_closed_pipe(hub, tmp_path):
    _, project = hub
    done = qahub(hub, "export", "results", "--project", project["id"], "-o", str(tmp_path / "no" / "x.csv"))
    assert done.returncode == 2 and done.stderr.startswith("qahub: cannot write")
    server, _ = hub
    with server.client() as c:  # more than a pipe's buffer (64 KB), so the writer meets the closed pipe
        big = c.post("/api/v1/projects", json={"name": "Piped"}).json()
        c.post("/api/v1/ingest", json={"project_id": big["id"], "results": [
            {"title": f"test {i}", "status": "PASSED", "error_message": "x" * 100} for i in range(3000)]})
    env = {k: v for k, v in os.environ.items() if not k.startswith("QAHUB_")}
    env.update(QAHUB_URL=server.url, QAHUB_TOKEN=server.admin_key)
    piped = subprocess.run(f"{' '.join(qahub_command())} export results --project {big['id']} | head -c 10",
                           shell=True, env=env, capture_output=True, text=True, timeout=60)
    assert piped.stdout == "run_id,run" and "Traceback" not in piped.stderr and "cut" not in piped.stderr


def test_a_refused_export_leaves_no_file_and_exits_2(hub, tmp_path):
    out = tmp_path / "nothing.csv"
    done = qahub(hub, "export", "run", "no-such-run", "--format", "csv", "-o", str(out))
    assert done.returncode == 2 and "Run not found" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_split_is_the_same_on_every_node_and_covers_every_file(hub, tmp_path):
    server, project = hub
    # History on the default branch: three files, one much slower.
    with server.client() as c:
        for _ in range(2):
            c.post("/api/v1/ingest", json={"project_id": project["id"], "ci": {"branch": "main"}, "results": [
                {"title": "slow", "file": "tests/test_slow.py", "status": "PASSED", "duration_ms": 9000},
                {"title": "a", "file": "tests/test_a.py", "status": "PASSED", "duration_ms": 1000},
                {"title": "b", "file": "tests/test_b.py", "status": "PASSED", "duration_ms": 1000},
            ]})
    files = "tests/test_a.py\n./tests/test_b.py\ntests/test_slow.py\ntests/test_new.py\n"
    shares = []
    for index in (0, 1):
        done = qahub(hub, "split", "--project", project["id"], "--total", "2", "--index", str(index), stdin=files)
        assert done.returncode == 0, done.stderr
        shares.append(done.stdout.split())
        again = qahub(hub, "split", "--project", project["id"], "--total", "2", "--index", str(index), stdin=files)
        assert again.stdout.split() == shares[-1]
    assert sorted(shares[0] + shares[1]) == sorted(files.split())
    assert ["tests/test_slow.py"] in shares  # the slow file alone balances the three others

    saved = tmp_path / "timings.json"
    qahub(hub, "split", "--project", project["id"], "--total", "2", "--index", "0", "--save-timings", str(saved),
          stdin=files)
    offline = qahub(hub, "split", "--timings-file", str(saved), "--total", "2", "--index", "0", stdin=files)
    assert offline.stdout.split() == shares[0]


@pytest.mark.parametrize("figures", [
    {"by": "file", "data": [{"key": "a.py", "median_ms": "slow"}]},  # not a number
    {"by": "file", "data": [{"key": "a.py", "median_ms": -5}]},
    {"by": "file", "data": "everything"},
    ["not", "timings"],
])
def test_split_refuses_timings_it_cannot_read_without_a_traceback(hub, tmp_path, figures):
    # A hand-edited --timings-file, or an answer from something that is not a qahub server.
    saved = tmp_path / "timings.json"
    saved.write_text(json.dumps(figures))
    done = qahub(hub, "split", "--timings-file", str(saved), "--total", "2", "--index", "0", stdin="a.py\nb.py\n")
    assert done.returncode == 2 and "the timings are not what qahub serves" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_split_without_a_reachable_server_refuses_to_guess(hub):
    done = subprocess.run([*qahub_command(), "split", "--url", "http://127.0.0.1:9", "--token", "qh_x_y",
                           "--retries", "0", "--project", "p", "--total", "2", "--index", "0", "a.py"],
                          capture_output=True, text=True, timeout=60, env={
                              k: v for k, v in os.environ.items() if not k.startswith("QAHUB_")})
    assert done.returncode == 2 and "every node must split alike" in done.stderr


def test_the_exports_stream_over_http(hub):
    server, project = hub
    with httpx.Client(base_url=server.url, headers=server.h(), timeout=30) as c:
        with c.stream("GET", f"/api/v1/projects/{project['id']}/results/export", params={"format": "csv"}) as r:
            assert r.status_code == 200 and "content-length" not in r.headers  # chunked, not buffered
            body = b"".join(r.iter_bytes())
        assert body.count(b"\r\n") == int(r.headers["x-result-count"]) + 1


def test_a_csv_export_counts_results_not_lines(hub, tmp_path):
    # Error messages span lines (a diff, a stack); in CSV they are quoted values with newlines in
    # them, and the final line once said "wrote 119 results" for a run of 40.
    server, project = hub
    with server.client() as c:
        run = c.post("/api/v1/ingest", json={"project_id": project["id"], "results": [
            {"suite": "s", "title": "diff", "status": "FAILED", "error_message": 'expected "a"\n- 1\n+ 2\n'},
            {"suite": "s", "title": "ok", "status": "PASSED"},
        ]}).json()
    out = tmp_path / "run.csv"
    done = qahub(hub, "export", "run", run["short_id"], "--format", "csv", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "wrote 2 results" in done.stderr, done.stderr
