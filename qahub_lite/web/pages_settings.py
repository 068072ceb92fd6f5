"""Settings of a tenant, for its admins: API keys, users and retention.

A secret made here (a new API key, a generated password) is shown once, in the answer to the
form that made it, and never stored in a form the server could show again: the answer is a
page rendered from the POST, with caching off, not a redirect to a page that reads it back.

Projects, their CI configuration and webhooks are in pages_project_settings.py.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath

from ..http.services import services
from ..core import key_checks, projects, retention, tenancy, users
from ..core.sessions import Session
from .auth import web_session
from .forms import read_form
from .render import page, redirect

Name = Annotated[str, msgspec.Meta(max_length=200)]
Id = Annotated[str, msgspec.Meta(max_length=100)]


class KeyForm(msgspec.Struct, forbid_unknown_fields=True):
    scope: Literal["read", "write", "admin"]
    name: Name = ""
    project_id: Id | None = None


class UserForm(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(max_length=64)]
    role: Literal["viewer", "member", "admin"] = "viewer"


class RoleForm(msgspec.Struct, forbid_unknown_fields=True):
    role: Literal["viewer", "member", "admin"]


class EmptyForm(msgspec.Struct, forbid_unknown_fields=True):
    """A button: nothing but the CSRF token."""


async def _admin(request: Request) -> Session:
    return await web_session(request, "admin")


@get("/settings", include_in_schema=False)
async def settings_index(request: Request) -> Response:
    await _admin(request)
    return page(request, "settings/index.html")


# --- API keys -------------------------------------------------------------------------


def _keys_and_projects(conn, tenant_id: str) -> tuple[list[tenancy.KeyInfo], list[projects.Project]]:
    return tenancy.list_keys(conn, tenant_id), projects.list_projects(conn, tenant_id, limit=1000).data


async def _keys_page(request: Request, session: Session, *, new_key: str | None = None, status: int = 200) -> Response:
    keys, all_projects = await services(request).db.read(_keys_and_projects, session.tenant_id)
    names = {p.id: p.name for p in all_projects}
    return page(request, "settings/keys.html", keys=list(reversed(keys)), projects=all_projects, names=names,
                new_key=new_key, status=status)


@get("/settings/keys", include_in_schema=False)
async def keys_page(request: Request) -> Response:
    return await _keys_page(request, await _admin(request))


@post("/settings/keys", include_in_schema=False, status_code=201)
async def create_key(request: Request) -> Response:
    session = await _admin(request)
    form = await read_form(request, KeyForm, csrf=session.csrf_token)
    new = await services(request).db.write(
        lambda conn: tenancy.create_key(
            conn, session.tenant_id, scope=form.scope, name=form.name, project_id=form.project_id
        )
    )
    return await _keys_page(request, session, new_key=new.key, status=201)


@post("/settings/keys/{key_id:str}/revoke", include_in_schema=False, status_code=303)
async def revoke_key(request: Request, key_id: FromPath[str]) -> Response:
    session = await _admin(request)
    await read_form(request, EmptyForm, csrf=session.csrf_token)
    await services(request).db.write(tenancy.revoke_key, key_id, session.tenant_id)
    key_checks.keys_changed()  # again now that it is committed: no check read meanwhile is kept
    return redirect("/settings/keys")


# --- users ----------------------------------------------------------------------------


async def _users_page(
    request: Request, session: Session, *, shown: tuple[str, str] | None = None, status: int = 200
) -> Response:
    members = await services(request).db.read(users.list_members, session.tenant_id)
    return page(request, "settings/users.html", members=members, shown=shown, roles=users.ROLES, status=status)


@get("/settings/users", include_in_schema=False)
async def users_page(request: Request) -> Response:
    return await _users_page(request, await _admin(request))


@post("/settings/users", include_in_schema=False, status_code=201)
async def create_user(request: Request) -> Response:
    session = await _admin(request)
    form = await read_form(request, UserForm, csrf=session.csrf_token)
    new = await services(request).db.write(
        lambda conn: users.create_user(conn, form.username, tenant_id=session.tenant_id, role=form.role)
    )
    return await _users_page(request, session, shown=(new.user.username, new.password or ""), status=201)


@post("/settings/users/{user_id:str}/role", include_in_schema=False, status_code=303)
async def set_role(request: Request, user_id: FromPath[str]) -> Response:
    session = await _admin(request)
    form = await read_form(request, RoleForm, csrf=session.csrf_token)

    def change(conn):
        users.get_member(conn, session.tenant_id, user_id)  # only members of this tenant
        return users.set_role(conn, session.tenant_id, user_id, form.role)

    await services(request).db.write(change)
    return redirect("/settings/users")


@post("/settings/users/{user_id:str}/password", include_in_schema=False)
async def reset_password(request: Request, user_id: FromPath[str]) -> Response:
    session = await _admin(request)
    await read_form(request, EmptyForm, csrf=session.csrf_token)

    def reset(conn):
        users.check_managed_by(conn, session.tenant_id, user_id)
        return users.set_password(conn, user_id)

    done = await services(request).db.write(reset)
    return await _users_page(request, session, shown=(done.user.username, done.password or ""))


async def _set_disabled(request: Request, user_id: FromPath[str], disabled: bool) -> Response:
    session = await _admin(request)
    await read_form(request, EmptyForm, csrf=session.csrf_token)

    def change(conn):
        users.check_managed_by(conn, session.tenant_id, user_id)
        return users.set_disabled(conn, user_id, disabled)

    await services(request).db.write(change)
    return redirect("/settings/users")


@post("/settings/users/{user_id:str}/disable", include_in_schema=False, status_code=303)
async def disable_user(request: Request, user_id: FromPath[str]) -> Response:
    return await _set_disabled(request, user_id, True)


@post("/settings/users/{user_id:str}/enable", include_in_schema=False, status_code=303)
async def enable_user(request: Request, user_id: FromPath[str]) -> Response:
    return await _set_disabled(request, user_id, False)


@post("/settings/users/{user_id:str}/remove", include_in_schema=False, status_code=303)
async def remove_user(request: Request, user_id: FromPath[str]) -> Response:
    session = await _admin(request)
    await read_form(request, EmptyForm, csrf=session.csrf_token)

    def remove(conn):
        users.get_member(conn, session.tenant_id, user_id)
        users.remove_member(conn, session.tenant_id, user_id)

    await services(request).db.write(remove)
    return redirect("/settings/users")


# --- retention ------------------------------------------------------------------------


@get("/settings/retention", include_in_schema=False)
async def retention_page(request: Request) -> Response:
    await _admin(request)
    return page(request, "settings/retention.html", retention=services(request).config.retention, report=None)


@post("/settings/retention/sweep", include_in_schema=False, status_code=200)
async def sweep_now(request: Request) -> Response:
    """The same sweep as `POST /api/v1/admin/sweep`: this tenant's expired unlinked results."""
    session = await _admin(request)
    await read_form(request, EmptyForm, csrf=session.csrf_token)
    svc = services(request)
    r = svc.config.retention
    report = await retention.sweep(svc.db.writer, svc.config.attachments_dir, r.unlinked_days, r.batch_size,
                                   session.tenant_id)
    return page(request, "settings/retention.html", retention=r, report=report)


HANDLERS = [
    settings_index, keys_page, create_key, revoke_key, users_page, create_user, set_role, reset_password,
    disable_user, enable_user, remove_user, retention_page, sweep_now,
]
