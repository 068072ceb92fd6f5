"""Storage of projects and their test library (suites, test cases).

Plain `fn(conn, ...)`: SQL and row shaping only; validation and numbering rules are core's.
Rows are read by column name. Pages are keyset pages on (created_at, id): a `*_page` function
returns up to `limit + 1` rows so the caller can tell whether another page follows.
"""

from __future__ import annotations


PROJECT_COLUMNS = ("id", "name", "slug", "description", "repo", "default_branch", "ci_config", "settings",
                   "created_at", "updated_at")
_PROJECT = f"SELECT {', '.join(PROJECT_COLUMNS)} FROM projects"

# --- projects -----------------------------------------------------------------------------


def project_row(conn, tenant_id: str, ref: str):
    """A tenant's project by id or slug."""
    return conn.execute(f"{_PROJECT} WHERE (id = ? OR slug = ?) AND tenant_id = ?", (ref, ref, tenant_id)).fetchone()


def project_row_by_repo(conn, tenant_id: str, repo: str):
    return conn.execute(f"{_PROJECT} WHERE tenant_id = ? AND repo = ?", (tenant_id, repo)).fetchone()


def project_exists(conn, tenant_id: str, project_id: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM projects WHERE id = ? AND tenant_id = ?", (project_id, tenant_id)
    ).fetchone() is not None


def slug_taken(conn, tenant_id: str, slug: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM projects WHERE tenant_id = ? AND slug = ?", (tenant_id, slug)
    ).fetchone() is not None


def repo_taken(conn, tenant_id: str, repo: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM projects WHERE tenant_id = ? AND repo = ?", (tenant_id, repo)
    ).fetchone() is not None


def project_page(conn, tenant_id: str, *, after: tuple | None, limit: int, only: str | None = None) -> list:
    sql, params = f"{_PROJECT} WHERE tenant_id = ?", [tenant_id]
    if only is not None:
        sql += " AND id = ?"
        params.append(only)
    if after:
        sql += " AND (created_at, id) > (?, ?)"
        params += [after[0], after[1]]
    return conn.execute(sql + " ORDER BY created_at, id LIMIT ?", (*params, limit + 1)).fetchall()


def insert_project(conn, tenant_id: str, values: dict) -> None:
    """`values`: every column of PROJECT_COLUMNS."""
    marks = ", ".join("?" * len(PROJECT_COLUMNS))
    conn.execute(
        f"INSERT INTO projects ({', '.join(PROJECT_COLUMNS)}, tenant_id) VALUES ({marks}, ?)",
        (*(values[c] for c in PROJECT_COLUMNS), tenant_id),
    )


def update_project(conn, project_id: str, changes: dict) -> bool:
    """Set the columns of `changes` (names checked by the caller). False when the repo is
    another project's already (repos are unique in a tenant): looked up first, not caught as
    the driver's error, which on PostgreSQL spoils the rest of the transaction."""
    if changes.get("repo") is not None and conn.execute(
        "SELECT 1 FROM projects WHERE repo = ? AND id != ? AND tenant_id = (SELECT tenant_id FROM projects WHERE id = ?)",
        (changes["repo"], project_id, project_id),
    ).fetchone():
        return False
    sets = ", ".join(f"{column} = ?" for column in changes)
    conn.execute(f"UPDATE projects SET {sets} WHERE id = ?", (*changes.values(), project_id))
    return True


def project_attachment_hashes(conn, project_id: str) -> list[str]:
    return [r["sha256"] for r in conn.execute(
        "SELECT DISTINCT a.sha256 FROM attachments a JOIN results r ON r.id = a.result_id "
        "JOIN runs u ON u.id = r.run_id WHERE u.project_id = ?",
        (project_id,),
    )]


def delete_project(conn, project_id: str) -> None:
    """Everything in the project goes with it (ON DELETE CASCADE), keys limited to it included."""
    conn.execute("DELETE FROM projects WHERE id = ?", (project_id,))


def take_case_number(conn, project_id: str) -> int:
    """The project's next test case number, counted up."""
    return conn.execute(
        "UPDATE projects SET next_case_number = next_case_number + 1 WHERE id = ? "
        "RETURNING next_case_number - 1 AS number",
        (project_id,),
    ).fetchone()["number"]


# --- suites -------------------------------------------------------------------------------

SUITE_COLUMNS = ("id", "project_id", "parent_id", "name", "description", "created_at", "updated_at")
_SUITE = f"SELECT {', '.join('s.' + c for c in SUITE_COLUMNS)} FROM suites s"


def suite_row(conn, tenant_id: str, suite_id: str):
    return conn.execute(
        f"{_SUITE} JOIN projects p ON p.id = s.project_id WHERE s.id = ? AND p.tenant_id = ?", (suite_id, tenant_id)
    ).fetchone()


def suite_in_project(conn, project_id: str, suite_id: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM suites WHERE id = ? AND project_id = ?", (suite_id, project_id)
    ).fetchone() is not None


def suite_page(conn, project_id: str, *, after: tuple | None, limit: int) -> list:
    sql, params = f"{_SUITE} WHERE s.project_id = ?", [project_id]
    if after:
        sql += " AND (s.created_at, s.id) > (?, ?)"
        params += [after[0], after[1]]
    return conn.execute(sql + " ORDER BY s.created_at, s.id LIMIT ?", (*params, limit + 1)).fetchall()


def insert_suite(conn, values: dict) -> None:
    """`values`: every column of SUITE_COLUMNS."""
    conn.execute(f"INSERT INTO suites ({', '.join(SUITE_COLUMNS)}) VALUES ({', '.join('?' * len(SUITE_COLUMNS))})",
                 tuple(values[c] for c in SUITE_COLUMNS))


def update_suite(conn, suite_id: str, changes: dict) -> None:
    sets = ", ".join(f"{column} = ?" for column in changes)
    conn.execute(f"UPDATE suites SET {sets} WHERE id = ?", (*changes.values(), suite_id))


def delete_suite(conn, suite_id: str) -> None:
    conn.execute("DELETE FROM suites WHERE id = ?", (suite_id,))


# --- test cases ---------------------------------------------------------------------------

CASE_COLUMNS = ("id", "project_id", "suite_id", "code", "title", "description", "automation", "created_at",
                "updated_at")
_CASE = f"SELECT {', '.join('c.' + c for c in CASE_COLUMNS)} FROM test_cases c"


def case_row(conn, tenant_id: str, case_id: str):
    return conn.execute(
        f"{_CASE} JOIN projects p ON p.id = c.project_id WHERE c.id = ? AND p.tenant_id = ?", (case_id, tenant_id)
    ).fetchone()


def code_taken(conn, project_id: str, code: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM test_cases WHERE project_id = ? AND code = ?", (project_id, code)
    ).fetchone() is not None


def case_page(conn, project_id: str, *, suite_id: str | None, after: tuple | None, limit: int) -> list:
    sql, params = f"{_CASE} WHERE c.project_id = ?", [project_id]
    if suite_id:
        sql += " AND c.suite_id = ?"
        params.append(suite_id)
    if after:
        sql += " AND (c.created_at, c.id) > (?, ?)"
        params += [after[0], after[1]]
    return conn.execute(sql + " ORDER BY c.created_at, c.id LIMIT ?", (*params, limit + 1)).fetchall()


def insert_case(conn, values: dict) -> None:
    """`values`: every column of CASE_COLUMNS."""
    conn.execute(f"INSERT INTO test_cases ({', '.join(CASE_COLUMNS)}) VALUES ({', '.join('?' * len(CASE_COLUMNS))})",
                 tuple(values[c] for c in CASE_COLUMNS))


def update_case(conn, case_id: str, changes: dict) -> None:
    sets = ", ".join(f"{column} = ?" for column in changes)
    conn.execute(f"UPDATE test_cases SET {sets} WHERE id = ?", (*changes.values(), case_id))


def retitle_case_tests(conn, case_id: str, title: str) -> None:
    """Keep the display title of the tests interned for a case in step with it."""
    conn.execute("UPDATE tests SET title = ? WHERE test_case_id = ?", (title, case_id))


def case_attachment_hashes(conn, case_id: str) -> list[str]:
    return [r["sha256"] for r in conn.execute(
        "SELECT DISTINCT a.sha256 FROM attachments a JOIN results r ON r.id = a.result_id "
        "JOIN tests t ON t.id = r.test_id WHERE t.test_case_id = ?",
        (case_id,),
    )]


def delete_case(conn, case_id: str) -> None:
    conn.execute("DELETE FROM test_cases WHERE id = ?", (case_id,))
