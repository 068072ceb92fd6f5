"""Storage of results: the `results` rows of runs, the `tests` identities they point at, and
the reads made of one run's results (lists, case outcomes, counts, summaries, timings), and the
rows of their attachments.

Rows are sqlite3.Row (read them by column name) unless a docstring says plain tuples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .engine import json_list_holds
from .tuples import fetch_tuples

# SQLite's default limit of host parameters is 32766 on 3.32+, but keep chunks modest.
CHUNK = 500

# A test's display name as stored: its title with its variant ("adds VAT [firefox]"), so that
# the executions of one test in a run stay apart wherever a name is shown (`t` is tests).
TITLE_WITH_VARIANT = "t.title || CASE WHEN t.variant = '' THEN '' ELSE ' [' || t.variant || ']' END"
NAME_COLUMNS = f"t.suite_path, {TITLE_WITH_VARIANT}"

_RESULT_SELECT = (
    "SELECT r.id, r.run_id, r.test_id, t.test_case_id, c.code AS test_case_code, t.title, t.suite_path, r.status, "
    "r.flaky, r.attempts, r.attempt_log, r.duration_ms, r.error_message, r.error_stack, r.comment, "
    "r.bug_ticket_key, r.bug_ticket_url, r.framework, r.file, r.line, r.stdout, r.stderr, r.executed_at, "
    "r.created_at, r.updated_at, t.variant, r.tags "
    "FROM results r JOIN tests t ON t.id = r.test_id LEFT JOIN test_cases c ON c.id = t.test_case_id"
)


def _chunks(values: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def list_results(
    conn, run_id: str, *, statuses: Sequence[str] | None = None, tag: str | None = None,
    after_id: int | None = None, limit: int | None = None,
) -> list:
    """Results of a run with their test's identity, by id (insertion order)."""
    where, params = ["r.run_id = ?"], [run_id]
    if tag:
        where.append(json_list_holds(conn, "r.tags"))  # the stored tag list (JSON text) holds it
        params.append(tag)
    if statuses:
        where.append(f"r.status IN ({','.join('?' * len(statuses))})")
        params += statuses
    if after_id is not None:
        where.append("r.id > ?")
        params.append(after_id)
    sql = f"{_RESULT_SELECT} WHERE {' AND '.join(where)} ORDER BY r.id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return conn.execute(sql, params).fetchall()


def find_result(conn, tenant_id: str, result_id: int):
    """A result of the tenant, shaped as list_results' rows, or None."""
    return conn.execute(
        f"{_RESULT_SELECT} JOIN runs u ON u.id = r.run_id WHERE r.id = ? AND u.tenant_id = ?", (result_id, tenant_id)
    ).fetchone()


def result_in_tenant(conn, tenant_id: str, result_id: int) -> bool:
    return conn.execute(
        "SELECT 1 FROM results r JOIN runs u ON u.id = r.run_id WHERE r.id = ? AND u.tenant_id = ?",
        (result_id, tenant_id),
    ).fetchone() is not None


# --- counts and lifecycle -----------------------------------------------------------------


def count_by_status(conn, run_id: str) -> list:
    """(status, flaky, n) rows of a run's results."""
    return conn.execute(
        "SELECT status, flaky, count(*) AS n FROM results WHERE run_id = ? GROUP BY status, flaky", (run_id,)
    ).fetchall()


def set_status_where(conn, run_id: str, status: str, current: Sequence[str], now: int) -> None:
    """Give `status` to the run's results that are in one of `current`."""
    conn.execute(
        "UPDATE results SET status = ?, updated_at = ? WHERE run_id = ? "
        f"AND status IN ({','.join('?' * len(current))})",
        (status, now, run_id, *current),
    )


# --- a run's linked test cases ------------------------------------------------------------

_CASE_RESULTS = "FROM results r JOIN tests t ON t.id = r.test_id WHERE r.run_id = ? AND t.test_case_id"


def linked_case_ids(conn, run_id: str, after: str, limit: int) -> list[str]:
    """The test case ids the run's results link to, after `after`, by id."""
    return [r["test_case_id"] for r in conn.execute(
        f"SELECT DISTINCT t.test_case_id {_CASE_RESULTS} > ? ORDER BY t.test_case_id LIMIT ?", (run_id, after, limit),
    )]


def case_names(conn, case_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """case id -> (code, title)."""
    marks = ",".join("?" * len(case_ids))
    return {r["id"]: (r["code"], r["title"])
            for r in conn.execute(f"SELECT id, code, title FROM test_cases WHERE id IN ({marks})", case_ids)}


def case_statuses(conn, run_id: str, case_ids: Sequence[str]) -> list:
    """(test_case_id, status, n) rows: how many of each case's results have each status."""
    marks = ",".join("?" * len(case_ids))
    return conn.execute(
        f"SELECT t.test_case_id, r.status, count(*) AS n {_CASE_RESULTS} IN ({marks}) GROUP BY 1, 2",
        (run_id, *case_ids),
    ).fetchall()


def case_variants(conn, run_id: str, case_ids: Sequence[str], per_case: int) -> list:
    """(test_case_id, variant) rows: the first `per_case` variants of each case by name."""
    marks = ",".join("?" * len(case_ids))
    return conn.execute(
        f"SELECT test_case_id, variant FROM (SELECT t.test_case_id, t.variant, row_number() OVER "
        f"(PARTITION BY t.test_case_id ORDER BY t.variant) AS n {_CASE_RESULTS} IN ({marks}) AND t.variant != '') AS ranked "
        "WHERE n <= ? ORDER BY test_case_id, variant", (run_id, *case_ids, per_case),
    ).fetchall()


# --- the ingest's writes ------------------------------------------------------------------


def cases_by_code(conn, project_id: str, codes: Sequence[str]) -> dict[str, tuple[str, str]]:
    """code -> (case id, title) of the project's test cases among `codes`."""
    out: dict[str, tuple[str, str]] = {}
    for chunk in _chunks(codes):
        for row in conn.execute(
            f"SELECT code, id, title FROM test_cases WHERE project_id = ? AND code IN ({','.join('?' * len(chunk))})",
            (project_id, *chunk),
        ):
            out[row["code"]] = (row["id"], row["title"])
    return out


def case_titles(conn, project_id: str, case_ids: Sequence[str]) -> dict[str, str]:
    """case id -> title of the project's test cases among `case_ids`."""
    out: dict[str, str] = {}
    for chunk in _chunks(case_ids):
        for row in conn.execute(
            f"SELECT id, title FROM test_cases WHERE project_id = ? AND id IN ({','.join('?' * len(chunk))})",
            (project_id, *chunk),
        ):
            out[row["id"]] = row["title"]
    return out


def intern_tests(
    conn, project_id: str, wanted: dict[str, tuple[str | None, str, str, str]], now: int,
) -> dict[str, int]:
    """identity -> tests.id for `wanted` (identity -> (case id, suite path, title, variant)),
    creating the missing identities in bulk."""
    conn.executemany(  # INSERT OR IGNORE: postgresql.py spells it ON CONFLICT DO NOTHING
        "INSERT OR IGNORE INTO tests (project_id, test_case_id, suite_path, title, variant, identity, created_at) "
        "VALUES (?,?,?,?,?,?,?)",
        [(project_id, case_id, suite, title, variant, key, now)
         for key, (case_id, suite, title, variant) in wanted.items()],
    )
    ids: dict[str, int] = {}
    for chunk in _chunks(list(wanted)):
        for row in conn.execute(
            f"SELECT identity, id FROM tests WHERE project_id = ? AND identity IN ({','.join('?' * len(chunk))})",
            (project_id, *chunk),
        ):
            ids[row["identity"]] = row["id"]
    return ids


# The order of upsert_results' row tuples.
UPSERT_COLUMNS = (
    "run_id", "test_id", "status", "flaky", "attempts", "duration_ms", "error_message", "error_stack", "comment",
    "bug_ticket_key", "bug_ticket_url", "framework", "file", "line", "stdout", "stderr", "attempt_log", "linked",
    "executed_at", "tags", "created_at", "updated_at", "signature_id",
)


def upsert_results(conn, rows: list[tuple]) -> None:
    """Insert results (tuples in UPSERT_COLUMNS' order) with one `executemany`. The same test in
    the same run is updated, not duplicated (seed 001). An update that leaves a field out keeps
    what was there (a bug ticket added later keeps the duration), except that the error belongs
    to the outcome: a new status brings its own."""
    conn.executemany(
        f"""INSERT INTO results ({', '.join(UPSERT_COLUMNS)})
           VALUES ({','.join('?' * len(UPSERT_COLUMNS))})
           ON CONFLICT (run_id, test_id) DO UPDATE SET
               status = excluded.status, flaky = excluded.flaky, attempts = excluded.attempts,
               duration_ms = coalesce(excluded.duration_ms, results.duration_ms),
               error_message = CASE WHEN excluded.status = results.status
                   THEN coalesce(excluded.error_message, results.error_message) ELSE excluded.error_message END,
               error_stack = CASE WHEN excluded.status = results.status
                   THEN coalesce(excluded.error_stack, results.error_stack) ELSE excluded.error_stack END,
               comment = coalesce(excluded.comment, results.comment),
               bug_ticket_key = coalesce(excluded.bug_ticket_key, results.bug_ticket_key),
               bug_ticket_url = coalesce(excluded.bug_ticket_url, results.bug_ticket_url),
               framework = coalesce(excluded.framework, results.framework),
               file = coalesce(excluded.file, results.file), line = coalesce(excluded.line, results.line),
               stdout = excluded.stdout, stderr = excluded.stderr, attempt_log = excluded.attempt_log,
               executed_at = coalesce(excluded.executed_at, results.executed_at),
               tags = coalesce(excluded.tags, results.tags),
               signature_id = excluded.signature_id,
               updated_at = excluded.updated_at""",
        rows,
    )


def set_test_tags(conn, pairs: list[tuple[str, int]]) -> None:
    """(tags JSON text, test id): a test carries the tags its latest tagged result had."""
    conn.executemany(  # IS NOT ?: postgresql.py spells it IS DISTINCT FROM
        "UPDATE tests SET tags = ? WHERE id = ? AND tags IS NOT ?", [(t, i, t) for t, i in pairs]
    )


# --- a run's summary and timings ----------------------------------------------------------


def failures_with_signatures(conn, run_id: str, statuses: Sequence[str], message_chars: int, limit: int) -> list[tuple]:
    """Plain tuples (test_id, suite_path, title with variant, status, message head, signature
    hash, signature example, bug ticket key) of the run's results in `statuses`, by test; a
    merged signature reads as the one it was merged into."""
    marks = ",".join("?" * len(statuses))
    return fetch_tuples(
        conn, f"SELECT r.test_id, {NAME_COLUMNS}, r.status, substr(r.error_message, 1, {int(message_chars)}), "
        "s.hash, s.example, s.bug_ticket_key FROM results r JOIN tests t ON t.id = r.test_id "
        "LEFT JOIN failure_signatures s0 ON s0.id = r.signature_id "
        "LEFT JOIN failure_signatures s ON s.id = coalesce(s0.merged_into, s0.id) "
        f"WHERE r.run_id = ? AND r.status IN ({marks}) ORDER BY r.test_id LIMIT ?",
        (run_id, *statuses, limit),
    )


def flaky_results(conn, run_id: str, limit: int) -> list[tuple]:
    """Plain tuples (suite_path, title with variant, attempts) of the run's flaky results."""
    return fetch_tuples(
        conn, f"SELECT {NAME_COLUMNS}, r.attempts FROM results r JOIN tests t ON t.id = r.test_id "
        "WHERE r.run_id = ? AND r.flaky = 1 ORDER BY r.test_id LIMIT ?", (run_id, limit),
    )


def slowest_results(conn, run_id: str, limit: int) -> list[tuple]:
    """Plain tuples (suite_path, title with variant, duration_ms), slowest first."""
    return fetch_tuples(
        conn, f"SELECT {NAME_COLUMNS}, r.duration_ms FROM results r JOIN tests t ON t.id = r.test_id "
        "WHERE r.run_id = ? AND r.duration_ms IS NOT NULL ORDER BY r.duration_ms DESC, r.test_id LIMIT ?",
        (run_id, limit),
    )


def file_durations(conn, run_id: str) -> list[tuple]:
    """Plain tuples (file, summed duration_ms) of the run's results that name a file."""
    return fetch_tuples(
        conn, "SELECT file, sum(duration_ms) FROM results WHERE run_id = ? AND file IS NOT NULL "
        "AND duration_ms IS NOT NULL GROUP BY file", (run_id,),
    )


def test_durations(conn, run_id: str) -> list[tuple]:
    """Plain tuples (file, suite_path, bare title, duration_ms) of the run's timed results."""
    return fetch_tuples(
        conn, "SELECT r.file, t.suite_path, t.title, r.duration_ms FROM results r JOIN tests t ON t.id = r.test_id "
        "WHERE r.run_id = ? AND r.duration_ms IS NOT NULL", (run_id,),
    )


def statuses_and_durations(conn, run_id: str) -> list[tuple]:
    """Plain tuples (test_id, status, duration_ms) of every result of a run."""
    return fetch_tuples(conn, "SELECT test_id, status, duration_ms FROM results WHERE run_id = ?", (run_id,))


def failing_results(conn, run_id: str, statuses: Sequence[str]) -> list[tuple]:
    """Plain tuples (test_id, status, signature_id) of the run's results in `statuses`."""
    return fetch_tuples(
        conn, f"SELECT test_id, status, signature_id FROM results WHERE run_id = ? "
        f"AND status IN ({','.join('?' * len(statuses))})", (run_id, *statuses),
    )


def signed_results(conn, run_id: str, message_chars: int) -> list[tuple]:
    """Plain tuples (signature_id, test_id, status, message head) of the run's results that
    have a failure signature, by id."""
    return fetch_tuples(
        conn, f"SELECT signature_id, test_id, status, substr(error_message, 1, {int(message_chars)}) FROM results "
        "WHERE run_id = ? AND signature_id IS NOT NULL ORDER BY id", (run_id,),
    )


# --- attachment rows (the files themselves are core/attachments.py's business) -------------

# An attachment is in a project through its result's run: a caller limited to one project must
# not reach another project's files.
_IN_PROJECT = (
    " AND (CAST(? AS TEXT) IS NULL OR EXISTS (SELECT 1 FROM results r JOIN runs ru ON ru.id = r.run_id "
    "WHERE r.id = attachments.result_id AND ru.project_id = ?))"
)


def insert_attachment(conn, values: dict) -> None:
    """Insert an attachment row (`values` names its columns)."""
    conn.execute(
        f"INSERT INTO attachments ({', '.join(values)}) VALUES ({','.join('?' * len(values))})", tuple(values.values())
    )


def list_attachments(conn, result_id: int) -> list:
    """(id, file_name, mime_type, size, created_at) rows of a result's attachments, oldest first."""
    return conn.execute(
        "SELECT id, file_name, mime_type, size, created_at FROM attachments WHERE result_id = ? "
        "ORDER BY created_at, id",
        (result_id,),
    ).fetchall()


def find_attachment(conn, tenant_id: str, attachment_id: str, project_id: str | None = None):
    """(id, file_name, mime_type, size, created_at, sha256) of the tenant's attachment (in
    `project_id` when given), or None."""
    return conn.execute(
        "SELECT id, file_name, mime_type, size, created_at, sha256 FROM attachments WHERE id = ? AND tenant_id = ?"
        + _IN_PROJECT,
        (attachment_id, tenant_id, project_id, project_id),
    ).fetchone()


def delete_attachment(conn, attachment_id: str) -> None:
    conn.execute("DELETE FROM attachments WHERE id = ?", (attachment_id,))


def hash_in_use(conn, sha256: str) -> bool:
    """Whether any attachment row still points at the file of this hash."""
    return conn.execute("SELECT 1 FROM attachments WHERE sha256 = ? LIMIT 1", (sha256,)).fetchone() is not None
