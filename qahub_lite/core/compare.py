"""Run comparison (docs/triage.md): what changed between a run and a base run.

The base is the one asked for, else the previous finished run of the same project and branch
(created before this one). Tests are matched by identity (`tests` rows, docs/identity.md), so a
test renamed in the report is a removed test and a new one, never silently the same.
"""

from __future__ import annotations

import msgspec

from .errors import Invalid, NotFound
from .quarantine import test_infos
from .status import FAILING, RUN_FINISHED

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


def _run(conn, project_id: str, ref: str) -> tuple:
    rows = conn.execute(
        "SELECT id, short_id, branch, created_at FROM runs WHERE (id = ? OR short_id = ?) AND project_id = ?",
        (ref, ref, project_id),
    ).fetchall()
    if not rows:
        raise NotFound("Base run not found in this project")
    return rows[0]


def _results(conn, run_id: str) -> dict[int, tuple[str, int | None]]:
    rows = conn.execute("SELECT test_id, status, duration_ms FROM results WHERE run_id = ?", (run_id,)).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def compare(conn, project_id: str, run_id: str, base_ref: str | None = None) -> RunComparison:
    run = _run(conn, project_id, run_id)
    if base_ref:
        base = _run(conn, project_id, base_ref)
        if base[0] == run[0]:
            raise Invalid("base must be another run")
        reason = "asked for"
    else:
        finished = ",".join(f"'{s}'" for s in sorted(RUN_FINISHED))
        found = conn.execute(
            f"SELECT id, short_id, branch, created_at FROM runs WHERE project_id = ? AND branch IS ? AND id != ? "
            f"AND status IN ({finished}) AND created_at <= ? ORDER BY created_at DESC, id DESC LIMIT 1",
            (project_id, run[2], run[0], run[3]),
        ).fetchall()
        base = found[0] if found else None
        reason = (f"the previous finished run on {run[2] or 'no branch'}" if base
                  else f"no earlier finished run on {run[2] or 'no branch'}")
    now = _results(conn, run[0])
    then = _results(conn, base[0]) if base else {}
    newly, fixed, still, added, removed = [], [], [], [], []
    for test_id, (status, _) in now.items():
        before = then.get(test_id)
        if before is None:
            if base:
                added.append(test_id)
        elif status in FAILING and before[0] in FAILING:
            still.append(test_id)
        elif status in FAILING:
            newly.append(test_id)
        elif before[0] in FAILING and status == "PASSED":
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
        run[0], run[1], base[0] if base else None, base[1] if base else None, reason, section(newly), section(fixed),
        section(still), section(added), section(removed), durations,
    )
