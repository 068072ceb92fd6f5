"""Triggered runs: what a Qualigate trigger, a QA.tech start or a rerun asks to run, turned
into a run with PENDING results, one execution per test and one queued job per framework.

Every result row is written through THE ingest path (`ingest.store_results`): a trigger is a run
whose results are not in yet. A test that no agent could run (its test case has no automation
mapping) fails fast: it is stored BROKEN with a message that says what to set, and gets no job.
A run that ends up with no job at all is finished at once (ERROR), so pollers stop.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ..db import triggers as triggers_db
from . import projects
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
    """One test to run: a library test case, or an unlinked test known by (suite, title)."""

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
    automation = _automation_decoder.decode(row["automation"]) if row["automation"] else Automation()
    return TestSpec(
        title=row["title"], test_case_id=row["id"], code=row["code"], framework=automation.framework or None,
        grep=automation.grep or None, file=automation.file or None,
    )


def specs_of_cases(conn, project_id: str, refs: Sequence[str]) -> list[TestSpec]:
    """Test cases of a project by id or code, in the order given (duplicates dropped), read in
    one query per chunk. Raises NotFound naming the first that does not exist."""
    rows = triggers_db.cases_by_refs(conn, project_id, list(dict.fromkeys(refs)))
    by_code = {row["code"]: row for row in rows}
    by_id = {row["id"]: row for row in rows}  # an id wins over another case's equal code
    specs: dict[str, TestSpec] = {}
    for ref in refs:
        row = by_id.get(ref) or by_code.get(ref)
        if row is None:
            raise NotFound(f"Test case not found: {ref}")
        specs.setdefault(row["id"], _spec_from_case(row))
    return list(specs.values())


def specs_of_suite(conn, suite_id: str) -> list[TestSpec]:
    """Every test case filed in the suite or in any suite below it."""
    return [_spec_from_case(r) for r in triggers_db.cases_of_suite_tree(conn, suite_id)]


def specs_of_project(conn, project_id: str) -> list[TestSpec]:
    return [_spec_from_case(r) for r in triggers_db.cases_of_project(conn, project_id)]


class Plan(msgspec.Struct):
    """What a trigger runs: its tests (unique by identity, in the order selected), the run's
    name, and the suite it was asked for, if any."""

    specs: list[TestSpec]
    name: str
    suite_id: str | None = None
    suite_name: str | None = None


def nothing_to_run(what: str) -> Invalid:
    """The one "nothing to run" rule of every trigger and rerun: a selection without a test is
    refused (400) before any run exists, saying what was selected, rather than queued empty."""
    return Invalid(f"{what} has no test cases to run")


def plan_trigger(
    conn, tenant_id: str, project_id: str, *, suite_id: str | None = None, case_refs: Sequence[str] = (),
) -> Plan:
    """The tests a trigger (Qualigate, QA.tech) selects in a project: a suite's test cases with
    those of the suites below it, test cases by id or code, or the union of both; neither means
    every test case of the project. A suite outside the project, or a test case that does not
    exist, is NotFound. The run is named after the suite, else the one test case named, else
    the project."""
    specs: list[TestSpec] = []
    suite_name = None
    if suite_id:
        suite = triggers_db.suite_of_tenant(conn, tenant_id, suite_id)
        if suite is None or suite["project_id"] != project_id:
            raise NotFound("Test suite not found")
        suite_name = suite["name"]
        specs += specs_of_suite(conn, suite_id)
    if case_refs:
        specs += specs_of_cases(conn, project_id, case_refs)
    if not suite_id and not case_refs:
        specs = specs_of_project(conn, project_id)
    specs = list({s.identity: s for s in specs}.values())
    if not specs:
        raise nothing_to_run("The test suite" if suite_id else "The project")
    if suite_name is not None:
        name = suite_name
    elif len(case_refs) == 1:
        name = specs[0].title
    else:
        name = projects.get_project(conn, tenant_id, project_id).name
    return Plan(specs, name, suite_id, suite_name)


def create_triggered_run(conn, tenant_id: str, trigger: Trigger) -> Triggered:
    """Writer operation: the run, its PENDING (or failed-fast BROKEN) results, the executions
    and one QUEUED job per framework, all in one transaction."""
    specs = list({s.identity: s for s in trigger.specs}.values())
    if not specs:
        raise nothing_to_run("The trigger")
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
    test_ids = triggers_db.test_ids_of_run(conn, outcome.run_id)
    now = now_ms()
    options = _json.encode(trigger.options).decode()
    job_ids = {}
    for framework in frameworks:
        job_ids[framework] = new_id()
        triggers_db.insert_queued_job(
            conn, job_ids[framework], tenant_id, trigger.project_id, outcome.run_id, framework, options, now
        )
    execution_ids = [new_id() for _ in specs]
    triggers_db.insert_executions(
        conn,
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
    conn, tenant_id: str, run_ref: str, *, failed_only: bool = False, test_refs: Sequence[str] | None = None,
) -> RerunSource:
    """The tests of a run (any run: triggered or ingested) to run again: all of them, only
    those whose outcome failed, or those named by test case id, code, or (for tests without a
    test case) their id in the run. A linked test runs with its test case's automation as it is
    now; an unlinked one with the framework and file its result recorded. Nothing to rerun is
    refused as a trigger with nothing to run is (`nothing_to_run`), in a rerun's words."""
    run = runs_core.get_run(conn, tenant_id, run_ref)
    rows = triggers_db.rerun_rows(conn, run.id)
    chosen = rows
    if failed_only:
        chosen = [r for r in rows if r["status"] in RERUN_FAILED]
    if test_refs is not None:
        wanted = list(dict.fromkeys(test_refs))
        wanted_set = set(wanted)
        found = {}
        for r in rows:
            for key in (r["test_case_id"], r["code"], str(r["test_id"])):
                if key in wanted_set and key not in found:
                    found[key] = r
        missing = [ref for ref in wanted if ref not in found]
        if missing:
            raise Invalid(f"not tests of run {run.short_id}: {', '.join(missing)}")
        chosen = list({r["test_id"]: r for r in (found[ref] for ref in wanted)}.values())
    if not chosen:
        raise Invalid(f"Run {run.short_id} has no {'failed tests' if failed_only else 'tests'} to rerun")
    specs = []
    for r in chosen:
        if r["test_case_id"]:
            specs.append(_spec_from_case({
                "id": r["test_case_id"], "code": r["code"], "title": r["title"], "automation": r["automation"],
            }))
        else:
            specs.append(TestSpec(title=r["title"], suite_path=r["suite_path"], framework=r["framework"] or None,
                                  file=r["file"]))
    extra = triggers_db.run_extra(conn, run.id)
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
