"""Regressions: a test that did not fail in the baseline (it passed or was skipped there, or
did not run there at all: a new test) and fails now is a new failure; a run with new failures
is a regression. A new test that fails is a failure nobody has seen yet, never "no change".

The baseline of a run is the latest COMPLETED run on the project's default branch created
before it, infrastructure failures left out (window.py): for a pull request's run, the state
of the branch it merges into; for a default-branch run, the run before it. A run is judged
once, when it finishes (run_completion.py), and the baseline it was judged against is recorded, so
its answer never drifts as more runs arrive. A run that has not finished is judged live.

A failure of a test already known to be flaky (judged flaky on the default branch before this
run) or quarantined is no regression: it is left out of the recorded verdict and of
`run.regressed` (docs/triage.md). The live listing still shows it, marked `known_flaky`.
"""

from __future__ import annotations

import msgspec

from ..config import FlakyConfig
from ..db import tests as tests_db
from .clock import now_ms, to_iso
from .quarantine import shorten, test_infos
from .status import FAILURE_STATUSES
from .window import WindowRun, default_branch, get_window_run, recent_runs

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


def baseline_of(conn, project_id: str, run: WindowRun, rules: FlakyConfig) -> WindowRun | None:
    main = default_branch(conn, project_id)
    found, _ = recent_runs(conn, project_id, main, 1, rules, before_ms=run.created_at, exclude_run=run.id)
    return found[0] if found else None


def new_failures(conn, run_id: str, baseline_id: str) -> list[tuple[int, str, str | None]]:
    """(test id, status, error) of the tests failing in `run_id` that did not fail in
    `baseline_id` (passed, skipped or absent there). Every reader cuts the error to 500
    characters: only 501 are read."""
    return tests_db.new_failures(conn, run_id, baseline_id, _FAILING)


def judge_finished_run(
    conn, project_id: str, run_id: str, rules: FlakyConfig
) -> tuple[WindowRun | None, list[tuple[int, str, str | None]]]:
    """Writer operation (run_completion.py, at a run's end): find the baseline, the new
    failures, and record the verdict. Returns (baseline, new failures)."""
    run = get_window_run(conn, run_id)
    if run is None:
        return None, []
    baseline = baseline_of(conn, project_id, run, rules)
    failures = new_failures(conn, run_id, baseline.id) if baseline else []
    if failures:
        known = already_flaky(conn, project_id, run, [f[0] for f in failures], rules)
        failures = [f for f in failures if f[0] not in known]
    tests_db.record_regression(conn, run_id, baseline.id if baseline else None, len(failures), now_ms())
    return baseline, failures


def already_flaky(conn, project_id: str, run: WindowRun, test_ids: list[int], rules: FlakyConfig) -> set[int]:
    """The tests among `test_ids` that were flaky on the default branch before `run`, or are
    quarantined."""
    from .flaky import FLAKY, analyse  # flaky.py builds on this module's neighbours

    main = default_branch(conn, project_id)
    analysis = analyse(conn, project_id, main, rules, test_ids=test_ids, before_ms=run.created_at)
    known = {t for t, j in analysis.judgements.items() if j.state == FLAKY}
    known.update(tests_db.quarantined_among(conn, project_id, test_ids))
    return known


def of_run(conn, project_id: str, run_id: str, rules: FlakyConfig | None = None) -> RunRegressions:
    """A run's new failures against its baseline: the one recorded at its end, else today's."""
    rules = rules or FlakyConfig()
    recorded = tests_db.recorded_regression(conn, run_id)
    if recorded is not None:
        baseline_id, judged_at = recorded["baseline_run_id"], recorded["computed_at"]
    else:
        run = get_window_run(conn, run_id)
        baseline = baseline_of(conn, project_id, run, rules) if run else None
        baseline_id, judged_at = (baseline.id if baseline else None), None
    rows = new_failures(conn, run_id, baseline_id) if baseline_id else []
    infos = test_infos(conn, project_id, [r[0] for r in rows])
    run = get_window_run(conn, run_id) if rows else None
    flaky = already_flaky(conn, project_id, run, [r[0] for r in rows], rules) if run else set()
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
