"""The one ingest path: every result that comes in, whatever dialect or tool sent it, is
stored by `store_results`, inside the single writer's transaction.

Steps, all in one transaction (a 2xx means all of it is committed):
1. create the run when asked (native ingest, QualityPilot, uploads) or check the target run;
2. resolve test case codes and ids of the run's project; unknown ones become item errors;
3. intern test identities (`tests` rows, core/identity.py) in bulk; two items of one request
   with the same identity are a visible conflict (an item error, or attempts), never last-wins;
4. upsert results in one bulk statement (never with RETURNING, see DESIGN.md);
5. give each failing result its failure signature (core/signatures.py, in bulk), carrying a
   known issue's ticket to it;
6. recompute the run's counts from its results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

from ..db import results as results_db
from ..db import runs as runs_db
from . import run_completion
from . import identity as identity_keys
from . import signatures
from . import triage_events
from . import runs as runs_core
from .clock import new_id, new_short_id, now_ms
from .errors import NotFound
from .model import AttemptRecord, IngestOutcome, ItemError, ResultRecord, RunRecord
from .status import FAILURE_STATUSES, RUN_FINISHED, passed_after_failing

_attempts_encoder = msgspec.json.Encoder()
_tags_encoder = msgspec.json.Encoder()


def unlinked_identity(suite_path: str, title: str, variant: str = "") -> str:
    return identity_keys.unlinked_key(suite_path, title, variant)


def case_identity(test_case_id: str, variant: str = "") -> str:
    return identity_keys.case_key(test_case_id, variant)


def insert_run(conn, tenant_id: str, run: RunRecord) -> tuple[str, str]:
    """Insert a run row; returns (id, short_id)."""
    run_id, now = new_id(), now_ms()
    finished = now if run.status in RUN_FINISHED else None
    started = run.started_at if run.started_at is not None else (now if run.status != "PENDING" else None)
    values = {
        "id": run_id, "short_id": "", "tenant_id": tenant_id, "project_id": run.project_id, "name": run.name,
        "environment": run.environment, "framework": run.framework, "source": run.source, "status": run.status,
        "branch": run.ci.branch, "commit_sha": run.ci.commit_sha, "pr_number": run.ci.pr_number,
        "pr_url": run.ci.pr_url, "repository": run.ci.repository, "ci_provider": run.ci.ci_provider,
        "build_url": run.ci.build_url, "created_at": now, "started_at": started, "finished_at": finished,
        "duration_ms": run.duration_ms, "extra": msgspec.json.encode(run.extra).decode() if run.extra else None,
    }
    for _ in range(5):  # short ids are random: a clash is rare, and another draw settles it
        values["short_id"] = new_short_id()
        if runs_db.insert_run(conn, values):
            return run_id, values["short_id"]
    raise RuntimeError("could not allocate a unique short id for a run")


def store_results(
    conn,
    tenant_id: str,
    items: Sequence[tuple[int, ResultRecord]],
    *,
    run: RunRecord | None = None,
    run_id: str | None = None,
    rejected: Sequence[ItemError] = (),
    unlink_unknown_codes: bool = False,
    duplicates: Literal["reject", "attempts"] = "reject",
) -> IngestOutcome:
    """Create `run` (or use `run_id`), then upsert `items` (original index, record) into it.

    `rejected` are items the edge already refused (bad shape, bad status); they are reported
    together with the items refused here (unknown test case, duplicate) in index order.
    `unlink_unknown_codes`: a code that names no test case of the project is not refused but
    stored as an unlinked result, for dialects that cannot report refused items (QualityPilot).
    `duplicates`: what two items of this request with one identity (test and variant) become:
    "reject" refuses the later ones with an item error naming the first (the native 207);
    "attempts" keeps them as attempts of one result, the last one final (for dialects with no
    way to report a refused item). Either way nothing is overwritten silently.
    """
    if run is not None:
        project_id = run.project_id
        run_id, short_id = insert_run(conn, tenant_id, run)
    else:
        place = runs_db.run_place(conn, tenant_id, run_id)
        if place is None:
            raise NotFound("Run not found")
        project_id, short_id = place["project_id"], place["short_id"]
    errors = list(rejected)
    codes = sorted({r.test_case_code for _, r in items if r.test_case_code})
    by_code = results_db.cases_by_code(conn, project_id, codes)
    by_id = results_db.case_titles(
        conn, project_id, sorted({r.test_case_id for _, r in items if r.test_case_id and not r.test_case_code}))

    wanted, accepted = identify(items, by_code, by_id, errors, unlink_unknown_codes=unlink_unknown_codes,
                                duplicates=duplicates)
    test_ids = results_db.intern_tests(conn, project_id, wanted, now_ms()) if wanted else {}
    now = now_ms()
    rows = []
    for _, r, identity, linked in accepted:
        attempt_log = _attempts_encoder.encode(r.previous_attempts).decode() if r.previous_attempts else None
        rows.append((
            run_id, test_ids[identity], r.status, int(r.flaky), r.attempts, r.duration_ms, r.error_message,
            r.error_stack, r.comment, r.bug_ticket_key, r.bug_ticket_url, r.framework, r.file, r.line, r.stdout,
            r.stderr, attempt_log, int(linked), r.executed_at, _tags_encoder.encode(r.tags).decode() if r.tags else None,
            now, now, None,
        ))
    signed = _sign(conn, project_id, run_id, rows)
    results_db.upsert_results(conn, rows)  # rows in results_db.UPSERT_COLUMNS order
    # The tests listing filters by tag: a test carries the tags its latest tagged result had.
    tagged = [(row[19], row[1]) for row in rows if row[19] is not None]
    if tagged:
        results_db.set_test_tags(conn, tagged)
    if signed is not None:
        signatures.record_tests(conn, [(row[22], row[1]) for row in rows if row[22] is not None])
        if signed.new:
            triage_events.failure_new(conn, project_id, run_id, signed.new)
    runs_core.refresh_counts(conn, run_id)
    if run is not None and run.status in RUN_FINISHED:
        run_completion.on_run_completed(conn, run_id)  # trend, regressions, webhooks (core/run_completion.py)
    errors.sort(key=lambda e: e.index)
    return IngestOutcome(run_id=run_id, short_id=short_id, accepted=len(rows), rejected=len(errors), errors=errors)


def _sign(conn, project_id: str, run_id: str, rows: list) -> signatures.Stored | None:
    """Step 5: the signature of each failing row (rows are rebuilt in place, position 22), and a
    known issue's ticket on rows that name none (docs/triage.md)."""
    failing = [(i, row[2], row[6], row[7]) for i, row in enumerate(rows) if row[2] in FAILURE_STATUSES]
    if not failing:
        return None
    branch = runs_db.run_branch(conn, run_id)
    signed = signatures.store(conn, project_id, run_id, branch, failing, len(rows))
    for i, _, _, _ in failing:
        sid = signed.ids[i]
        row = rows[i]
        ticket = signed.triage.get(sid)
        if ticket is not None and row[9] is None and row[10] is None:
            rows[i] = (*row[:9], ticket[0], ticket[1], *row[11:22], sid)
        else:
            rows[i] = (*row[:22], sid)
    return signed


def identify(
    items: Sequence[tuple[int, ResultRecord]], by_code: dict[str, tuple[str, str]], by_id: dict[str, str],
    errors: list[ItemError], *, unlink_unknown_codes: bool = False, duplicates: str = "reject",
) -> tuple[dict[str, tuple[str | None, str, str, str]], list[tuple[int, ResultRecord, str, bool]]]:
    """Each item's identity key (core/identity.py): (identity -> what to intern, the accepted
    items as (index, record, identity, linked)). Refused items are appended to `errors`."""
    # identity -> (case id, suite path, title, variant); identity -> position in `accepted`.
    wanted: dict[str, tuple[str | None, str, str, str]] = {}
    accepted: list[tuple[int, ResultRecord, str, bool]] = []
    first: dict[str, int] = {}
    for index, record in items:
        if unlink_unknown_codes and record.test_case_code and record.test_case_code not in by_code:
            record = msgspec.structs.replace(record, test_case_code=None)
        variant = record.variant
        if record.test_case_code:
            found = by_code.get(record.test_case_code)
            if found is None:
                errors.append(ItemError(index, f"test_case_code {record.test_case_code} not found in this project"))
                continue
            case_id, title = found
            identity = identity_keys.case_key(case_id, variant)
            linked = True
        elif record.test_case_id:
            title = by_id.get(record.test_case_id)
            if title is None:
                errors.append(ItemError(index, f"test_case_id {record.test_case_id} not found in this project"))
                continue
            case_id = record.test_case_id
            identity = identity_keys.case_key(case_id, variant)
            linked = True
        else:
            case_id, title = None, record.title or ""
            identity = identity_keys.unlinked_key(record.suite_path, title, variant)
            linked = False
        seen = first.get(identity)
        if seen is not None and linked and duplicates == "attempts":
            earlier = accepted[seen][1]
            if (earlier.title, earlier.suite_path) != (record.title, record.suite_path):
                # Two differently named tests linked to one case are two executions, not
                # retries of one: the later keeps its own result, its name as its variant (as
                # reports/identity.assign_variants does), so a failure is never folded into a
                # later pass.
                label = record.title or record.suite_path or f"#{index}"
                variant = (f"{variant} / {label}" if variant else label)[:identity_keys.VARIANT_MAX]
                identity = identity_keys.case_key(case_id, variant)
                seen = first.get(identity)
        if seen is not None:
            if duplicates == "attempts":
                earlier = accepted[seen]
                accepted[seen] = (earlier[0], _as_retry(earlier[1], record), identity, linked)
                continue
            who = identity_keys.describe(record.suite_path, title, variant, record.test_case_code)
            errors.append(ItemError(
                index, f"duplicate of result {accepted[seen][0]}: the same test ({who}) twice in one request; "
                "give each execution its own `variant` (parameters, browser, matrix label)",
            ))
            continue
        first[identity] = len(accepted)
        wanted[identity] = (case_id, record.suite_path, title, variant)
        accepted.append((index, record, identity, linked))

    return wanted, accepted


def _as_retry(earlier: ResultRecord, later: ResultRecord) -> ResultRecord:
    """Two items of one request with one identity, kept as attempts of one result: the later
    is final, the earlier becomes its previous attempt (flaky when it passed after a failure)."""
    previous = [
        *earlier.previous_attempts,
        AttemptRecord(earlier.status, earlier.duration_ms, earlier.error_message),
        *later.previous_attempts,
    ][-100:]
    flaky = later.flaky or passed_after_failing(later.status, (a.status for a in previous))
    return msgspec.structs.replace(
        later, previous_attempts=previous, attempts=earlier.attempts + later.attempts, flaky=flaky,
    )
