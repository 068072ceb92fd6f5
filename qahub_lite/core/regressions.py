"""Regressions: a test that did not fail in the baseline (it passed or was skipped there, or
did not run there at all: a new test) and fails now is a new failure; a run with new failures
is a regression. A new test that fails is a failure nobody has seen yet, never "no change".

The baseline of a run is the latest COMPLETED run on the project's default branch created
before it, infrastructure failures left out (window.py): for a pull request's run, the state
of the branch it merges into; for a default-branch run, the run before it. A run is judged
once, when it finishes (health.py), and the baseline it was judged against is recorded, so
its answer never drifts as more runs arrive. A run that has not finished is judged live.

A failure of a test already known to be flaky (judged flaky on the default branch before this
run) or quarantined is no regression: it is left out of the recorded verdict and of
`run.regressed` (docs/triage.md). The live listing still shows it, marked `known_flaky`.
"""

from __future__ import annotations

import sqlite3

import msgspec

from ..config import FlakyConfig
from .clock import now_ms, to_iso
from .quarantine import shorten, test_infos
from .status import FAILURE_STATUSES
from .window import Source, WindowRun, default_branch, drive, get_window_run, recent_runs, source

_FAILING = tuple(sorted(FAILURE_STATUSES))


class NewFailure(msgspec.Struct):
    test_id: int
    title: str
    suite: str
    test_case_code: str | None
    status: str
    error_message: str | None
    quarantined: bool
    known_flaky: bool = False  # flaky on the default branch before this run: no regression


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
    """(test id, status, error) of the tests failing in `run_id` that did not fail in
    `baseline_id` (passed, skipped or absent there). Every reader cuts the error to 500
    characters: only 501 are read (a run's thousands of new failures with 1 MB messages would
    otherwise be read whole, into memory at once)."""
    marks = ",".join("?" * len(_FAILING))
    rows = await src.fetch(
        f"SELECT c.test_id, c.status, substr(c.error_message, 1, 501) FROM results c "
        f"LEFT JOIN results b ON b.run_id = ? AND b.test_id = c.test_id "
        f"WHERE c.run_id = ? AND c.status IN ({marks}) AND (b.id IS NULL OR b.status NOT IN ({marks})) "
        f"ORDER BY c.id",
        (baseline_id, run_id, *_FAILING, *_FAILING),
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
    if failures:
        known = drive(already_flaky(src, project_id, run, [f[0] for f in failures], rules))
        failures = [f for f in failures if f[0] not in known]
    conn.execute(
        "INSERT INTO run_regressions (run_id, baseline_run_id, new_failures, computed_at) VALUES (?,?,?,?) "
        "ON CONFLICT (run_id) DO UPDATE SET baseline_run_id = excluded.baseline_run_id, "
        "new_failures = excluded.new_failures, computed_at = excluded.computed_at",
        (run_id, baseline.id if baseline else None, len(failures), now_ms()),
    )
    return baseline, failures


async def already_flaky(
    src: Source, project_id: str, run: WindowRun, test_ids: list[int], rules: FlakyConfig,
) -> set[int]:
    """The tests among `test_ids` that were flaky on the default branch before `run`, or are
    quarantined."""
    from .flaky import FLAKY, analyse  # flaky.py builds on this module's neighbours

    main = await default_branch(src, project_id)
    analysis = await analyse(src, project_id, main, rules, test_ids=test_ids, before_ms=run.created_at)
    known = {t for t, j in analysis.judgements.items() if j.state == FLAKY}
    marks = ",".join("?" * len(test_ids))
    known.update(r[0] for r in await src.fetch(
        f"SELECT id FROM tests WHERE project_id = ? AND quarantined = 1 AND id IN ({marks})", (project_id, *test_ids)
    ))
    return known


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
    run = await get_window_run(src, run_id) if rows else None
    flaky = await already_flaky(src, project_id, run, [r[0] for r in rows], rules) if run else set()
    data = [
        NewFailure(
            test_id, infos[test_id].title, infos[test_id].suite, infos[test_id].test_case_code, status,
            shorten(error), infos[test_id].quarantined, test_id in flaky and not infos[test_id].quarantined,
        )
        for test_id, status, error in rows
        if test_id in infos
    ]
    regressed = any(not (f.known_flaky or f.quarantined) for f in data)
    return RunRegressions(run_id, baseline_id, regressed, len(data), data, to_iso(judged_at))
