"""pytest plugin: upload a test session's results to a qahub-lite server as one run.

Installed with the package (entry point `qahub` in the `pytest11` group) and off unless
configured: it uploads only when a server URL and a project are given, as options
(`--qahub-url`, `--qahub-project`, `--qahub-token`) or as the environment variables
`QAHUB_URL`, `QAHUB_PROJECT` and `QAHUB_TOKEN` that `qahub upload` reads too. `-p no:qahub`
or `--qahub-off` turns it off whatever the environment says.

- `@pytest.mark.qahub("TC-001")` links a test to a test case of the library. The marker is
  also recorded as the property `qa_hub` of the test, so a JUnit XML written by the same
  session (`--junitxml`) carries the link for `qahub upload` as well.
- Retries by pytest-rerunfailures become attempts: a pass after a failed attempt is flaky.
- Under pytest-xdist the controller receives every worker's reports and uploads once: one
  run, not one per worker.
- It never fails the session. When the server cannot be reached (or refuses the upload) it
  warns and saves the payload to a file (`--qahub-save`, default `qahub-results.json`) that
  `qahub upload FILE` sends later.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

MARKER = "qahub"
# A property name the report parsers read as a test case code (reports/tags.py CODE_KEYS).
CODE_PROPERTY = "qa_hub"
DEFAULT_SAVE = "qahub-results.json"
_OPTIONS = (("url", "QAHUB_URL"), ("token", "QAHUB_TOKEN"), ("project", "QAHUB_PROJECT"))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("qahub", "upload the results to a qahub-lite server")
    group.addoption("--qahub-url", metavar="URL", help="the server's base URL (default: $QAHUB_URL)")
    group.addoption("--qahub-token", metavar="KEY", help="an API key with the write scope (default: $QAHUB_TOKEN)")
    group.addoption("--qahub-project", metavar="ID", help="the project's id or slug (default: $QAHUB_PROJECT)")
    group.addoption("--qahub-run-name", metavar="NAME", help="the run's display name (default: the server's)")
    group.addoption("--qahub-environment", metavar="NAME", help="an environment label such as staging")
    group.addoption("--qahub-save", metavar="PATH",
                    help=f"where to save the results when they cannot be uploaded (default: {DEFAULT_SAVE})")
    group.addoption("--qahub-branch", metavar="NAME",
                    help="the run's branch (default: $QAHUB_BRANCH, else the CI provider's, else the git checkout's)")
    group.addoption("--qahub-commit", metavar="SHA",
                    help="the run's commit (default: $QAHUB_COMMIT, else the CI provider's, else the git checkout's)")
    group.addoption("--qahub-variant", metavar="LABEL",
                    help="keep this session's results apart from the same tests run elsewhere in one run (a matrix label)")
    group.addoption("--qahub-strict-codes", action="store_true",
                    help="let the server reject results whose test case code is not in the project "
                    "(by default they are kept as unlinked results)")
    group.addoption("--qahub-off", action="store_true", help="do not upload, even when QAHUB_* variables are set")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(code): link this test to the qahub test case with this code, e.g. TC-001"
    )
    if hasattr(config, "workerinput") or config.getoption("qahub_off"):
        return  # xdist workers only record; their controller uploads
    settings = {name: config.getoption(f"qahub_{name}") or os.environ.get(env) for name, env in _OPTIONS}
    if not (settings["url"] and settings["project"]):
        return
    config.pluginmanager.register(SessionUploader(config, settings), "qahub-uploader")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Runs where the items are (each xdist worker): the code travels to the controller inside
    # the reports' user_properties.
    for item in items:
        marker = item.get_closest_marker(MARKER)
        if marker is None:
            continue
        code = marker.args[0] if marker.args else marker.kwargs.get("code")
        if isinstance(code, str) and code.strip():
            item.user_properties.append((CODE_PROPERTY, code.strip()))


class _Attempt:
    """One execution of a test: its setup, call and teardown reports."""

    def __init__(self) -> None:
        self.reports: dict[str, pytest.TestReport] = {}

    def status(self) -> tuple[str, pytest.TestReport | None]:
        """(canonical status, the report that decided it)."""
        setup, call, teardown = (self.reports.get(w) for w in ("setup", "call", "teardown"))
        if setup is not None and setup.outcome in ("failed", "rerun"):
            return "BROKEN", setup  # a fixture error is not the test's failure
        if setup is not None and setup.skipped:
            return "SKIPPED", setup
        if call is None:
            return "UNKNOWN", None  # interrupted between setup and call
        if call.outcome in ("failed", "rerun"):
            return "FAILED", call
        if call.skipped:
            return "SKIPPED", call  # skip() in the body, or an expected failure (xfail)
        if teardown is not None and teardown.outcome in ("failed", "rerun"):
            return "BROKEN", teardown
        return "PASSED", call

    def duration_ms(self) -> int:
        return int(round(sum(r.duration for r in self.reports.values()) * 1000))

    def last(self) -> pytest.TestReport:
        return self.reports.get("teardown") or self.reports.get("call") or next(iter(self.reports.values()))


def _message(status: str, report: pytest.TestReport | None) -> tuple[str | None, str | None]:
    """(error message, stack) of the deciding report."""
    if report is None or status == "PASSED":
        return None, None
    if status == "SKIPPED":
        if getattr(report, "wasxfail", None) is not None:
            return f"expected failure: {report.wasxfail}".rstrip(": "), None
        if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
            return str(report.longrepr[2]).removeprefix("Skipped: "), None
        return None, None
    crash = getattr(report.longrepr, "reprcrash", None)
    text = report.longreprtext or None
    message = getattr(crash, "message", None) or (text.strip().splitlines()[-1] if text and text.strip() else None)
    return message, text


def _identity(nodeid: str) -> tuple[list[str], str]:
    """(suite path, title) the way pytest-json-report's reports are read: the file, then the
    classes, then the test name with its parameters."""
    parts = nodeid.split("::")
    if len(parts) == 1:  # a module that failed to collect
        folder, _, name = nodeid.rpartition("/")
        return ([folder] if folder else []), name or nodeid
    return parts[:-1], parts[-1]


class SessionUploader:
    """Collects every report (on the controller) and uploads them when the session ends."""

    def __init__(self, config: pytest.Config, settings: dict) -> None:
        import time

        self.started_at = time.time()
        self.config = config
        self.settings = settings
        self.tests: dict[str, list[_Attempt]] = {}
        self.collect_errors: dict[str, pytest.CollectReport] = {}
        self.lines: list[tuple[str, dict]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        attempts = self.tests.setdefault(report.nodeid, [])
        # A new setup means a new attempt (pytest-rerunfailures runs the whole protocol again).
        if not attempts or (report.when == "setup" and "setup" in attempts[-1].reports):
            attempts.append(_Attempt())
        attempts[-1].reports[report.when] = report

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and report.nodeid:
            self.collect_errors[report.nodeid] = report

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        try:
            self._upload()
        except Exception as exc:  # noqa: BLE001 - a reporting bug must never fail the tests
            self.lines.append((f"qahub: upload skipped after an internal error: {exc!r}", {"yellow": True}))
        if self.config.pluginmanager.get_plugin("terminalreporter") is None:
            for line, _ in self.lines:
                print(line, file=sys.stderr)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.lines:
            terminalreporter.write_sep("-", "qahub")
            for line, markup in self.lines:
                terminalreporter.write_line(line, **markup)

    # --- building and sending ---------------------------------------------------------

    def results(self) -> list:
        from .reports.model import MAX_OUTPUT_CHARS, Attempt, ParsedResult
        from .reports.tags import extract

        out = []
        for nodeid, report in self.collect_errors.items():
            suite, title = _identity(nodeid)
            text = report.longreprtext or None
            out.append(ParsedResult(title=title, status="BROKEN", suite_path=suite, error_stack=text,
                                    error_message=text.strip().splitlines()[-1] if text and text.strip() else None))
        for nodeid, attempts in self.tests.items():
            suite, title = _identity(nodeid)
            decided = [(a, *a.status()) for a in attempts]
            final, status, deciding = decided[-1]
            message, stack = _message(status, deciding)
            last = final.last()
            _, code = extract(title, properties=[(str(k), str(v)) for k, v in last.user_properties])
            history = [
                Attempt(status=s, duration_ms=a.duration_ms(), error_message=_message(s, r)[0])
                for a, s, r in decided
            ] if len(decided) > 1 else []
            path, line, _ = last.location
            out.append(ParsedResult(
                title=title, status=status, suite_path=suite,
                flaky=status == "PASSED" and any(s in ("FAILED", "BROKEN") for _, s, _ in decided[:-1]),
                duration_ms=final.duration_ms(), error_message=message, error_stack=stack,
                stdout=(last.capstdout or None) and last.capstdout[:MAX_OUTPUT_CHARS],
                stderr=(last.capstderr or None) and last.capstderr[:MAX_OUTPUT_CHARS],
                file=path, line=None if line is None else line + 1, attempts=history, test_case_code=code,
            ))
        return out

    def _upload(self) -> None:
        import datetime as dt
        import time

        from .ci_env import context
        from .client import ApiError, QahubClient
        from .reports import ParsedReport
        from .reports.identity import assign_variants
        from .payload import Payload, RunInfo, add_report, count, save_payload
        from .upload import UploadFailed, send, verify

        results = self.results()
        if not results:
            return
        # Parameters of one test linked to one test case (a marker on a parametrized test) are
        # variants of it, each its own result (reports/identity.py).
        assign_variants(results, self.config.getoption("qahub_variant"))
        ci = context(
            os.environ, branch=self.config.getoption("qahub_branch"), commit=self.config.getoption("qahub_commit"),
            cwd=str(self.config.invocation_params.dir),
        )
        payload = Payload(run=RunInfo(
            project_id=self.settings["project"], run_name=self.config.getoption("qahub_run_name"),
            environment=self.config.getoption("qahub_environment"), framework="pytest", ci=ci,
            started_at=dt.datetime.fromtimestamp(self.started_at, dt.timezone.utc).isoformat(),
            duration_ms=int((time.time() - self.started_at) * 1000),
        ))
        add_report(payload, ParsedReport(format="pytest", source="pytest session", results=results))
        if not self.settings["token"]:
            self._save(payload, "no API key: pass --qahub-token or set QAHUB_TOKEN", save_payload)
            return
        # Few, short retries: a developer waits on this at the end of every session.
        client = QahubClient(self.settings["url"], self.settings["token"], timeout=30.0, retries=3)
        warn = lambda m: self.lines.append((f"qahub: {m}", {"yellow": True}))  # noqa: E731
        try:
            outcome = send(client, payload, warn=warn, strict_codes=self.config.getoption("qahub_strict_codes"))
            mismatch = verify(client, payload, outcome)
        except UploadFailed as exc:
            self._save(payload, str(exc), save_payload)
            return
        except ApiError as exc:
            mismatch = f"the stored run could not be checked: {exc}"
        finally:
            client.close()
        if mismatch:
            self.lines.append((f"qahub: {mismatch}", {"red": True}))
        if outcome.unlinked:
            codes = sorted({payload.results[i]["test_case_code"] for i in outcome.unlinked})
            warn(f"{len(outcome.unlinked)} results kept unlinked: test case codes not in this project: {', '.join(codes)}")
        counts = count(payload.results)
        self.lines.append((
            f"qahub: uploaded {outcome.accepted} results to run {outcome.short_id} "
            f"({counts.passed} passed of which {counts.flaky} flaky, {counts.failed} failed, {counts.broken} broken, "
            f"{counts.skipped} skipped) {outcome.url}", {},
        ))
        for error in outcome.errors[:20]:
            name = payload.results[error.index].get("title", "")
            self.lines.append((f"qahub: rejected {name}: {error.error}", {"yellow": True}))

    def _save(self, payload, reason: str, save_payload) -> None:
        target = Path(self.config.getoption("qahub_save") or DEFAULT_SAVE)
        if not target.is_absolute():
            target = Path(self.config.invocation_params.dir) / target
        try:
            save_payload(payload, target)
        except OSError as exc:
            self.lines.append((f"qahub: results NOT uploaded ({reason}) and not saved: {exc}", {"red": True}))
            return
        self.lines.append((
            f"qahub: results not uploaded ({reason}); saved {len(payload.results)} results to {target} - "
            f"send them later with: qahub upload {target}", {"yellow": True},
        ))
