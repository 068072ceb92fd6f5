"""Operations end to end, as an operator does them: the real `qahub serve` process (or the
frozen executable when QAHUB_EXE names it), `qahub backup` while it serves and ingests,
`qahub restore` refused while it runs and accepted once it stopped, and one process per data
folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import threading
import time

import httpx
import pytest
from conftest import qahub_command
from seeds.examples import seed000_ingest_body
from test_native_api import tiny_png

pytestmark = pytest.mark.e2e


def serving_pid(server) -> int:
    """The pid in the data folder's lock: the server process itself, or, for the frozen
    executable, its child (PyInstaller's onefile bootloader runs Python as a child process)."""
    pid = json.loads((server.folder / "data" / "qahub.lock").read_text())["pid"]
    if pid != server.process.pid:
        parent = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        assert parent == server.process.pid, (pid, parent, server.process.pid)
    return pid


def qahub(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([*qahub_command(), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out


def test_backup_while_serving_and_restore(tmp_path, server_factory):
    server = server_factory(tmp_path / "site")
    cfg = str(server.config_path)
    with server.client() as http:
        project = http.post("/api/v1/projects", json={"name": "Shop"}).json()
        for code, title in (("TC-001", "Login"), ("TC-002", "Checkout")):
            assert http.post(f"/api/v1/projects/{project['id']}/test-cases",
                             json={"code": code, "title": title}).status_code == 201
        body = seed000_ingest_body()
        body["project_id"] = project["id"]
        seeded = http.post("/api/v1/ingest", json=body).json()["run_id"]
        result_id = http.get(f"/api/v1/runs/{seeded}/results").json()["data"][0]["id"]
        png = tiny_png()
        attachment = http.post(f"/api/v1/results/{result_id}/attachments",
                               files={"file": ("shot.png", png, "image/png")}).json()["data"][0]["id"]

        # Ingests keep arriving while the backup runs.
        stop, answers = threading.Event(), []

        def keep_ingesting():
            with httpx.Client(base_url=server.url, headers=server.h(), timeout=30) as own:
                while not stop.is_set():
                    r = own.post("/api/v1/ingest", json={"project_id": project["id"], "results": [
                        {"title": f"busy {i}", "status": "PASSED"} for i in range(100)]})
                    answers.append(r.status_code)

        worker = threading.Thread(target=keep_ingesting)
        worker.start()
        try:
            report = json.loads(qahub("backup", "--config", cfg, "--to", str(tmp_path / "b.tar"), "--json").stdout)
        finally:
            stop.set()
            worker.join()
        assert answers and set(answers) == {201}  # serving went on, unhindered
        assert report["attachments"] == 1 and (tmp_path / "b.tar").exists()
        after = http.post("/api/v1/ingest", json={"project_id": project["id"], "results": [
            {"title": "after the backup", "status": "PASSED"}]}).json()["run_id"]

        refused = qahub("restore", str(tmp_path / "b.tar"), "--config", cfg, check=False)
        assert refused.returncode == 1
        pid = serving_pid(server)
        assert f"pid {pid}" in refused.stderr and f"kill -TERM {pid}" in refused.stderr
        assert "systemctl stop qahub" in refused.stderr
        assert http.get(f"/api/v1/runs/{after}").status_code == 200  # nothing was touched
    assert server.stop() == 0

    restored = qahub("restore", str(tmp_path / "b.tar"), "--config", cfg)
    assert "pre-restore-" in restored.stdout
    assert qahub("check", "--config", cfg).returncode == 0

    again = server_factory(tmp_path / "site")  # a new port, the same (restored) data folder
    try:
        with again.client() as http:
            results = http.get(f"/api/v1/runs/{seeded}/results").json()["data"]
            assert sorted(r["status"] for r in results) == ["FAILED", "PASSED", "PASSED"]
            assert http.get(f"/api/v1/attachments/{attachment}").content == png
            assert http.get(f"/api/v1/runs/{after}").status_code == 404  # made after the snapshot
    finally:
        assert again.stop() == 0
    conn = sqlite3.connect(tmp_path / "site" / "data" / "qahub.db")
    runs = conn.execute("SELECT total, (SELECT count(*) FROM results x WHERE x.run_id = r.id) FROM runs r").fetchall()
    assert all(total == counted for total, counted in runs)


def test_one_server_per_data_folder(live_server):
    second = subprocess.run(
        [*qahub_command(), "serve", "--config", str(live_server.config_path), "--port", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert second.returncode == 2
    assert f"a qahub server (pid {serving_pid(live_server)}, {live_server.url})" in second.stderr
    assert httpx.get(f"{live_server.url}/readyz").status_code == 200


def test_kill_9_leaves_no_process_and_no_lock_behind(tmp_path, server_factory):
    """kill -9 of what was started (for the executable: its bootloader, which cannot forward
    SIGKILL) takes the server with it, and the kernel drops its data-folder lock: a new server
    starts on the same folder at once."""
    server = server_factory(tmp_path / "site")
    pid = serving_pid(server)
    # A killed bootloader cannot remove the folder it unpacked into (docs/operations.md): this
    # test removes it itself, so that CI's /tmp does not fill up with them.
    unpacked = set(re.findall(r"\s(/\S*?/_MEI[^/\s]+)/", open(f"/proc/{pid}/maps").read()))
    server.process.kill()
    server.process.wait(10)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = os.path.exists(f"/proc/{pid}") and "Z" not in open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1][:3]
    assert not alive, f"the server (pid {pid}) outlived kill -9 of {server.process.pid}"
    for folder in unpacked:
        shutil.rmtree(folder, ignore_errors=True)
    again = server_factory(tmp_path / "site")
    assert again.stop() == 0


def test_backup_and_restore_say_what_went_wrong(tmp_path):
    from conftest import write_config

    cfg = str(write_config(tmp_path / "empty"))
    nothing = qahub("backup", "--config", cfg, check=False)
    assert nothing.returncode == 1 and "no database at" in nothing.stderr and "Traceback" not in nothing.stderr
    missing = qahub("restore", str(tmp_path / "nope.tar"), "--config", cfg, check=False)
    assert missing.returncode == 1 and "nothing was changed" in missing.stderr and "no such file" in missing.stderr
    (tmp_path / "junk.tar").write_bytes(b"not a tar file at all" * 100)
    junk = qahub("restore", str(tmp_path / "junk.tar"), "--config", cfg, check=False)
    assert junk.returncode == 1 and "not a qahub backup" in junk.stderr
    assert not (tmp_path / "empty" / "data" / "qahub.db").exists()
