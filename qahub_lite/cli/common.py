"""What several commands share: finding and loading the config."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..config import Config, ConfigError, load_config


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="PATH",
        help="the qahub.toml to use (default: $QAHUB_CONFIG, else ./qahub.toml if present, else built-in defaults)",
    )


def config_path(args: argparse.Namespace) -> Path | None:
    if getattr(args, "config", None):
        return Path(args.config)
    if os.environ.get("QAHUB_CONFIG"):
        return Path(os.environ["QAHUB_CONFIG"])
    local = Path("qahub.toml")
    return local if local.exists() else None


def load(args: argparse.Namespace) -> Config:
    from . import CliError

    try:
        return load_config(config_path(args))
    except ConfigError as exc:
        raise CliError(f"config error: {exc}", 2) from None
