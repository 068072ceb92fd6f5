"""`qahub gate`: the quality gate as a CI step. Asks the server's
`GET /api/v1/projects/{id}/gate` about a run (or a branch's latest finished run), prints the
verdict with every check, and exits 0 when the gate passed, 1 when it failed, 2 when no verdict
could be had (bad options, unknown project or run, a run still running, server unreachable).

Rules given here win over the project's settings.gate; the server applies its defaults for the
rest (docs/health.md).
"""

from __future__ import annotations

import argparse
import sys

import msgspec

from .remote import add_server_options, make_client

_LETTERS = ("A", "B", "C", "D", "F")


def register(commands) -> None:
    p = commands.add_parser(
        "gate", help="check a run against the quality gate; exit 0 pass, 1 fail, 2 error",
        description="Judge a finished run (--run) or a branch's latest finished run (--branch; default: the "
        "project's default branch) against the quality gate: minimum grade, no new failures against the "
        "default branch's baseline, most failures allowed; quarantined tests are ignored. Prints every check "
        "and the failures it set aside (and why), and exits 0 when the gate passed, 1 when it failed, 2 when there is no verdict.",
    )
    add_server_options(p)
    p.add_argument("--project", required=True, metavar="ID",
                   help="the project's id or slug")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--run", metavar="RUN", help="the run to judge: its id or short id")
    which.add_argument("--branch", metavar="BRANCH",
                       help="judge this branch's latest finished run (default: the project's default branch)")
    p.add_argument("--min-grade", choices=_LETTERS, metavar="GRADE",
                   help="fail below this grade, A to F (the grade the default branch would have with this run)")
    p.add_argument("--max-failures", type=_count, metavar="N", help="fail with more than N failing tests")
    p.add_argument("--no-new-failures", action="store_true", default=None,
                   help="fail when a test that passed in the baseline fails in this run (the server's default)")
    p.add_argument("--allow-new-failures", dest="no_new_failures", action="store_false",
                   help="do not judge new failures (overrides the project's settings)")
    p.add_argument("--include-quarantined", action="store_true",
                   help="count quarantined tests too (by default the gate ignores them)")
    p.add_argument("--ignore-known-environment", action="store_true",
                   help="set aside failures whose signature is triaged as a known `environment` issue "
                   "(docs/triage.md; off unless asked here or in settings.gate)")
    p.add_argument("--json", action="store_true", help="print the server's whole answer as JSON")
    p.set_defaults(handler=run)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def query(args: argparse.Namespace) -> dict[str, str]:
    params: dict[str, str] = {}
    if args.run:
        params["run_id"] = args.run
    if args.branch is not None:
        params["branch"] = args.branch
    if args.min_grade:
        params["min_grade"] = args.min_grade
    if args.max_failures is not None:
        params["max_failures"] = str(args.max_failures)
    if args.no_new_failures is not None:
        params["no_new_failures"] = "true" if args.no_new_failures else "false"
    if args.include_quarantined:
        params["ignore_quarantined"] = "false"
    if args.ignore_known_environment:
        params["ignore_known_environment"] = "true"
    return params


def run(args: argparse.Namespace) -> int:
    from ..client import ApiError
    from . import CliError

    with make_client(args) as client:
        try:
            answer = client.get(f"/api/v1/projects/{args.project}/gate", params=query(args))
        except ApiError as exc:
            raise CliError(f"no gate verdict: {exc.message}", 2) from None
    if args.json:
        sys.stdout.write(msgspec.json.encode(answer).decode() + "\n")
    else:
        print(report(answer))
    return 0 if answer.get("passed") else 1


def report(answer: dict) -> str:
    """The verdict and every check, one line each, for a CI log."""
    grade = answer.get("grade") or {}
    where = f" on {answer['branch']}" if answer.get("branch") else ""
    lines = [
        f"gate {'PASSED' if answer.get('passed') else 'FAILED'} for run {answer.get('short_id')}{where}"
        + (f" (grade {grade['grade']}, {grade['score']:g}/100)" if grade.get("grade") else "")
    ]
    for check in answer.get("checks", []):
        lines.append(f"  {'ok  ' if check['passed'] else 'FAIL'} {check['rule']}: {check['message']}")
    aside = answer.get("set_aside") or []
    if aside:
        lines.append(f"  set aside {len(aside)} failure(s), not counted:")
        for item in aside[:50]:
            why = "quarantined" if item["why"] == "quarantined" else "known environment issue"
            lines.append(f"    - {item['title']} ({item['status']}): {why}: {item['detail']}")
        if len(aside) > 50:
            lines.append(f"    … and {len(aside) - 50} more")
    recorded = answer.get("recorded")
    if recorded and answer.get("changed_since_recorded"):
        lines.append(
            f"  note: this run's verdict was first recorded as {'PASSED' if recorded['passed'] else 'FAILED'} "
            f"at {recorded['computed_at']}; it would be {'PASSED' if answer.get('passed') else 'FAILED'} now"
        )
    return "\n".join(lines)
