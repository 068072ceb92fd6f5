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
import sqlite3
from typing import Literal

import msgspec

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


def _triage(row: tuple) -> Triage:
    return Triage(row[0], row[1], row[2], row[3], to_iso(row[4]))


# Column 9 (tests affected) is not shown in a run's groups: a constant keeps the row shape.
_SIG = ("id, hash, exception_type, normalized, example, first_seen, last_seen, first_run_id, occurrences, "
        "0, category, bug_ticket_key, bug_ticket_url, note, triaged_at")


def run_failures(conn, project_id: str, run_id: str) -> RunFailures:
    """The run's failing results grouped by signature, largest group first."""
    rows = conn.execute(
        # A message is shown cut to 500 characters (shorten): read no more of it than that;
        # a run's thousands of failures can carry 1 MB messages each.
        "SELECT signature_id, test_id, status, substr(error_message, 1, 501) FROM results "
        "WHERE run_id = ? AND signature_id IS NOT NULL ORDER BY id", (run_id,),
    )
    by_sig: dict[int, list[tuple]] = {}
    for row in rows:
        by_sig.setdefault(row[0], []).append(row)
    if not by_sig:
        return RunFailures(run_id, 0, 0, 0, [])
    ids = list(by_sig)
    sigs = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for r in conn.execute(
            f"SELECT {_SIG} FROM failure_signatures WHERE project_id = ? AND id IN ({','.join('?' * len(chunk))})",
            (project_id, *chunk),
        ).fetchall():
            sigs[r[0]] = r
    listed = {row[1] for sid in by_sig for row in by_sig[sid][:_GROUP_TESTS]}
    infos = test_infos(conn, project_id, listed)
    groups = []
    for sid, members in by_sig.items():
        s = sigs.get(sid)
        if s is None:
            continue
        tests = [GroupTest(m[1], infos[m[1]].title, infos[m[1]].suite, infos[m[1]].test_case_code, m[2])
                 for m in members[:_GROUP_TESTS] if m[1] in infos]
        triage = _triage(s[10:15])
        groups.append(FailureGroup(
            s[1], s[2], s[3], shorten(members[0][3]) or s[4], len(members), s[7] == run_id,
            is_known(s[10], s[11], s[12]), triage, tests,
        ))
    groups.sort(key=lambda g: (-g.count, g.signature))
    return RunFailures(run_id, sum(g.count for g in groups), len(groups), sum(g.new for g in groups), groups)


def project_failures(
    conn, project_id: str, *, branch: str | None = None, since: int | None = None,
    status: str | None = None, limit: int = 100, only: int | None = None,
) -> ProjectFailures:
    """Every signature of the project (merged ones fold into their target), latest first.
    `status`: `untriaged` (no category yet), `triaged`, or `known` (a ticket or a category
    other than to_investigate)."""
    where, params = ["s.project_id = ?", "s.merged_into IS NULL"], [project_id]
    last, occurrences = "s.last_seen", "s.occurrences"
    join = ""
    if branch is not None:
        join = "JOIN signature_branches b ON b.signature_id = s.id AND b.branch = ?"
        params.insert(0, branch)
        last, occurrences = "b.last_seen", "b.occurrences"
    if only is not None:
        where.append("s.id = ?")
        params.append(only)
    if since is not None:
        where.append(f"{last} >= ?")
        params.append(since)
    if status == "untriaged":
        where.append("s.category IS NULL")
    elif status == "triaged":
        where.append("s.category IS NOT NULL")
    elif status == "known":
        where.append("(s.bug_ticket_key IS NOT NULL OR s.bug_ticket_url IS NOT NULL "
                     "OR s.category IN ('product_bug', 'automation_bug', 'environment'))")
    sql = f"FROM failure_signatures s {join} WHERE {' AND '.join(where)}"
    total = (conn.execute(f"SELECT count(*) {sql}", params).fetchall())[0][0]
    rows = conn.execute(
        f"SELECT s.id, s.hash, s.exception_type, s.normalized, s.example, s.first_seen, {last}, s.first_run_id, "
        f"{occurrences}, (SELECT count(*) FROM signature_tests t WHERE t.signature_id = s.id), s.category, "
        "s.bug_ticket_key, s.bug_ticket_url, s.note, s.triaged_at "
        f"{sql} ORDER BY {last} DESC, s.id DESC LIMIT ?", (*params, limit),
    ).fetchall()
    ids = [r[0] for r in rows]
    branches: dict[int, list[str]] = {}
    merged: dict[int, list[str]] = {}
    if ids:
        marks = ",".join("?" * len(ids))
        for sid, name in conn.execute(
            f"SELECT signature_id, branch FROM signature_branches WHERE signature_id IN ({marks}) "
            "ORDER BY last_seen DESC", ids,
        ).fetchall():
            branches.setdefault(sid, []).append(name)
        for target, h in conn.execute(
            f"SELECT merged_into, hash FROM failure_signatures WHERE merged_into IN ({marks})", ids,
        ).fetchall():
            merged.setdefault(target, []).append(h)
    data = [
        ProjectFailure(r[1], r[2], r[3], r[4], to_iso(r[5]), to_iso(r[6]), r[7], r[8], r[9],
                       branches.get(r[0], []), _triage(r[10:15]), merged.get(r[0], []))
        for r in rows
    ]
    return ProjectFailures(project_id, total, data)


def get_failure(conn, project_id: str, signature: str) -> ProjectFailure:
    row = _find(conn, project_id, signature)
    found = project_failures(conn, project_id, limit=1, only=row[2] or row[0])
    if found.data:
        return found.data[0]
    raise NotFound("Failure signature not found in this project (merged ones answer through their target)")


def _find(conn, project_id: str, signature: str) -> tuple:
    if not re.fullmatch(r"[0-9a-f]{16}", signature):
        raise NotFound("Failure signature not found in this project")
    rows = conn.execute(
        "SELECT id, hash, merged_into FROM failure_signatures WHERE project_id = ? AND hash = ?",
        (project_id, signature),
    ).fetchall()
    if not rows:
        raise NotFound("Failure signature not found in this project")
    return rows[0]


def set_triage(conn: sqlite3.Connection, project_id: str, signature: str, data: TriageIn) -> ProjectFailure:
    """Writer operation: a signature's ticket, category and note (a field left out is cleared:
    PUT replaces). Later failures with the signature carry the ticket (ingest.py)."""
    sid, _, merged_into = (_find(conn, project_id, signature))
    if merged_into is not None:
        raise Conflict("this signature was merged into another: triage that one")
    limits = (("bug_ticket_key", data.bug_ticket_key, 200), ("bug_ticket_url", data.bug_ticket_url, 2000),
              ("note", data.note, 5000))
    for name, value, most in limits:
        if value is not None and len(value) > most:
            raise Invalid(f"{name} is longer than {most} characters")
    if data.bug_ticket_url is not None and not re.match(r"https?://", data.bug_ticket_url):
        raise Invalid("bug_ticket_url must be an http:// or https:// URL")
    conn.execute(
        "UPDATE failure_signatures SET category = ?, bug_ticket_key = ?, bug_ticket_url = ?, note = ?, "
        "triaged_at = ? WHERE id = ?",
        (data.category, data.bug_ticket_key, data.bug_ticket_url, data.note, now_ms(), sid),
    )
    return (get_failure(conn, project_id, signature))


def merge(conn: sqlite3.Connection, project_id: str, signature: str, into: str) -> ProjectFailure:
    """Writer operation: fold `signature` into `into`. Its results, tests, branches and counts
    move to the target; later failures with its hash count on the target (signatures.store)."""
    sid, _, merged = (_find(conn, project_id, signature))
    tid, _, target_merged = (_find(conn, project_id, into))
    if sid == tid:
        raise Invalid("a signature cannot be merged into itself")
    if merged is not None or target_merged is not None:
        raise Conflict("one of these signatures is already merged into another")
    conn.execute("UPDATE failure_signatures SET merged_into = ? WHERE merged_into = ?", (tid, sid))
    conn.execute("UPDATE failure_signatures SET merged_into = ? WHERE id = ?", (tid, sid))
    conn.execute("UPDATE results SET signature_id = ? WHERE signature_id = ?", (tid, sid))
    conn.execute(
        "INSERT OR IGNORE INTO signature_tests (signature_id, test_id) SELECT ?, test_id FROM signature_tests "
        "WHERE signature_id = ?", (tid, sid),
    )
    conn.execute(
        "INSERT INTO signature_branches (signature_id, branch, occurrences, last_seen) SELECT ?, branch, occurrences, "
        "last_seen FROM signature_branches WHERE signature_id = ? ON CONFLICT (signature_id, branch) DO UPDATE "
        "SET occurrences = occurrences + excluded.occurrences, last_seen = max(last_seen, excluded.last_seen)",
        (tid, sid),
    )
    conn.execute(
        "UPDATE failure_signatures SET occurrences = occurrences + (SELECT occurrences FROM failure_signatures "
        "WHERE id = ?), first_seen = min(first_seen, (SELECT first_seen FROM failure_signatures WHERE id = ?)), "
        "last_seen = max(last_seen, (SELECT last_seen FROM failure_signatures WHERE id = ?)) WHERE id = ?",
        (sid, sid, sid, tid),
    )
    return (get_failure(conn, project_id, into))


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


def add_rule(conn: sqlite3.Connection, project_id: str, pattern: str, note: str | None) -> Rule:
    """Writer operation: a mask rule; it applies to failures ingested from now on."""
    check_pattern(pattern)
    count = conn.execute("SELECT count(*) FROM signature_rules WHERE project_id = ?", (project_id,)).fetchone()[0]
    if count >= MAX_RULES:
        raise Conflict(f"a project has at most {MAX_RULES} mask rules")
    cur = conn.execute(
        "INSERT INTO signature_rules (project_id, pattern, note, created_at) VALUES (?,?,?,?)",
        (project_id, pattern, note, now_ms()),
    )
    return Rule(cur.lastrowid, pattern, note, to_iso(now_ms()))


def list_rules(conn, project_id: str) -> list[Rule]:
    rows = conn.execute(
        "SELECT id, pattern, note, created_at FROM signature_rules WHERE project_id = ? ORDER BY id", (project_id,)
    ).fetchall()
    return [Rule(r[0], r[1], r[2], to_iso(r[3])) for r in rows]


def delete_rule(conn: sqlite3.Connection, project_id: str, rule_id: str) -> None:
    if not rule_id.isdigit() or conn.execute(
        "DELETE FROM signature_rules WHERE id = ? AND project_id = ?", (int(rule_id), project_id)
    ).rowcount == 0:
        raise NotFound("Rule not found in this project")
