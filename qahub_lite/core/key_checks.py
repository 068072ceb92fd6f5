"""Key checks remembered for a few seconds, so that a poll costs one database read, not two.

Every authenticated request checks its key; a CI job polling its run presents the same key
over and over, and the check is a reader hop (a thread switch) as long as the read of the run
itself. A remembered check answers without one.

Revocation still takes effect at once: every change of a key or a tenant made in this process
(revoking a key, suspending or resuming a tenant, deleting a project a key is limited to) calls
`keys_changed()`, which forgets every remembered check and refuses to remember new ones for
`HOLD_S`: a change is made inside a write transaction, and a check read before that transaction
commits still sees the old state, so it must not be kept.

A change made by another process (another `qahub serve` node on the same PostgreSQL database,
or `qahub keys revoke` beside a running server) reaches this one through the key generation, a
counter row that `keys_changed(conn)` bumps in the changing transaction itself (so it commits
with the change, or not at all). Every node reads it once a second (the `key-generation` task,
one primary-key read) and forgets its remembered checks when it moved: a revoked key stops
working on every node within about `GENERATION_POLL_S`, and `TTL_S` bounds it even if the
task stalls. Why a poll and not a read of the generation on every request: that read would
be the very reader hop this cache exists to save; once a second per node costs nothing.

Only successful checks are kept (a refused key is read again each time), keyed by the SHA-256
of the presented key, never the key itself; the map is bounded.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import TYPE_CHECKING

from ..db import shared_state

if TYPE_CHECKING:
    from .tenancy import Principal

TTL_S = 5.0
HOLD_S = 5.0
GENERATION_POLL_S = 1.0
MAX_ENTRIES = 4096

# The last change to keys or tenants in this process (monotonic seconds). Process-wide on
# purpose: the functions that make such changes are called from the server's writer, from the
# CLI and from tests, none of which hold the server's KeyChecks.
_changed = [float("-inf")]


def keys_changed(conn=None) -> None:
    """Forget every remembered check, in every KeyChecks of this process. Given the changing
    transaction's connection, also bump the key generation in it, so that every other process
    forgets its checks once the change commits. (Callers that run after the commit call it
    again without one, for this process alone.)"""
    _changed[0] = time.monotonic()
    if conn is not None:
        shared_state.bump_key_generation(conn)


def current_generation(conn) -> int:
    """Reader operation: the key generation (one primary-key read)."""
    return shared_state.key_generation(conn)


class KeyChecks:
    def __init__(self, ttl_s: float = TTL_S, max_entries: int = MAX_ENTRIES) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._entries: dict[bytes, tuple[float, Principal]] = {}
        self._lock = threading.Lock()
        # The key generation last seen, and since when (monotonic) checks are trusted: checks
        # read before a generation change was seen may predate the change.
        self._generation: int | None = None
        self._valid_from = float("-inf")

    def observe_generation(self, generation: int, read_done_at: float) -> bool:
        """Take the key generation read by a read that ended at `read_done_at` (monotonic);
        forget every check read before then when it moved (or on the first reading: a change
        may have come before it). A check read after the generation's read began a snapshot
        that holds the change. Returns whether checks were forgotten."""
        if generation == self._generation:
            return False
        self._generation = generation
        self._valid_from = read_done_at
        with self._lock:
            self._entries.clear()
        return True

    def _trusted(self, read_at: float) -> bool:
        return read_at >= _changed[0] + HOLD_S and read_at >= self._valid_from

    @staticmethod
    def digest(presented: str) -> bytes:
        return hashlib.sha256(presented.encode()).digest()

    def get(self, digest: bytes) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        read_at, principal = entry
        now = time.monotonic()
        if now - read_at > self._ttl or not self._trusted(read_at):
            with self._lock:
                self._entries.pop(digest, None)
            return None
        return principal

    def put(self, digest: bytes, principal: Principal, read_at: float) -> None:
        """Remember a check whose read began at `read_at` (time.monotonic()), unless a change
        may have been uncommitted then."""
        if not self._trusted(read_at):
            return
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.pop(next(iter(self._entries)))  # the oldest
            self._entries[digest] = (read_at, principal)
