"""`qahub split`: this CI node's share of the test files (or test ids), balanced by how long
each took in recent runs of the default branch (`GET /api/v1/projects/{id}/timings`).

Every node runs the same command on the same checkout and prints its own share, one item a
line; the shares never overlap and together hold every item, because the split depends only on
the items, the figures and the node count (splitting.py). Two nodes that fetched the figures
at different moments (a run finished in between) could disagree: in a pipeline that runs its
default branch's tests constantly, fetch the figures once (`--save-timings` in an earlier job,
`--timings-file` on the nodes). An unreachable server is an error, never a silent guess: a
node that split without figures would disagree with the others.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Annotated

import msgspec

from .remote import add_server_options, make_client

# CI systems that number parallel nodes themselves: (total variable, index variable, first index)
_CI_NODES = (
    ("CI_NODE_TOTAL", "CI_NODE_INDEX", 1),  # GitLab `parallel:`
    ("CIRCLE_NODE_TOTAL", "CIRCLE_NODE_INDEX", 0),  # CircleCI
    ("BUILDKITE_PARALLEL_JOB_COUNT", "BUILDKITE_PARALLEL_JOB", 0),  # Buildkite
)


def register(commands) -> None:
    p = commands.add_parser(
        "split", help="print this CI node's share of the test files, balanced by past durations",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read test files (or test ids with --by test) from the arguments or stdin, one a line, and "
        "print the share of node --index out of --total, balanced by the median duration of each over the "
        "project's recent completed runs on its default branch. New files count as the median of the known "
        "ones; with no history at all the split is even by count. The same inputs give the same split on every "
        "node. See docs/ci.md.",
        epilog="--total/--index default to GitLab's CI_NODE_TOTAL/CI_NODE_INDEX (1-based), CircleCI's "
        "CIRCLE_NODE_TOTAL/CIRCLE_NODE_INDEX or Buildkite's BUILDKITE_PARALLEL_JOB_COUNT/BUILDKITE_PARALLEL_JOB.\n\n"
        "examples:\n"
        "  pytest $(git ls-files 'tests/test_*.py' | qahub split --project web-shop --total 4 --index 0)\n"
        "  npx playwright test $(find e2e -name '*.spec.ts' | qahub split --project web-shop)   # in GitLab parallel:",
    )
    p.add_argument("items", nargs="*", metavar="ITEM",
                   help="test files (or test ids); none: read them from stdin, one a line")
    add_server_options(p)
    p.add_argument("--project", metavar="ID", help="the project's id or slug (default: $QAHUB_PROJECT)")
    p.add_argument("--total", type=int, metavar="N", help="how many nodes share the tests")
    p.add_argument("--index", type=int, metavar="I", help="this node's number, from 0 to N-1")
    p.add_argument("--by", choices=("file", "test"), default="file",
                   help="what the items are: test files (default) or test ids such as tests/test_a.py::test_x")
    p.add_argument("--branch", metavar="BRANCH", help="whose history to balance by (default: the default branch)")
    p.add_argument("--runs", type=int, default=20, metavar="N", help="how many recent runs to take medians over "
                   "(default: 20, at most 100)")
    p.add_argument("--timings-file", metavar="PATH",
                   help="use figures saved by --save-timings instead of asking the server")
    p.add_argument("--save-timings", metavar="PATH", help="save the server's figures to PATH (and still split)")
    p.add_argument("--quiet", action="store_true", help="no line about the split on stderr")
    p.set_defaults(handler=run)


def node_numbers(total: int | None, index: int | None, environ) -> tuple[int, int]:
    """(total, 0-based index) from the options, else from the CI system's variables."""
    from . import CliError

    if total is None and index is None:
        for total_var, index_var, first in _CI_NODES:
            if environ.get(total_var) and environ.get(index_var):
                try:
                    total, index = int(environ[total_var]), int(environ[index_var]) - first
                except ValueError:
                    raise CliError(f"{total_var}/{index_var} are not numbers", 2) from None
                break
    if total is None or index is None:
        raise CliError("give --total and --index (or run inside GitLab parallel:, CircleCI or Buildkite)", 2)
    if total < 1:
        raise CliError("--total must be 1 or more", 2)
    if not 0 <= index < total:
        raise CliError(f"--index must be from 0 to {total - 1} (it counts from 0), not {index}", 2)
    return total, index


def read_items(args: argparse.Namespace, stdin) -> list[str]:
    from . import CliError

    if args.items:
        return args.items
    if stdin.isatty():
        raise CliError("no items: pass test files as arguments or pipe them in, one a line", 2)
    return [line.strip() for line in stdin if line.strip()]


def _figures(args: argparse.Namespace) -> dict:
    from ..client import ApiError
    from . import CliError

    if args.timings_file:
        try:
            with open(args.timings_file, encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read --timings-file {args.timings_file}: {exc}", 2) from None
    project = args.project or os.environ.get("QAHUB_PROJECT")
    if not project:
        raise CliError("no project: pass --project or set QAHUB_PROJECT", 2)
    params = {"by": args.by, "runs": str(args.runs)}
    if args.branch:
        params["branch"] = args.branch
    with make_client(args, quiet=args.quiet) as client:
        try:
            figures = client.get(f"/api/v1/projects/{project}/timings", params=params)
        except ApiError as exc:
            raise CliError(f"no timings, so no split (every node must split alike): {exc.message}", 2) from None
    if args.save_timings:
        with open(args.save_timings, "w", encoding="utf-8") as handle:
            json.dump(figures, handle)
    return figures


class _Timing(msgspec.Struct):
    key: str
    median_ms: Annotated[int, msgspec.Meta(ge=0)]


class _Timings(msgspec.Struct):
    data: list[_Timing] = []
    by: str | None = None
    runs: Annotated[int, msgspec.Meta(ge=0)] = 0


def _checked(figures) -> dict:
    """The figures as the split reads them, or a usage error: a --timings-file edited by hand, or
    an answer from something that is not a qahub server, must not end in a traceback."""
    from . import CliError

    try:
        msgspec.convert(figures, _Timings)
    except msgspec.ValidationError as exc:
        raise CliError(f"the timings are not what qahub serves ({exc}): no split", 2) from None
    return figures


def run(args: argparse.Namespace) -> int:
    from ..splitting import share_of
    from . import CliError

    total, index = node_numbers(args.total, args.index, os.environ)
    items = read_items(args, sys.stdin)
    figures = _checked(_figures(args))
    if figures.get("by", args.by) != args.by:
        raise CliError(f"the timings are by {figures.get('by')}, not by {args.by}", 2)
    known = {t["key"]: t["median_ms"] for t in figures.get("data", [])}
    share = share_of(items, known, total, index)
    sys.stdout.write("".join(f"{item}\n" for item in share.items))
    if not args.quiet:
        history = f"{figures.get('runs', 0)} runs of history" if figures.get("runs") else "no history: even by count"
        expected = f", about {share.expected_ms / 1000:.1f}s" if known else ""
        print(f"qahub: node {index + 1}/{total}: {len(share.items)} of {len(set(items))} {args.by}s{expected} "
              f"({history})", file=sys.stderr)
    return 0
