"""Turning page data into HTML answers: the Jinja2 environment, the filters templates use, the
security headers every dashboard answer carries, and the dashboard's error pages.

Why our own Jinja2 environment rather than an app-wide TemplateConfig: the dashboard is the
only part of the app that renders HTML, so its engine lives with it (web/), compiled templates
are cached for the life of the process, and autoescaping plus StrictUndefined are set in one
place (a misspelt variable is an error in tests, not an empty cell in production).

Errors: the API answers every non-2xx with `{error, message}` as JSON (api/errors.py). The
dashboard answers the same two fields, as a page for a browser, and as that very JSON for a
client that asks for JSON (`Accept: application/json`), so a script probing a dashboard URL
gets the contract every other route keeps.
"""

from __future__ import annotations

import datetime as dt
import logging
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException

from .. import __version__
from ..http.errors import ApiError, error_response
from ..core.errors import Conflict, DomainError, Forbidden, Invalid, NotFound

log = logging.getLogger("qahub.web")

TEMPLATES = Path(__file__).parent / "templates"

# Pages hold CSRF tokens and tenant data: never cached, never framed, scripts only from here.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_DOMAIN_STATUS = {NotFound: 404, Invalid: 400, Conflict: 409, Forbidden: 403}


class SignInRequired(Exception):
    """Raised by a page that needs a session when there is none: answered with a redirect to
    the sign-in page that comes back here afterwards."""


def duration(ms: int | float | None) -> str:
    """850 ms, 12.3 s, 4 min 05 s, 1 h 02 min."""
    if ms is None:
        return "–"
    ms = int(ms)
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _parse(iso: str | None) -> dt.datetime | None:
    if not iso:
        return None
    try:
        return dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None


def when(iso: str | None) -> str:
    """An absolute UTC time people can read; dashboard.js shows it in local time."""
    moment = _parse(iso)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "–"


def ago(iso: str | None, now: dt.datetime | None = None) -> str:
    moment = _parse(iso)
    if moment is None:
        return "never"
    now = now or dt.datetime.now(dt.timezone.utc)
    seconds = int((now - moment).total_seconds())
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if unit == 'day' and n > 1 else ''} ago"
    return "just now"


def percent(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f} %"


def http_url(url: str | None) -> str | None:
    """A link only for http(s) addresses: CI context and bug ticket URLs come from API input,
    and autoescaping does not stop a `javascript:` URL."""
    return url if url and url.startswith(("https://", "http://")) else None


def build_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(duration=duration, when=when, ago=ago, percent=percent, http_url=http_url)
    # Assets carry the version in their URL, so a new release is never served stale CSS.
    env.globals["static"] = lambda name: f"/static/{name}?v={__version__}"
    env.globals["version"] = __version__
    return env


def environment(request: Request) -> jinja2.Environment:
    """The environment, built in the app's lifespan and kept for the life of the app."""
    return request.app.state.services.templates


def page(
    request: Request, template: str, *, status: int = 200, headers: dict | None = None,
    cookies: list[Cookie] | None = None, **context: Any,
) -> Response:
    """Render `template` with `context` plus what every page shows (the session, its CSRF token)."""
    session = request.scope.get("qahub_session")
    context.setdefault("session", session)
    context.setdefault("csrf", session.csrf_token if session else "")
    context.setdefault("memberships", request.scope.get("qahub_memberships", []))
    context.setdefault("path", request.url.path)
    html = environment(request).get_template(template).render(**context)
    return Response(
        html, status_code=status, media_type="text/html; charset=utf-8",
        headers={**SECURITY_HEADERS, **(headers or {})},
        cookies=[*request.scope.get("qahub_cookies", []), *(cookies or [])],
    )


def redirect(location: str, *, status: int = 303, cookies: list[Cookie] | None = None) -> Response:
    """303 See Other: after a form post the browser GETs the next page (no double submit)."""
    return Response(b"", status_code=status, headers={**SECURITY_HEADERS, "Location": location}, cookies=cookies)


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_page(request: Request, status: int, message: str, headers: dict | None = None, **extra) -> Response:
    if wants_json(request):
        return error_response(status, message, headers, **extra)
    try:
        return page(
            request, "error.html", status=status, headers=headers, error=HTTPStatus(status).phrase, message=message,
            status_code=status,
        )
    except Exception:  # noqa: BLE001 - a broken template must not hide the error itself
        log.exception("could not render the error page")
        return error_response(status, message, headers, **extra)


def handle_web_exception(request: Request, exc: Exception) -> Response:
    """The dashboard's exception handler: sign-in redirects, then one error page per status."""
    if isinstance(exc, SignInRequired):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":  # a form posted after the session ended: its page has no GET
            target = "/"
        return redirect(f"/login?next={quote(target, safe='')}")
    if isinstance(exc, ApiError):
        return error_page(request, exc.status, exc.message, exc.headers, **exc.extra)
    if isinstance(exc, DomainError):
        return error_page(request, _DOMAIN_STATUS.get(type(exc), 400), exc.message)
    if isinstance(exc, HTTPException):
        status = exc.status_code
        phrase = HTTPStatus(status).phrase
        detail = exc.detail if exc.detail and exc.detail != phrase else HTTPStatus(status).description
        return error_page(request, status, detail or phrase, dict(exc.headers or {}))
    log.exception("unexpected error serving %s %s", request.method, request.url.path)
    return error_page(request, 500, "An unexpected error occurred. Please try again later.")
