"""Transitional: read-only aiosqlite connections behind Database.read_async(), removed once
every read is a sync fn(conn) on readers.py's threads.

Each reader is opened with `mode=ro` and `query_only`, so no code path can write through it;
all writes go through the single writer (writer.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite

from .connection import reader_uri


class AsyncReaderPool:
    def __init__(self, path: Path, *, size: int, busy_timeout_ms: int) -> None:
        self.path = path
        self._size = size
        self._busy_timeout_ms = busy_timeout_ms
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all: list[aiosqlite.Connection] = []

    async def open(self) -> None:
        for _ in range(self._size):
            conn = await aiosqlite.connect(reader_uri(self.path), uri=True, isolation_level=None)
            conn.row_factory = sqlite3.Row
            timeout = self._busy_timeout_ms
            # The same reasons as connection.configure(); WAL and synchronous are the writer's
            # business (a read-only connection cannot change the journal mode).
            await conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute("PRAGMA query_only = ON")
            self._all.append(conn)
            self._idle.put_nowait(conn)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[aiosqlite.Connection]:
        conn = await self._idle.get()
        try:
            yield conn
        finally:
            self._idle.put_nowait(conn)

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()
        self._all.clear()
