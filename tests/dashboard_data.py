"""A small, realistic history for dashboard tests, sent through the real API: a project with
library test cases, a dozen runs on `main` with a flaky test, a latest run whose checkout test
fails for the first time (a new failure) with a PNG screenshot and a text log attached, a run
on a feature branch, and a run that is still going.

`seed()` works with any httpx-style client (Litestar's TestClient or httpx against a live
server). With `database` (a config, or a SQLite file), runs are spread over the last days (and their days re-aggregated by
core/trends.py), so trend charts have more than one point.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

# A real traceback's length: the run page shows its first lines and folds the rest.
STACK = (
    'Traceback (most recent call last):\n  File "tests/test_checkout.py", line 42, in test_checkout\n'
    "    response = client.post('/checkout', json=cart)\n"
    '  File "shop/testing/client.py", line 88, in post\n    return self._send("POST", path, json)\n'
    '  File "shop/testing/client.py", line 120, in _send\n    reply = self.app.handle(request)\n'
    '  File "shop/app.py", line 31, in handle\n    return route(request)\n'
    '  File "tests/test_checkout.py", line 44, in test_checkout\n'
    "    assert response.status_code == 200\nAssertionError: expected 200, got 500"
)


def png(width: int = 160, height: int = 90) -> bytes:
    """A real PNG (a red bar on white), made here so tests need no image files."""
    rows = []
    for y in range(height):
        row = bytearray([0])  # filter: none
        for x in range(width):
            red = 30 <= y < 60 and 20 <= x < 140
            row += bytes((220, 40, 50) if red else (250, 250, 250))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(
        b"IEND", b"")


@dataclass
class Seeded:
    project_id: str
    latest_run_id: str
    latest_short_id: str
    latest_url: str  # the ingest answer's `url`
    running_short_id: str
    checkout_result_id: str
    checkout_test_id: int
    flaky_title: str
    image_attachment_id: str
    text_attachment_id: str


def _ingest(client, headers, body) -> dict:
    r = client.post("/api/v1/ingest", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def seed(client, headers: dict, *, runs_on_main: int = 12, database=None) -> Seeded:
    r = client.post("/api/v1/projects", json={"name": "Web shop", "repo": "acme/shop"}, headers=headers)
    assert r.status_code == 201, r.text
    project = r.json()
    for code, title in (("TC-1", "Login works"), ("TC-2", "Checkout completes")):
        r = client.post(f"/api/v1/projects/{project['id']}/test-cases", json={"code": code, "title": title},
                        headers=headers)
        assert r.status_code == 201, r.text
    ci = {"branch": "main", "repository": "acme/shop", "provider": "github-actions",
          "build_url": "https://ci.example.test/builds/1"}
    run_ids = []
    for i in range(runs_on_main):
        search_passes = i % 2 == 0  # flips every run: flaky
        results = [
            {"test_case_code": "TC-1", "status": "PASSED", "duration_ms": 800 + 10 * i},
            {"test_case_code": "TC-2", "status": "PASSED", "duration_ms": 2400 + 30 * i},
            {"title": "search finds shoes", "suite": "catalog", "status": "PASSED" if search_passes else "FAILED",
             "duration_ms": 1200, **({} if search_passes else {"error_message": "timeout waiting for results"})},
            {"title": "cart keeps items", "suite": "cart", "status": "PASSED", "duration_ms": 300,
             **({"previous_attempts": [{"status": "FAILED", "error_message": "stale element"}]} if i % 4 == 1 else {})},
        ]
        answer = _ingest(client, headers, {
            "project_id": project["id"], "run_name": f"nightly #{i + 1}", "environment": "staging",
            "framework": "pytest", "ci": {**ci, "commit": f"{i:02d}" + "ab3f9e1c2d" * 3},
            "duration_ms": 60_000 + 900 * i,
            "results": results,
        })
        run_ids.append(answer["run_id"])
    latest = _ingest(client, headers, {
        "project_id": project["id"], "run_name": "nightly #latest", "environment": "staging", "framework": "pytest",
        "ci": {**ci, "commit": "9f8e7d6c5b4a39281706", "pr_number": "42"}, "duration_ms": 71_000,
        "results": [
            {"test_case_code": "TC-1", "status": "PASSED", "duration_ms": 900},
            {"test_case_code": "TC-2", "status": "FAILED", "duration_ms": 3100,
             "error_message": "expected 200, got 500", "error_stack": STACK, "stdout": "POST /checkout -> 500",
             "attempts": 2, "previous_attempts": [{"status": "FAILED", "duration_ms": 2900,
                                                   "error_message": "expected 200, got 502"}]},
            {"title": "search finds shoes", "suite": "catalog", "status": "PASSED", "duration_ms": 1100},
            {"title": "cart keeps items", "suite": "cart", "status": "PASSED", "duration_ms": 310},
        ],
    })
    results = client.get(f"/api/v1/runs/{latest['run_id']}/results", headers=headers).json()["data"]
    checkout = next(r for r in results if r["test_case_code"] == "TC-2")
    attached = {}
    for name, content, kind in (("checkout.png", png(), "image/png"), ("server.log", b"500 Internal Server Error\n"
                                b"  at CheckoutController.submit\n", "text/plain")):
        r = client.post(f"/api/v1/results/{checkout['id']}/attachments", files={"file": (name, content, kind)},
                        headers=headers)
        assert r.status_code == 201, r.text
        attached[name] = r.json()["data"][0]["id"]
    _ingest(client, headers, {
        "project_id": project["id"], "run_name": "feature: new search", "ci": {**ci, "branch": "feature/search"},
        "results": [{"title": "search finds shoes", "suite": "catalog", "status": "PASSED"}],
    })
    running = _ingest(client, headers, {
        "project_id": project["id"], "run_name": "smoke (running)", "status": "RUNNING", "ci": ci,
        "results": [{"test_case_code": "TC-1", "status": "PASSED"}],
    })
    if database is not None:
        spread_over_days([*run_ids, latest["run_id"]], database)
    return Seeded(
        project["id"], latest["run_id"], latest["short_id"], latest["url"], running["short_id"], checkout["id"],
        checkout["test_id"], "search finds shoes", attached["checkout.png"], attached["server.log"],
    )


def spread_over_days(run_ids: list[str], database) -> None:
    """Move the runs back in time, one a day, oldest first, keeping their order, and
    re-aggregate the days they left and joined (core/trends.py, as a finished run does)."""
    from qahub_lite.core import trends
    from qahub_lite.db.database import direct_connection

    day = 86_400_000
    with direct_connection(database) as conn:
        for age, run_id in enumerate(reversed(run_ids)):
            shift = age * day
            conn.execute(
                "UPDATE runs SET created_at = created_at - ?, started_at = started_at - ?, "
                "finished_at = finished_at - ? WHERE id = ?", (shift, shift, shift, run_id),
            )
            conn.execute("UPDATE results SET created_at = created_at - ?, updated_at = updated_at - ? WHERE run_id = ?",
                         (shift, shift, run_id))
        conn.execute("DELETE FROM daily_stats")
        for run_id in run_ids:
            trends.refresh_day_of_run(conn, run_id)
