"""Run completion: the work done when a run finishes, whatever dialect brought it in.

`on_run_completed` is called by the ingest path (store_results creating a finished run) and by
finish_run, inside their transaction. It stays cheap for a 10,000-result run: it refreshes the
run's day in the trend (trends.py) and queues the run (db/run_completion.py), committed with
the run itself, so no finished run is ever missed.

The `run-completion` maintenance task then takes each queued run (`process_queued`, one writer
transaction per run, which also deletes its queue row): the day is refreshed again (a dialect may have changed
the run's counts later in the same transaction, as QualityPilot does with its summary), the
run is judged against its baseline (regressions.py), and webhook events are queued in the
outbox: `run.completed` for every finished run, `run.regressed` when it has new failures,
`test.flaky` when tests of a default-branch run turned flaky with it. The job has the config
(flaky rules, public URL) that the ingest path does not.
"""

from __future__ import annotations

import logging

import msgspec

from ..config import FlakyConfig
from ..db import daily as daily_db
from ..db import run_completion as completion_db
from ..db import tests as tests_db
from . import autoquarantine
from .clock import now_ms
from .flaky import FLAKY, Judgement, analyse
from .quarantine import test_infos
from .regressions import judge_finished_run
from . import runs as runs_core
from .status import FAILURE_STATUSES
from .trends import day_of, refresh_day, refresh_day_of_run
from .webhooks import Subscriber, enqueue, subscribers
from .window import WindowRun, default_branch, get_window_run, is_infra_failure, recent_runs

log = logging.getLogger("qahub.run_completion")
MAX_ATTEMPTS = 5  # a queued run whose processing fails this often is dropped (and logged)
_FAILING = tuple(sorted(FAILURE_STATUSES))


def on_run_completed(conn, run_id: str) -> None:
    """Writer operation, inside the transaction that finished the run (see the module doc)."""
    row = daily_db.day_of_run(conn, run_id)
    if row is None:
        return
    refresh_day(conn, row["project_id"], row["branch"], day_of(row["created_at"]))
    completion_db.queue_run(conn, run_id, now_ms())


def queued(conn, limit: int) -> list[tuple[int, str]]:
    """(queue id, run id) of finished runs waiting for their completion work, first in first out."""
    return [(r["id"], r["run_id"]) for r in completion_db.queued_runs(conn, limit)]


def give_up_or_retry(conn, queue_id: int, error: str) -> bool:
    """Writer operation after a failed `process_queued`: count it; drop the row after
    MAX_ATTEMPTS. Returns True when it was dropped."""
    row = completion_db.count_attempt(conn, queue_id)
    if row is not None and row["attempts"] >= MAX_ATTEMPTS:
        log.error("giving up on the completion work of run %s after %d failures: %s", row["run_id"], row["attempts"],
                  error)
        completion_db.dequeue(conn, queue_id)
        return True
    return False


def process_queued(conn, queue_id: int, run_id: str, rules: FlakyConfig, public_url: str) -> int:
    """Writer operation: the completion work of one finished run; returns the events queued."""
    if not completion_db.dequeue(conn, queue_id):
        return 0  # done already (a second process sharing the database got there first)
    row = completion_db.run_owner(conn, run_id)
    if row is None:
        return 0  # deleted meanwhile (its queue row went with it, unless it raced us)
    tenant_id, project_id = row["tenant_id"], row["project_id"]
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
        infos = test_infos(conn, project_id, [f[0] for f in failures])
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
            infos = test_infos(conn, project_id, [j.test_id for j in turned])
            tests = [
                {"test_id": j.test_id, "title": infos[j.test_id].title, "suite": infos[j.test_id].suite,
                 "test_case_code": infos[j.test_id].test_case_code, "samples": j.samples, "flip_rate": j.flip_rate,
                 "retry_rate": j.retry_rate, "conflict_rate": j.conflict_rate, "flakiness": j.flakiness}
                for j in turned[:50] if j.test_id in infos
            ]
            queued_events += enqueue(conn, hooks, "test.flaky", project, {"run": summary, "tests": tests})
    return queued_events


def _auto_quarantine(conn, project_id: str, run_id: str, rules: FlakyConfig) -> list | None:
    """The project's auto-quarantine policy (autoquarantine.py), for default-branch runs; the
    tests that turned flaky, when they had to be found (None otherwise)."""
    row = completion_db.project_of_run(conn, run_id)
    if (row is None or not row["settings"] or row["default_branch"] != row["branch"]
            or not autoquarantine.policy_of(msgspec.json.decode(row["settings"])).auto):
        return None
    turned = newly_flaky(conn, project_id, run_id, rules)
    autoquarantine.apply(conn, project_id, run_id, rules, turned)
    return turned


def _wants(hooks: list[Subscriber], event: str) -> bool:
    return any(event in h.events for h in hooks)


def _project(conn, project_id: str) -> dict:
    row = completion_db.project_names(conn, project_id)
    return {"id": row["id"], "slug": row["slug"], "name": row["name"], "default_branch": row["default_branch"]}


def newly_flaky(conn, project_id: str, run_id: str, rules: FlakyConfig) -> list[Judgement]:
    """Tests that are flaky with this default-branch run and were not just before it.

    Only tests whose state this run can have turned flaky are judged: a new sample is evidence
    only if it failed, passed on retry, passed after a failure in the previous run, or passed
    on a commit that failed before; older evidence does not change with a new sample."""
    run: WindowRun | None = get_window_run(conn, run_id)
    if run is None or is_infra_failure(run, rules):
        return []
    main = default_branch(conn, project_id)
    before, _ = recent_runs(conn, project_id, main, rules.window_runs + rules.clear_after_clean_runs, rules,
                            before_ms=run.created_at, exclude_run=run.id)
    candidates = set(tests_db.failing_or_retried_tests(conn, run.id, _FAILING))
    earlier = [r.id for r in before[:1]] + [r.id for r in before if run.commit_sha and r.commit_sha == run.commit_sha]
    for other in dict.fromkeys(earlier):
        candidates.update(tests_db.passed_after_failing(conn, run.id, other, _FAILING))
    if not candidates:
        return []
    ids = sorted(candidates)
    now = analyse(conn, project_id, main, rules, test_ids=ids, newest=run).judgements
    then = analyse(conn, project_id, main, rules, test_ids=ids, before_ms=run.created_at).judgements
    turned = [j for j in now.values() if j.state == FLAKY and (j.test_id not in then or then[j.test_id].state != FLAKY)]
    return sorted(turned, key=lambda j: (-j.flakiness, j.test_id))
