"""/metrics in the Prometheus text format, and the request middleware that feeds it and
writes the access log (method, route, status, duration, key id; never the key itself)."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter

from litestar import Request, Response, get

from .context import services

access_log = logging.getLogger("qahub.access")


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.request_seconds: Counter[tuple[str, str]] = Counter()
        self.ingested_results = 0
        self.rate_limited: Counter[str] = Counter()
        self.started = time.time()

    def render(self, svc) -> str:
        lines = [
            "# HELP qahub_http_requests_total HTTP requests by method, route and status.",
            "# TYPE qahub_http_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            lines.append(f'qahub_http_requests_total{{method="{method}",route="{_esc(route)}",status="{status}"}} {n}')
        lines += [
            "# HELP qahub_http_request_seconds_total Time spent serving requests by method and route.",
            "# TYPE qahub_http_request_seconds_total counter",
        ]
        for (method, route), s in sorted(self.request_seconds.items()):
            lines.append(f'qahub_http_request_seconds_total{{method="{method}",route="{_esc(route)}"}} {s:.6f}')
        stats = svc.db.writer.stats
        lines += [
            "# HELP qahub_ingested_results_total Results stored through the ingest path.",
            "# TYPE qahub_ingested_results_total counter",
            f"qahub_ingested_results_total {self.ingested_results}",
            "# HELP qahub_write_queue_depth Write operations waiting for the writer.",
            "# TYPE qahub_write_queue_depth gauge",
            f"qahub_write_queue_depth {svc.db.writer.queue_depth}",
            "# HELP qahub_write_commits_total Transactions committed by the writer (group commits).",
            "# TYPE qahub_write_commits_total counter",
            f"qahub_write_commits_total {stats.commits}",
            "# HELP qahub_write_operations_total Write operations run by the writer.",
            "# TYPE qahub_write_operations_total counter",
            f"qahub_write_operations_total {stats.operations}",
            "# HELP qahub_write_commit_seconds_total Time spent in write transactions.",
            "# TYPE qahub_write_commit_seconds_total counter",
            f"qahub_write_commit_seconds_total {stats.commit_seconds_total:.6f}",
            "# HELP qahub_write_last_commit_seconds Duration of the latest write transaction.",
            "# TYPE qahub_write_last_commit_seconds gauge",
            f"qahub_write_last_commit_seconds {stats.last_commit_seconds:.6f}",
            "# HELP qahub_database_bytes Size of the database file and its WAL.",
            "# TYPE qahub_database_bytes gauge",
            f"qahub_database_bytes {_size(svc.db.path) + _size(svc.db.path.with_name(svc.db.path.name + '-wal'))}",
            "# HELP qahub_rate_limited_total Requests refused by the rate limiter, by route group.",
            "# TYPE qahub_rate_limited_total counter",
        ]
        for group, n in sorted(self.rate_limited.items()):
            lines.append(f'qahub_rate_limited_total{{group="{group}"}} {n}')
        lines += [
            "# HELP qahub_uptime_seconds Seconds since the server started.",
            "# TYPE qahub_uptime_seconds gauge",
            f"qahub_uptime_seconds {time.time() - self.started:.0f}",
        ]
        return "\n".join(lines) + "\n"


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _size(path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def request_middleware(app):
    """ASGI middleware: count and time every request, write the access log line."""

    async def middleware(scope, receive, send):
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status_box = [500]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            state = scope.get("app").state if scope.get("app") is not None else None
            svc = getattr(state, "services", None) if state is not None else None
            route = scope.get("path_template") or "unmatched"
            method = scope.get("method", "GET")
            if svc is not None:
                metrics: Metrics = svc.extras["metrics"]
                metrics.requests[(method, route, status_box[0])] += 1
                metrics.request_seconds[(method, route)] += elapsed
                if svc.config.logging.access_log:
                    key_id = scope.get("qahub_key_id")
                    access_log.info(
                        "%s %s %s %.1fms%s", method, scope.get("path", ""), status_box[0], elapsed * 1000,
                        f" key={key_id}" if key_id else "",
                        extra={"method": method, "path": scope.get("path", ""), "status": status_box[0],
                               "duration_ms": round(elapsed * 1000, 2), "key_id": key_id},
                    )

    return middleware


@get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response:
    svc = services(request)
    return Response(svc.extras["metrics"].render(svc), media_type="text/plain; version=0.0.4")
