"""Which format a report is in, decided from its content.

File names lie: ``results.xml`` may be JUnit, TRX or NUnit, ``report.json`` may be any of eight
JSON shapes, and TAP is saved as ``.txt``, ``.log`` or ``.tap``. So detection reads the first
bytes: the XML root element, the top-level JSON keys, or the line structure (NDJSON, TAP).
Only the head of the file is read (`HEAD_BYTES`), so detecting a 6 MB report is cheap.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HEAD_BYTES = 256 * 1024

_XML_ROOT = re.compile(rb"<(?![?!/])([A-Za-z_][\w.:-]*)")
_TAP_LINE = re.compile(r"^\s*(?:(?:not )?ok\b|1\.\.\d+|TAP version \d+|Bail out!)", re.MULTILINE)
_JSON_KEY = re.compile(r'"([A-Za-z_][\w-]*)"\s*:')

# XML root element (namespace removed, lower-cased) -> format
_XML_ROOTS = {
    "testsuites": "junit",
    "testsuite": "junit",
    "testrun": "trx",
    "test-run": "nunit",
    "test-results": "nunit",
    "test-suite": "nunit",  # NUnit 3 without the <test-run> wrapper (NUnitLite, Unity)
    "assemblies": "xunit-xml",  # xUnit.net v2/v3 (xunit.console -xml, dotnet test --logger xunit)
}


def is_allure_dir(path: Path) -> bool:
    return path.is_dir() and any(
        p.name.endswith(("-result.json", "-container.json")) for p in path.iterdir() if p.is_file()
    )


def detect_format(path: str | Path) -> str:
    """Return a key of `FORMATS`, or ``"unknown"``."""
    path = Path(path)
    if path.is_dir():
        return "allure" if is_allure_dir(path) else "unknown"
    try:
        with path.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
    except OSError:
        return "unknown"
    return detect_bytes(head)


def detect_bytes(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        head = head.decode("utf-16", errors="ignore").encode("utf-8")
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        return "unknown"
    if head[:1] == b"<":
        return _detect_xml(head)
    text = head.decode("utf-8", errors="replace")
    if text[:1] in "{[":
        fmt = _detect_json(text)
        if fmt != "unknown":
            return fmt
    fmt = _detect_ndjson(text)
    if fmt != "unknown":
        return fmt
    if _TAP_LINE.search(text):
        return "tap"
    return "unknown"


def _detect_xml(head: bytes) -> str:
    # Skip the prolog (declaration, comments, DOCTYPE): the first real start tag is the root.
    body = re.sub(rb"<!--.*?-->", b"", head, flags=re.DOTALL)
    match = _XML_ROOT.search(body)
    if not match:
        return "unknown"
    root = match.group(1).decode("ascii", "replace").rsplit(":", 1)[-1].lower()
    return _XML_ROOTS.get(root, "unknown")


def _detect_json(text: str) -> str:
    # A whole small document parses; a big one is judged by the keys in its head.
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        keys = set(doc)
        inner = doc.get("results") if isinstance(doc.get("results"), dict) else {}
        keys_in_head = keys | set(inner) | set(_JSON_KEY.findall(text[:4096]))
    else:
        keys_in_head = set(_JSON_KEY.findall(text))
    k = keys_in_head
    if "results" in k and "tool" in k and ("summary" in k or "tests" in k):
        return "ctrf"
    if "config" in k and ("suites" in k or "rootDir" in k or "configFile" in k):
        return "playwright-json"
    if "testResults" in k and ("numTotalTests" in k or "numFailedTests" in k or "assertionResults" in k):
        return "jest-json"
    if "stats" in k and ("passPercent" in k or "testsRegistered" in k or "fullFile" in k):
        return "mochawesome"
    if "stats" in k and ("fullTitle" in k or "passes" in k or "pending" in k):
        return "mocha-json"
    if ("collectors" in k or "environment" in k) and ("nodeid" in k or "summary" in k) and "created" in k:
        return "pytest-json"
    if "examples" in k and ("summary_line" in k or "full_description" in k or "version" in k):
        return "rspec-json"
    if "protocolVersion" in k or ("testID" in k and "type" in k):
        return "dart-json"
    if "Action" in k and ("Package" in k or "Test" in k or "ImportPath" in k):
        return "go-json"
    return "unknown"


def _detect_ndjson(text: str) -> str:
    """Go and Dart write one JSON object per line; Go < 1.24 mixes in plain build-failure lines."""
    seen = 0
    for line in text.splitlines()[:50]:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        # Go >= 1.24 starts a stream with build events keyed by ImportPath.
        if "Action" in obj and ("Package" in obj or "Test" in obj or "Time" in obj or "ImportPath" in obj):
            return "go-json"
        if "protocolVersion" in obj or (obj.get("type") in ("start", "suite", "testStart", "allSuites", "group", "testDone", "done")):
            return "dart-json"
        seen += 1
        if seen > 5:
            break
    return "unknown"
