"""Polls against the framework's ceiling: the product's status routes beside a minimal Litestar
app served by the same granian, in one run on 127.0.0.1.

    .venv/bin/python bench/bench_poll.py [--seconds 4] [--connections 32] [--results 10000]

A CI job waiting on its run polls one status route over and over; what one poll costs the server
is what a fleet of them costs it. The figure that says whether that cost is the product's or the
framework's is the ratio to a trivial GET of a minimal Litestar app on the same server (granian
embedded, one process, uvloop, the options server.py uses), measured in the same run on the same
machine: absolute figures move with the machine, the ratio much less.

Measured with wrk (`apt-get install wrk`), --connections keep-alive connections for --seconds
per route, rate limits off:
  minimal       GET /ping of the minimal app
  native        GET /api/v1/runs/{id}                   of a run of --results results
  qatech        GET /v1/run/{shortId}                   of the same run
  qualigate     GET /api/v1/trigger?suite_run_id={id}   of the same run
then the three product routes again while one client posts --results-result ingests back to
back (the write path busy, as when a large suite reports while others wait on theirs).

Targets (issue 13): every poll route >= 0.3x of the minimal app when idle; p99 <= 50 ms while
ingests run. Exit status 1 when a target is missed or any poll was answered other than 200.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchserver import Server, free_port, machine  # noqa: E402

IDLE_TARGET = 0.3
P99_TARGET_MS = 50.0


def serve_minimal(port: int) -> None:
    """A Litestar app with one trivial GET, served the way server.py serves the product."""
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.server.embed import Server as Granian
    from litestar import Litestar, get

    from qahub_lite.config import Config
    from qahub_lite.server import _run

    @get("/ping", sync_to_thread=False)
    def ping() -> dict[str, bool]:
        return {"ok": True}

    defaults = Config().server
    server = Granian(
        Litestar([ping]), address="127.0.0.1", port=port, interface=Interfaces.ASGI, log_enabled=False,
        log_access=False, websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=defaults.header_timeout_s * 1000),
        backlog=1024, backpressure=defaults.max_connections,
    )
    _run(server.serve())


class Minimal:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, __file__, "--serve-minimal", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ping", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("the minimal app did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(url: str, key: str | None, seconds: float, connections: int) -> dict:
    """req/s, p99 in ms and the count of answers other than 2xx/3xx or broken, from wrk's report."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if key:
        cmd += ["-H", f"Authorization: Bearer {key}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*?read (\d+), write (\d+), timeout (\d+)", out)
    failed = (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0)
    return {"per_s": rate, "p99_ms": p99, "errors": failed}


def ingest_body(project_id: str, results: int, n: int) -> bytes:
    rows = []
    for t in range(results):
        status = "FAILED" if (t + n) % 37 == 0 else "PASSED"
        row = {"title": f"test_{t} renders the page", "suite": f"suite {t % 40}", "status": status,
               "duration_ms": 20 + t % 300}
        if status == "FAILED":
            row["error_message"] = "AssertionError: expected 200, got 500"
        rows.append(row)
    return json.dumps({"project_id": project_id, "run_name": f"ingest {n}", "results": rows}).encode()


def prepare(server: Server, results: int) -> tuple[dict[str, str], bytes]:
    """One finished run of `results` results; the three poll paths of it; an ingest body."""
    with server.http() as http:
        project_id = http.post("/api/v1/projects", json={"name": "polls"}).json()["id"]
        answer = http.post("/api/v1/ingest", content=ingest_body(project_id, results, 0),
                           headers={"Content-Type": "application/json"})
        answer.raise_for_status()
        run_id = answer.json()["run_id"]
        run = http.get(f"/api/v1/runs/{run_id}").json()
        paths = {
            "native": f"/api/v1/runs/{run_id}",
            "qatech": f"/v1/run/{run['short_id']}",
            "qualigate": f"/api/v1/trigger?suite_run_id={run_id}",
        }
        for path in paths.values():  # each route answers 200 before it is measured
            http.get(path).raise_for_status()
    return paths, ingest_body(project_id, results, 1)


class Ingests:
    """One client posting the same large ingest back to back until stopped."""

    def __init__(self, server: Server, body: bytes) -> None:
        self.server, self.body = server, body
        self.done, self.failed = 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.server.http() as http:
            while not self._stop.is_set():
                r = http.post("/api/v1/ingest", content=self.body, headers={"Content-Type": "application/json"})
                if r.status_code in (200, 201):
                    self.done += 1
                else:
                    self.failed += 1

    def __enter__(self) -> "Ingests":
        self._thread.start()
        time.sleep(0.5)  # the first ingest is under way when the polls start
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4, help="length of each measurement")
    parser.add_argument("--connections", type=int, default=32, help="wrk's keep-alive connections")
    parser.add_argument("--results", type=int, default=10_000, help="results of the polled run and of each ingest")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object too")
    parser.add_argument("--serve-minimal", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_minimal:
        serve_minimal(args.serve_minimal)
        return 0
    if shutil.which("wrk") is None:
        print("bench_poll needs wrk, the HTTP load generator: apt-get install wrk", file=sys.stderr)
        return 2

    seconds, conns = args.seconds, args.connections
    idle: dict[str, dict] = {}
    busy: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        minimal = Minimal()
        try:
            idle["minimal"] = wrk(f"{minimal.url}/ping", None, seconds, conns)
        finally:
            minimal.stop()
        server = Server(Path(tmp) / "server")
        server.start()
        try:
            paths, body = prepare(server, args.results)
            for name, path in paths.items():
                idle[name] = wrk(server.url + path, server.key, seconds, conns)
            with Ingests(server, body) as ingests:
                for name, path in paths.items():
                    busy[name] = wrk(server.url + path, server.key, seconds, conns)
        finally:
            server.stop()

    base = idle["minimal"]["per_s"]
    print(f"machine: {machine()}")
    print(f"polls: wrk -t2 -c{conns} -d{seconds:g}s on 127.0.0.1, one granian process, rate limits off; "
          f"a run of {args.results:,} results")
    print(f"{'route':<11}{'idle req/s':>11}{'ratio':>7}{'p99 ms':>8}{'errors':>7}"
          f"{'ingesting req/s':>17}{'p99 ms':>8}{'errors':>7}")
    m = idle["minimal"]
    print(f"{'minimal':<11}{m['per_s']:>11,.0f}{1:>7.2f}{m['p99_ms']:>8.1f}{m['errors']:>7}")
    ok = m["errors"] == 0
    for name in paths:
        i, b = idle[name], busy[name]
        ratio = i["per_s"] / base
        print(f"{name:<11}{i['per_s']:>11,.0f}{ratio:>7.2f}{i['p99_ms']:>8.1f}{i['errors']:>7}"
              f"{b['per_s']:>17,.0f}{b['p99_ms']:>8.1f}{b['errors']:>7}")
        ok = ok and ratio >= IDLE_TARGET and b["p99_ms"] <= P99_TARGET_MS and i["errors"] == b["errors"] == 0
    rate = ingests.done * args.results / (len(paths) * seconds)
    print(f"ingests while polling: {ingests.done} of {args.results:,} results ({ingests.failed} failed), "
          f"~{rate:,.0f} results/s")
    print(f"targets (each route >= {IDLE_TARGET}x of minimal idle; p99 <= {P99_TARGET_MS:.0f} ms while ingesting; "
          "no errors):", "MET" if ok else "MISSED")
    if args.json:
        print(json.dumps({"machine": machine(), "idle": idle, "ingesting": busy, "ingests": ingests.done}))
    return 0 if ok and ingests.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
