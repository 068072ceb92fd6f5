"""Builds the Litestar application: routes of every dialect, the one error handler, the
database's lifespan and the background jobs. No globals: everything hangs off `app.state`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from litestar import Litestar

from .api import health, native_library, native_runs, openapi
from .api.context import Services
from .api.errors import handle_exception
from .api.metrics import Metrics, metrics_endpoint, request_middleware
from .config import Config
from .core import retention
from .core.tenancy import touch_keys
from .db.database import Database
from .maintenance import Scheduler

log = logging.getLogger("qahub.app")


def route_handlers() -> list:
    return [
        *native_library.HANDLERS,
        *native_runs.HANDLERS,
        openapi.openapi_json,
        openapi.api_docs,
        health.healthz,
        health.readyz,
        metrics_endpoint,
    ]


def schedule_jobs(svc: Services, scheduler: Scheduler) -> None:
    cfg = svc.config

    async def flush_key_usage():
        used = svc.key_usage.take()
        if used:
            await svc.db.write(touch_keys, used)

    async def sweep():
        r = cfg.retention
        report = await retention.sweep(svc.db.writer, cfg.attachments_dir, r.unlinked_days, r.batch_size)
        return f"deleted {report.deleted_results} results" if report.deleted_results else None

    async def checkpoint():
        await svc.db.write(lambda conn: conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())

    scheduler.add("key-usage", 10, flush_key_usage)
    scheduler.add("retention-sweep", cfg.retention.sweep_interval_minutes * 60, sweep)
    scheduler.add("wal-checkpoint", cfg.storage.checkpoint_interval_minutes * 60, checkpoint)


def create_app(config: Config, on_ready=None) -> Litestar:
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        db = Database.from_config(config)
        applied = await db.open()
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        svc = Services(config=config, db=db)
        svc.extras["metrics"] = Metrics()
        app.state.services = svc
        scheduler = Scheduler()
        schedule_jobs(svc, scheduler)
        svc.extras["scheduler"] = scheduler
        scheduler.start()
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            await scheduler.stop()
            used = svc.key_usage.take()
            if used:
                await db.write(touch_keys, used)
            await db.close()
            log.info("database closed cleanly")

    return Litestar(
        route_handlers=route_handlers(),
        lifespan=[lifespan],
        exception_handlers={Exception: handle_exception},
        middleware=[request_middleware],
        openapi_config=None,
        request_max_body_size=config.server.max_body_bytes,
        debug=False,
        logging_config=None,
    )
