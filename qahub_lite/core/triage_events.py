"""Webhook events of triage (docs/triage.md): `failure.new` when a project sees a kind of
failure for the first time, `test.quarantined` and `test.unquarantined` when a test enters or
leaves quarantine (by a person, the auto-quarantine policy or an expiry).

Each is queued in the outbox (outbox.py) inside the transaction that made it true, so an event
is sent exactly when its cause is committed. Cheap when nobody listens: one indexed query.
"""

from __future__ import annotations

from ..db import failures as failures_db
from ..db import runs as runs_db
from .webhooks import enqueue, subscribers

_LISTED = 50  # a body lists at most this many signatures


def _project(conn, project_id: str) -> dict:
    row = failures_db.project_for_event(conn, project_id)
    return {"id": row["id"], "slug": row["slug"], "name": row["name"], "default_branch": row["default_branch"]}


def failure_new(conn, project_id: str, run_id: str, new: list[tuple[int, str, str, str]]) -> int:
    """Writer step of the ingest: `new` is (signature id, hash, exception type, example)."""
    hooks = [h for h in subscribers(conn, project_id) if "failure.new" in h.events]
    if not hooks:
        return 0
    data = {
        "run_id": run_id, "short_id": runs_db.run_short_id(conn, run_id), "total": len(new),
        "signatures": [{"signature": h, "exception_type": kind, "example": example[:500]}
                       for _, h, kind, example in new[:_LISTED]],
    }
    return enqueue(conn, hooks, "failure.new", _project(conn, project_id), data)


def quarantine_changed(
    conn, project_id: str, test: dict, on: bool, actor: str, reason: str | None,
    ticket: str | None, expires_at: str | None,
) -> int:
    event = "test.quarantined" if on else "test.unquarantined"
    hooks = [h for h in subscribers(conn, project_id) if event in h.events]
    if not hooks:
        return 0
    data = {"test": test, "actor": actor, "reason": reason, "ticket": ticket, "expires_at": expires_at}
    return enqueue(conn, hooks, event, _project(conn, project_id), data)
