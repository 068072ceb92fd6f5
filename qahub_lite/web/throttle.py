"""Sign-in rate limiting, in memory: at most `attempts` failed sign-ins per (user name, client
address) within a sliding `window_s`; then every attempt for that pair is refused until the
oldest failure leaves the window, with the wait in seconds.

Why per name *and* address: per name alone would let anyone lock a colleague out by typing
wrong passwords for them; per address alone would let one address try every name. A success
clears the pair's failures. The address is the TCP peer: behind a reverse proxy every client
shares the proxy's address, and the limit becomes per user name (still a limit; headers such
as X-Forwarded-For are not trusted, since any client can send them).

Memory is bounded: pairs whose failures all left the window are forgotten, and beyond
`max_keys` pairs the stalest are dropped first (a flood of made-up names cannot grow it).
qahub-lite serves from one process (server.py), so this in-process state is the whole truth.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable


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
