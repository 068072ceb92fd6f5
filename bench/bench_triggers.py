"""Benchmark executing triggered tests against a real `qahub serve`: how fast a waiting agent
hears of new work, and what one job's report and completion cost.

    .venv/bin/python bench/bench_triggers.py [--n 50]

For each of `--n` rounds: an agent thread waits in `POST /api/v1/agent/claim` (long-poll), the
main thread sends `POST /api/v1/trigger` for one test case, and the time from sending the
trigger to the claim's answer is measured (it includes the trigger's own commit and the
claim's). Then the job's `results` and `complete` calls are timed. Prints medians and p95s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import start_server  # noqa: E402


def _summary(label: str, values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    return f"{label}: median {statistics.median(values):.1f} ms, p95 {p95:.1f} ms ({len(values)} rounds)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="rounds (default: 50)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), "[rate_limits]\nqualigate = 0\ndefault = 0\n")
        try:
            headers = server.h()
            with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
                project = http.post("/api/v1/projects", json={"name": "Bench"}).json()["id"]
                case = http.post(f"/api/v1/projects/{project}/test-cases", json={
                    "title": "t", "automation": {"framework": "pytest"}}).json()["id"]
                wake, finish = [], []
                for _ in range(args.n):
                    answered: dict = {}

                    def agent() -> None:
                        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as own:
                            body = {"agent": "bench", "frameworks": ["pytest"], "wait_s": 10}
                            answered["job"] = own.post("/api/v1/agent/claim", json=body).json()["job"]
                            answered["at"] = time.perf_counter()

                    waiting = threading.Thread(target=agent)
                    waiting.start()
                    time.sleep(0.05)  # the claim is waiting on the server by now
                    sent = time.perf_counter()
                    http.post("/api/v1/trigger", json={"test_case_id": case}).raise_for_status()
                    waiting.join()
                    wake.append((answered["at"] - sent) * 1000)
                    job = answered["job"]
                    token = {"lease_token": job["lease_token"]}
                    started = time.perf_counter()
                    http.post(f"/api/v1/agent/jobs/{job['id']}/results",
                              json={**token, "results": [{"title": "t", "status": "PASSED"}]}).raise_for_status()
                    http.post(f"/api/v1/agent/jobs/{job['id']}/complete",
                              json={**token, "outcome": "DONE"}).raise_for_status()
                    finish.append((time.perf_counter() - started) * 1000)
            print(_summary("trigger sent -> waiting agent's claim answered", wake))
            print(_summary("a one-test job's results + complete", finish))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
