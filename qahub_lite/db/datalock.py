"""Who owns a data folder: the one process that may serve it (or restore into it).

DESIGN.md's rule is one process, one writer. Nothing in SQLite stops a second `qahub serve`
from opening the same database: it would run a second writer and a second in-process rate
limiter, and a restore would swap the files under a live server. So the serving process (and
a restore) holds an exclusive `flock` on `<data folder>/qahub.lock` for its whole life.

Why flock and not a pid file: the kernel drops the lock when the process dies, however it
dies, so there are no stale locks to clean up after a crash or a `kill -9`. The file's content
(pid, what the holder is doing, its URL) is only there to write a useful message.

CLI commands that write through SQLite beside a live server (keys, tenants, sweep, backup) do
not take the lock: SQLite's own locking serialises them with the server's writer.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from .connection import private_dir

LOCK_NAME = "qahub.lock"


class DataFolderInUse(Exception):
    """Another process holds the data folder."""

    def __init__(self, data_dir: Path, holder: dict) -> None:
        self.data_dir = data_dir
        self.holder = holder
        super().__init__(f"{data_dir} is in use by {describe(holder)}")


def describe(holder: dict) -> str:
    """'a qahub server (pid 1234, http://127.0.0.1:8080)' from the lock file's content."""
    what = {"serve": "a qahub server", "restore": "a qahub restore"}.get(holder.get("purpose", ""), "a qahub process")
    details = [f"pid {holder['pid']}"] if holder.get("pid") else []
    if holder.get("url"):
        details.append(holder["url"])
    return f"{what} ({', '.join(details)})" if details else what


class DataFolderLock:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, purpose: str, **info: str) -> None:
        """Take the lock without waiting; raise DataFolderInUse when another process has it."""
        private_dir(self.data_dir)  # the first to create the data folder: 0700 (connection.py)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataFolderInUse(self.data_dir, self.holder()) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "purpose": purpose, **info}).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        # Empty the file before unlocking, so nobody reads a stale pid as a holder's; the file
        # itself stays (removing it would race a process that has just opened it).
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def holder(self) -> dict:
        """What the lock file says about its holder (best effort: for messages only)."""
        try:
            return json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}
