"""What the test-health tests share: an app with fast health jobs, runs fed through the real
ingest routes, polling for background work, and a real HTTP receiver for webhooks."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from conftest import Api, make_api, write_config

from qahub_lite.config import load_config

# Jobs every second, grades from 3 runs, retries after 1-2 s: tests see background work quickly.
FAST = """
[grade]
min_runs = 3
refresh_interval_s = 1
[webhooks]
poll_interval_s = 1
retry_base_s = 1
retry_max_s = 2
timeout_s = 5
# The receiver below listens on 127.0.0.1, which webhooks may reach only when allowed.
allow_networks = ["127.0.0.1/32"]
"""


def fast_api(folder: Path, extra: str = "", storage_url: str = ""):
    """A context manager yielding an Api whose health jobs run fast (on PostgreSQL when
    `storage_url` names a database)."""
    config = load_config(write_config(folder, FAST + extra, storage_url=storage_url), environ={})
    client, boot = make_api(config)

    class _Ctx:
        def __enter__(self) -> Api:
            client.__enter__()
            return Api(client, config, boot.admin_key, boot.tenant_id)

        def __exit__(self, *exc) -> None:
            client.__exit__(*exc)

    return _Ctx()


def ingest(api: Api, project_id: str, results: list[dict], *, branch: str | None = "main", commit: str | None = None,
           status: str = "COMPLETED", duration_ms: int | None = None) -> dict:
    """One run through the native ingest route; returns its answer."""
    ci = {k: v for k, v in (("branch", branch), ("commit", commit)) if v is not None}
    body = {"project_id": project_id, "results": results, "status": status, "ci": ci}
    if duration_ms is not None:
        body["duration_ms"] = duration_ms
    r = api.post("/api/v1/ingest", body)
    assert r.status_code == 201, r.text
    return r.json()


def outcomes(**statuses: str) -> list[dict]:
    """results for title=status pairs; 'RETRIED' is a pass after a failed attempt."""
    out = []
    for title, status in statuses.items():
        if status == "RETRIED":
            out.append({"title": title, "status": "PASSED", "previous_attempts": [{"status": "FAILED"}]})
        else:
            out.append({"title": title, "status": status})
    return out


def wait_for(check, timeout: float = 15.0, interval: float = 0.1):
    """Poll `check()` until it returns something truthy; fail with its last value otherwise."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records every POST and answers with the next status
    of `statuses` (then 200)."""

    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self, port: int = 0) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"receiver says no")

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def events(self, name: str) -> list[Received]:
        return [r for r in self.received if r.headers.get("x-qahub-event") == name]
