"""Failure groups and known issues (docs/triage.md).

A run's failures grouped by signature (signatures.py), a project's signatures with their
first and last sightings, counts, tests and branches, and the triage people give a signature:
a bug ticket and a category named as ReportPortal names its defect types. An admin may add
mask rules (a regex whose matches are masked before hashing) and merge one signature into
another. Reads of a project's groups touch `failure_signatures` only, kept at ingest, so they
answer in the same time over a hundred results or a million.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

import msgspec

from ..db import failures as failures_db
from ..db import results as results_db
from .clock import now_ms, to_iso
from .errors import Conflict, Invalid, NotFound
from .quarantine import shorten, test_infos

CATEGORIES = ("product_bug", "automation_bug", "environment", "to_investigate")
Category = Literal["product_bug", "automation_bug", "environment", "to_investigate"]
MAX_RULES = 50
_GROUP_TESTS = 100  # tests listed per group of a run (count says how many there are)


class Triage(msgspec.Struct):
    category: str | None
    bug_ticket_key: str | None
    bug_ticket_url: str | None
    note: str | None
    triaged_at: str | None


class GroupTest(msgspec.Struct):
    test_id: int
    title: str
    suite: str
    test_case_code: str | None
    status: str


class FailureGroup(msgspec.Struct):
    signature: str
    exception_type: str
    normalized: str
    message: str | None  # a representative message: the first of the run's failures in the group
    count: int
    new: bool  # never seen in the project before this run
    known: bool  # triaged with a ticket or a category other than to_investigate
    triage: Triage
    tests: list[GroupTest]


class RunFailures(msgspec.Struct):
    run_id: str
    failures: int
    groups: int
    new_groups: int
    data: list[FailureGroup]


class ProjectFailure(msgspec.Struct):
    signature: str
    exception_type: str
    normalized: str
    example: str | None
    first_seen: str | None
    last_seen: str | None
    first_run_id: str | None
    occurrences: int
    tests_affected: int
    branches: list[str]
    triage: Triage
    merged_from: list[str]


class ProjectFailures(msgspec.Struct):
    project_id: str
    total: int
    data: list[ProjectFailure]


class TriageIn(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    bug_ticket_key: str | None = None
    bug_ticket_url: str | None = None
    category: Category | None = None
    note: str | None = None


class Rule(msgspec.Struct):
    id: int
    pattern: str
    note: str | None
    created_at: str | None


def parse_moment(text: str) -> int:
    """An ISO 8601 date or date-time (UTC when it names no zone) as epoch ms; 400 otherwise."""
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"expected an ISO 8601 date or date-time, like 2026-12-01 (got {text!r})") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp() * 1000)


def is_known(category: str | None, ticket_key: str | None, ticket_url: str | None) -> bool:
    return bool(ticket_key or ticket_url) or category not in (None, "to_investigate")


def _triage(row) -> Triage:
    return Triage(row["category"], row["bug_ticket_key"], row["bug_ticket_url"], row["note"], to_iso(row["triaged_at"]))


def run_failures(conn, project_id: str, run_id: str) -> RunFailures:
    """The run's failing results grouped by signature, largest group first."""
    # A message is shown cut to 500 characters (shorten): read no more of it than that; a
    # run's thousands of failures can carry 1 MB messages each.
    by_sig: dict[int, list[tuple]] = {}
    for row in results_db.signed_results(conn, run_id, 501):
        by_sig.setdefault(row[0], []).append(row)
    if not by_sig:
        return RunFailures(run_id, 0, 0, 0, [])
    sigs = failures_db.signatures_by_id(conn, project_id, list(by_sig))
    listed = {row[1] for sid in by_sig for row in by_sig[sid][:_GROUP_TESTS]}
    infos = test_infos(conn, project_id, listed)
    groups = []
    for sid, members in by_sig.items():
        s = sigs.get(sid)
        if s is None:
            continue
        tests = [GroupTest(m[1], infos[m[1]].title, infos[m[1]].suite, infos[m[1]].test_case_code, m[2])
                 for m in members[:_GROUP_TESTS] if m[1] in infos]
        groups.append(FailureGroup(
            s["hash"], s["exception_type"], s["normalized"], shorten(members[0][3]) or s["example"], len(members),
            s["first_run_id"] == run_id, is_known(s["category"], s["bug_ticket_key"], s["bug_ticket_url"]),
            _triage(s), tests,
        ))
    groups.sort(key=lambda g: (-g.count, g.signature))
    return RunFailures(run_id, sum(g.count for g in groups), len(groups), sum(g.new for g in groups), groups)


# Categories that make a signature a known issue (is_known), besides a ticket.
_KNOWN_CATEGORIES = tuple(c for c in CATEGORIES if c != "to_investigate")


def project_failures(
    conn, project_id: str, *, branch: str | None = None, since: int | None = None,
    status: str | None = None, limit: int = 100, only: int | None = None,
) -> ProjectFailures:
    """Every signature of the project (merged ones fold into their target), latest first.
    `status`: `untriaged` (no category yet), `triaged`, or `known` (a ticket or a category
    other than to_investigate)."""
    total, rows = failures_db.project_signatures(
        conn, project_id, branch=branch, only=only, since=since, status=status,
        known_categories=_KNOWN_CATEGORIES, limit=limit,
    )
    ids = [r["id"] for r in rows]
    branches: dict[int, list[str]] = {}
    merged: dict[int, list[str]] = {}
    if ids:
        for r in failures_db.branches_of(conn, ids):
            branches.setdefault(r["signature_id"], []).append(r["branch"])
        for r in failures_db.merged_into(conn, ids):
            merged.setdefault(r["merged_into"], []).append(r["hash"])
    data = [
        ProjectFailure(r["hash"], r["exception_type"], r["normalized"], r["example"], to_iso(r["first_seen"]),
                       to_iso(r["last_seen"]), r["first_run_id"], r["occurrences"], r["tests_affected"],
                       branches.get(r["id"], []), _triage(r), merged.get(r["id"], []))
        for r in rows
    ]
    return ProjectFailures(project_id, total, data)


def get_failure(conn, project_id: str, signature: str) -> ProjectFailure:
    row = _find(conn, project_id, signature)
    found = project_failures(conn, project_id, limit=1, only=row["merged_into"] or row["id"])
    if found.data:
        return found.data[0]
    raise NotFound("Failure signature not found in this project (merged ones answer through their target)")


def _find(conn, project_id: str, signature: str):
    row = failures_db.find_signature(conn, project_id, signature) if re.fullmatch(r"[0-9a-f]{16}", signature) else None
    if row is None:
        raise NotFound("Failure signature not found in this project")
    return row


def set_triage(conn, project_id: str, signature: str, data: TriageIn) -> ProjectFailure:
    """Writer operation: a signature's ticket, category and note (a field left out is cleared:
    PUT replaces). Later failures with the signature carry the ticket (ingest.py)."""
    found = _find(conn, project_id, signature)
    if found["merged_into"] is not None:
        raise Conflict("this signature was merged into another: triage that one")
    limits = (("bug_ticket_key", data.bug_ticket_key, 200), ("bug_ticket_url", data.bug_ticket_url, 2000),
              ("note", data.note, 5000))
    for name, value, most in limits:
        if value is not None and len(value) > most:
            raise Invalid(f"{name} is longer than {most} characters")
    if data.bug_ticket_url is not None and not re.match(r"https?://", data.bug_ticket_url):
        raise Invalid("bug_ticket_url must be an http:// or https:// URL")
    failures_db.set_triage(conn, found["id"], data.category, data.bug_ticket_key, data.bug_ticket_url, data.note,
                           now_ms())
    return get_failure(conn, project_id, signature)


def merge(conn, project_id: str, signature: str, into: str) -> ProjectFailure:
    """Writer operation: fold `signature` into `into`. Its results, tests, branches and counts
    move to the target; later failures with its hash count on the target (signatures.store)."""
    source_sig, target = _find(conn, project_id, signature), _find(conn, project_id, into)
    if source_sig["id"] == target["id"]:
        raise Invalid("a signature cannot be merged into itself")
    if source_sig["merged_into"] is not None or target["merged_into"] is not None:
        raise Conflict("one of these signatures is already merged into another")
    failures_db.merge(conn, source_sig["id"], target["id"])
    return get_failure(conn, project_id, into)


# --- mask rules ---------------------------------------------------------------------------


# A group that repeats something repeated, like (a+)+ or (\w*x?)*: on a failing match the
# engine tries exponentially many ways, and the rules run inside the one writer's transaction.
_NESTED_REPEAT = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)\s*(?:[+*]|\{\d*,)")


def check_pattern(pattern: str) -> None:
    if not pattern or len(pattern) > 500:
        raise Invalid("pattern must be 1 to 500 characters")
    if _NESTED_REPEAT.search(pattern):
        raise Invalid("pattern repeats a group that itself repeats (like (a+)+): such patterns can take "
                      "exponential time; write it without the outer repetition")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise Invalid(f"pattern is not a valid regular expression: {exc}") from None
    if compiled.fullmatch(""):
        raise Invalid("pattern matches the empty string: it would mask nothing useful and everything between")


def add_rule(conn, project_id: str, pattern: str, note: str | None) -> Rule:
    """Writer operation: a mask rule; it applies to failures ingested from now on."""
    check_pattern(pattern)
    if failures_db.count_rules(conn, project_id) >= MAX_RULES:
        raise Conflict(f"a project has at most {MAX_RULES} mask rules")
    now = now_ms()
    return Rule(failures_db.add_rule(conn, project_id, pattern, note, now), pattern, note, to_iso(now))


def list_rules(conn, project_id: str) -> list[Rule]:
    return [Rule(r["id"], r["pattern"], r["note"], to_iso(r["created_at"]))
            for r in failures_db.list_rules(conn, project_id)]


def delete_rule(conn, project_id: str, rule_id: str) -> None:
    if not rule_id.isdigit() or not failures_db.delete_rule(conn, project_id, int(rule_id)):
        raise NotFound("Rule not found in this project")
