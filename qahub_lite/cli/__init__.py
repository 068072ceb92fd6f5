"""The `qahub` command line. Each module registers its subcommands; every command and option
has help, errors are one line on stderr and a non-zero exit (2 for usage and config errors).
The top layer: it may import everything (server, app, core, db for the offline commands, the
clients for the remote ones)."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import admin, agent, copy, export, gate, ops, serve, split, summary, upload, users, wait

MODULES = [serve, admin, users, upload, wait, ops, copy, agent, gate, export, summary, split]


class CliError(Exception):
    """A failure to report as one line, with an exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qahub",
        description="qahub-lite: a self-hosted test-results hub. One executable, one TOML file, one SQLite file.",
        epilog="Run `qahub COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"qahub-lite {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in MODULES:
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except CliError as exc:
        print(f"qahub: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("qahub: interrupted", file=sys.stderr)
        return 130
