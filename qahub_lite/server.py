"""Serving: granian's embedded server in this very process.

Why embedded and one process: qahub-lite has one writer and an in-process rate limiter, so
exactly one process must own the database. granian's default multi-process mode also imports
the app by dotted name in fresh processes, which fails inside a PyInstaller onefile build
("Could not import"); the embedded server serves the app object we built, on our event loop,
and stops when we tell it to.

Graceful stop: SIGTERM or SIGINT stops accepting connections, lets requests in flight finish,
runs the app's shutdown (background jobs stop, queued writes drain, WAL checkpoint) and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from .app import create_app
from .config import Config

log = logging.getLogger("qahub.server")


def serve(config: Config, on_ready=None) -> int:
    """Serve until SIGTERM/SIGINT. `on_ready()` is called once the socket listens and the
    database is open (so a line saying "serving" is true when it is printed)."""
    from granian.constants import Interfaces
    from granian.server.embed import Server

    # A stop asked for while we are still starting is honoured, not fatal: remember it until
    # the event loop's handlers take over.
    early: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: early.append(signum))

    app = create_app(config, on_ready=on_ready)
    server = Server(
        app,
        address=config.server.host,
        port=config.server.port,
        interface=Interfaces.ASGI,
        log_enabled=True,
        log_access=False,  # our middleware writes the access log (without keys)
        websockets=False,
    )
    server.workers_kill_timeout = config.server.shutdown_timeout_s

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _stop, server, sig)
        if early:
            log.info("stop requested during start-up: not serving")
            return
        await server.serve()

    try:
        _run(main())
    except OSError as exc:
        print(f"qahub: cannot listen on {config.server.host}:{config.server.port}: {exc.strerror}", file=sys.stderr)
        return 2
    log.info("stopped")
    return 0


def _stop(server, sig) -> None:
    log.info("received %s: finishing requests in flight, then stopping", signal.Signals(sig).name)
    server.stop()


def _run(coro) -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is an optimisation, not a requirement
        asyncio.run(coro)
        return
    uvloop.run(coro)
