"""A graceful stop as handlers see it: which requests are in flight, and whether a stop began.

The sequence (server.py starts it on SIGTERM or SIGINT, with `server.shutdown_timeout_s` as
the whole budget, 8 s by default):

1. `begin()`: granian stops accepting connections and waits for the requests in flight;
   `requested` is set, so a handler that waits for something (an agent's long-poll for work)
   answers at once instead of holding the stop up.
2. At the budget less `LIFESPAN_RESERVE_S`, requests still running are cut off (`cut_off`):
   their tasks are cancelled and the request middleware answers 503 with the one error shape
   and `Retry-After`, so a client retries against the restarted server. A write such a
   request had already queued still commits (the writer drains its queue); only the answer
   is lost, as with a dropped connection.
3. The app's shutdown runs with the reserve left: background jobs stop, queued writes commit,
   the WAL is checkpointed.

Why cut requests off ourselves instead of leaving it to granian's worker kill timeout: that
timeout cancels the whole worker, app shutdown included, so queued writes would never be
drained and the database never closed (tried: granian 2.8 raises TimeoutError and skips the
ASGI lifespan shutdown).
"""

from __future__ import annotations

import asyncio

# Seconds kept for the app's own shutdown after requests are cut off: stopping jobs,
# committing what is queued (a batch takes milliseconds) and a WAL checkpoint.
LIFESPAN_RESERVE_S = 2.0


class Shutdown:
    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self._requests: set[asyncio.Task] = set()
        self._cut: set[asyncio.Task] = set()

    @property
    def in_flight(self) -> int:
        return len(self._requests)

    def track(self, task: asyncio.Task) -> None:
        self._requests.add(task)

    def untrack(self, task: asyncio.Task) -> None:
        self._requests.discard(task)
        self._cut.discard(task)

    def was_cut_off(self, task: asyncio.Task) -> bool:
        return task in self._cut

    def begin(self) -> None:
        self.requested.set()

    def cut_off(self) -> int:
        """Cancel every request still in flight; returns how many."""
        for task in list(self._requests):
            if not task.done():
                self._cut.add(task)
                task.cancel()
        return len(self._cut)
