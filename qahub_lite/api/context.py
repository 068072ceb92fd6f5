"""What every handler needs, built once at start-up and kept on the app's state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar import Request

from ..config import Config
from ..db.database import Database
from ..core.clock import now_ms
from ..core.key_checks import KeyChecks


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
    key_checks: KeyChecks = field(default_factory=KeyChecks)
    # Filled by later parts (metrics, rate limiter, ...) without changing this class' users.
    extras: dict[str, Any] = field(default_factory=dict)


def services(request: Request) -> Services:
    return request.app.state.services
