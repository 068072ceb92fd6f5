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

from ..db import results as results_db
from ..db import runs as runs_db
from .window import default_branch

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


def timings(conn, project_id: str, *, by: By = "file", branch: str | None = None,
            runs: int = DEFAULT_RUNS) -> Timings:
    main = default_branch(conn, project_id)  # NotFound for a project that is not there
    branch = branch or main
    run_ids = runs_db.completed_run_ids(conn, project_id, branch, max(1, min(runs, MAX_RUNS)))
    samples: dict[str, list[int]] = {}
    for run_id in run_ids:
        per_run: dict[str, int] = {}
        if by == "file":
            for file, total in results_db.file_durations(conn, run_id):
                per_run[file] = int(total)
        else:
            for file, suite, title, duration in results_db.test_durations(conn, run_id):
                key = test_key(file, suite, title)
                per_run[key] = per_run.get(key, 0) + duration  # variants of one test add up
        for key, total in per_run.items():
            samples.setdefault(key, []).append(total)
    data = [Timing(key, round(statistics.median(values)), len(values)) for key, values in sorted(samples.items())]
    default = round(statistics.median(t.median_ms for t in data)) if data else None
    return Timings(project_id, by, branch, len(run_ids), default, data)
