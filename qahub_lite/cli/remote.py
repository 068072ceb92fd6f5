"""What the commands that talk to a running server share (upload, wait): the --url and
--token options with their environment variables, and a client that says when it retries.

Unlike the admin commands these never open the database: they work from any machine that can
reach the server, which is how a CI job uses them.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..client import QahubClient


def add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", metavar="URL",
                        help="the server's base URL, e.g. https://qahub.example.com (default: $QAHUB_URL)")
    parser.add_argument("--token", metavar="KEY",
                        help="an API key (qh_...); prefer $QAHUB_TOKEN, which stays out of shell history and "
                        "process lists")
    parser.add_argument("--retries", type=int, default=5, metavar="N",
                        help="attempts after a 429, a 5xx or a connection error, with backoff that honours "
                        "Retry-After (default: 5)")


def server_url(args: argparse.Namespace) -> str | None:
    return args.url or os.environ.get("QAHUB_URL") or None


def server_token(args: argparse.Namespace) -> str | None:
    return args.token or os.environ.get("QAHUB_TOKEN") or None


def make_client(args: argparse.Namespace, *, quiet: bool = False) -> QahubClient:
    """A client for the server named by --url/$QAHUB_URL with --token/$QAHUB_TOKEN; a usage
    error (exit 2) when either is missing."""
    from . import CliError

    url, token = server_url(args), server_token(args)
    if not url:
        raise CliError("no server URL: pass --url or set QAHUB_URL", 2)
    if not url.startswith(("http://", "https://")):
        raise CliError(f"--url must start with http:// or https://, not {url!r}", 2)
    if not token:
        raise CliError("no API key: pass --token or set QAHUB_TOKEN", 2)
    if "/api/" in url.split("://", 1)[1] or url.rstrip("/").endswith("/api"):
        # Every path is built from the base; `.../api/v1` would end in `/api/v1/api/v1/...` (404).
        raise CliError(f"--url is the server's base URL (e.g. https://qahub.example.com), not an API path: {url!r}", 2)
    if args.retries < 0:
        raise CliError("--retries must be 0 or more", 2)

    def on_retry(reason: str, delay: float) -> None:
        if not quiet:
            print(f"qahub: {reason}; retrying in {delay:.1f}s", file=sys.stderr, flush=True)

    return QahubClient(url, token, retries=args.retries, on_retry=on_retry)
