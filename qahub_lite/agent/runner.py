"""Running one job's command: placeholders filled in, CI context and browser settings in the
environment, heartbeats while it runs, and the whole process group killed on cancel, on
timeout, or when the agent stops.

Values that come from the server (test titles, codes, grep patterns, files, browser) are data,
never code: the command runs without a shell, each value is one argument, and a value that
would be read as an option (a leading "-"), as an argument file (a leading "@", which pytest,
javac and dotnet expand) or a file outside the workdir is refused. A test with such a value is
refused on its own (it ends BROKEN saying why); the job's other tests still run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import msgspec

from ..wire import ClaimedJob, JobTest
from .config import LISTS, PLACEHOLDER, AgentSettings, FrameworkCommand

# Variables of the agent's own environment a test command must not see: the agent's key (tests
# run arbitrary code), and the variables that would make the qahub pytest plugin upload the
# results a second time.
_WITHHELD = ("QAHUB_TOKEN", "QAHUB_URL", "QAHUB_PROJECT")
OUTPUT_TAIL_BYTES = 4000
KILL_GRACE_S = 5.0


class UnsafeValue(Exception):
    """A value from the job that the agent refuses to pass to the command."""


class Prepared(msgspec.Struct):
    argv: list[str]
    env: dict[str, str]
    cwd: str
    report_path: str
    log_path: str
    # Tests left out of the command because one of their values is unsafe, with the reason.
    refused: list[tuple[JobTest, str]] = []
    # False when every test was refused: there is nothing to run.
    runnable: bool = True


class Outcome(msgspec.Struct):
    exit_code: int | None
    canceled: bool = False  # the server said stop (run canceled, or our lease was taken away)
    cancel_reason: str | None = None
    timed_out: bool = False
    stopped: bool = False  # the agent itself is stopping
    start_error: str | None = None
    output_tail: str = ""


def _safe(value: str, what: str) -> str:
    if value.startswith("-"):
        raise UnsafeValue(f"refusing {what} {value!r}: it would be read as an option by the command")
    if value.startswith("@"):
        raise UnsafeValue(f"refusing {what} {value!r}: a leading '@' makes many tools read arguments from a file")
    if "\x00" in value:
        raise UnsafeValue(f"refusing {what} {value!r}: it contains a NUL character")
    return value


def _safe_file(value: str) -> str:
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or value.startswith("~"):
        raise UnsafeValue(f"refusing file {value!r}: a test's file must be a path inside the workdir")
    return _safe(value, "file")


def check_test(test: JobTest) -> None:
    """Raises UnsafeValue when one of the test's values could change the command."""
    _safe(test.grep or test.title, "grep pattern")
    _safe(test.title, "title")
    if test.code:
        _safe(test.code, "code")
    if test.file:
        _safe_file(test.file)


def split_tests(tests: list[JobTest]) -> tuple[list[JobTest], list[tuple[JobTest, str]]]:
    """(tests whose values are safe, [(refused test, reason)])."""
    safe, refused = [], []
    for test in tests:
        try:
            check_test(test)
        except UnsafeValue as exc:
            refused.append((test, str(exc)))
        else:
            safe.append(test)
    return safe, refused


def placeholders(job: ClaimedJob, fw: FrameworkCommand, report: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(scalars, lists) of a job's placeholder values."""
    tests = job.tests
    scalars = {
        "report": report,
        "grep": fw.grep_join.join(_safe(t.grep or t.title, "grep pattern") for t in tests),
        "framework": job.framework,
        "run_id": job.run_id,
        "job_id": job.id,
        "browser": job.options.browser,
        "viewport": job.options.viewport,
    }
    lists = {
        "codes": [_safe(t.code, "code") for t in tests if t.code],
        "titles": [_safe(t.title, "title") for t in tests],
        "files": list(dict.fromkeys(_safe_file(t.file) for t in tests if t.file)),
    }
    return scalars, lists


def _fill(template: str, scalars: dict[str, str]) -> str:
    # "{{" and "}}" are literal braces, as in Python's str.format.
    parts = template.split("{{")
    filled = [PLACEHOLDER.sub(lambda m: scalars[m.group(1)], p.replace("}}", "\x01")) for p in parts]
    return "{".join(filled).replace("\x01", "}")


def expand(argv: list[str], scalars: dict[str, str], lists: dict[str, list[str]]) -> list[str]:
    out: list[str] = []
    for arg in argv:
        name = arg[1:-1] if arg.startswith("{") and arg.endswith("}") else None
        if name in LISTS:
            out.extend(lists[name])
            continue
        value = _fill(arg, scalars)
        if value[:1] in ("-", "@") and arg[:1] not in ("-", "@"):
            raise UnsafeValue(f"refusing argument {value!r}: a value from the job would be read as an option")
        out.append(value)
    return out


def environment(job: ClaimedJob, scalars: dict[str, str], lists: dict[str, list[str]], fw: FrameworkCommand,
                base: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _WITHHELD}
    o, ci = job.options, job.ci
    values = {
        "QAHUB_JOB_ID": job.id, "QAHUB_RUN_ID": job.run_id, "QAHUB_RUN_SHORT_ID": job.run_short_id,
        "QAHUB_FRAMEWORK": job.framework, "QAHUB_REPORT": scalars["report"], "QAHUB_GREP": scalars["grep"],
        "QAHUB_CODES": " ".join(lists["codes"]), "QAHUB_TITLES": "\n".join(lists["titles"]),
        "QAHUB_FILES": "\n".join(lists["files"]),
        "QAHUB_BROWSER": o.browser, "QAHUB_VIEWPORT": o.viewport,
        "QAHUB_VIEWPORT_WIDTH": o.viewport_width, "QAHUB_VIEWPORT_HEIGHT": o.viewport_height,
        "QAHUB_CI_SOURCE": ci.source, "QAHUB_BRANCH": ci.branch, "QAHUB_COMMIT": ci.sha,
        "QAHUB_PR_NUMBER": ci.pr_number, "QAHUB_PR_URL": ci.pr_url, "QAHUB_REPOSITORY": ci.repository,
    }
    env.update({k: str(v) for k, v in values.items() if v is not None})
    for name, template in fw.env.items():
        env[name] = _fill(template, scalars)
    return env


def prepare(job: ClaimedJob, fw: FrameworkCommand, settings: AgentSettings, job_dir: Path) -> Prepared:
    """The command line, environment and report path of a job. Raises UnsafeValue."""
    workdir = settings.workdir_path
    if fw.report_path:
        report = (workdir / fw.report_path).resolve()
        if report.is_dir():  # an Allure results folder
            shutil.rmtree(report)
        else:
            report.unlink(missing_ok=True)
    else:
        report = job_dir / "report"
    safe, refused = split_tests(job.tests)
    job = msgspec.structs.replace(job, tests=safe)
    scalars, lists = placeholders(job, fw, str(report))
    return Prepared(
        argv=expand(fw.argv(), scalars, lists), env=environment(job, scalars, lists, fw), cwd=str(workdir),
        report_path=str(report), log_path=str(job_dir / "output.log"), refused=refused, runnable=bool(safe),
    )


def _kill(proc: subprocess.Popen) -> None:
    """Stop the command and everything it started (it runs in a session of its own)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def tail(path: str, limit: int = OUTPUT_TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return ("…" + text) if size > limit else text


def execute(
    prepared: Prepared, *, timeout_s: float, heartbeat_s: float, heartbeat: Callable[[], str | None],
    stop: threading.Event,
) -> Outcome:
    """Run the command to its end. `heartbeat()` is called every `heartbeat_s`; a non-None
    answer is a reason to stop (the run was canceled, the lease was lost)."""
    with open(prepared.log_path, "wb") as log:
        try:
            proc = subprocess.Popen(
                prepared.argv, cwd=prepared.cwd, env=prepared.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        except (OSError, ValueError) as exc:
            return Outcome(exit_code=None, start_error=f"cannot start {prepared.argv[0]!r}: {exc}")
        started = time.monotonic()
        next_beat = started + heartbeat_s
        outcome = Outcome(exit_code=None)
        try:
            while True:
                try:
                    outcome.exit_code = proc.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                if stop.is_set():
                    outcome.stopped = True
                elif now - started >= timeout_s:
                    outcome.timed_out = True
                elif now >= next_beat:
                    next_beat = now + heartbeat_s
                    reason = heartbeat()
                    if reason:
                        outcome.canceled, outcome.cancel_reason = True, reason
                if outcome.stopped or outcome.timed_out or outcome.canceled:
                    _kill(proc)
                    outcome.exit_code = proc.returncode
                    break
        finally:
            _kill(proc)
    outcome.output_tail = tail(prepared.log_path)
    return outcome
