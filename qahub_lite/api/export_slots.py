"""Exports streaming at once, per key and in all: what one key may take of the server.

An export reads and encodes as fast as its client takes the bytes, on the event loop and the
reader pool every other request shares. 30 concurrent CSV exports of 200,000 results with one
read key (far inside the per-client request cap) held /readyz for 20 s on two cores: every
tenant's requests, and the probes that decide whether the server is alive, waited behind them.
A slot is held for the whole stream, and given back when it ends, fails or the client leaves;
without one the answer is 429 at once, with Retry-After (docs/robustness.md).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from .errors import ApiError

PER_KEY = 2
# An export keeps about one core busy while its client reads fast: twice the cores at once
# keeps /readyz answering (docs/robustness.md), and one key cannot take them all.
TOTAL = 2 * max(2, os.cpu_count() or 2)
RETRY_AFTER_S = 10


class ExportSlots:
    def __init__(self, per_key: int = PER_KEY, total: int = TOTAL) -> None:
        self.per_key, self.total = per_key, total
        self.by_key: dict[str, int] = {}
        self.held = 0

    def take(self, key_id: str) -> None:
        """A slot for `key_id`, or ApiError 429 saying whose limit is reached."""
        if self.by_key.get(key_id, 0) >= self.per_key:
            which = f"this key already has {self.per_key} exports streaming"
        elif self.held >= self.total:
            which = f"the server already streams {self.total} exports"
        else:
            self.held += 1
            self.by_key[key_id] = self.by_key.get(key_id, 0) + 1
            return
        raise ApiError(429, f"Too many exports at once: {which}; ask again in {RETRY_AFTER_S} s",
                       headers={"Retry-After": str(RETRY_AFTER_S)}, retry_after=RETRY_AFTER_S)

    def give_back(self, key_id: str) -> None:
        self.held -= 1
        left = self.by_key[key_id] - 1
        if left:
            self.by_key[key_id] = left
        else:
            del self.by_key[key_id]

    def hold(self, key_id: str, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """`body`, with the slot taken (by `take`) given back however the stream ends."""
        return _Held(self, key_id, body)


class _Held:
    """An iterator, not a generator: a generator's `finally` never runs when it is dropped
    before its first step (a client gone before the response started), and the slot would be
    lost for good. This gives it back at the end, on an error or cancellation, or when dropped."""

    def __init__(self, slots: ExportSlots, key_id: str, body: AsyncIterator[bytes]) -> None:
        self.slots, self.key_id, self.body = slots, key_id, body
        self.released = False

    def __aiter__(self) -> _Held:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.body.__anext__()
        except BaseException:  # the end (StopAsyncIteration), an error, a cancelled stream
            self.release()
            raise

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.slots.give_back(self.key_id)

    def __del__(self) -> None:
        self.release()


def export_slots(extras: dict) -> ExportSlots:
    """The process' one ExportSlots (in the app's services)."""
    slots = extras.get("export_slots")
    if slots is None:
        slots = extras["export_slots"] = ExportSlots()
    return slots
