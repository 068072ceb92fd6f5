"""Figures of the one-file executable: size, cold start, idle memory, and (with --build) the
build time.

    .venv/bin/python bench/bench_binary.py [--exe dist/qahub] [--starts 5] [--build]

- size: bytes of the executable;
- cold start: wall time from exec to the first 200 of /readyz, for `--starts` starts of
  `qahub serve` on a data folder made by `qahub init` (each start of a one-file executable
  unpacks itself again, so every start is cold); the median is the figure;
  the CPU time the process tree used until then is printed too: on a busy machine wall time
  measures the neighbours as well;
- idle RSS: resident memory 3 s after /readyz answered, of the whole process tree (the
  bootloader and the Python process it starts), from /proc;
- build time: `packaging/build.sh`, timed, when --build is given.

Targets (issue 3): under 40 MB, a median start under 1 s, under 80 MB idle. The exit status
is 1 when one is missed.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"size_mb": 40.0, "cold_start_s": 1.0, "idle_rss_mb": 80.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        found.append(current)
        todo += [int(child) for child in children]
    return found


def tree_rss_kb(pid: int) -> int:
    """VmRSS of `pid` and all its descendants."""
    total = 0
    for current in _tree(pid):
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
        except (OSError, StopIteration):
            continue
    return total


def tree_cpu_s(pid: int) -> float:
    """CPU time (user + system) used so far by `pid` and its descendants. On a busy machine
    wall time measures the neighbours too; this is what the start itself costs."""
    ticks = 0
    for current in _tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def start_once(exe: Path, config: Path, port: int, measure_rss: bool) -> tuple[float, float, int | None]:
    env = {**os.environ, "QAHUB_PORT": str(port)}
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    proc = subprocess.Popen([str(exe), "serve", "--config", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not ready(url):
            if proc.poll() is not None:
                raise SystemExit(f"{exe} serve exited with status {proc.returncode}")
            if time.perf_counter() - started > 60:
                raise SystemExit("no answer from /readyz within 60 s")
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        cpu = tree_cpu_s(proc.pid)
        rss = None
        if measure_rss:
            time.sleep(3)
            rss = tree_rss_kb(proc.pid)
        return elapsed, cpu, rss
    finally:
        proc.terminate()
        if proc.wait(20) != 0:
            raise SystemExit(f"{exe} serve did not stop cleanly (status {proc.returncode})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exe", default=str(ROOT / "dist" / "qahub"), help="the executable (default: dist/qahub)")
    parser.add_argument("--starts", type=int, default=5, help="cold starts to time (default: 5)")
    parser.add_argument("--build", action="store_true", help="build first with packaging/build.sh, and time it")
    args = parser.parse_args()
    exe = Path(args.exe).resolve()

    figures: dict[str, float] = {}
    if args.build:
        started = time.perf_counter()
        subprocess.run([str(ROOT / "packaging" / "build.sh")], check=True, cwd=ROOT)
        figures["build_s"] = time.perf_counter() - started
    if not exe.exists():
        print(f"{exe} does not exist: run `make binary` (or pass --build)", file=sys.stderr)
        return 2
    figures["size_mb"] = exe.stat().st_size / 1e6

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([str(exe), "init", "--dir", tmp, "--json"], check=True, capture_output=True)
        config = Path(tmp) / "qahub.toml"
        port = free_port()
        start_once(exe, config, port, measure_rss=False)  # first start: migrations, first user
        times, cpus = [], []
        rss = None
        for n in range(args.starts):
            elapsed, cpu, measured = start_once(exe, config, port, measure_rss=(n == args.starts - 1))
            times.append(elapsed)
            cpus.append(cpu)
            rss = measured if measured is not None else rss
    figures["cold_start_s"] = statistics.median(times)
    figures["cold_start_cpu_s"] = statistics.median(cpus)
    figures["idle_rss_mb"] = (rss or 0) / 1024

    print(f"executable:   {exe}")
    if "build_s" in figures:
        print(f"build time:   {figures['build_s']:.1f} s (packaging/build.sh)")
    print(f"size:         {figures['size_mb']:.1f} MB (target < {TARGETS['size_mb']:.0f} MB)")
    print(f"cold start:   median {figures['cold_start_s'] * 1000:.0f} ms of {args.starts} "
          f"({', '.join(f'{t * 1000:.0f}' for t in times)} ms; target < {TARGETS['cold_start_s'] * 1000:.0f} ms)")
    print(f"              CPU time to ready: median {figures['cold_start_cpu_s'] * 1000:.0f} ms "
          f"(user + system of the process tree; with load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"idle RSS:     {figures['idle_rss_mb']:.1f} MB, bootloader and server together "
          f"(target < {TARGETS['idle_rss_mb']:.0f} MB)")
    missed = [name for name, target in TARGETS.items() if figures[name] >= target]
    if missed:
        print("missed targets: " + ", ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
