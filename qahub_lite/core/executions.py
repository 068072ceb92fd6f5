"""Reading runs test by test, as the execution dialects (Qualigate, QA.tech) show them.

A Qualigate "test run" is one result of a run. A triggered test has its execution's UUID as
that id; a result that came in any other way (ingest, upload) is known by its result id, so
the same routes serve every run. Nothing here filters by tenant: `locate` tells the caller
whose a resource is, and the dialect decides between 403 and 404 (Qualigate answers 403 for a
resource of another project than the key's; QA.tech says 404).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ..db import executions as executions_db
from .clock import row_id
from .status import UNFINISHED


class Owner(msgspec.Struct):
    tenant_id: str
    project_id: str
    id: str  # the resource's canonical id (a run's id when found by short id)


def _owner(row) -> Owner:
    return Owner(row["tenant_id"], row["project_id"], row["id"])


def locate(conn, kind: str, ref: str) -> Owner | None:
    """Whose the resource of `kind` (test_case, suite, project, run, execution, result) is."""
    if kind == "result":
        key: object = row_id(ref)
        if key is None:
            return None
    else:
        key = ref
    row = executions_db.owner(conn, kind, key)
    return _owner(row) if row else None


def test_run_kind(ref: str) -> str:
    """A Qualigate test run id is a result id (digits) or an execution's UUID."""
    return "result" if ref.isdigit() else "execution"  # row_id checks the digits further


def locate_test_runs(conn, refs: Sequence[str]) -> dict[str, Owner]:
    """ref -> owner for each test run id that exists (others are left out), in one query per
    chunk of ids rather than one per id."""
    result_refs, execution_ids = _split_refs(refs)
    found: dict[str, Owner] = {}
    for row in executions_db.owners_of_results(conn, list(result_refs)):
        for ref in result_refs[row["key"]]:
            found[ref] = _owner(row)
    for row in executions_db.owners_of_executions(conn, execution_ids):
        found[row["key"]] = _owner(row)
    return found


def _split_refs(refs: Sequence[str]) -> tuple[dict[int, list[str]], list[str]]:
    """(result id -> the refs that name it, execution ids). Two refs may name one result ("7"
    and "007"); a digit ref that cannot be a row id names nothing."""
    result_refs: dict[int, list[str]] = {}
    execution_ids: list[str] = []
    for ref in dict.fromkeys(refs):
        if test_run_kind(ref) == "result":
            key = row_id(ref)
            if key is not None:
                result_refs.setdefault(key, []).append(ref)
        else:
            execution_ids.append(ref)
    return result_refs, execution_ids


def run_of_execution(conn, execution_id: str) -> str | None:
    return executions_db.run_of_execution(conn, execution_id)


class TestRun(msgspec.Struct):
    """One result, with what the execution dialects show of it (times in epoch ms)."""

    id: str
    run_id: str
    test_case_id: str | None
    code: str | None
    title: str
    description: str | None
    test_id: int
    status: str
    started_at: int | None
    completed_at: int | None
    duration_ms: int | None
    error_message: str | None
    video_attachment_id: str | None = None


def _test_run(r, video: str | None) -> TestRun:
    status, started, duration = r["status"], r["started_at"], r["duration_ms"]
    completed = None
    if status not in UNFINISHED:
        # A triggered test finished when its outcome was stored; an uploaded one when it
        # stopped running, if the report said when it started.
        if not r["triggered"] and started is not None and duration is not None:
            completed = started + duration
        else:
            completed = r["updated_at"]
    return TestRun(
        id=r["id"], run_id=r["run_id"], test_case_id=r["test_case_id"], code=r["code"], title=r["title"],
        description=r["description"], test_id=r["test_id"], status=status, started_at=started,
        completed_at=completed, duration_ms=duration, error_message=r["error_message"], video_attachment_id=video,
    )


def _with_videos(conn, rows) -> list[TestRun]:
    videos = executions_db.first_videos(conn, [r["result_id"] for r in rows])
    return [_test_run(r, videos.get(r["result_id"])) for r in rows]


def test_runs(conn, refs: Sequence[str]) -> dict[str, TestRun]:
    """ref -> test run, for refs that are an execution UUID or a result id; others are left out."""
    result_refs, execution_ids = _split_refs(refs)
    keyed = [
        (ref, row) for row in executions_db.test_runs_by_result_ids(conn, list(result_refs))
        for ref in result_refs[row["key"]]
    ]
    keyed += [(row["key"], row) for row in executions_db.test_runs_by_execution_ids(conn, execution_ids)]
    order = {ref: i for i, ref in enumerate(dict.fromkeys(refs))}
    keyed.sort(key=lambda pair: order[pair[0]])
    return dict(zip([ref for ref, _ in keyed], _with_videos(conn, [row for _, row in keyed])))


def test_runs_of_run(conn, run_id: str, statuses: tuple[str, ...] = ()) -> list[TestRun]:
    """A run's results in the order they were triggered (or stored), optionally only `statuses`."""
    return _with_videos(conn, executions_db.test_runs_of_run(conn, run_id, statuses))


def canceled_results(conn, run_id: str) -> int:
    """How many of the run's results were canceled with it (its counts fold them into skipped)."""
    return executions_db.count_results_with_status(conn, run_id, "CANCELED")
