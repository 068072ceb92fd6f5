"""Triggered runs: what a Qualigate trigger, a QA.tech start or a rerun asks to execute, turned
into a run with PENDING results, one execution per test and one queued job per framework.

Every result row is written through THE ingest path (`ingest.store_results`): a trigger is a run
whose results are not in yet. A test that no agent could run (its test case has no automation
mapping) fails fast: it is stored BROKEN with a message that says what to set, and gets no job.
A run that ends up with no job at all is finished at once (ERROR), so pollers stop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import msgspec

from . import runs as runs_core
from .clock import new_id, now_ms
from .errors import Invalid, NotFound
from .ingest import case_identity, store_results, unlinked_identity
from .library import Automation
from .model import CiContext, ResultRecord, RunRecord
from .status import RERUN_FAILED
from ..wire import TriggerOptions  # noqa: F401 - shared with the agent

_automation_decoder = msgspec.json.Decoder(Automation)
_json = msgspec.json.Encoder()


class TestSpec(msgspec.Struct, frozen=True):
    """One test to execute: a library test case, or an unlinked test known by (suite, title)."""

    title: str
    test_case_id: str | None = None
    code: str | None = None
    suite_path: str = ""
    framework: str | None = None
    grep: str | None = None
    file: str | None = None

    @property
    def identity(self) -> str:
        if self.test_case_id:
            return case_identity(self.test_case_id)
        return unlinked_identity(self.suite_path, self.title)

    def no_agent_reason(self) -> str | None:
        """Why no agent could run this test, or None when one can."""
        if self.framework:
            return None
        if self.test_case_id:
            return (
                f"test case {self.code} has no automation mapping: set its automation.framework (and grep "
                "or file) so that an agent can run it"
            )
        return f"{self.title!r} came in without a test case and without a framework, so no agent can run it"


class Trigger(msgspec.Struct, kw_only=True):
    project_id: str
    name: str
    source: str  # "qualigate", "qatech"
    specs: list[TestSpec]
    options: TriggerOptions = msgspec.field(default_factory=TriggerOptions)
    ci: CiContext = msgspec.field(default_factory=CiContext)
    extra: dict = {}


class Triggered(msgspec.Struct):
    run_id: str
    short_id: str
    execution_ids: list[str]  # in the order of the trigger's specs
    jobs: int
    failed_fast: int


def _spec_from_case(row) -> TestSpec:
    """(id, code, title, automation JSON) -> spec."""
    automation = _automation_decoder.decode(row[3]) if row[3] else Automation()
    return TestSpec(
        title=row[2], test_case_id=row[0], code=row[1], framework=automation.framework or None,
        grep=automation.grep or None, file=automation.file or None,
    )


_CASE_COLUMNS = "c.id, c.code, c.title, c.automation"


def specs_of_cases(conn: sqlite3.Connection, project_id: str, refs: Sequence[str]) -> list[TestSpec]:
    """Test cases of a project by id or code, in the order given (duplicates dropped).
    Raises NotFound naming the first that does not exist."""
    specs: dict[str, TestSpec] = {}
    for ref in refs:
        row = conn.execute(
            f"SELECT {_CASE_COLUMNS} FROM test_cases c WHERE c.project_id = ? AND (c.id = ? OR c.code = ?)",
            (project_id, ref, ref),
        ).fetchone()
        if row is None:
            raise NotFound(f"Test case not found: {ref}")
        specs.setdefault(row[0], _spec_from_case(row))
    return list(specs.values())


def specs_of_suite(conn: sqlite3.Connection, suite_id: str) -> list[TestSpec]:
    """Every test case filed in the suite or in any suite below it."""
    rows = conn.execute(
        f"""WITH RECURSIVE tree(id) AS (
                SELECT id FROM suites WHERE id = ?
                UNION SELECT s.id FROM suites s JOIN tree ON s.parent_id = tree.id)
            SELECT {_CASE_COLUMNS} FROM test_cases c WHERE c.suite_id IN (SELECT id FROM tree)
            ORDER BY c.created_at, c.id""",
        (suite_id,),
    ).fetchall()
    return [_spec_from_case(r) for r in rows]


def specs_of_project(conn: sqlite3.Connection, project_id: str) -> list[TestSpec]:
    rows = conn.execute(
        f"SELECT {_CASE_COLUMNS} FROM test_cases c WHERE c.project_id = ? ORDER BY c.created_at, c.id", (project_id,)
    ).fetchall()
    return [_spec_from_case(r) for r in rows]


def suite_info(conn: sqlite3.Connection, tenant_id: str, suite_id: str) -> tuple[str, str]:
    """(project id, name) of a suite of the tenant."""
    row = conn.execute(
        "SELECT s.project_id, s.name FROM suites s JOIN projects p ON p.id = s.project_id "
        "WHERE s.id = ? AND p.tenant_id = ?",
        (suite_id, tenant_id),
    ).fetchone()
    if row is None:
        raise NotFound("Suite not found")
    return row[0], row[1]


def create_triggered_run(conn: sqlite3.Connection, tenant_id: str, trigger: Trigger) -> Triggered:
    """Writer operation: the run, its PENDING (or failed-fast BROKEN) results, the executions
    and one QUEUED job per framework, all in one transaction."""
    specs = list({s.identity: s for s in trigger.specs}.values())
    if not specs:
        raise Invalid("there are no test cases to run")
    frameworks = sorted({s.framework for s in specs if s.framework})
    records = []
    for index, spec in enumerate(specs):
        reason = spec.no_agent_reason()
        records.append((index, ResultRecord(
            status="BROKEN" if reason else "PENDING", test_case_id=spec.test_case_id,
            title=None if spec.test_case_id else spec.title, suite_path="" if spec.test_case_id else spec.suite_path,
            framework=spec.framework, file=spec.file, error_message=reason,
        )))
    run = RunRecord(
        project_id=trigger.project_id, name=trigger.name, source=trigger.source, status="PENDING",
        framework=frameworks[0] if len(frameworks) == 1 else None, ci=trigger.ci,
        extra={**trigger.extra, "trigger": msgspec.to_builtins(trigger.options)},
    )
    outcome = store_results(conn, tenant_id, records, run=run)
    if outcome.rejected:  # the specs were read from this project a moment ago
        raise Invalid("; ".join(e.error for e in outcome.errors))
    test_ids = {
        identity: test_id
        for identity, test_id in conn.execute(
            "SELECT t.identity, t.id FROM results r JOIN tests t ON t.id = r.test_id WHERE r.run_id = ?",
            (outcome.run_id,),
        )
    }
    now = now_ms()
    options = _json.encode(trigger.options).decode()
    job_ids = {}
    for framework in frameworks:
        job_ids[framework] = new_id()
        conn.execute(
            "INSERT INTO jobs (id, tenant_id, project_id, run_id, framework, status, options, created_at) "
            "VALUES (?,?,?,?,?,'QUEUED',?,?)",
            (job_ids[framework], tenant_id, trigger.project_id, outcome.run_id, framework, options, now),
        )
    execution_ids = [new_id() for _ in specs]
    conn.executemany(
        "INSERT INTO executions (id, run_id, test_id, job_id, position, grep, file, created_at) "
        "VALUES (?,?,?,?,?,?,?,?)",
        [
            (eid, outcome.run_id, test_ids[s.identity], job_ids.get(s.framework or ""), pos, s.grep, s.file, now)
            for pos, (eid, s) in enumerate(zip(execution_ids, specs))
        ],
    )
    failed_fast = sum(1 for s in specs if s.no_agent_reason())
    if not job_ids:
        runs_core.finish_run(conn, tenant_id, outcome.run_id, status="ERROR")
    return Triggered(outcome.run_id, outcome.short_id, execution_ids, len(job_ids), failed_fast)


# --- reruns ---------------------------------------------------------------------------


class RerunSource(msgspec.Struct):
    run: runs_core.Run
    options: TriggerOptions
    ci: CiContext
    specs: list[TestSpec]


_options_decoder = msgspec.json.Decoder(dict)


def rerun_specs(
    conn: sqlite3.Connection, tenant_id: str, run_ref: str, *, failed_only: bool = False,
    test_refs: Sequence[str] | None = None,
) -> RerunSource:
    """The tests of a run (any run: triggered or ingested) to execute again: all of them, only
    those whose outcome failed, or those named by test case id, code, or (for tests without a
    test case) their id in the run. A linked test runs with its test case's automation as it is
    now; an unlinked one with the framework and file its result recorded."""
    run = runs_core.get_run_sync(conn, tenant_id, run_ref)
    rows = conn.execute(
        """SELECT t.id, t.test_case_id, c.code, t.title, t.suite_path, c.automation, r.status,
                  coalesce(r.framework, u.framework), r.file
           FROM results r JOIN runs u ON u.id = r.run_id JOIN tests t ON t.id = r.test_id
           LEFT JOIN test_cases c ON c.id = t.test_case_id
           LEFT JOIN executions e ON e.run_id = r.run_id AND e.test_id = r.test_id
           WHERE r.run_id = ? ORDER BY coalesce(e.position, 0), r.id""",
        (run.id,),
    ).fetchall()
    chosen = rows
    if failed_only:
        chosen = [r for r in rows if r[6] in RERUN_FAILED]
    if test_refs is not None:
        wanted = list(dict.fromkeys(test_refs))
        found = {}
        for r in rows:
            for key in (r[1], r[2], str(r[0])):
                if key in wanted and key not in found:
                    found[key] = r
        missing = [ref for ref in wanted if ref not in found]
        if missing:
            raise Invalid(f"not tests of run {run.short_id}: {', '.join(missing)}")
        chosen = list({r[0]: r for r in (found[ref] for ref in wanted)}.values())
    specs = []
    for r in chosen:
        if r[1]:
            specs.append(_spec_from_case((r[1], r[2], r[3], r[5])))
        else:
            specs.append(TestSpec(title=r[3], suite_path=r[4], framework=r[7] or None, file=r[8]))
    extra = conn.execute("SELECT extra FROM runs WHERE id = ?", (run.id,)).fetchone()[0]
    saved = _options_decoder.decode(extra).get("trigger") if extra else None
    try:
        options = msgspec.convert(saved, TriggerOptions) if saved else TriggerOptions()
    except msgspec.ValidationError:
        options = TriggerOptions()
    ci = CiContext(
        branch=run.ci.branch, commit_sha=run.ci.commit, pr_number=run.ci.pr_number, pr_url=run.ci.pr_url,
        repository=run.ci.repository, ci_provider=run.ci.ci_provider, build_url=run.ci.build_url,
    )
    return RerunSource(run, options, ci, specs)
