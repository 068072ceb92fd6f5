"""Shared normalisation rules every format parser applies to what it read.

One place decides how a run of attempts becomes a final status, how durations written as
``"1,234.5"``, ``"0,288"`` or ``"00:00:01.25"`` become milliseconds, how captured output is
bounded and how terminal colour codes are removed. Keeping these rules here is what makes a test
look the same in the hub whichever report format it arrived in.

Canonical statuses (see `model.py`): PASSED, FAILED, BROKEN, SKIPPED, UNKNOWN. The corpus'
normalisation (INDEX.md) maps: passed -> PASSED, failed -> FAILED, error -> BROKEN,
skipped -> SKIPPED, flaky -> PASSED with ``flaky=True``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from .model import MAX_OUTPUT_CHARS, Attempt, ParsedResult, ReportAttachment
from . import tags as _tags

PASSED = "PASSED"
FAILED = "FAILED"
BROKEN = "BROKEN"
SKIPPED = "SKIPPED"
UNKNOWN = "UNKNOWN"

_FAILING = (FAILED, BROKEN)

# CSI sequences (colours, cursor moves) and OSC sequences (hyperlinks) as written by Jest,
# Vitest, Playwright and chalk. A message full of "\x1b[31m" is unreadable in a browser.
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_TRUNCATED = "\n… [truncated by qahub: {} more characters]"
_TIMESPAN_RE = re.compile(r"^(?:(\d+)\.)?(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def strip_ansi(text: str | None) -> str | None:
    if not text or "\x1b" not in text:
        return text
    return _ANSI_RE.sub("", text)


def bound(text: str | None, limit: int = MAX_OUTPUT_CHARS) -> str | None:
    """Empty -> None; longer than `limit` -> head kept plus a marker saying how much was cut.

    The head is kept rather than the tail because messages and traces put the cause first.
    """
    if not text:
        return None
    if len(text) <= limit:
        return text
    marker = _TRUNCATED.format(len(text) - limit)
    return text[: max(0, limit - len(marker))] + marker


def clean(text: str | None, limit: int = MAX_OUTPUT_CHARS) -> str | None:
    """Colour codes removed, bounded, None when blank."""
    text = strip_ansi(text)
    if text is None or not text.strip():
        return None
    return bound(text, limit)


def first_line(text: str | None) -> str | None:
    if not text:
        return None
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return None


def _number(value: str) -> float | None:
    """Parse a decimal written by any tool we know: "0.017", "1,234.5", "0,288", "1.234,5".

    A comma is a thousands separator when the number also has a dot after it, when there are
    several commas, or when exactly three digits follow a single comma and the integer part is
    not zero (Surefire's ``#,##0.###`` pattern writes ``1,234`` for 1234 s). Otherwise it is a
    decimal comma (locale-formatted MSTest/xUnit output such as ``0,288``).
    """
    text = value.strip().replace("\u00a0", "").replace(" ", "").replace("_", "")
    if not text:
        return None
    if "," in text:
        if "." in text:
            if text.rfind(",") > text.rfind("."):  # European "1.234,5"
                text = text.replace(".", "").replace(",", ".")
            else:
                text = text.replace(",", "")
        elif text.count(",") > 1:
            text = text.replace(",", "")
        else:
            whole, frac = text.split(",")
            if len(frac) == 3 and whole.lstrip("+-") not in ("", "0"):
                text = whole + frac
            else:
                text = whole + "." + frac
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number):  # "nan", "inf"
        return None
    return number


def seconds_to_ms(value: str | float | int | None) -> int | None:
    """JUnit-style seconds -> whole milliseconds. Unparseable ("<<computed>>") -> None."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        number: float | None = float(value)
    else:
        try:  # the common case, "0.017": skip the separator analysis
            number = float(value)
        except ValueError:
            number = _number(value)
        else:
            if not math.isfinite(number):  # called per test: no float("inf") parsing here
                number = None
    if number is None or number < 0:
        return None
    return int(round(number * 1000))


def ms(value: str | float | int | None) -> int | None:
    """A duration already in milliseconds (JSON reporters); tolerant of strings and floats."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        number = _number(value)
    else:
        number = float(value)
    if number is None or number < 0:
        return None
    return int(round(number))


def timespan_to_ms(value: str | None) -> int | None:
    """.NET TimeSpan ``[d.]hh:mm:ss[.fffffff]`` (TRX ``duration``) -> milliseconds."""
    if not value:
        return None
    match = _TIMESPAN_RE.match(value.strip())
    if not match:
        return seconds_to_ms(value)
    days, hours, minutes, seconds = match.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return int(round(total * 1000))


def final_status(attempts: Sequence[Attempt]) -> tuple[str, bool]:
    """Final status is the last attempt's; flaky when it passed after a failing attempt."""
    if not attempts:
        return UNKNOWN, False
    if len(attempts) == 1:
        return attempts[0].status, False
    last = attempts[-1].status
    flaky = last == PASSED and any(a.status in _FAILING for a in attempts[:-1])
    return last, flaky


def build(
    title: str,
    attempts: Sequence[Attempt],
    *,
    suite_path: Sequence[str] = (),
    file: str | None = None,
    line: int | None = None,
    stdout: str | None = None,
    stderr: str | None = None,
    tags: Iterable[str] = (),
    properties: Iterable[tuple[str, str]] = (),
    annotations: Iterable[tuple[str, str | None]] = (),
    keywords: Iterable[str] = (),
    attachments: Sequence[ReportAttachment] = (),
    duration_ms: int | None = None,
    status: str | None = None,
    flaky: bool | None = None,
) -> ParsedResult:
    """Assemble one `ParsedResult` from its attempts (oldest first).

    The final attempt supplies status, duration and error unless given explicitly (some formats
    state the final outcome separately from the attempts). `attempts` is stored only when there
    was more than one execution: a single attempt *is* the result, and the 20,000-test reports
    should not carry 20,000 redundant copies.
    """
    computed_status, computed_flaky = final_status(attempts)
    last = attempts[-1] if attempts else None
    if status is None:
        status = computed_status
    if flaky is None:
        flaky = computed_flaky
    if tags or properties or annotations or keywords or "@" in title or "hub" in title.lower():
        tag_list, code = _tags.extract(
            title, tags=tags, properties=properties, annotations=annotations, keywords=keywords
        )
    else:  # nothing to find: the 20,000-test reports take this path almost always
        tag_list, code = [], None
    error_message = error_stack = None
    if last is not None and status in _FAILING:
        error_message, error_stack = last.error_message, last.error_stack
    elif last is not None and status == SKIPPED:
        error_message = last.error_message  # the skip reason
    if duration_ms is None and last is not None:
        duration_ms = last.duration_ms
    return ParsedResult(
        title=title,
        status=status,
        suite_path=[s for s in suite_path if s],
        flaky=flaky,
        duration_ms=duration_ms,
        error_message=error_message,
        error_stack=error_stack,
        stdout=clean(stdout) if stdout else None,
        stderr=clean(stderr) if stderr else None,
        file=file or None,
        line=line if line is None or line >= 0 else None,
        attempts=list(attempts) if len(attempts) > 1 else [],
        tags=tag_list,
        test_case_code=code,
        attachments=list(attachments),
    )


def attempt(
    status: str,
    duration_ms: int | None = None,
    message: str | None = None,
    stack: str | None = None,
) -> Attempt:
    """An `Attempt` with message/stack cleaned; the message falls back to the stack's first line."""
    message = clean(message)
    stack = clean(stack)
    if message is None and stack is not None and status in _FAILING:
        message = first_line(stack)
    return Attempt(status=status, duration_ms=duration_ms, error_message=message, error_stack=stack)


def as_int(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
