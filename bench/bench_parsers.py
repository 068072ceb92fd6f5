"""Benchmark the report parsers on the large generated reports.

    .venv/bin/python bench/bench_parsers.py [--repeat 3]

Generates (tests/corpus/make_large.py) a 20,000-test pytest JUnit file and a 5,000-test Jest
JSON file in a temporary folder, then for each one, in a fresh subprocess (so one measurement
cannot warm or pollute the other): parses it `--repeat` times and reports the best throughput,
the peak Python allocation during one parse (tracemalloc) and the process' peak RSS
(``ru_maxrss``, includes the interpreter). Targets: >= 100,000 tests/s for JUnit, < 100 MB peak.
Exit status is 1 when a target is missed, so CI can run it.

The verdict is on wall-clock time. The "CPU tests/s" column (best process CPU time) is printed
too: on a shared machine it stays put while the wall-clock figure drops with the load.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "corpus"))

import make_large  # noqa: E402

TARGET_TESTS_PER_S = {"junit": 100_000}
TARGET_PEAK_MB = 100.0

_CHILD = r"""
import json, resource, sys, time, tracemalloc
sys.path.insert(0, sys.argv[1])
from qahub_lite.reports import parse_report
path, repeat = sys.argv[2], int(sys.argv[3])
best = best_cpu = None
for _ in range(repeat):
    start, start_cpu = time.perf_counter(), time.process_time()
    report = parse_report(path)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    best = elapsed if best is None else min(best, elapsed)
    best_cpu = cpu if best_cpu is None else min(best_cpu, cpu)
    count = len(report.results)
    del report
tracemalloc.start()
report = parse_report(path)
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"format": report.format, "tests": count, "seconds": best, "cpu_seconds": best_cpu,
                  "tracemalloc_peak_mb": peak / 2**20, "max_rss_mb": rss_kb / 1024}))
"""


def measure(path: Path, repeat: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), str(path), str(repeat)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        files = make_large.generate(Path(tmp))
        print(f"{'file':34} {'format':10} {'tests':>7} {'seconds':>8} {'tests/s':>10} {'CPU tests/s':>11} "
              f"{'peak alloc MB':>13} {'max RSS MB':>10}  verdict")
        for kind, path in files.items():
            m = measure(path, args.repeat)
            rate = m["tests"] / m["seconds"]
            target = TARGET_TESTS_PER_S.get(m["format"])
            verdicts = []
            if target is not None:
                verdicts.append(f"speed {'OK' if rate >= target else 'MISSED'} (>= {target:,}/s)")
                ok &= rate >= target
            peak_ok = m["tracemalloc_peak_mb"] < TARGET_PEAK_MB and m["max_rss_mb"] < TARGET_PEAK_MB
            verdicts.append(f"memory {'OK' if peak_ok else 'MISSED'} (< {TARGET_PEAK_MB:.0f} MB)")
            ok &= peak_ok
            cpu_rate = m["tests"] / m["cpu_seconds"] if m["cpu_seconds"] else float("inf")
            print(f"{path.name:34} {m['format']:10} {m['tests']:>7} {m['seconds']:>8.3f} {rate:>10,.0f} "
                  f"{cpu_rate:>11,.0f} {m['tracemalloc_peak_mb']:>13.1f} {m['max_rss_mb']:>10.1f}  "
                  f"{'; '.join(verdicts)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
