"""What happens to test health when a run finishes, whatever dialect brought it in.

`on_run_completed` is called by the ingest path (store_results creating a finished run) and by
finish_run, inside their transaction. It stays cheap for a 10,000-result run: it refreshes the
run's day in the trend (trends.py) and queues the run in `run_health_queue`, committed with
the run itself, so no finished run is ever missed.

The `run-health` job then takes each queued run (`process_queued`, one writer transaction per
run, which also deletes its queue row): the day is refreshed again (a dialect may have changed
the run's counts later in the same transaction, as QualityPilot does with its summary), the
run is judged against its baseline (regressions.py), and webhook events are queued in the
outbox: `run.completed` for every finished run, `run.regressed` when it has new failures,
`test.flaky` when tests of a default-branch run turned flaky with it. The job has the config
(flaky rules, public URL) that the ingest path does not.
"""

from __future__ import annotations

import logging
import sqlite3

import msgspec

from ..config import FlakyConfig
from . import autoquarantine
from .clock import now_ms
from .flaky import FLAKY, Judgement, analyse
from .quarantine import test_infos
from .regressions import judge_finished_run
from . import runs as runs_core
from .status import FAILURE_STATUSES
from .trends import day_of, refresh_day, refresh_day_of_run
from .webhooks import Subscriber, enqueue, subscribers
from .window import SyncSource, WindowRun, default_branch, drive, get_window_run, is_infra_failure, recent_runs

log = logging.getLogger("qahub.health")
MAX_ATTEMPTS = 5  # a queued run whose processing fails this often is dropped (and logged)
_FAILING = tuple(sorted(FAILURE_STATUSES))


def on_run_completed(conn: sqlite3.Connection, run_id: str) -> None:
    """Writer operation, inside the transaction that finished the run (see the module doc)."""
    row = conn.execute("SELECT project_id, branch, created_at FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        return
    refresh_day(conn, row[0], row[1], day_of(row[2]))
    conn.execute("INSERT INTO run_health_queue (run_id, queued_at) VALUES (?, ?)", (run_id, now_ms()))


async def queued(conn, limit: int) -> list[tuple[int, str]]:
    """(queue id, run id) of finished runs waiting for their health work, first in first out."""
    rows = await conn.execute_fetchall("SELECT id, run_id FROM run_health_queue ORDER BY id LIMIT ?", (limit,))
    return [(r[0], r[1]) for r in rows]


def give_up_or_retry(conn: sqlite3.Connection, queue_id: int, error: str) -> bool:
    """Writer operation after a failed `process_queued`: count it; drop the row after
    MAX_ATTEMPTS. Returns True when it was dropped."""
    conn.execute("UPDATE run_health_queue SET attempts = attempts + 1 WHERE id = ?", (queue_id,))
    row = conn.execute("SELECT attempts, run_id FROM run_health_queue WHERE id = ?", (queue_id,)).fetchone()
    if row is not None and row[0] >= MAX_ATTEMPTS:
        log.error("giving up on the health work of run %s after %d failures: %s", row[1], row[0], error)
        conn.execute("DELETE FROM run_health_queue WHERE id = ?", (queue_id,))
        return True
    return False


def process_queued(conn: sqlite3.Connection, queue_id: int, run_id: str, rules: FlakyConfig, public_url: str) -> int:
    """Writer operation: the health work of one finished run; returns the events queued."""
    if conn.execute("DELETE FROM run_health_queue WHERE id = ?", (queue_id,)).rowcount == 0:
        return 0  # done already (a second process sharing the database got there first)
    row = conn.execute("SELECT tenant_id, project_id FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        return 0  # deleted meanwhile (its queue row went with it, unless it raced us)
    tenant_id, project_id = row
    refresh_day_of_run(conn, run_id)
    baseline, failures = judge_finished_run(conn, project_id, run_id, rules)
    turned = _auto_quarantine(conn, project_id, run_id, rules)
    hooks = subscribers(conn, project_id)
    if not hooks:
        return 0
    run = runs_core.get_run(conn, tenant_id, run_id)
    project = _project(conn, project_id)
    summary = {**msgspec.to_builtins(run), "url": f"{public_url}/runs/{run.id}"}
    queued_events = enqueue(conn, hooks, "run.completed", project, {
        "run": summary, "baseline_run_id": baseline.id if baseline else None, "new_failures": len(failures),
    })
    if failures:
        infos = drive(test_infos(SyncSource(conn), project_id, [f[0] for f in failures]))
        listed = [
            {"test_id": t, "title": infos[t].title, "suite": infos[t].suite, "test_case_code": infos[t].test_case_code,
             "status": status, "error_message": (error or "")[:500] or None, "quarantined": infos[t].quarantined}
            for t, status, error in failures[:50] if t in infos
        ]
        queued_events += enqueue(conn, hooks, "run.regressed", project, {
            "run": summary, "baseline_run_id": baseline.id if baseline else None,
            "new_failures_total": len(failures), "new_failures": listed,
        })
    if _wants(hooks, "test.flaky") and run.ci.branch == project["default_branch"]:
        turned = turned if turned is not None else newly_flaky(conn, project_id, run_id, rules)
        if turned:
            infos = drive(test_infos(SyncSource(conn), project_id, [j.test_id for j in turned]))
            tests = [
                {"test_id": j.test_id, "title": infos[j.test_id].title, "suite": infos[j.test_id].suite,
                 "test_case_code": infos[j.test_id].test_case_code, "samples": j.samples, "flip_rate": j.flip_rate,
                 "retry_rate": j.retry_rate, "conflict_rate": j.conflict_rate, "flakiness": j.flakiness}
                for j in turned[:50] if j.test_id in infos
            ]
            queued_events += enqueue(conn, hooks, "test.flaky", project, {"run": summary, "tests": tests})
    return queued_events


def _auto_quarantine(conn: sqlite3.Connection, project_id: str, run_id: str, rules: FlakyConfig) -> list | None:
    """The project's auto-quarantine policy (autoquarantine.py), for default-branch runs; the
    tests that turned flaky, when they had to be found (None otherwise)."""
    row = conn.execute(
        "SELECT p.settings, p.default_branch, r.branch FROM projects p JOIN runs r ON r.project_id = p.id "
        "WHERE r.id = ?", (run_id,),
    ).fetchone()
    if row is None or not row[0] or row[1] != row[2] or not autoquarantine.policy_of(msgspec.json.decode(row[0])).auto:
        return None
    turned = newly_flaky(conn, project_id, run_id, rules)
    autoquarantine.apply(conn, project_id, run_id, rules, turned)
    return turned


def _wants(hooks: list[Subscriber], event: str) -> bool:
    return any(event in h.events for h in hooks)


def _project(conn: sqlite3.Connection, project_id: str) -> dict:
    row = conn.execute("SELECT id, slug, name, default_branch FROM projects WHERE id = ?", (project_id,)).fetchone()
    return {"id": row[0], "slug": row[1], "name": row[2], "default_branch": row[3]}


def newly_flaky(conn: sqlite3.Connection, project_id: str, run_id: str, rules: FlakyConfig) -> list[Judgement]:
    """Tests that are flaky with this default-branch run and were not just before it.

    Only tests whose state this run can have turned flaky are judged: a new sample is evidence
    only if it failed, passed on retry, passed after a failure in the previous run, or passed
    on a commit that failed before; older evidence does not change with a new sample."""
    src = SyncSource(conn)
    run: WindowRun | None = drive(get_window_run(src, run_id))
    if run is None or is_infra_failure(run, rules):
        return []
    main = drive(default_branch(src, project_id))
    before, _ = drive(recent_runs(src, project_id, main, rules.window_runs + rules.clear_after_clean_runs, rules,
                                  before_ms=run.created_at, exclude_run=run.id))
    candidates = {r[0] for r in conn.execute(
        f"SELECT test_id FROM results WHERE run_id = ? AND (status IN ({','.join('?' * len(_FAILING))}) OR flaky = 1)",
        (run.id, *_FAILING),
    )}
    earlier = [r.id for r in before[:1]] + [r.id for r in before if run.commit_sha and r.commit_sha == run.commit_sha]
    for other in dict.fromkeys(earlier):
        candidates.update(r[0] for r in conn.execute(
            "SELECT c.test_id FROM results c JOIN results p ON p.run_id = ? AND p.test_id = c.test_id "
            f"AND p.status IN ({','.join('?' * len(_FAILING))}) WHERE c.run_id = ? AND c.status = 'PASSED'",
            (other, *_FAILING, run.id),
        ))
    if not candidates:
        return []
    ids = sorted(candidates)
    now = drive(analyse(src, project_id, main, rules, test_ids=ids, newest=run)).judgements
    then = drive(analyse(src, project_id, main, rules, test_ids=ids, before_ms=run.created_at)).judgements
    turned = [j for j in now.values() if j.state == FLAKY and (j.test_id not in then or then[j.test_id].state != FLAKY)]
    return sorted(turned, key=lambda j: (-j.flakiness, j.test_id))
