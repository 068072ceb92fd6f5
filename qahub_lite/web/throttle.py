"""Sign-in rate limiting, in memory: at most `attempts` failed sign-ins per (user name, client
address) within a sliding `window_s`; then every attempt for that pair is refused until the
oldest failure leaves the window, with the wait in seconds.

An attempt is *reserved* (counted as a failure) before its password is checked, and a success
clears the pair: checking first and counting after let 60 parallel guesses all be checked,
since each was admitted while the others were still hashing. Reserving happens on the event
loop with no await between the look and the count, so it cannot race itself.

Password checks are slow on purpose (scrypt, ~0.3 s of a core), so `HashGate` bounds how many
run or wait at once, in total and per client address; beyond that a sign-in is refused at once
(429) instead of queueing: 150 made-up-name sign-ins from one address would otherwise queue a
real user's sign-in behind 150 hashes (15 s). The gate refuses before the user is looked up,
so its answer says nothing about which names exist.

Why per name *and* address: per name alone would let anyone lock a colleague out by typing
wrong passwords for them; per address alone would let one address try every name. A success
clears the pair's failures. The address is the TCP peer: behind a reverse proxy every client
shares the proxy's address, and the limit becomes per user name (still a limit; headers such
as X-Forwarded-For are not trusted, since any client can send them).

Where the failures are kept depends on the engine (`throttle_for`, chosen once at start):

- SQLite: in memory (`SignInThrottle`). A SQLite hub is served by one process (server.py), so
  this in-process state is the whole truth. Memory is bounded: pairs whose failures all left the
  window are forgotten, and beyond `max_keys` pairs the stalest are dropped first (a flood of
  made-up names cannot grow it).
- PostgreSQL: in the database (`SharedSignInThrottle`, core/shared_windows.py), because behind a
  load balancer a guesser's attempts reach every node: a per-node count would give them the
  budget once per node. Reserving is one write transaction, atomic across nodes (db/engine.py).
  The table holds at most `attempts` rows per pair and is pruned of idle pairs every minute.

`HashGate` stays per node on both engines: what it protects is the CPU of the node that runs
the hashes, and each node's cores are its own (docs/scaling.md, "What is shared").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Callable

from ..core import shared_windows


class SignInThrottle:
    def __init__(
        self, attempts: int, window_s: float, *, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    @staticmethod
    def key(username: str, address: str) -> tuple[str, str]:
        # Names are case-insensitive in the database, so `Admin` and `admin` share a budget.
        return username.strip().lower()[:64], address

    def _prune(self, key: tuple[str, str], now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, username: str, address: str) -> int:
        """Seconds to wait before the next attempt may be checked; 0 when it may be now."""
        now = self._clock()
        times = self._prune(self.key(username, address), now)
        if times is None or len(times) < self.attempts:
            return 0
        return max(1, int(times[0] + self.window_s - now + 0.999))

    def reserve(self, username: str, address: str) -> int:
        """Count an attempt before its password is checked: 0 when it may be checked now (and
        is counted as a failure until `succeeded`), else the seconds to wait (not counted)."""
        wait = self.retry_after(username, address)
        if not wait:
            self.failed(username, address)
        return wait

    def release(self, username: str, address: str) -> None:
        """Give back a reservation whose password was never checked (the gate was full)."""
        times = self._failures.get(self.key(username, address))
        if times:
            times.pop()
            if not times:
                del self._failures[self.key(username, address)]

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        key = self.key(username, address)
        times = self._prune(key, now)
        if times is None:
            times = self._failures[key] = deque(maxlen=self.attempts)
        times.append(now)
        self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, username: str, address: str) -> None:
        self._failures.pop(self.key(username, address), None)

    def __len__(self) -> int:
        return len(self._failures)

    # The interface the login handler awaits, shared with SharedSignInThrottle.

    async def reserve_attempt(self, username: str, address: str) -> int:
        return self.reserve(username, address)

    async def release_attempt(self, username: str, address: str) -> None:
        self.release(username, address)

    async def clear_failures(self, username: str, address: str) -> None:
        self.succeeded(username, address)


class SharedSignInThrottle:
    """SignInThrottle's rule with the failures in the database, for several nodes (see the
    module's docstring). `clock` (seconds) is for tests; by default the database's clock."""

    def __init__(self, db, attempts: int, window_s: float, *, clock: Callable[[], float] | None = None) -> None:
        self._db = db
        self.attempts = attempts
        self.window_s = window_s
        self._clock = clock

    @staticmethod
    def subject(username: str, address: str) -> str:
        # The address first: it holds no newline, so the pair reads back unambiguously whatever
        # the name holds. Names are folded as SignInThrottle.key folds them.
        name, address = SignInThrottle.key(username, address)
        return f"{address}\n{name}"

    def _now_ms(self) -> int | None:
        return None if self._clock is None else round(self._clock() * 1000)

    async def reserve_attempt(self, username: str, address: str) -> int:
        """Count an attempt before its password is checked: 0 when it may be checked now (and
        is counted as a failure until `clear_failures`), else the seconds to wait (not counted)."""
        state = await self._db.write(shared_windows.hit, shared_windows.SIGN_IN, self.subject(username, address),
                                     self.attempts, self.window_s, self._now_ms())
        return 0 if state.allowed else shared_windows.retry_after_s(state, self.window_s)

    async def release_attempt(self, username: str, address: str) -> None:
        """Give back a reservation whose password was never checked (the gate was full)."""
        await self._db.write(shared_windows.release_newest, shared_windows.SIGN_IN, self.subject(username, address))

    async def clear_failures(self, username: str, address: str) -> None:
        """A success clears the pair's failures."""
        await self._db.write(shared_windows.clear, shared_windows.SIGN_IN, self.subject(username, address))

    async def prune(self) -> int:
        """Delete failures that left the window, of every pair (the `rate-window-prune` task)."""
        return await self._db.write(shared_windows.prune, shared_windows.SIGN_IN, self.window_s, self._now_ms())

    async def pairs_held(self) -> int:
        return await self._db.read(shared_windows.subjects, shared_windows.SIGN_IN)


def throttle_for(db, attempts: int, window_s: float) -> SignInThrottle | SharedSignInThrottle:
    """The sign-in throttle for the engine: in memory on SQLite (one process), in the database
    on PostgreSQL (any number of nodes)."""
    if db.engine.name == "sqlite":
        return SignInThrottle(attempts, window_s)
    return SharedSignInThrottle(db, attempts, window_s)


class Busy(Exception):
    """Too many password checks at once; try again after `RETRY_AFTER_S`."""


class HashGate:
    """At most `workers` password checks run at once (one per core: more only share the cores),
    at most `queue` more wait, and one client address holds at most `per_address` of them."""

    RETRY_AFTER_S = 2

    def __init__(self, workers: int | None = None, *, queue: int | None = None, per_address: int = 2) -> None:
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.queue = self.workers * 4 if queue is None else queue
        self.per_address = per_address
        self._running = asyncio.Semaphore(self.workers)
        self._admitted = 0
        self._by_address: Counter[str] = Counter()

    @contextlib.asynccontextmanager
    async def slot(self, address: str) -> AsyncIterator[None]:
        if self._admitted >= self.workers + self.queue or self._by_address[address] >= self.per_address:
            raise Busy()
        self._admitted += 1
        self._by_address[address] += 1
        try:
            async with self._running:
                yield
        finally:
            self._admitted -= 1
            self._by_address[address] -= 1
            if not self._by_address[address]:
                del self._by_address[address]
