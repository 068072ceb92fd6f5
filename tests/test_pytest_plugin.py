"""The pytest plugin, as users run it: a real `python -m pytest` session in a subprocess on a
small suite, uploading to the real server process (with pytest-rerunfailures retries and
pytest-xdist workers), and saving its payload when the server is down."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from conftest import free_port, start_server
from qahub_lite.cli import main

pytestmark = pytest.mark.e2e

SUITE = '''
import pytest
from pathlib import Path

COUNTER = Path(__file__).with_name("attempts.txt")


@pytest.mark.qahub("TC-001")
def test_linked_by_marker():
    print("hello from the test")


def test_linked_by_property(record_property):
    record_property("qa_hub_case", "TC-002")


@pytest.mark.parametrize("user", ["admin"], ids=["@qa-hub('TC-003') as admin"])
def test_linked_by_tag_in_id(user):
    pass


def test_fails():
    assert 1 == 2, "numbers differ"


def test_flaky():
    seen = int(COUNTER.read_text()) if COUNTER.exists() else 0
    COUNTER.write_text(str(seen + 1))
    assert seen >= 1, "first attempt fails"


@pytest.fixture
def broken_fixture():
    raise RuntimeError("fixture boom")


def test_setup_error(broken_fixture):
    pass


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass


@pytest.mark.xfail(reason="known bug")
def test_expected_failure():
    assert False


class TestGroup:
    @pytest.mark.parametrize("value", [1, 2])
    def test_param(self, value):
        assert value
'''

PASSING = '''
def test_one():
    pass
'''


def write_suite(folder: Path, source: str = SUITE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_sample.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return folder


def clean_env(**extra: str) -> dict:
    """This process's environment without anything that configures the plugin or pytest."""
    drop = ("QAHUB_", "PYTEST_", "GITHUB_", "GITLAB_", "CIRCLE", "BUILDKITE", "TF_BUILD", "JENKINS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**env, **extra}


def run_pytest(folder: Path, *args: str, env: dict, plugins: tuple[str, ...] | None = ("qahub",),
               ) -> subprocess.CompletedProcess:
    """`python -m pytest` in `folder`. With `plugins`, only those are loaded (by their entry point
    names): whatever else is installed here could cost seconds of start-up per session. With
    None, every installed plugin loads as it would for a user: the proof of the entry point."""
    env = dict(env)
    loads: list[str] = []
    if plugins is not None:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        for name in plugins:
            loads += ["-p", name]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *loads, *args], cwd=folder, env=env,
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("plugin-server"))
    yield srv
    srv.stop()


@pytest.fixture
def project(server):
    with server.client() as http:
        created = http.post("/api/v1/projects", json={"name": f"plugin-{uuid.uuid4().hex[:8]}"}).json()
        for code, title in (("TC-001", "Greeting"), ("TC-002", "Checkout"), ("TC-003", "Login")):
            r = http.post(f"/api/v1/projects/{created['id']}/test-cases", json={"code": code, "title": title})
            assert r.status_code == 201, r.text
    return created


def configured(server, project, **extra: str) -> dict:
    settings = {"QAHUB_URL": server.url, "QAHUB_TOKEN": server.admin_key, "QAHUB_PROJECT": project["slug"]}
    return clean_env(**{**settings, **extra})


def project_runs(server, project) -> list[dict]:
    with server.client() as http:
        return http.get("/api/v1/runs", params={"project_id": project["id"]}).json()["data"]


def results_by_title(server, run: dict) -> dict[str, dict]:
    with server.client() as http:
        rows = http.get(f"/api/v1/runs/{run['id']}/results", params={"limit": 100}).json()["data"]
    return {r["title"]: r for r in rows}


def test_session_is_uploaded_with_markers_retries_and_errors(server, project, tmp_path):
    folder = write_suite(tmp_path / "suite")
    (folder / "test_broken_import.py").write_text("import module_that_does_not_exist\n")
    # Every installed plugin auto-loads, as for a user: the `pytest11` entry point is what runs.
    done = run_pytest(folder, "--reruns", "1", "--continue-on-collection-errors", env=configured(server, project),
                      plugins=None)
    assert done.returncode == 1, done.stdout + done.stderr  # the suite's own failures, nothing more
    assert "qahub: uploaded 11 results to run " in done.stdout, done.stdout

    [run] = project_runs(server, project)
    assert (run["framework"], run["status"], run["verdict"]) == ("pytest", "COMPLETED", "FAILED")
    results = results_by_title(server, run)
    linked = results["Greeting"]  # a linked result carries its test case's title
    assert linked["test_case_code"] == "TC-001" and linked["stdout"] == "hello from the test\n"
    assert results["Checkout"]["test_case_code"] == "TC-002"  # record_property("qa_hub_case", ...)
    assert results["Login"]["test_case_code"] == "TC-003"  # @qa-hub('TC-003') in the parameter id
    flaky = results["test_flaky"]
    assert (flaky["status"], flaky["flaky"], flaky["attempts"]) == ("PASSED", True, 2)
    assert flaky["previous_attempts"][0]["status"] == "FAILED"
    assert "first attempt fails" in flaky["previous_attempts"][0]["error_message"]
    failed = results["test_fails"]
    assert (failed["status"], failed["attempts"], failed["suite"], failed["file"]) == (
        "FAILED", 2, "test_sample.py", "test_sample.py")
    assert "numbers differ" in failed["error_message"] and "def test_fails" in failed["error_stack"]
    assert results["test_setup_error"]["status"] == "BROKEN"
    assert "fixture boom" in results["test_setup_error"]["error_message"]
    assert (results["test_skipped"]["status"], results["test_skipped"]["error_message"]) == ("SKIPPED", "not today")
    assert results["test_expected_failure"]["status"] == "SKIPPED"
    assert results["test_param[2]"]["suite"] == "test_sample.py › TestGroup"
    assert results["test_broken_import.py"]["status"] == "BROKEN"  # the module that failed to import
    assert "module_that_does_not_exist" in results["test_broken_import.py"]["error_message"]
    counts = run["counts"]
    assert (counts["total"], counts["passed"], counts["failed"], counts["broken"], counts["skipped"],
            counts["flaky"]) == (11, 6, 1, 2, 2, 1)


def test_xdist_workers_make_one_run(server, project, tmp_path):
    folder = write_suite(tmp_path / "suite")
    done = run_pytest(folder, "-n", "2", "--reruns", "1", "--qahub-run-name", "parallel",
                      "--qahub-environment", "ci", env=configured(server, project),
                      plugins=("qahub", "xdist", "rerunfailures"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.count("qahub: uploaded 10 results") == 1, done.stdout
    [run] = project_runs(server, project)  # one run, not one per worker
    assert (run["name"], run["environment"], run["counts"]["total"]) == ("parallel", "ci", 10)
    results = results_by_title(server, run)
    assert results["Greeting"]["test_case_code"] == "TC-001"  # the marker crossed the worker boundary
    assert (results["test_flaky"]["flaky"], results["test_flaky"]["attempts"]) == (True, 2)


def test_options_configure_it_without_environment(server, project, tmp_path):
    folder = write_suite(tmp_path / "suite", PASSING)
    done = run_pytest(folder, "--qahub-url", server.url, "--qahub-token", server.admin_key,
                      "--qahub-project", project["id"], env=clean_env())
    assert done.returncode == 0
    assert "qahub: uploaded 1 results" in done.stdout
    assert len(project_runs(server, project)) == 1


def test_server_down_never_fails_the_session_and_saves_the_payload(server, project, tmp_path, capsys):
    folder = write_suite(tmp_path / "suite", PASSING)
    down = configured(server, project, QAHUB_URL=f"http://127.0.0.1:{free_port()}")
    done = run_pytest(folder, "--qahub-save", "unsent.json", env=down)
    assert done.returncode == 0, done.stdout + done.stderr  # passing tests stay a passing session
    saved = folder / "unsent.json"
    assert "results not uploaded (cannot reach" in done.stdout
    assert f"send them later with: qahub upload {saved}" in done.stdout

    failing = write_suite(tmp_path / "failing")
    done = run_pytest(failing, env=down)
    assert done.returncode == 1  # exactly what the tests say, nothing added by the plugin
    assert (failing / "qahub-results.json").exists()

    # Later, from anywhere that reaches the server: the saved file goes up as it is.
    os.environ["QAHUB_URL"], os.environ["QAHUB_TOKEN"] = server.url, server.admin_key
    try:
        assert main(["upload", str(saved)]) == 0
        assert main(["upload", str(failing / "qahub-results.json"), "--fail-on-failures"]) == 1
    finally:
        del os.environ["QAHUB_URL"], os.environ["QAHUB_TOKEN"]
    capsys.readouterr()
    runs = project_runs(server, project)
    assert sorted(r["counts"]["total"] for r in runs) == [1, 10]
    assert all(r["framework"] == "pytest" for r in runs)


def test_no_key_saves_instead_of_trying(server, project, tmp_path):
    folder = write_suite(tmp_path / "suite", PASSING)
    env = configured(server, project)
    del env["QAHUB_TOKEN"]
    done = run_pytest(folder, env=env)
    assert done.returncode == 0
    assert "no API key: pass --qahub-token or set QAHUB_TOKEN" in done.stdout
    assert (folder / "qahub-results.json").exists() and project_runs(server, project) == []


def test_off_unless_configured(server, project, tmp_path):
    folder = write_suite(tmp_path / "suite")
    # Not configured: silent, nothing saved; the marker is still registered (--strict-markers).
    done = run_pytest(folder, "--strict-markers", "--junitxml", "junit.xml", env=clean_env())
    assert done.returncode == 1 and "qahub" not in done.stdout and "not found" not in done.stdout
    assert not (folder / "qahub-results.json").exists()
    # ... and the marker's code is in the JUnit XML, for `qahub upload junit.xml`.
    assert '<property name="qa_hub" value="TC-001"' in (folder / "junit.xml").read_text()

    done = run_pytest(folder, "--qahub-off", env=configured(server, project))
    assert done.returncode == 1 and "qahub: uploaded" not in done.stdout
    done = run_pytest(folder, "-p", "no:qahub", env=configured(server, project), plugins=None)
    assert done.returncode == 1 and "qahub: uploaded" not in done.stdout
    assert project_runs(server, project) == []


PARAMETRIZED = '''
import pytest


@pytest.mark.qahub("TC-001")
@pytest.mark.parametrize("n", [1, 2, 3])
def test_one_case_three_parameters(n):
    assert n != 2, "two is wrong"


@pytest.mark.qahub("TC-999")
def test_code_not_in_the_library():
    pass
'''


def test_parameters_of_one_case_are_variants_and_context_is_recorded(server, project, tmp_path):
    """Issue 11: three parameter sets of one marked test were one result (the last won) and a
    code missing from the library was dropped; outside CI the run had no branch."""
    folder = write_suite(tmp_path / "suite", PARAMETRIZED)
    done = run_pytest(folder, "--qahub-branch", "feature/vat", "--qahub-commit", "abc1234",
                      env=configured(server, project))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "qahub: uploaded 4 results" in done.stdout, done.stdout
    assert "1 results kept unlinked: test case codes not in this project: TC-999" in done.stdout
    [run] = project_runs(server, project)
    assert (run["ci"]["branch"], run["ci"]["commit"]) == ("feature/vat", "abc1234")
    assert run["started_at"] and run["duration_ms"] is not None
    with server.client() as http:
        rows = http.get(f"/api/v1/runs/{run['id']}/results").json()["data"]
        [case] = http.get(f"/api/v1/runs/{run['id']}/cases").json()["data"]
    assert sorted((r["variant"], r["status"]) for r in rows if r["test_case_code"] == "TC-001") == [
        ("1", "PASSED"), ("2", "FAILED"), ("3", "PASSED")]
    assert (case["test_case_code"], case["status"], case["variants"]) == ("TC-001", "FAILED", ["1", "2", "3"])
    assert any(r["title"] == "test_code_not_in_the_library" and r["test_case_code"] is None for r in rows)
