"""The native ingest payload built from parsed reports, and saved payload files.

`qahub upload` and the pytest plugin both build a `Payload`: the run's fields (`RunInfo`),
the results in the native ingest's shape (seeds 000/001: status, title, suite,
test_case_code, duration_ms, error_message, error_stack, flaky, attempts,
previous_attempts, file, line, stdout, stderr) and the files the reports reference. The
server validates every item; this module only shapes results to fit its limits, so that an
over-long title from a generated test is clipped rather than rejected.

A payload can be saved to a file (the pytest plugin does when the server cannot be reached)
and sent later by `qahub upload FILE`.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import msgspec

from .ci_env import CiInfo
from .wire import QAHUB_INPUT
from .reports import ParsedReport, ParsedResult

# Suite path parts joined for the native `suite` field; the separator Playwright's own
# reporters print, unlikely to appear inside a describe block's name.
SUITE_SEPARATOR = " › "
# The server's field limits (api/native_schema.py).
_TEXT_MAX = 1000
_LONG_MAX = 1_000_000
_CODE_MAX = 64
_PREVIOUS_MAX = 100
VARIANT_MAX = 200
_TAG_MAX = 100
_TAGS_MAX = 50

# Format names people type (seed 000 uses `--format playwright`) -> the parsers' names.
FORMAT_ALIASES = {
    "junit-xml": "junit", "junitxml": "junit", "xunit": "junit", "surefire": "junit",
    "playwright": "playwright-json",
    "jest": "jest-json", "vitest": "jest-json", "vitest-json": "jest-json",
    "mocha": "mocha-json", "cypress": "mochawesome",
    "pytest-json-report": "pytest-json",
    "go": "go-json", "gotest": "go-json", "go-test": "go-json",
    "tap13": "tap", "tap14": "tap",
    "mstest": "trx", "vstest": "trx", "dotnet": "trx",
    "nunit3": "nunit",
    "rspec": "rspec-json",
    "dart": "dart-json", "flutter": "dart-json",
    "allure-results": "allure",
}


def resolve_format(name: str, known: dict[str, str]) -> str:
    """The parsers' name for `name` (a name of `known` or an alias). Raises ValueError."""
    lowered = name.strip().lower()
    if lowered in known:
        return lowered
    if lowered in FORMAT_ALIASES:
        return FORMAT_ALIASES[lowered]
    names = ", ".join([*known, *FORMAT_ALIASES])
    raise ValueError(f"unknown format {name!r} (use one of: {names})")


def framework_of(fmt: str) -> str:
    """The run's `framework` label for a report format: playwright-json -> playwright."""
    return fmt.removesuffix("-json")


class RunInfo(msgspec.Struct, omit_defaults=True):
    """The run-level fields of the native ingest body."""

    project_id: str = ""
    run_name: str | None = None
    environment: str | None = None
    framework: str | None = None
    ci: CiInfo | None = None
    started_at: str | None = None  # ISO 8601, from the reports when they say
    duration_ms: int | None = None


class PendingAttachment(msgspec.Struct, omit_defaults=True):
    """A file to attach to the result at `index` of the payload once the run exists."""

    index: int
    path: str
    name: str
    content_type: str | None = None
    # The folder of the report that named the file: attachments are sent only from there or
    # from the repository root (upload.confine).
    report_dir: str | None = None


class Payload(msgspec.Struct):
    """What one upload sends. Also the format of a saved payload file (the pytest plugin writes
    one when the server cannot be reached; `qahub upload FILE` sends it later), which is why the
    marker field comes first: `is_saved_payload` recognises a file by its first bytes."""

    qahub_saved_payload: int = 1
    saved_at: str | None = None
    run: RunInfo = msgspec.field(default_factory=RunInfo)
    results: list[dict] = []
    attachments: list[PendingAttachment] = []


class Counts(msgspec.Struct):
    tests: int = 0
    passed: int = 0
    failed: int = 0
    broken: int = 0
    skipped: int = 0
    unknown: int = 0
    flaky: int = 0

    @property
    def failing(self) -> bool:
        return bool(self.failed or self.broken)


def count(results: list[dict]) -> Counts:
    """Counts of native result dicts by status. As in the server's run counts, a flaky test
    (passed after a failed attempt) counts as passed, and also as flaky."""
    counts = Counts()
    for result in results:
        counts.tests += 1
        field = str(result.get("status", "UNKNOWN")).lower()
        if field in ("passed", "failed", "broken", "skipped"):
            setattr(counts, field, getattr(counts, field) + 1)
        else:
            counts.unknown += 1
        if field == "passed" and result.get("flaky"):
            counts.flaky += 1
    return counts


def _clip(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    marker = "…[truncated]"
    return text[: limit - len(marker)] + marker


def _status(status: str) -> str:
    return status if status in QAHUB_INPUT else "UNKNOWN"


def native_result(result: ParsedResult, framework: str | None = None) -> dict:
    """One parsed result in the shape of the native ingest's `results[]` items."""
    out: dict = {"status": _status(result.status), "title": _clip(result.title, _TEXT_MAX)}
    if result.suite_path:
        out["suite"] = _clip(SUITE_SEPARATOR.join(result.suite_path), _TEXT_MAX)
    if result.test_case_code and len(result.test_case_code) <= _CODE_MAX:
        out["test_case_code"] = result.test_case_code
    if result.duration_ms is not None and result.duration_ms >= 0:
        out["duration_ms"] = result.duration_ms
    for field, limit in (("error_message", _LONG_MAX), ("error_stack", _LONG_MAX), ("stdout", _LONG_MAX),
                         ("stderr", _LONG_MAX), ("file", _TEXT_MAX)):
        value = getattr(result, field)
        if value:
            out[field] = _clip(value, limit)
    if result.line is not None and result.line >= 0:
        out["line"] = result.line
    if framework:
        out["framework"] = framework
    if result.variant:
        out["variant"] = _clip(result.variant, VARIANT_MAX)
    if result.tags:
        out["tags"] = [tag[:_TAG_MAX] for tag in result.tags[:_TAGS_MAX]]
    if result.flaky:
        out["flaky"] = True
    if len(result.attempts) > 1:
        out["attempts"] = len(result.attempts)
        previous = result.attempts[:-1][-_PREVIOUS_MAX:]  # the server keeps at most 100
        out["previous_attempts"] = [
            {
                "status": _status(a.status),
                **({"duration_ms": a.duration_ms} if a.duration_ms is not None and a.duration_ms >= 0 else {}),
                **({"error_message": _clip(a.error_message, _LONG_MAX)} if a.error_message else {}),
            }
            for a in previous
        ]
    return out


def add_report(payload: Payload, report: ParsedReport, framework: str | None = None) -> tuple[int, int]:
    """Append a parsed report's results (and the files they reference) to `payload`.
    Returns the (start, end) slice of `payload.results` they occupy."""
    start = len(payload.results)
    source = Path(report.source)
    report_dir = str(source if source.is_dir() else source.parent)
    for result in report.results:
        index = len(payload.results)
        payload.results.append(native_result(result, framework))
        seen: set[str] = set()
        for attachment in result.attachments:
            if attachment.path in seen:
                continue
            seen.add(attachment.path)
            payload.attachments.append(
                PendingAttachment(index, attachment.path, attachment.name, attachment.content_type, report_dir)
            )
    return start, len(payload.results)


def add_saved(payload: Payload, saved: Payload) -> tuple[int, int]:
    """Append a saved payload's results and attachments to `payload`."""
    offset = len(payload.results)
    payload.results.extend(saved.results)
    payload.attachments.extend(msgspec.structs.replace(a, index=a.index + offset) for a in saved.attachments)
    return offset, len(payload.results)


# --- saved payloads -------------------------------------------------------------------

_SAVED_HEAD = re.compile(rb'^\s*\{\s*"qahub_saved_payload"\s*:')
_payload_decoder = msgspec.json.Decoder(Payload)


def is_saved_payload(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(256)
    except OSError:
        return False
    return bool(_SAVED_HEAD.match(head.removeprefix(b"\xef\xbb\xbf")))


def load_payload(path: Path) -> Payload:
    """Read a saved payload. Raises ValueError naming the file when it is not a valid one."""
    try:
        return _payload_decoder.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError) as exc:
        raise ValueError(f"{path}: not a valid saved qahub payload ({exc})") from None


def save_payload(payload: Payload, path: Path) -> Path:
    """Write `payload` to `path` (atomically: a half-written file would be worse than none)."""
    stamped = msgspec.structs.replace(payload, saved_at=dt.datetime.now(dt.timezone.utc).isoformat())
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(stamped), indent=1))
    tmp.replace(path)
    return path
