"""First start: the database, a default tenant, its first admin key and the dashboard's first
admin user, whose secrets are shown once."""

from __future__ import annotations

from pathlib import Path

import msgspec

from .config import Config
from .core import tenancy, users
from .db.connection import private_dir
from .db import engine as engines
from .db.database import direct_connection


class Bootstrap(msgspec.Struct):
    tenant_id: str
    admin_key: str | None  # only on the start that created it
    # The dashboard user `admin`'s generated password, only on the start that created it.
    admin_password: str | None = None


def ensure_initialized(config: Config, tenant_name: str = "default", *, first_user: bool = False) -> Bootstrap:
    """Create the data folder and database, apply migrations, and on an empty database create
    the default tenant with an admin key. Returns the key only when it was just created.
    With `first_user` (serve and init, the commands that print it), a server without dashboard
    users (a new one, or one from before users existed) gets the user `admin`, admin of the
    first tenant; its password is returned only then. Other commands leave that to them, so
    that a password nobody will see is not generated (nor its scrypt cost paid)."""
    private_dir(config.data_dir)
    private_dir(config.attachments_dir)
    engines.from_config(config).migrate()
    with direct_connection(config) as conn:
        existing = tenancy.list_tenants(conn)
        if existing:
            password = users.ensure_first_admin(conn, existing[0].id) if first_user else None
            return Bootstrap(existing[0].id, None, password)
        tenant = tenancy.create_tenant(conn, tenant_name)
        key = tenancy.create_key(conn, tenant.id, scope="admin", name="first admin key")
        password = users.ensure_first_admin(conn, tenant.id) if first_user else None
        return Bootstrap(tenant.id, key.key, password)


def write_default_config(target_dir: Path, text: str) -> Path:
    target_dir.mkdir(parents=True, exist_ok=True)
    path = target_dir / "qahub.toml"
    if path.exists():
        raise FileExistsError(f"{path} exists already; not overwriting it")
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
