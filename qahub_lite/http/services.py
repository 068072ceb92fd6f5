"""What every handler needs, built once at start-up (app.py's lifespan) and kept on the app's
state: the API's handlers and the dashboard's pages reach it the same way, `services(request)`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar import Request

from ..config import Config
from ..core.clock import now_ms
from ..db.database import Database


class KeyUsage:
    """Last-use times waiting to be written; flushed by the `key-usage` background job."""

    def __init__(self) -> None:
        self.pending: dict[str, int] = {}

    def seen(self, key_id: str) -> None:
        self.pending[key_id] = now_ms()

    def take(self) -> dict[str, int]:
        taken, self.pending = self.pending, {}
        return taken


@dataclass
class Services:
    config: Config
    db: Database
    key_usage: KeyUsage = field(default_factory=KeyUsage)
    # Filled by later parts (metrics, rate limiter, ...) without changing this class' users.
    extras: dict[str, Any] = field(default_factory=dict)


def services(request: Request) -> Services:
    return request.app.state.services
