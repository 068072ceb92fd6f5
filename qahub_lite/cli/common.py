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


def load_existing(args: argparse.Namespace) -> Config:
    """The config of a hub that exists. Without a config file (no --config, no $QAHUB_CONFIG,
    no ./qahub.toml here) and without a database at the default place, a command that manages
    a hub is most likely run from the wrong folder: creating an empty hub there would hand out
    keys and users that no running server knows. Say so instead."""
    from . import CliError

    config = load(args)
    if config_path(args) is None and not config.storage.url and not config.db_path.exists():
        raise CliError(
            f"no qahub.toml in {Path.cwd()} and no database at {config.db_path}: "
            "pass --config PATH (or set QAHUB_CONFIG), or run this in the folder that holds qahub.toml", 2
        )
    return config
