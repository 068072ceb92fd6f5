"""Issue 11 end to end: `qahub upload` of real report files into the real server process, one
case per way a test's identity used to break (variants, partial runs, two reporters, two
tools, no file), nothing dropped by default, the stored-count check, the run's context; and
issue 12 item 7, attachments only from the report's folder or the repository root."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import start_server
from test_upload import CI_MARKERS, FakeHub, _answer, _png, upload

CORPUS = Path(__file__).resolve().parent / "corpus" / "generated"
# The command-line client against a server: its behaviour does not depend on the server's engine,
# whose API is tested on both engines elsewhere; one engine keeps make test short.
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_storage_url):
    srv = start_server(tmp_path_factory.mktemp("identity-server"), storage_url=module_storage_url)
    yield srv
    srv.stop()


@pytest.fixture
def remote(server, monkeypatch, tmp_path):
    for name in (*CI_MARKERS, "QAHUB_PROJECT", "QAHUB_BRANCH", "QAHUB_COMMIT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QAHUB_URL", server.url)
    monkeypatch.setenv("QAHUB_TOKEN", server.admin_key)
    monkeypatch.chdir(tmp_path)  # outside any git checkout: the root is this folder
    return server


@pytest.fixture
def project(remote):
    with remote.client() as http:
        created = http.post("/api/v1/projects", json={"name": f"p-{uuid.uuid4().hex[:8]}"}).json()
        for code in ("TC-042", "TC-043", "TC-100"):
            assert http.post(f"/api/v1/projects/{created['id']}/test-cases",
                             json={"code": code, "title": f"case {code}"}).status_code == 201
    return created


def _send(capsys, project, *args) -> dict:
    code, out, err = upload(capsys, *map(str, args), "--project", project["id"], "--json")
    assert code == 0, err
    return json.loads(out)


def _results(server, run_id) -> list[dict]:
    with server.client() as http:
        return http.get(f"/api/v1/runs/{run_id}/results").json()["data"]


def _tests(server, run_id, *, unlinked: bool = False) -> dict[tuple, int]:
    """(suite, title, variant) -> interned test id; `unlinked`: only results of no test case
    (two tools' results tagged with one code are one library test case, by design)."""
    return {(r["suite"], r["title"], r["variant"]): r["test_id"] for r in _results(server, run_id)
            if not (unlinked and r["test_case_code"])}


def test_parameterized_cases_linked_to_one_code_are_variants_not_one_result(capsys, remote, project):
    # Surefire, four `add[n: ...] @qa-hub('TC-042')` cases; add[2] fails. Before: one result, PASSED.
    answer = _send(capsys, project, CORPUS / "maven-surefire" / "TEST-com.example.corpus.ParameterizedCalcTest.xml")
    assert (answer["accepted"], answer["rejected"]) == (4, 0)
    stored = _results(remote, answer["run_id"])
    assert {r["test_case_code"] for r in stored} == {"TC-042"}
    assert sorted(r["variant"] for r in stored) == [
        "0: add(1, 1) = 2", "1: add(2, 2) = 4", "2: add(2, 3) = 6", "3: add(10, -5) = 5"]
    with remote.client() as http:
        [case] = http.get(f"/api/v1/runs/{answer['run_id']}/cases").json()["data"]
        run = http.get(f"/api/v1/runs/{answer['run_id']}").json()
    assert case["status"] == "FAILED" and len(case["variants"]) == 4
    assert (run["counts"]["total"], run["verdict"]) == (4, "FAILED")


def test_playwright_projects_are_variants(capsys, remote, project):
    answer = _send(capsys, project, CORPUS / "playwright" / "playwright-results.json")
    assert answer["accepted"] == 40
    tagged = [r for r in _results(remote, answer["run_id"]) if r["test_case_code"] == "TC-043"]
    assert sorted(r["variant"] for r in tagged) == ["api", "smoke"]


@pytest.mark.parametrize("first, second", [
    ("pytest/pytest-json-report.json", "pytest/pytest-junit-xunit1-logging-all.xml"),
    ("pytest/pytest-json-report.json", "pytest/pytest-junit-xunit2-default.xml"),
    ("playwright/playwright-results.json", "playwright/playwright-junit.xml"),
])
def test_two_reporters_of_one_tool_name_every_test_the_same_way(capsys, remote, project, first, second):
    a = _tests(remote, _send(capsys, project, CORPUS / first)["run_id"])
    b = _tests(remote, _send(capsys, project, CORPUS / second)["run_id"])
    assert len(a) >= 32 and a == b  # same keys and the same interned test ids


def test_vitest_json_and_junit_agree_given_the_repository_root(capsys, remote, project):
    root = "/builds/sample/projects/vitest"  # where the corpus' Vitest ran (absolute paths in its JSON)
    a = _tests(remote, _send(capsys, project, CORPUS / "vitest" / "vitest-results.json", "--root", root)["run_id"])
    b = _tests(remote, _send(capsys, project, CORPUS / "vitest" / "vitest-junit.xml", "--root", root)["run_id"])
    assert len(a) == 30 and all(b[key] == test_id for key, test_id in a.items())
    # The JUnit file also reports the beforeAll hook failure, which Vitest's JSON does not hold.
    assert set(b) - set(a) == {("tests/hooks.test.js", "beforeAll failure", "")}


def _jest_runs(tmp_path: Path) -> tuple[Path, Path]:
    """A full and a partial (`npx jest src/pricing`) Jest --json report of one repository, made
    from the corpus' real Jest report: its `flaky.test.js` moved to `src/pricing/price.test.js`
    (hand-made: the corpus has no run of a nested layout)."""
    full = json.loads((CORPUS / "jest" / "jest-results.json").read_text())
    for file in full["testResults"]:
        if file["name"].endswith("/flaky.test.js"):
            file["name"] = "/builds/sample/projects/jest/src/pricing/price.test.js"
    partial = {**full, "testResults": [f for f in full["testResults"] if "/src/pricing/" in f["name"]]}
    (tmp_path / "full.json").write_text(json.dumps(full))
    (tmp_path / "partial.json").write_text(json.dumps(partial))
    return tmp_path / "full.json", tmp_path / "partial.json"


def test_a_partial_run_names_tests_as_the_full_run_does(capsys, remote, project, tmp_path):
    full, partial = _jest_runs(tmp_path)
    root = "/builds/sample/projects/jest"
    everything = _tests(remote, _send(capsys, project, full, "--root", root)["run_id"])
    part = _tests(remote, _send(capsys, project, partial, "--root", root)["run_id"])
    assert part and all(key[0].startswith("src/pricing/price.test.js") for key in part)
    assert all(everything[key] == test_id for key, test_id in part.items())


def test_two_tools_never_merge(capsys, remote, project):
    jest = _tests(remote, _send(capsys, project, CORPUS / "jest" / "jest-results.json",
                                "--root", "/builds/sample/projects/jest")["run_id"], unlinked=True)
    vitest = _tests(remote, _send(capsys, project, CORPUS / "vitest" / "vitest-results.json",
                                  "--root", "/builds/sample/projects/vitest")["run_id"], unlinked=True)
    # Both have a `flaky.test.js` with "Flaky behaviour > passes on second attempt".
    assert any("flaky.test.js" in key[0] for key in jest) and any("flaky.test.js" in key[0] for key in vitest)
    assert not set(jest.values()) & set(vitest.values())


def test_suites_without_a_file_are_scoped_by_their_framework(capsys, remote, project):
    tap = _tests(remote, _send(capsys, project, CORPUS / "mocha" / "mocha-tap.tap")["run_id"], unlinked=True)
    awesome = _tests(remote, _send(capsys, project, CORPUS / "mocha" / "mochawesome.json")["run_id"], unlinked=True)
    assert ("(tap)", "root-level test outside describe", "") in tap
    assert ("(mocha)", "root-level test outside describe", "") in awesome
    assert not set(tap.values()) & set(awesome.values())
    again = _tests(remote, _send(capsys, project, CORPUS / "mocha" / "mocha-tap.tap")["run_id"], unlinked=True)
    assert again == tap  # and stable from run to run


def test_variant_label_keeps_matrix_uploads_apart(capsys, remote, project):
    report = CORPUS / "maven-surefire" / "TEST-com.example.corpus.CalculatorTest.xml"
    linux = _tests(remote, _send(capsys, project, report, "--variant", "jdk17-linux")["run_id"])
    mac = _tests(remote, _send(capsys, project, report, "--variant", "jdk17-mac")["run_id"])
    assert {key[2] for key in linux} == {"jdk17-linux"} and {key[2] for key in mac} == {"jdk17-mac"}
    assert not set(linux.values()) & set(mac.values())


def test_unknown_codes_are_kept_unlinked_by_default(capsys, remote):
    with remote.client() as http:
        bare = http.post("/api/v1/projects", json={"name": f"bare-{uuid.uuid4().hex[:6]}"}).json()
    report = str(CORPUS / "jest" / "jest-results.json")
    code, out, err = upload(capsys, report, "--project", bare["id"], "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert (answer["accepted"], answer["rejected"]) == (30, 0)
    assert "2 results kept as unlinked results: their test case codes are not in this project (TC-042, TC-043)" in err
    assert len(answer["unlinked"]) == 2
    code, out, err = upload(capsys, report, "--project", bare["id"], "--json", "--strict-codes")
    assert json.loads(out)["rejected"] == 2


def test_a_run_that_does_not_hold_what_was_parsed_fails_the_upload(capsys, monkeypatch, tmp_path):
    for name in (*CI_MARKERS, "QAHUB_URL", "QAHUB_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QAHUB_TOKEN", "qh_test_key")
    # A server that said it accepted both results, but stored one.
    counts = {"total": 1, "passed": 0, "failed": 1, "broken": 0, "skipped": 0, "unknown": 0, "pending": 0, "flaky": 0}
    hub = FakeHub({"/api/v1/ingest": [(201, {}, _answer())], "/api/v1/runs/r1": [(200, {}, {"counts": counts})]})
    report = tmp_path / "r.xml"
    report.write_text('<testsuite name="s"><testcase classname="c" name="a"/><testcase classname="c" name="b">'
                      '<failure message="boom"/></testcase></testsuite>')
    try:
        code, out, err = upload(capsys, str(report), "--url", hub.url, "--project", "p")
    finally:
        hub.close()
    assert code == 2
    assert "run abcd1234 does not hold what was parsed (total: parsed 2, stored 1; passed: parsed 1, stored 0)" in err


def test_branch_and_commit_from_options_environment_and_git(capsys, remote, project, tmp_path, monkeypatch):
    report = CORPUS / "playwright" / "playwright-results.json"
    answer = _send(capsys, project, report, "--branch", "feature/x", "--commit", "abc1234")
    with remote.client() as http:
        run = http.get(f"/api/v1/runs/{answer['run_id']}").json()
    assert (run["ci"]["branch"], run["ci"]["commit"]) == ("feature/x", "abc1234")
    # Started and took what the report says (Playwright's stats), not the time of the upload.
    assert run["started_at"].startswith("2026-11-23T03:28:21") and run["duration_ms"] == 24263

    monkeypatch.setenv("QAHUB_BRANCH", "from-env")
    answer = _send(capsys, project, report)
    with remote.client() as http:
        assert http.get(f"/api/v1/runs/{answer['run_id']}").json()["ci"]["branch"] == "from-env"
    monkeypatch.delenv("QAHUB_BRANCH")

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "checkout"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo)]
    subprocess.run([*git, "init", "-q", "-b", "trunk"], check=True)
    shutil.copy(report, repo / "results.json")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "c"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    monkeypatch.chdir(repo / ".")
    answer = _send(capsys, project, "results.json")
    with remote.client() as http:
        ci = http.get(f"/api/v1/runs/{answer['run_id']}").json()["ci"]
    assert (ci["branch"], ci["commit"]) == ("trunk", sha)


def test_attachments_only_from_the_report_folder_or_the_repository_root(capsys, remote, project, tmp_path):
    repo, secret = tmp_path / "repo", tmp_path / "secret"
    (repo / "reports").mkdir(parents=True)
    secret.mkdir()
    (repo / "reports" / "shot.png").write_bytes(_png())
    (secret / "outside.png").write_bytes(_png())
    (repo / "reports" / "link.png").symlink_to(secret / "outside.png")  # inside by name, outside for real
    lines = "\n".join(f"[[ATTACHMENT|{p}]]" for p in ("shot.png", "link.png", "../../secret/outside.png", "/etc/passwd"))
    report = repo / "reports" / "junit.xml"
    report.write_text(f'<testsuite name="s"><testcase classname="c" name="a"><system-out>{lines}</system-out>'
                      '</testcase></testsuite>')
    code, out, err = upload(capsys, str(report), "--project", project["id"], "--root", str(repo))
    assert code == 0, err
    assert "Attachments: 1 uploaded, 0 skipped" in out
    assert "3 attachments skipped: outside the report's folder and the repository root" in err
    assert "/etc/passwd" in err

    code, out, err = upload(capsys, str(report), "--project", project["id"], "--root", str(repo),
                            "--attachments-from", str(secret))
    assert code == 0, err
    assert "Attachments: 3 uploaded" in out  # /etc/passwd is still not sent
    assert "1 attachments skipped" in err and "/etc/passwd" in err


def test_nothing_inside_a_git_folder_is_ever_attached(capsys, remote, project, tmp_path):
    # .git/config holds a CI checkout's token; the repository root is an allowed folder, so a
    # report naming .git/config (or a link to it) must still not send it.
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "config").write_text("[http]\n\textraheader = AUTHORIZATION: basic c2VjcmV0\n")
    (repo / "reports").mkdir()
    (repo / "reports" / "shot.png").write_bytes(_png())
    (repo / "reports" / "config.txt").symlink_to(repo / ".git" / "config")
    lines = "\n".join(f"[[ATTACHMENT|{p}]]" for p in ("shot.png", "../.git/config", "config.txt"))
    report = repo / "reports" / "junit.xml"
    report.write_text(f'<testsuite name="s"><testcase classname="c" name="a"><system-out>{lines}</system-out>'
                      '</testcase></testsuite>')
    code, out, err = upload(capsys, str(report), "--project", project["id"], "--root", str(repo),
                            "--attachments-from", str(repo / ".git"))
    assert code == 0, err
    assert "Attachments: 1 uploaded" in out
    assert "2 attachments skipped: inside a .git folder" in err


def test_timings_name_files_by_their_location_as_a_checkout_lists_them(capsys, remote, project):
    # `qahub split` matches `git ls-files` output against the timings' keys: they must be the
    # files relative to the repository root, whatever the report wrote (Jest: absolute paths;
    # pytest's xunit2 JUnit: no `file` at all, only `classname`).
    _send(capsys, project, CORPUS / "jest" / "jest-results.json", "--root", "/builds/sample/projects/jest",
          "--branch", "main")
    _send(capsys, project, CORPUS / "pytest" / "pytest-junit-xunit2-default.xml", "--branch", "main")
    with remote.client() as http:
        keys = {t["key"] for t in http.get(f"/api/v1/projects/{project['id']}/timings?by=file").json()["data"]}
    assert {"__tests__/flaky.test.js", "__tests__/math.test.js", "tests/test_basic.py"} <= keys, keys
    assert not any(key.startswith("/") for key in keys), keys


def test_a_run_takes_its_duration_from_reports_that_give_no_start(capsys, remote, project):
    # Surefire writes each class's `time` but no `timestamp`: the classes of one Maven run ran one
    # after another, so the run took their sum (0 + 6 + 125 + 0 + 21 ms), not "unknown".
    answer = _send(capsys, project, CORPUS / "maven-surefire")
    with remote.client() as http:
        run = http.get(f"/api/v1/runs/{answer['run_id']}").json()
    assert run["duration_ms"] == 152, run


def test_one_unknown_code_is_said_in_the_singular(capsys, project, tmp_path):
    report = tmp_path / "one.xml"
    report.write_text("""<testsuite name="s"><testcase classname="c" name="a @qa-hub('TC-777')"/></testsuite>""")
    code, _, err = upload(capsys, str(report), "--project", project["id"])
    assert code == 0, err
    assert "1 result kept as an unlinked result: its test case code is not in this project (TC-777)" in err, err
