"""/metrics in the Prometheus text format (version 0.0.4), and the request middleware that
feeds it, writes the access log and takes part in a graceful stop (api/shutdown.py).

The access log line holds method, path (never the query string), status, duration and the
id of the key that authenticated, which is the public half of `qh_<id>_<secret>`; the
secret, the Authorization and X-API-Key headers and query strings are never logged.
Route labels are route templates (`/api/v1/runs/{run_id:str}`), and requests that match no
route share the label `unmatched`, so a scanner cannot grow the number of series.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter

import msgspec
from litestar import Request, Response, get

from ..core.model import IngestOutcome
from .context import services
from .errors import ErrorBody
from .ratelimit import GROUPS
from .shutdown import Shutdown

access_log = logging.getLogger("qahub.access")
_error_encoder = msgspec.json.Encoder()


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.request_seconds: Counter[tuple[str, str]] = Counter()
        self.ingested_results = 0
        self.rate_limited: Counter[str] = Counter()
        self.started = time.time()

    def observe_write(self, value: object) -> None:
        """Writer hook (db/writer.py `on_commit`): every ingest, of any dialect, returns the
        outcome of the one ingest path, so committed results are counted here and only here."""
        if isinstance(value, IngestOutcome):
            self.ingested_results += value.accepted

    def render(self, svc) -> str:
        out = _Exposition()
        out.family("qahub_http_requests_total", "counter", "HTTP requests by method, route and status.")
        for (method, route, status), n in sorted(self.requests.items()):
            out.sample("qahub_http_requests_total", n, method=method, route=route, status=str(status))
        out.family("qahub_http_request_seconds_total", "counter", "Time spent serving requests, by method and route.")
        for (method, route), seconds in sorted(self.request_seconds.items()):
            out.sample("qahub_http_request_seconds_total", round(seconds, 6), method=method, route=route)
        out.family("qahub_http_requests_in_flight", "gauge", "Requests being served right now.")
        out.sample("qahub_http_requests_in_flight", svc.shutdown.in_flight)
        out.family("qahub_ingested_results_total", "counter", "Results committed through the one ingest path.")
        out.sample("qahub_ingested_results_total", self.ingested_results)
        out.family("qahub_rate_limited_total", "counter", "Requests refused by the rate limiter, by route group.")
        for group in sorted(set(GROUPS) | set(self.rate_limited)):
            out.sample("qahub_rate_limited_total", self.rate_limited[group], group=group)

        writer = svc.db.writer
        stats = writer.stats
        out.family("qahub_write_queue_depth", "gauge", "Write operations waiting for the single writer.")
        out.sample("qahub_write_queue_depth", writer.queue_depth)
        out.family("qahub_write_operations_total", "counter", "Write operations run by the writer.")
        out.sample("qahub_write_operations_total", stats.operations)
        out.family("qahub_write_failed_commits_total", "counter", "Write transactions that failed as a whole.")
        out.sample("qahub_write_failed_commits_total", stats.failed_commits)
        out.family("qahub_write_commit_seconds", "histogram",
                   "Duration of the writer's transactions (group commits), from BEGIN to COMMIT.")
        cumulative = 0
        for bound, n in zip(stats.bounds, stats.commit_buckets, strict=True):
            cumulative += n
            out.sample("qahub_write_commit_seconds_bucket", cumulative, le=f"{bound:g}")
        out.sample("qahub_write_commit_seconds_bucket", stats.commits, le="+Inf")
        out.sample("qahub_write_commit_seconds_sum", round(stats.commit_seconds_total, 6))
        out.sample("qahub_write_commit_seconds_count", stats.commits)
        out.family("qahub_write_last_commit_seconds", "gauge", "Duration of the latest write transaction.")
        out.sample("qahub_write_last_commit_seconds", round(stats.last_commit_seconds, 6))

        path = svc.db.path  # SQLite's file; a PostgreSQL server reports its own sizes
        if path is not None:
            out.family("qahub_database_bytes", "gauge", "Size of the database file and its write-ahead log.")
            out.sample("qahub_database_bytes", _size(path) + _size(path.with_name(path.name + "-wal")))
        out.family("qahub_uptime_seconds", "gauge", "Seconds since the server started.")
        out.sample("qahub_uptime_seconds", round(time.time() - self.started))
        return out.text()


class _Exposition:
    """Lines of the text format: # HELP and # TYPE once per family, then its samples."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self._lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, value: float, **labels: str) -> None:
        if labels:
            pairs = ",".join(f'{key}="{_escape(val)}"' for key, val in labels.items())
            self._lines.append(f"{name}{{{pairs}}} {value}")
        else:
            self._lines.append(f"{name} {value}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _size(path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def request_middleware(app):
    """ASGI middleware: count and time every request, track it for a graceful stop, write the
    access log line."""

    async def middleware(scope, receive, send):
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status_box = [0]
        litestar_app = scope.get("app")
        svc = getattr(litestar_app.state, "services", None) if litestar_app is not None else None
        shutdown: Shutdown | None = svc.shutdown if svc is not None else None
        task = asyncio.current_task()
        if shutdown is not None and task is not None:
            shutdown.track(task)

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        except asyncio.CancelledError:
            if shutdown is None or task is None or not shutdown.was_cut_off(task) or status_box[0]:
                raise
            # Cut off by a graceful stop before it answered: say so in the one error shape.
            task.uncancel()
            await _answer_503(send_wrapper)
        finally:
            if shutdown is not None and task is not None:
                shutdown.untrack(task)
            if svc is not None:
                _record(svc, scope, status_box[0] or 500, time.perf_counter() - started)

    return middleware


async def _answer_503(send) -> None:
    body = _error_encoder.encode(ErrorBody(
        error="Service Unavailable", message="The server is restarting; try again shortly.", retry_after=5,
    ))
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"retry-after", b"5"),
        (b"content-length", str(len(body)).encode()),
    ]})
    await send({"type": "http.response.body", "body": body})


def _record(svc, scope, status: int, elapsed: float) -> None:
    route = scope.get("path_template") or "unmatched"
    method = scope.get("method", "GET")
    metrics = svc.metrics
    metrics.requests[(method, route, status)] += 1
    metrics.request_seconds[(method, route)] += elapsed
    if svc.config.logging.access_log:
        key_id = scope.get("qahub_key_id")  # the public id only: the secret never reaches a log
        path = scope.get("path", "")
        access_log.info(
            "%s %s %s %.1fms%s", method, path, status, elapsed * 1000, f" key={key_id}" if key_id else "",
            extra={"method": method, "path": path, "status": status, "duration_ms": round(elapsed * 1000, 2),
                   "key_id": key_id},
        )


@get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response:
    svc = services(request)
    return Response(svc.metrics.render(svc), media_type="text/plain; version=0.0.4; charset=utf-8")
