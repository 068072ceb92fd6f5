"""Storage of run completion (core/run_completion.py): the queue of finished runs waiting for
their work, and what that work reads of a run and its project.

The queue's table keeps its old name, `run_health_queue`: renaming a table takes a migration,
and this name is only ever written here.
"""

from __future__ import annotations

import sqlite3


def queue_run(conn: sqlite3.Connection, run_id: str, at: int) -> None:
    conn.execute("INSERT INTO run_health_queue (run_id, queued_at) VALUES (?, ?)", (run_id, at))


def queued_runs(conn: sqlite3.Connection, limit: int) -> list[sqlite3.Row]:
    """id, run_id of queued runs, first in first out."""
    return conn.execute("SELECT id, run_id FROM run_health_queue ORDER BY id LIMIT ?", (limit,)).fetchall()


def count_attempt(conn: sqlite3.Connection, queue_id: int) -> sqlite3.Row | None:
    """Count one more failed attempt; attempts, run_id after it (None: the row is gone)."""
    conn.execute("UPDATE run_health_queue SET attempts = attempts + 1 WHERE id = ?", (queue_id,))
    return conn.execute("SELECT attempts, run_id FROM run_health_queue WHERE id = ?", (queue_id,)).fetchone()


def dequeue(conn: sqlite3.Connection, queue_id: int) -> bool:
    """Delete a queue row; False when it was gone already."""
    return conn.execute("DELETE FROM run_health_queue WHERE id = ?", (queue_id,)).rowcount > 0


def run_owner(conn: sqlite3.Connection, run_id: str) -> sqlite3.Row | None:
    """tenant_id, project_id of a run."""
    return conn.execute("SELECT tenant_id, project_id FROM runs WHERE id = ?", (run_id,)).fetchone()


def project_of_run(conn: sqlite3.Connection, run_id: str) -> sqlite3.Row | None:
    """settings, default_branch of a run's project, and the run's branch."""
    return conn.execute(
        "SELECT p.settings, p.default_branch, r.branch FROM projects p JOIN runs r ON r.project_id = p.id "
        "WHERE r.id = ?", (run_id,),
    ).fetchone()


def project_names(conn: sqlite3.Connection, project_id: str) -> sqlite3.Row | None:
    """id, slug, name, default_branch of a project (as events name it)."""
    return conn.execute(
        "SELECT id, slug, name, default_branch FROM projects WHERE id = ?", (project_id,)
    ).fetchone()


def project_settings(conn: sqlite3.Connection, project_id: str) -> str | None:
    """A project's settings, as JSON text (None: none, or no such project)."""
    row = conn.execute("SELECT settings FROM projects WHERE id = ?", (project_id,)).fetchone()
    return row["settings"] if row is not None else None
