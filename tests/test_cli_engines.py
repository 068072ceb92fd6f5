"""The administration commands on either engine: `qahub init`, `migrate`, `keys`, `tenants`,
`users` and `sweep` work the same on a SQLite file and on a PostgreSQL database (chosen by
`[storage] url` or QAHUB_STORAGE_URL), and never print the database's password."""

from __future__ import annotations

import json
import os
import subprocess

import httpx
import pytest

from conftest import qahub_command, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.engines]


def _qahub(*args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([*qahub_command(), *args], capture_output=True, text=True, env={**os.environ, **env},
                         timeout=120)
    if check:
        assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out


def _with_password(url: str) -> str:
    """The test cluster trusts local connections: a password in the URL is accepted and ignored,
    which lets the test check that no command ever prints it."""
    return url.replace("://qahub@", "://qahub:not-to-be-printed@") if url else url


def test_the_admin_commands_work_on_either_engine(tmp_path, storage_url):
    url = _with_password(storage_url)
    env = {"QAHUB_STORAGE_URL": url}
    init = _qahub("init", "--dir", str(tmp_path / "hub"), "--json", env=env)
    created = json.loads(init.stdout)
    config = str(tmp_path / "hub" / "qahub.toml")
    assert created["admin_key"].startswith("qh_")

    listed = _qahub("migrate", "--config", config, "--list", env=env).stdout
    assert "pending" not in listed and listed.count("applied") >= 8

    key = json.loads(_qahub("keys", "create", "--config", config, "--scope", "write", "--name", "ci", "--json",
                            env=env).stdout)
    keys = _qahub("keys", "list", "--config", config, "--json", env=env).stdout
    assert key["id"] in keys
    _qahub("keys", "revoke", "--config", config, key["id"], env=env)
    assert json.loads(_qahub("keys", "list", "--config", config, "--json", env=env).stdout)

    tenant = json.loads(_qahub("tenants", "create", "--config", config, "--with-key", "--json", "Acme",
                               env=env).stdout)
    assert "Acme" in _qahub("tenants", "list", "--config", config, env=env).stdout
    assert tenant["key"].startswith("qh_") if "key" in tenant else True

    user = json.loads(_qahub("users", "create", "--config", config, "--role", "member", "--tenant", "default",
                             "--json", "Bea",
                             env=env).stdout)
    assert user["password"]
    assert "Bea" in _qahub("users", "list", "--config", config, env=env).stdout
    # Usernames are unique whatever their case, on both engines.
    again = _qahub("users", "create", "--config", config, "--tenant", "default", "bea", env=env, check=False)
    assert again.returncode != 0 and "bea" in (again.stderr + again.stdout).lower()

    swept = json.loads(_qahub("sweep", "--config", config, "--json", env=env).stdout)
    assert swept["deleted_results"] == 0

    every_output = init.stdout + init.stderr + listed + keys
    assert "not-to-be-printed" not in every_output


def test_serve_says_where_the_data_is_without_the_password(tmp_path, storage_url):
    server = start_server(tmp_path / "s", storage_url=_with_password(storage_url))
    try:
        assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200
        with server.client() as http:
            assert http.post("/api/v1/projects", json={"name": "Shop"}).status_code == 201
    finally:
        server.stop()
    log = server.log()
    assert "qahub-lite serving on" in log and "not-to-be-printed" not in log
    if storage_url:
        assert "postgresql://qahub:***@" in log
