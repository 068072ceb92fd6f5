"""Probes: liveness (/healthz) and readiness (/readyz), for load balancers, systemd and scripts."""

from __future__ import annotations

import msgspec
from litestar import Request, Response, get

from .context import services


class ProbeAnswer(msgspec.Struct):
    status: str


@get("/healthz", include_in_schema=False)
async def healthz() -> ProbeAnswer:
    """The process is alive and serving."""
    return ProbeAnswer("ok")


@get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> Response:
    """The database answers a query."""
    try:
        await services(request).db.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return Response({"error": "Service Unavailable", "message": f"database not ready: {exc}"}, status_code=503)
    return Response(ProbeAnswer("ready"))
