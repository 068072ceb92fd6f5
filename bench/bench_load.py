"""Load: status pollers and ingests at once against a real server on 127.0.0.1.

    .venv/bin/python bench/bench_load.py [--seconds 60] [--pollers 200] [--ingesters 10] [--results 100]

A CI fleet waiting on its runs looks like this: many clients polling a run's status
(`GET /api/v1/runs/{id}`) while others upload results (`POST /api/v1/ingest`, --results each).
The pollers and the ingesters run in two processes of their own (asyncio, one keep-alive
connection per client, pre-encoded requests), so that neither side waits on the other's
Python; the server's resident memory is sampled every second.

Prints, per kind: requests per second, p50 and p99 latency, errors (any answer but 200/201, or
a broken connection; target 0); the server's RSS over time (target: flat) and the CPU time each
process used, which shows whether the server or the client was the bottleneck.
Exit status 1 when there were errors or RSS grew by more than 20% over the second half.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchserver import Connection, Server, cpu_seconds, encode_request, machine, percentile, rss_mb  # noqa: E402


def _client_process(kind: str, port: int, requests: list[bytes], clients: int, seconds: float,
                    start_at: float, out: multiprocessing.Queue) -> None:
    """Run `clients` coroutines, each sending `requests` round-robin until the deadline."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def one(index: int, latencies: list[float], errors: list[int]) -> None:
        conn = await Connection.open(port)
        deadline = start_at + seconds
        i = index
        try:
            while time.time() < deadline:
                t = time.perf_counter()
                try:
                    status = await conn.send(requests[i % len(requests)])
                except (OSError, asyncio.IncompleteReadError):
                    errors[0] += 1
                    conn.close()
                    conn = await Connection.open(port)
                    continue
                latencies.append(time.perf_counter() - t)
                if status not in (200, 201):
                    errors[0] += 1
                i += clients
        finally:
            conn.close()

    async def main() -> tuple[list[float], int]:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        latencies: list[float] = []
        errors = [0]
        await asyncio.gather(*(one(i, latencies, errors) for i in range(clients)))
        return latencies, errors[0]

    latencies, errors = asyncio.run(main())
    out.put((kind, sorted(latencies), errors, cpu_seconds(os.getpid())))


def prepare(server: Server, results: int) -> tuple[list[bytes], list[bytes]]:
    """A project with a few runs to poll, and ingest bodies of a realistic suite."""
    with server.http() as http:
        project_id = http.post("/api/v1/projects", json={"name": "load"}).json()["id"]
        run_ids = []
        for r in range(20):
            body = {"project_id": project_id, "run_name": f"polled {r}", "status": "RUNNING",
                    "results": [{"title": f"test {t}", "suite": "polled", "status": "PASSED"} for t in range(50)]}
            run_ids.append(http.post("/api/v1/ingest", json=body).json()["run_id"])
    polls = [encode_request("GET", f"/api/v1/runs/{run_id}", server.key) for run_id in run_ids]
    ingests = []
    for b in range(20):
        rows = []
        for t in range(results):
            status = "FAILED" if (t + b) % 37 == 0 else "PASSED"
            row = {"title": f"test_{t} renders the page", "suite": f"suite {t % 12}", "status": status,
                   "duration_ms": 20 + t % 300}
            if status == "FAILED":
                row["error_message"] = "AssertionError: expected 200, got 500"
            rows.append(row)
        body = json.dumps({"project_id": project_id, "run_name": f"ingest {b}", "results": rows}).encode()
        ingests.append(encode_request("POST", "/api/v1/ingest", server.key, body))
    return polls, ingests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="length of the measurement")
    parser.add_argument("--pollers", type=int, default=200, help="concurrent clients polling a run's status")
    parser.add_argument("--ingesters", type=int, default=10, help="concurrent clients posting ingests")
    parser.add_argument("--results", type=int, default=100, help="results per ingest")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object too")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "server")
        server.start()
        try:
            polls, ingests = prepare(server, args.results)
            pid = server.process.pid
            cpu_before = cpu_seconds(pid)
            out: multiprocessing.Queue = multiprocessing.Queue()
            start_at = time.time() + 2.0  # both processes connected and waiting when it starts
            procs = [
                multiprocessing.Process(target=_client_process, args=(
                    "poll", server.port, polls, args.pollers, args.seconds, start_at, out)),
                multiprocessing.Process(target=_client_process, args=(
                    "ingest", server.port, ingests, args.ingesters, args.seconds, start_at, out)),
            ]
            for p in procs:
                p.start()
            rss: list[tuple[float, float]] = []
            while time.time() < start_at:
                time.sleep(0.05)
            while time.time() < start_at + args.seconds:
                rss.append((time.time() - start_at, rss_mb(pid)))
                time.sleep(1.0)
            figures = {}
            for _ in procs:
                kind, latencies, errors, cpu = out.get(timeout=120)
                figures[kind] = (latencies, errors, cpu)
            for p in procs:
                p.join(30)
            server_cpu = cpu_seconds(pid) - cpu_before
            rss.append((args.seconds, rss_mb(pid)))
        finally:
            server.stop()

    print(f"machine: {machine()}")
    print(f"load: {args.pollers} pollers of GET /api/v1/runs/{{id}} + {args.ingesters} clients posting "
          f"{args.results}-result ingests, {args.seconds:.0f} s on 127.0.0.1")
    print(f"{'kind':<8}{'requests':>10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'client CPU s':>14}")
    summary: dict = {}
    for kind in ("poll", "ingest"):
        latencies, errors, cpu = figures[kind]
        rate = len(latencies) / args.seconds
        p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
        print(f"{kind:<8}{len(latencies):>10,}{rate:>10,.0f}{p50:>9.1f}{p99:>9.1f}{errors:>8}{cpu:>14.1f}")
        summary[kind] = {"requests": len(latencies), "per_s": round(rate), "p50_ms": round(p50, 2),
                         "p99_ms": round(p99, 2), "errors": errors, "client_cpu_s": round(cpu, 1)}
    ingested = summary["ingest"]["per_s"] * args.results
    print(f"results ingested: {ingested:,.0f}/s; server CPU {server_cpu:.1f} s of {args.seconds:.0f} s "
          f"({server_cpu / args.seconds:.2f} cores)")
    marks = [row for row in rss if row[0] in (0, args.seconds) or int(row[0]) % 10 == 0]
    print("server RSS MB: " + ", ".join(f"{t:.0f}s {mb:.0f}" for t, mb in marks))
    half = [mb for t, mb in rss if t >= args.seconds / 2]
    growth = (max(half) - min(half)) / min(half) if half else 0.0
    print(f"RSS over the second half: {min(half):.0f}-{max(half):.0f} MB ({growth * 100:.1f}% spread)")
    errors = summary["poll"]["errors"] + summary["ingest"]["errors"]
    ok = errors == 0 and growth <= 0.20
    print("targets (0 errors; RSS flat within 20% over the second half):", "MET" if ok else "MISSED")
    if args.json:
        print(json.dumps({"machine": machine(), "summary": summary, "rss": rss, "server_cpu_s": server_cpu}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
