"""Sliding windows kept in the database, for state several `qahub serve` nodes must share on
PostgreSQL: the API's rate limits (api/ratelimit.py) and the dashboard's sign-in throttle
(web/throttle.py). Each operation here runs in one write transaction (`Database.write`), which
is what makes a check-and-count atomic across nodes (db/shared_state.py says why).

Windows are named by a limit (a route group, or SIGN_IN) and a subject (whose window it is).
"""

from __future__ import annotations

import math

from ..db import shared_state
from ..db.shared_state import WindowState

SIGN_IN = "sign_in"

__all__ = ["SIGN_IN", "WindowState", "clear", "hit", "prune", "release_newest", "retry_after_s", "subjects"]


def hit(conn, limit_name: str, subject: str, limit: int, window_s: float, now_ms: int | None = None) -> WindowState:
    """Writer operation: count one hit of `subject` unless its window already holds `limit`."""
    return shared_state.count_hit(conn, limit_name, subject, limit, _ms(window_s), now_ms)


def retry_after_s(state: WindowState, window_s: float) -> int:
    """Whole seconds until the oldest hit leaves the window (at least 1): when a slot frees up."""
    if state.oldest_ms is None:
        return 1
    return max(1, math.ceil((state.oldest_ms + _ms(window_s) - state.now_ms) / 1000))


def release_newest(conn, limit_name: str, subject: str) -> None:
    """Writer operation: take back `subject`'s latest hit."""
    shared_state.forget_newest_hit(conn, limit_name, subject)


def clear(conn, limit_name: str, subject: str) -> None:
    """Writer operation: empty `subject`'s window."""
    shared_state.forget_hits(conn, limit_name, subject)


def prune(conn, limit_name: str, window_s: float, now_ms: int | None = None) -> int:
    """Writer operation: delete the hits of every subject of `limit_name` that left the window."""
    return shared_state.prune_hits(conn, limit_name, _ms(window_s), now_ms)


def subjects(conn, limit_name: str) -> int:
    """Subjects of `limit_name` with hits stored."""
    return shared_state.subjects_with_hits(conn, limit_name)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
