"""A full disk: ingests and uploads that do not fit are answered 507 (or 503) in the one error
shape, nothing already stored is damaged, the server keeps serving reads, and writes work
again as soon as space returns.

Two ways to run out of room, both against the real `qahub serve` process:
- `tmpfs`: the data folder is a small tmpfs (needs root, as on the CI machine), filled up by
  another file, which is then removed: the full disk an operator meets.
- `rlimit`: where mounting is not allowed, the server process gets a file-size limit
  (RLIMIT_FSIZE, SIGXFSZ ignored) just above its files' sizes, later lifted with prlimit.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys

import pytest

from proof_server import ServerProcess
from test_native_api import tiny_png

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _mount_tmpfs(path, size: str) -> bool:
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return False
    path.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                         capture_output=True, text=True)
    return out.returncode == 0


def _fill(folder) -> int:
    """Write a file until the file system says it is full; returns the bytes written."""
    written = 0
    chunk = b"\0" * (64 * 1024)
    with open(folder / "filler", "wb", buffering=0) as out:
        while True:
            try:
                written += out.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
        # Small writes fill the last partial blocks too.
        for size in (4096, 512, 1):
            while True:
                try:
                    written += out.write(b"\0" * size)
                except OSError:
                    break
    return written


def _ignore_sigxfsz() -> None:
    # Without this the kernel kills the server at the limit; ignored, the write fails with EFBIG.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _largest_file(folder) -> int:
    return max((p.stat().st_size for p in folder.rglob("*") if p.is_file()), default=0)


def _ingest(http, project_id: str, tag: str, n: int):
    body = {"project_id": project_id, "run_name": tag,
            "results": [{"title": f"{tag} test {i}", "status": "PASSED", "error_stack": "x" * 300} for i in range(n)]}
    return http.post("/api/v1/ingest", json=body)


def _assert_refused_cleanly(r) -> None:
    assert r.status_code in (503, 507), (r.status_code, r.text[:300])
    body = r.json()
    assert set(body) == {"error", "message"}, body
    assert "nothing was stored" in body["message"]
    assert int(r.headers["retry-after"]) > 0


@pytest.mark.parametrize("mode", ["tmpfs", "rlimit"])
def test_a_full_disk_refuses_writes_cleanly_and_recovers(tmp_path, mode):
    folder = tmp_path / "s"
    data = folder / "data"
    mounted = False
    if mode == "tmpfs":
        mounted = _mount_tmpfs(data, "24m")
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (needs root on Linux); the rlimit variant covers this machine")
    server = ServerProcess(folder, preexec_fn=_ignore_sigxfsz if mode == "rlimit" else None)
    try:
        server.start()
        with server.client() as http:
            project_id = http.post("/api/v1/projects", json={"name": "disk"}).json()["id"]
            stored: dict[str, int] = {}
            for i in range(5):
                r = _ingest(http, project_id, f"before {i}", 200)
                assert r.status_code == 201
                stored[r.json()["run_id"]] = 200
            result_id = http.get(f"/api/v1/runs/{next(iter(stored))}/results", params={"limit": 1}).json()["data"][0]["id"]
            kept = http.post(f"/api/v1/results/{result_id}/attachments",
                             files={"file": ("kept.png", tiny_png(), "image/png")}).json()["data"][0]["id"]

            # Out of room.
            if mode == "tmpfs":
                assert _fill(data) > 0
            else:
                limit = _largest_file(data) + 128 * 1024
                resource.prlimit(server.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

            refused = 0
            for n in (50, 500, 5000, 20000):  # growing until the write cannot fit
                r = _ingest(http, project_id, f"full {n}", n)
                if r.status_code == 201:
                    stored[r.json()["run_id"]] = n  # it fitted: then it must be kept like any other
                else:
                    _assert_refused_cleanly(r)
                    refused += 1
            assert refused, "no ingest was refused: the disk never filled"
            big = tiny_png() + os.urandom(3 * 1024 * 1024)
            r = http.post(f"/api/v1/results/{result_id}/attachments", files={"file": ("big.png", big, "image/png")})
            _assert_refused_cleanly(r)

            # Reads keep working and what was stored is intact.
            assert server.process.poll() is None
            assert http.get("/readyz").status_code == 200
            for run_id, n in stored.items():
                run = http.get(f"/api/v1/runs/{run_id}").json()
                assert run["counts"]["total"] == n
            assert http.get(f"/api/v1/attachments/{kept}").content == tiny_png()

            # Space returns: the same writes now succeed, without a restart.
            if mode == "tmpfs":
                (data / "filler").unlink()
            else:
                resource.prlimit(server.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            r = _ingest(http, project_id, "after", 5000)
            assert r.status_code == 201, r.text[:300]
            stored[r.json()["run_id"]] = 5000
            r = http.post(f"/api/v1/results/{result_id}/attachments", files={"file": ("big.png", big, "image/png")})
            assert r.status_code == 201, r.text[:300]
            assert http.get(f"/api/v1/attachments/{r.json()['data'][0]['id']}").content == big
            for run_id, n in stored.items():
                assert len(http.get(f"/api/v1/runs/{run_id}/results").json()["data"]) == n
        assert server.stop() == 0
        # Every refusal was an answer, never an internal error (background jobs may log their
        # failed attempts while the disk is full; they retry on their next turn).
        assert "unexpected error serving" not in server.log()
        # An upload refused at its commit leaves a file without a row; repair (or the next
        # start) removes it. The database itself needs nothing.
        report = server.check("--repair")
        assert report["integrity"] == ["ok"] and report["ok"], report
    finally:
        server.kill()
        if mounted:
            subprocess.run(["umount", "-l", str(data)], check=False)
