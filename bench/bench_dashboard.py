"""Dashboard page times on a large history: 1,000,000 stored results (1,000 runs x 1,000 tests)
by default, generated the way bench_health.py does (the real schema, a realistic project).

    python bench/bench_dashboard.py [--runs 1000] [--tests 1000] [--repeat 7]

Signs in through the real sign-in form and then takes the median of --repeat GETs of each
page through the real app (Litestar's TestClient: routing, session, core queries, templates),
so a figure is what a person waits for, less the network. Target: every page under 1 s,
except the gate page, which judges 20 runs anew on purpose (see web/pages_trends.py).
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_health import generate  # noqa: E402

from qahub_lite.app import create_app  # noqa: E402
from qahub_lite.config import load_config  # noqa: E402
from qahub_lite.core import users  # noqa: E402
from qahub_lite.db.database import direct_connection  # noqa: E402

TARGET_MS = 1000.0
PASSWORD = "bench password 1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs to generate (default 1000)")
    parser.add_argument("--tests", type=int, default=1000, help="tests per run (default 1000)")
    parser.add_argument("--repeat", type=int, default=7, help="GETs per page; the median is printed (default 7)")
    args = parser.parse_args()

    from litestar.testing import TestClient

    with tempfile.TemporaryDirectory() as folder:
        config_path = Path(folder) / "qahub.toml"
        config_path.write_text('[storage]\ndata_dir = "data"\n[logging]\naccess_log = false\n', encoding="utf-8")
        config = load_config(config_path, environ={})
        config.data_dir.mkdir(parents=True)
        started = time.perf_counter()
        tenant_id, project_id = generate(config.db_path, args.runs, args.tests)
        print(f"generated {args.runs * args.tests:,} results in {time.perf_counter() - started:.1f} s")
        with direct_connection(config) as conn:
            users.create_user(conn, "bench", tenant_id=tenant_id, role="admin", password=PASSWORD)
            latest = conn.execute(
                "SELECT short_id FROM runs WHERE project_id = ? AND branch = 'main' ORDER BY created_at DESC LIMIT 1",
                (project_id,),
            ).fetchone()[0]
            test_id = conn.execute("SELECT id FROM tests WHERE project_id = ? LIMIT 1", (project_id,)).fetchone()[0]

        with TestClient(app=create_app(config)) as client:
            token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
            signed = client.post("/login", data={"csrf": token, "username": "bench", "password": PASSWORD},
                                 follow_redirects=False)
            assert signed.status_code == 303, signed.text
            deep, depth = "/runs", 1
            while depth < 11:  # the 11th page of the runs list (or the last), by its cursors
                older = re.search(r'href="(/runs\?[^"]*cursor=[^"]+)">Older', client.get(deep).text)
                if older is None:
                    break
                deep, depth = older.group(1).replace("&amp;", "&"), depth + 1
            pages = {
                "projects overview": "/",
                "runs list, first page": "/runs",
                f"runs list, page {depth}": deep,
                "runs list, branch filter": "/runs?branch=main&status=COMPLETED",
                "run page (failures first)": f"/runs/{latest}",
                "test page (history)": f"/projects/{project_id}/tests/{test_id}",
                "flaky tests": f"/projects/{project_id}/flaky",
                "trends (with 5 gate verdicts)": f"/projects/{project_id}/trends",
                "gate page (20 verdicts)": f"/projects/{project_id}/gate",
            }
            missed = False
            for name, path in pages.items():
                times = []
                for _ in range(args.repeat):
                    began = time.perf_counter()
                    r = client.get(path)
                    times.append((time.perf_counter() - began) * 1000)
                    assert r.status_code == 200, (path, r.status_code, r.text[:300])
                median = statistics.median(times)
                missed |= median > TARGET_MS and not path.endswith("/gate")
                print(f"{name:<34} median {median:8.1f} ms   (min {min(times):.1f}, max {max(times):.1f})")
    print("all pages within the target" if not missed else f"a page took longer than {TARGET_MS:.0f} ms")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
