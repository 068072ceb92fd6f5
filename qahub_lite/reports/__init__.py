"""Test-report parsers: every supported format read into `ParsedResult` records; they import
only reports/ and produce records, nothing else (any layer may use them).

    >>> from qahub_lite.reports import parse_report
    >>> report = parse_report("results/junit.xml")          # format detected from content
    >>> report.format, len(report.results)

`iter_report_files` expands folders (an Allure results folder counts as one report) and
`FORMATS` describes the formats for ``--help``. Normalisation rules shared by all formats live
in `normalize.py`; the format modules only translate their format's vocabulary into them.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from .detect import detect_format, is_allure_dir
from .framework import framework_label
from .model import Attempt, ParsedReport, ParsedResult, ReportAttachment, ReportError

# name -> short description (shown by `qahub upload --help`)
FORMATS: dict[str, str] = {
    "auto": "detect from the file's content (default)",
    "junit": "JUnit XML: pytest, Maven Surefire/Failsafe, Gradle, Ant, jest-junit, mocha, "
    "Playwright, Vitest, node:test, gotestsum, PHPUnit, ctest, TAP::Formatter::JUnit",
    "playwright-json": "Playwright JSON reporter (projects, retries, annotations, attachments)",
    "jest-json": "Jest --json / Vitest --reporter=json",
    "mocha-json": "Mocha --reporter json",
    "mochawesome": "mochawesome JSON (Mocha, Cypress)",
    "pytest-json": "pytest-json-report",
    "go-json": "go test -json / gotestsum --jsonfile",
    "tap": "TAP 12/13/14 (node:test, prove, pytest-tap, mocha tap)",
    "ctrf": "CTRF JSON (Common Test Report Format)",
    "trx": ".NET TRX (MSTest, xUnit, NUnit via VSTest)",
    "nunit": "NUnit 3 (and NUnit 2) XML",
    "xunit-xml": "xUnit.net v2/v3 XML (xunit.console -xml, dotnet test --logger xunit)",
    "rspec-json": "RSpec --format json",
    "dart-json": "Dart / Flutter test --reporter json",
    "allure": "Allure 2 results folder (*-result.json)",
}

# format -> module that parses it (imported on first use: `qahub --help` stays fast)
_PARSERS = {
    "junit": "junit",
    "playwright-json": "playwright",
    "jest-json": "jest",
    "mocha-json": "mocha",
    "mochawesome": "mocha",
    "pytest-json": "pytest_json",
    "go-json": "gotest",
    "tap": "tap",
    "ctrf": "ctrf",
    "trx": "trx",
    "nunit": "nunit",
    "xunit-xml": "xunit",
    "rspec-json": "rspec",
    "dart-json": "dart",
    "allure": "allure",
}

# Folders never worth descending into when looking for reports.
_SKIP_DIRS = {".git", "node_modules", "__pycache__", ".venv", "venv", ".tox"}


def parse_report(path: str | Path, format: str = "auto") -> ParsedReport:
    """Parse one report file (or Allure results folder) into a `ParsedReport`.

    Raises `ReportError` naming the file (and line where known) when it cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise ReportError(f"{path}: no such file or directory")
    if path.is_file() and _is_blank(path):
        # A zero-byte results file usually means the runner crashed before writing; uploading
        # "0 tests" would hide that.
        raise ReportError(f"{path}: the file is empty")
    try:
        return _parse(path, format)
    except RecursionError:
        # JSON or XML nested thousands deep: no test tool writes that, and the recursive
        # decoders would otherwise escape with a RecursionError instead of naming the file.
        raise ReportError(f"{path}: nested too deeply to be a test report") from None


def _parse(path: Path, format: str) -> ParsedReport:
    detected = detect_format(path)
    fmt = detected if format == "auto" else format
    if fmt not in _PARSERS:
        if format == "auto":
            _raise_if_malformed_json(path)
            raise ReportError(f"{path}: not a recognised test report (formats: {', '.join(_PARSERS)})")
        raise ReportError(f"{path}: unknown format {format!r} (formats: {', '.join(FORMATS)})")
    module = importlib.import_module(f".{_PARSERS[fmt]}", __name__)
    # A format forced on a file of another kind fails to parse, or parses to nothing; either
    # way the useful message is what the file looks like, not "malformed".
    forced_wrong = format != "auto" and detected != fmt
    try:
        if fmt in ("mocha-json", "mochawesome"):
            results = module.parse(path, fmt)
        else:
            results = module.parse(path)
    except ReportError as exc:
        if forced_wrong and detected != "unknown":
            raise ReportError(_mismatch(path, fmt, detected)) from exc
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, UnicodeDecodeError) as exc:
        if forced_wrong and detected != "unknown":
            raise ReportError(_mismatch(path, fmt, detected)) from exc
        # The content matched the format's signature but not its structure.
        raise ReportError(f"{path}: not a valid {fmt} report ({type(exc).__name__}: {exc})") from exc
    if not results and forced_wrong:
        # Uploading "0 tests" would hide the mistake.
        raise ReportError(_mismatch(path, fmt, detected))
    return ParsedReport(format=fmt, source=str(path), results=results, framework=framework_label(fmt, path))


def _mismatch(path: Path, fmt: str, detected: str) -> str:
    if detected == "unknown":
        return f"{path}: not a {fmt} report (no known format matches it; try --format auto)"
    return (f"{path}: not a {fmt} report: its content looks like {detected} "
            f"(try --format {detected}, or --format auto)")


def _raise_if_malformed_json(path: Path) -> None:
    """A file that starts like JSON but does not parse gets that said, not "not recognised"."""
    if path.is_dir():
        return
    with path.open("rb") as handle:
        head = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] not in (b"{", b"["):
        return
    import msgspec

    try:
        msgspec.json.decode(path.read_bytes())
    except msgspec.DecodeError as exc:
        raise ReportError(f"{path}: malformed JSON ({exc})") from None


def iter_report_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Expand files and folders into report paths, in a stable order.

    A folder holding Allure ``*-result.json`` files is yielded as one report. Other folders are
    walked; files are kept when their *content* is a known format (so console logs, READMEs and
    screenshots next to the reports are ignored). Files given explicitly are always yielded:
    the parser will say why it cannot read them.
    """
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_file() or not path.exists():
            candidates: Iterable[Path] = [path]
        elif is_allure_dir(path):
            candidates = [path]
        else:
            candidates = _walk(path)
        for candidate in candidates:
            key = candidate.resolve()
            if key not in seen:
                seen.add(key)
                yield candidate


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        here = Path(dirpath)
        if here != root and is_allure_dir(here):
            dirnames[:] = []
            yield here
            continue
        for name in sorted(filenames):
            candidate = here / name
            if name.endswith(("-result.json", "-container.json", "-attachment.txt")):
                continue  # parts of an Allure folder handled above
            if detect_format(candidate) != "unknown":
                yield candidate


def _is_blank(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(4096)
    return not head.strip(b"\xef\xbb\xbf \t\r\n")


__all__ = [
    "FORMATS",
    "Attempt",
    "ParsedReport",
    "ParsedResult",
    "ReportAttachment",
    "ReportError",
    "detect_format",
    "iter_report_files",
    "parse_report",
]
