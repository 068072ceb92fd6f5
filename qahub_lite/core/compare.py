"""Run comparison (docs/triage.md): what changed between a run and a base run.

The base is the one asked for, else the previous finished run of the same project and branch
(created before this one). Tests are matched by identity (`tests` rows, docs/identity.md), so a
test renamed in the report is a removed test and a new one, never silently the same.
"""

from __future__ import annotations

import msgspec

from ..db import results as results_db
from ..db import runs as runs_db
from .errors import Invalid, NotFound
from .quarantine import test_infos
from .status import FAILURE_STATUSES, RUN_FINISHED

LISTED = 200  # tests listed per section; the totals count them all
DURATIONS = 10


class ComparedTest(msgspec.Struct):
    test_id: int
    title: str
    suite: str
    test_case_code: str | None
    status: str | None  # in this run (None: not in it)
    base_status: str | None  # in the base (None: not in it)


class DurationChange(msgspec.Struct):
    test_id: int
    title: str
    suite: str
    duration_ms: int
    base_duration_ms: int
    change_ms: int
    change_pct: float | None  # None when the base took 0 ms


class Section(msgspec.Struct):
    total: int
    data: list[ComparedTest]


class RunComparison(msgspec.Struct):
    run_id: str
    short_id: str
    base_run_id: str | None
    base_short_id: str | None
    base_reason: str  # why this base: asked for, or the previous finished run of the branch
    newly_failing: Section
    fixed: Section
    still_failing: Section
    new_tests: Section
    removed_tests: Section
    duration_changes: list[DurationChange]


def _run(conn, project_id: str, ref: str):
    row = runs_db.find_project_run(conn, project_id, ref)
    if row is None:
        raise NotFound("Base run not found in this project")
    return row


def _results(conn, run_id: str) -> dict[int, tuple[str, int | None]]:
    return {r[0]: (r[1], r[2]) for r in results_db.statuses_and_durations(conn, run_id)}


def compare(conn, project_id: str, run_id: str, base_ref: str | None = None) -> RunComparison:
    run = _run(conn, project_id, run_id)
    if base_ref:
        base = _run(conn, project_id, base_ref)
        if base["id"] == run["id"]:
            raise Invalid("base must be another run")
        reason = "asked for"
    else:
        base = runs_db.latest_run_of_branch(conn, project_id, run["branch"], sorted(RUN_FINISHED),
                                            before=(run["id"], run["created_at"]))
        where = run["branch"] or "no branch"
        reason = f"the previous finished run on {where}" if base else f"no earlier finished run on {where}"
    now = _results(conn, run["id"])
    then = _results(conn, base["id"]) if base else {}
    newly, fixed, still, added, removed = [], [], [], [], []
    for test_id, (status, _) in now.items():
        before = then.get(test_id)
        if before is None:
            if base:
                added.append(test_id)
        elif status in FAILURE_STATUSES and before[0] in FAILURE_STATUSES:
            still.append(test_id)
        elif status in FAILURE_STATUSES:
            newly.append(test_id)
        elif before[0] in FAILURE_STATUSES and status == "PASSED":
            fixed.append(test_id)
    removed = [t for t in then if t not in now]
    changes = sorted(
        ((t, now[t][1], then[t][1]) for t in now if t in then and now[t][1] is not None and then[t][1] is not None
         and now[t][1] != then[t][1]),
        key=lambda c: (-abs(c[1] - c[2]), c[0]),
    )[:DURATIONS]
    wanted = {t for group in (newly, fixed, still, added, removed) for t in group[:LISTED]} | {c[0] for c in changes}
    infos = test_infos(conn, project_id, sorted(wanted))

    def section(ids: list[int]) -> Section:
        data = [
            ComparedTest(t, infos[t].title, infos[t].suite, infos[t].test_case_code,
                         now[t][0] if t in now else None, then[t][0] if t in then else None)
            for t in sorted(ids)[:LISTED] if t in infos
        ]
        return Section(len(ids), data)

    durations = [
        DurationChange(t, infos[t].title, infos[t].suite, d, b, d - b, round((d - b) / b * 100, 1) if b else None)
        for t, d, b in changes if t in infos
    ]
    return RunComparison(
        run["id"], run["short_id"], base["id"] if base else None, base["short_id"] if base else None, reason,
        section(newly), section(fixed), section(still), section(added), section(removed), durations,
    )
