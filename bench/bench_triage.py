"""What failure signatures cost at ingest, and how fast a project's failure groups answer.

    python bench/bench_triage.py [--rows 10000] [--repeat 15] [--runs 100]

1. Ingest: one body of --rows results, 10% of them failing with realistic messages and stacks
   (Python, Java, JavaScript, Go and .NET shapes; numbers, ids, durations and paths that differ
   from failure to failure, 60 kinds of problem), stored by the real `store_results` in one
   writer transaction on a SQLite file with the server's PRAGMAs. Each repeat stores the body
   twice, in alternating order: once as shipped (signatures computed, counted and attached), once
   with the signature step switched off (the baseline, measured in the same run). Prints the
   medians and the overhead: target at most 10%. The baseline is the storing transaction alone,
   not the whole HTTP request, so the ratio is the strictest one.
2. Groups: --runs runs of --rows results (1,000,000 by default) are stored the same way, with
   signatures (--kinds kinds of problem, 5,000 by default), then a project's failure groups are read as GET /projects/{id}/failures reads
   them (core/triage.py), with and without a branch filter, and a run's groups. Prints the
   medians: target under 200 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchserver import Server  # noqa: E402
from qahub_lite.core import ingest, projects, signatures, tenancy, triage  # noqa: E402
from qahub_lite.core.model import CiContext, ResultRecord, RunRecord  # noqa: E402
from qahub_lite.db.connection import open_writer  # noqa: E402
from qahub_lite.db.database import migrate  # noqa: E402

KINDS = 60  # kinds of problem in one body; the groups benchmark uses --kinds across its runs


def word(k: int) -> str:
    """A name made of letters only (masking keeps it), distinct for each k."""
    out = ""
    while True:
        out = "abcdefghijklmnopqrstuvwxyz"[k % 26] + out
        k //= 26
        if not k:
            return "area-" + out


def failure(rng: random.Random, i: int, kinds: int = KINDS) -> tuple[str, str]:
    """(message, stack) of one failure: kind i % kinds, volatile parts drawn at random."""
    kind = i % kinds
    area = word(kind)
    n = rng.randint(1, 10**6)
    uuid = f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4{rng.getrandbits(12):03x}-a{rng.getrandbits(12):03x}-" \
           f"{rng.getrandbits(48):012x}"
    shape = kind % 5
    if shape == 0:
        return (f"AssertionError: case {n} failed in {area}: expected {n * 2} but got {n * 2 + 1}",
                f'Traceback (most recent call last):\n  File "/builds/acme/shop/tests/test_area_{kind}.py", line '
                f'{rng.randint(10, 400)}, in test_case\n    check(value)\n  File "/builds/acme/shop/app/area_{kind}.py",'
                f' line 88, in check\n    assert value == expected\nAssertionError: case {n}')
    if shape == 1:
        return (f"java.lang.IllegalStateException: order {uuid} rejected by {area} after {n} ms",
                f"java.lang.IllegalStateException: order {uuid} rejected\n\tat com.acme.shop.Area{kind}.submit("
                f"Area{kind}.java:{rng.randint(10, 900)})\n\tat com.acme.shop.Area{kind}Test.places(Area{kind}Test.java:"
                f"{rng.randint(10, 900)})\n\tat java.base/jdk.internal.reflect.Method.invoke(Method.java:580)\n"
                f"\tat org.junit.runners.ParentRunner.run(ParentRunner.java:413)")
    if shape == 2:
        return (f"TimeoutError: waited {n}ms for #submit-{area}",
                f"TimeoutError: waited {n}ms for #submit-{area}\n    at login (/builds/acme/shop/e2e/area_{kind}.spec.ts:"
                f"{rng.randint(1, 300)}:{rng.randint(1, 80)})\n    at /builds/acme/shop/node_modules/@playwright/test/"
                f"lib/worker.js:{rng.randint(1, 999)}:17")
    if shape == 3:
        return (f"{area}_test.go:{rng.randint(10, 300)}: Total({n}) = {n + 1}; want {n}",
                f"{area}_{kind}_test.go:{rng.randint(10, 300)}: Total({n}) = {n + 1}; want {n}")
    return (f"System.InvalidOperationException : Sequence of {area} contains no elements (request 0x{n:08x})",
            f"   at Acme.Shop.Area{kind}.First() in /src/Acme.Shop/Area{kind}.cs:line {rng.randint(1, 500)}\n"
            f"   at Acme.Shop.Tests.Area{kind}Tests.Picks() in /src/Acme.Shop.Tests/Area{kind}Tests.cs:line 12")


def body(rows: int, seed: int, kinds: int = KINDS) -> list[tuple[int, ResultRecord]]:
    rng = random.Random(seed)
    items = []
    for i in range(rows):
        suite = f"src/area_{i % 40}/feature_{i % 200}.test.js › Area {i % 40}"
        if i % 10 == 0:
            message, stack = failure(rng, i // 10 + seed, kinds)
            record = ResultRecord(status="FAILED", title=f"case {i}", suite_path=suite, duration_ms=10 + i % 500,
                                  error_message=message, error_stack=stack)
        else:
            record = ResultRecord(status="PASSED", title=f"case {i}", suite_path=suite, duration_ms=10 + i % 500)
        items.append((i, record))
    return items


def store(conn, tenant_id: str, project_id: str, items, branch: str = "main") -> float:
    run = RunRecord(project_id=project_id, name="bench", source="bench", ci=CiContext(branch=branch))
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    ingest.store_results(conn, tenant_id, items, run=run)
    conn.execute("COMMIT")
    return time.perf_counter() - started


def without_signatures(conn, project_id, run_id, rows):
    """The baseline: the signature step switched off (rows keep their empty signature id)."""
    return None


def setup(folder: Path):
    path = folder / "bench.db"
    migrate(path)
    conn = open_writer(path)
    conn.execute("BEGIN IMMEDIATE")
    tenant = tenancy.create_tenant(conn, "bench")
    project = projects.create_project(conn, tenant.id, name="bench")
    conn.execute("COMMIT")
    return conn, tenant.id, project.id


def http_ingest(rows: int, repeat: int) -> float:
    """Median seconds of POST /api/v1/ingest of the same kind of body to a real `qahub serve`
    (decode, validate, store with signatures, commit, answer): the ingest time the target is about."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server = Server(folder / "hub")
        server.start()
        try:
            http = server.http()
            project = http.post("/api/v1/projects", json={"name": "bench"}).json()["id"]
            times = []
            for r in range(repeat + 1):
                results = [
                    {k: v for k, v in (("title", rec.title), ("suite", rec.suite_path), ("status", rec.status),
                                       ("duration_ms", rec.duration_ms), ("error_message", rec.error_message),
                                       ("error_stack", rec.error_stack)) if v is not None}
                    for _, rec in body(rows, 500 + r)
                ]
                payload = json.dumps({"project_id": project, "ci": {"branch": "main"}, "results": results})
                started = time.perf_counter()
                answer = http.post("/api/v1/ingest", content=payload, headers={"Content-Type": "application/json"})
                took = time.perf_counter() - started
                assert answer.status_code == 201, answer.text[:300]
                if r:  # the first one warms up (tests interned, first kinds of failure seen)
                    times.append(took)
            return statistics.median(times)
        finally:
            server.stop()


def bench_ingest(rows: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        conn, tenant_id, project_id = setup(Path(tmp))
        shipped = ingest._sign
        # Warm up: the tests exist and the first kinds of failure are known, as in a project's second week.
        store(conn, tenant_id, project_id, body(rows, 1))
        with_times, base_times = [], []
        for r in range(repeat):
            items = body(rows, 100 + r)
            order = (True, False) if r % 2 == 0 else (False, True)
            for signed in order:
                ingest._sign = shipped if signed else without_signatures
                # Every repeat pays for its own normalization: no failure or frame line of an
                # earlier body is remembered (a server that keeps running would remember them).
                signatures._compute.cache_clear()
                signatures._frame_of.cache_clear()
                took = store(conn, tenant_id, project_id, items)
                (with_times if signed else base_times).append(took)
        ingest._sign = shipped
        conn.close()
    w, b = statistics.median(with_times), statistics.median(base_times)
    print(f"ingest of {rows} results, {rows // 10} failing (store_results, one transaction, median of {repeat}):")
    print(f"  baseline without signatures: {b * 1000:8.1f} ms")
    print(f"  with signatures:             {w * 1000:8.1f} ms")
    # Each repeat stores both bodies back to back, in alternating order: the second of a pair
    # runs on warmer caches, so the difference is taken per order and the two averaged, which
    # cancels the order's effect; a pair is the least disturbed by other work on the machine.
    diffs = [x - y for x, y in zip(with_times, base_times)]
    work = (statistics.median(diffs[0::2]) + statistics.median(diffs[1::2])) / 2
    print(f"  signatures add {work / b:+.1%} to the storing transaction ({work * 1000:.1f} ms: differences of "
          f"{repeat} back-to-back pairs, per order, averaged; {(w - b) / b:+.1%} between the medians)")
    full = http_ingest(rows, max(3, repeat // 3))
    print(f"  POST /api/v1/ingest of such a body to a real server: {full * 1000:.1f} ms (median, signatures included)")
    print(f"  signatures add {work / (full - work):+.1%} to the ingest time (target: at most +10%)")


def bench_groups(rows: int, runs: int, repeat: int, kinds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        conn, tenant_id, project_id = setup(Path(tmp))
        started = time.perf_counter()
        for r in range(runs):
            store(conn, tenant_id, project_id, body(rows, r * 7919, kinds), branch="main" if r % 4 else f"feature/{r}")
        filled = time.perf_counter() - started
        total = conn.execute("SELECT count(*) FROM results").fetchone()[0]
        sigs = conn.execute("SELECT count(*) FROM failure_signatures WHERE project_id = ?", (project_id,)).fetchone()[0]
        last_run = conn.execute("SELECT id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()[0]
        print(f"\nfailure groups over {total:,} results ({sigs:,} signatures; filled in {filled:.0f} s), "
              f"median of {repeat}:")

        def timed(label: str, call) -> None:
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                answer = call()
                times.append(time.perf_counter() - started)
            print(f"  {label:<52} {statistics.median(times) * 1000:7.1f} ms  ({len(answer.data)} groups listed)")

        timed("GET /projects/{id}/failures (limit 100)", lambda: triage.project_failures(conn, project_id))
        timed("GET /projects/{id}/failures?limit=1000", lambda: triage.project_failures(conn, project_id, limit=1000))
        timed("GET /projects/{id}/failures?branch=main", lambda: triage.project_failures(conn, project_id,
                                                                                         branch="main"))
        timed("GET /projects/{id}/failures?status=untriaged", lambda: triage.project_failures(
            conn, project_id, status="untriaged"))
        timed("GET /runs/{id}/failures (a run of the project)", lambda: triage.run_failures(conn, project_id, last_run))
        print("  target: under 200 ms")
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--runs", type=int, default=100, help="runs of --rows results for the groups benchmark")
    parser.add_argument("--kinds", type=int, default=5000, help="kinds of failure across the groups benchmark's runs")
    args = parser.parse_args()
    bench_ingest(args.rows, args.repeat)
    bench_groups(args.rows, args.runs, args.repeat, args.kinds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
