"""Storage of runs: the `runs` rows, their counts and lifecycle columns, and the lookups the
gate, the comparison and the timings make by project and branch.

Rows are sqlite3.Row (read them by column name); callers build their own types from them.
"""

from __future__ import annotations

from collections.abc import Sequence

RUN_COLUMNS = (
    "id, short_id, project_id, name, environment, framework, source, status, branch, commit_sha, pr_number, "
    "pr_url, repository, ci_provider, build_url, created_at, started_at, finished_at, duration_ms, total, passed, "
    "failed, broken, skipped, unknown, pending, flaky"
)
COUNT_COLUMNS = ("total", "passed", "failed", "broken", "skipped", "unknown", "pending", "flaky")

# A run's verdict as a filter: the same rule as core/runs.verdict, said in SQL.
VERDICT_SQL = {
    "FAILED": "(status = 'ERROR' OR (status = 'COMPLETED' AND (failed > 0 OR broken > 0)))",
    "SKIPPED": "(status = 'COMPLETED' AND failed = 0 AND broken = 0 AND total > 0 AND skipped = total)",
    "PASSED": "(status = 'COMPLETED' AND failed = 0 AND broken = 0 AND NOT (total > 0 AND skipped = total))",
}


def insert_run(conn, values: dict) -> bool:
    """Insert a run row (`values` names every column); False when its short id is taken
    already (the caller draws another), without the driver's error leaving this module."""
    # Looked up first, not caught as the driver's error: on PostgreSQL a failed statement spoils
    # the rest of its transaction. Writes are serial (engine.py), so nothing slips in between.
    if conn.execute("SELECT 1 FROM runs WHERE short_id = ?", (values["short_id"],)).fetchone() is not None:
        return False
    columns = ", ".join(values)
    conn.execute(f"INSERT INTO runs ({columns}) VALUES ({','.join('?' * len(values))})", tuple(values.values()))
    return True


def find_run(conn, tenant_id: str, run_ref: str):
    """A run of the tenant by id or short id, or None."""
    return conn.execute(
        f"SELECT {RUN_COLUMNS} FROM runs WHERE (id = ? OR short_id = ?) AND tenant_id = ?",
        (run_ref, run_ref, tenant_id),
    ).fetchone()


def find_run_of_any_tenant(conn, run_ref: str):
    """A run by id or short id, whichever tenant's, with its tenant_id; or None. For the callers
    that check ownership themselves (a dialect's poll answers 404 for another tenant's run)."""
    return conn.execute(
        f"SELECT tenant_id, {RUN_COLUMNS} FROM runs WHERE id = ? OR short_id = ?", (run_ref, run_ref),
    ).fetchone()


def run_place(conn, tenant_id: str, run_id: str):
    """(project_id, short_id, branch) of a run of the tenant, or None."""
    return conn.execute(
        "SELECT project_id, short_id, branch FROM runs WHERE id = ? AND tenant_id = ?", (run_id, tenant_id)
    ).fetchone()


def run_branch(conn, run_id: str) -> str | None:
    row = conn.execute("SELECT branch FROM runs WHERE id = ?", (run_id,)).fetchone()
    return row["branch"] if row else None


def run_short_id(conn, run_id: str) -> str | None:
    row = conn.execute("SELECT short_id FROM runs WHERE id = ?", (run_id,)).fetchone()
    return row["short_id"] if row else None


def list_runs(
    conn, tenant_id: str, *, equal: dict, verdict: str | None, since: int | None, until: int | None,
    after: tuple[int, str] | None, limit: int,
) -> list:
    """Runs of the tenant newest first; `equal` maps column -> value (None: not filtered)."""
    where, params = ["tenant_id = ?"], [tenant_id]
    for column, value in equal.items():
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if verdict is not None:
        where.append(VERDICT_SQL[verdict])
    if since is not None:
        where.append("created_at >= ?")
        params.append(since)
    if until is not None:
        where.append("created_at < ?")
        params.append(until)
    if after:
        where.append("(created_at, id) < (?, ?)")
        params += [after[0], after[1]]
    return conn.execute(
        f"SELECT {RUN_COLUMNS} FROM runs WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT ?",
        (*params, limit),
    ).fetchall()


def set_counts(conn, run_id: str, counts: dict[str, int], *, only_if_more: bool = False) -> None:
    """Store a run's counts (`counts` names COUNT_COLUMNS); `only_if_more`: only when they
    cover more tests than the stored ones."""
    sets = ", ".join(f"{c} = ?" for c in COUNT_COLUMNS)
    params = [*(counts[c] for c in COUNT_COLUMNS), run_id]
    sql = f"UPDATE runs SET {sets} WHERE id = ?"
    if only_if_more:
        sql += " AND total < ?"
        params.append(counts["total"])
    conn.execute(sql, params)


def mark_finished(conn, run_id: str, status: str, now: int) -> None:
    """A run's final status; its duration, unless the sender gave one, runs from its start."""
    conn.execute(
        "UPDATE runs SET status = ?, finished_at = ?, "
        "duration_ms = coalesce(duration_ms, ? - coalesce(started_at, created_at)) WHERE id = ?",
        (status, now, now, run_id),
    )


def delete_run(conn, run_id: str) -> list[str]:
    """Delete a run (its results and their attachment rows go by cascade); the attachment
    hashes its results had, for the files to check once the delete has committed."""
    hashes = [r["sha256"] for r in conn.execute(
        "SELECT DISTINCT a.sha256 FROM attachments a JOIN results r ON r.id = a.result_id WHERE r.run_id = ?",
        (run_id,),
    )]
    conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
    return hashes


_PLACE = "id, short_id, status, branch, commit_sha, created_at"


def find_project_run(conn, project_id: str, run_ref: str):
    """(id, short_id, status, branch, commit_sha, created_at) of a project's run by id or
    short id, or None."""
    return conn.execute(
        f"SELECT {_PLACE} FROM runs WHERE (id = ? OR short_id = ?) AND project_id = ?", (run_ref, run_ref, project_id)
    ).fetchone()


def latest_run_of_branch(
    conn, project_id: str, branch: str | None, statuses: Sequence[str], *, before: tuple[str, int] | None = None,
):
    """The newest run of a branch (None: runs sent without one) in one of `statuses`, or None;
    `before`: (run id, created_at) of a run to look back from (itself left out)."""
    marks = ",".join("?" * len(statuses))
    sql = f"SELECT {_PLACE} FROM runs WHERE project_id = ? AND branch IS ? AND status IN ({marks})"
    params: list = [project_id, branch, *statuses]
    if before is not None:
        sql += " AND id != ? AND created_at <= ?"
        params += list(before)
    return conn.execute(sql + " ORDER BY created_at DESC, id DESC LIMIT 1", params).fetchone()


def completed_run_ids(conn, project_id: str, branch: str, limit: int) -> list[str]:
    """The newest COMPLETED runs of a branch, newest first."""
    return [r["id"] for r in conn.execute(
        "SELECT id FROM runs WHERE project_id = ? AND branch = ? AND status = 'COMPLETED' "
        "ORDER BY created_at DESC, id DESC LIMIT ?", (project_id, branch, limit),
    )]


def project_settings(conn, project_id: str):
    """(default_branch, settings JSON text) of a project, or None."""
    return conn.execute("SELECT default_branch, settings FROM projects WHERE id = ?", (project_id,)).fetchone()

