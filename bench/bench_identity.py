"""What the test-identity work (docs/identity.md) costs, against the ingest it is part of.

    python bench/bench_identity.py [--rows 10000] [--repeat 5]

One Jest --json report of --rows tests (absolute file paths in 40 folders, describe blocks,
10% of the tests parameterized and linked to 20 test case codes, 10% tagged) is
1. parsed, then normalized by the client (reports/identity.py: root-relative locations, scope,
   variants of results that share a code), timed: the client's identity work;
2. sent as one body to a real `qahub serve` (POST /api/v1/ingest), timed: the ingest, the
   baseline the identity work is measured against, in the same run;
3. identified as the server does it (`core.ingest.identify`: each item's key with its variant,
   the check for two items with one identity), in this process on the same records, timed:
   the server's identity work. Storing the interned tests is not counted: every release
   did that, and bench_ingest.py measures it against raw sqlite3.
Prints the medians and the ratio of the identity work (client + server) to the ingest time.
Target: at most 10%.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchserver import Server, machine  # noqa: E402
import msgspec  # noqa: E402

from qahub_lite.api.native_runs import to_record  # noqa: E402
from qahub_lite.api.native_schema import ResultIn  # noqa: E402
from qahub_lite.core.ingest import identify  # noqa: E402
from qahub_lite.payload import Payload, RunInfo, add_report  # noqa: E402
from qahub_lite.reports import parse_report  # noqa: E402
from qahub_lite.reports.identity import assign_variants, normalize  # noqa: E402

REPO = "/builds/acme/shop"


def jest_report(rows: int, tag: str) -> dict:
    files: dict[str, list] = {}
    for i in range(rows):
        file = f"{REPO}/src/area_{i % 40}/feature_{i % 200}.test.js"
        title = f"{tag} renders case {i}"
        if i % 10 == 0:  # parameterized, several sets linked to one code: variants are derived
            title = f"computes [{i}] @qa-hub('TC-{i % 20:03d}')"
        elif i % 10 == 1:
            title += " @smoke"
        status = "failed" if i % 50 == 0 else ("pending" if i % 97 == 0 else "passed")
        files.setdefault(file, []).append({
            "ancestorTitles": [f"Area {i % 40}", f"group {i % 7}"], "title": title, "status": status,
            "duration": 10 + i % 500, "failureMessages": ["Error: expected 200, got 500\n    at t.js:1"] if status == "failed" else [],
        })
    return {"numTotalTests": rows, "startTime": int(time.time() * 1000), "testResults": [
        {"name": name, "status": "passed", "assertionResults": tests} for name, tests in files.items()]}


def prepare(path: Path) -> tuple[dict, float]:
    """(ingest body, seconds of the client's identity work) for the report at `path`."""
    report = parse_report(path)
    started = time.perf_counter()
    normalize(report, Path(REPO))
    assign_variants(report.results)
    took = time.perf_counter() - started
    payload = Payload(run=RunInfo(project_id=""))
    add_report(payload, report)
    return {"results": payload.results}, took


def server_identity(results: list[dict]) -> float:
    """Seconds `identify` takes over the body's records, as the server runs it."""
    records = [(i, to_record(msgspec.convert(r, ResultIn), None)) for i, r in enumerate(results)]
    by_code = {f"TC-{code:03d}": (f"case-{code}", f"c{code}") for code in range(20)}
    started = time.perf_counter()
    errors: list = []
    wanted, accepted = identify(records, by_code, {}, errors)
    took = time.perf_counter() - started
    assert not errors and len(accepted) == len(records), errors[:3]
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server = Server(folder / "hub")
        server.start()
        client_times, server_times, full_times = [], [], []
        try:
            http = server.http()
            project = http.post("/api/v1/projects", json={"name": "bench"}).json()["id"]
            for code in range(20):
                http.post(f"/api/v1/projects/{project}/test-cases", json={"code": f"TC-{code:03d}", "title": f"c{code}"})
            for i in range(args.repeat):
                report = folder / f"jest-{i}.json"
                report.write_text(json.dumps(jest_report(args.rows, f"r{i}")))
                body, took = prepare(report)
                client_times.append(took)
                server_times.append(server_identity(body["results"]))
                encoded = json.dumps({"project_id": project, "results": body["results"]}).encode()
                started = time.perf_counter()
                answer = http.post("/api/v1/ingest", content=encoded, headers={"Content-Type": "application/json"})
                full_times.append(time.perf_counter() - started)
                assert answer.status_code == 201 and answer.json()["accepted"] == args.rows, answer.text[:300]
            http.close()
        finally:
            server.stop()
    client_s, server_s = statistics.median(client_times), statistics.median(server_times)
    ingest_s = statistics.median(full_times)
    ratio = (client_s + server_s) / ingest_s
    print(f"machine: {machine()}")
    print(f"{args.rows:,} results, medians of {args.repeat}:")
    print(f"  client identity work (normalize + variants): {client_s * 1000:8.1f} ms")
    print(f"  server identity work (keys + conflicts):     {server_s * 1000:8.1f} ms")
    print(f"  HTTP ingest of the body (baseline):          {ingest_s * 1000:8.1f} ms")
    print(f"identity work / ingest time: {ratio:.1%} (target at most 10%): {'MET' if ratio <= 0.10 else 'MISSED'}")
    return 0 if ratio <= 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
