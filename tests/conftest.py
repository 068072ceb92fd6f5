"""Shared fixtures. Everything is real: a SQLite file in a temporary folder, the real app
through Litestar's test client, and for end-to-end tests the real `qahub serve` process on a
free port, spoken to over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from qahub_lite.bootstrap import ensure_initialized
from qahub_lite.config import Config, load_config

ROOT = Path(__file__).resolve().parent.parent
SEEDS_DIR = Path(__file__).resolve().parent / "seeds"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder: Path, extra: str = "", port: int = 0, storage_url: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "qahub.toml"
    path.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n[storage]\ndata_dir = "data"\nurl = "{storage_url}"\n'
        f'[logging]\naccess_log = false\n{extra}',
        encoding="utf-8",
    )
    return path


# --- the two storage engines -------------------------------------------------------------------
# A test module marked `pytestmark = pytest.mark.engines` runs each test that uses the `engine`
# fixture (through `config`, `api`, `live_server`...) once on SQLite and once on PostgreSQL: a
# throw-away cluster per test process (tests/pgcluster.py) and a fresh, migrated database per
# test. Without PostgreSQL's binaries the PostgreSQL half is skipped and says why. A test that
# concerns one engine only says so: @pytest.mark.parametrize("engine", ["postgresql"], indirect=True).
ENGINES = ("sqlite", "postgresql")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "engines: runs on SQLite and on PostgreSQL (the engine fixture)")


def pytest_generate_tests(metafunc) -> None:
    chosen = any("engine" in str(m.args[0]) for m in metafunc.definition.iter_markers("parametrize"))
    if "engine" in metafunc.fixturenames and metafunc.definition.get_closest_marker("engines") and not chosen:
        # Module scope: a module's tests run on one engine, then on the other, so that a
        # module-scoped server (module_storage_url) is started once per engine.
        metafunc.parametrize("engine", ENGINES, indirect=True, scope="module")


@pytest.fixture(scope="module")
def engine(request) -> str:
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="session")
def pg_cluster():
    from pgcluster import Cluster, ClusterUnavailable

    try:
        cluster = Cluster().start()
    except ClusterUnavailable as exc:
        pytest.skip(f"PostgreSQL tests need its server binaries: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture
def storage_url(engine: str, request) -> str:
    """'' for SQLite (the data folder's file); a fresh PostgreSQL database's URL otherwise."""
    if engine == "sqlite":
        return ""
    return request.getfixturevalue("pg_cluster").fresh_database()


@pytest.fixture(scope="module")
def module_storage_url(engine: str, request) -> str:
    """`storage_url` for module-scoped servers: one database per module and engine."""
    if engine == "sqlite":
        return ""
    return request.getfixturevalue("pg_cluster").fresh_database()


class OpenDatabase:
    """A migrated Database of the test's engine, opened on an event loop of its own: one node's
    worth of storage, for tests that drive the storage layer without a server."""

    def __init__(self, config: Config) -> None:
        import asyncio

        from qahub_lite.db.database import Database

        self.loop = asyncio.new_event_loop()
        self.db = Database.from_config(config)
        self.run(self.db.open())

    def run(self, awaitable):
        return self.loop.run_until_complete(awaitable)

    def close(self) -> None:
        self.run(self.db.close())
        self.loop.close()


def run_sql(config: Config, sql: str, params=()) -> list:
    """Run one statement on the hub's database, whichever engine, in a committed write
    transaction (what tests use to age rows or look under the API); returns its rows."""
    from qahub_lite.db.database import direct_connection

    with direct_connection(config) as conn:
        cur = conn.execute(sql, params)
        return [tuple(row) for row in cur.fetchall()] if cur.description else []


@pytest.fixture
def config(tmp_path: Path, storage_url: str) -> Config:
    return load_config(write_config(tmp_path, storage_url=storage_url), environ={})


@dataclass
class Api:
    """The app behind Litestar's test client, with the first admin key of the default tenant."""

    client: object
    config: Config
    admin_key: str
    tenant_id: str
    keys: dict = field(default_factory=dict)

    def h(self, key: str | None = None) -> dict:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    def get(self, path, key=None, **kw):
        return self.client.get(path, headers=self.h(key), **kw)

    def post(self, path, json=None, key=None, **kw):
        return self.client.post(path, json=json, headers=self.h(key), **kw)

    def put(self, path, json=None, key=None, **kw):
        return self.client.put(path, json=json, headers=self.h(key), **kw)

    def patch(self, path, json=None, key=None, **kw):
        return self.client.patch(path, json=json, headers=self.h(key), **kw)

    def delete(self, path, key=None, **kw):
        return self.client.delete(path, headers=self.h(key), **kw)

    def project(self, name: str = "Web shop", **fields) -> dict:
        r = self.post("/api/v1/projects", {"name": name, **fields})
        assert r.status_code == 201, r.text
        return r.json()

    def test_case(self, project_id: str, title: str, code: str | None = None) -> dict:
        body = {"title": title, **({"code": code} if code else {})}
        r = self.post(f"/api/v1/projects/{project_id}/test-cases", body)
        assert r.status_code == 201, r.text
        return r.json()


def make_api(config: Config):
    from litestar.testing import TestClient

    from qahub_lite.app import create_app

    boot = ensure_initialized(config)
    app = create_app(config)
    return TestClient(app=app, raise_server_exceptions=False), boot


@pytest.fixture
def api(config: Config):
    client, boot = make_api(config)
    with client:
        yield Api(client, config, boot.admin_key, boot.tenant_id)


@dataclass
class LiveServer:
    url: str
    admin_key: str
    folder: Path
    config_path: Path
    process: subprocess.Popen
    log_path: Path

    def h(self, key: str | None = None) -> dict:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.h(), timeout=30)

    def stop(self, sig=signal.SIGTERM, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def qahub_command() -> list[str]:
    """How tests start the program: the frozen executable when QAHUB_EXE names one (CI's
    smoke run), else this interpreter with the package."""
    exe = os.environ.get("QAHUB_EXE")
    return [exe] if exe else [sys.executable, "-m", "qahub_lite"]


def start_server(folder: Path, extra_config: str = "", env: dict | None = None, storage_url: str = "") -> LiveServer:
    port = free_port()
    cfg = write_config(folder, extra_config, port=port, storage_url=storage_url)
    init = subprocess.run(
        [*qahub_command(), "keys", "create", "--scope", "admin", "--config", str(cfg), "--json"],
        capture_output=True, text=True, check=True, env={**os.environ, **(env or {})},
    )
    key = json.loads(init.stdout)["key"]
    log_path = folder / "server.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [*qahub_command(), "serve", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})}, cwd=folder,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60  # a loaded two-core machine with PostgreSQL beside it once took over 30 s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return LiveServer(url, key, folder, cfg, proc, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server did not become ready:\n{log_path.read_text()}")


@pytest.fixture
def live_server(tmp_path: Path, storage_url: str):
    server = start_server(tmp_path / "server", storage_url=storage_url)
    yield server
    server.stop()


@pytest.fixture
def server_factory(storage_url: str):
    """`start_server` for tests that start, signal or restart servers themselves: whatever is
    still running when the test ends (a failed assertion half-way) is stopped, not orphaned.
    On PostgreSQL every server it starts shares the test's database (several nodes)."""
    started: list[LiveServer] = []

    def start(folder: Path, extra_config: str = "", env: dict | None = None) -> LiveServer:
        started.append(start_server(folder, extra_config, env, storage_url=storage_url))
        return started[-1]

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()
