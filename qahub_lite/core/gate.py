"""The quality gate: pass or fail for one finished run, with every reason.

Rules come from the query, else from the project's `settings.gate`, else the defaults
(no new failures, quarantined tests ignored):

- status: the run COMPLETED (an ERROR or CANCELED run fails the gate);
- min_grade: the grade the default branch would have with this run as its latest (for a
  default-branch run, simply its grade then) is at least this letter; with too few runs the
  rule is skipped, and says so;
- max_failures: the run has at most this many failing results;
- no_new_failures: no test that did not fail in the baseline (passed, skipped, or new) fails in
  this run (regressions.py); without a baseline, no test fails at all.

With ignore_quarantined, a quarantined test counts in none of them; with
ignore_known_environment (off by default), neither does a failure whose signature is triaged as
a known `environment` issue (docs/triage.md). Each failure set aside is listed with why.

The verdict of a run is recorded the first time it is computed through the API (what CI got,
`record_first`); a later quarantine or triage never rewrites it: the answer then carries the
recorded verdict beside the one it would be now.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from ..config import FlakyConfig, GradeConfig
from ..db import failures as failures_db
from ..db import results as results_db
from ..db import runs as runs_db
from .clock import now_ms, to_iso
from .errors import Conflict, Invalid, NotFound
from .flaky import analyse
from .grade import NOT_ENOUGH_DATA, Grade, grade_of
from .quarantine import quarantined_ids, test_infos
from .regressions import NewFailure, of_run
from .status import FAILURE_STATUSES, RUN_FINISHED
from .window import get_window_run

Letter = Literal["A", "B", "C", "D", "F"]
_ORDER = "ABCDF"
_FAILURES = tuple(sorted(FAILURE_STATUSES))


class GateRules(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Gate rules, as a project keeps them in `settings.gate` and as the query gives them."""

    min_grade: Letter | None = None
    max_failures: Annotated[int, msgspec.Meta(ge=0)] | None = None
    no_new_failures: bool | None = None
    ignore_quarantined: bool | None = None
    ignore_known_environment: bool | None = None


class EffectiveRules(msgspec.Struct):
    min_grade: str | None
    max_failures: int | None
    no_new_failures: bool
    ignore_quarantined: bool
    ignore_known_environment: bool = False


class SetAside(msgspec.Struct):
    """A failure the gate did not count, and why."""

    test_id: int
    title: str
    status: str
    why: str  # quarantined | known_environment_issue
    detail: str  # the quarantine's reason and ticket, or the ticket


class RecordedVerdict(msgspec.Struct):
    passed: bool
    reasons: list[str]
    set_aside: list[SetAside]
    computed_at: str | None


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
    set_aside: list[SetAside] = []
    recorded: RecordedVerdict | None = None  # what CI got the first time this run was judged
    changed_since_recorded: bool = False  # the verdict would differ now (a quarantine, a triage)


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
        pick("ignore_quarantined", True), pick("ignore_known_environment", False),
    )


def _pick_run(conn, project_id: str, run_ref: str | None, branch: str | None, main: str):
    """The run to judge: (id, short_id, status, branch, commit_sha, ...) row."""
    if run_ref:
        row = runs_db.find_project_run(conn, project_id, run_ref)
        if row is None:
            raise NotFound("Run not found in this project")
        return row
    branch = branch if branch is not None else main
    row = runs_db.latest_run_of_branch(conn, project_id, branch or None, sorted(RUN_FINISHED))
    if row is None:
        raise NotFound(
            f"No finished run on branch {branch!r} yet (runs sent without a branch belong to no branch: send "
            "ci.branch, upload from CI, or name the run with run_id / --run)"
        )
    return row


def evaluate(
    conn, project_id: str, *, run_ref: str | None = None, branch: str | None = None,
    rules: GateRules | None = None, flaky_rules: FlakyConfig | None = None, grade_rules: GradeConfig | None = None,
) -> GateResult:
    """Judge a run (`run_ref`: id or short id) or a branch's latest finished run (default: the
    default branch's) against the query's `rules` over the project's settings."""
    flaky_rules, grade_rules = flaky_rules or FlakyConfig(), grade_rules or GradeConfig()
    found = runs_db.project_settings(conn, project_id)
    if found is None:
        raise NotFound("Project not found")
    main = found["default_branch"]
    settings = msgspec.json.decode(found["settings"]) if found["settings"] else {}
    chosen = effective(settings_rules(settings), rules or GateRules())
    picked = _pick_run(conn, project_id, run_ref, branch, main)
    run_id, short_id, status = picked["id"], picked["short_id"], picked["status"]
    run_branch, commit = picked["branch"], picked["commit_sha"]
    if status not in RUN_FINISHED:
        raise Conflict(f"run {short_id} is {status}: the gate judges finished runs; ask again once it has finished")
    run = get_window_run(conn, run_id)
    ignore = frozenset(quarantined_ids(conn, project_id)) if chosen.ignore_quarantined else frozenset()

    analysis = analyse(conn, project_id, main, flaky_rules, newest=run, ignore=ignore)
    grade = grade_of(analysis, project_id, main, flaky_rules, grade_rules, ignore)
    failing_rows = results_db.failing_results(conn, run_id, _FAILURES)
    failing = [r[0] for r in failing_rows]
    aside = _set_aside(conn, project_id, failing_rows, ignore, chosen.ignore_known_environment)
    ignored = sum(1 for t in failing if t in ignore)
    skipped = {a.test_id for a in aside}
    failures = len(failing) - len(skipped)
    if run.failed + run.broken > len(failing):  # a summary counted more than the cases it sent
        failures = run.failed + run.broken - len(skipped)
    regressions = of_run(conn, project_id, run_id, flaky_rules)
    new = [f for f in regressions.data
           if not (chosen.ignore_quarantined and f.quarantined) and f.test_id not in skipped]

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
            # Nothing to tell new failures from old ones: every failure counts as new. A first
            # run, or a project without default-branch runs, that fails must not pass the gate.
            checks.append(GateCheck(
                "no_new_failures", failures == 0,
                f"{failures} failing test(s) and no baseline run on the default branch to compare with"
                if failures else "no failures (no baseline run on the default branch yet)",
            ))
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
        quarantined_failures_ignored=ignored, new_failures=new, grade=grade, rules=chosen, set_aside=aside,
    )


def _set_aside(
    conn, project_id: str, failing_rows: list, quarantined: frozenset, known_env: bool,
) -> list[SetAside]:
    infos = {}
    env: dict[int, str] = {}
    if known_env:
        sids = sorted({r[2] for r in failing_rows if r[2] is not None})
        for sid, key, url, hash_ in failures_db.environment_tickets(conn, sids):
            env[sid] = key or url or f"signature {hash_}"
    wanted = [r[0] for r in failing_rows if r[0] in quarantined or r[2] in env]
    if wanted:
        infos = test_infos(conn, project_id, wanted)
    out = []
    for test_id, status, sid in failing_rows:
        info = infos.get(test_id)
        if info is None:
            continue
        if test_id in quarantined:
            detail = "; ".join(x for x in (info.quarantine_reason, info.quarantine_ticket) if x) or "no reason given"
            out.append(SetAside(test_id, info.title, status, "quarantined", detail))
        elif sid in env:
            out.append(SetAside(test_id, info.title, status, "known_environment_issue", f"known: {env[sid]}"))
    return out


def record_first(conn, result: GateResult) -> GateResult:
    """Writer operation: record `result` as the run's verdict unless one is recorded already;
    answer with the recorded verdict beside this one."""
    encoder = msgspec.json.Encoder()
    failures_db.record_gate_verdict(conn, result.run_id, result.passed, encoder.encode(result.reasons).decode(),
                                    encoder.encode(result.set_aside).decode(), now_ms())
    return with_recorded(result, recorded_verdict(conn, result.run_id))


def with_recorded(result: GateResult, recorded: RecordedVerdict | None) -> GateResult:
    """`result` with the run's recorded verdict beside it."""
    if recorded is None:
        return result
    return msgspec.structs.replace(result, recorded=recorded, changed_since_recorded=recorded.passed != result.passed)


def recorded_verdict(conn, run_id: str) -> RecordedVerdict | None:
    row = failures_db.gate_verdict(conn, run_id)
    if row is None:
        return None
    return RecordedVerdict(bool(row["passed"]), msgspec.json.decode(row["reasons"]),
                           msgspec.json.decode(row["set_aside"], type=list[SetAside]), to_iso(row["computed_at"]))


def evaluate_with_recorded(conn, project_id: str, **kwargs) -> GateResult:
    """`evaluate` with the run's recorded verdict beside it, in one read."""
    result = evaluate(conn, project_id, **kwargs)
    return with_recorded(result, recorded_verdict(conn, result.run_id))
