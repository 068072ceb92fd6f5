"""Signing in and out of the dashboard, and the session every page starts from.

- The session cookie is HttpOnly (no script reads it), SameSite=Lax (another site's form
  post does not carry it) and Secure whenever `public_url` is https.
- Every form carries the session's CSRF token (forms.read_form checks it). The sign-in form,
  which has no session yet, uses a double-submit cookie instead, so nobody can sign a
  victim's browser into an attacker's account either.
- Failed sign-ins are rate limited per user name and client address (throttle.py), counted
  before the password is checked, and password checks in flight are bounded; the
  answer to any failure is the same sentence, and takes the same time, whether or not the
  user exists. Passwords are never logged: the access log has the path, never a body.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from typing import Annotated

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie

from ..http.services import services
from ..http.errors import ApiError
from ..core import passwords, sessions, users
from ..core.clock import now_ms
from ..core.errors import Forbidden
from .forms import check_token, decode_pairs, read_form, read_query, read_raw_form
from .render import SignInRequired, page, redirect
from .throttle import Busy, HashGate, SharedSignInThrottle, SignInThrottle

SESSION_COOKIE = "qahub_session"
LOGIN_COOKIE = "qahub_login"


class LoginForm(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(max_length=200)] = ""
    password: Annotated[str, msgspec.Meta(max_length=passwords.MAX_LENGTH)] = ""
    next: Annotated[str, msgspec.Meta(max_length=2000)] = "/"


class TenantForm(msgspec.Struct, forbid_unknown_fields=True):
    tenant_id: Annotated[str, msgspec.Meta(max_length=100)]


def _secure(request: Request) -> bool:
    return services(request).config.public_url.startswith("https://")


def _cookie(request: Request, key: str, value: str, max_age: int) -> Cookie:
    return Cookie(key=key, value=value, max_age=max_age, path="/", httponly=True, samesite="lax",
                  secure=_secure(request))


def _expired(request: Request, key: str) -> Cookie:
    return _cookie(request, key, "", 0)


def _lifetime_ms(request: Request) -> int:
    return services(request).config.dashboard.session_hours * 3_600_000


# A path of this site, in printable ASCII: a Location header carries nothing else. Browsers
# drop TAB, CR and LF inside URLs, so `/\t/evil.example` would become `//evil.example` (another
# site), and a backslash reads as a slash; non-ASCII (U+3000) cannot go into a header at all.
_SAME_SITE_PATH = re.compile(r"/(?![/\\])[\x21-\x5b\x5d-\x7e]*")


def safe_next(target: str | None) -> str:
    """Only a path of this site: never `//evil.example`, an absolute URL, or a path with a
    control, whitespace or non-ASCII character in it (open redirect); anything else is `/`."""
    if not target or not _SAME_SITE_PATH.fullmatch(target):
        return "/"
    return target


def throttle(request: Request) -> SignInThrottle | SharedSignInThrottle:
    return services(request).sign_in_throttle


def hash_gate(request: Request) -> HashGate:
    return services(request).sign_in_hash_gate


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def find_session(request: Request) -> sessions.Session | None:
    """The request's live session (renewed when due), or None."""
    if "qahub_session" in request.scope:
        return request.scope["qahub_session"]
    token = request.cookies.get(SESSION_COOKIE, "")
    svc = services(request)
    session = None
    found = await svc.db.read(sessions.resolve_signed_in, token) if token else None
    if found is not None:
        session, request.scope["qahub_memberships"] = found
    if session is not None and session.due_for_renewal(now_ms()):
        await svc.db.write(sessions.renew, session.id, _lifetime_ms(request))
        request.scope["qahub_cookies"] = [_cookie(request, SESSION_COOKIE, token, _lifetime_ms(request) // 1000)]
    request.scope["qahub_session"] = session
    return session


async def web_session(request: Request, role: str = "viewer") -> sessions.Session:
    """The session of a page that needs `role` in the session's tenant: no session redirects
    to the sign-in page; a suspended tenant or a smaller role is a 403 page."""
    session = await find_session(request)
    if session is None:
        raise SignInRequired()
    if session.tenant_suspended:
        raise ApiError(403, "Organization suspended: this tenant's dashboard and keys are disabled")
    if not users.role_allows(session.role, role):
        raise ApiError(403, f"This page needs the {role} role; you are {session.role} in {session.tenant_name}")
    return session


def _login_page(request: Request, *, status: int = 200, message: str = "", username: str = "", next_path: str = "/",
                headers: dict | None = None) -> Response:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    # The double-submit token lives as long as a person might leave the page open.
    cookie = _cookie(request, LOGIN_COOKIE, token, 3600)
    return page(request, "login.html", status=status, headers=headers, cookies=[cookie], login_csrf=token,
                message=message, username=username, next_path=safe_next(next_path), session=None)


class LoginQuery(msgspec.Struct, forbid_unknown_fields=True):
    next: Annotated[str, msgspec.Meta(max_length=2000)] = "/"


@get("/login", include_in_schema=False)
async def login_form(request: Request) -> Response:
    """The sign-in page (or straight on, for someone signed in already)."""
    q = read_query(request, LoginQuery)
    if await find_session(request) is not None:
        return redirect(safe_next(q.next))
    return _login_page(request, next_path=q.next)


@post("/login", include_in_schema=False, status_code=303)
async def login(request: Request) -> Response:
    pairs = await read_raw_form(request)
    check_token(request.cookies.get(LOGIN_COOKIE, ""), next((v for k, v in pairs if k == "csrf"), None))
    form = decode_pairs(pairs, LoginForm, "form", ignore=("csrf",))
    limiter, address = throttle(request), _address(request)
    wait = await limiter.reserve_attempt(form.username, address)
    if wait:
        minutes = max(1, round(wait / 60))
        return _login_page(
            request, status=429, username=form.username, next_path=form.next, headers={"Retry-After": str(wait)},
            message=f"Too many failed sign-ins. Try again in about {minutes} minute{'s' if minutes > 1 else ''}.",
        )
    svc = services(request)
    try:
        async with hash_gate(request).slot(address):
            stored = await svc.db.read(users.find_credentials, form.username)
            signed = await asyncio.to_thread(users.check_credentials, stored, form.username, form.password)
    except Busy:
        await limiter.release_attempt(form.username, address)
        return _login_page(
            request, status=429, username=form.username, next_path=form.next,
            headers={"Retry-After": str(HashGate.RETRY_AFTER_S)},
            message="Too many sign-ins at once from your address. Try again in a few seconds.",
        )
    except Forbidden as exc:
        return _login_page(request, status=401, message=exc.message, username=form.username, next_path=form.next)
    await limiter.clear_failures(form.username, address)
    # Upgrading an old hash costs one more scrypt run: off the event loop, like the check, and
    # through the gate; when it is full the upgrade waits for the next sign-in.
    new_hash = None
    if signed.rehash:
        with contextlib.suppress(Busy):
            async with hash_gate(request).slot(address):
                new_hash = await asyncio.to_thread(passwords.hash_password, form.password)

    def start(conn):
        users.record_sign_in(conn, signed.user_id, new_hash)
        return sessions.create_session(conn, signed.user_id, signed.tenant_id, _lifetime_ms(request))

    new = await svc.db.write(start)
    return redirect(safe_next(form.next), cookies=[
        _cookie(request, SESSION_COOKIE, new.token, _lifetime_ms(request) // 1000), _expired(request, LOGIN_COOKIE),
    ])


class EmptyForm(msgspec.Struct, forbid_unknown_fields=True):
    """A form with nothing but its CSRF token (sign out)."""


@get("/logout", include_in_schema=False)
async def logout_form(request: Request) -> Response:
    """Signing out changes state, so it is a POST; a GET shows the button for it."""
    session = await find_session(request)
    if session is None:
        return redirect("/login")
    return page(request, "logout.html")


@post("/logout", include_in_schema=False, status_code=303)
async def logout(request: Request) -> Response:
    session = await find_session(request)
    if session is None:
        return redirect("/login", cookies=[_expired(request, SESSION_COOKIE)])
    await read_form(request, EmptyForm, csrf=session.csrf_token)
    await services(request).db.write(sessions.end_session, session.id)
    return redirect("/login", cookies=[_expired(request, SESSION_COOKIE)])


@post("/session/tenant", include_in_schema=False, status_code=303)
async def switch_tenant(request: Request) -> Response:
    """Move the session to another tenant the user belongs to (the header's tenant menu)."""
    session = await web_session(request)
    form = await read_form(request, TenantForm, csrf=session.csrf_token)
    await services(request).db.write(sessions.switch_tenant, session.id, form.tenant_id)
    return redirect("/")


HANDLERS = [login_form, login, logout_form, logout, switch_tenant]
