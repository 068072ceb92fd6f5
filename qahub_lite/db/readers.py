"""Read-only connections on a small pool of reader threads (as datasette's `execute_fn`).

Reads run the way writes do (writer.py): a plain function `fn(conn, *args)` is queued to the
pool and awaited. Each thread owns one connection for its whole life, opened read-only
(SQLite: `mode=ro` and `query_only`; PostgreSQL: `default_transaction_read_only`), so no code path can write through it and no connection is ever shared
between threads. The event loop never blocks on SQLite.

The hand-off is the writer's: a queue in, `call_soon_threadsafe` back. It costs a status poll
less than `run_in_executor`, whose concurrent.futures.Future chained to an asyncio one is
about a tenth of a poll's time on the event loop (bench/bench_poll.py).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_STOP = object()


class ReaderPool:
    def __init__(self, engine, *, size: int) -> None:
        self.engine = engine  # engine.py: how to open a read-only connection
        self._size = max(1, size)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def open(self) -> None:
        # Open one connection now so that a missing or unreadable file fails the start, not
        # the first request; each thread then opens its own.
        self.engine.open_reader().close()
        for index in range(self._size):
            thread = threading.Thread(target=self._serve, name=f"qahub-reader-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(conn, *args, **kwargs)` on a reader thread and return its value."""
        if not self._threads:
            raise RuntimeError("the reader pool is not open")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((fn, args, kwargs, future, loop))
        return await future

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def _serve(self) -> None:
        conn = None
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                fn, args, kwargs, future, loop = item
                try:
                    if conn is not None and self.engine.is_broken(conn):
                        conn.close()  # the server dropped it (a restart): this read opens a new one
                        conn = None
                    if conn is None:
                        conn = self.engine.open_reader()
                    outcome = (True, fn(conn, *args, **kwargs))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    outcome = (False, exc)
                try:
                    loop.call_soon_threadsafe(_resolve, future, outcome)
                except RuntimeError:
                    pass  # the loop is closed: nobody waits for this answer any more
        finally:
            if conn is not None:
                conn.close()


def _resolve(future: asyncio.Future, outcome: tuple[bool, Any]) -> None:
    if future.cancelled():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
