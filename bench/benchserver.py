"""The real `qahub serve` a benchmark measures, the machine it runs on, and a lean HTTP/1.1
client that costs the measurement as little as possible.

Why a hand-written client: a benchmark on two cores shares them with the server, so every
microsecond the client spends is taken from the server. An asyncio stream with keep-alive,
pre-encoded requests and a minimal response parser costs a fraction of a general-purpose
client's per-request overhead.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent

# Rate limits off (a benchmark measures the server, not its limiter), no access log, no
# periodic sweep in the middle of a measurement.
QUIET_CONFIG = (
    '[storage]\ndata_dir = "data"\n[logging]\naccess_log = false\nlevel = "warning"\n'
    "[rate_limits]\ndefault = 0\nqualitypilot_ingest = 0\nqualigate = 0\n"
    "[retention]\nsweep_interval_minutes = 0\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`storage_url` (a PostgreSQL URL) stores in that database instead of the folder's SQLite
    file; several Servers given the same URL are several nodes of one hub."""

    def __init__(self, folder: Path, *, storage_url: str | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = free_port()
        self.config = folder / "qahub.toml"
        config = QUIET_CONFIG
        if storage_url:
            config = config.replace("[storage]\n", f"[storage]\nurl = {json.dumps(storage_url)}\n", 1)
        self.config.write_text(f'[server]\nhost = "127.0.0.1"\nport = {self.port}\n{config}')
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = folder / "data" / "qahub.db"
        out = subprocess.run(self._cmd("keys", "create", "--scope", "admin", "--json"), capture_output=True,
                             text=True, check=True)
        self.key = json.loads(out.stdout)["key"]
        self.process: subprocess.Popen | None = None

    def _cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "qahub_lite", *args, "--config", str(self.config)]

    def start(self) -> None:
        self.process = subprocess.Popen(self._cmd("serve"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        cwd=ROOT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("the server did not become ready")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=600)

    def tenant_id(self) -> str:
        conn = sqlite3.connect(self.db)
        try:
            return conn.execute("SELECT id FROM tenants LIMIT 1").fetchone()[0]
        finally:
            conn.close()


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    return (f"{os.cpu_count()} cores ({model}), {mem_gb:.0f} GB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> "Connection":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> int:
        """Send a pre-encoded request; return the answer's status (the body is read and dropped)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def encode_request(method: str, path: str, key: str, body: bytes | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {key}"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
