"""Test splitting: how even `qahub split` makes 8 CI nodes on a long-tailed history.

    .venv/bin/python bench/bench_split.py [--files 1000] [--nodes 8] [--runs 20] [--new 50]

1. Starts the real server and sends it --runs completed runs of the default branch: --files
   test files, 1 to 5 tests each, every file with a base time from a log-normal distribution
   (a long tail: most files take a second, a few take a minute) and +-20% noise per run.
   --new of the files are left out of the history: new files, given the median.
2. Runs `qahub split --index I` once per node, as the CI nodes would (separate processes),
   twice each, and checks the shares: the same both times, disjoint, every file once.
3. Draws one more run from the same distributions (the run the split is for) and prints each
   node's time, the ideal (total / N), the slowest node against it, and the same for a split
   by count (what a split without history gives), for comparison.

Target (issue 16): the slowest node within 10% of the ideal when no file is longer than it.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchserver import Server, machine  # noqa: E402

from qahub_lite.splitting import split  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--runs", type=int, default=20, help="runs of history on the default branch")
    parser.add_argument("--new", type=int, default=50, help="files without history")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    files = [f"tests/{['api', 'web', 'db', 'jobs'][i % 4]}/test_{i:04d}.py" for i in range(args.files)]
    base = {f: rng.lognormvariate(7.0, 1.2) for f in files}  # ms; median ~1.1 s, long tail
    tests_in = {f: rng.randint(1, 5) for f in files}
    new = set(rng.sample(files, args.new))
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="qahub-bench-split-") as tmp:
        server = Server(Path(tmp))
        server.start()
        try:
            with server.http() as http:
                project = http.post("/api/v1/projects", json={"name": "split"}).json()["id"]
                for _ in range(args.runs):
                    results = []
                    for f in files:
                        if f in new:
                            continue
                        total = base[f] * rng.uniform(0.8, 1.2)
                        for t in range(tests_in[f]):
                            results.append({"title": f"test_{t}", "file": f, "status": "PASSED",
                                            "duration_ms": int(total / tests_in[f])})
                    r = http.post("/api/v1/ingest", json={"project_id": project, "ci": {"branch": "main"},
                                                          "results": results})
                    assert r.status_code == 201, r.text
            shares = []
            env = {**os.environ, "QAHUB_URL": server.url, "QAHUB_TOKEN": server.key}
            for index in range(args.nodes):
                outs = [subprocess.run(
                    [sys.executable, "-m", "qahub_lite", "split", "--project", project, "--total", str(args.nodes),
                     "--index", str(index), "--quiet"], input="\n".join(reversed(files)) if again else "\n".join(files),
                    capture_output=True, text=True, env=env, check=True).stdout.split() for again in (False, True)]
                if outs[0] != outs[1]:
                    raise RuntimeError(f"node {index}: two runs of the same split differ")
                shares.append(outs[0])
        finally:
            server.stop()
    every = [f for share in shares for f in share]
    if sorted(every) != sorted(files):
        raise RuntimeError("the shares are not a partition of the files")
    actual = {f: base[f] * rng.uniform(0.8, 1.2) for f in files}  # the run the split is for
    ideal = sum(actual.values()) / args.nodes
    longest = max(actual.values())
    node_times = [sum(actual[f] for f in share) for share in shares]
    by_count = [sum(actual[f] for f in s.items) for s in split(files, {}, args.nodes)]
    print(f"history: {args.runs} runs of {args.files - args.new} files; {args.new} new files; "
          f"longest file {longest / 1000:.1f}s, ideal node time (total / {args.nodes}) {ideal / 1000:.1f}s")
    print("node times (s):  " + "  ".join(f"{t / 1000:.1f}" for t in node_times))
    print(f"slowest node: {max(node_times) / 1000:.1f}s = {max(node_times) / ideal:.3f} x ideal "
          f"({(max(node_times) / ideal - 1) * 100:+.1f}%; target within +10%)")
    print(f"split by count (no history): slowest {max(by_count) / 1000:.1f}s = {max(by_count) / ideal:.3f} x ideal")
    print(f"same split on every node: yes ({args.nodes} nodes x 2 runs each, files given in two orders)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
