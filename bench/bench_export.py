"""Bulk export: rows per second and the server's memory while it streams a project's results.

    .venv/bin/python bench/bench_export.py [--results 1000000] [--tests 5000] [--formats csv,ndjson,parquet]

1. Builds a project of --results results (--tests tests per run, as many runs as needed)
   straight through the real schema (bench_scale.preload), then starts the real server on it.
2. For each format, streams `GET /api/v1/projects/{id}/results/export` over HTTP and reads the
   body as a client would, while a thread samples the server's resident memory (VmRSS) every
   20 ms. Prints rows, bytes, seconds, rows per second, the server's RSS before and its peak
   during the export.
3. Flat memory: the same export of a tenth of the results (the newest runs, by `since`) has
   the same peak, within a few MB: what the server holds does not grow with the export.
4. Backpressure: a client that reads NDJSON at ~3 MB/s for 10 s. If the server buffered what
   the client has not read yet, its peak would grow by the rest of the export; it does not.

Figures are printed, not asserted: a benchmark on a shared machine informs, a test decides.
The target (issue 16): >= 100,000 rows/s for 1,000,000 results, memory flat.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_scale import expect, preload  # noqa: E402
from benchserver import Server, machine, rss_mb  # noqa: E402


class PeakRss(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.02)

    def stop(self) -> float:
        self.done.set()
        self.join()
        return self.peak


def export(server: Server, http, project_id: str, fmt: str, since: str | None = None) -> dict:
    params = {"format": fmt, **({"since": since} if since else {})}
    idle = rss_mb(server.process.pid)
    sampler = PeakRss(server.process.pid)
    sampler.start()
    started = time.perf_counter()
    size = lines = 0
    with http.stream("GET", f"/api/v1/projects/{project_id}/results/export", params=params) as response:
        expect(response)
        rows = int(response.headers["x-result-count"])
        for chunk in response.iter_bytes(1 << 20):
            size += len(chunk)
            lines += chunk.count(b"\n")
    seconds = time.perf_counter() - started
    peak = sampler.stop()
    if fmt == "ndjson" and lines != rows:
        raise RuntimeError(f"ndjson: {lines} lines for {rows} rows")
    return {"rows": rows, "bytes": size, "seconds": seconds, "idle_mb": idle, "peak_mb": peak}


def slow_reader(server: Server, http, project_id: str, seconds: float = 10.0) -> tuple[float, float, float]:
    """(MB read, server RSS before, server peak) for a client reading 64 KB every 20 ms."""
    idle = rss_mb(server.process.pid)
    sampler = PeakRss(server.process.pid)
    sampler.start()
    read, started = 0, time.monotonic()
    with http.stream("GET", f"/api/v1/projects/{project_id}/results/export", params={"format": "ndjson"}) as response:
        expect(response)
        for chunk in response.iter_bytes(65536):
            read += len(chunk)
            time.sleep(0.02)
            if time.monotonic() - started > seconds:
                break
    return read / 1e6, idle, sampler.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=int, default=1_000_000, help="results in the exported project")
    parser.add_argument("--tests", type=int, default=5000, help="results per run")
    parser.add_argument("--formats", default="csv,ndjson,parquet", help="comma-separated formats to export")
    args = parser.parse_args()
    runs = max(1, args.results // args.tests)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="qahub-bench-export-") as tmp:
        server = Server(Path(tmp))
        server.start()
        with server.http() as http:
            project_id = expect(http.post("/api/v1/projects", json={"name": "export"}), 201).json()["id"]
        server.stop()
        load_s = preload(server, [project_id], args.tests, runs)
        print(f"built {runs * args.tests:,} results in {runs:,} runs in {load_s:.1f}s")
        conn = sqlite3.connect(server.db)
        # The creation time of the newest tenth of the runs: the "small export" of step 3.
        cut = conn.execute("SELECT created_at FROM runs ORDER BY created_at DESC LIMIT 1 OFFSET ?",
                           (max(0, runs // 10 - 1),)).fetchone()[0]
        conn.close()
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cut / 1000)) + f".{cut % 1000:03d}Z"
        server.start()
        try:
            with server.http() as http:
                for fmt in args.formats.split(","):
                    small = export(server, http, project_id, fmt, since=since)
                    full = export(server, http, project_id, fmt)
                    rate = full["rows"] / full["seconds"]
                    print(f"{fmt:8} {full['rows']:>9,} rows  {full['bytes'] / 1e6:8.1f} MB  {full['seconds']:6.2f}s  "
                          f"{rate:>9,.0f} rows/s  server RSS {full['idle_mb']:.0f} MB before, "
                          f"peak {full['peak_mb']:.0f} MB")
                    print(f"{'':8} {small['rows']:>9,} rows (newest tenth): peak {small['peak_mb']:.0f} MB -> "
                          f"{full['peak_mb'] - small['peak_mb']:+.0f} MB for {full['rows'] / max(1, small['rows']):.0f}x "
                          "the rows")
                read, idle, peak = slow_reader(server, http, project_id)
                print(f"slow reader (ndjson, ~3 MB/s for 10 s): read {read:.0f} MB; server RSS {idle:.0f} MB before, "
                      f"peak {peak:.0f} MB")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
