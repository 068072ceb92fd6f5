"""Task leases: which node runs a coordinated maintenance task this round (maintenance.py; the
table is migration 0012's).

Each operation is one write transaction. On PostgreSQL every write transaction of every node
takes the same advisory lock first (engine.py), so "take the lease if it ran out or is already
mine" reads and writes with no other node in between: two nodes never both get it. On SQLite
there is one node (the data folder's lock), and the same code simply always finds its own lease.

Time is the database server's on PostgreSQL, not each node's: nodes on several machines compare
one clock, so a node whose clock runs ahead cannot take a lease that has not run out yet.
"""

from __future__ import annotations

import os
import secrets
import socket
import time


def node_identity() -> str:
    """This process's name in the leases and in the logs: hostname:pid:random. The random part
    tells a restarted process (which may get the same pid in a container) from its predecessor."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _now_ms(conn, fallback_ms: int) -> int:
    # Not postgresql.is_postgresql: importing that module loads psycopg, which SQLite hubs never do.
    if getattr(conn, "engine", "sqlite") == "postgresql":
        return int(conn.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint").fetchone()[0])
    return fallback_ms


def claim(conn, name: str, holder: str, ttl_ms: int, now_ms: int) -> str | None:
    """Writer operation: take `name`'s lease for `ttl_ms` when nobody holds it, its holder's ran
    out, or `holder` holds it already. Returns None when `holder` has it now, else who holds it."""
    now = _now_ms(conn, now_ms)
    conn.execute(
        "INSERT INTO task_leases (name, holder, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
        "WHERE task_leases.holder = excluded.holder OR task_leases.expires_at <= ?",
        (name, holder, now + ttl_ms, now),
    )
    current = conn.execute("SELECT holder FROM task_leases WHERE name = ?", (name,)).fetchone()[0]
    return None if current == holder else current


def renew(conn, name: str, holder: str, ttl_ms: int, now_ms: int) -> bool:
    """Writer operation: move the end of `holder`'s lease of `name` to `ttl_ms` from now. False
    when `holder` no longer holds it (it ran out and another node took it)."""
    now = _now_ms(conn, now_ms)
    cur = conn.execute("UPDATE task_leases SET expires_at = ? WHERE name = ? AND holder = ?",
                       (now + ttl_ms, name, holder))
    return cur.rowcount == 1


def release(conn, names: list[str], holder: str, now_ms: int) -> None:
    """Writer operation: end `holder`'s leases of `names` now. The rows stay, naming the last
    holder (for an operator asking who ran a task last)."""
    now = _now_ms(conn, now_ms)
    conn.executemany("UPDATE task_leases SET expires_at = ? WHERE name = ? AND holder = ? AND expires_at > ?",
                     [(now, name, holder, now) for name in names])


def holders(conn) -> list[tuple[str, str, int]]:
    """(name, holder, expires_at) of every lease, by name."""
    return [(r[0], r[1], r[2]) for r in conn.execute("SELECT name, holder, expires_at FROM task_leases ORDER BY name")]


class TaskLeases:
    """The leases of one node, as maintenance.py's scheduler uses them (its `Leases`)."""

    def __init__(self, db, holder: str | None = None) -> None:
        self.db = db  # database.py's Database: each call is one committed write
        self.holder = holder or node_identity()

    async def claim(self, name: str, ttl_s: float) -> str | None:
        return await self.db.write(claim, name, self.holder, int(ttl_s * 1000), _wall_ms())

    async def renew(self, name: str, ttl_s: float) -> bool:
        return await self.db.write(renew, name, self.holder, int(ttl_s * 1000), _wall_ms())

    async def release(self, names: list[str]) -> None:
        await self.db.write(release, names, self.holder, _wall_ms())


def _wall_ms() -> int:
    return int(time.time() * 1000)
