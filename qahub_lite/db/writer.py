"""The single writer: one thread owns the one read-write connection; everything that writes
is queued to it as a plain function `fn(conn, *args)` and awaited (STYLE.md habit 1).

Group commit: the thread takes every operation waiting in the queue (up to
`max_group_commit`), runs them inside one write transaction (engine.py: `BEGIN IMMEDIATE` on
SQLite, `BEGIN` and the write lock on PostgreSQL), and only then answers
each caller. So an awaited write is committed (a 2xx means durable), and under load many
writes share one fsync. Each operation runs inside its own SAVEPOINT: one that raises is
rolled back alone and its caller gets the exception, the others still commit. A driver
exception reaches the caller as a storage error (errors.py), never as the driver's own.

Why a thread of our own and not aiosqlite here: aiosqlite is also "a thread with a
connection and a queue", but it runs one statement per hop and offers no public way to run a
batch of Python functions inside one transaction on its thread, which group commit needs.
Readers run the same way, on threads of their own (readers.py).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import StorageError, WriterClosed, translate

log = logging.getLogger("qahub.db.writer")
T = TypeVar("T")

_STOP = object()


# Upper bounds in seconds of the commit-duration histogram on /metrics: one fsync is ~0.2 ms
# on the reference machine and a 10,000-result ingest ~60 ms (DESIGN.md); the upper buckets
# show a disk in trouble or a write operation doing too much.
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class WriterStats:
    """Figures for /metrics."""

    bounds = COMMIT_BUCKETS  # read through the stats, so that /metrics needs nothing of db/

    def __init__(self) -> None:
        self.commits = 0
        self.operations = 0
        self.failed_commits = 0
        self.commit_seconds_total = 0.0
        self.last_commit_seconds = 0.0
        # Transactions per COMMIT_BUCKETS bound (not cumulative; longer ones count only in `commits`).
        self.commit_buckets = [0] * len(COMMIT_BUCKETS)

    def observe_commit(self, seconds: float) -> None:
        for index, bound in enumerate(COMMIT_BUCKETS):
            if seconds <= bound:
                self.commit_buckets[index] += 1
                return


class Writer:
    def __init__(self, engine, *, max_group: int = 256) -> None:
        self.engine = engine  # engine.py: how to connect and how a write transaction begins
        self._max_group = max_group
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.stats = WriterStats()
        # Called on the writer thread with the value of every operation that committed; /metrics
        # counts ingested results this way, whichever dialect's handler queued the ingest.
        self.on_commit: list[Callable[[Any], None]] = []

    def start(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            try:
                conn = self.engine.open_writer()
            except BaseException as exc:  # reported to start() below
                failure.append(exc)
                ready.set()
                return
            ready.set()
            try:
                self._serve(conn)
            finally:
                self._conn.close()

        self._thread = threading.Thread(target=main, name="qahub-writer", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` in the writer's transaction; return once it is committed."""
        if self._closed:
            raise WriterClosed("the database writer is stopped")
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._queue.put((fn, args, future, loop))
        return await future

    def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """The same from a thread that is not the event loop's (CLI, background threads)."""
        if self._closed:
            raise WriterClosed("the database writer is stopped")
        done = threading.Event()
        box: list[Any] = []

        def finish(ok: bool, value: Any) -> None:
            box.append((ok, value))
            done.set()

        self._queue.put((fn, args, finish, None))
        done.wait()
        ok, value = box[0]
        if ok:
            return value
        raise value

    def stop(self) -> None:
        """Drain every queued write, then close the connection (after a WAL checkpoint)."""
        if self._thread is None or self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()

    # --- the writer thread -------------------------------------------------------------

    def _serve(self, conn) -> None:
        self._conn = conn
        while True:
            first = self._queue.get()
            batch = [] if first is _STOP else [first]
            stopping = first is _STOP
            while len(batch) < self._max_group and not stopping:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                else:
                    batch.append(item)
            if batch:
                self._commit_batch(self._connection(), batch)
            if stopping:
                # Writes queued after the stop marker are drained too: nothing acknowledged is lost.
                rest = []
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not _STOP:
                        rest.append(item)
                if rest:
                    self._commit_batch(self._connection(), rest)
                self.engine.at_writer_stop(self._conn)
                return

    def _take_waiting(self, batch: list) -> None:
        while len(batch) < self._max_group:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is _STOP:
                self._queue.put(_STOP)  # seen by _serve after this batch, which drains the rest
                return
            batch.append(item)

    def _connection(self):
        """The writer's connection, opened again when the server dropped it (a PostgreSQL restart
        or failover): the batch that found it broken failed; the next one gets a new connection."""
        if self.engine.is_broken(self._conn):
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - it is broken already
                pass
            try:
                self._conn = self.engine.open_writer()
                log.warning("the database connection was lost and is open again")
            except Exception as exc:  # noqa: BLE001 - the batch fails with it below
                log.error("the database connection is lost and cannot be opened again: %s", exc)
        return self._conn

    def _commit_batch(self, conn, batch: list) -> None:
        started = time.perf_counter()
        outcomes: list[tuple[bool, Any]] = []
        try:
            self.engine.begin_write(conn)
            if self.engine.shares_write_lock:
                # Other nodes' writers held the lock while this one waited: what was queued
                # meanwhile joins this transaction instead of waiting for the next one.
                self._take_waiting(batch)
            for index, (fn, args, _, _) in enumerate(batch):
                savepoint = f"op{index}"
                conn.execute(f"SAVEPOINT {savepoint}")
                try:
                    value = fn(conn, *args)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    if not conn.in_transaction:
                        # SQLite rolled the whole transaction back itself (it does on SQLITE_FULL,
                        # SQLITE_IOERR, ...): the operations before this one are lost too, and
                        # every caller must hear the real cause, not "no such savepoint".
                        raise _TransactionLost(exc) from exc
                    conn.execute(f"ROLLBACK TO {savepoint}")
                    conn.execute(f"RELEASE {savepoint}")
                    outcomes.append((False, translate(exc)))
                else:
                    if not conn.in_transaction:
                        # The operation swallowed an error that ended the transaction: what it
                        # and the others did cannot be trusted to be committed together.
                        raise _TransactionLost(StorageError("a write operation ended its transaction"))
                    conn.execute(f"RELEASE {savepoint}")
                    outcomes.append((True, value))
            conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - the commit itself failed: nobody succeeded
            if isinstance(exc, _TransactionLost):
                exc = exc.cause
            log.error("write transaction failed: %s", exc)
            self.stats.failed_commits += 1
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except Exception:  # noqa: BLE001 - the connection may be gone with the cause
                    pass
            outcomes = [(False, translate(exc))] * len(batch)
        elapsed = time.perf_counter() - started
        self.stats.commits += 1
        self.stats.operations += len(batch)
        self.stats.commit_seconds_total += elapsed
        self.stats.last_commit_seconds = elapsed
        self.stats.observe_commit(elapsed)
        for observe in self.on_commit:
            for ok, value in outcomes:
                if ok:
                    try:
                        observe(value)
                    except Exception:  # noqa: BLE001 - an observer must never fail a commit
                        log.exception("commit observer failed")
        for (_, _, target, loop), (ok, value) in zip(batch, outcomes):
            if loop is None:
                target(ok, value)
            else:
                loop.call_soon_threadsafe(_resolve, target, ok, value)


class _TransactionLost(Exception):
    """An operation failed in a way that ended the batch's transaction; carries the cause."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _resolve(future: asyncio.Future, ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
