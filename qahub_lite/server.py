"""Serving: granian's embedded server in this very process.

Why embedded and one process: qahub-lite has one writer and an in-process rate limiter, so
exactly one process must own the database (and db/datalock.py makes sure of it across
processes). granian's default multi-process mode also imports the app by dotted name in fresh
processes, which fails inside a PyInstaller onefile build ("Could not import"); the embedded
server serves the app object we built, on our event loop, and stops when we tell it to. One
process with uvloop served ~21k trivial requests/s on the reference machine (DESIGN.md), far
beyond what a results hub needs; SQLite's single writer would be the limit long before.

Graceful stop (SIGTERM or SIGINT), within `server.shutdown_timeout_s` (8 s by default):
stop accepting connections, let requests in flight finish (those still running near the
deadline get a 503 with Retry-After, api/shutdown.py), then the app's shutdown: maintenance
tasks stop, every queued write commits, the WAL is checkpointed; exit 0. A stop that overruns
its budget by a second (a handler blocking the event loop) exits at once with status 1:
SQLite's journal keeps the database consistent, and nothing unanswered was acknowledged.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
import threading

from .api.shutdown import LIFESPAN_RESERVE_S
from .app import create_app
from .config import Config
from .db.datalock import DataFolderInUse, DataFolderLock, describe
from .logs import adopt_granian_loggers

log = logging.getLogger("qahub.server")


def serve(config: Config, on_ready=None) -> int:
    """Serve until SIGTERM/SIGINT. `on_ready()` is called once the socket listens and the
    database is open (so a line saying "serving" is true when it is printed)."""
    # A stop asked for while we are still starting is honoured, not fatal: remember it until
    # the event loop's handlers take over.
    early: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: early.append(signum))

    if config.storage.url:
        # PostgreSQL: any number of nodes share the database and the attachments folder; what
        # must happen once is coordinated in the database (docs/scaling.md), not by this lock.
        return _serve(config, on_ready, early)
    lock = DataFolderLock(config.data_dir)
    try:
        lock.acquire("serve", url=config.public_url)
    except DataFolderInUse as exc:
        print(f"qahub: cannot serve {config.data_dir}: {describe(exc.holder)} is using it already "
              "(one process owns a data folder)", file=sys.stderr)
        return 2
    try:
        return _serve(config, on_ready, early)
    finally:
        lock.release()


def port_is_free(host: str, port: int) -> OSError | None:
    """None when `host:port` can be listened on, else the error.

    granian listens with SO_REUSEPORT, so a second qahub started on a taken port would bind
    beside the first and the kernel would split connections between two servers with two
    databases. A probe without SO_REUSEPORT is refused by any existing listener."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no obstacle
        probe.bind((host, port))
        return None
    except OSError as exc:
        return exc
    finally:
        probe.close()


def _serve(config: Config, on_ready, early: list[int]) -> int:
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.server.embed import Server

    refused = port_is_free(config.server.host, config.server.port) if config.server.port else None
    if refused is not None:
        print(f"qahub: cannot listen on {config.server.host}:{config.server.port}: "
              f"{refused.strerror or refused} (is another server running there? use --port)", file=sys.stderr)
        return 2
    _fit_open_files(config.server.max_connections)
    app = create_app(config, on_ready=_after_start(on_ready))
    _tune_garbage_collector()
    budget = float(config.server.shutdown_timeout_s)
    server = Server(
        app,
        address=config.server.host,
        port=config.server.port,
        interface=Interfaces.ASGI,
        log_enabled=True,
        log_access=False,  # our middleware writes the access log (without keys)
        websockets=False,
        # A client that trickles its headers (slowloris) is dropped after header_timeout_s;
        # granian keeps serving everyone else meanwhile (tests/test_proof_hostile.py).
        http1_settings=HTTP1Settings(header_read_timeout=config.server.header_timeout_s * 1000),
        # A burst of CI jobs connecting at once queues instead of having SYNs dropped (128 by default).
        backlog=1024,
        # Connections served at once. granian's default (the backlog, 1,024) was what one client
        # filled with trickled bodies and long-polls; now no client may hold more than
        # max_requests_per_client of them in requests, and connections still sending headers
        # last header_timeout_s at most (api/admission.py).
        backpressure=config.server.max_connections,
    )
    adopt_granian_loggers()  # the constructor above reconfigured granian's loggers
    # granian's own backstop: past this it cancels the worker, app shutdown included, so it
    # must come after our cut-off plus most of the reserve (api/shutdown.py).
    server.workers_kill_timeout = max(budget - 0.5, 1.0)
    stopping: list[int] = []

    def on_signal(sig: int) -> None:
        if stopping:
            # Not a "press again to force": the frozen executable's bootloader forwards the
            # signal that a terminal or systemd also sends us directly, so a second one is the
            # same stop. The watchdog below bounds it either way.
            log.info("received %s again: already stopping", signal.Signals(sig).name)
            return
        stopping.append(sig)
        log.info("received %s: finishing requests in flight, then stopping", signal.Signals(sig).name)
        svc = getattr(app.state, "services", None)  # None while the lifespan has not built it
        shutdown = svc.shutdown if svc is not None else None
        if shutdown is not None:
            shutdown.begin()
            asyncio.get_running_loop().call_later(max(budget - LIFESPAN_RESERVE_S, 0.5), _cut_off, shutdown)
        _watchdog(budget + 1.0)
        server.stop()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        if early:
            log.info("stop requested during start-up: not serving")
            return
        try:
            await server.serve()
        except TimeoutError:
            # granian cancelled its worker (see above) before the app's shutdown finished.
            log.warning("the stop overran its budget: closing the database directly")
            svc = getattr(app.state, "services", None)
            if svc is not None:
                await svc.db.close()  # idempotent: drains queued writes, checkpoints the WAL

    try:
        _run(main())
    except OSError as exc:
        print(f"qahub: cannot listen on {config.server.host}:{config.server.port}: {exc.strerror}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # granian reports bind failures as RuntimeError("... (os error N)")
        if "os error" not in str(exc):
            raise
        print(f"qahub: cannot listen on {config.server.host}:{config.server.port}: {exc}", file=sys.stderr)
        return 2
    log.info("stopped")
    return 0


def _fit_open_files(connections: int) -> None:
    """Raise the soft limit of open files to hold `connections` sockets plus the database,
    attachments and logs: with the common soft limit of 1,024, accept() failed long before
    max_connections. Never above the hard limit, which only the administrator can raise."""
    try:
        import resource
    except ImportError:  # not on Windows; the limit there is far larger
        return
    want = connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < want:
            log.warning("open-files limit %d is below server.max_connections + 256 (%d): raise it (ulimit -n, "
                        "LimitNOFILE= in the systemd unit) or lower max_connections", target, want)


def _cut_off(shutdown) -> None:
    n = shutdown.cut_off()
    if n:
        log.warning("stop: %d requests still running at the deadline were answered 503", n)


def _watchdog(after_s: float) -> None:
    timer = threading.Timer(after_s, _overran, args=(after_s,))
    timer.daemon = True
    timer.start()


def _overran(after_s: float) -> None:
    log.error("the graceful stop did not finish within %.1f s: exiting now", after_s)
    _hard_exit()


def _hard_exit() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(1)


# The cyclic garbage collector's first generation, collected after this many new container
# objects (Python's default: 700). A 10,000-result ingest allocates hundreds of thousands of
# them, and with the default the collector ran so often, walking every young object while
# holding the GIL, that it set the status polls' tail: p99 28 ms idle and 68 ms while ingests ran
# back to back; 7.6 ms and 33-40 ms with these (bench/bench_poll.py, same machine, same run of
# the benchmark otherwise). The server makes little cyclic garbage (reference counting frees the
# rest), so collecting less often costs memory only briefly.
GC_THRESHOLDS = (50_000, 20, 10)


def _tune_garbage_collector() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


def _after_start(on_ready):
    """`on_ready`, preceded by gc.freeze(): what exists once the app has started (modules,
    templates, config) lives as long as the process, so the collector stops walking it."""

    def ready() -> None:
        gc.freeze()
        if on_ready is not None:
            on_ready()

    return ready


def _run(coro) -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is an optimisation, not a requirement
        asyncio.run(coro)
        return
    uvloop.run(coro)
