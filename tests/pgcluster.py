"""A throw-away PostgreSQL cluster for the tests: `initdb` into a temporary folder, `postgres` on a
free port of 127.0.0.1 (and a Unix socket in that folder), stopped and deleted at the end.

No service the machine must already run: the binaries come from the distribution's package
(`apt-get install postgresql`; `.ci/run` installs it when missing). PostgreSQL refuses to run as
root, so under root the cluster runs as the `postgres` user the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class ClusterUnavailable(RuntimeError):
    """PostgreSQL's server binaries are not installed, or cannot run here."""


def bindir() -> Path:
    """The folder of initdb/pg_ctl: on PATH, else pg_config's, else the newest under
    /usr/lib/postgresql (Debian keeps them off PATH)."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out and (Path(out) / "initdb").exists():
            return Path(out)
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if versions:
        return Path(versions[-1]).parent
    raise ClusterUnavailable("PostgreSQL server binaries not found: install the distribution's `postgresql` package")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """One cluster; `url` connects as its superuser to the database `qahub`.

    `durable`: fsync, synchronous commits and full-page writes on, as a production server runs,
    for the tests whose point is what survives a crash (tests/test_proof_crash.py) and for a fair
    benchmark against SQLite's synchronous=FULL (bench/bench_engines.py). Off by
    default: the other tests want speed, and a crashed test cluster is thrown away anyway."""

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable
        self.bin = bindir()
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="qahub-pg-"))
        self.data = self.folder / "data"
        self.user = "qahub"
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise ClusterUnavailable("running as root and no `postgres` user to run PostgreSQL as") from exc
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self._run_as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/qahub"

    def database_url(self, name: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def _cmd(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*self._run_as, str(self.bin / name), *args], capture_output=True, text=True,
                              check=check, timeout=120)

    def start(self) -> "Cluster":
        self._cmd("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                  "--locale=C", *([] if self.durable else ["--no-sync"]))
        # Tests want speed, not durability: a crashed test cluster is thrown away anyway. The
        # crash test that needs durability starts its own cluster with `durable=True`.
        safety = ("-c fsync=on -c synchronous_commit=on -c full_page_writes=on" if self.durable
                  else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.folder} "
                   f"{safety} -c max_connections=200")
        self._cmd("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "-t", "60", "start")
        self.create_database("qahub")
        return self

    def create_database(self, name: str) -> str:
        self._cmd("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name)
        return self.database_url(name)

    def fresh_database(self) -> str:
        """A new database with every migration applied, copied from a template migrated once per
        cluster (CREATE DATABASE ... TEMPLATE takes milliseconds; migrating takes longer)."""
        import psycopg

        from qahub_lite.db.engine import PostgresqlEngine

        if not getattr(self, "_template", False):
            self.create_database("qahub_template")
            PostgresqlEngine(self.database_url("qahub_template")).migrate()
            self._template = True
        self._databases = getattr(self, "_databases", 0) + 1
        name = f"t{self._databases}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE qahub_template")
        return self.database_url(name)

    def stop(self) -> None:
        if self.data.exists():
            self._cmd("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)

    def log(self) -> str:
        path = self.folder / "log"
        return path.read_text(errors="replace") if path.exists() else ""


def wait_ready(url: str, timeout_s: float = 30) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
