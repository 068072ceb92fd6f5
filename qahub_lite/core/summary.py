"""A run's summary for a pull request (GitHub's $GITHUB_STEP_SUMMARY, a GitLab merge-request
note) or a CI log: verdict, counts, the gate's verdict and reasons, new failures first, the
other failures grouped, flaky tests, the slowest tests and a link to the run page.

At most MAX_LINES lines whatever the run's size: every list is capped and says how many it
left out, and the whole text is cut at MAX_LINES as a last guard.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

from ..config import FlakyConfig, GradeConfig
from .errors import Conflict, NotFound
from ..db import tuples
from .export_rows import NAME_COLUMNS
from .gate import GateResult, evaluate
from .runs import Run
from .status import FAILING

Format = Literal["markdown", "text"]
MAX_LINES = 60
_FAILING = tuple(sorted(FAILING))
_FAILURE_ROWS = 10000  # failures read for grouping; a run with more says so
_LIST = 5  # entries per list
_WIDTH = 110
# Of each failure's message only the start is read: its first line groups it and 80 characters
# of that are shown, while 10,000 whole messages of 1 MB would be 10 GB in memory.
_MESSAGE_CHARS = 2000


class Failure(NamedTuple):
    test_id: int
    suite: str
    title: str
    status: str
    error_message: str | None
    signature: str | None = None  # core/signatures.py; None for results stored before it
    signature_label: str | None = None  # the group's representative message
    known: str | None = None  # the group's bug ticket, when triaged as a known issue


class Group(NamedTuple):
    key: str
    failures: list[Failure]
    known: str | None = None


def group_failures(failures: list[Failure]) -> list[Group]:
    """Failures grouped by failure signature (what broke: exception type and message with the
    volatile parts masked, docs/triage.md), largest group first. A result stored before
    signatures existed is grouped by the first line of its message."""
    groups: dict[str, list[Failure]] = {}
    labels: dict[str, str] = {}
    for f in failures:
        first = (f.error_message or "").strip().splitlines()
        line = first[0].strip() if first else f"({f.status.lower()}, no message)"
        key = f.signature or f"line:{line}"
        groups.setdefault(key, []).append(f)
        labels.setdefault(key, (f.signature_label or line) if f.signature else line)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), labels[kv[0]]))
    return [Group(labels[k], v, next((f.known for f in v if f.known), None)) for k, v in ordered]


class Facts(NamedTuple):
    run: Run
    url: str
    gate: GateResult | None
    gate_note: str | None  # why there is no gate verdict
    failures: list[Failure]
    failures_capped: bool
    flaky: list[tuple[str, str, int]]  # suite, title, attempts
    slowest: list[tuple[str, str, int]]  # suite, title, duration ms


def _rows(conn, sql: str, params: tuple) -> list[tuple]:
    return tuples.fetch(conn, sql, params)  # plain tuples (db/tuples.py)


_TEST = "FROM results r JOIN tests t ON t.id = r.test_id WHERE r.run_id = ?"


def gather(conn, run: Run, url: str, flaky_rules: FlakyConfig, grade_rules: GradeConfig) -> Facts:
    gate, note = None, None
    try:
        gate = evaluate(conn, run.project_id, run_ref=run.id, flaky_rules=flaky_rules, grade_rules=grade_rules)
    except (Conflict, NotFound) as exc:
        note = exc.message
    marks = ",".join("?" * len(_FAILING))
    failing = _rows(
        # A merged signature counts as the one it was merged into (core/triage.py).
        conn, f"SELECT r.test_id, {NAME_COLUMNS}, r.status, substr(r.error_message, 1, {_MESSAGE_CHARS}), s.hash, s.example, s.bug_ticket_key "
        "FROM results r JOIN tests t ON t.id = r.test_id "
        "LEFT JOIN failure_signatures s0 ON s0.id = r.signature_id "
        "LEFT JOIN failure_signatures s ON s.id = coalesce(s0.merged_into, s0.id) "
        f"WHERE r.run_id = ? AND r.status IN ({marks}) ORDER BY r.test_id LIMIT ?",
        (run.id, *_FAILING, _FAILURE_ROWS + 1),
    )
    flaky = _rows(conn, f"SELECT {NAME_COLUMNS}, r.attempts {_TEST} AND r.flaky = 1 "
                        "ORDER BY r.test_id LIMIT ?", (run.id, _LIST))
    slowest = _rows(conn, f"SELECT {NAME_COLUMNS}, r.duration_ms {_TEST} AND r.duration_ms IS NOT NULL "
                          "ORDER BY r.duration_ms DESC, r.test_id LIMIT ?", (run.id, _LIST))
    return Facts(run, url, gate, note, [Failure(*r) for r in failing[:_FAILURE_ROWS]],
                 len(failing) > _FAILURE_ROWS, flaky, slowest)


# The text summary is printed into CI logs, which read more than text: ANSI and OSC escapes
# (rewrite or hide lines, make links) and, in GitHub Actions, a line starting with "::" is a
# workflow command (`::error::`, `::add-mask::`, `::stop-commands::`). Control characters
# become U+FFFD, and a line can start with a name (the run's), so a leading ":" gets a
# zero-width space the runner does not trim.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _clip(text: str, width: int = _WIDTH) -> str:
    text = _CONTROL.sub("\ufffd", " ".join(text.split()))
    if text.startswith(":"):
        text = "\u200b" + text
    return text if len(text) <= width else text[: width - 1] + "…"


def _name(suite: str, title: str) -> str:
    return _clip(f"{suite} › {title}" if suite else title, 90)


def _duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)}m {int(seconds % 60):02d}s"


_ZWSP = "\u200b"


class _Out:
    """Markdown or plain text from the same calls."""

    def __init__(self, fmt: Format) -> None:
        self.md = fmt == "markdown"
        self.lines: list[str] = []

    def code(self, text: str) -> str:
        return f"`{text.replace('`', 'ˋ')}`" if self.md else text

    def plain(self, text: str) -> str:
        """Text outside code spans: GitHub renders HTML and markup in it, a test name must not."""
        if not self.md:
            return text
        text = re.sub(r"([\\`*_\[\]<>|#!~])", r"\\\1", text).replace("&", "&amp;")
        # GitHub links bare URLs, www. and e-mail addresses without any markup, and @name
        # notifies a user or a team in a pull request's comment: a zero-width space breaks each
        # while the text reads the same (the same rule as Mattermost messages, webhooks.py).
        text = text.replace("@", "@" + _ZWSP).replace("://", ":" + _ZWSP + "//")
        return re.sub(r"(?i)\bwww\.", lambda m: m.group(0)[:3] + _ZWSP + ".", text)

    def heading(self, text: str) -> None:
        self.lines += ["", f"### {text}" if self.md else f"{text}:"]

    def item(self, text: str) -> None:
        self.lines.append(f"- {text}" if self.md else f"  - {text}")

    def more(self, left: int, what: str) -> None:
        if left > 0:
            self.item(f"… and {left} more {what}")


def render(facts: Facts, fmt: Format = "markdown") -> str:
    run, out = facts.run, _Out(fmt)
    c = run.counts
    verdict = run.verdict or run.status
    mark = {"PASSED": "✅", "FAILED": "❌", "SKIPPED": "⚪"}.get(run.verdict or "", "⏳")
    title = f"qahub: run {run.short_id} {verdict}"
    out.lines.append(f"## {mark} {title}" if out.md else title)
    context = [out.plain(_clip(run.name, 80))]
    if run.ci.branch:
        context.append(f"branch {out.code(_clip(run.ci.branch, 200))}")
    if run.ci.commit:
        context.append(f"commit {out.code(_clip(run.ci.commit[:12]))}")
    if run.duration_ms is not None:
        context.append(f"took {_duration(run.duration_ms)}")
    out.lines.append(" · ".join(context))
    labels = ("total", "passed", "failed", "broken", "skipped", "flaky")
    values = (c.total, c.passed, c.failed, c.broken, c.skipped, c.flaky)
    if out.md:
        out.lines += ["", "| " + " | ".join(labels) + " |", "|" + "---:|" * len(labels),
                      "| " + " | ".join(str(v) for v in values) + " |"]
    else:
        out.lines.append(", ".join(f"{v} {k}" for k, v in zip(labels, values)))

    gate = facts.gate
    if gate is not None:
        state = "passed" if gate.passed else "failed"
        out.lines += ["", f"**Quality gate: {state}**" if out.md else f"Quality gate: {state}"]
        for reason in gate.reasons[:_LIST]:
            out.item(out.plain(_clip(reason)))
    else:
        out.lines += ["", f"Quality gate: not judged ({out.plain(_clip(facts.gate_note or 'no verdict'))})"]

    new_ids = {f.test_id for f in gate.new_failures} if gate is not None else set()
    if gate is not None and gate.new_failures:
        out.heading(f"New failures ({len(gate.new_failures)})")
        for f in gate.new_failures[:_LIST * 2]:
            first = (f.error_message or "").strip().splitlines()
            out.item(out.code(_name(f.suite, f.title)) + (f" — {out.code(_clip(first[0], 80))}" if first else ""))
        out.more(len(gate.new_failures) - _LIST * 2, "new failures")

    others = [f for f in facts.failures if f.test_id not in new_ids]
    if others:
        groups = group_failures(others)
        plus = "+" if facts.failures_capped else ""
        out.heading(f"{'Other failures' if new_ids else 'Failures'} ({len(others)}{plus}, by what broke)")
        for group in groups[:_LIST]:
            example = _name(group.failures[0].suite, group.failures[0].title)
            known = f" — known: {out.code(_clip(group.known, 40))}" if group.known else ""
            label = (group.key.strip().splitlines() or [""])[0]
            out.item(f"{len(group.failures)}× {out.code(_clip(label, 80))} — e.g. {out.code(example)}{known}")
        out.more(len(groups) - _LIST, "kinds of failure")

    if c.flaky:
        out.heading(f"Flaky ({c.flaky}: passed after a failed attempt)")
        for suite, title, attempts in facts.flaky:
            out.item(f"{out.code(_name(suite, title))} ({attempts} attempts)")
        out.more(c.flaky - len(facts.flaky), "flaky tests")

    if facts.slowest:
        out.heading("Slowest tests")
        for suite, title, ms in facts.slowest:
            out.item(f"{_duration(ms)} {out.code(_name(suite, title))}")

    out.lines += ["", f"[Open run {run.short_id} in qahub]({facts.url})" if out.md else f"Run page: {facts.url}"]
    lines = out.lines
    if len(lines) > MAX_LINES:  # every list is capped above; this guards the sum
        lines = lines[: MAX_LINES - 1] + ["…"]
    return "\n".join(lines) + "\n"
