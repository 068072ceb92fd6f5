"""The agent's side, without a server: agent.toml is strict, placeholders fill a command without a
shell, values from the API are refused when they could act as options or escape the workdir,
and a command is killed (with what it started) on cancel, on timeout and on stop."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from qahub_lite.agent import runner
from qahub_lite.agent.config import AgentConfigError, FrameworkCommand, load_agent_config
from qahub_lite.core.jobs import ClaimedJob, JobCi, JobTest
from qahub_lite.core.triggers import TriggerOptions


def job(*tests: JobTest, **options) -> ClaimedJob:
    return ClaimedJob(
        id="job-1", lease_token="t", lease_s=60, heartbeat_s=20, run_id="run-1", run_short_id="abcd2345",
        project_id="p", framework="pytest", options=TriggerOptions(**options),
        ci=JobCi(source="github-actions", branch="main", sha="abc123", pr_number="42"), tests=list(tests),
    )


def case(title: str, code: str | None = None, grep: str | None = None, file: str | None = None) -> JobTest:
    return JobTest(execution_id=f"e-{title}", test_case_id=None, code=code, title=title, suite_path="",
                   grep=grep, file=file)



def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_agent_toml_is_read_strictly(tmp_path):
    ok = load_agent_config(write(tmp_path, 'name = "ci-1"\n[frameworks.pytest]\n'
                                           'command = "pytest -k {grep} --junitxml={report} {files}"\n'))
    assert ok.agent_name == "ci-1" and ok.frameworks["pytest"].argv()[:2] == ["pytest", "-k"]
    assert ok.workdir_path == tmp_path.resolve()
    for text, message in (
        ("[frameworks.pytest]\ncommand = 'pytest --junitxml={report}'\ncolour = 1\n", "unknown field `colour`"),
        ("[frameworks.pytest]\ncommand = 'pytest {test} --junitxml={report}'\n", "unknown placeholder {test}"),
        ("[frameworks.pytest]\ncommand = 'pytest --only={codes} --junitxml={report}'\n", "an argument on its own"),
        ("[frameworks.pytest]\ncommand = 'pytest -k {grep}'\n", "never mentions {report}"),
        ("[frameworks.pytest]\ncommand = ''\n", "command is empty"),
        ("name = 'x'\n", "no [frameworks.NAME] table"),
        ("[frameworks.jest]\ncommand = 'npx jest'\nenv = {OUT = '{files}'}\n", "unknown placeholder {files}"),
        ("poll_wait_s = 500\n[frameworks.go]\ncommand='go test'\nreport_path='r.json'\n", "poll_wait_s"),
    ):
        with pytest.raises(AgentConfigError, match=message.replace("[", r"\[").replace("{", r"\{")):
            load_agent_config(write(tmp_path, text))
    fixed = load_agent_config(write(tmp_path, "[frameworks.go]\ncommand = ['go', 'test']\nreport_path = 'r.json'\n"))
    assert fixed.frameworks["go"].report_path == "r.json"
    with pytest.raises(AgentConfigError, match="not found"):
        load_agent_config(tmp_path / "missing.toml")


def test_placeholders_fill_arguments_and_the_environment(tmp_path):
    fw = FrameworkCommand(
        command=["pytest", "{files}", "-k", "{grep}", "--junitxml={report}", "--codes", "{codes}", "{{literal}}"],
        env={"BROWSER": "{browser}-{viewport}"}, grep_join=" or ",
    )
    claimed = job(case("Login works", "TC-1", grep="test_login", file="tests/test_auth.py"),
                  case("test_cart", "TC-2", file="tests/test_auth.py"), case("Search", file="tests/test_search.py"),
                  browser="firefox", viewport="mobile", viewport_width=390)
    scalars, lists = runner.placeholders(claimed, fw, "/tmp/r.xml")
    argv = runner.expand(fw.argv(), scalars, lists)
    assert argv == ["pytest", "tests/test_auth.py", "tests/test_search.py", "-k", "test_login or test_cart or Search",
                    "--junitxml=/tmp/r.xml", "--codes", "TC-1", "TC-2", "{literal}"]
    env = runner.environment(claimed, scalars, lists, fw, base={"PATH": "/bin", "QAHUB_TOKEN": "qh_secret",
                                                                "QAHUB_URL": "http://hub", "HOME": "/root"})
    assert "QAHUB_TOKEN" not in env and "QAHUB_URL" not in env and env["PATH"] == "/bin"
    assert env["BROWSER"] == "firefox-mobile"
    assert {k: env[k] for k in ("QAHUB_BROWSER", "QAHUB_VIEWPORT", "QAHUB_VIEWPORT_WIDTH", "QAHUB_BRANCH",
                                "QAHUB_COMMIT", "QAHUB_PR_NUMBER", "QAHUB_CI_SOURCE", "QAHUB_CODES",
                                "QAHUB_RUN_SHORT_ID")} == {
        "QAHUB_BROWSER": "firefox", "QAHUB_VIEWPORT": "mobile", "QAHUB_VIEWPORT_WIDTH": "390", "QAHUB_BRANCH": "main",
        "QAHUB_COMMIT": "abc123", "QAHUB_PR_NUMBER": "42", "QAHUB_CI_SOURCE": "github-actions",
        "QAHUB_CODES": "TC-1 TC-2", "QAHUB_RUN_SHORT_ID": "abcd2345"}
    assert env["QAHUB_TITLES"] == "Login works\ntest_cart\nSearch" and "QAHUB_VIEWPORT_HEIGHT" not in env


@pytest.mark.parametrize("bad,why", [
    (case("x", grep="--collect-only"), "read as an option"),
    (case("-p evil"), "read as an option"),
    (case("x", file="../outside/test_x.py"), "inside the workdir"),
    (case("x", file="/etc/passwd"), "inside the workdir"),
    (case("x", code="-rf"), "read as an option"),
    (case("x", grep="@args.txt"), "arguments from a file"),
    (case("@args.txt"), "arguments from a file"),
    (case("x", code="@TC-1"), "arguments from a file"),
])
def test_values_from_the_api_that_could_change_the_command_are_refused(bad, why, tmp_path):
    fw = FrameworkCommand(command=["pytest", "{files}", "-k", "{grep}", "{codes}", "--junitxml={report}"])
    with pytest.raises(runner.UnsafeValue, match=why):
        runner.check_test(bad)
    good = case("fine", "TC-9", grep="test_fine", file="tests/test_fine.py")
    safe, refused = runner.split_tests([bad, good])
    assert safe == [good] and [t for t, _ in refused] == [bad] and why in refused[0][1]
    prepared = runner.prepare(job(bad, good), fw, _settings(tmp_path), tmp_path)
    assert prepared.runnable and prepared.refused == refused
    assert prepared.argv == runner.prepare(job(good), fw, _settings(tmp_path), tmp_path).argv
    alone = runner.prepare(job(bad), fw, _settings(tmp_path), tmp_path)
    assert not alone.runnable and len(alone.refused) == 1


def _settings(tmp_path: Path):
    from qahub_lite.agent.config import AgentSettings
    return AgentSettings(base_dir=str(tmp_path), frameworks={})


@pytest.mark.parametrize("command", [
    ["sh", "-c", "pytest -k '{grep}' --junitxml={report}"],
    ["/bin/bash", "-ec", "pytest -k \"{grep}\" --junitxml={report}"],
    ["env", "CI=1", "bash", "-x", "-c", "npx playwright test --grep {grep} > {report}"],
    # An option's value before -c is not the script (the common CI form)
    ["bash", "-o", "pipefail", "-c", "pytest -k '{grep}' --junitxml={report}"],
    ["env", "A=1", "bash", "-euo", "pipefail", "-c", "pytest -k '{grep}' --junitxml={report}"],
    ["cmd", "/c", "npx", "jest", "-t", "{grep}", "--outputFile={report}"],
    ["powershell", "-NoProfile", "-Command", "npx jest -t '{grep}' --outputFile={report}"],
    ["pwsh", "-c", "pytest", "-k", "{titles}", "--junitxml={report}"],
    ["python3", "-c", "import os; os.system('pytest -k {grep}')", "{report}"],
])
def test_placeholders_inside_a_script_a_shell_runs_are_refused_at_load(tmp_path, command):
    path = write(tmp_path, f"[frameworks.pytest]\ncommand = {json.dumps(command)}\n")
    with pytest.raises(AgentConfigError, match=r"runs as code.*\$QAHUB_GREP"):
        load_agent_config(path)


def test_a_title_that_would_inject_a_command_reaches_a_safe_script_as_data(tmp_path):
    """The documented safe form: the script reads the value from the environment, quoted."""
    marker = tmp_path / "pwned"
    title = f"x'; touch {marker}; echo '"
    out = tmp_path / "seen"
    path = write(tmp_path, "[frameworks.pytest]\ncommand = " + json.dumps(
        ["sh", "-c", f'printf "%s" "$QAHUB_GREP" > {out}; touch "$QAHUB_REPORT"']) + "\nreport_path = 'r.xml'\n")
    settings = load_agent_config(path)
    fw = settings.frameworks["pytest"]
    prepared = runner.prepare(job(case(title)), fw, settings, tmp_path)
    outcome = runner.execute(prepared, timeout_s=30, heartbeat_s=30, heartbeat=lambda: None, stop=threading.Event())
    assert outcome.exit_code == 0 and out.read_text() == title and not marker.exists()


def _prepared(tmp_path: Path, code: str) -> runner.Prepared:
    return runner.Prepared(argv=[sys.executable, "-c", code], env=dict(os.environ), cwd=str(tmp_path),
                           report_path=str(tmp_path / "report"), log_path=str(tmp_path / "out.log"))


SLEEPER = (
    "import os, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "open('pids', 'w').write(f'{os.getpid()} {child.pid}')\n"
    "print('started', flush=True)\n"
    "time.sleep(60)\n"
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_cancel_seen_by_a_heartbeat_kills_the_command_and_its_children(tmp_path):
    beats = []

    def heartbeat():
        beats.append(time.monotonic())
        return "the run was canceled" if (tmp_path / "pids").exists() else None

    started = time.monotonic()
    outcome = runner.execute(_prepared(tmp_path, SLEEPER), timeout_s=60, heartbeat_s=0.3, heartbeat=heartbeat,
                             stop=threading.Event())
    assert outcome.canceled and outcome.cancel_reason == "the run was canceled" and time.monotonic() - started < 15
    assert "started" in outcome.output_tail
    for pid in map(int, (tmp_path / "pids").read_text().split()):
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), "a process of the canceled command survived"


def test_timeout_and_stop_kill_the_command_too(tmp_path):
    outcome = runner.execute(_prepared(tmp_path, "import time; time.sleep(60)"), timeout_s=0.5, heartbeat_s=10,
                             heartbeat=lambda: None, stop=threading.Event())
    assert outcome.timed_out and not outcome.canceled
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    outcome = runner.execute(_prepared(tmp_path, "import time; time.sleep(60)"), timeout_s=60, heartbeat_s=10,
                             heartbeat=lambda: None, stop=stop)
    assert outcome.stopped


def test_a_command_that_cannot_start_says_why(tmp_path):
    prepared = _prepared(tmp_path, "")
    prepared.argv = [str(tmp_path / "no-such-runner")]
    outcome = runner.execute(prepared, timeout_s=5, heartbeat_s=1, heartbeat=lambda: None, stop=threading.Event())
    assert outcome.start_error and "no-such-runner" in outcome.start_error


def test_the_documented_example_is_a_valid_agent_toml():
    example = Path(__file__).resolve().parent.parent / "docs" / "agent.example.toml"
    settings = load_agent_config(example)
    assert set(settings.frameworks) == {"pytest", "playwright", "jest", "go"}
    assert settings.frameworks["go"].report_path == "go-test.json"


@pytest.mark.parametrize("command", [
    ["sh", "-c", 'go test -json -run "$QAHUB_GREP" ./... > "$QAHUB_REPORT"'],
    ["sh", "-c", 'cd e2e && pytest -k "$1" --junitxml="$2"', "sh", "{grep}", "{report}"],
    ["bash", "run-tests.sh", "{grep}", "{report}"],
    ["powershell", "-ExecutionPolicy", "Bypass", "-File", "run.ps1", "{grep}", "{report}"],
    ["sh", "-c", "pytest --junitxml={report}"],
])
def test_the_safe_shell_forms_the_docs_show_are_accepted(tmp_path, command):
    load_agent_config(write(tmp_path, f"[frameworks.pytest]\ncommand = {json.dumps(command)}\n"))
