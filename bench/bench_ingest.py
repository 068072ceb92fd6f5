"""Ingest speed over HTTP against a raw sqlite3 baseline, on an empty and a 1M-result database.

    python bench/bench_ingest.py [--rows 10000] [--preload 1000000] [--repeat 5]

For each database (empty, then preloaded with --preload results through the real schema):
1. start a real `qahub serve` on a free port;
2. POST /api/v1/ingest with one body of --rows results, --repeat times (new tests each time),
   and take the median wall time of the request (client encode + HTTP + validate + commit);
3. baseline: plain sqlite3 `executemany` of the same rows (test identities + results) into a
   copy of the same schema with the same indexes and PRAGMAs, in one transaction.
Prints results/second for both and the ratios the issue sets targets for
(HTTP within 3x of raw; 1M-database rate within 1.5x of the empty-database rate).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qahub_lite.db.connection import open_writer  # noqa: E402
from qahub_lite.db.migrations import apply_pending  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def body_rows(n: int, tag: str) -> list[dict]:
    rows = []
    for i in range(n):
        status = "FAILED" if i % 50 == 0 else ("SKIPPED" if i % 97 == 0 else "PASSED")
        row = {"title": f"test_{tag}_{i} renders the page", "suite": f"suite_{i % 40} › group_{i % 7}",
               "status": status, "duration_ms": 10 + i % 500}
        if status == "FAILED":
            row["error_message"] = "AssertionError: expected 200 but got 500"
            row["error_stack"] = "Traceback (most recent call last):\n  File \"t.py\", line 1\nAssertionError"
        rows.append(row)
    return rows


def preload(db: Path, project_id: str, tenant_id: str, total: int, per_run: int = 1000) -> None:
    """Fill the real schema with `total` results in runs of `per_run` tests (direct SQL: fast)."""
    conn = open_writer(db, synchronous="OFF")
    now = int(time.time() * 1000) - total
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO tests (id, project_id, suite_path, title, identity, created_at) VALUES (?,?,?,?,?,?)",
        [(i + 1, project_id, "preload", f"t{i}", f"u:preload\x1ft{i}", now) for i in range(per_run)],
    )
    for r in range(total // per_run):
        run_id = str(uuid.uuid4())
        conn.execute(
            "INSERT INTO runs (id, short_id, tenant_id, project_id, name, source, status, branch, created_at) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (run_id, f"pre{r:07d}", tenant_id, project_id, f"run {r}", "bench", "COMPLETED", "main", now + r),
        )
        conn.executemany(
            "INSERT INTO results (run_id, test_id, status, duration_ms, linked, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?)",
            [(run_id, t + 1, "FAILED" if (t + r) % 53 == 0 else "PASSED", 100, 0, now + r, now + r)
             for t in range(per_run)],
        )
        if r % 100 == 99:
            conn.execute("COMMIT")
            conn.execute("BEGIN")
            print(f"  preloaded {(r + 1) * per_run:,} results", file=sys.stderr)
    conn.execute("COMMIT")
    conn.close()


def raw_baseline(schema_db: Path, rows: list[dict], project_id: str) -> float:
    """Seconds for plain executemany of the same rows into a copy of the same database."""
    work = schema_db.with_name("raw-copy.db")
    shutil.copy(schema_db, work)
    conn = open_writer(work, synchronous="FULL")
    run_id = str(uuid.uuid4())
    tenant = conn.execute("SELECT id FROM tenants LIMIT 1").fetchone()[0]
    started = time.perf_counter()
    now = int(time.time() * 1000)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO runs (id, short_id, tenant_id, project_id, name, source, status, created_at) "
        "VALUES (?,?,?,?,?,?,?,?)", (run_id, "rawbase1", tenant, project_id, "raw", "bench", "COMPLETED", now))
    conn.executemany(
        "INSERT INTO tests (project_id, suite_path, title, identity, created_at) VALUES (?,?,?,?,?)",
        [(project_id, r["suite"], r["title"], f"u:{r['suite']}\x1f{r['title']}", now) for r in rows],
    )
    ids = dict(conn.execute("SELECT identity, id FROM tests WHERE project_id = ?", (project_id,)).fetchall())
    conn.executemany(
        "INSERT INTO results (run_id, test_id, status, duration_ms, error_message, error_stack, linked, created_at, "
        "updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
        [(run_id, ids[f"u:{r['suite']}\x1f{r['title']}"], r["status"], r["duration_ms"], r.get("error_message"),
          r.get("error_stack"), 0, now, now) for r in rows],
    )
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(work) + suffix).unlink(missing_ok=True)
    return elapsed


def measure(folder: Path, rows: int, repeat: int, preload_n: int) -> dict:
    folder.mkdir(parents=True)
    port = free_port()
    cfg = folder / "qahub.toml"
    cfg.write_text(f'[server]\nport = {port}\n[storage]\ndata_dir = "data"\n[logging]\naccess_log = false\n'
                   '[retention]\nsweep_interval_minutes = 0\n')
    exe = [sys.executable, "-m", "qahub_lite"]
    key = json.loads(subprocess.run([*exe, "keys", "create", "--scope", "admin", "--config", str(cfg), "--json"],
                                    capture_output=True, text=True, check=True).stdout)["key"]
    db = folder / "data" / "qahub.db"
    conn = sqlite3.connect(db)
    tenant_id = conn.execute("SELECT id FROM tenants LIMIT 1").fetchone()[0]
    conn.close()
    server = subprocess.Popen([*exe, "serve", "--config", str(cfg)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
        created = http.post("/api/v1/projects", json={"name": "bench"})
        if created.status_code != 201:
            raise SystemExit(f"could not create a project: {created.status_code} {created.text[:300]}")
        project_id = created.json()["id"]
        if preload_n:
            print(f"preloading {preload_n:,} results...", file=sys.stderr)
            preload(db, project_id, tenant_id, preload_n)
        existing = sqlite3.connect(db).execute("SELECT count(*) FROM results").fetchone()[0]
        times = []
        for i in range(repeat):
            body = json.dumps({"project_id": project_id, "run_name": f"bench {i}",
                               "results": body_rows(rows, f"r{i}")}).encode()
            started = time.perf_counter()
            r = http.post("/api/v1/ingest", content=body, headers={"Content-Type": "application/json"})
            times.append(time.perf_counter() - started)
            assert r.status_code == 201 and r.json()["accepted"] == rows, r.text[:300]
        http.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    raw_times = [raw_baseline(db, body_rows(rows, f"raw{i}"), project_id) for i in range(repeat)]
    http_s, raw_s = statistics.median(times), statistics.median(raw_times)
    return {"existing": existing, "http_rate": rows / http_s, "raw_rate": rows / raw_s, "http_s": http_s,
            "raw_s": raw_s, "db_mb": db.stat().st_size / 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000, help="results per ingest body")
    parser.add_argument("--preload", type=int, default=1_000_000, help="results stored before the second run")
    parser.add_argument("--repeat", type=int, default=5, help="ingests per database (median is reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        empty = measure(Path(tmp) / "empty", args.rows, args.repeat, 0)
        full = measure(Path(tmp) / "full", args.rows, args.repeat, args.preload)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}")
    print(f"{'database':<22}{'HTTP ingest/s':>15}{'raw executemany/s':>20}{'HTTP vs raw':>13}")
    for name, m in (("empty", empty), (f"{full['existing']:,} results", full)):
        print(f"{name:<22}{m['http_rate']:>15,.0f}{m['raw_rate']:>20,.0f}{m['raw_rate'] / m['http_rate']:>12.2f}x")
    slowdown = empty["http_rate"] / full["http_rate"]
    print(f"HTTP ingest of {args.rows:,} results: {empty['http_s'] * 1000:.0f} ms empty, "
          f"{full['http_s'] * 1000:.0f} ms on the full database; slowdown {slowdown:.2f}x")
    ok = empty["raw_rate"] / empty["http_rate"] <= 3 and slowdown <= 1.5
    print("targets (HTTP within 3x of raw; full within 1.5x of empty):", "MET" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
