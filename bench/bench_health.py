"""Test-health speed on 1,000,000 stored results (1,000 runs x 1,000 tests), and what run
completion costs the ingest path.

    python bench/bench_health.py [--runs 1000] [--tests 1000] [--repeat 15] [--ingest-runs 12]

1. Generates the results straight into a temporary database through the real schema
   (migrations, executemany), shaped like a real project: most tests pass, 3 % are flaky
   (fail 1 run in 5, some pass on retry), 1 % broke recently, the default branch `main` with a
   pull-request branch now and then, and a commit run twice now and then.
2. Through the real Database (its reader threads), takes the median of --repeat calls of
   the flaky ranking (flaky.rank), one test's history (flaky.history, 30 results) and the
   gate (gate.evaluate on main's latest run). Target: each under 200 ms.
3. Ingest rate through the real writer and core.ingest.store_results (with run completion's
   hook): runs of --tests results into an empty database, then into the 1M one. Target: the 1M
   rate within 1.5x of the empty one. Also the median of the `run-completion` task's work per run.
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qahub_lite.config import FlakyConfig, GradeConfig  # noqa: E402
from qahub_lite.core import flaky, gate, ingest, run_completion  # noqa: E402
from qahub_lite.core.model import CiContext, ResultRecord, RunRecord  # noqa: E402
from qahub_lite.db.connection import open_writer  # noqa: E402
from qahub_lite.db.database import Database, migrate  # noqa: E402
from qahub_lite.db.engine import SqliteEngine  # noqa: E402

TARGET_MS = 200.0
TARGET_RATIO = 1.5
HOUR_MS = 3_600_000


def _title(i: int) -> str:
    return f"test_{i:04d} checks the order flow"


def generate(path: Path, runs: int, tests: int, seed: int = 5) -> tuple[str, str]:
    """Fill a database; returns (tenant id, project id)."""
    rng = random.Random(seed)
    migrate(path, synchronous="NORMAL")
    conn = open_writer(path, synchronous="OFF")
    tenant, project = "t-bench", "p-bench"
    start = int(time.time() * 1000) - runs * HOUR_MS
    conn.execute("BEGIN")
    conn.execute("INSERT INTO tenants (id, name, created_at) VALUES (?,?,?)", (tenant, "bench", start))
    conn.execute(
        "INSERT INTO projects (id, tenant_id, slug, name, default_branch, created_at, updated_at) "
        "VALUES (?,?,?,?,?,?,?)",
        (project, tenant, "bench", "Bench", "main", start, start),
    )
    conn.executemany(
        "INSERT INTO tests (id, project_id, suite_path, title, identity, created_at) VALUES (?,?,?,?,?,?)",
        [(i + 1, project, f"suite_{i % 20}", _title(i), f"u:suite_{i % 20}\x1f{_title(i)}", start)
         for i in range(tests)],
    )
    flaky_from, broken_from = int(tests * 0.96), int(tests * 0.99)
    commit = "c0"
    for r in range(runs):
        run_id = f"run-{r:06d}"
        created = start + r * HOUR_MS
        branch = "main" if r % 10 else f"feature/{r}"
        if rng.random() > 0.05:  # now and then a commit is run twice
            commit = f"{rng.getrandbits(40):010x}"
        rows, counts = [], {"PASSED": 0, "FAILED": 0, "SKIPPED": 0}
        for t in range(tests):
            fl = 0
            if t >= broken_from and r >= runs - 5:
                status = "FAILED"
            elif t >= flaky_from:
                status = "FAILED" if rng.random() < 0.2 else "PASSED"
                fl = int(status == "PASSED" and rng.random() < 0.1)
            else:
                status = "FAILED" if rng.random() < 0.002 else ("SKIPPED" if t % 97 == 0 else "PASSED")
            counts[status] += 1
            rows.append((run_id, t + 1, status, fl, 1 + fl, 10 + t % 300, 0, created, created))
        conn.execute(
            "INSERT INTO runs (id, short_id, tenant_id, project_id, name, source, status, branch, commit_sha, "
            "created_at, finished_at, duration_ms, total, passed, failed, skipped, flaky) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, f"s{r:07d}", tenant, project, f"Run {r}", "bench", "COMPLETED", branch, commit, created,
             created + 60_000, 60_000, tests, counts["PASSED"], counts["FAILED"], counts["SKIPPED"],
             sum(x[3] for x in rows)),
        )
        conn.executemany(
            "INSERT INTO results (run_id, test_id, status, flaky, attempts, duration_ms, linked, created_at, "
            "updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            rows,
        )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return tenant, project


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def time_reads(db: Database, project: str, repeat: int) -> dict[str, float]:
    rules, grades = FlakyConfig(), GradeConfig()
    out: dict[str, list[float]] = {"flaky ranking": [], "test history": [], "gate": []}
    for i in range(repeat):
        t0 = time.perf_counter()
        ranking = await db.read(flaky.rank, project, rules=rules)
        t1 = time.perf_counter()
        await db.read(flaky.history, project, str(1 + (i * 37) % 1000), 30, rules=rules)
        t2 = time.perf_counter()
        verdict = await db.read(gate.evaluate, project, rules=gate.GateRules(min_grade="C"), flaky_rules=rules,
                                grade_rules=grades)
        t3 = time.perf_counter()
        out["flaky ranking"].append(t1 - t0)
        out["test history"].append(t2 - t1)
        out["gate"].append(t3 - t2)
    print(f"  ({ranking.total} flaky tests over {ranking.runs_analysed} runs; gate: {verdict.verdict}, "
          f"grade {verdict.grade.grade})")
    return {name: _median_ms(s) for name, s in out.items()}


def _records(tests: int, rng: random.Random) -> list[tuple[int, ResultRecord]]:
    items = []
    for t in range(tests):
        status = "FAILED" if rng.random() < 0.01 else "PASSED"
        items.append((t, ResultRecord(status=status, title=_title(t), suite_path=f"suite_{t % 20}", duration_ms=15)))
    return items


async def time_ingest(db: Database, tenant: str, project: str, runs: int, tests: int) -> tuple[float, float]:
    """(median seconds per store_results of `tests` results, median seconds of its completion work)."""
    rng = random.Random(11)
    spent, health_spent = [], []
    for r in range(runs + 1):
        items = _records(tests, rng)
        record = RunRecord(project_id=project, name=f"ingest {r}", source="bench",
                           ci=CiContext(branch="main", commit_sha=f"i{r}"))
        t0 = time.perf_counter()
        await db.write(lambda conn: ingest.store_results(conn, tenant, items, run=record))
        elapsed = time.perf_counter() - t0
        queued = await db.read(run_completion.queued, 10)
        t0 = time.perf_counter()
        for queue_id, run_id in queued:
            await db.write(run_completion.process_queued, queue_id, run_id, FlakyConfig(), "http://bench")
        if r:  # the first run of a fresh project interns its test identities: a one-off
            spent.append(elapsed)
            health_spent.append(time.perf_counter() - t0)
    return statistics.median(spent), statistics.median(health_spent)


async def open_db(path: Path) -> Database:
    db = Database(SqliteEngine(path), readers=2, max_group=256)
    await db.open()
    return db


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="stored runs (default 1000)")
    parser.add_argument("--tests", type=int, default=1000, help="tests per run (default 1000)")
    parser.add_argument("--repeat", type=int, default=15, help="calls per read measurement (default 15)")
    parser.add_argument("--ingest-runs", type=int, default=12, help="runs ingested per database (default 12)")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as folder:
        big, empty = Path(folder) / "big.db", Path(folder) / "empty.db"
        t0 = time.perf_counter()
        tenant, project = generate(big, args.runs, args.tests)
        print(f"generated {args.runs * args.tests:,} results in {time.perf_counter() - t0:.1f} s")
        generate(empty, 0, 0)

        db = await open_db(big)
        try:
            print(f"reads on {args.runs * args.tests:,} results, median of {args.repeat}:")
            for name, ms in (await time_reads(db, project, args.repeat)).items():
                verdict = "ok" if ms < TARGET_MS else "MISSED"
                ok &= ms < TARGET_MS
                print(f"  {name:14s} {ms:7.1f} ms   (target < {TARGET_MS:.0f} ms: {verdict})")
            full, full_health = await time_ingest(db, tenant, project, args.ingest_runs, args.tests)
        finally:
            await db.close()
        db = await open_db(empty)
        try:
            bare, bare_health = await time_ingest(db, tenant, project, args.ingest_runs, args.tests)
        finally:
            await db.close()
    rate_empty, rate_full = args.tests / bare, args.tests / full
    ratio = rate_empty / rate_full
    ok &= ratio <= TARGET_RATIO
    print(f"ingest through store_results (+ run completion's hook), {args.tests} results a run, "
          f"median of {args.ingest_runs}:")
    print(f"  empty database  {rate_empty:10,.0f} results/s")
    print(f"  1M database     {rate_full:10,.0f} results/s   ratio {ratio:.2f} (target <= {TARGET_RATIO}: "
          f"{'ok' if ratio <= TARGET_RATIO else 'MISSED'})")
    print(f"  run-completion task per run: {bare_health * 1000:.1f} ms (empty), {full_health * 1000:.1f} ms (1M), "
          "off the ingest path")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
