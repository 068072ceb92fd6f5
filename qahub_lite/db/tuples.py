"""Reads that hand back plain tuples instead of rows, for the hot analytic paths: an analysis
or an export reads tens of thousands of rows, and building a sqlite3.Row for each costs more
than the query. Callers say so in their docstrings and read such tuples by position."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any


def fetch(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    cursor = conn.cursor()
    try:
        cursor.row_factory = None
        return cursor.execute(sql, params).fetchall()
    finally:
        cursor.close()
