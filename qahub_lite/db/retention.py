"""Storage of the retention sweep (core/retention.py): which unlinked results have expired, and
deleting them with their attachment rows."""

from __future__ import annotations

import sqlite3


def expired_unlinked(
    conn: sqlite3.Connection, cutoff_ms: int, limit: int, tenant_id: str | None = None,
    project_id: str | None = None,
) -> list[str]:
    """Ids of up to `limit` unlinked results last updated before `cutoff_ms`, oldest first (of
    one tenant, and one project, when given)."""
    # INDEXED BY is SQLite's (postgresql.py drops it: its planner needs no hint). Always walk the expired unlinked results oldest first along
    # their partial index. Left to itself, SQLite plans the tenant's sweep through the
    # (run_id, test_id) index instead: every batch then reads and sorts all of the tenant's
    # results (minutes per batch at 10M results, bench/bench_scale.py).
    sql = "SELECT id FROM results INDEXED BY results_unlinked_updated WHERE linked = 0 AND updated_at < ?"
    params: list = [cutoff_ms]
    if tenant_id is not None:
        sql += " AND (SELECT tenant_id FROM runs WHERE runs.id = results.run_id) = ?"
        params.append(tenant_id)
    if project_id is not None:
        sql += " AND (SELECT project_id FROM runs WHERE runs.id = results.run_id) = ?"
        params.append(project_id)
    return [r["id"] for r in conn.execute(sql + " ORDER BY updated_at LIMIT ?", (*params, limit))]


def delete_results(conn: sqlite3.Connection, result_ids: list[str]) -> list[str]:
    """Delete results and their attachment rows; returns the attachments' hashes (one per row),
    whose files may go once this has committed."""
    marks = ",".join("?" * len(result_ids))
    hashes = [r["sha256"] for r in conn.execute(
        f"SELECT sha256 FROM attachments WHERE result_id IN ({marks})", result_ids
    )]
    conn.execute(f"DELETE FROM attachments WHERE result_id IN ({marks})", result_ids)
    conn.execute(f"DELETE FROM results WHERE id IN ({marks})", result_ids)
    return hashes
