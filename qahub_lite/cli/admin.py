"""Administration commands that work on the database directly, beside a live server or not:
init, keys, tenants, sweep, migrate, check, version."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import msgspec

from .. import __version__
from ..core.retention_policy import describe as describe_retention
from .common import add_config_option, load, load_existing


def _fail(message: str, code: int = 1):
    from . import CliError

    raise CliError(message, code)


def _print_json(obj) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(obj)).decode() + "\n")


def register(commands) -> None:
    p = commands.add_parser("init", help="write a qahub.toml and create the data folder, database and admin key",
                            description="Write a commented qahub.toml into a folder, create its data folder and "
                            "database, a tenant, an admin API key and the dashboard user `admin` (key and "
                            "password shown once).")
    p.add_argument("--dir", default=".", help="folder to initialise (default: the current folder)")
    p.add_argument("--tenant", default="default", help="name of the first tenant (default: default)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: {config, data_dir, admin_key, admin_user, admin_password}")
    p.set_defaults(handler=cmd_init)

    keys = commands.add_parser("keys", help="create, list and revoke API keys",
                               description="Manage API keys (qh_<id>_<secret>). The secret is shown once.")
    ks = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    kc = ks.add_parser("create", help="create a key and print it once")
    add_config_option(kc)
    kc.add_argument("--scope", choices=["read", "write", "admin"], required=True, help="what the key may do")
    kc.add_argument("--project", metavar="ID", help="limit the key to one project")
    kc.add_argument("--tenant", help="tenant id or name (default: the only tenant)")
    kc.add_argument("--name", default="", help="a label to recognise the key by")
    kc.add_argument("--json", action="store_true", help="print {key, id, scope, ...} as JSON")
    kc.set_defaults(handler=cmd_keys_create)
    kl = ks.add_parser("list", help="list keys (never their secrets)")
    add_config_option(kl)
    kl.add_argument("--tenant", help="only this tenant's keys")
    kl.add_argument("--json", action="store_true", help="print JSON")
    kl.set_defaults(handler=cmd_keys_list)
    kr = ks.add_parser("revoke", help="revoke a key; takes effect on its next request")
    add_config_option(kr)
    kr.add_argument("key_id", metavar="KEY_ID", help="the key's id (or the whole key)")
    kr.set_defaults(handler=cmd_keys_revoke)

    tenants = commands.add_parser("tenants", help="create, list, suspend and resume tenants",
                                  description="Tenants are organisations; nothing of one is visible to another.")
    ts = tenants.add_subparsers(dest="tenants_command", metavar="ACTION", required=True)
    tc = ts.add_parser("create", help="create a tenant (and an admin key for it with --with-key)")
    add_config_option(tc)
    tc.add_argument("name", help="the tenant's unique name")
    tc.add_argument("--with-key", action="store_true", help="also create an admin key and print it once")
    tc.add_argument("--json", action="store_true", help="print JSON")
    tc.set_defaults(handler=cmd_tenants_create)
    tl = ts.add_parser("list", help="list tenants")
    add_config_option(tl)
    tl.add_argument("--json", action="store_true", help="print JSON")
    tl.set_defaults(handler=cmd_tenants_list)
    for action, flag, text in (("suspend", True, "suspend a tenant: its keys get 403"),
                               ("resume", False, "lift a suspension")):
        t = ts.add_parser(action, help=text)
        add_config_option(t)
        t.add_argument("tenant", help="tenant id or name")
        t.set_defaults(handler=cmd_tenants_suspend, suspended=flag)

    s = commands.add_parser("sweep", help="delete expired unlinked results now",
                            description="Delete unlinked results older than retention.unlinked_days, with their "
                            "attachments, in batches. Safe beside a running server.")
    add_config_option(s)
    s.add_argument("--days", type=int, help="override retention.unlinked_days for this sweep")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(handler=cmd_sweep)

    m = commands.add_parser("migrate", help="apply or list database migrations",
                            description="Apply pending migrations (serve does this at start), or list them.")
    add_config_option(m)
    m.add_argument("--list", action="store_true", help="list migrations and whether each is applied")
    m.set_defaults(handler=cmd_migrate)

    c = commands.add_parser("check", help="check the database and attachment files",
                            description="PRAGMA integrity_check, attachment files against rows, SQLite version "
                            "and features; on PostgreSQL ([storage] url) the server's version, the migrations "
                            "applied and pending, and attachment files against rows. Exits 1 on any problem.")
    add_config_option(c)
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.add_argument("--repair", action="store_true",
                   help="first remove attachment files that no row names and uploads a crash cut short "
                   "(safe beside a live server); rows without files are only reported")
    c.set_defaults(handler=cmd_check)

    v = commands.add_parser("version", help="print the version", description="Print qahub-lite's version.")
    v.set_defaults(handler=lambda args: print(f"qahub-lite {__version__}") or 0)


def cmd_init(args: argparse.Namespace) -> int:
    from ..bootstrap import ensure_initialized, write_default_config
    from ..config import ConfigError, default_config_text, load_config

    target = Path(args.dir)
    try:
        path = write_default_config(target, default_config_text())
    except FileExistsError as exc:
        _fail(str(exc))
    try:
        config = load_config(path)
    except ConfigError as exc:
        _fail(f"config error: {exc}", 2)
    boot = ensure_initialized(config, tenant_name=args.tenant, first_user=True)
    if boot.admin_key is None:
        _fail(f"{_storage(config)} is initialised already; create keys with `qahub keys create`")
    if args.json:
        _print_json({"config": str(path.resolve()), "data_dir": str(config.data_dir), "admin_key": boot.admin_key,
                     "admin_user": "admin", "admin_password": boot.admin_password,
                     "retention": describe_retention(config.retention)})
    else:
        print(f"Wrote {path}\nCreated {_storage(config)}\nAdmin key (shown once, store it now): {boot.admin_key}")
        print(f"Dashboard user `admin`, password (shown once, store it now): {boot.admin_password}")
        print(f"Retention: {describe_retention(config.retention)}")
        print(f"Start the server with: qahub serve --config {path}")
    return 0


def _storage(config) -> str:
    """Where the hub's database is, for messages (a PostgreSQL URL without its password)."""
    from ..db import engine as engines

    return engines.from_config(config).describe()


def _db(args):
    from ..bootstrap import ensure_initialized
    from ..db.database import direct_connection

    config = load_existing(args)
    ensure_initialized(config)
    return direct_connection(config)


def _tenant(conn, name: str | None):
    from ..core import tenancy
    from ..core.errors import NotFound

    if name:
        try:
            return tenancy.find_tenant(conn, name)
        except NotFound as exc:
            _fail(exc.message)
    tenants = tenancy.list_tenants(conn)
    if len(tenants) != 1:
        _fail(f"there are {len(tenants)} tenants: say which with --tenant", 2)
    return tenants[0]


def cmd_keys_create(args: argparse.Namespace) -> int:
    from ..core import tenancy
    from ..core.errors import DomainError

    with _db(args) as conn:
        tenant = _tenant(conn, args.tenant)
        try:
            new = tenancy.create_key(conn, tenant.id, scope=args.scope, name=args.name, project_id=args.project)
        except DomainError as exc:
            _fail(exc.message)
    if args.json:
        _print_json({"key": new.key, **msgspec.structs.asdict(new.info)})
    else:
        print(new.key)
        print(f"({args.scope} key {new.info.id} for tenant {tenant.name}; shown once)", file=sys.stderr)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from ..core import tenancy

    with _db(args) as conn:
        tenant_id = _tenant(conn, args.tenant).id if args.tenant else None
        keys = tenancy.list_keys(conn, tenant_id)
    if args.json:
        _print_json(keys)
        return 0
    print(f"{'ID':<14}{'SCOPE':<7}{'STATE':<9}{'PROJECT':<38}{'LAST USED':<26}NAME")
    for k in keys:
        state = "revoked" if k.revoked else "active"
        print(f"{k.id:<14}{k.scope:<7}{state:<9}{(k.project_id or '-'):<38}{(k.last_used_at or 'never'):<26}{k.name}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from ..core import tenancy
    from ..core.errors import NotFound

    with _db(args) as conn:
        try:
            info = tenancy.revoke_key(conn, args.key_id)
        except NotFound as exc:
            _fail(exc.message)
    print(f"revoked key {info.id}")
    return 0


def cmd_tenants_create(args: argparse.Namespace) -> int:
    from ..core import tenancy
    from ..core.errors import DomainError

    with _db(args) as conn:
        try:
            tenant = tenancy.create_tenant(conn, args.name)
            key = tenancy.create_key(conn, tenant.id, scope="admin", name="first admin key") if args.with_key else None
        except DomainError as exc:
            _fail(exc.message)
    if args.json:
        _print_json({**msgspec.structs.asdict(tenant), "admin_key": key.key if key else None})
    else:
        print(f"created tenant {tenant.name} ({tenant.id})")
        if key:
            print(f"admin key (shown once): {key.key}")
    return 0


def cmd_tenants_list(args: argparse.Namespace) -> int:
    from ..core import tenancy

    with _db(args) as conn:
        tenants = tenancy.list_tenants(conn)
    if args.json:
        _print_json(tenants)
        return 0
    for t in tenants:
        print(f"{t.id}  {'suspended' if t.suspended else 'active':<10} {t.name}")
    return 0


def cmd_tenants_suspend(args: argparse.Namespace) -> int:
    from ..core import tenancy
    from ..core.errors import NotFound

    with _db(args) as conn:
        try:
            tenant = tenancy.set_suspended(conn, args.tenant, args.suspended)
        except NotFound as exc:
            _fail(exc.message)
    print(f"tenant {tenant.name} is {'suspended' if tenant.suspended else 'active'}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..bootstrap import ensure_initialized
    from ..core import retention
    from ..db import engine as engines
    from ..db.writer import Writer

    config = load_existing(args)
    ensure_initialized(config)
    days = config.retention.unlinked_days if args.days is None else args.days
    if days < 0:
        _fail("--days must be 0 or more", 2)
    writer = Writer(engines.from_config(config))
    writer.start()
    try:
        report = asyncio.run(retention.sweep(writer, config.attachments_dir, days, config.retention.batch_size))
    finally:
        writer.stop()
    if args.json:
        _print_json(report)
    elif days == 0:
        print("retention is off (unlinked_days = 0): nothing swept")
    else:
        print(f"deleted {report.deleted_results} unlinked results older than {days} days "
              f"(before {report.cutoff}), {report.deleted_attachments} attachments, {report.removed_files} files")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from ..db import engine as engines
    from ..db import migrations
    from ..db.connection import private_dir

    config = load(args)
    engine = engines.from_config(config)
    if engine.name == "sqlite":
        private_dir(config.data_dir)
    if args.list:
        done = engine.applied_migrations()
        for version, name, _ in migrations.available(engine.name):
            print(f"{'applied' if version in done else 'pending':<8} {name}")
        return 0
    applied = engine.migrate()
    print("applied: " + ", ".join(applied) if applied else "nothing to apply: the database is up to date")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from ..db import engine as engines
    from ..db.check import check_engine
    from . import CliError

    config = load(args)
    engine = engines.from_config(config)
    if args.repair and (config.storage.url or config.db_path.exists()):
        from ..db.errors import StorageError
        from ..db.orphans import repair

        try:
            removed = repair(engine, config.attachments_dir)
        except StorageError as exc:
            raise CliError(f"repair failed: {exc}") from None
        print(f"repair: removed {removed.files_without_rows} attachment files without rows and "
              f"{removed.upload_leftovers} unfinished uploads", file=sys.stderr if args.json else sys.stdout)
    report = check_engine(engine, config.attachments_dir)
    if args.json:
        _print_json(report)
    elif report.engine == "postgresql":
        print(f"database:    {engine.describe()}")
        print(f"PostgreSQL:  {report.server_version or 'unreachable'}")
        pending = ", ".join(report.pending_migrations)
        print(f"migrations:  {len(report.applied_migrations)} applied, "
              f"{'pending: ' + pending if pending else 'none pending'}")
        print(f"attachments: {len(report.files_without_rows)} files without rows, "
              f"{len(report.rows_without_files)} rows without files, "
              f"{len(report.upload_leftovers)} unfinished uploads ({config.attachments_dir})")
        print("result:      " + ("OK" if report.ok else "PROBLEMS: " + "; ".join(report.problems)))
    else:
        print(f"database:    {config.db_path}")
        print(f"SQLite:      {report.sqlite_version}")
        print("features:    " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in report.features.items()))
        print(f"integrity:   {'ok' if report.integrity == ['ok'] else '; '.join(report.integrity[:5])}")
        print(f"migrations:  {'all applied' if not report.pending_migrations else 'pending: ' + ', '.join(report.pending_migrations)}")
        print(f"attachments: {len(report.files_without_rows)} files without rows, "
              f"{len(report.rows_without_files)} rows without files, "
              f"{len(report.upload_leftovers)} unfinished uploads")
        print("result:      " + ("OK" if report.ok else "PROBLEMS: " + "; ".join(report.problems)))
    return 0 if report.ok else 1
