"""The A-F grade of a project's branch: a 0-100 score from three figures, with its breakdown.

    score = 100 - min(50, 5 x failing%) - min(30, 3 x flaky%) - min(20, 4 x broken%)

- failing% = 100 x failing final results / (passing + failing final results) in the last N
  completed runs of the branch (infrastructure failures left out); so pass rate = 1 - that.
- flaky% and broken% = 100 x tests in that state / tests judged (flaky.py's rules).
- A >= 90, B >= 80, C >= 70, D >= 60, F below. Fewer than `grade.min_runs` runs: no grade,
  "not enough data".

The weights say what a point buys: one percent of failing results costs 5 points, one percent
of flaky tests 3, of broken tests 4; each penalty has a cap, and the caps add up to 100.
docs/health.md carries the same text with worked examples.
"""

from __future__ import annotations

import msgspec

from ..config import FlakyConfig, GradeConfig
from .flaky import BROKEN, FLAKY, Analysis, analyse
from .window import WindowRun, default_branch

# (points per percentage point, cap) of each penalty.
WEIGHTS = {"failures": (5.0, 50.0), "flaky": (3.0, 30.0), "broken": (4.0, 20.0)}
LETTERS = ((90.0, "A"), (80.0, "B"), (70.0, "C"), (60.0, "D"), (0.0, "F"))
FORMULA = "100 - min(50, 5 x failing%) - min(30, 3 x flaky%) - min(20, 4 x broken%)"
GRADED, NOT_ENOUGH_DATA = "graded", "not_enough_data"


class Penalty(msgspec.Struct):
    percent: float  # the figure, in percent
    points_per_percent: float
    cap: float
    points: float  # what it took off the score


class GradeBreakdown(msgspec.Struct):
    pass_rate: float  # passing / (passing + failing) final results, 0..1
    passed: int
    failed: int  # FAILED, BROKEN and TIMEOUT final results
    tests: int  # tests judged
    flaky_tests: int
    broken_tests: int
    failures: Penalty
    flaky: Penalty
    broken: Penalty


class Grade(msgspec.Struct):
    project_id: str
    branch: str | None
    status: str  # graded | not_enough_data
    grade: str | None
    score: float | None
    runs: int  # runs in the window
    min_runs: int
    window_runs: int
    infra_runs_excluded: int
    message: str
    formula: str
    breakdown: GradeBreakdown | None


def letter(score: float) -> str:
    for floor, name in LETTERS:
        if score >= floor:
            return name
    return "F"


def _penalty(name: str, percent: float) -> Penalty:
    per, cap = WEIGHTS[name]
    return Penalty(round(percent, 2), per, cap, round(min(cap, per * percent), 2))


def score_of(passed: int, failed: int, tests: int, flaky_tests: int, broken_tests: int) -> tuple[float, GradeBreakdown]:
    judged = passed + failed
    failing = 100.0 * failed / judged if judged else 0.0
    flaky = 100.0 * flaky_tests / tests if tests else 0.0
    broken = 100.0 * broken_tests / tests if tests else 0.0
    parts = _penalty("failures", failing), _penalty("flaky", flaky), _penalty("broken", broken)
    score = round(max(0.0, 100.0 - sum(p.points for p in parts)), 2)
    breakdown = GradeBreakdown(
        round(passed / judged, 4) if judged else 1.0, passed, failed, tests, flaky_tests, broken_tests, *parts
    )
    return score, breakdown


def grade_of(
    analysis: Analysis, project_id: str, branch: str | None, flaky_rules: FlakyConfig, grade_rules: GradeConfig,
    ignore: frozenset[int] = frozenset(),
) -> Grade:
    """Grade an analysis (flaky.analyse) of the branch: its last N runs' final results and
    the states of the tests judged. `ignore`d tests (quarantined, for the gate) count nowhere."""
    window = analysis.runs[-flaky_rules.window_runs :]
    tallies = analysis.tallies[len(analysis.runs) - len(window) :]
    passed, failed = sum(t[0] for t in tallies), sum(t[1] for t in tallies)
    judged = [j for j in analysis.judgements.values() if j.test_id not in ignore]
    flaky = sum(1 for j in judged if j.state == FLAKY)
    broken = sum(1 for j in judged if j.state == BROKEN)
    common = dict(
        project_id=project_id, branch=branch, runs=len(window), min_runs=grade_rules.min_runs,
        window_runs=flaky_rules.window_runs, infra_runs_excluded=analysis.infra_skipped, formula=FORMULA,
    )
    if len(window) < grade_rules.min_runs:
        return Grade(
            status=NOT_ENOUGH_DATA, grade=None, score=None, breakdown=None,
            message=f"not enough data: {len(window)} completed run(s), a grade needs {grade_rules.min_runs}",
            **common,
        )
    score, breakdown = score_of(passed, failed, len(judged), flaky, broken)
    name = letter(score)
    return Grade(
        status=GRADED, grade=name, score=score, breakdown=breakdown,
        message=f"{name} ({score:g}/100) over the last {len(window)} completed run(s)", **common,
    )


def compute(
    conn, project_id: str, branch: str | None = None, *, flaky_rules: FlakyConfig | None = None,
    grade_rules: GradeConfig | None = None, before_ms: int | None = None, newest: WindowRun | None = None,
    ignore: frozenset[int] = frozenset(),
) -> Grade:
    """The grade of a branch (default: the project's default branch) now, or as of `before_ms`.
    `newest`: grade as if this run were the branch's latest (the gate does, for a PR's run)."""
    flaky_rules, grade_rules = flaky_rules or FlakyConfig(), grade_rules or GradeConfig()
    branch = branch if branch is not None else default_branch(conn, project_id)
    analysis = analyse(conn, project_id, branch, flaky_rules, before_ms=before_ms, newest=newest, ignore=ignore)
    return grade_of(analysis, project_id, branch, flaky_rules, grade_rules, ignore)
