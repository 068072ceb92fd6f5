"""How long each test file (or test) takes: the median over recent completed runs of a branch
(the project's default branch unless asked), the figures `qahub split` balances CI nodes by.

A file's time in one run is the sum of its results' durations in that run; its figure is the
median over the runs that ran it, so one slow or partial run does not move it. The median, not
the mean: CI timings have long tails (a cold cache, a noisy neighbour).

The key of a test is built by `test_key`, the one place that knows how stored identity columns
(results.file, tests.suite_path, tests.title) become the ids a runner prints; it changes there
when tests get a normalized location/scope/name.
"""

from __future__ import annotations

import statistics
from typing import Literal

import msgspec

from ..db import tuples
from .errors import NotFound

By = Literal["file", "test"]
DEFAULT_RUNS = 20
MAX_RUNS = 100


class Timing(msgspec.Struct):
    key: str
    median_ms: int
    samples: int  # how many of the runs ran it


class Timings(msgspec.Struct):
    project_id: str
    by: str
    branch: str
    runs: int  # completed runs the figures come from (0: no history; split evenly by count)
    default_ms: int | None  # the median of the known figures: what a new file or test is given
    data: list[Timing]


def test_key(file: str | None, suite: str, title: str) -> str:
    """`file::title` where the report named a file (pytest's node ids for module-level tests,
    Playwright's and Jest's file + title), else `suite::title`."""
    return f"{file or suite}::{title}"


_FILE_SQL = (
    "SELECT file, sum(duration_ms) FROM results WHERE run_id = ? AND file IS NOT NULL AND duration_ms IS NOT NULL "
    "GROUP BY file"
)
_TEST_SQL = (
    "SELECT r.file, t.suite_path, t.title, r.duration_ms FROM results r JOIN tests t ON t.id = r.test_id "
    "WHERE r.run_id = ? AND r.duration_ms IS NOT NULL"
)


def _fetch(conn, sql: str, params: tuple) -> list[tuple]:
    return tuples.fetch(conn, sql, params)  # plain tuples (db/tuples.py)


def timings(conn, project_id: str, *, by: By = "file", branch: str | None = None,
                  runs: int = DEFAULT_RUNS) -> Timings:
    found = _fetch(conn, "SELECT default_branch FROM projects WHERE id = ?", (project_id,))
    if not found:
        raise NotFound("Project not found")
    branch = branch or found[0][0]
    run_ids = [r[0] for r in _fetch(
        conn, "SELECT id FROM runs WHERE project_id = ? AND branch = ? AND status = 'COMPLETED' "
        "ORDER BY created_at DESC, id DESC LIMIT ?", (project_id, branch, max(1, min(runs, MAX_RUNS))),
    )]
    samples: dict[str, list[int]] = {}
    for run_id in run_ids:
        per_run: dict[str, int] = {}
        if by == "file":
            for file, total in _fetch(conn, _FILE_SQL, (run_id,)):
                per_run[file] = int(total)
        else:
            for file, suite, title, duration in _fetch(conn, _TEST_SQL, (run_id,)):
                key = test_key(file, suite, title)
                per_run[key] = per_run.get(key, 0) + duration  # variants of one test add up
        for key, total in per_run.items():
            samples.setdefault(key, []).append(total)
    data = [Timing(key, round(statistics.median(values)), len(values)) for key, values in sorted(samples.items())]
    default = round(statistics.median(t.median_ms for t in data)) if data else None
    return Timings(project_id, by, branch, len(run_ids), default, data)
