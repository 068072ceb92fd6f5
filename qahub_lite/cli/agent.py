"""`qahub agent`: run triggered tests on this machine (docs/triggers.md).

Long-polls the server for jobs of the frameworks agent.toml has commands for, runs each job's
command, and reports what the command's report says. Runs until SIGTERM or SIGINT: a command
in flight is killed and its job reported as stopped, then the agent exits 0 (an idle agent
first waits for its long-poll to end, at most poll_wait_s: cutting it off could lose a job the
server had just handed it). Several agents may share one server and key; each job goes to
exactly one of them.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

import msgspec

from .remote import add_server_options, make_client


def register(commands) -> None:
    p = commands.add_parser(
        "agent", help="run triggered tests on this machine (Qualigate / QA.tech triggers)",
        description="Ask the server for triggered tests, run them with the command agent.toml configures for "
        "their framework, and report the results. The API never sends a command: only agent.toml says what "
        "runs here. Stops cleanly on SIGTERM or Ctrl-C.",
    )
    add_server_options(p)
    p.add_argument("--config", metavar="PATH", default="agent.toml",
                   help="the agent's TOML file: one command per framework (default: ./agent.toml; "
                   "see docs/agent.example.toml)")
    p.add_argument("--name",
                   help="name shown in GET /api/v1/agents (default: `name` in the config, else the host name)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info",
                   help="least severe level logged (default: info)")
    p.add_argument("--log-format", choices=["text", "json"], default="text",
                   help="log lines for people (text) or collectors (json)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..agent.config import AgentConfigError, load_agent_config
    from ..agent.loop import Agent, AgentStopped
    from ..logs import setup_logging
    from . import CliError

    setup_logging(args.log_level, args.log_format)
    # One line per long-poll would drown what the agent says about its jobs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        settings = load_agent_config(args.config)
    except AgentConfigError as exc:
        raise CliError(f"config error: {exc}", 2) from None
    if args.name:
        settings = msgspec.structs.replace(settings, name=args.name)
    if not settings.workdir_path.is_dir():
        raise CliError(f"config error: workdir {settings.workdir_path} is not a folder", 2)
    client = make_client(args)
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        print(f"qahub agent: {signal.Signals(signum).name}: stopping", file=sys.stderr, flush=True)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    agent = Agent(client, settings, stop=stop)
    try:
        agent.run_forever()
    except AgentStopped as exc:
        raise CliError(str(exc), 1) from None
    finally:
        client.close()
    return 0
