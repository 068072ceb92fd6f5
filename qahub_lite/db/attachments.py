"""Storage of attachment rows (the files themselves are core/attachments.py's business)."""

from __future__ import annotations

# An attachment is in a project through its result's run: a caller limited to one project must
# not reach another project's files.
_IN_PROJECT = (
    " AND (? IS NULL OR EXISTS (SELECT 1 FROM results r JOIN runs ru ON ru.id = r.run_id "
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
