"""Storage of agent jobs and agents: the queue agents claim from, leases, the tests a job
carries, and the registry of agents (core/jobs.py and core/agents.py hold the rules).

Plain sync functions of a connection: SQL and row shaping only. Rows are read by column name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .engine import is_postgresql


def _marks(values: Sequence) -> str:
    return ",".join("?" * len(values))


# --- agents -------------------------------------------------------------------------------


def agent_name_owner(conn, tenant_id: str, name: str) -> str | None:
    """The key id that holds an agent name, while that key is not revoked."""
    row = conn.execute(
        "SELECT a.key_id FROM agents a JOIN api_keys k ON k.id = a.key_id "
        "WHERE a.tenant_id = ? AND a.name = ? AND k.revoked_at IS NULL",
        (tenant_id, name),
    ).fetchone()
    return None if row is None else row["key_id"]


def upsert_agent(
    conn, *, agent_id: str, tenant_id: str, name: str, key_id: str, hostname: str | None, version: str | None,
    frameworks_json: str, now: int,
) -> str:
    """Create the (tenant, name) row or refresh it; returns the row's id (`agent_id` when new)."""
    row = conn.execute(
        """INSERT INTO agents (id, tenant_id, name, key_id, hostname, version, frameworks, created_at, last_seen_at)
           VALUES (?,?,?,?,?,?,?,?,?)
           ON CONFLICT (tenant_id, name) DO UPDATE SET key_id = excluded.key_id, hostname = excluded.hostname,
               version = excluded.version, frameworks = excluded.frameworks, last_seen_at = excluded.last_seen_at
           RETURNING id""",
        (agent_id, tenant_id, name, key_id, hostname, version, frameworks_json, now, now),
    ).fetchone()
    return row["id"]


def mark_agent_seen(conn, agent_id: str, current_job_id: str | None, now: int) -> None:
    conn.execute(
        "UPDATE agents SET last_seen_at = ?, current_job_id = ? WHERE id = ?", (now, current_job_id, agent_id)
    )


def list_agents(conn, tenant_id: str, project_id: str | None = None) -> list:
    """The tenant's agents by name, with `job_status` (their current job's, or None); for
    `project_id`: only agents running one of its jobs or using a key limited to it."""
    sql = (
        "SELECT a.id, a.name, a.hostname, a.version, a.frameworks, a.current_job_id, a.last_seen_at, a.created_at, "
        "j.status AS job_status FROM agents a LEFT JOIN jobs j ON j.id = a.current_job_id WHERE a.tenant_id = ?"
    )
    params: list = [tenant_id]
    if project_id is not None:
        sql += " AND (j.project_id = ? OR a.key_id IN (SELECT id FROM api_keys WHERE project_id = ?))"
        params += [project_id, project_id]
    return conn.execute(sql + " ORDER BY a.name", params).fetchall()


def delete_keys_named(conn, tenant_id: str, name: str) -> None:
    """Delete a tenant's API keys of one name (the embedded agent's keys of earlier starts)."""
    conn.execute("DELETE FROM api_keys WHERE tenant_id = ? AND name = ?", (tenant_id, name))


# --- the queue ------------------------------------------------------------------------------


def job_exists(conn, tenant_id: str, job_id: str, project_id: str | None = None) -> bool:
    sql, params = "SELECT 1 FROM jobs WHERE id = ? AND tenant_id = ?", [job_id, tenant_id]
    if project_id is not None:
        sql += " AND project_id = ?"
        params.append(project_id)
    return conn.execute(sql, params).fetchone() is not None


def _queued_where(tenant_id: str, frameworks: Sequence[str], project_id: str | None) -> tuple[str, list]:
    where = f"j.tenant_id = ? AND j.status = 'QUEUED' AND j.framework IN ({_marks(frameworks)})"
    params: list = [tenant_id, *frameworks]
    if project_id is not None:
        where += " AND j.project_id = ?"
        params.append(project_id)
    return where, params


def _tie(conn) -> str:
    """What orders jobs created in the same millisecond: SQLite's rowid is their insertion order;
    PostgreSQL has none, and the job id (random) is a stable order there."""
    return "j.id" if is_postgresql(conn) else "j.rowid"


def queued_jobs_of_finished_runs(
    conn, tenant_id: str, frameworks: Sequence[str], project_id: str | None, finished: Iterable[str],
) -> list:
    """(id, run_status) of queued jobs a claim could take whose run is in a `finished` status,
    oldest first."""
    where, params = _queued_where(tenant_id, frameworks, project_id)
    finished = sorted(finished)
    return conn.execute(
        f"SELECT j.id, r.status AS run_status FROM jobs j JOIN runs r ON r.id = j.run_id "
        f"WHERE {where} AND r.status IN ({_marks(finished)}) ORDER BY j.created_at, {_tie(conn)}",
        [*params, *finished],
    ).fetchall()


def claim_oldest_job(
    conn, tenant_id: str, frameworks: Sequence[str], project_id: str | None, *, finished: Iterable[str],
    agent_id: str, token_hash: bytes, lease_expires_at: int, now: int,
):
    """THE claim: the oldest queued job of `frameworks` (and `project_id`) whose run is in none
    of the `finished` statuses becomes RUNNING, leased to `agent_id`. Returns its (id, run_id)
    row, or None. Atomic because write transactions run one at a time on every engine
    (engine.py); on PostgreSQL the row is also locked (`FOR UPDATE OF j SKIP LOCKED`), so that
    concurrent claims would pass each other instead of taking the same job even without it."""
    where, params = _queued_where(tenant_id, frameworks, project_id)
    finished = sorted(finished)
    lock = " FOR UPDATE OF j SKIP LOCKED" if is_postgresql(conn) else ""
    row = conn.execute(
        f"SELECT j.id, j.run_id FROM jobs j JOIN runs r ON r.id = j.run_id "
        f"WHERE {where} AND r.status NOT IN ({_marks(finished)}) "
        f"ORDER BY j.created_at, {_tie(conn)} LIMIT 1{lock}",
        [*params, *finished],
    ).fetchone()
    if row is not None:
        conn.execute(
            "UPDATE jobs SET status = 'RUNNING', agent_id = ?, lease_token_hash = ?, lease_expires_at = ?, "
            "claimed_at = ? WHERE id = ?",
            (agent_id, token_hash, lease_expires_at, now, row["id"]),
        )
    return row


def start_job_tests(conn, run_id: str, job_id: str, now: int) -> None:
    """The pending results of a job's tests become RUNNING, and so does a pending run."""
    conn.execute(
        "UPDATE results SET status = 'RUNNING', executed_at = coalesce(executed_at, ?), updated_at = ? "
        "WHERE run_id = ? AND status = 'PENDING' AND test_id IN (SELECT test_id FROM executions WHERE job_id = ?)",
        (now, now, run_id, job_id),
    )


def start_run(conn, run_id: str, now: int) -> None:
    conn.execute(
        "UPDATE runs SET status = 'RUNNING', started_at = coalesce(started_at, ?) WHERE id = ? AND status = 'PENDING'",
        (now, run_id),
    )


def claimed_job(conn, job_id: str):
    """A job with what its agent needs of the run (the CI context), in one row."""
    return conn.execute(
        "SELECT j.id, j.run_id, r.short_id, j.project_id, j.framework, j.options, r.ci_provider, r.branch, "
        "r.commit_sha, r.pr_number, r.pr_url, r.repository FROM jobs j JOIN runs r ON r.id = j.run_id WHERE j.id = ?",
        (job_id,),
    ).fetchone()


def job_tests(conn, job_id: str) -> list:
    """A job's tests in their triggered order: execution_id, test_id, test_case_id, code, title,
    suite_path, grep, file."""
    return conn.execute(
        "SELECT e.id AS execution_id, e.test_id, t.test_case_id, c.code, t.title, t.suite_path, e.grep, e.file "
        "FROM executions e JOIN tests t ON t.id = e.test_id LEFT JOIN test_cases c ON c.id = t.test_case_id "
        "WHERE e.job_id = ? ORDER BY e.position",
        (job_id,),
    ).fetchall()


# --- leases -------------------------------------------------------------------------------


def job_lease(conn, tenant_id: str, job_id: str):
    """status, run_id, run_status, agent_id, lease_expires_at, lease_token_hash; None for
    another tenant's job."""
    return conn.execute(
        "SELECT j.status, j.run_id, r.status AS run_status, j.agent_id, j.lease_expires_at, j.lease_token_hash "
        "FROM jobs j JOIN runs r ON r.id = j.run_id WHERE j.id = ? AND j.tenant_id = ?",
        (job_id, tenant_id),
    ).fetchone()


def job_state(conn, job_id: str):
    """status, message, lease_expires_at."""
    return conn.execute("SELECT status, message, lease_expires_at FROM jobs WHERE id = ?", (job_id,)).fetchone()


def run_status(conn, run_id: str) -> str:
    return conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()["status"]


def renew_lease(conn, job_id: str, lease_expires_at: int) -> None:
    conn.execute("UPDATE jobs SET lease_expires_at = ? WHERE id = ?", (lease_expires_at, job_id))


def library_codes_of_run(conn, run_id: str, codes: Sequence[str]) -> set[str]:
    """Which of `codes` are test case codes of the run's project."""
    return {row["code"] for row in conn.execute(
        "SELECT c.code FROM test_cases c JOIN runs r ON r.project_id = c.project_id "
        f"WHERE r.id = ? AND c.code IN ({_marks(codes)})",
        (run_id, *codes),
    )}


def result_ids_of_job(conn, job_id: str) -> dict[str, int]:
    """Execution id -> the id of its result in the run."""
    return {row["execution_id"]: row["result_id"] for row in conn.execute(
        "SELECT e.id AS execution_id, r.id AS result_id FROM executions e "
        "JOIN results r ON r.run_id = e.run_id AND r.test_id = e.test_id WHERE e.job_id = ?",
        (job_id,),
    )}


def unfinished_tests_of_job(conn, job_id: str) -> list:
    """test_case_id, suite_path, title of a job's tests whose result is still PENDING or RUNNING."""
    return conn.execute(
        "SELECT t.test_case_id, t.suite_path, t.title FROM executions e "
        "JOIN results r ON r.run_id = e.run_id AND r.test_id = e.test_id JOIN tests t ON t.id = e.test_id "
        "WHERE e.job_id = ? AND r.status IN ('PENDING', 'RUNNING')",
        (job_id,),
    ).fetchall()


# --- endings --------------------------------------------------------------------------------


def close_job(conn, job_id: str, status: str, message: str | None, now: int):
    """End a job (its agent is no longer busy with it). Returns run_id, tenant_id, run_status
    and how many of the run's jobs are still open (open_jobs) or ended ERROR or TIMEOUT
    (bad_jobs)."""
    conn.execute(
        "UPDATE jobs SET status = ?, message = ?, finished_at = ?, lease_expires_at = NULL WHERE id = ?",
        (status, message, now, job_id),
    )
    conn.execute("UPDATE agents SET current_job_id = NULL WHERE current_job_id = ?", (job_id,))
    return conn.execute(
        "SELECT j.run_id, j.tenant_id, r.status AS run_status, "
        "(SELECT count(*) FROM jobs o WHERE o.run_id = j.run_id AND o.status IN ('QUEUED', 'RUNNING')) AS open_jobs, "
        "(SELECT count(*) FROM jobs o WHERE o.run_id = j.run_id AND o.status IN ('ERROR', 'TIMEOUT')) AS bad_jobs "
        "FROM jobs j JOIN runs r ON r.id = j.run_id WHERE j.id = ?",
        (job_id,),
    ).fetchone()


def expired_leases(conn, now: int) -> list:
    """id, tenant_id, run_id, agent_name, last_seen_at of running jobs whose lease ran out."""
    return conn.execute(
        "SELECT j.id, j.tenant_id, j.run_id, a.name AS agent_name, a.last_seen_at FROM jobs j "
        "LEFT JOIN agents a ON a.id = j.agent_id WHERE j.status = 'RUNNING' AND j.lease_expires_at < ?",
        (now,),
    ).fetchall()


def queued_before(conn, before_ms: int) -> list:
    """id, tenant_id, run_id, framework of jobs queued before `before_ms` and still unclaimed."""
    return conn.execute(
        "SELECT id, tenant_id, run_id, framework FROM jobs WHERE status = 'QUEUED' AND created_at < ?",
        (before_ms,),
    ).fetchall()
