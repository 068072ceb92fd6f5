"""Storage of failure signatures (what broke), their branches and tests, a project's mask
rules, triage, and the gate's recorded verdicts.

Rows are sqlite3.Row (read them by column name) unless a docstring says plain tuples.
"""

from __future__ import annotations

from collections.abc import Sequence

from .engine import is_postgresql
from .results import CHUNK
from .tuples import fetch_tuples


def mask_patterns(conn, project_id: str) -> tuple[str, ...]:
    return tuple(r["pattern"] for r in conn.execute(
        "SELECT pattern FROM signature_rules WHERE project_id = ? ORDER BY id", (project_id,)))


def signature_ids(conn, project_id: str, hashes: Sequence[str]) -> dict[str, tuple[int, int | None]]:
    """hash -> (id, merged_into) of the project's signatures among `hashes`."""
    out: dict[str, tuple[int, int | None]] = {}
    for start in range(0, len(hashes), CHUNK):
        chunk = hashes[start : start + CHUNK]
        for row in conn.execute(
            f"SELECT hash, id, merged_into FROM failure_signatures WHERE project_id = ? "
            f"AND hash IN ({','.join('?' * len(chunk))})", (project_id, *chunk),
        ):
            out[row["hash"]] = (row["id"], row["merged_into"])
    return out


def insert_signatures(conn, rows: list[tuple]) -> None:
    """(project_id, hash, exception_type, normalized, example, first_seen, last_seen,
    first_run_id) tuples; a hash the project has already is left as it is."""
    conn.executemany(
        "INSERT INTO failure_signatures (project_id, hash, exception_type, normalized, example, first_seen, "
        "last_seen, first_run_id) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (project_id, hash) DO NOTHING", rows,
    )


def count_occurrences(conn, counts: dict[int, int], branch: str, now: int) -> None:
    """Add `counts` (signature id -> occurrences) to the signatures and to their branch."""
    conn.executemany(
        "UPDATE failure_signatures SET occurrences = occurrences + ?, last_seen = ? WHERE id = ?",
        [(n, now, sid) for sid, n in counts.items()],
    )
    conn.executemany(
        "INSERT INTO signature_branches (signature_id, branch, occurrences, last_seen) VALUES (?,?,?,?) "
        "ON CONFLICT (signature_id, branch) DO UPDATE SET "
        "occurrences = signature_branches.occurrences + excluded.occurrences, "
        "last_seen = excluded.last_seen",
        [(sid, branch, n, now) for sid, n in counts.items()],
    )


def tickets(conn, signature_ids: Sequence[int]) -> dict[int, tuple[str | None, str | None]]:
    """id -> (bug ticket key, url) of those signatures that have a ticket."""
    marks = ",".join("?" * len(signature_ids))
    return {row["id"]: (row["bug_ticket_key"], row["bug_ticket_url"]) for row in conn.execute(
        f"SELECT id, bug_ticket_key, bug_ticket_url FROM failure_signatures WHERE id IN ({marks}) "
        "AND (bug_ticket_key IS NOT NULL OR bug_ticket_url IS NOT NULL)", tuple(signature_ids),
    )}


def record_tests(conn, pairs: list[tuple[int, int]]) -> None:
    """(signature id, test id) pairs seen."""
    conn.executemany(
        "INSERT OR IGNORE INTO signature_tests (signature_id, test_id) VALUES (?,?)", pairs)


# --- reads of triage ----------------------------------------------------------------------

_SIG = ("id, hash, exception_type, normalized, example, first_seen, last_seen, first_run_id, occurrences, "
        "0 AS tests_affected, category, bug_ticket_key, bug_ticket_url, note, triaged_at")


def signatures_by_id(conn, project_id: str, ids: Sequence[int]) -> dict[int, object]:
    """id -> signature row (columns as project_signatures' rows; tests_affected is 0)."""
    out = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        for r in conn.execute(
            f"SELECT {_SIG} FROM failure_signatures WHERE project_id = ? AND id IN ({','.join('?' * len(chunk))})",
            (project_id, *chunk),
        ):
            out[r["id"]] = r
    return out


def project_signatures(
    conn, project_id: str, *, branch: str | None, only: int | None, since: int | None, status: str | None,
    known_categories: Sequence[str], limit: int,
) -> tuple[int, list]:
    """(how many match, the first `limit` of them latest first) of a project's signatures that
    are not merged into another. `branch`: sightings on it only. `status`: untriaged (no
    category), triaged, or known (a ticket, or one of `known_categories`)."""
    where, params = ["s.project_id = ?", "s.merged_into IS NULL"], [project_id]
    last, occurrences = "s.last_seen", "s.occurrences"
    join = ""
    if branch is not None:
        join = "JOIN signature_branches b ON b.signature_id = s.id AND b.branch = ?"
        params.insert(0, branch)
        last, occurrences = "b.last_seen", "b.occurrences"
    if only is not None:
        where.append("s.id = ?")
        params.append(only)
    if since is not None:
        where.append(f"{last} >= ?")
        params.append(since)
    if status == "untriaged":
        where.append("s.category IS NULL")
    elif status == "triaged":
        where.append("s.category IS NOT NULL")
    elif status == "known":
        where.append("(s.bug_ticket_key IS NOT NULL OR s.bug_ticket_url IS NOT NULL "
                     f"OR s.category IN ({','.join('?' * len(known_categories))}))")
        params += known_categories
    sql = f"FROM failure_signatures s {join} WHERE {' AND '.join(where)}"
    total = conn.execute(f"SELECT count(*) AS n {sql}", params).fetchone()["n"]
    rows = conn.execute(
        f"SELECT s.id, s.hash, s.exception_type, s.normalized, s.example, s.first_seen, {last} AS last_seen, "
        f"s.first_run_id, {occurrences} AS occurrences, (SELECT count(*) FROM signature_tests t "
        "WHERE t.signature_id = s.id) AS tests_affected, s.category, s.bug_ticket_key, s.bug_ticket_url, s.note, "
        f"s.triaged_at {sql} ORDER BY {last} DESC, s.id DESC LIMIT ?", (*params, limit),
    ).fetchall()
    return total, rows


def branches_of(conn, ids: Sequence[int]) -> list:
    """(signature_id, branch) rows, latest sighting first."""
    return conn.execute(
        f"SELECT signature_id, branch FROM signature_branches WHERE signature_id IN ({','.join('?' * len(ids))}) "
        "ORDER BY last_seen DESC", tuple(ids),
    ).fetchall()


def merged_into(conn, ids: Sequence[int]) -> list:
    """(merged_into, hash) rows of the signatures merged into those of `ids`."""
    return conn.execute(
        f"SELECT merged_into, hash FROM failure_signatures WHERE merged_into IN ({','.join('?' * len(ids))})",
        tuple(ids),
    ).fetchall()


def find_signature(conn, project_id: str, signature: str):
    """(id, hash, merged_into) of a project's signature by hash, or None."""
    return conn.execute(
        "SELECT id, hash, merged_into FROM failure_signatures WHERE project_id = ? AND hash = ?",
        (project_id, signature),
    ).fetchone()


def environment_tickets(conn, ids: Sequence[int]) -> list[tuple]:
    """Plain tuples (id, bug_ticket_key, bug_ticket_url, hash) of those signatures triaged as
    an `environment` issue."""
    out: list[tuple] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        out += fetch_tuples(
            conn, "SELECT id, bug_ticket_key, bug_ticket_url, hash FROM failure_signatures "
            f"WHERE category = 'environment' AND id IN ({','.join('?' * len(chunk))})", chunk,
        )
    return out


# --- writes of triage ---------------------------------------------------------------------


def set_triage(conn, signature_id: int, category, ticket_key, ticket_url, note, now: int) -> None:
    conn.execute(
        "UPDATE failure_signatures SET category = ?, bug_ticket_key = ?, bug_ticket_url = ?, note = ?, "
        "triaged_at = ? WHERE id = ?", (category, ticket_key, ticket_url, note, now, signature_id),
    )


def merge(conn, source_id: int, target_id: int) -> None:
    """Fold one signature into another: its results, tests, branches and counts move."""
    conn.execute("UPDATE failure_signatures SET merged_into = ? WHERE merged_into = ?", (target_id, source_id))
    conn.execute("UPDATE failure_signatures SET merged_into = ? WHERE id = ?", (target_id, source_id))
    conn.execute("UPDATE results SET signature_id = ? WHERE signature_id = ?", (target_id, source_id))
    conn.execute(
        "INSERT OR IGNORE INTO signature_tests (signature_id, test_id) SELECT ?, test_id FROM signature_tests "
        "WHERE signature_id = ?", (target_id, source_id),
    )
    # Two-argument max/min are SQLite's spelling; PostgreSQL's is GREATEST/LEAST.
    bigger, smaller = ("GREATEST", "LEAST") if is_postgresql(conn) else ("max", "min")
    conn.execute(
        "INSERT INTO signature_branches (signature_id, branch, occurrences, last_seen) SELECT ?, branch, occurrences, "
        "last_seen FROM signature_branches WHERE signature_id = ? ON CONFLICT (signature_id, branch) DO UPDATE "
        "SET occurrences = signature_branches.occurrences + excluded.occurrences, "
        f"last_seen = {bigger}(signature_branches.last_seen, excluded.last_seen)",
        (target_id, source_id),
    )
    conn.execute(
        "UPDATE failure_signatures SET occurrences = occurrences + (SELECT occurrences FROM failure_signatures "
        f"WHERE id = ?), first_seen = {smaller}(first_seen, (SELECT first_seen FROM failure_signatures WHERE id = ?)), "
        f"last_seen = {bigger}(last_seen, (SELECT last_seen FROM failure_signatures WHERE id = ?)) WHERE id = ?",
        (source_id, source_id, source_id, target_id),
    )


def count_rules(conn, project_id: str) -> int:
    return conn.execute("SELECT count(*) AS n FROM signature_rules WHERE project_id = ?", (project_id,)).fetchone()["n"]


def add_rule(conn, project_id: str, pattern: str, note: str | None, now: int) -> int:
    """The new rule's id."""
    return conn.execute(
        "INSERT INTO signature_rules (project_id, pattern, note, created_at) VALUES (?,?,?,?) RETURNING id",
        (project_id, pattern, note, now),
    ).fetchone()[0]


def list_rules(conn, project_id: str) -> list:
    return conn.execute(
        "SELECT id, pattern, note, created_at FROM signature_rules WHERE project_id = ? ORDER BY id", (project_id,)
    ).fetchall()


def delete_rule(conn, project_id: str, rule_id: int) -> bool:
    """Whether there was such a rule."""
    return conn.execute(
        "DELETE FROM signature_rules WHERE id = ? AND project_id = ?", (rule_id, project_id)).rowcount > 0


# --- events and the gate's verdicts ----------------------------------------------------------


def project_for_event(conn, project_id: str):
    """(id, slug, name, default_branch) of a project, as events name it."""
    return conn.execute("SELECT id, slug, name, default_branch FROM projects WHERE id = ?", (project_id,)).fetchone()


def record_gate_verdict(conn, run_id: str, passed: bool, reasons: str, set_aside: str, now: int) -> None:
    """The run's first verdict; a later one leaves it as it is."""
    conn.execute(
        "INSERT INTO gate_verdicts (run_id, passed, reasons, set_aside, computed_at) VALUES (?,?,?,?,?) "
        "ON CONFLICT (run_id) DO NOTHING", (run_id, int(passed), reasons, set_aside, now),
    )


def gate_verdict(conn, run_id: str):
    """(passed, reasons, set_aside, computed_at) of a run's recorded verdict, or None."""
    return conn.execute(
        "SELECT passed, reasons, set_aside, computed_at FROM gate_verdicts WHERE run_id = ?", (run_id,)
    ).fetchone()
