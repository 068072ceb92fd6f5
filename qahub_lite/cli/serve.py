"""`qahub serve`."""

from __future__ import annotations

import argparse
import logging
import sys

import msgspec

from .common import add_config_option, load


def register(commands) -> None:
    p = commands.add_parser(
        "serve", help="serve the API and dashboard",
        description="Serve the API and the dashboard from one process. On an empty database, creates the default "
        "tenant and an admin key and prints the key once.",
    )
    add_config_option(p)
    p.add_argument("--host", help="address to listen on (default: server.host, or $QAHUB_HOST)")
    p.add_argument("--port", type=_port, help="port to listen on (default: server.port, or $QAHUB_PORT)")
    p.add_argument("--log-format", choices=["text", "json"], help="log lines for people (text) or collectors (json)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="least severe level logged")
    p.set_defaults(handler=run)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, not {port}")
    return port


def run(args: argparse.Namespace) -> int:
    from ..bootstrap import ensure_initialized
    from ..core.retention_policy import describe as describe_retention
    from ..logs import setup_logging
    from ..server import serve

    config = load(args)
    server = config.server
    if args.host or args.port is not None:
        server = msgspec.structs.replace(
            server, host=args.host or server.host, port=server.port if args.port is None else args.port
        )
    logging_cfg = msgspec.structs.replace(
        config.logging, format=args.log_format or config.logging.format, level=args.log_level or config.logging.level
    )
    config = msgspec.structs.replace(config, server=server, logging=logging_cfg)
    setup_logging(config.logging.level, config.logging.format)
    boot = ensure_initialized(config, first_user=True)
    if boot.admin_key:
        # Printed once, to the terminal only: never logged, never shown again.
        print(
            "\n  First start: created the default tenant and an admin API key.\n"
            f"  Admin key (shown once, store it now): {boot.admin_key}\n"
            f"  Retention: {describe_retention(config.retention)}\n",
            file=sys.stdout, flush=True,
        )
    if boot.admin_password:
        print(
            f"  Dashboard: sign in at {config.public_url}/login as `admin` with this password "
            f"(shown once; change it with `qahub users passwd admin`): {boot.admin_password}\n",
            file=sys.stdout, flush=True,
        )
    from ..db import engine as engines

    # Where the data is: the data folder, and on PostgreSQL the database too (without a password).
    where = str(config.data_dir) if not config.storage.url else \
        f"{engines.from_config(config).describe()}, attachments: {config.attachments_dir}"

    def ready() -> None:
        if config.logging.format == "json":
            # A log collector reads every line as JSON in this mode: the banner is a log record.
            logging.getLogger("qahub.server").info("qahub-lite serving on %s (data: %s)", config.public_url, where)
            return
        print(f"qahub-lite serving on {config.public_url} (data: {where})", flush=True)

    return serve(config, on_ready=ready)
