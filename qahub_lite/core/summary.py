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


class Group(NamedTuple):
    key: str
    failures: list[Failure]


def group_failures(failures: list[Failure]) -> list[Group]:
    """Failures grouped by the first line of their error message, largest group first.

    A stand-in: failure signatures (exception type and message with the volatile parts masked,
    DESIGN.md) will replace this function; the summary only needs (key, failures) groups."""
    groups: dict[str, list[Failure]] = {}
    for f in failures:
        first = (f.error_message or "").strip().splitlines()
        groups.setdefault(first[0].strip() if first else f"({f.status.lower()}, no message)", []).append(f)
    return [Group(k, v) for k, v in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))]


class Facts(NamedTuple):
    run: Run
    url: str
    gate: GateResult | None
    gate_note: str | None  # why there is no gate verdict
    failures: list[Failure]
    failures_capped: bool
    flaky: list[tuple[str, str, int]]  # suite, title, attempts
    slowest: list[tuple[str, str, int]]  # suite, title, duration ms


async def _rows(conn, sql: str, params: tuple) -> list[tuple]:
    cursor = await conn.cursor()
    try:
        cursor.row_factory = None
        await cursor.execute(sql, params)
        return await cursor.fetchall()
    finally:
        await cursor.close()


_TEST = "FROM results r JOIN tests t ON t.id = r.test_id WHERE r.run_id = ?"


async def gather(conn, run: Run, url: str, flaky_rules: FlakyConfig, grade_rules: GradeConfig) -> Facts:
    gate, note = None, None
    try:
        gate = await evaluate(conn, run.project_id, run_ref=run.id, flaky_rules=flaky_rules, grade_rules=grade_rules)
    except (Conflict, NotFound) as exc:
        note = exc.message
    marks = ",".join("?" * len(_FAILING))
    failing = await _rows(
        conn, f"SELECT r.test_id, {NAME_COLUMNS}, r.status, substr(r.error_message, 1, {_MESSAGE_CHARS}) "
        f"{_TEST} AND r.status IN ({marks}) "
        "ORDER BY r.test_id LIMIT ?", (run.id, *_FAILING, _FAILURE_ROWS + 1),
    )
    flaky = await _rows(conn, f"SELECT {NAME_COLUMNS}, r.attempts {_TEST} AND r.flaky = 1 "
                        "ORDER BY r.test_id LIMIT ?", (run.id, _LIST))
    slowest = await _rows(conn, f"SELECT {NAME_COLUMNS}, r.duration_ms {_TEST} AND r.duration_ms IS NOT NULL "
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
        out.heading(f"{'Other failures' if new_ids else 'Failures'} ({len(others)}{plus}, by first error line)")
        for group in groups[:_LIST]:
            example = _name(group.failures[0].suite, group.failures[0].title)
            out.item(f"{len(group.failures)}× {out.code(_clip(group.key, 80))} — e.g. {out.code(example)}")
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
