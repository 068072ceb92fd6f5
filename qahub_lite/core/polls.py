"""What a dialect's status poll reads, gathered so that one poll is one read of the database.

Pollers (CI jobs waiting on a triggered run) ask every few seconds for as long as the run
lasts, so a poll answers from the run's stored counts, never by counting its results, and
reads everything it needs in one reader hop. Who may see the answer is the dialect's call:
each poll says whose the resource is (`owner`), found or not, and the caller checks it.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from . import executions, unserved
from . import runs as runs_core
from .executions import Owner, TestRun
from .status import RUN_FINISHED


class RunPoll(msgspec.Struct):
    owner: Owner | None  # None: no such run
    run: runs_core.Run | None = None
    canceled: int = 0  # results canceled with the run (its counts fold them into skipped)
    waiting: str | None = None  # while it is unfinished: why no agent has taken some of its tests


def poll_run(conn, ref: str, online_within_ms: int) -> RunPoll:
    """A run by id, short id, or the id of one of its executions (a test run id)."""
    # Most polls name the run itself (one query); an execution's id (a UUID, never a run's id
    # or short id) is looked up only when no run answers to `ref`.
    found = runs_core.find_run_of_any_tenant(conn, ref)
    if found is None:
        run_id = executions.run_of_execution(conn, ref)
        found = runs_core.find_run_of_any_tenant(conn, run_id) if run_id else None
    if found is None:
        return RunPoll(None)
    tenant_id, run = found
    owner = Owner(tenant_id, run.project_id, run.id)
    canceled = executions.canceled_results(conn, run.id) if run.status == "CANCELED" else 0
    waiting = None
    if run.status not in RUN_FINISHED:
        waiting = unserved.no_agent_reason(conn, owner.tenant_id, run.id, online_within_ms)
    return RunPoll(owner, run, canceled, waiting)


class TestRunPoll(msgspec.Struct):
    owner: Owner | None  # None: no such test run
    test_run: TestRun | None = None  # None when its result was deleted after the trigger
    waiting: str | None = None  # while it is PENDING: why no agent has taken it


def poll_test_run(conn, ref: str, online_within_ms: int) -> TestRunPoll:
    """One test run by its id (an execution's UUID or a result id)."""
    owner = executions.locate(conn, executions.test_run_kind(ref), ref)
    if owner is None:
        return TestRunPoll(None)
    test_run = executions.test_runs(conn, [owner.id]).get(owner.id)
    waiting = None
    if test_run is not None and test_run.status == "PENDING":
        waiting = unserved.no_agent_reason(conn, owner.tenant_id, test_run.run_id, online_within_ms)
    return TestRunPoll(owner, test_run, waiting)


class TestRunsRead(msgspec.Struct):
    owners: dict[str, Owner]  # ref -> owner, for the refs that exist
    test_runs: dict[str, TestRun]  # ref -> test run, for those whose result still exists


def read_test_runs(conn, refs: Sequence[str]) -> TestRunsRead:
    """Many test runs and their owners at once (Qualigate's results of up to 1,000 ids)."""
    return TestRunsRead(executions.locate_test_runs(conn, refs), executions.test_runs(conn, refs))
