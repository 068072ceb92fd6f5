"""Builds the Litestar application: routes of every dialect, the one error handler, the
database's lifespan and the maintenance tasks. No globals: everything hangs off `app.state`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator

from litestar import Litestar

from .api import agent_api, native_library, native_runs, openapi, probes, qatech, qualigate, qualitypilot
from .api import exports_api, health_api, test_daily_api, triage_api, webhooks_api
from .api.admission import Admission
from .api.export_slots import new_export_slots
from .api.errors import handle_exception
from .api.head import head_as_get
from .api.metrics import Metrics, metrics_endpoint, request_middleware
from .api import ratelimit
from .api.ratelimit import headers_middleware
from .api.shutdown import Shutdown
from .config import Config
from .core import key_checks, retention
from .core.tenancy import touch_keys
from .db import backup as backups
from .db import orphans
from .db.database import Database
from .db.task_leases import TaskLeases
from .embedded_agent import start_embedded_agent
from .http.services import Services
from .maintenance import TaskScheduler
from .web import render as web_render
from .web.throttle import HashGate, throttle_for
from . import run_completion_tasks
from . import web

log = logging.getLogger("qahub.app")


def route_handlers() -> list:
    return [
        *native_library.HANDLERS,
        *native_runs.HANDLERS,
        *qualitypilot.HANDLERS,
        *qualigate.HANDLERS,
        *qatech.HANDLERS,
        *agent_api.HANDLERS,
        *health_api.HANDLERS,
        *test_daily_api.HANDLERS,
        *webhooks_api.HANDLERS,
        *exports_api.HANDLERS,
        *triage_api.HANDLERS,
        openapi.openapi_json,
        openapi.api_docs,
        probes.healthz,
        probes.readyz,
        metrics_endpoint,
        *web.router(),  # the dashboard: its pages and static files
    ]


def schedule_tasks(svc: Services, scheduler: TaskScheduler) -> None:
    """Register the server's maintenance tasks (maintenance.py)."""
    cfg = svc.config

    async def flush_key_usage():
        used = svc.key_usage.take()
        if used:
            await svc.db.write(touch_keys, used)

    async def sweep():
        r = cfg.retention
        report = await retention.sweep(svc.db.writer, cfg.attachments_dir, r.unlinked_days, r.batch_size)
        return f"deleted {report.deleted_results} results" if report.deleted_results else None

    # Not coordinated: each node flushes the key uses it counted itself (in memory); no other
    # node has them.
    scheduler.add("key-usage", 10, flush_key_usage, coordinated=False)
    # Coordinated: each batch is deleted in its own write, so two nodes could not delete a row
    # twice, but both would walk the same expired rows batch after batch and remove the files
    # after them: one sweeping node per round is the whole work.
    scheduler.add("retention-sweep", cfg.retention.sweep_interval_minutes * 60, sweep, coordinated=True)
    if svc.db.engine.name == "sqlite":
        # Not coordinated: SQLite's WAL belongs to the one node that may open the file.
        scheduler.add("wal-checkpoint", cfg.storage.checkpoint_interval_minutes * 60, svc.db.checkpoint,
                      coordinated=False)

    async def attachment_orphans():
        removed = await orphans.collect(svc.db, cfg.attachments_dir)
        return f"removed {removed.total} orphaned attachment files" if removed.total else None

    # Coordinated: it lists the whole shared attachments folder and looks up the row of every
    # file in it. A removal is checked again in its write, so two nodes could not remove a file
    # wrongly, but they would both do the scan, the costly part, every round.
    scheduler.add("attachment-orphans", orphans.JOB_INTERVAL_S, attachment_orphans, coordinated=True)

    async def key_generation():
        # Another node (or `qahub keys revoke`) changed a key: forget remembered key checks
        # (core/key_checks.py). Polled on both engines: on SQLite it is how a CLI revocation
        # beside a running server takes effect within a second instead of the cache's TTL.
        # Not logged: it happens at start and at every key change.
        generation = await svc.db.read(key_checks.current_generation)
        svc.key_checks.observe_generation(generation, time.monotonic())

    # Not coordinated: every node must notice the change for its own cache.
    scheduler.add("key-generation", key_checks.GENERATION_POLL_S, key_generation, coordinated=False)
    shared_windows = [w for w in (svc.ratelimiter, svc.sign_in_throttle) if hasattr(w, "prune")]
    if shared_windows:  # PostgreSQL: the windows of keys and sign-ins gone idle are deleted here

        async def prune_windows():
            deleted = sum([await w.prune() for w in shared_windows])
            return f"pruned {deleted} rate-limit hits" if deleted > 1000 else None

        # Coordinated: one node's prune serves all; a second would find nothing left.
        scheduler.add("rate-window-prune", ratelimit.PRUNE_INTERVAL_S, prune_windows, coordinated=True)

    async def backup():
        # Blocking file work goes to a thread; a stop cancels this task, and the event lets the
        # thread give up at its next step instead of holding the shutdown up (db/backup.py).
        cancel = threading.Event()
        try:
            report = await asyncio.to_thread(
                backups.run_scheduled, cfg.db_path, cfg.attachments_dir, cfg.backup_dir,
                interval_s=cfg.backup.interval_minutes * 60, keep=cfg.backup.keep,
                busy_timeout_ms=cfg.storage.busy_timeout_ms, cancel=cancel,
            )
        except asyncio.CancelledError:
            cancel.set()
            raise
        return f"wrote {report.path} ({report.bytes} bytes)" if report else None

    # Looks every 10 minutes (or more often for short intervals) whether a backup is due, so
    # that a restart never postpones one by a whole interval.
    # Not coordinated: SQLite only (one node); PostgreSQL's backups are pg_dump's (docs/moving-a-hub.md).
    if svc.db.engine.name == "sqlite":
        scheduler.add("backup", min(cfg.backup.interval_minutes * 60, 600), backup, coordinated=False)
    agent_api.schedule(svc, scheduler)  # job-expiry: agent jobs' leases that ran out, jobs nobody claimed
    run_completion_tasks.schedule(svc, scheduler)  # run-completion, trend-grades, webhook-delivery, quarantine-expiry


def create_app(config: Config, on_ready=None) -> Litestar:
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        db = Database.from_config(config)
        applied = await db.open()
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        # Files a crash left between an upload's rename and its commit, and uploads it cut
        # short: nothing can be in flight before we serve (on SQLite), so every one of them goes.
        # On PostgreSQL other nodes share the attachments folder and may be mid-upload: only
        # uploads older than the grace period are leftovers there.
        alone = db.engine.name == "sqlite"
        removed = await orphans.collect(db, config.attachments_dir,
                                        tmp_min_age_s=0 if alone else orphans.TMP_GRACE_S)
        if removed.total:
            log.info("removed %d attachment files without rows and %d unfinished uploads left by a crash",
                     removed.files_without_rows, removed.upload_leftovers)
        svc = Services(
            config=config, db=db, metrics=Metrics(), shutdown=Shutdown(),
            # Rate limits and the sign-in throttle: in memory on SQLite (one process), in the
            # database on PostgreSQL, where every node must see the same windows. Poll budgets,
            # export slots and the hash gate stay per node on both: they guard the node's own
            # connections, memory and cores (docs/scaling.md, "What is shared").
            ratelimiter=ratelimit.limiter_for(db, config.rate_limits),
            # Leases: coordinated tasks run on one node per round (maintenance.py).
            scheduler=TaskScheduler(TaskLeases(db)),
            poll_budget=agent_api.new_poll_budget(config.jobs.max_polls_per_key, config.jobs.max_polls),
            export_slots=new_export_slots(), job_signal=agent_api.QueueSignal(),
            templates=web_render.build_environment(),
            sign_in_throttle=throttle_for(db, config.dashboard.login_attempts, config.dashboard.login_window_s),
            sign_in_hash_gate=HashGate(),
        )
        db.writer.on_commit.append(svc.metrics.observe_write)
        app.state.services = svc
        scheduler = svc.scheduler
        log.info("node %s: storage %s", scheduler.leases.holder, db.engine.describe())
        schedule_tasks(svc, scheduler)
        scheduler.start()
        embedded_agent = await start_embedded_agent(svc)  # None unless [agent] enabled
        # The key generation as of now (core/key_checks.py): the `key-generation` task forgets
        # remembered checks only when it moves from here.
        svc.key_checks.observe_generation(await db.read(key_checks.current_generation), time.monotonic())
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            if embedded_agent is not None:
                await embedded_agent.close()  # kills a command it is running, ends its job
            await scheduler.stop()
            used = svc.key_usage.take()
            if used:
                await db.write(touch_keys, used)
            await db.close()
            log.info("database closed cleanly")

    app = Litestar(
        route_handlers=route_handlers(),
        lifespan=[lifespan],
        exception_handlers={Exception: handle_exception},
        middleware=[headers_middleware],
        openapi_config=None,
        request_max_body_size=config.server.max_body_bytes,
        debug=False,
        logging_config=None,
    )
    # Around Litestar's whole handler (as its OpenTelemetry plugin does), not in `middleware`,
    # which runs for matched routes only: requests for unknown paths are counted and logged too.
    app.asgi_handler = request_middleware(head_as_get(app.asgi_handler))
    # Outermost: a client over its share is refused before anything else is spent on it, and
    # body timeouts cover every route (api/admission.py).
    app.asgi_handler = Admission(app.asgi_handler, config.server)
    return app
