"""Rate limits: a sliding window per API key and route group.

Why a sliding log and not fixed buckets: a fixed "per minute" bucket lets a client send twice
its limit across a bucket boundary; seed 002 promises a sliding window. The log holds at most
`limit` timestamps per (key, group), so it is exact and its memory is bounded.

Where the windows live depends on the engine (`limiter_for`, chosen once at start):

- SQLite: in this process's memory (`SlidingWindowLimiter`). A SQLite hub is served by one
  process (server.py: one process owns the database and its single writer), so every request
  of every key passes through this one limiter and the counts are exact without shared storage,
  at the cost of a dictionary look-up.
- PostgreSQL: in the database (`SharedWindowLimiter`, core/shared_windows.py), since several
  `qahub serve` nodes share one database behind a load balancer, and a key's 61st QualityPilot
  post in a minute must be refused whichever node receives it. The check and the count run in
  one write transaction, and write transactions run one at a time across all nodes (db/engine.py),
  so the count is exact across nodes too. It costs each limited request a write operation (which
  group commit shares with the node's other writes; docs/scaling.md has the figures).

Exact under concurrency in memory: `hit` checks and records in one step with no await in
between, so two requests on the event loop cannot both take the last slot. The lock keeps that
true should a caller ever run in a worker thread (Litestar runs sync handlers in threads), for
the price of an uncontended acquire.

Limits apply after the key is verified (api/auth.py calls `enforce`), so only real keys get a
window: unknown keys cannot grow this table. Idle windows are forgotten as they age out (in
memory), or deleted when next used and by the `rate-window-prune` task (in the database).
"""
from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping

import msgspec
from litestar import Request

from ..config import RateLimitsConfig
from ..core import shared_windows
from .errors import ApiError

QUALITYPILOT_INGEST = "qualitypilot_ingest"
QUALIGATE = "qualigate"
DEFAULT = "default"
GROUPS = (QUALITYPILOT_INGEST, QUALIGATE, DEFAULT)

# Where a request's decision waits for `headers_middleware` to put it on the answer; its
# presence also marks the request as counted (handlers may authenticate more than once).
SCOPE_KEY = "qahub_ratelimit"

# Seed 004's wording for its 429 body.
EXCEEDED = "Rate limit exceeded. Please try again later."

# Qualigate's routes (seed 004), matched by path so that its handlers need not know about
# limits. `/api/v1/results/{id}` is the native result route, not Qualigate's list.
_QUALIGATE_EXACT = frozenset({"/api/v1/trigger", "/api/v1/results", "/api/v1/ci-config"})
_QUALIGATE_PREFIXES = ("/api/v1/trigger/", "/api/v1/ci-config/")


def route_group(method: str, path: str) -> str:
    path = path.rstrip("/") or "/"
    if path == "/api/v1/test-runs" and method == "POST":
        return QUALITYPILOT_INGEST
    if path in _QUALIGATE_EXACT or path.startswith(_QUALIGATE_PREFIXES):
        return QUALIGATE
    return DEFAULT


class Decision(msgspec.Struct, frozen=True):
    """One request's verdict and the figures its answer carries."""

    allowed: bool
    group: str
    limit: int
    remaining: int
    # Seconds until the oldest request in the window leaves it, i.e. until a slot frees up:
    # the Retry-After of a refused request. Delta seconds, not a timestamp (see docs).
    reset_s: int
    window_s: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        """Seed 002's X-RateLimit-* headers (Retry-After is added to 429 answers only)."""
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset_s).encode()),
            (b"x-ratelimit-window", f"{self.window_s}s".encode()),
        ]


class SlidingWindowLimiter:
    def __init__(
        self, limits: Mapping[str, int], window_s: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        unknown = set(limits) - set(GROUPS)
        if unknown:
            raise ValueError(f"unknown rate-limit groups: {sorted(unknown)}")
        self._limits = {group: limits.get(group, 0) for group in GROUPS}
        self._window = window_s
        self._clock = clock
        # (key id, group) -> timestamps of the requests allowed in the window, oldest first.
        # Ordered by last use, so the least recently used window is always at the front.
        self._windows: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: RateLimitsConfig) -> SlidingWindowLimiter:
        limits = {QUALITYPILOT_INGEST: cfg.qualitypilot_ingest, QUALIGATE: cfg.qualigate, DEFAULT: cfg.default}
        return cls(limits, cfg.window_s)

    def __len__(self) -> int:
        """Windows held in memory (one per key and group used recently)."""
        return len(self._windows)

    async def count(self, key_id: str, group: str) -> Decision | None:
        """`hit`, behind the interface the shared limiter has (the app awaits either)."""
        return self.hit(key_id, group)

    def hit(self, key_id: str, group: str) -> Decision | None:
        """Count one request of `key_id` in `group`; None when the group has no limit."""
        limit = self._limits[group]
        if limit <= 0:
            return None
        with self._lock:
            now = self._clock()
            horizon = now - self._window
            self._forget_idle(horizon)
            slot = (key_id, group)
            stamps = self._windows.get(slot)
            if stamps is None:
                stamps = self._windows[slot] = deque()
            else:
                self._windows.move_to_end(slot)
                while stamps and stamps[0] <= horizon:
                    stamps.popleft()
            allowed = len(stamps) < limit
            if allowed:
                stamps.append(now)
            # Not empty here: either this request was just recorded, or the window is full.
            reset_s = max(1, math.ceil(stamps[0] + self._window - now))
            return Decision(allowed, group, limit, limit - len(stamps), reset_s, self._window)

    def _forget_idle(self, horizon: float) -> None:
        """Drop windows whose newest request has left the window: they hold nothing.

        Only the front is looked at, so each call costs O(1) amortised; a window refused
        lately (touched but with older stamps) waits its turn and is dropped when it reaches
        the front, which keeps memory bounded by the keys active in about one window."""
        while self._windows:
            slot, stamps = next(iter(self._windows.items()))
            if stamps and stamps[-1] > horizon:
                return
            del self._windows[slot]


class SharedWindowLimiter:
    """The same windows in the database, for several nodes on one PostgreSQL database (see the
    module's docstring). `clock` (seconds) is for tests; by default the database's clock times
    every hit, so that all nodes measure windows against one clock."""

    def __init__(
        self, db, limits: Mapping[str, int], window_s: int, clock: Callable[[], float] | None = None
    ) -> None:
        unknown = set(limits) - set(GROUPS)
        if unknown:
            raise ValueError(f"unknown rate-limit groups: {sorted(unknown)}")
        self._db = db
        self._limits = {group: limits.get(group, 0) for group in GROUPS}
        self._window = window_s
        self._clock = clock

    @classmethod
    def from_config(cls, db, cfg: RateLimitsConfig) -> SharedWindowLimiter:
        limits = {QUALITYPILOT_INGEST: cfg.qualitypilot_ingest, QUALIGATE: cfg.qualigate, DEFAULT: cfg.default}
        return cls(db, limits, cfg.window_s)

    async def count(self, key_id: str, group: str) -> Decision | None:
        """Count one request of `key_id` in `group`; None when the group has no limit."""
        limit = self._limits[group]
        if limit <= 0:
            return None
        now_ms = None if self._clock is None else round(self._clock() * 1000)
        state = await self._db.write(shared_windows.hit, group, key_id, limit, self._window, now_ms)
        reset_s = shared_windows.retry_after_s(state, self._window)
        return Decision(state.allowed, group, limit, limit - state.count, reset_s, self._window)

    async def prune(self) -> int:
        """Delete the hits that left their window, of every key (the `rate-window-prune` task)."""
        now_ms = None if self._clock is None else round(self._clock() * 1000)
        deleted = 0
        for group, limit in self._limits.items():
            if limit > 0:
                deleted += await self._db.write(shared_windows.prune, group, self._window, now_ms)
        return deleted

    async def keys_held(self, group: str) -> int:
        """Keys of `group` with hits stored (tests, figures)."""
        return await self._db.read(shared_windows.subjects, group)


# How often the shared windows are pruned of the hits of keys that went idle (the windows of
# active keys are pruned as they are used): every minute keeps the table near the hits of the
# last window, for one write a minute per node.
PRUNE_INTERVAL_S = 60


def limiter_for(db, cfg: RateLimitsConfig) -> SlidingWindowLimiter | SharedWindowLimiter:
    """The limiter for the engine: in memory on SQLite (one process), in the database on
    PostgreSQL (any number of nodes)."""
    if db.engine.name == "sqlite":
        return SlidingWindowLimiter.from_config(cfg)
    return SharedWindowLimiter.from_config(db, cfg)


async def enforce(request: Request, svc, key_id: str) -> None:
    """Count this request against its key's limit; 429 (seed 004's body) when it is over.

    Called by `authenticate` once the key is known (once per request: it remembers the
    principal); the decision is also kept on the scope for the headers middleware."""
    if SCOPE_KEY in request.scope:
        decision = request.scope[SCOPE_KEY]
    else:
        decision = await svc.ratelimiter.count(key_id, route_group(request.method, request.scope["path"]))
        request.scope[SCOPE_KEY] = decision
        if decision is not None and not decision.allowed:
            svc.metrics.rate_limited[decision.group] += 1
    if decision is not None and not decision.allowed:
        raise ApiError(
            429, EXCEEDED, headers={"Retry-After": str(decision.reset_s)}, retry_after=decision.reset_s
        )


def headers_middleware(app):
    """ASGI middleware: put the X-RateLimit-* headers on every answer to a counted request,
    allowed or refused, whichever part of the app produced the answer."""

    async def middleware(scope, receive, send):
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                decision = scope.get(SCOPE_KEY)
                if decision is not None:
                    message = {**message, "headers": [*message.get("headers", ()), *decision.headers()]}
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware
