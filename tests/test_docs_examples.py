"""Every command example of the docs runs against a live server (issue: week one, item 6), so
that the docs and the product cannot drift apart again.

A small parser takes the fenced shell blocks of README.md and docs/*.md that call `curl`,
`qahub` or `qa-hub`. Each block runs whole in bash (`set -euo pipefail`, so a failing step or
pipe fails the block) against one real `qahub serve`, in a folder that holds the files the
examples name, with the docs' placeholders replaced by live values (`SUBSTITUTIONS`) and the
variables they assume set (`environment`). `curl` is wrapped to add `--fail-with-body`, so an
answer of 400 or more fails the example instead of printing an error body nobody reads.

Blocks that are a command's synopsis (`qahub upload [PATH ...] [--project ID] ...`) are not
run: their options are checked against the command's own parser, both ways for `upload`, so
that an option the CLI has and the usage block lacks fails here. Blocks that cannot run in a
test are listed in `NOT_RUN`, each with its reason; a block that is neither run, checked nor
listed fails the test, so a new example is run from the day it is written.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import free_port, start_server
from dashboard_data import png

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "corpus" / "generated"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"(^|[\s$(|;&`])(curl|qahub|qa-hub)\s")
FENCE = re.compile(r"^( *)```(\w*)[^\n]*\n(.*?)^\1```", re.S | re.M)

# (file, a fragment of the block) -> why it is not run here.
NOT_RUN = {
    ("docs/operations.md", "useradd --system"):
        "creates a system user and installs a systemd unit: needs root and systemd on the machine "
        "(packaging/qahub.service is checked by tests/test_ops_binary.py)",
    ("docs/operations.md", "systemctl stop qahub"):
        "stops and starts the systemd service around a restore (`qahub restore` itself: tests/test_ops_backup.py)",
    ("docs/operations.md", "qahub serve --config /srv/qahub/qahub.toml"):
        "serves in the foreground until stopped; the README's CI block starts the same server in the "
        "background, waits for /readyz and is run here",
    ("docs/ci.md", "npx jest $FILES"):
        "runs Jest, Playwright and pytest on a project's own tests (npx, a test suite to collect); "
        "the `qahub split` they feed is run by the blocks before it",
    ("docs/moving-a-hub.md", "createdb --host db.internal"):
        "needs a PostgreSQL server and systemd; tests/test_copy.py runs `qahub copy` into a throw-away "
        "PostgreSQL cluster, a server on the copy, and the command line end to end",
    ("docs/moving-a-hub.md", "--to /srv/qahub/data/qahub.db"):
        "copies from a PostgreSQL hub (tests/test_copy.py copies PostgreSQL back to SQLite through the CLI)",
    ("docs/moving-a-hub.md", "pg_dump --format=custom"):
        "needs a PostgreSQL server; tests/test_ops_backup.py runs the pg_dump and pg_restore commands "
        "`qahub backup` and `qahub restore` print, with both commands",
    ("docs/triggers.md", "qahub agent --url"):
        "runs an agent until it is stopped, executing the commands of an agent.toml "
        "(tests/test_agent_e2e.py runs real agents)",
}
# Synopsis blocks: (file, command) whose options are checked against the parser.
SYNOPSES = {("docs/upload.md", "upload"), ("docs/upload.md", "wait")}


@dataclass
class Block:
    file: str  # relative to the repository
    line: int
    text: str

    @property
    def label(self) -> str:
        return f"{self.file}:{self.line}"


def command_blocks() -> list[Block]:
    """Fenced shell blocks (```sh, ```bash, ```console, or untagged) that call curl/qahub/qa-hub."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            lang, body = m.group(2), m.group(3)
            if lang not in ("", "sh", "bash", "console", "shell") or not COMMAND.search(body):
                continue
            if lang == "" and ("─" in body or "┌" in body):
                continue  # a diagram that names the commands, not a shell block
            found.append(Block(str(path.relative_to(ROOT)), text[: m.start()].count("\n") + 1, _dedent(body)))
    return found


def _dedent(body: str) -> str:
    lines = body.splitlines()
    indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
    return "\n".join(x[indent:] for x in lines) + "\n"


def _synopsis(block: Block) -> str | None:
    for file, command in SYNOPSES:
        if block.file == file and re.match(rf"qahub {command} [A-Z\[]", block.text):
            return command
    return None


def _not_run(block: Block) -> str | None:
    reasons = (why for (file, fragment), why in NOT_RUN.items() if file == block.file and fragment in block.text)
    return next(reasons, None)


BLOCKS = command_blocks()
RUN = [b for b in BLOCKS if not _synopsis(b) and not _not_run(b)]


def test_the_parser_finds_the_examples():
    # A parser that finds nothing would pass every test below.
    assert len(BLOCKS) >= 15 and len(RUN) >= 9
    assert any("qa-hub upload" in b.text for b in RUN) and any("curl" in b.text for b in RUN)
    for (file, fragment), why in NOT_RUN.items():
        assert any(b.file == file and fragment in b.text for b in BLOCKS), f"NOT_RUN names no block: {file} {fragment}"
        assert len(why) > 20


# --- the synopses ---------------------------------------------------------------------------


def _parser_options(command: str) -> set[str]:
    from qahub_lite.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    # Hidden options (help=SUPPRESS: old spellings kept working) are not part of the usage.
    return {s for a in sub._actions if a.help != argparse.SUPPRESS
            for s in a.option_strings if s.startswith("--") and s != "--help"}


@pytest.mark.parametrize("block", [b for b in BLOCKS if _synopsis(b)], ids=lambda b: b.label)
def test_a_usage_block_names_the_command_s_options(block):
    command = _synopsis(block)
    shown = set(re.findall(r"(--[a-z][a-z-]*)", block.text))
    options = _parser_options(command)
    assert shown <= options, f"{block.label} shows options `qahub {command}` does not have: {sorted(shown - options)}"
    if command == "upload":  # the full usage: every option of the command is in it
        assert options <= shown, f"{block.label} lacks options of `qahub upload`: {sorted(options - shown)}"


# --- running the examples -------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docs-examples")
    live = start_server(folder / "server")
    with live.client() as http:
        project = http.post("/api/v1/projects", json={"name": "Docs", "slug": "docs"}).json()
        shop = http.post("/api/v1/projects", json={"name": "Shop", "slug": "shop"}).json()
        # The identity, CI and export pages name their project `web-shop` and a run `7f3k2p9q`.
        web_shop = http.post("/api/v1/projects", json={"name": "Web shop", "slug": "web-shop"}).json()
        web_run = http.post("/api/v1/ingest", json={"project_id": web_shop["id"], "ci": {"branch": "main"},
                                                    "results": [{"title": "t", "status": "FAILED"}]}).json()
        case = http.post(f"/api/v1/projects/{project['id']}/test-cases",
                         json={"title": "Login", "code": "TC-900"}).json()
        http.post("/api/v1/ingest", json={"project_id": shop["id"], "ci": {"branch": "main"},
                                          "results": [{"title": "t", "status": "PASSED"}]})
        # A test with a history: the docs read TC-900's days.
        http.post("/api/v1/ingest", json={"project_id": project["id"],
                                          "results": [{"test_case_code": "TC-900", "status": "PASSED"}]})
        # $RUN, and the run before it on main (OTHER_RUN), for triage.md: the second has two
        # kinds of failure (their signatures stand in for the page's example hashes) and TC-042,
        # the test the page quarantines.
        http.post(f"/api/v1/projects/{project['id']}/test-cases", json={"title": "Checkout", "code": "TC-042"})
        passing = [{"test_case_code": "TC-900", "status": "PASSED"}, {"test_case_code": "TC-042", "status": "PASSED"},
                   {"title": "pays", "status": "PASSED"}]
        base = http.post("/api/v1/ingest", json={"project_id": project["id"], "ci": {"branch": "main"},
                                                 "results": passing}).json()
        run = http.post("/api/v1/ingest", json={"project_id": project["id"], "ci": {"branch": "main"}, "results": [
            passing[0],
            {"test_case_code": "TC-042", "status": "FAILED", "error_message": "TimeoutError: waited 5003ms for #submit"},
            {"title": "pays", "status": "FAILED", "error_message": "AssertionError: expected 200, got 500"},
        ]}).json()
        groups = http.get(f"/api/v1/runs/{run['run_id']}/failures").json()["data"]
    ids = {"PROJECT": project["id"], "CASE": case["id"], "RUN": run["run_id"], "WEB_RUN": web_run["short_id"],
           "OTHER_RUN": base["run_id"], "SIGNATURES": [g["signature"] for g in groups]}
    yield live, ids, folder
    live.stop()


def _workdir(folder: Path, live) -> Path:
    """The files the examples name, in a fresh folder, and the `curl` wrapper."""
    work = folder / f"work-{len(list(folder.glob('work-*')))}"
    (work / "results").mkdir(parents=True)
    shutil.copy(CORPUS / "pytest" / "pytest-junit-xunit2-default.xml", work / "results" / "junit.xml")
    shutil.copytree(work / "results", work / "reports")
    (work / "build" / "test-results" / "test").mkdir(parents=True)
    for name in ("pytest-junit-xunit2-default.xml", "pytest-junit-xunit2-system-out.xml"):
        shutil.copy(CORPUS / "pytest" / name, work / "build" / "test-results" / "test" / name)
    shutil.copy(CORPUS / "playwright" / "playwright-results.json", work / "playwright-results.json")
    shutil.copy(CORPUS / "jest" / "jest-results.json", work / "jest-results.json")
    junit = CORPUS / "pytest" / "pytest-junit-xunit2-default.xml"
    for name in ("junit.xml", "report-311.xml", "report-312.xml", "build/test-results/pytest.xml"):
        shutil.copy(junit, work / name)
    # A reader runs the examples from a checkout (`git rev-parse HEAD`, the root an upload finds).
    git = ["git", "-c", "user.name=docs", "-c", "user.email=docs@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=work, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "docs examples"], cwd=work, check=True)
    (work / "screenshot.png").write_bytes(png())
    shim = work / ".bin"
    shim.mkdir()
    real_curl = shutil.which("curl")
    # --fail-with-body unless the example fails on errors itself (-f, as in `curl -sf`).
    (shim / "curl").write_text(
        "#!/bin/sh\nfail=--fail-with-body\nfor a in \"$@\"; do case \"$a\" in\n"
        "  --fail|--fail-with-body) fail= ;;\n  --*) ;;\n  -*f*) fail= ;;\nesac; done\n"
        f'exec {real_curl} $fail --max-time 60 "$@"\n'
    )
    (shim / "curl").chmod(0o755)
    return work


def substitutions(live, ids: dict, work: Path) -> list[tuple[str, str]]:
    """The docs' placeholders, and what stands in for them here. Order matters: longer first."""
    port = str(free_port())
    return [
        ("http://127.0.0.1:9090", f"http://127.0.0.1:{port}"),  # the README's throw-away server
        ("--port 9090", f"--port {port}"),
        ("http://127.0.0.1:8080", live.url),  # `make run`'s address
        ("https://your-qahub.com", live.url),  # seed 000's example host
        ("https://qahub.example.com", live.url),
        ("qh_abc_secret", live.admin_key),  # seed 000's example key
        ("qh_...", live.admin_key),  # "the key printed at first start"
        ("clxyz123", ids["PROJECT"]),  # seed 000's example project id
        ("5f0c2a9e1b7d4c38", ids["SIGNATURES"][0]),  # triage.md's example signatures
        ("9a41e0b3c2d5f617", ids["SIGNATURES"][1]),
        ("OTHER_RUN", ids["OTHER_RUN"]),
        ("7f3k2p9q", ids["WEB_RUN"]),  # a run's short id on the CI and export pages
        ("/var/lib/qahub/qahub.toml", str(live.config_path)),  # the installed server's config
        ("/srv/qahub", str(work / "srv")),
        ("/tmp/qa", str(work / "tmp-qa")),
        ("/mnt/b/", str(work / "mnt") + "/"),
    ]


def environment(live, ids: dict, work: Path) -> dict:
    """Variables the examples assume set, as a reader following the page would have them."""
    venv_bin = Path(sys.executable).parent
    (work / "mnt").mkdir(exist_ok=True)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("QAHUB")},
        "PATH": f"{work / '.bin'}:{venv_bin}:{os.environ['PATH']}",
        "QAHUB": live.url, "KEY": live.admin_key,
        "QAHUB_URL": live.url, "QAHUB_TOKEN": live.admin_key, "QAHUB_PROJECT": ids["PROJECT"],
        # Commands run "on the server" (keys, users, backup, sweep) find its config here.
        "QAHUB_CONFIG": str(live.config_path),
        "PROJECT": ids["PROJECT"], "CASE": ids["CASE"], "RUN": ids["RUN"],
        "BRANCH": "main", "PASSWORD": "a password for the docs' viewer 1",
        "GITHUB_STEP_SUMMARY": str(work / "step-summary.md"),  # as a GitHub Actions step has it
    }


@pytest.mark.e2e
@pytest.mark.parametrize("block", RUN, ids=lambda b: b.label)
def test_the_example_runs(block, docs_server):
    live, ids, folder = docs_server
    work = _workdir(folder, live)
    script = block.text
    for placeholder, value in substitutions(live, ids, work):
        script = script.replace(placeholder, value)
    # Output to files, not pipes: a server the block starts in the background keeps a pipe open.
    with open(work / "stdout", "wb") as stdout, open(work / "stderr", "wb") as stderr:
        proc = subprocess.Popen(
            ["bash", "-c", "set -euo pipefail\n" + script], cwd=work, env=environment(live, ids, work),
            stdout=stdout, stderr=stderr, start_new_session=True,
        )
    try:
        proc.wait(timeout=120)
    finally:
        # Anything the block left running (the README's `qahub serve ... &`) goes with it.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    out, err = ((work / name).read_text(errors="replace") for name in ("stdout", "stderr"))
    assert proc.returncode == 0, (
        f"{block.label} failed (exit {proc.returncode}):\n{script}\n"
        f"--- stdout\n{out[-3000:]}\n--- stderr\n{err[-3000:]}"
    )
    assert httpx.get(f"{live.url}/readyz", timeout=10).status_code == 200


def test_every_block_is_run_checked_or_excused():
    for block in BLOCKS:
        assert block in RUN or _synopsis(block) or _not_run(block), block.label
