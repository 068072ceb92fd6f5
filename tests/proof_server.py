"""A real `qahub serve` process that the proof tests can kill, starve and start again on the
same port and data folder, as an operator's machine would after a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from conftest import free_port, qahub_command

# Limits off and the hourly jobs quiet: proofs must measure the server, not its rate limiter.
DEFAULTS = {
    "server": {"host": "127.0.0.1"},
    "storage": {"data_dir": "data"},
    "logging": {"access_log": False},
    "rate_limits": {"default": 0, "qualitypilot_ingest": 0, "qualigate": 0},
    "retention": {"sweep_interval_minutes": 0},
}


def render_config(port: int, overrides: dict[str, dict] | None = None) -> str:
    sections = {name: dict(values) for name, values in DEFAULTS.items()}
    for name, values in (overrides or {}).items():
        sections.setdefault(name, {}).update(values)
    sections["server"]["port"] = port
    # JSON scalars (strings, integers, booleans) are valid TOML values.
    return "".join(f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
                   for name, values in sections.items())


class ServerProcess:
    def __init__(self, folder: Path, config: dict[str, dict] | None = None, *, env: dict | None = None,
                 preexec_fn=None) -> None:
        """`config`: qahub.toml settings by section, over the defaults above."""
        self.folder = folder
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.config_path = folder / "qahub.toml"
        self.config_path.write_text(render_config(self.port, config), encoding="utf-8")
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.preexec_fn = preexec_fn
        self.process: subprocess.Popen | None = None
        self.log_path = folder / "server.log"
        self.starts = 0
        out = self.cli("keys", "create", "--scope", "admin", "--json")
        self.admin_key = json.loads(out.stdout)["key"]

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*qahub_command(), *args, "--config", str(self.config_path)], capture_output=True, text=True,
            check=check, env=self.env,
        )

    def headers(self, key: str | None = None) -> dict:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    def client(self, key: str | None = None, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(key), timeout=timeout)

    def start(self, timeout: float = 30) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*qahub_command(), "serve", "--config", str(self.config_path)], stdout=log,
                stderr=subprocess.STDOUT, env=self.env, cwd=self.folder, preexec_fn=self.preexec_fn,
            )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        self.process.kill()
        raise RuntimeError(f"server did not become ready:\n{self.log()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a power cut for the process."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(15)

    def stop(self, timeout: float = 20) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return self.process.returncode

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def check(self, *extra: str) -> dict:
        """`qahub check --json` as an operator would run it."""
        out = self.cli("check", "--json", *extra, check=False)
        return json.loads(out.stdout)
