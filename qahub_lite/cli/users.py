"""`qahub users`: the dashboard's users, beside a live server or not.

Passwords are never taken from the command line (they would land in shell history and in
`ps`): they are generated and printed once, typed at a prompt, or read from standard input.
"""

from __future__ import annotations

import argparse
import getpass
import sys

import msgspec

from .common import add_config_option

ROLES = ("viewer", "member", "admin")


def _fail(message: str, code: int = 1):
    from . import CliError

    raise CliError(message, code)


def register(commands) -> None:
    users = commands.add_parser(
        "users", help="create, list and disable dashboard users, set passwords and roles",
        description="Manage the users who sign in to the dashboard. A user has a role in each tenant it belongs "
        "to: viewer (reads), member (also quarantines tests), admin (also manages keys, users and settings).",
    )
    us = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    c = us.add_parser("create", help="create a user; prints its generated password once",
                      description="Create a user with a role in one tenant. Without --password-stdin a password "
                      "is generated and printed once.")
    add_config_option(c)
    c.add_argument("username", help="the name to sign in with (letters, digits and . _ @ + -)")
    c.add_argument("--role", choices=ROLES, default="viewer", help="the user's role in the tenant (default: viewer)")
    c.add_argument("--tenant", help="tenant id or name (default: the only tenant)")
    c.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    c.add_argument("--json", action="store_true", help="print {id, username, role, tenant, password} as JSON")
    c.set_defaults(handler=cmd_create)

    p = us.add_parser("passwd", help="set a user's password (signs it out everywhere)",
                      description="Set a new password: typed twice at a prompt, read from stdin, or generated. "
                      "Every session of the user ends.")
    add_config_option(p)
    p.add_argument("username", help="the user's name or id")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    how.add_argument("--generate", action="store_true", help="generate a password and print it once")
    p.set_defaults(handler=cmd_passwd)

    ls = us.add_parser("list", help="list users with their role in each tenant",
                       description="List users and their roles, one line per user and tenant.")
    add_config_option(ls)
    ls.add_argument("--tenant", help="only this tenant's users (id or name)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(handler=cmd_list)

    for action, flag, text in (("disable", True, "disable a user: sign-in refused, its sessions end"),
                               ("enable", False, "enable a disabled user again")):
        d = us.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        add_config_option(d)
        d.add_argument("username", help="the user's name or id")
        d.set_defaults(handler=cmd_disable, disabled=flag)

    r = us.add_parser("role", help="set a user's role in a tenant (adds it to the tenant)",
                      description="Give a user a role in a tenant, adding it to the tenant if needed. The last "
                      "admin of a tenant keeps its role.")
    add_config_option(r)
    r.add_argument("username", help="the user's name or id")
    r.add_argument("role", choices=ROLES, help="viewer, member or admin")
    r.add_argument("--tenant", help="tenant id or name (default: the only tenant)")
    r.set_defaults(handler=cmd_role)


def _read_stdin_password() -> str:
    line = sys.stdin.readline()
    if not line:
        _fail("--password-stdin: nothing on standard input", 2)
    return line.rstrip("\r\n")


def _prompt_password() -> str:
    if not sys.stdin.isatty():
        _fail("standard input is not a terminal: pass --password-stdin or --generate", 2)
    first = getpass.getpass("New password: ")
    if getpass.getpass("Repeat it: ") != first:
        _fail("the passwords differ; nothing changed")
    return first


def cmd_create(args: argparse.Namespace) -> int:
    from ..core import users
    from ..core.errors import DomainError
    from .admin import _db, _tenant

    password = _read_stdin_password() if args.password_stdin else None
    with _db(args) as conn:
        tenant = _tenant(conn, args.tenant)
        try:
            new = users.create_user(conn, args.username, tenant_id=tenant.id, role=args.role, password=password)
        except DomainError as exc:
            _fail(exc.message)
    if args.json:
        body = {"id": new.user.id, "username": new.user.username, "role": args.role, "tenant": tenant.name,
                "password": new.password}
        sys.stdout.write(msgspec.json.encode(body).decode() + "\n")
        return 0
    print(f"created user {new.user.username} ({args.role} of tenant {tenant.name})")
    if new.password:
        print(f"password (shown once, store it now): {new.password}")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    from ..core import users
    from ..core.errors import DomainError
    from .admin import _db

    if args.generate:
        password = None
    elif args.password_stdin:
        password = _read_stdin_password()
    else:
        password = _prompt_password()
    with _db(args) as conn:
        try:
            done = users.set_password(conn, args.username, password)
        except DomainError as exc:
            _fail(exc.message)
    print(f"password of {done.user.username} changed; its sessions have ended")
    if done.password:
        print(f"new password (shown once, store it now): {done.password}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from ..core import users
    from .admin import _db, _print_json, _tenant

    with _db(args) as conn:
        tenant_id = _tenant(conn, args.tenant).id if args.tenant else None
        rows = users.members_by_tenant(conn, tenant_id)
    if args.json:
        _print_json([{"tenant": name, **msgspec.structs.asdict(m)} for name, m in rows])
        return 0
    print(f"{'USER':<24}{'TENANT':<20}{'ROLE':<8}{'STATE':<10}LAST SIGN-IN")
    for tenant_name, m in rows:
        state = "disabled" if m.disabled else "active"
        print(f"{m.username:<24}{tenant_name:<20}{m.role:<8}{state:<10}{m.last_login_at or 'never'}")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    from ..core import users
    from ..core.errors import DomainError
    from .admin import _db

    with _db(args) as conn:
        try:
            user = users.set_disabled(conn, args.username, args.disabled)
        except DomainError as exc:
            _fail(exc.message)
    print(f"user {user.username} is {'disabled' if user.disabled else 'enabled'}")
    return 0


def cmd_role(args: argparse.Namespace) -> int:
    from ..core import users
    from ..core.errors import DomainError
    from .admin import _db, _tenant

    with _db(args) as conn:
        tenant = _tenant(conn, args.tenant)
        try:
            member = users.set_role(conn, tenant.id, args.username, args.role)
        except DomainError as exc:
            _fail(exc.message)
    print(f"{member.username} is {member.role} of tenant {tenant.name}")
    return 0
