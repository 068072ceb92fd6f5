"""End to end: a real `qahub serve` process and real `qahub agent` processes whose command runs
a small real pytest suite (one test passes, one fails, one is flaky and passes on its retry,
one sleeps), triggered through both dialects; and seed 004's own scripts (bash + curl + jq,
the GitHub Actions job's commands, the Node.js script), cut out of the seed document and run
unchanged but for the base URL, the key, the ids and a shorter poll interval."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import qahub_command, run_sql, start_server
from qahub_lite.config import load_config
from seeds.examples import seed_text

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.engines]

SUITE = '''
import os, pathlib, time
import pytest


def test_pass(record_property):
    video = pathlib.Path("recording.webm")
    video.write_bytes(b"\\x1a\\x45\\xdf\\xa3" + b"\\x00" * 64)  # a WebM header: a video to the server
    print("[[ATTACHMENT|" + str(video.resolve()) + "]]")


def test_fail(record_property):
    record_property("qa_hub_case", "E2E-FAIL")  # matched by code, not by name
    assert 1 + 1 == 3, "arithmetic is broken"


@pytest.mark.flaky(reruns=2)
def test_flaky():
    marker = pathlib.Path(os.environ["QAHUB_JOB_ID"] + ".flaky")
    if not marker.exists():
        marker.write_text("failed once")
        raise AssertionError("first attempt fails")


def test_sleep():
    pathlib.Path(os.environ["QAHUB_JOB_ID"] + ".pid").write_text(str(os.getpid()))
    pathlib.Path(os.environ["QAHUB_JOB_ID"] + ".env").write_text(
        os.environ["QAHUB_BROWSER"] + " " + os.environ["QAHUB_VIEWPORT"] + " " + os.environ.get("QAHUB_BRANCH", "")
    )
    time.sleep(120)
'''


def agent_toml(workdir: Path, framework: str, name: str) -> str:
    # Plugin autoloading off: this venv's plugins (hypothesis, ...) take seconds to import, and
    # the suite needs only pytest-rerunfailures.
    command = [sys.executable, "-m", "pytest", "-q", "-p", "pytest_rerunfailures", "-p", "no:cacheprovider",
               "-o", "junit_logging=system-out", "-k", "{grep}", "--junitxml={report}"]
    return (
        f'name = "{name}"\nworkdir = "{workdir}"\npoll_wait_s = 5\n'
        f'[frameworks.{framework}]\ncommand = {json.dumps(command)}\ngrep_join = " or "\ntimeout_s = 120\n'
        'env = { PYTEST_DISABLE_PLUGIN_AUTOLOAD = "1" }\n'
    )


def start_agent(folder: Path, server, key: str, framework: str, name: str) -> subprocess.Popen:
    config = folder / f"{name}.toml"
    config.write_text(agent_toml(folder / "suite", framework, name))
    log = open(folder / f"{name}.log", "wb")
    return subprocess.Popen(
        [*qahub_command(), "agent", "--url", server.url, "--config", str(config)],
        env={**os.environ, "QAHUB_TOKEN": key}, stdout=log, stderr=subprocess.STDOUT,
    )


def wait_for(condition, timeout=60.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


class Hub:
    """The server, its agents, and the library the tests trigger."""

    def __init__(self, folder: Path, storage_url: str = ""):
        self.folder = folder
        (folder / "suite").mkdir(parents=True)
        (folder / "suite" / "test_suite.py").write_text(SUITE)
        # Short leases so that a killed agent's tests time out within seconds; Qualigate's
        # 30-a-minute limit off, because the tests poll fast.
        self.server = start_server(
            folder / "server", "[jobs]\nlease_s = 3\ncheck_interval_s = 1\n[rate_limits]\nqualigate = 0\n",
            storage_url=storage_url,
        )
        self.key = json.loads(subprocess.run(
            [*qahub_command(), "keys", "create", "--scope", "write", "--name", "agents",
             "--config", str(self.server.config_path), "--json"],
            capture_output=True, text=True, check=True,
        ).stdout)["key"]
        self.http = self.server.client()
        self.agents: dict[str, subprocess.Popen] = {}
        project = self.post("/api/v1/projects", {"name": "E2E shop"})
        self.project_id = project["id"]
        self.suites = {name: self.post(f"/api/v1/projects/{self.project_id}/suites", {"name": name})["id"]
                       for name in ("Red", "Green", "Slow", "Doomed")}
        self.cases = {}
        for code, grep, suites, framework in (
            ("E2E-PASS", "test_pass", ["Red", "Green"], "pytest"),
            ("E2E-FAIL", "test_fail", ["Red"], "pytest"),
            ("E2E-FLAKY", "test_flaky", ["Red", "Green"], "pytest"),
            ("E2E-SLEEP", "test_sleep", ["Slow"], "pytest"),
            ("E2E-DOOMED", "test_sleep", ["Doomed"], "pytest-doomed"),
        ):
            # A test case lives in one suite: the Green copies are separate cases.
            for suite in suites:
                body = {"title": f"{grep} ({suite})", "code": code if suite != "Green" else f"{code}-G",
                        "suite_id": self.suites[suite], "automation": {"framework": framework, "grep": grep}}
                self.cases[body["code"]] = self.post(f"/api/v1/projects/{self.project_id}/test-cases", body)["id"]

    def post(self, path, body, expect=201):
        r = self.http.post(path, json=body)
        assert r.status_code == expect, r.text
        return r.json()

    def get(self, path):
        r = self.http.get(path)
        assert r.status_code == 200, r.text
        return r.json()

    def poll(self, path, timeout=60.0, field="status", running=("pending", "running")):
        return wait_for(lambda: (lambda b: b if b[field] not in running else None)(self.get(path)),
                        timeout=timeout, what=path)

    def close(self):
        for proc in self.agents.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(15)
        for pid_file in (self.folder / "suite").glob("*.pid"):  # a test left behind by a killed agent
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        self.http.close()
        assert self.server.stop() == 0


@pytest.fixture(scope="module")
def hub(tmp_path_factory, module_storage_url):
    hub = Hub(tmp_path_factory.mktemp("agent-e2e"), module_storage_url)
    hub.agents["one"] = start_agent(hub.folder, hub.server, hub.key, "pytest", "agent-one")
    hub.agents["two"] = start_agent(hub.folder, hub.server, hub.key, "pytest", "agent-two")
    try:
        yield hub
    finally:
        hub.close()


def test_qualigate_suite_trigger_poll_and_results(hub):
    queued = hub.post("/api/v1/trigger", {
        "test_suite_id": hub.suites["Red"], "browserType": "firefox", "viewportPreset": "mobile",
        "context": {"source": "github-actions", "branch": "main", "sha": "abc123", "pr_number": "42"},
    })
    assert queued["status"] == "pending" and queued["test_count"] == 3
    # The agents may not have asked for work yet: then the answer adds "no agent serves framework pytest".
    assert queued["message"].startswith("3 tests queued successfully")
    run_id = queued["suite_run_id"]
    done = hub.poll(f"/api/v1/trigger?suite_run_id={run_id}")
    assert (done["status"], done["total_tests"], done["passed_tests"], done["failed_tests"]) == ("failed", 3, 2, 1)
    assert done["started_at"] and done["completed_at"] and done["duration_ms"] >= 0

    results = hub.get(f"/api/v1/results?suite_run_id={run_id}")
    by_name = {r["test_case_name"]: r for r in results["results"]}
    assert results["suite_name"] == "Red" and results["status"] == "failed"
    assert by_name["test_fail (Red)"]["status"] == "failed"
    assert "arithmetic is broken" in by_name["test_fail (Red)"]["error_message"]
    assert by_name["test_flaky (Red)"]["status"] == "passed"
    assert all(r["dashboard_url"] == f"{hub.server.url}/runs/{run_id}" for r in results["results"])

    # The flaky test kept both attempts; the passing one's video became its video_url.
    native = {r["test_case_code"]: r for r in hub.get(f"/api/v1/runs/{run_id}/results")["data"]}
    assert native["E2E-FLAKY"]["flaky"] is True and native["E2E-FLAKY"]["attempts"] == 2
    assert native["E2E-PASS"]["status"] == "PASSED"
    single = hub.get(f"/api/v1/trigger?test_run_id={by_name['test_pass (Red)']['test_run_id']}")
    assert single["status"] == "passed" and single["steps_completed"] == single["steps_total"] == 1
    video = hub.http.get(single["video_url"].replace(hub.server.url, ""))
    assert video.status_code == 200 and video.headers["content-type"] == "video/webm"

    run = hub.get(f"/api/v1/runs/{run_id}")
    assert (run["source"], run["ci"]["branch"], run["ci"]["pr_number"]) == ("qualigate", "main", "42")


def test_qatech_start_poll_and_rerun_only_the_failed(hub):
    started = hub.post("/v1/run", {"testPlanShortId": hub.suites["Red"], "projectShortId": hub.project_id},
                       expect=200)
    assert started["success"] and started["run"]["testCount"] == 3
    assert started["run"]["testPlan"] == {"name": "Red", "shortId": hub.suites["Red"]}
    short = started["run"]["shortId"]
    done = hub.poll(f"/v1/run/{short}", running=("INITIATED", "RUNNING"))
    assert (done["status"], done["result"], done["runTestCases"]) == ("COMPLETED", "FAILED", [])
    failed = hub.get(f"/v1/run/{short}?testCases=failed")["runTestCases"]
    assert [(c["shortId"], c["result"]) for c in failed] == [("E2E-FAIL", "FAILED")]

    rerun = hub.post(f"/v1/run/{short}", {"failedOnly": True}, expect=200)["run"]
    assert rerun["testCount"] == 1 and rerun["shortId"] != short
    again = hub.poll(f"/v1/run/{rerun['shortId']}?testCases=all", running=("INITIATED", "RUNNING"))
    assert again["result"] == "FAILED"
    assert [c["shortId"] for c in again["runTestCases"]] == ["E2E-FAIL"]


def test_a_test_with_an_unsafe_grep_is_refused_alone_and_the_rest_of_its_job_runs(hub):
    suite = hub.post(f"/api/v1/projects/{hub.project_id}/suites", {"name": "Mixed"})["id"]
    cases = {}
    for code, grep in (("MIX-OPT", "--collect-only"), ("MIX-AT", "@args.txt"), ("MIX-PASS", "test_pass")):
        cases[code] = hub.post(f"/api/v1/projects/{hub.project_id}/test-cases", {
            "title": f"{code} case", "code": code, "suite_id": suite,
            "automation": {"framework": "pytest", "grep": grep},
        })["id"]
    run_id = hub.post("/api/v1/trigger", {"test_suite_id": suite})["suite_run_id"]
    hub.poll(f"/api/v1/trigger?suite_run_id={run_id}")
    native = {r["test_case_code"]: r for r in hub.get(f"/api/v1/runs/{run_id}/results")["data"]}
    assert native["MIX-PASS"]["status"] == "PASSED"
    assert native["MIX-OPT"]["status"] == "BROKEN" and "read as an option" in native["MIX-OPT"]["error_message"]
    assert native["MIX-AT"]["status"] == "BROKEN" and "'@'" in native["MIX-AT"]["error_message"]


def test_several_agents_share_the_queue_and_each_job_goes_to_one(hub):
    ids = [hub.post("/api/v1/trigger", {"test_case_id": hub.cases[code]})["test_run_id"]
           for code in ("E2E-PASS", "E2E-FLAKY", "E2E-PASS-G", "E2E-FLAKY-G") * 2]
    for test_run_id in ids:
        assert hub.poll(f"/api/v1/trigger?test_run_id={test_run_id}")["status"] == "passed"
    aggregated = hub.get(f"/api/v1/results?test_run_ids={','.join(ids)}")
    assert (aggregated["total_tests"], aggregated["passed_tests"], aggregated["status"]) == (8, 8, "passed")
    # An agent reports a job's results, then says it is done: a second request, so a test run
    # can read "passed" a moment before its job reads DONE.
    deadline = time.monotonic() + 15
    while True:
        rows = run_sql(
            load_config(hub.server.config_path, environ={}),
            "SELECT j.status, a.name FROM jobs j JOIN executions e ON e.job_id = j.id LEFT JOIN agents a "
            f"ON a.id = j.agent_id WHERE e.id IN ({','.join('?' * len(ids))})", ids,
        )
        if {status for status, _ in rows} != {"DONE", "RUNNING"} or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(rows) == 8 and {status for status, _ in rows} == {"DONE"}
    assert {name for _, name in rows} <= {"agent-one", "agent-two"}
    listed = {a["name"]: a for a in hub.get("/api/v1/agents")["data"]}
    assert {"agent-one", "agent-two"} <= set(listed)
    assert listed["agent-one"]["frameworks"] == ["pytest"] and listed["agent-one"]["last_heartbeat_at"]


def test_an_agent_whose_key_cannot_write_stops_with_exit_1(hub):
    read_key = json.loads(subprocess.run(
        [*qahub_command(), "keys", "create", "--scope", "read", "--config", str(hub.server.config_path), "--json"],
        capture_output=True, text=True, check=True,
    ).stdout)["key"]
    proc = start_agent(hub.folder, hub.server, read_key, "pytest", "agent-read-only")
    assert proc.wait(30) == 1
    assert "refuses this agent's key" in (hub.folder / "agent-read-only.log").read_text()


def test_cancel_stops_a_long_job_and_the_agent_kills_the_command(hub):
    queued = hub.post("/api/v1/trigger", {"test_suite_id": hub.suites["Slow"], "browserType": "webkit",
                                          "context": {"branch": "feature/x"}})
    run_id = queued["suite_run_id"]
    job_id = wait_for(lambda: next((p.stem for p in (hub.folder / "suite").glob("*.pid")
                                    if (hub.folder / "suite" / f"{p.stem}.env").exists()), None),
                      what="the sleeping test to start")
    pid = int((hub.folder / "suite" / f"{job_id}.pid").read_text())
    assert (hub.folder / "suite" / f"{job_id}.env").read_text() == "webkit desktop feature/x"
    assert hub.get(f"/api/v1/trigger?suite_run_id={run_id}")["status"] == "running"

    assert hub.post(f"/api/v1/runs/{run_id}/cancel", None, expect=200)["status"] == "CANCELED"
    assert hub.get(f"/api/v1/trigger?suite_run_id={run_id}")["status"] == "canceled"

    def gone():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, timeout=15, what="the agent to kill the canceled command")
    (hub.folder / "suite" / f"{job_id}.pid").unlink()
    results = hub.get(f"/api/v1/results?suite_run_id={run_id}")
    assert [r["status"] for r in results["results"]] == ["canceled"]
    assert hub.get(f"/v1/run/{run_id}")["status"] == "CANCELLED"


def test_a_killed_agent_s_tests_time_out(hub):
    hub.agents["doomed"] = start_agent(hub.folder, hub.server, hub.key, "pytest-doomed", "agent-doomed")
    queued = hub.post("/api/v1/trigger", {"test_case_id": hub.cases["E2E-DOOMED"]})
    test_run_id = queued["test_run_id"]
    wait_for(lambda: hub.get(f"/api/v1/trigger?test_run_id={test_run_id}")["status"] == "running",
             what="the doomed agent to start the test")
    hub.agents["doomed"].kill()
    hub.agents["doomed"].wait()
    done = hub.poll(f"/api/v1/trigger?test_run_id={test_run_id}", timeout=30)
    assert done["status"] == "timeout"
    assert "agent-doomed" in done["error_message"] and "stopped renewing its lease" in done["error_message"]
    listed = {a["name"]: a for a in hub.get("/api/v1/agents")["data"]}
    assert listed["agent-doomed"]["status"] != "busy"
    if shutil.which("jq") is None or shutil.which("curl") is None:
        return  # the seed's bash script needs them (its own test says so when it skips)
    # Seed 004's bash script stops on it with exit 1.
    script = _bash_poll_script(hub.server.url)
    result = subprocess.run(["bash", "-c", script, "poll", test_run_id], capture_output=True, text=True,
                            env={**os.environ, "QUALIGATE_API_KEY": hub.server.admin_key}, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Test timeout" in result.stdout


# --- seed 004's own scripts ---------------------------------------------------------------


def _between(text: str, start: str, end: str) -> str:
    begin = text.index(start) + len(start)
    return text[begin : text.index(end, begin)]


def _bash_poll_script(base_url: str) -> str:
    script = _between(seed_text("004"), "Polling Script (Bash)\n", "/api/v1/results\nGet aggregated")
    return script.replace("https://qualigate.app", base_url).replace("sleep 10", "sleep 0.2")


def _github_actions_steps(base_url: str) -> list[str]:
    workflow = _between(seed_text("004"), "GitHub Actions Workflow\n", "Node.js Script (Trigger + Poll)")
    steps = re.split(r"^- name: .*$", workflow, flags=re.MULTILINE)[1:]
    runs = [step.split("run: |\n", 1)[1] for step in steps]
    return [run.replace("https://qualigate.app", base_url).replace("sleep 10", "sleep 0.2") for run in runs]


def _node_script(base_url: str, suite_id: str) -> str:
    script = _between(seed_text("004"), "Node.js Script (Trigger + Poll)\n", "Need Help?")
    # The seed's script is TypeScript; node runs JavaScript: drop its three type annotations.
    for typed, plain in (("suiteId: string", "suiteId"), (": Promise<boolean>", ""),
                         ("process.env.QUALIGATE_API_KEY!", "process.env.QUALIGATE_API_KEY")):
        assert typed in script
        script = script.replace(typed, plain)
    return (script.replace("https://qualigate.app", base_url).replace('"your-suite-uuid"', json.dumps(suite_id))
            .replace("10000", "200"))


def _run_github_actions_job(hub, suite_id: str, folder: Path) -> subprocess.CompletedProcess:
    """The job's two `run:` steps as a runner executes them: `${{ }}` expressions substituted,
    $GITHUB_OUTPUT a file whose `run_id=` line becomes steps.trigger.outputs.run_id."""
    trigger, wait = _github_actions_steps(hub.server.url)
    output = folder / "github_output"
    output.write_text("")
    values = {
        "secrets.QUALIGATE_API_KEY": hub.server.admin_key, "vars.QUALIGATE_SUITE_ID": suite_id,
        "github.ref_name": "main", "github.sha": "0123abcd", "github.event.pull_request.number": "",
        "github.repository": "acme/shop",
    }

    def substitute(text: str) -> str:
        return re.sub(r"\$\{\{ ([\w.]+) \}\}", lambda m: values[m.group(1)], text)

    env = {**os.environ, "GITHUB_OUTPUT": str(output)}
    first = subprocess.run(["bash", "-e", "-c", substitute(trigger)], capture_output=True, text=True, env=env,
                           timeout=60)
    assert first.returncode == 0, first.stdout + first.stderr
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    values["steps.trigger.outputs.run_id"] = outputs["run_id"]
    return subprocess.run(["bash", "-e", "-c", substitute(wait)], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.skipif(shutil.which("jq") is None or shutil.which("curl") is None,
                    reason="seed 004's shell scripts need curl and jq (.ci/run installs them)")
def test_seed_bash_polling_script_exits_0_for_a_pass_and_1_for_a_failure(hub):
    script = _bash_poll_script(hub.server.url)
    env = {**os.environ, "QUALIGATE_API_KEY": hub.server.admin_key}
    for code, expected in (("E2E-PASS", 0), ("E2E-FAIL", 1)):
        test_run_id = hub.post("/api/v1/trigger", {"test_case_id": hub.cases[code]})["test_run_id"]
        result = subprocess.run(["bash", "-c", script, "poll", test_run_id], capture_output=True, text=True,
                                env=env, timeout=120)
        assert result.returncode == expected, result.stdout + result.stderr
        assert ("Test passed!" if expected == 0 else "Test failed") in result.stdout


@pytest.mark.skipif(shutil.which("jq") is None or shutil.which("curl") is None,
                    reason="seed 004's shell scripts need curl and jq (.ci/run installs them)")
def test_seed_github_actions_job_exits_0_for_a_passing_suite_and_1_for_a_failing_one(hub, tmp_path):
    green = _run_github_actions_job(hub, hub.suites["Green"], tmp_path)
    assert green.returncode == 0, green.stdout + green.stderr
    red = _run_github_actions_job(hub, hub.suites["Red"], tmp_path)
    assert red.returncode == 1, red.stdout + red.stderr
    assert "Tests failed" in red.stdout


@pytest.mark.skipif(shutil.which("node") is None, reason="seed 004's Node.js script needs node 18 or newer")
def test_seed_node_script_exits_0_for_a_passing_suite_and_1_for_a_failing_one(hub, tmp_path):
    env = {**os.environ, "QUALIGATE_API_KEY": hub.server.admin_key}
    for suite, expected, line in (("Green", 0, "Passed: 2/2"), ("Red", 1, "Failed: 1/3")):
        script = tmp_path / f"trigger_{suite}.mjs"
        script.write_text(_node_script(hub.server.url, hub.suites[suite]))
        result = subprocess.run(["node", str(script)], capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == expected, result.stdout + result.stderr
        assert line in result.stdout


# --- the agent embedded in `qahub serve` ---------------------------------------------------


def test_embedded_agent_runs_triggered_tests(tmp_path, storage_url):
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_suite.py").write_text(SUITE)
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    (server_dir / "agent.toml").write_text(agent_toml(tmp_path / "suite", "pytest", "laptop"))
    server = start_server(server_dir, "[agent]\nenabled = true\n[rate_limits]\nqualigate = 0\n", storage_url=storage_url)
    try:
        with server.client() as http:
            project = http.post("/api/v1/projects", json={"name": "Laptop"}).json()
            case = http.post(f"/api/v1/projects/{project['id']}/test-cases", json={
                "title": "flaky", "automation": {"framework": "pytest", "grep": "test_flaky"}}).json()
            test_run_id = http.post("/api/v1/trigger", json={"test_case_id": case["id"]}).json()["test_run_id"]
            done = wait_for(lambda: (lambda b: b if b["status"] not in ("pending", "running") else None)(
                http.get(f"/api/v1/trigger?test_run_id={test_run_id}").json()), what="the embedded agent")
            assert done["status"] == "passed"
            assert [a["name"] for a in http.get("/api/v1/agents").json()["data"]] == ["laptop"]
    finally:
        assert server.stop() == 0
