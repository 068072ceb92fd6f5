"""Test health as the pages show it: the grade, flaky and quarantined tests, a run's new
failures against its baseline, its gate verdict, and the trend series.

Every figure comes from the health modules the API answers with (core/flaky.py,
core/quarantine.py, core/grade.py, core/regressions.py, core/gate.py, core/trends.py), called
with the rules of qahub.toml; this module only picks what a page needs, so a page and the
matching API route can never disagree. Its functions are sync and take a reader's connection:
pages call them through `db.read(fn, ...)`, several together in one hop where a page
needs them all.
"""

from __future__ import annotations

import msgspec

from ..config import Config
from ..core import flaky, gate, grade, quarantine, regressions, trends
from ..core.errors import Conflict, DomainError
from ..core.projects import Project
from ..core.runs import Run
from ..core.status import RUN_FINISHED
from ..core.clock import now_ms

# How far back the overview looks for a graded day.
CARD_DAYS = 30


class RunMarks(msgspec.Struct):
    """Which tests of a run a page marks (ids of `tests` rows), and the run it was compared to."""

    new_failures: set[int]
    flaky: set[int]
    quarantined: set[int]
    baseline_run_id: str | None = None


class GateVerdict(msgspec.Struct):
    """One run's gate answer, for the trends page's strip of verdicts."""

    run: Run
    result: gate.GateResult | None
    error: str | None  # why there is no verdict (the run could not be judged)


def project_grade(conn, config: Config, project: Project, branch: str | None = None) -> grade.Grade:
    return grade.compute(
        conn, project.id, branch if branch is not None else project.default_branch, flaky_rules=config.flaky,
        grade_rules=config.grade,
    )


class CardHealth(msgspec.Struct):
    """A project card's grade and flaky count, as of the latest graded day."""

    grade: str | None
    score: float | None
    flaky_tests: int | None
    day: str | None  # the day they were graded as of; None: no graded day lately
    message: str


def card_health(conn, project: Project) -> CardHealth:
    """The overview's figures from the trend's daily rows of the default branch, which the
    `trend-grades` maintenance task grades within a minute of a run's end. Grading live (flaky.analyse over
    the window) costs about 0.1 s a project on a large history: an overview of 20 projects
    would take seconds; these rows cost a lookup."""
    today = trends.day_of(now_ms())
    series = trends.series(conn, project.id, project.default_branch, today - CARD_DAYS * trends.DAY_MS, today)
    for point in reversed(series.data):
        if point.graded:
            message = f"{point.grade or 'no grade'} as of {point.day}" + (
                f" ({point.score:g}/100)" if point.score is not None else " (not enough runs yet)")
            return CardHealth(point.grade, point.score, point.flaky_tests, point.day, message)
    return CardHealth(None, None, None, None, f"no graded day in the last {CARD_DAYS} days")


def flaky_ranking(conn, config: Config, project: Project, limit: int = 50) -> flaky.FlakyRanking:
    return flaky.rank(conn, project.id, branch=project.default_branch, rules=config.flaky, limit=limit)


def flaky_ids(conn, config: Config, project: Project) -> set[int]:
    """Tests judged flaky on the project's default branch."""
    analysis = flaky.analyse(conn, project.id, project.default_branch, config.flaky)
    return {j.test_id for j in analysis.judgements.values() if j.state == flaky.FLAKY}


def run_marks(conn, config: Config, project: Project, run: Run) -> RunMarks:
    found = regressions.of_run(conn, project.id, run.id, config.flaky)
    return RunMarks(
        new_failures={f.test_id for f in found.data},
        flaky=flaky_ids(conn, config, project),
        quarantined=quarantine.quarantined_ids(conn, project.id),
        baseline_run_id=found.baseline_run_id,
    )


def run_gate(conn, config: Config, project: Project, run: Run) -> gate.GateResult | None:
    """The gate's verdict on a finished run with the project's rules; None while it runs."""
    if run.status not in RUN_FINISHED:
        return None
    try:
        return gate.evaluate(
            conn, project.id, run_ref=run.id, flaky_rules=config.flaky, grade_rules=config.grade
        )
    except Conflict:  # finished between our read and the gate's: judged on the next view
        return None


def gate_verdicts(conn, config: Config, project: Project, finished: list[Run]) -> list[GateVerdict]:
    """The gate's verdicts on `finished` runs (newest first in, oldest first out)."""
    out = []
    for run in reversed(finished):
        try:
            result = run_gate(conn, config, project, run)
            if result is not None:  # what CI got, beside what it would be now (docs/triage.md)
                result = gate.with_recorded(result, gate.recorded_verdict(conn, run.id))
            out.append(GateVerdict(run, result, None))
        except DomainError as exc:  # a project's invalid settings.gate: say so on the page
            out.append(GateVerdict(run, None, exc.message))
    return out


def trend(conn, project: Project, branch: str | None, from_day: int, to_day: int) -> trends.TrendSeries:
    return trends.series(conn, project.id, branch, from_day, to_day)


class ProjectHealth(msgspec.Struct):
    ranking: flaky.FlakyRanking
    grade: grade.Grade


def project_health(conn, config: Config, project: Project, limit: int) -> ProjectHealth:
    """The project page's top flaky tests and grade, in one reader hop."""
    return ProjectHealth(flaky_ranking(conn, config, project, limit), project_grade(conn, config, project))


class TrendsView(msgspec.Struct):
    series: trends.TrendSeries
    verdicts: list[GateVerdict]
    grade: grade.Grade


def trends_view(
    conn, config: Config, project: Project, branch: str | None, from_day: int, to_day: int, finished: list[Run]
) -> TrendsView:
    """The trends page's days, gate verdicts on `finished` runs and grade, in one reader hop."""
    return TrendsView(
        trend(conn, project, branch, from_day, to_day), gate_verdicts(conn, config, project, finished),
        project_grade(conn, config, project, branch),
    )
