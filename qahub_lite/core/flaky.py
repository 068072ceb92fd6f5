"""Flakiness: every test judged flaky, broken or healthy from its recent final results.

The rules (docs/health.md writes them out with examples), for one test of one branch:

- Its samples are its final results (PASSED, or FAILED/BROKEN/TIMEOUT; skipped and unfinished
  ones say nothing) in the last N + M completed runs, infrastructure failures left out
  (window.py). Its window is the last N of those samples.
- Evidence of flakiness at a sample: a pass on retry (a failed attempt, then a pass); a sample
  of a commit that both passed and failed; or a failure right after a pass, when the flip rate,
  changes / (n - 1), is at least the threshold over n >= min_samples samples: those of the
  window (for a failure in it), or the N samples ending at the failure (for an older one).
- Flaky: there is evidence, and no M clean passes in a row have followed the latest of it
  (a flagged test is cleared only after M clean runs). Evidence older than N + M runs is
  forgotten.
- Broken: the last B samples all failed (failing every time lately). Broken wins over flaky.
- Healthy: neither.

Everything is computed when asked, from the results themselves, so a change of the rules in
qahub.toml, a deleted run or a late upload can never leave a stale state behind.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from ..config import FlakyConfig
from .clock import to_iso
from .paging import clamp_limit, decode_int_cursor, encode_cursor
from .quarantine import (
    TestHealth, TestInfo, find_test, health_of, last_failures, quarantined_ids, shorten, test_infos,
)
from ..db import tests as tests_db
from .window import ABSENT, FAIL, RETRIED_PASS, WindowRun, default_branch, outcome_codes, recent_runs

FLAKY, BROKEN, HEALTHY = "flaky", "broken", "healthy"
STATES = (FLAKY, BROKEN, HEALTHY)


class Judgement(NamedTuple):
    """One test's state and the figures behind it. Rates are over its window (last N samples)."""

    test_id: int
    state: str
    samples: int
    failures: int
    flips: int
    flip_rate: float
    retry_passes: int
    retry_rate: float
    conflicting_commits: int
    conflict_rate: float
    fail_rate: float
    flakiness: float  # the ranking key: max(flip_rate, retry_rate, conflict_rate)
    clean_streak: int  # clean passes in a row at the end
    last_failure_pos: int | None  # run position (oldest first) of its latest failure


def judge(
    test_id: int, positions: list[int], failed: list[bool], retried: list[bool], commits: list[str | None],
    rules: FlakyConfig,
) -> Judgement:
    """Judge one test from its samples, oldest first: run position, failed, passed on retry,
    and the run's commit."""
    n_all = len(positions)
    window_start = max(0, n_all - rules.window_runs)
    n = n_all - window_start

    # Commits on which the test both passed and failed, over the whole lookback.
    seen: dict[str, int] = {}
    for commit, fail in zip(commits, failed):
        if commit:
            seen[commit] = seen.get(commit, 0) | (2 if fail else 1)
    conflicting = {c for c, mask in seen.items() if mask == 3}

    # flips_before[i]: status changes among samples 0..i.
    flips_before = [0] * n_all
    for i in range(1, n_all):
        flips_before[i] = flips_before[i - 1] + (failed[i] != failed[i - 1])

    def rate_flags(i: int) -> bool:
        start = max(0, i - rules.window_runs + 1)
        count = i - start + 1
        changes = flips_before[i] - flips_before[start]
        return count >= rules.min_samples and changes / (count - 1) >= rules.flip_threshold

    # The window's own rate makes each of its pass-to-failure changes evidence; an older
    # change is evidence when the rate was high when it happened.
    window_flags = rate_flags(n_all - 1) if n_all else False
    latest_evidence = None
    for i in range(n_all - 1, -1, -1):
        if retried[i] or commits[i] in conflicting or (
            i and failed[i] and not failed[i - 1] and ((window_flags and i >= window_start) or rate_flags(i))
        ):
            latest_evidence = i
            break

    clean_run = longest = 0
    if latest_evidence is not None:
        for i in range(latest_evidence + 1, n_all):
            clean_run = clean_run + 1 if not failed[i] and not retried[i] else 0
            longest = max(longest, clean_run)
    streak = 0
    for i in range(n_all - 1, -1, -1):
        if failed[i] or retried[i]:
            break
        streak += 1

    broken_after = rules.broken_after_failures
    if n_all >= broken_after and all(failed[n_all - broken_after :]):
        state = BROKEN
    elif latest_evidence is not None and longest < rules.clear_after_clean_runs:
        state = FLAKY
    else:
        state = HEALTHY

    failures = sum(failed[window_start:])
    flips = flips_before[-1] - flips_before[window_start] if n_all else 0
    retries = sum(retried[window_start:])
    in_conflict = [c for c in commits[window_start:] if c in conflicting]
    flip_rate = flips / (n - 1) if n >= 2 else 0.0
    retry_rate = retries / n if n else 0.0
    conflict_rate = len(in_conflict) / n if n else 0.0
    last_failure = next((positions[i] for i in range(n_all - 1, -1, -1) if failed[i]), None)
    return Judgement(
        test_id, state, n, failures, flips, round(flip_rate, 4), retries, round(retry_rate, 4),
        len(set(in_conflict)), round(conflict_rate, 4), round(failures / n, 4) if n else 0.0,
        round(max(flip_rate, retry_rate, conflict_rate), 4), streak, last_failure,
    )


def _judge_codes(test_id: int, seq: bytearray, commits: list[str | None], rules: FlakyConfig) -> Judgement:
    positions = [p for p, code in enumerate(seq) if code]
    return judge(
        test_id, positions, [seq[p] == FAIL for p in positions], [seq[p] == RETRIED_PASS for p in positions],
        [commits[p] for p in positions], rules,
    )


def _all_passing(test_id: int, seq: bytearray, rules: FlakyConfig) -> Judgement:
    """Most tests only ever pass: healthy, no figures to work out."""
    present = len(seq) - seq.count(ABSENT)
    window = min(present, rules.window_runs)
    return Judgement(test_id, HEALTHY, window, 0, 0, 0.0, 0, 0.0, 0, 0.0, 0.0, 0.0, present, None)


class Analysis(NamedTuple):
    runs: list[WindowRun]  # oldest first: the lookback of N + M runs
    infra_skipped: int  # infrastructure failures left out on the way
    judgements: dict[int, Judgement]
    # (passing, failing) final results per run, from the run's counts (which also hold what a
    # summary-only dialect reported), less the `ignore`d tests' results: for pass rates
    tallies: list[tuple[int, int]]


def analyse(
    conn, project_id: str, branch: str | None, rules: FlakyConfig, *,
    test_ids: list[int] | None = None, before_ms: int | None = None, newest: WindowRun | None = None,
    ignore: frozenset[int] = frozenset(),
) -> Analysis:
    """Judge every test of a branch that ran in its lookback (or only `test_ids`).

    `newest`: a run to put on top of the branch's runs created before it (the gate judges a
    pull request's run as if it were the default branch's latest). `ignore`: tests left out
    of the tallies (quarantined ones, for the gate). `before_ms`: as of that moment.

    Each test's results become one byte per run (window.py's codes): tens of thousands of
    results are read as integers and placed, and only tests that ever failed or passed on
    retry are judged sample by sample.
    """
    lookback = rules.window_runs + rules.clear_after_clean_runs
    if newest is not None:
        older, infra = recent_runs(
            conn, project_id, branch, lookback - 1, rules, before_ms=newest.created_at, exclude_run=newest.id
        )
        runs = [newest, *older]
    else:
        runs, infra = recent_runs(conn, project_id, branch, lookback, rules, before_ms=before_ms)
    runs.reverse()
    size = len(runs)
    seqs: dict[int, bytearray] = {}
    for pos, test_id, code in outcome_codes(conn, [r.id for r in runs], test_ids):
        seq = seqs.get(test_id)
        if seq is None:
            seq = seqs[test_id] = bytearray(size)
        seq[pos] = code
    commits = [run.commit_sha for run in runs]
    ignored_pass, ignored_fail = [0] * size, [0] * size
    judgements: dict[int, Judgement] = {}
    for test_id, seq in seqs.items():
        if FAIL in seq or RETRIED_PASS in seq:
            judgements[test_id] = _judge_codes(test_id, seq, commits, rules)
        else:
            judgements[test_id] = _all_passing(test_id, seq, rules)
        if test_id in ignore:
            for pos, code in enumerate(seq):
                if code:
                    (ignored_fail if code == FAIL else ignored_pass)[pos] += 1
    tallies = [
        (max(0, run.passed - ignored_pass[i]), max(0, run.failed + run.broken - ignored_fail[i]))
        for i, run in enumerate(runs)
    ]
    return Analysis(runs, infra, judgements, tallies)


def ranking_key(j: Judgement) -> tuple:
    """Top offenders first: the flakiest, then the most failing, then the most recently failed."""
    return (-j.flakiness, -j.fail_rate, -(j.last_failure_pos if j.last_failure_pos is not None else -1), j.test_id)


def empty_judgement(test_id: int) -> Judgement:
    """A test without samples in the lookback (shown when it is quarantined)."""
    return Judgement(test_id, HEALTHY, 0, 0, 0, 0.0, 0, 0.0, 0, 0.0, 0.0, 0.0, 0, None)


# --- what the routes and the dashboard show ---------------------------------------------


class FlakyRanking(msgspec.Struct):
    project_id: str
    branch: str | None
    runs_analysed: int
    infra_runs_excluded: int
    total: int  # flaky tests in all, before `limit`
    data: list[TestHealth]


class TestHealthPage(msgspec.Struct):
    project_id: str
    branch: str | None
    runs_analysed: int
    counts: dict[str, int]  # tests per state, and how many are quarantined
    data: list[TestHealth]
    next_cursor: str | None


class HistoryEntry(msgspec.Struct):
    run_id: str
    short_id: str
    run_name: str
    branch: str | None
    commit: str | None
    status: str
    flaky: bool
    attempts: int
    duration_ms: int | None
    error_message: str | None
    at: str | None


class TestHistory(msgspec.Struct):
    test: TestInfo
    health: TestHealth  # on the project's default branch
    branch: str | None  # the history's branch filter (None: every branch)
    data: list[HistoryEntry]


def rank(
    conn, project_id: str, *, branch: str | None = None, rules: FlakyConfig | None = None, limit: int = 50,
    include_quarantined: bool = True,
) -> FlakyRanking:
    """The project's flaky tests, top offenders first (docs/health.md: the ranking)."""
    rules = rules or FlakyConfig()
    branch = branch if branch is not None else default_branch(conn, project_id)
    analysis = analyse(conn, project_id, branch, rules)
    flaky = sorted((j for j in analysis.judgements.values() if j.state == FLAKY), key=ranking_key)
    infos = test_infos(conn, project_id, [j.test_id for j in flaky])
    if not include_quarantined:
        flaky = [j for j in flaky if not infos[j.test_id].quarantined]
    shown = flaky[:limit]
    last = last_failures(conn, analysis.runs, shown)
    data = [health_of(j, infos[j.test_id], last.get(j.test_id)) for j in shown]
    return FlakyRanking(project_id, branch, len(analysis.runs), analysis.infra_skipped, len(flaky), data)


_STATE_ORDER = {BROKEN: 0, FLAKY: 1, HEALTHY: 2}


def list_tests(
    conn, project_id: str, *, branch: str | None = None, rules: FlakyConfig | None = None, state: str | None = None,
    quarantined: bool | None = None, limit: int = 50, cursor: str | None = None, tag: str | None = None,
    q: str | None = None,
) -> TestHealthPage:
    """Tests that ran in the lookback, and quarantined ones, with their states: broken first,
    then flaky (top offenders first), then healthy."""
    rules = rules or FlakyConfig()
    branch = branch if branch is not None else default_branch(conn, project_id)
    limit = clamp_limit(limit)
    decoded = decode_int_cursor(cursor)
    offset = max(decoded[1], 0) if decoded else 0
    analysis = analyse(conn, project_id, branch, rules)
    judged = dict(analysis.judgements)
    for test_id in quarantined_ids(conn, project_id):
        judged.setdefault(test_id, empty_judgement(test_id))
    infos = test_infos(conn, project_id, judged)
    everything = [j for j in judged.values() if j.test_id in infos]
    counts = {s: 0 for s in STATES} | {"quarantined": 0}
    for j in everything:
        counts[j.state] += 1
        counts["quarantined"] += infos[j.test_id].quarantined
    tagged = None
    if tag is not None:  # tests whose latest tagged result carried `tag` (migration 0005)
        tagged = tests_db.tests_tagged(conn, project_id, tag)
    matched = tests_db.tests_matching(conn, project_id, q.lower().split()[:8]) if q else None
    chosen = [
        j for j in everything
        if (state is None or j.state == state) and (quarantined is None or infos[j.test_id].quarantined == quarantined)
        and (tagged is None or j.test_id in tagged) and (matched is None or j.test_id in matched)
    ]
    chosen.sort(key=lambda j: (_STATE_ORDER[j.state], *ranking_key(j)))
    page = chosen[offset : offset + limit]
    last = last_failures(conn, analysis.runs, page)
    more = offset + limit < len(chosen)
    return TestHealthPage(
        project_id, branch, len(analysis.runs), counts,
        [health_of(j, infos[j.test_id], last.get(j.test_id)) for j in page],
        encode_cursor(0, offset + limit) if more else None,
    )


def history(
    conn, project_id: str, test_ref: str, limit: int = 30, *, branch: str | None = None,
    rules: FlakyConfig | None = None,
) -> TestHistory:
    """One test's last `limit` results, newest first (of one branch, or of all), with its
    state on the default branch."""
    rules = rules or FlakyConfig()
    test = find_test(conn, project_id, test_ref)
    rows = tests_db.test_history(conn, project_id, test.id, limit, any_branch=branch is None, branch=branch or None)
    entries = [
        HistoryEntry(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7], r[8], shorten(r[9]), to_iso(r[10]))
        for r in rows
    ]
    main = default_branch(conn, project_id)
    analysis = analyse(conn, project_id, main, rules, test_ids=[test.id])
    judgement = analysis.judgements.get(test.id) or empty_judgement(test.id)
    last = last_failures(conn, analysis.runs, [judgement])
    return TestHistory(test, health_of(judgement, test, last.get(test.id)), branch, entries)
