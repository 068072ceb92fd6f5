"""The quality gate: pass or fail for one finished run, with every reason.

Rules come from the query, else from the project's `settings.gate`, else the defaults
(no new failures, quarantined tests ignored):

- status: the run COMPLETED (an ERROR or CANCELED run fails the gate);
- min_grade: the grade the default branch would have with this run as its latest (for a
  default-branch run, simply its grade then) is at least this letter; with too few runs the
  rule is skipped, and says so;
- max_failures: the run has at most this many failing results;
- no_new_failures: no test that passed in the baseline fails in this run (regressions.py).

With ignore_quarantined, a quarantined test counts in none of them.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from ..config import FlakyConfig, GradeConfig
from .errors import Conflict, Invalid, NotFound
from .flaky import analyse
from .grade import NOT_ENOUGH_DATA, Grade, grade_of
from .quarantine import quarantined_ids
from .regressions import NewFailure, of_run
from .status import FAILING, RUN_FINISHED
from .window import get_window_run, source

Letter = Literal["A", "B", "C", "D", "F"]
_ORDER = "ABCDF"
_FAILING = tuple(sorted(FAILING))


class GateRules(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Gate rules, as a project keeps them in `settings.gate` and as the query gives them."""

    min_grade: Letter | None = None
    max_failures: Annotated[int, msgspec.Meta(ge=0)] | None = None
    no_new_failures: bool | None = None
    ignore_quarantined: bool | None = None


class EffectiveRules(msgspec.Struct):
    min_grade: str | None
    max_failures: int | None
    no_new_failures: bool
    ignore_quarantined: bool


class GateCheck(msgspec.Struct):
    rule: str
    passed: bool
    message: str


class GateResult(msgspec.Struct):
    passed: bool
    verdict: str  # pass | fail
    reasons: list[str]  # why it failed: one sentence per failed check (empty when it passed)
    checks: list[GateCheck]  # every rule applied, passed or not
    project_id: str
    run_id: str
    short_id: str
    run_status: str
    branch: str | None
    commit: str | None
    baseline_run_id: str | None
    failures: int
    quarantined_failures_ignored: int
    new_failures: list[NewFailure]
    grade: Grade
    rules: EffectiveRules


def settings_rules(settings: dict) -> GateRules:
    """A project's `settings.gate`, validated (a 400 names the bad key)."""
    try:
        return msgspec.convert(settings.get("gate") or {}, GateRules)
    except msgspec.ValidationError as exc:
        raise Invalid(f"settings.gate is invalid: {str(exc).replace('`$.', '`gate.')}") from None


def effective(settings: GateRules, query: GateRules) -> EffectiveRules:
    def pick(name: str, default):
        for rules in (query, settings):
            value = getattr(rules, name)
            if value is not None:
                return value
        return default

    return EffectiveRules(
        pick("min_grade", None), pick("max_failures", None), pick("no_new_failures", True),
        pick("ignore_quarantined", True),
    )


async def _pick_run(src, project_id: str, run_ref: str | None, branch: str | None, main: str) -> tuple:
    """(id, short id, status, branch, commit) of the run to judge."""
    columns = "id, short_id, status, branch, commit_sha"
    if run_ref:
        rows = await src.fetch(
            f"SELECT {columns} FROM runs WHERE (id = ? OR short_id = ?) AND project_id = ?",
            (run_ref, run_ref, project_id),
        )
        if not rows:
            raise NotFound("Run not found in this project")
        return rows[0]
    branch = branch if branch is not None else main
    finished = ",".join(f"'{s}'" for s in sorted(RUN_FINISHED))
    rows = await src.fetch(
        f"SELECT {columns} FROM runs WHERE project_id = ? AND branch IS ? AND status IN ({finished}) "
        "ORDER BY created_at DESC LIMIT 1",
        (project_id, branch or None),
    )
    if not rows:
        raise NotFound(
            f"No finished run on branch {branch!r} yet (runs sent without a branch belong to no branch: send "
            "ci.branch, upload from CI, or name the run with run_id / --run)"
        )
    return rows[0]


async def evaluate(
    conn, project_id: str, *, run_ref: str | None = None, branch: str | None = None,
    rules: GateRules | None = None, flaky_rules: FlakyConfig | None = None, grade_rules: GradeConfig | None = None,
) -> GateResult:
    """Judge a run (`run_ref`: id or short id) or a branch's latest finished run (default: the
    default branch's) against the query's `rules` over the project's settings."""
    src = source(conn)
    flaky_rules, grade_rules = flaky_rules or FlakyConfig(), grade_rules or GradeConfig()
    found = await src.fetch("SELECT default_branch, settings FROM projects WHERE id = ?", (project_id,))
    if not found:
        raise NotFound("Project not found")
    main, settings = found[0][0], msgspec.json.decode(found[0][1]) if found[0][1] else {}
    chosen = effective(settings_rules(settings), rules or GateRules())
    run_id, short_id, status, run_branch, commit = await _pick_run(src, project_id, run_ref, branch, main)
    if status not in RUN_FINISHED:
        raise Conflict(f"run {short_id} is {status}: the gate judges finished runs; ask again once it has finished")
    run = await get_window_run(src, run_id)
    ignore = frozenset(await quarantined_ids(src, project_id)) if chosen.ignore_quarantined else frozenset()

    analysis = await analyse(src, project_id, main, flaky_rules, newest=run, ignore=ignore)
    grade = grade_of(analysis, project_id, main, flaky_rules, grade_rules, ignore)
    failing = [r[0] for r in await src.fetch(
        f"SELECT test_id FROM results WHERE run_id = ? AND status IN ({','.join('?' * len(_FAILING))})",
        (run_id, *_FAILING),
    )]
    ignored = sum(1 for t in failing if t in ignore)
    failures = len(failing) - ignored
    if run.failed + run.broken > len(failing):  # a summary counted more than the cases it sent
        failures = run.failed + run.broken - ignored
    regressions = await of_run(src, project_id, run_id, flaky_rules)
    new = [f for f in regressions.data if not (chosen.ignore_quarantined and f.quarantined)]

    checks = [GateCheck("status", status == "COMPLETED", f"run {short_id} is {status}")]
    if chosen.min_grade is not None:
        if grade.status == NOT_ENOUGH_DATA:
            checks.append(GateCheck("min_grade", True, f"skipped: {grade.message}"))
        else:
            ok = _ORDER.index(grade.grade) <= _ORDER.index(chosen.min_grade)
            checks.append(GateCheck(
                "min_grade", ok, f"grade {grade.grade} ({grade.score:g}/100) {'meets' if ok else 'is below'} "
                f"the minimum {chosen.min_grade}",
            ))
    if chosen.max_failures is not None:
        ok = failures <= chosen.max_failures
        checks.append(GateCheck(
            "max_failures", ok, f"{failures} failing test(s), {'within' if ok else 'more than'} the maximum "
            f"of {chosen.max_failures}",
        ))
    if chosen.no_new_failures:
        if regressions.baseline_run_id is None:
            checks.append(GateCheck("no_new_failures", True, "no baseline run on the default branch yet"))
        else:
            names = ", ".join(f.title for f in new[:5]) + (f" and {len(new) - 5} more" if len(new) > 5 else "")
            checks.append(GateCheck(
                "no_new_failures", not new,
                f"{len(new)} new failure(s) against the baseline: {names}" if new
                else "no new failures against the baseline",
            ))
    passed = all(c.passed for c in checks)
    return GateResult(
        passed=passed, verdict="pass" if passed else "fail", reasons=[c.message for c in checks if not c.passed],
        checks=checks, project_id=project_id, run_id=run_id, short_id=short_id, run_status=status, branch=run_branch,
        commit=commit, baseline_run_id=regressions.baseline_run_id, failures=failures,
        quarantined_failures_ignored=ignored, new_failures=new, grade=grade, rules=chosen,
    )
