"""The agent's loop: ask the server for a job (long-poll), run it, report what the command's
report says, complete the job; again. Used by `qahub agent` and, in a thread, by the agent
embedded in `qahub serve`.

Protocol (api/agent_api.py): POST /api/v1/agent/claim -> a job with a lease token; while the
command runs, POST .../heartbeat renews the lease and answers whether to stop; then
POST .../results (the parsed report, as the native result shape), each report attachment to
POST /api/v1/results/{id}/attachments, and POST .../complete. The report is read with the
parsers `qahub upload` uses, and converted with the same function.
"""

from __future__ import annotations

import logging
import mimetypes
import socket
import tempfile
import threading
import time
from pathlib import Path

import msgspec

from .. import __version__
from ..client import ApiError, QahubClient
from ..wire import ClaimedJob
from ..payload import native_result
from ..reports import ReportError, parse_report
from . import runner
from .config import AgentSettings

log = logging.getLogger("qahub.agent")
# Statuses that stop the agent for good: the key was revoked, lacks the write scope, or its
# tenant is suspended. Retrying would only fill the server's log.
FATAL_STATUSES = (401, 403)


class AgentStopped(Exception):
    """The server refuses this agent's key; the message says why."""


class Agent:
    def __init__(
        self, client: QahubClient, settings: AgentSettings, *, stop: threading.Event | None = None,
        report_when_stopped: bool = True,
    ) -> None:
        self.client = client
        self.settings = settings
        self.stop = stop or threading.Event()
        # A job cut short by our own stop is reported over HTTP, unless the server is stopping
        # too (the embedded agent): then it is left in `abandoned` for the server to end.
        self.report_when_stopped = report_when_stopped
        self.abandoned: ClaimedJob | None = None
        self.jobs_run = 0

    # --- the loop -----------------------------------------------------------------------

    def run_forever(self) -> None:
        """Claim and run jobs until `stop` is set. Network trouble is waited out with backoff;
        a refused key raises AgentStopped."""
        delay = 1.0
        log.info("agent %r serving frameworks %s from %s", self.settings.agent_name,
                 ", ".join(sorted(self.settings.frameworks)), self.settings.workdir_path)
        while not self.stop.is_set():
            try:
                self.run_once()
                delay = 1.0
            except ApiError as exc:
                if exc.status in FATAL_STATUSES:
                    raise AgentStopped(f"the server refuses this agent's key: {exc.message}") from None
                log.warning("agent: %s; trying again in %.0fs", exc, delay)
                self.stop.wait(delay)
                delay = min(delay * 2, 30.0)

    def claim(self) -> ClaimedJob | None:
        body = {
            "agent": self.settings.agent_name, "frameworks": sorted(self.settings.frameworks),
            "wait_s": self.settings.poll_wait_s, "version": __version__,
            "hostname": socket.gethostname(),
        }
        response = self.client.request("POST", "/api/v1/agent/claim", json=body)
        return msgspec.json.decode(response.content, type=_ClaimAnswer).job

    def run_once(self) -> bool:
        """Claim one job and run it; False when the long-poll ended without work."""
        job = self.claim()
        if job is None:
            return False
        self.execute(job)
        self.jobs_run += 1
        return True

    # --- one job ------------------------------------------------------------------------

    def _post(self, job: ClaimedJob, action: str, body: dict) -> dict:
        return self.client.post(f"/api/v1/agent/jobs/{job.id}/{action}", {"lease_token": job.lease_token, **body})

    def _complete(self, job: ClaimedJob, outcome: str, message: str | None = None) -> None:
        try:
            self._post(job, "complete", {"outcome": outcome, **({"message": message} if message else {})})
        except ApiError as exc:
            # The lease expires on its own and the server marks the tests TIMEOUT.
            log.warning("job %s: could not complete it: %s", job.id, exc)

    def _heartbeat(self, job: ClaimedJob) -> str | None:
        try:
            state = self._post(job, "heartbeat", {})
        except ApiError as exc:
            if exc.status == 409 or exc.status == 404:
                return f"the server no longer knows this lease: {exc.message}"
            log.warning("job %s: heartbeat failed (%s); the command keeps running", job.id, exc)
            return None
        return (state.get("reason") or f"the job is {state.get('status')}") if state.get("cancel") else None

    def execute(self, job: ClaimedJob) -> None:
        try:
            self._execute(job)
        except ApiError:
            raise  # the server is unreachable or refuses us: run_forever decides
        except Exception as exc:  # noqa: BLE001 - say so now rather than let the lease run out
            log.exception("job %s: the agent failed", job.id)
            self._complete(job, "ERROR", f"agent {self.settings.agent_name!r} failed: {type(exc).__name__}: {exc}")

    def _execute(self, job: ClaimedJob) -> None:
        fw = self.settings.frameworks.get(job.framework)
        log.info("job %s: run %s, %d %s test(s)", job.id, job.run_short_id, len(job.tests), job.framework)
        if fw is None:  # the server only hands out our frameworks; a config reload could race it
            self._complete(job, "ERROR", f"agent {self.settings.agent_name!r} has no command for {job.framework!r}")
            return
        with tempfile.TemporaryDirectory(prefix="qahub-job-") as tmp:
            try:
                prepared = runner.prepare(job, fw, self.settings, Path(tmp))
            except runner.UnsafeValue as exc:
                self._complete(job, "ERROR", str(exc))
                return
            if prepared.refused and not self._refuse(job, prepared.refused):
                return
            if not prepared.runnable:
                self._complete(job, "DONE")
                return
            outcome = runner.execute(
                prepared, timeout_s=fw.timeout_s, heartbeat_s=job.heartbeat_s,
                heartbeat=lambda: self._heartbeat(job), stop=self.stop,
            )
            if outcome.canceled:
                log.info("job %s: stopped the command: %s", job.id, outcome.cancel_reason)
                return
            if outcome.start_error:
                self._complete(job, "ERROR", outcome.start_error)
                return
            if outcome.stopped:
                if self.report_when_stopped:
                    self._complete(job, "ERROR", f"agent {self.settings.agent_name!r} was stopped while the tests ran")
                else:
                    self.abandoned = job
                return
            self._finish(job, fw.report_format, prepared, outcome)

    def _refuse(self, job: ClaimedJob, refused: list) -> bool:
        """Report the tests left out of the command as BROKEN, each with its reason; False when
        the server took none of it (the job is over then)."""
        results = [
            {"status": "BROKEN", "title": test.title[:1000], "error_message": reason,
             **({"test_case_id": test.test_case_id} if test.test_case_id else {})}
            for test, reason in refused
        ]
        for test, reason in refused:
            log.warning("job %s: test %r not run: %s", job.id, test.title[:200], reason)
        try:
            self._post(job, "results", {"results": results})
        except ApiError as exc:
            if exc.status != 409:
                self._complete(job, "ERROR", f"the server did not accept the refused tests: {exc.message}")
            return False
        return True

    def _finish(self, job: ClaimedJob, report_format: str, prepared: runner.Prepared, outcome: runner.Outcome) -> None:
        timed_out = (
            f"the command ran longer than its timeout_s and was killed; output ends with:\n{outcome.output_tail}"
            if outcome.timed_out else None
        )
        report_path = Path(prepared.report_path)
        try:
            report = parse_report(report_path, report_format) if report_path.exists() else None
        except ReportError as exc:
            self._complete(job, "TIMEOUT" if timed_out else "ERROR", timed_out or f"{exc}\n{outcome.output_tail}")
            return
        if report is None:
            message = timed_out or (
                f"the command exited with code {outcome.exit_code} and wrote no report at {report_path}; "
                f"its output ends with:\n{outcome.output_tail}"
            )
            self._complete(job, "TIMEOUT" if timed_out else "ERROR", message)
            return
        results = [native_result(r, job.framework) for r in report.results]
        try:
            answer = self._post(job, "results", {"results": results})
        except ApiError as exc:
            log.warning("job %s: results not accepted: %s", job.id, exc)
            if exc.status != 409:  # 409: canceled meanwhile, nothing more to say
                self._complete(job, "ERROR", f"the server did not accept the results: {exc.message}")
            return
        self._upload_attachments(job, report.results, answer.get("stored", []))
        log.info("job %s: %d result(s) stored, %d not part of the job", job.id, len(answer.get("stored", [])),
                 len(answer.get("ignored", [])))
        self._complete(job, "TIMEOUT" if timed_out else "DONE", timed_out)

    def _upload_attachments(self, job: ClaimedJob, parsed: list, stored: list[dict]) -> None:
        """Screenshots, videos and traces the report points at, each to its result. A video
        becomes the test's Qualigate `video_url`. Missing files and refused types are logged."""
        for entry in stored:
            for attachment in parsed[entry["index"]].attachments:
                path = Path(attachment.path)
                if not path.is_file():
                    log.info("job %s: attachment %s is missing, skipped", job.id, path)
                    continue
                kind = attachment.content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                try:
                    self.client.request(
                        "POST", f"/api/v1/results/{entry['result_id']}/attachments",
                        files=lambda p=path, k=kind: {"file": (p.name, p.open("rb"), k)},
                    )
                except (ApiError, OSError) as exc:
                    log.warning("job %s: attachment %s not uploaded: %s", job.id, path.name, exc)


class _ClaimAnswer(msgspec.Struct):
    job: ClaimedJob | None = None


# --- the agent embedded in `qahub serve` ---------------------------------------------------


class EmbeddedAgent:
    """An Agent in a thread of the server process, speaking HTTP to the server itself so that
    its jobs take exactly the path a remote agent's do."""

    def __init__(self, url: str, key: str, settings: AgentSettings) -> None:
        self.stop_event = threading.Event()
        logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per long-poll in the server log
        self.client = QahubClient(url, key, timeout=settings.poll_wait_s + 30, retries=3)
        self.agent = Agent(self.client, settings, stop=self.stop_event, report_when_stopped=False)
        self.thread = threading.Thread(target=self._main, name="qahub-embedded-agent", daemon=True)

    def _main(self) -> None:
        # The server starts listening after the app's start-up, which starts this thread:
        # the first claims may find nobody home; run_forever waits that out.
        time.sleep(0.2)
        try:
            self.agent.run_forever()
        except AgentStopped as exc:
            log.error("embedded agent stopped: %s", exc)
        except Exception:  # noqa: BLE001 - a crash of the agent must not take the server down
            log.exception("embedded agent crashed")

    def start(self) -> None:
        self.thread.start()

    def close(self, timeout: float = 5.0) -> ClaimedJob | None:
        """Kill a running command, leave the loop, wait for the thread a bounded time. Returns
        the job it was running, for the server to end."""
        self.stop_event.set()
        self.thread.join(timeout)
        self.client.close()
        return self.agent.abandoned
