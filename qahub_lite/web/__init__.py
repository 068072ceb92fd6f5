"""The dashboard: HTML pages served by the same process as the API, from the same core
queries, with every asset inside the package (no CDN, no external font: it works air-gapped).
It may import http/, core/ and config, never api/ (its sibling), db/ or the clients.

`router()` is what app.py mounts: the pages, under their own exception handler (error pages
instead of JSON for browsers), and the static files.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from . import (
    auth, pages_project_settings, pages_projects, pages_runs, pages_settings, pages_tests, pages_trends, pages_triage,
    pages_webhooks,
)
from .render import handle_web_exception

STATIC = Path(__file__).parent / "static"


def router() -> list:
    """Route handlers of the dashboard, ready for the app's route list."""
    pages = Router(
        path="/",
        route_handlers=[
            *auth.HANDLERS, *pages_projects.HANDLERS, *pages_runs.HANDLERS, *pages_tests.HANDLERS,
            *pages_trends.HANDLERS, *pages_settings.HANDLERS, *pages_project_settings.HANDLERS,
            *pages_webhooks.HANDLERS, *pages_triage.HANDLERS,
        ],
        exception_handlers={Exception: handle_web_exception},
        include_in_schema=False,
    )
    # Asset URLs carry the version (render.py), so they may be cached for a long time.
    static = create_static_files_router(
        path="/static", directories=[STATIC], name="dashboard-static",
        cache_control=CacheControlHeader(max_age=86400, public=True),
    )
    return [pages, static]
