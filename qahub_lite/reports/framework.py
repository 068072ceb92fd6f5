"""Which test tool wrote a report: the run's *framework label*, distinct from the format name.

The format says how to read a file (``junit``, ``jest-json``); the label says what produced it
(``pytest``, ``jest``, ``vitest``, ``surefire``). One format has many writers, and a label of
``junit`` on every pytest, Jest and Surefire run makes the hub's framework filter useless.

The tool is named only where the file itself says it, from the same head of the file that
detection reads: a root name a reporter always writes (pytest's ``<testsuites name="pytest
tests">``, Vitest's ``"vitest tests"``, jest-junit's ``"jest tests"``), a schema reference
(Surefire's XSD), a property only one tool writes (gotestsum's ``go.version``), an attribute
only one tool writes (Playwright's ``<testsuites id=...>``, PHPUnit's ``assertions``), the
attribute order jest-junit's serializer fixes, CTRF's ``results.tool.name``, or the keys Jest
always writes and Vitest's JSON reporter does not. Otherwise the label is the format's name
(``junit``), never a guess.
"""

from __future__ import annotations

import re
from pathlib import Path

from .detect import HEAD_BYTES

# (label, pattern over the XML head); first match wins, most specific first.
_JUNIT_SIGNS: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("pytest", re.compile(rb'<testsuites\b[^>]*\bname="pytest tests"|<testsuite\b[^>]*\bname="pytest"')),
    ("vitest", re.compile(rb'<testsuites\b[^>]*\bname="vitest tests"')),
    # Playwright's reporter: id and name (empty unless configured) and this attribute order
    ("playwright", re.compile(rb'<testsuites id="[^"]*" name="[^"]*" tests="\d+" failures="\d+" skipped="\d+" errors="\d+"')),
    ("jest", re.compile(
        rb'<testsuites\b[^>]*\bname="jest tests"'
        # jest-junit writes a suite's attributes in this fixed order, whatever its names
        rb'|<testsuite name="[^"]*" errors="\d+" failures="\d+" skipped="\d+" timestamp="[^"]*" time="[^"]*" tests="\d+"')),
    ("surefire", re.compile(rb'maven-surefire-plugin/xsd/surefire-test-report|<property name="surefire\.')),
    ("mocha", re.compile(rb'<testsuites?\b[^>]*\bname="Mocha Tests"')),
    ("go", re.compile(rb'<property name="go\.version"')),
    # PHPUnit's suite attributes, in its order (the assertions count is its own)
    ("phpunit", re.compile(rb'<testsuite name="[^"]*" (?:file="[^"]*" )?tests="\d+" assertions="\d+" errors="\d+"')),
)
_CTRF_TOOL = re.compile(rb'"tool"\s*:\s*\{\s*"name"\s*:\s*"([A-Za-z0-9@/._ -]{1,60})"')
# Top-level keys Jest's --json always writes (aggregated results) and Vitest's reporter does not.
_JEST_ONLY_KEYS = re.compile(rb'"(?:numRuntimeErrorTestSuites|openHandles|wasInterrupted)"\s*:')

# Formats whose name already is the tool (or the only honest label).
_FIXED = {
    "playwright-json": "playwright",
    "mocha-json": "mocha",
    "mochawesome": "mochawesome",
    "pytest-json": "pytest",
    "go-json": "go",
    "rspec-json": "rspec",
    "dart-json": "dart",
    "xunit-xml": "xunit",
}


def framework_label(fmt: str, path: str | Path) -> str:
    """The framework label for a report of format `fmt` at `path` (file or Allure folder)."""
    if fmt in _FIXED:
        return _FIXED[fmt]
    if fmt not in ("junit", "jest-json", "ctrf"):
        return fmt.removesuffix("-json")
    head = _head(Path(path))
    if fmt == "junit":
        for label, sign in _JUNIT_SIGNS:
            if sign.search(head):
                return label
        return "junit"
    if fmt == "ctrf":
        match = _CTRF_TOOL.search(head)
        return match.group(1).decode("utf-8", "replace").strip().lower() if match else "ctrf"
    # jest-json: Jest and Vitest share the shape. A head cut short of the keys says nothing.
    if _JEST_ONLY_KEYS.search(head):
        return "jest"
    return "vitest" if b'"testResults"' in head and b'"numTotalTests"' in head else "jest"


def _head(path: Path) -> bytes:
    if not path.is_file():
        return b""
    with path.open("rb") as handle:
        return handle.read(HEAD_BYTES)
