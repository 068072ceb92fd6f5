"""Regressions: a test that passed in the baseline and fails now is a new failure; a run with
new failures is a regression.

The baseline of a run is the latest COMPLETED run on the project's default branch created
before it, infrastructure failures left out (window.py): for a pull request's run, the state
of the branch it merges into; for a default-branch run, the run before it. A run is judged
once, when it finishes (health.py), and the baseline it was judged against is recorded, so
its answer never drifts as more runs arrive. A run that has not finished is judged live.
"""

from __future__ import annotations

import sqlite3

import msgspec

from ..config import FlakyConfig
from .clock import now_ms, to_iso
from .quarantine import shorten, test_infos
from .status import FAILING
from .window import Source, WindowRun, default_branch, drive, get_window_run, recent_runs, source

_FAILING = tuple(sorted(FAILING))


class NewFailure(msgspec.Struct):
    test_id: int
    title: str
    suite: str
    test_case_code: str | None
    status: str
    error_message: str | None
    quarantined: bool


class RunRegressions(msgspec.Struct):
    run_id: str
    baseline_run_id: str | None
    regressed: bool
    new_failures: int
    data: list[NewFailure]
    judged_at: str | None  # when the run was judged at its end; None: judged now (still running)


async def baseline_of(src: Source, project_id: str, run: WindowRun, rules: FlakyConfig) -> WindowRun | None:
    main = await default_branch(src, project_id)
    found, _ = await recent_runs(src, project_id, main, 1, rules, before_ms=run.created_at, exclude_run=run.id)
    return found[0] if found else None


async def new_failures(src: Source, run_id: str, baseline_id: str) -> list[tuple[int, str, str | None]]:
    """(test id, status, error) of the tests failing in `run_id` that passed in `baseline_id`.
    Every reader cuts the error to 500 characters: only 501 are read (a run's thousands of new
    failures with 1 MB messages would otherwise be read whole, into memory at once)."""
    marks = ",".join("?" * len(_FAILING))
    rows = await src.fetch(
        f"SELECT c.test_id, c.status, substr(c.error_message, 1, 501) FROM results c "
        f"JOIN results b ON b.run_id = ? AND b.test_id = c.test_id AND b.status = 'PASSED' "
        f"WHERE c.run_id = ? AND c.status IN ({marks}) ORDER BY c.id",
        (baseline_id, run_id, *_FAILING),
    )
    return [(r[0], r[1], r[2]) for r in rows]


def judge_finished_run(
    conn: sqlite3.Connection, project_id: str, run_id: str, rules: FlakyConfig
) -> tuple[WindowRun | None, list[tuple[int, str, str | None]]]:
    """Writer operation (health.py, at a run's end): find the baseline, the new failures, and
    record the verdict. Returns (baseline, new failures)."""
    src = source(conn)
    run = drive(get_window_run(src, run_id))
    if run is None:
        return None, []
    baseline = drive(baseline_of(src, project_id, run, rules))
    failures = drive(new_failures(src, run_id, baseline.id)) if baseline else []
    conn.execute(
        "INSERT INTO run_regressions (run_id, baseline_run_id, new_failures, computed_at) VALUES (?,?,?,?) "
        "ON CONFLICT (run_id) DO UPDATE SET baseline_run_id = excluded.baseline_run_id, "
        "new_failures = excluded.new_failures, computed_at = excluded.computed_at",
        (run_id, baseline.id if baseline else None, len(failures), now_ms()),
    )
    return baseline, failures


async def of_run(conn, project_id: str, run_id: str, rules: FlakyConfig | None = None) -> RunRegressions:
    """A run's new failures against its baseline: the one recorded at its end, else today's."""
    src, rules = source(conn), rules or FlakyConfig()
    recorded = await src.fetch("SELECT baseline_run_id, computed_at FROM run_regressions WHERE run_id = ?", (run_id,))
    if recorded:
        baseline_id, judged_at = recorded[0][0], recorded[0][1]
    else:
        run = await get_window_run(src, run_id)
        baseline = await baseline_of(src, project_id, run, rules) if run else None
        baseline_id, judged_at = (baseline.id if baseline else None), None
    rows = await new_failures(src, run_id, baseline_id) if baseline_id else []
    infos = await test_infos(src, project_id, [r[0] for r in rows])
    data = [
        NewFailure(
            test_id, infos[test_id].title, infos[test_id].suite, infos[test_id].test_case_code, status,
            shorten(error), infos[test_id].quarantined,
        )
        for test_id, status, error in rows
        if test_id in infos
    ]
    return RunRegressions(run_id, baseline_id, bool(data), len(data), data, to_iso(judged_at))
