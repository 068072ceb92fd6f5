"""Read-only connections on a small pool of reader threads (as datasette's `execute_fn`).

Reads run the way writes do (writer.py): a plain function `fn(conn, *args)` is handed to the
pool and awaited. Each thread owns one connection for its whole life, opened with `mode=ro`
and `query_only`, so no code path can write through it and no connection is ever shared
between threads. The event loop never blocks on SQLite.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .connection import open_reader

T = TypeVar("T")


class ReaderPool:
    def __init__(self, path: Path, *, size: int, busy_timeout_ms: int) -> None:
        self.path = path
        self._size = max(1, size)
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def open(self) -> None:
        # Open one connection now so that a missing or unreadable file fails the start, not
        # the first request; the threads open theirs on first use.
        open_reader(self.path, busy_timeout_ms=self._busy_timeout_ms).close()
        self._executor = ThreadPoolExecutor(self._size, thread_name_prefix="qahub-reader")

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = open_reader(self.path, busy_timeout_ms=self._busy_timeout_ms)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _call(self, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        return fn(self._connection(), *args, **kwargs)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(conn, *args, **kwargs)` on a reader thread and return its value."""
        if self._executor is None:
            raise RuntimeError("the reader pool is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(self._call, fn, args, kwargs))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._lock:
            for conn in self._connections:
                # Threads are gone; closing from here is safe (check_same_thread=False).
                conn.close()
            self._connections.clear()
