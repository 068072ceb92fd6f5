"""Work held at once, per key and in all: what one API key may take of the server while its
requests wait or stream (agents' long-polls, exports). A request without a slot is refused at
once with 429 and Retry-After, before it costs anything; a slot is given back however the
request ends (answered, failed, cancelled, or its client gone).

Per node, on both engines, on purpose: with several `qahub serve` nodes on one PostgreSQL
database, each node counts the slots of the requests it holds, and a key may hold `per_key` on
each node. What a slot protects is the node's own: a waiting long-poll holds one of that node's
connections and tasks, a streaming export one of its cores and its reader pool. A shared count
would guard nothing more (another node's export costs this node nothing) and would cost a
database write to take and to give back each slot, plus a way to recover the slots of a node
that died while holding them. The limit a client meets across the whole hub remains the rate
limit (api/ratelimit.py), which is shared. docs/scaling.md ("What is shared") says the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

from .errors import ApiError


class KeyedSlots:
    """`per_key` slots for each key and `total` in all. A refusal says whose limit is reached:
    `refusal` is a sentence with `{which}` (`key_full` or `server_full`) and `{retry_after}`."""

    def __init__(
        self, per_key: int, total: int, *, retry_after_s: int, refusal: str, key_full: str, server_full: str,
    ) -> None:
        self.per_key, self.total = per_key, total
        self.retry_after_s = retry_after_s
        self._refusal, self._key_full, self._server_full = refusal, key_full, server_full
        self.by_key: dict[str, int] = {}
        self.held = 0

    def take(self, key_id: str) -> None:
        """A slot for `key_id`, or ApiError 429."""
        if self.by_key.get(key_id, 0) >= self.per_key:
            which = self._key_full.format(per_key=self.per_key)
        elif self.held >= self.total:
            which = self._server_full.format(total=self.total)
        else:
            self.held += 1
            self.by_key[key_id] = self.by_key.get(key_id, 0) + 1
            return
        retry = self.retry_after_s
        raise ApiError(429, self._refusal.format(which=which, retry_after=retry),
                       headers={"Retry-After": str(retry)}, retry_after=retry)

    def give_back(self, key_id: str) -> None:
        self.held -= 1
        left = self.by_key[key_id] - 1
        if left:
            self.by_key[key_id] = left
        else:
            del self.by_key[key_id]

    @contextlib.contextmanager
    def slot(self, key_id: str) -> Iterator[None]:
        """A slot held for the block."""
        self.take(key_id)
        try:
            yield
        finally:
            self.give_back(key_id)

    def hold(self, key_id: str, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """`body`, with the slot taken (by `take`) given back however the stream ends."""
        return _Held(self, key_id, body)


class _Held:
    """An iterator, not a generator: a generator's `finally` never runs when it is dropped
    before its first step (a client gone before the response started), and the slot would be
    lost for good. This gives it back at the end, on an error or cancellation, or when dropped."""

    def __init__(self, slots: KeyedSlots, key_id: str, body: AsyncIterator[bytes]) -> None:
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
