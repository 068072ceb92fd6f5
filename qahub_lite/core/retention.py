"""Retention (seed 000): unlinked results older than N days are deleted with their attachments.
A result's age runs from its last update (an upsert, a rerun's outcome), not its creation, so
a result someone just wrote is never swept.

Linked results and the test library are never touched. Deletes go in small batches, each its
own writer operation, so a sweep never holds the writer for long and ingests interleave.
Run counts are a record of what was ingested and are kept (the trend survives retention), and
each test's daily figures are rolled up before its results go (core/test_daily.py).
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from ..db import retention as retention_db
from . import attachments, test_daily
from .clock import now_ms, to_iso

DAY_MS = 86_400_000


class SweepReport(msgspec.Struct):
    cutoff: str | None
    retention_days: int
    deleted_results: int
    deleted_attachments: int
    removed_files: int
    batches: int


def delete_batch(
    conn, cutoff_ms: int, batch_size: int, tenant_id: str | None = None, project_id: str | None = None,
) -> tuple[int, int, list[str]]:
    """Writer operation: delete up to `batch_size` unlinked results last updated before `cutoff_ms`
    (of one tenant when given; of one project, for a key limited to one). Returns (results
    deleted, attachment rows deleted, hashes)."""
    ids = retention_db.expired_unlinked(conn, cutoff_ms, batch_size, tenant_id, project_id)
    if not ids:
        return 0, 0, []
    # Per-test daily figures outlive the raw results (core/test_daily.py): roll the days up first.
    test_daily.roll_up_before_delete(conn, ids)
    hashes = retention_db.delete_results(conn, ids)
    return len(ids), len(hashes), hashes


async def sweep(
    writer, attachments_dir: Path, retention_days: int, batch_size: int, tenant_id: str | None = None,
    project_id: str | None = None,
) -> SweepReport:
    """Delete every expired unlinked result, batch by batch; files go after their rows.
    The background job sweeps every tenant; an admin key's request sweeps its own tenant (its own
    project, for a key limited to one)."""
    if retention_days <= 0:
        return SweepReport(None, retention_days, 0, 0, 0, 0)
    cutoff = now_ms() - retention_days * DAY_MS
    results = rows = files = batches = 0
    while True:
        n, a, hashes = await writer.run(delete_batch, cutoff, batch_size, tenant_id, project_id)
        if n == 0:
            break
        batches += 1
        results += n
        rows += a
        if hashes:  # the delete has committed: now the files may go
            files += await writer.run(attachments.remove_unreferenced, attachments_dir, hashes)
        if n < batch_size:
            break
    return SweepReport(to_iso(cutoff), retention_days, results, rows, files, batches)
