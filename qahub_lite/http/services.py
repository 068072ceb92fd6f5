"""What every handler needs, built once in the app's lifespan (app.py) and kept on the app's
state: the API's handlers and the dashboard's pages reach it the same way, `services(request)`.

Each part is a typed field, so that what exists is read here rather than guessed from string
keys, and none is made lazily by a first request. The types of the parts that belong to api/,
web/ or db/ are named for the reader and the type checker only (under TYPE_CHECKING): at run time
this module depends on neither, as tests/test_layers.py requires of a module below them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from litestar import Request

from ..config import Config
from ..core.clock import now_ms
from ..core.key_checks import KeyChecks

if TYPE_CHECKING:
    import jinja2

    from ..api.agent_api import QueueSignal
    from ..api.metrics import Metrics
    from ..api.ratelimit import SharedWindowLimiter, SlidingWindowLimiter
    from ..api.shutdown import Shutdown
    from ..api.slots import KeyedSlots
    from ..db.database import Database
    from ..maintenance import TaskScheduler
    from ..web.throttle import HashGate, SharedSignInThrottle, SignInThrottle


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
    metrics: Metrics
    # Set off by server.py on SIGTERM (api/shutdown.py).
    shutdown: Shutdown
    # In memory on SQLite, in the database on PostgreSQL (api/ratelimit.py, web/throttle.py).
    ratelimiter: SlidingWindowLimiter | SharedWindowLimiter
    scheduler: TaskScheduler
    # Agents' long-polls waiting at once (api/agent_api.py) and exports streaming at once
    # (api/export_slots.py), per key and in all: per node, on purpose (api/slots.py says why).
    poll_budget: KeyedSlots
    export_slots: KeyedSlots
    # Triggers notify it when they queue jobs; agents' claims wait on it.
    job_signal: QueueSignal
    # The dashboard: its template engine and its sign-in guards (web/render.py, web/auth.py).
    templates: jinja2.Environment
    sign_in_throttle: SignInThrottle | SharedSignInThrottle
    sign_in_hash_gate: HashGate
    key_usage: KeyUsage = field(default_factory=KeyUsage)
    # Key checks remembered for a few seconds; every revocation in this process forgets them.
    key_checks: KeyChecks = field(default_factory=KeyChecks)


def services(request: Request) -> Services:
    return request.app.state.services
