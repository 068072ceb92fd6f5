"""Scale: the server's answers on a database of 10,000,000 results.

    .venv/bin/python bench/bench_scale.py [--results 10000000] [--projects 5] [--tests 2000] [--keep DIR]

1. Builds the database fast, straight through the real schema (migrations of the code under
   test) with `executemany`, as a few years of CI would have left it: --projects projects of
   --tests tests each (40% linked to library test cases), one run per day-slot over 40 days,
   97% passes, a few flaky tests that fail one run in five, a few broken ones, failures with a
   message and a stack. Unlinked results of runs older than 30 days are due for the sweep.
2. Starts the real server on it and measures over HTTP (median of several calls, after one
   warm-up call that is reported as "cold"):
   - ingest: a 10,000-result and a 2,000-result `POST /api/v1/ingest`, as results per second;
   - run page: `GET /runs/{id}`, its first 50 results, all of a 2,000-result run, the runs list;
   - flaky ranking (`GET /projects/{id}/flaky`) and gate (`GET /projects/{id}/gate`);
   - sweep: `POST /api/v1/admin/sweep` over the expired results, with 100-result ingests
     running meanwhile (their p99 shows the sweep never holds the writer for long);
   - database size per million results.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchserver import Server, machine, percentile  # noqa: E402

DAY_MS = 86_400_000
SPAN_DAYS = 40
STACK = "Traceback (most recent call last):\n  File \"tests/test_shop.py\", line 88, in test_checkout\n" \
        "    assert response.status_code == 200\nAssertionError: expected 200, got 503"


def preload(server: Server, project_ids: list[str], tests: int, runs_per_project: int) -> float:
    """Fill the schema directly; returns seconds. The server must be stopped."""
    started = time.perf_counter()
    conn = sqlite3.connect(server.db, isolation_level=None)
    # A throw-away load: no journal, no fsync. The product's own ingest path is measured later.
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1000000")
    conn.execute("PRAGMA foreign_keys = OFF")
    tenant = server.tenant_id()
    rng = random.Random(10)
    now = int(time.time() * 1000)
    total_runs = runs_per_project * len(project_ids)
    conn.execute("BEGIN")
    test_ids: dict[str, list[tuple[int, int]]] = {}
    next_test = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM tests").fetchone()[0]
    for p, pid in enumerate(project_ids):
        cases, ids = [], []
        for t in range(tests):
            linked = t % 5 < 2  # 40% of the tests are library test cases
            case_id = str(uuid.uuid4()) if linked else None
            if linked:
                cases.append((case_id, pid, f"TC-{t + 1:05d}", f"test {t}", now - SPAN_DAYS * DAY_MS))
            suite = f"suite {t % 40}"
            identity = f"c:{case_id}" if linked else f"u:{suite}\x1ftest {t}"
            conn.execute("INSERT INTO tests (id, project_id, test_case_id, suite_path, title, identity, created_at) "
                         "VALUES (?,?,?,?,?,?,?)", (next_test, pid, case_id, suite, f"test {t}", identity,
                                                    now - SPAN_DAYS * DAY_MS))
            ids.append((next_test, int(linked)))
            next_test += 1
        conn.executemany("INSERT INTO test_cases (id, project_id, code, title, created_at, updated_at) "
                         "VALUES (?,?,?,?,?,?)", [(*c, c[4]) for c in cases])
        conn.execute("UPDATE projects SET next_case_number = ? WHERE id = ?", (tests + 1, pid))
        test_ids[pid] = ids
    conn.execute("COMMIT")
    flaky = set(rng.sample(range(tests), max(1, tests // 50)))
    broken = set(rng.sample(sorted(set(range(tests)) - flaky), max(1, tests // 100)))
    done = 0
    for r in range(runs_per_project):
        conn.execute("BEGIN")
        created = now - SPAN_DAYS * DAY_MS + int(r / runs_per_project * SPAN_DAYS * DAY_MS)
        for pid in project_ids:
            run_id = str(uuid.uuid4())
            branch = "main" if r % 5 else f"feature-{r % 17}"
            rows, counts = [], dict.fromkeys(("PASSED", "FAILED", "BROKEN", "SKIPPED"), 0)
            for t, (test_id, linked) in enumerate(test_ids[pid]):
                status = "PASSED"
                if t in flaky and rng.random() < 0.2 or rng.random() < 0.002:
                    status = "FAILED"
                elif t in broken and r > runs_per_project - 50:
                    status = "BROKEN"
                elif t % 200 == 7:
                    status = "SKIPPED"
                counts[status] += 1
                failed = status in ("FAILED", "BROKEN")
                rows.append((run_id, test_id, status, 20 + (t * 7919 + r) % 900,
                             "AssertionError: expected 200, got 503" if failed else None, STACK if failed else None,
                             linked, created, created, created))
            conn.execute(
                "INSERT INTO runs (id, short_id, tenant_id, project_id, name, source, status, branch, commit_sha, "
                "created_at, started_at, finished_at, duration_ms, total, passed, failed, broken, skipped) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, uuid.uuid4().hex[:10], tenant, pid, f"nightly {r}", "qahub", "COMPLETED", branch,
                 hashlib.sha1(f"{pid}{r}".encode()).hexdigest(), created, created, created + 600_000, 600_000,
                 len(rows), counts["PASSED"], counts["FAILED"], counts["BROKEN"], counts["SKIPPED"]))
            conn.executemany(
                "INSERT INTO results (run_id, test_id, status, duration_ms, error_message, error_stack, linked, "
                "executed_at, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            done += len(rows)
        conn.execute("COMMIT")
        if r % 50 == 49:
            rate = done / (time.perf_counter() - started)
            print(f"  preloaded {done:,} results in {(r + 1) * len(project_ids):,}/{total_runs:,} runs "
                  f"({rate:,.0f}/s)", file=sys.stderr)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - started


def timed(fn, repeat: int) -> tuple[float, float]:
    """(cold, median of the next `repeat`) in milliseconds."""
    t = time.perf_counter()
    fn()
    cold = (time.perf_counter() - t) * 1000
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return cold, statistics.median(times)


def expect(response, status: int = 200):
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.status_code} "
                           f"{response.text[:300]}")
    return response


def db_bytes(server: Server) -> int:
    return sum(p.stat().st_size for p in server.db.parent.glob("qahub.db*"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=int, default=10_000_000, help="results in the database")
    parser.add_argument("--projects", type=int, default=5, help="projects they are spread over")
    parser.add_argument("--tests", type=int, default=2000, help="tests per project (= results per run)")
    parser.add_argument("--keep", metavar="DIR", help="build (or reuse) the database in DIR instead of a temp folder")
    args = parser.parse_args()
    runs_per_project = max(1, args.results // (args.projects * args.tests))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp) / "scale"
        server = Server(folder)
        server.start()
        with server.http() as http:
            existing = [p for p in expect(http.get("/api/v1/projects", params={"limit": 1000})).json()["data"]
                        if p["name"].startswith("scale ")]
            project_ids = [p["id"] for p in existing] or [
                expect(http.post("/api/v1/projects", json={"name": f"scale {i}"}), 201).json()["id"]
                for i in range(args.projects)]
        server.stop()
        load_s = 0.0
        conn = sqlite3.connect(server.db)
        have = conn.execute("SELECT count(*) FROM results").fetchone()[0]
        conn.close()  # switching the journal mode for the load needs the only connection
        if have < runs_per_project * args.projects * args.tests:
            print(f"building {runs_per_project * args.projects * args.tests:,} results...", file=sys.stderr)
            load_s = preload(server, project_ids, args.tests, runs_per_project)
        conn = sqlite3.connect(server.db)
        stored = conn.execute("SELECT count(*) FROM results").fetchone()[0]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        size_before = db_bytes(server)

        server.start()
        figures: dict[str, tuple[float, float]] = {}
        ingest_rates: dict[str, float] = {}
        try:
            with server.http() as http:
                pid = project_ids[0]
                run = expect(http.get("/api/v1/runs", params={"project_id": pid, "limit": 1})).json()["data"][0]
                # Ingest: a big upload, then the project's usual suite size.
                for n, label in ((10_000, "10,000"), (args.tests, f"{args.tests:,}")):
                    times = []
                    for i in range(4):
                        body = {"project_id": pid, "run_name": f"bench {n} {i}", "results": [
                            {"title": f"bench test {t}", "suite": "bench", "status": "FAILED" if t % 50 == 0
                             else "PASSED", "duration_ms": t % 300} for t in range(n)]}
                        t0 = time.perf_counter()
                        expect(http.post("/api/v1/ingest", json=body), 201)
                        times.append(time.perf_counter() - t0)
                    ingest_rates[label] = n / statistics.median(times[1:])
                figures["GET /runs/{id}"] = timed(lambda: expect(http.get(f"/api/v1/runs/{run['id']}")), 20)
                figures["GET /runs/{id}/results?limit=50"] = timed(
                    lambda: expect(http.get(f"/api/v1/runs/{run['id']}/results", params={"limit": 50})), 20)
                figures[f"GET /runs/{{id}}/results (all {args.tests:,})"] = timed(
                    lambda: expect(http.get(f"/api/v1/runs/{run['id']}/results")), 5)
                figures["GET /runs?project_id=...&limit=50"] = timed(
                    lambda: expect(http.get("/api/v1/runs", params={"project_id": pid, "limit": 50})), 20)
                for name in ("flaky", "gate"):
                    probe = http.get(f"/api/v1/projects/{pid}/{name}")
                    if probe.status_code == 404 and "Not found" in probe.text and "Project" not in probe.text:
                        print(f"GET /projects/{{id}}/{name}: route not present in this build, skipped")
                        continue
                    figures[f"GET /projects/{{id}}/{name}"] = timed(
                        lambda name=name: expect(http.get(f"/api/v1/projects/{pid}/{name}")), 5)

                # The sweep, with small ingests running beside it.
                stop, latencies = threading.Event(), []

                def ingest_meanwhile():
                    with server.http() as side:
                        i = 0
                        while not stop.is_set():
                            body = {"project_id": project_ids[-1], "run_name": f"beside the sweep {i}", "results": [
                                {"title": f"side {t}", "status": "PASSED"} for t in range(100)]}
                            t0 = time.perf_counter()
                            expect(side.post("/api/v1/ingest", json=body), 201)
                            latencies.append(time.perf_counter() - t0)
                            i += 1

                side = threading.Thread(target=ingest_meanwhile)
                side.start()
                t0 = time.perf_counter()
                report = expect(http.post("/api/v1/admin/sweep")).json()
                sweep_s = time.perf_counter() - t0
                stop.set()
                side.join()
        finally:
            server.stop()
        size_after = db_bytes(server)

    latencies.sort()
    print(f"machine: {machine()}")
    print(f"database: {stored:,} results in {runs_per_project * args.projects:,} runs of {args.projects} projects "
          f"({args.tests:,} tests each); built in {load_s:.0f} s by direct executemany" if load_s else
          f"database: {stored:,} results (reused)")
    print(f"size: {size_before / 1e9:.2f} GB = {size_before / 1e6 / (stored / 1e6):.0f} MB per million results")
    for label, rate in ingest_rates.items():
        print(f"ingest of {label} results over HTTP: {rate:,.0f} results/s")
    print(f"{'request':<44}{'cold ms':>10}{'median ms':>11}")
    for label, (cold, median) in figures.items():
        print(f"{label:<44}{cold:>10.1f}{median:>11.1f}")
    rate = report["deleted_results"] / sweep_s if sweep_s else 0
    print(f"sweep: {report['deleted_results']:,} expired unlinked results deleted in {sweep_s:.1f} s "
          f"({rate:,.0f}/s, {report['batches']:,} batches); {len(latencies)} ingests of 100 results meanwhile: "
          f"p50 {percentile(latencies, 50) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms, "
          f"max {latencies[-1] * 1000 if latencies else 0:.0f} ms")
    print(f"size after the sweep: {size_after / 1e9:.2f} GB (SQLite reuses freed pages; VACUUM returns them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
