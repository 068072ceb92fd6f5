"""PostgreSQL through psycopg 3, behind the same surface as SQLite's driver (engine: postgresql).

The storage functions of db/ are written once, against the sqlite3 surface: `conn.execute(sql,
params)` with `?` placeholders, rows read by name or position, `cursor.rowcount`. `Connection`
gives a psycopg connection that surface, and `translate_sql` rewrites the few spellings the two
engines do not share, once per statement text (cached):

- `?` becomes `%s` (and a literal `%` becomes `%%`), outside quoted strings;
- `x IS ?` / `x IS NOT ?` (SQLite's null-safe comparison) become `IS [NOT] DISTINCT FROM`;
- `INSERT OR IGNORE INTO` becomes `INSERT INTO ... ON CONFLICT DO NOTHING`;
- `INDEXED BY name` (a SQLite planner hint) is dropped: PostgreSQL's planner needs none;
- `CROSS JOIN t ON` (SQLite's way to fix a join order) becomes `JOIN t ON`;
- `total(column)` (SQLite's overflow-free sum, a float) becomes `COALESCE(SUM(column), 0)::float8`.

What cannot be rewritten by spelling (json_each, two-argument min/max) is chosen per engine by the
storage function itself through `engine.is_postgresql(conn)`. Python booleans are bound as integers:
the schema stores flags as integers on both engines.
"""

from __future__ import annotations

import functools
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import pq
from psycopg.adapt import Loader

ENGINE = "postgresql"


# --- statement text ----------------------------------------------------------------------------

_INSERT_OR_IGNORE = re.compile(r"\bINSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
_IS_NOT_PARAM = re.compile(r"\bIS\s+NOT\s+\?", re.IGNORECASE)
_IS_PARAM = re.compile(r"\bIS\s+\?", re.IGNORECASE)
_INDEXED_BY = re.compile(r"\s+INDEXED\s+BY\s+\w+", re.IGNORECASE)
_CROSS_JOIN_ON = re.compile(r"\bCROSS\s+JOIN\s+(\w+(?:\s+(?:AS\s+)?\w+)?)\s+ON\b", re.IGNORECASE)
_RETURNING = re.compile(r"\sRETURNING\s", re.IGNORECASE)
_TOTAL = re.compile(r"\btotal\((\w+(?:\.\w+)?)\)", re.IGNORECASE)


@functools.lru_cache(maxsize=2048)
def translate_sql(sql: str) -> str:
    """The PostgreSQL spelling of a statement written for SQLite (see the module's docstring)."""
    parts = re.split(r"('(?:[^']|'')*')", sql)  # odd indexes are quoted literals: kept as they are
    for index in range(1, len(parts), 2):
        parts[index] = parts[index].replace("%", "%%")  # psycopg reads % even inside literals
    for index in range(0, len(parts), 2):
        code = parts[index].replace("%", "%%")
        code = _IS_NOT_PARAM.sub("IS DISTINCT FROM ?", code)
        code = _IS_PARAM.sub("IS NOT DISTINCT FROM ?", code)
        code = _INDEXED_BY.sub("", code)
        code = _CROSS_JOIN_ON.sub(r"JOIN \1 ON", code)
        code = _TOTAL.sub(r"COALESCE(SUM(\1), 0)::float8", code)
        if re.search(r"\?\d", code):
            raise ValueError("numbered parameters (?1) are not portable: repeat the parameter instead")
        parts[index] = code.replace("?", "%s")
    out = "".join(parts)
    if _INSERT_OR_IGNORE.search(out):
        out = _INSERT_OR_IGNORE.sub("INSERT INTO", out)
        returning = _RETURNING.search(out)
        if returning:
            out = out[: returning.start()] + " ON CONFLICT DO NOTHING" + out[returning.start():]
        else:
            out = out.rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
    return out


def _bind(params: Any) -> Any:
    """Booleans as integers (flags are INTEGER columns on both engines)."""
    if not params:
        return params
    if isinstance(params, dict):
        return {k: int(v) if isinstance(v, bool) else v for k, v in params.items()}
    if any(isinstance(v, bool) for v in params):
        return [int(v) if isinstance(v, bool) else v for v in params]
    return params


# --- rows and cursors --------------------------------------------------------------------------


class Row(tuple):
    """A row read by position or by column name, as sqlite3.Row."""

    __slots__ = ()
    _index: dict[str, int] = {}

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


@functools.lru_cache(maxsize=1024)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"__slots__": (), "_index": {n: i for i, n in enumerate(names)}})


def _row_factory(cursor):
    description = cursor.description
    if description is None:
        return tuple
    cls = _row_class(tuple(d.name for d in description))
    return lambda values: tuple.__new__(cls, values)


class Cursor:
    """The part of sqlite3.Cursor the storage functions use."""

    __slots__ = ("_cur",)

    def __init__(self, cur: psycopg.Cursor) -> None:
        self._cur = cur

    def fetchone(self):
        return self._cur.fetchone() if self._cur.description is not None else None

    def fetchall(self) -> list:
        return self._cur.fetchall() if self._cur.description is not None else []

    def fetchmany(self, size: int = 1) -> list:
        return self._cur.fetchmany(size) if self._cur.description is not None else []

    def __iter__(self):
        if self._cur.description is None:
            return iter(())
        return iter(self._cur)

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    @property
    def description(self):
        return self._cur.description

    @property
    def lastrowid(self):
        raise AttributeError("lastrowid is SQLite's: use INSERT ... RETURNING id on every engine")


class Connection:
    """A psycopg connection with the sqlite3 surface (see the module's docstring)."""

    engine = ENGINE

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Any = ()) -> Cursor:
        cur = self.raw.cursor(row_factory=_row_factory)
        cur.execute(translate_sql(sql), _bind(params) or None)
        return Cursor(cur)

    def executemany(self, sql: str, seq) -> Cursor:
        cur = self.raw.cursor(row_factory=_row_factory)
        cur.executemany(translate_sql(sql), [_bind(p) for p in seq])
        return Cursor(cur)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    @property
    def closed(self) -> bool:
        return self.raw.closed or self.raw.broken

    def commit(self) -> None:
        self.raw.commit()

    def rollback(self) -> None:
        self.raw.rollback()

    def close(self) -> None:
        self.raw.close()


class _NumberLoader(Loader):
    """NUMERIC as int (or float): the schema has no NUMERIC column, but PostgreSQL's sum() of
    BIGINT is NUMERIC, and SQLite's is an integer; a Decimal would reach the JSON encoders."""

    def load(self, data):
        text = bytes(data)
        return float(text) if b"." in text or b"e" in text.lower() else int(text)


# --- connecting --------------------------------------------------------------------------------


def is_url(value: str) -> bool:
    return value.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


def connect(url: str, *, readonly: bool = False, application_name: str = "qahub-lite",
            connect_timeout: int = 10) -> Connection:
    """A connection in autocommit mode: the writer issues BEGIN/COMMIT itself (as on SQLite), and
    every read outside a transaction sees the latest commit. Readers refuse writes, as SQLite's
    query_only readers do."""
    raw = psycopg.connect(url, autocommit=True, application_name=application_name,
                          connect_timeout=connect_timeout)
    raw.adapters.register_loader("numeric", _NumberLoader)
    if readonly:
        raw.execute("SET default_transaction_read_only = on")
    return Connection(raw)
