"""The analysis window of test health: which runs count, and their results as compact rows.

Flakiness, grades, gates and regressions all look at "the last N completed runs of a branch,
infrastructure failures left out" (docs/health.md). This module owns that choice; the queries
it needs are db/tests.py's, plain sync functions called with the writer's connection (run
completion) and a reader's (`await db.read(fn, ...)`) alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from ..config import FlakyConfig
from ..db import tests as tests_db
from .errors import NotFound
from .status import FAILURE_STATUSES

# A final result's code in outcome_codes (flaky.py keeps one byte per run).
ABSENT, PASS, FAIL, RETRIED_PASS = tests_db.ABSENT, tests_db.PASS, tests_db.FAIL, tests_db.RETRIED_PASS


def default_branch(conn, project_id: str) -> str:
    found = tests_db.project_default_branch(conn, project_id)
    if found is None:
        raise NotFound("Project not found")
    return found[0]


class WindowRun(NamedTuple):
    """A run as the window sees it; its fields are db/tests.py's RUN_COLUMNS, in order."""

    id: str
    short_id: str
    commit_sha: str | None
    created_at: int
    total: int
    passed: int
    failed: int
    broken: int
    skipped: int
    flaky: int
    duration_ms: int | None

    @property
    def ran(self) -> int:
        """Tests that ran to a verdict (passed, failed or broken)."""
        return self.passed + self.failed + self.broken


def is_infra_failure(run: WindowRun, rules: FlakyConfig) -> bool:
    """Most tests that ran failed at once: the machine, not the tests (docs/health.md)."""
    ran = run.ran
    return ran >= rules.infra_min_tests and run.failed + run.broken >= rules.infra_failure_ratio * ran


def recent_runs(
    conn, project_id: str, branch: str | None, count: int, rules: FlakyConfig, *,
    before_ms: int | None = None, exclude_run: str | None = None,
) -> tuple[list[WindowRun], int]:
    """The last `count` COMPLETED runs of a branch, newest first, without infrastructure
    failures; and how many infrastructure failures were skipped on the way. Runs without a
    branch ('' or None) form a branch of their own.

    `before_ms`: only runs created before it (a grade as of a day's end, a run's baseline).
    """
    # Infrastructure failures are rare: ask for a few more than needed, and for twice as many
    # again only when they were not enough.
    limit = count + 8
    while True:
        rows = [WindowRun(*r) for r in tests_db.completed_runs(conn, project_id, branch or None, limit, before_ms)]
        usable = [r for r in rows if r.id != exclude_run and not is_infra_failure(r, rules)]
        if len(usable) >= count or len(rows) < limit:
            skipped = sum(1 for r in rows[: _cut(rows, usable, count)] if is_infra_failure(r, rules))
            return usable[:count], skipped
        limit *= 2


def _cut(rows: list[WindowRun], usable: list[WindowRun], count: int) -> int:
    """How many of `rows` (newest first) the first `count` usable ones span."""
    if len(usable) < count or count == 0:
        return len(rows)
    last = usable[count - 1].id
    for index, row in enumerate(rows):
        if row.id == last:
            return index + 1
    return len(rows)


def get_window_run(conn, run_id: str) -> WindowRun | None:
    row = tests_db.window_run(conn, run_id)
    return WindowRun(*row) if row is not None else None


def outcome_codes(conn, run_ids: Sequence[str], test_ids: Sequence[int] | None = None) -> list[tuple[int, int, int]]:
    """(index in `run_ids`, test id, code) of every final result of those runs (of `test_ids`
    only, when given), in no particular order. Skipped and unfinished results say nothing of
    health and are left out."""
    return tests_db.outcome_codes(conn, run_ids, FAILURE_STATUSES, test_ids)
