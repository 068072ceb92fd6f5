"""Plain-tuple reads for the hot analytic and export paths, where tens of thousands of rows
cross into Python and a sqlite3.Row per row would cost more than the query. Functions that
return such rows say so in their docstring, with the column order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .engine import is_postgresql


def fetch_tuples(conn, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    if is_postgresql(conn):
        return conn.execute(sql, params).fetchall()  # its rows are tuples already (postgresql.Row)
    cursor = conn.cursor()
    try:
        cursor.row_factory = None
        return cursor.execute(sql, params).fetchall()
    finally:
        cursor.close()
