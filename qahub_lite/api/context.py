"""What every handler needs, built once at start-up and kept on the app's state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar import Request

from ..config import Config
from ..db.database import Database
from .auth import KeyUsage


@dataclass
class Services:
    config: Config
    db: Database
    key_usage: KeyUsage = field(default_factory=KeyUsage)
    # Filled by later parts (metrics, rate limiter, ...) without changing this class' users.
    extras: dict[str, Any] = field(default_factory=dict)


def services(request: Request) -> Services:
    return request.app.state.services
