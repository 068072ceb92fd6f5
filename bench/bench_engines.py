"""SQLite against PostgreSQL, and one PostgreSQL node against two, in one run on one machine.

    .venv/bin/python bench/bench_engines.py [--quick] [--rows 10000] [--repeat 5] [--seconds 4]

Every figure is measured in this run, on the real `qahub serve` (benchserver.Server), rate limits
off, on 127.0.0.1:

1. Ingest: POST /api/v1/ingest of a --rows-result body (new tests each time, bodies built as
   bench_ingest.py builds them), --repeat times on one client over one keep-alive connection;
   the median results/s on SQLite (synchronous=FULL) and on PostgreSQL, and PostgreSQL/SQLite.
2. Status poll: GET /api/v1/runs/{id} of a run of --rows results (bench_poll.py's "native"
   route), wrk with --connections connections for --seconds (the lean client of benchserver.py
   when wrk is not installed); req/s and p99 on each engine, and the ratio.
3. Nodes: 4 clients each posting --node-bodies bodies of --node-rows results at once, to one
   `qahub serve` node on PostgreSQL, then to two nodes on one database (two clients each); results/s
   of each (median of --node-repeat) and the ratio, with the CPU the database, the nodes and the
   clients used meanwhile (from /proc), which says what limits the ratio.

PostgreSQL is a throw-away cluster (tests/pgcluster.py) started durable: fsync, synchronous_commit
and full_page_writes on, the equivalent of SQLite's synchronous=FULL (a 2xx survives power loss on
both engines). Each server starts on a fresh database.

Targets (issue 14): PostgreSQL ingest within 2x of SQLite's (ratio >= 0.5); 2 nodes never slower
than 1 (ratio >= 1.0). Exit status 1 when a target is missed or any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_ingest import body_rows  # noqa: E402
from benchserver import Connection, Server, cpu_seconds, encode_request, machine, percentile  # noqa: E402
from pgcluster import Cluster, ClusterUnavailable  # noqa: E402

INGEST_TARGET = 0.5  # PostgreSQL/SQLite results/s
NODES_TARGET = 1.0  # 2 nodes / 1 node results/s


# --- requests -------------------------------------------------------------------------------


def create_project(server: Server, name: str) -> str:
    with server.http() as http:
        created = http.post("/api/v1/projects", json={"name": name})
        if created.status_code != 201:
            raise SystemExit(f"could not create a project: {created.status_code} {created.text[:300]}")
        return created.json()["id"]


def ingest_request(server: Server, project_id: str, rows: int, tag: str) -> bytes:
    body = json.dumps({"project_id": project_id, "run_name": f"bench {tag}", "results": body_rows(rows, tag)})
    return encode_request("POST", "/api/v1/ingest", server.key, body.encode())


async def _post_each(port: int, requests: list[bytes]) -> tuple[list[float], int]:
    """Send the requests one after the other on one connection: (seconds of each, failures)."""
    conn = await Connection.open(port)
    times, failed = [], 0
    try:
        for request in requests:
            started = time.perf_counter()
            status = await conn.send(request)
            times.append(time.perf_counter() - started)
            failed += status != 201
    finally:
        conn.close()
    return times, failed


# --- 1. one client's ingest ----------------------------------------------------------------


def measure_ingest(server: Server, project_id: str, rows: int, repeat: int, engine: str) -> dict:
    """Median seconds of a `rows`-result ingest over `repeat` posts (the run of the first one is
    kept for the polls)."""
    requests = [ingest_request(server, project_id, rows, f"{engine}{i}") for i in range(repeat)]
    times, failed = asyncio.run(_post_each(server.port, requests))
    seconds = statistics.median(times)
    return {"seconds": seconds, "per_s": rows / seconds, "all_s": times, "failed": failed}


# --- 2. status polls -----------------------------------------------------------------------


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def poll_wrk(url: str, key: str, seconds: float, connections: int) -> dict:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s",
           "-H", f"Authorization: Bearer {key}", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*?read (\d+), write (\d+), timeout (\d+)", out)
    failed = (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0)
    return {"per_s": rate, "p99_ms": p99, "errors": failed}


async def _poll_lean(port: int, request: bytes, seconds: float, connections: int) -> dict:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def one() -> None:
        nonlocal errors
        conn = await Connection.open(port)
        try:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                status = await conn.send(request)
                latencies.append(time.perf_counter() - started)
                errors += status != 200
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"per_s": len(latencies) / elapsed, "p99_ms": percentile(latencies, 99) * 1000, "errors": errors}


def measure_poll(server: Server, run_id: str, seconds: float, connections: int) -> dict:
    path = f"/api/v1/runs/{run_id}"
    with server.http() as http:
        http.get(path).raise_for_status()  # answers 200 before it is measured
    if shutil.which("wrk"):
        return poll_wrk(server.url + path, server.key, seconds, connections)
    return asyncio.run(_poll_lean(server.port, encode_request("GET", path, server.key), seconds, connections))


def last_run_id(server: Server) -> str:
    with server.http() as http:
        answer = http.get("/api/v1/runs", params={"limit": 1})
        answer.raise_for_status()
        return answer.json()["data"][0]["id"]  # newest first: the last measured ingest's run


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def engine_figures(server: Server, engine: str, args) -> dict:
    progress(f"{engine}: ingest and polls")
    server.start()
    try:
        project_id = create_project(server, f"bench {engine}")
        # One unmeasured post first: the server's first ingest pays for imports and caches.
        asyncio.run(_post_each(server.port, [ingest_request(server, project_id, 100, f"{engine}-warm")]))
        ingest = measure_ingest(server, project_id, args.rows, args.repeat, engine)
        poll = measure_poll(server, last_run_id(server), args.seconds, args.connections)
    finally:
        server.stop()
    return {"ingest": ingest, "poll": poll}


# --- 3. nodes ------------------------------------------------------------------------------


def postgres_pids(cluster: Cluster) -> list[int]:
    """The postmaster and its children (backends, WAL writer, checkpointer...), from /proc."""
    master = int((cluster.data / "postmaster.pid").read_text().split()[0])
    pids = [master]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == master:
                pids.append(int(entry))
    return pids


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:
            pass  # a backend that ended meanwhile (its CPU is lost to the count: small)
    return total


def writer_counts(server: Server) -> tuple[float, float, float]:
    """(write transactions, operations in them, seconds in them) of a node so far, from /metrics:
    operations per transaction say how much group commit shares a transaction (and its fsync)."""
    with server.http() as http:
        text = http.get("/metrics").text
    value = {name: float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))
             for name in ("qahub_write_commit_seconds_count", "qahub_write_operations_total",
                          "qahub_write_commit_seconds_sum")}
    return (value["qahub_write_commit_seconds_count"], value["qahub_write_operations_total"],
            value["qahub_write_commit_seconds_sum"])


def measure_nodes(cluster: Cluster, folder: Path, nodes: int, args) -> dict:
    """4 clients posting at once to `nodes` nodes on one fresh database: results/s (median of
    --node-repeat rounds) and the cores each party used during the rounds."""
    progress(f"{nodes} node(s) on PostgreSQL")
    url = cluster.fresh_database()
    servers = [Server(folder / f"node{n}", storage_url=url) for n in range(nodes)]
    for server in servers:
        server.start()
    try:
        project_id = create_project(servers[0], "nodes")
        for server in servers:  # each node's first ingest unmeasured (imports, caches)
            asyncio.run(_post_each(server.port, [ingest_request(server, project_id, 100, f"warm{server.port}")]))
        writes_before = [writer_counts(s) for s in servers]
        rates, failed = [], 0
        cpu = {"postgres": 0.0, "nodes": 0.0, "clients": 0.0}
        wall = 0.0
        for round_ in range(args.node_repeat):
            plan = []  # (server, requests) per client; clients split evenly across the nodes
            for client in range(4):
                server = servers[client % nodes]
                plan.append((server, [ingest_request(server, project_id, args.node_rows, f"n{nodes}r{round_}c{client}b{b}")
                                      for b in range(args.node_bodies)]))

            async def clients() -> list[tuple[list[float], int]]:
                return await asyncio.gather(*(_post_each(s.port, reqs) for s, reqs in plan))

            pg_pids = postgres_pids(cluster)
            before = (cpu_of(pg_pids), sum(cpu_seconds(s.process.pid) for s in servers), time.process_time())
            started = time.perf_counter()
            outcomes = asyncio.run(clients())
            elapsed = time.perf_counter() - started
            after = (cpu_of(pg_pids), sum(cpu_seconds(s.process.pid) for s in servers), time.process_time())
            failed += sum(f for _, f in outcomes)
            rates.append(4 * args.node_bodies * args.node_rows / elapsed)
            wall += elapsed
            for name, b, a in zip(cpu, before, after):
                cpu[name] += a - b
        writes = [tuple(a - b for a, b in zip(writer_counts(s), wb)) for s, wb in zip(servers, writes_before)]
    finally:
        for server in servers:
            server.stop()
    return {"per_s": statistics.median(rates), "rates": rates, "failed": failed,
            "cores": {name: seconds / wall for name, seconds in cpu.items()},
            "transactions": sum(w[0] for w in writes), "operations": sum(w[1] for w in writes),
            "write_busy": sum(w[2] for w in writes) / wall}


# --- report --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a shorter run: fewer repeats, shorter polls")
    parser.add_argument("--rows", type=int, default=10_000, help="results per ingest body (engines part)")
    parser.add_argument("--repeat", type=int, default=5, help="ingests per engine (the median is reported)")
    parser.add_argument("--seconds", type=float, default=4, help="length of each poll measurement")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections of the polls")
    parser.add_argument("--node-rows", type=int, default=1_000, help="results per body in the nodes part")
    parser.add_argument("--node-bodies", type=int, default=3, help="bodies each of the 4 clients posts per round")
    parser.add_argument("--node-repeat", type=int, default=3, help="rounds per node count (the median is reported)")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.seconds, args.node_bodies, args.node_repeat = 3, 2.0, 2, 2

    load_before = os.getloadavg()[0]
    try:
        cluster = Cluster(durable=True).start()
    except (ClusterUnavailable, subprocess.CalledProcessError) as exc:
        print(f"bench_engines needs PostgreSQL's server binaries (apt-get install postgresql): {exc}", file=sys.stderr)
        return 2
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            if os.geteuid() == 0:  # the cluster runs as `postgres`; the bench folders stay ours
                os.chmod(folder, 0o755)
            sqlite = engine_figures(Server(folder / "sqlite"), "sqlite", args)
            pg = engine_figures(Server(folder / "postgresql", storage_url=cluster.fresh_database()), "postgresql", args)
            one = measure_nodes(cluster, folder / "one", 1, args)
            two = measure_nodes(cluster, folder / "two", 2, args)
    finally:
        cluster.stop()

    load_after = os.getloadavg()[0]
    poller = "wrk -t2" if shutil.which("wrk") else "the lean asyncio client"
    print(f"machine: {machine()}")
    print(f"load average (1 min) before/after the run: {load_before:.1f}/{load_after:.1f} on {os.cpu_count()} cores"
          + (" - other work on the machine competes for the CPU: absolute figures are low, ratios noisy"
             if max(load_before, load_after) > (os.cpu_count() or 1) else ""))
    print("PostgreSQL: a throw-away cluster on the same machine, durable (fsync, synchronous_commit, "
          "full_page_writes on); SQLite synchronous=FULL")
    print()
    print(f"1-2. one client ingesting {args.rows:,} results (median of {args.repeat}); "
          f"status polls ({poller}, {args.connections} connections, {args.seconds:g} s)")
    print(f"{'engine':<12}{'ingest results/s':>18}{'ms/ingest':>11}{'poll req/s':>12}{'p99 ms':>8}{'errors':>8}")
    for name, m in (("SQLite", sqlite), ("PostgreSQL", pg)):
        i, p = m["ingest"], m["poll"]
        print(f"{name:<12}{i['per_s']:>18,.0f}{i['seconds'] * 1000:>11.0f}{p['per_s']:>12,.0f}{p['p99_ms']:>8.1f}"
              f"{i['failed'] + p['errors']:>8}")
    ingest_ratio = pg["ingest"]["per_s"] / sqlite["ingest"]["per_s"]
    poll_ratio = pg["poll"]["per_s"] / sqlite["poll"]["per_s"]
    print(f"{'PG/SQLite':<12}{ingest_ratio:>17.2f}x{'':>11}{poll_ratio:>11.2f}x"
          f"{pg['poll']['p99_ms'] / sqlite['poll']['p99_ms']:>7.2f}x")
    print()
    total = 4 * args.node_bodies * args.node_rows
    print(f"3. 4 clients at once, each {args.node_bodies} bodies of {args.node_rows:,} results ({total:,} per round, "
          f"median of {args.node_repeat}), PostgreSQL; cores used during the rounds (of {os.cpu_count()})")
    print(f"{'nodes':<12}{'results/s':>12}{'postgres':>10}{'qahub':>8}{'clients':>9}{'total':>7}"
          f"{'ops/write tx':>14}{'in write tx':>13}")
    for name, m in (("1", one), ("2", two)):
        c = m["cores"]
        print(f"{name:<12}{m['per_s']:>12,.0f}{c['postgres']:>10.2f}{c['nodes']:>8.2f}{c['clients']:>9.2f}"
              f"{sum(c.values()):>7.2f}{m['operations'] / max(m['transactions'], 1):>14.2f}{m['write_busy']:>12.0%}")
    print("(ops/write tx: ingests sharing one transaction by group commit; in write tx: time the nodes' writers "
          "spent in write transactions, waiting for the write lock included, per second of the rounds)")
    nodes_ratio = two["per_s"] / one["per_s"]
    print(f"{'2/1':<12}{nodes_ratio:>11.2f}x")
    c = two["cores"]
    busy = sum(c.values())
    print(f"what limits 2 nodes: {busy:.2f} of {os.cpu_count()} cores busy (postgres {c['postgres']:.2f}, "
          f"the qahub nodes {c['nodes']:.2f}, the clients {c['clients']:.2f})"
          + (f", other processes hold the rest (load average {load_after:.1f})" if load_after > (os.cpu_count() or 1)
             else ", the CPU is used up" if busy >= 0.85 * (os.cpu_count() or 1) else "") + ";")
    if one["write_busy"] >= 0.9:
        print(f"  one node's writer is in a write transaction {one['write_busy']:.0%} of the time: the write path is "
              "saturated, and write transactions run one at a time across nodes (the write lock), so a second node "
              f"adds only parsing and validation in parallel, while its writer waits for the lock (group commit: "
              f"{one['operations'] / max(one['transactions'], 1):.2f} -> "
              f"{two['operations'] / max(two['transactions'], 1):.2f} ingests per transaction)")
    else:
        print("  the writer is not saturated: the nodes' request handling and the database's CPU limit it")
    print()
    failures = sqlite["ingest"]["failed"] + pg["ingest"]["failed"] + sqlite["poll"]["errors"] + \
        pg["poll"]["errors"] + one["failed"] + two["failed"]
    ingest_ok = ingest_ratio >= INGEST_TARGET
    nodes_ok = nodes_ratio >= NODES_TARGET
    print(f"target PostgreSQL ingest >= {INGEST_TARGET}x SQLite's: {ingest_ratio:.2f}x",
          "met" if ingest_ok else "NOT met")
    print(f"target 2 nodes >= {NODES_TARGET}x one node: {nodes_ratio:.2f}x", "met" if nodes_ok else "NOT met")
    print(f"failed requests: {failures}")
    return 0 if ingest_ok and nodes_ok and failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
