"""Key checks remembered for a few seconds, so that a poll costs one database read, not two.

Every authenticated request checks its key; a CI job polling its run presents the same key
over and over, and the check is a reader hop (a thread switch) as long as the read of the run
itself. A remembered check answers without one.

Revocation still takes effect at once: every change of a key or a tenant made in this process
(revoking a key, suspending or resuming a tenant, deleting a project a key is limited to) calls
`keys_changed()`, which forgets every remembered check and refuses to remember new ones for
`HOLD_S`: a change is made inside a write transaction, and a check read before that transaction
commits still sees the old state, so it must not be kept. A change made by another process
(`qahub keys revoke` beside a running server) takes effect within `TTL_S`.

Only successful checks are kept (a refused key is read again each time), keyed by the SHA-256
of the presented key, never the key itself; the map is bounded.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tenancy import Principal

TTL_S = 5.0
HOLD_S = 5.0
MAX_ENTRIES = 4096

# The last change to keys or tenants in this process (monotonic seconds). Process-wide on
# purpose: the functions that make such changes are called from the server's writer, from the
# CLI and from tests, none of which hold the server's KeyChecks.
_changed = [float("-inf")]


def keys_changed() -> None:
    """Forget every remembered check, in every KeyChecks of this process."""
    _changed[0] = time.monotonic()


class KeyChecks:
    def __init__(self, ttl_s: float = TTL_S, max_entries: int = MAX_ENTRIES) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._entries: dict[bytes, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def digest(presented: str) -> bytes:
        return hashlib.sha256(presented.encode()).digest()

    def get(self, digest: bytes) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        read_at, principal = entry
        now = time.monotonic()
        if now - read_at > self._ttl or read_at < _changed[0] + HOLD_S:
            with self._lock:
                self._entries.pop(digest, None)
            return None
        return principal

    def put(self, digest: bytes, principal: Principal, read_at: float) -> None:
        """Remember a check whose read began at `read_at` (time.monotonic()), unless a change
        may have been uncommitted then."""
        if read_at < _changed[0] + HOLD_S:
            return
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.pop(next(iter(self._entries)))  # the oldest
            self._entries[digest] = (read_at, principal)
