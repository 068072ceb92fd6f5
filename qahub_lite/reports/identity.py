"""One identity per test, whatever reporter wrote the report (docs/identity.md).

A test is its *location* (the file path relative to the repository root, forward slashes),
its *scope* (describe blocks, classes), its *name* and a *variant* for executions meant to be
distinct (a Playwright project, parameters, a matrix label). Each parser says these things in
its format's words; `normalize` rewrites every `ParsedResult` into one shape, so that

- the two reporters of one tool agree (pytest `--junitxml` classname `tests.test_shop` and
  pytest-json-report `tests/test_shop.py`; Playwright JSON and JUnit; Vitest JSON and JUnit);
- a partial run agrees with a full one (`npx jest src/pricing` and `npx jest` both name
  `src/pricing/price.test.js`, relative to the repository root, not to the files that ran);
- where the report gives no file, the framework scopes the identity (`(mocha)`, `(tap)`), so
  two tools never merge.

The shape sent to the hub: `suite_path = [location, *scope]`, `title = name`, `variant`.
`qahub upload` and the pytest plugin go through here; the server only compares
(core/identity.py).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Sequence
from pathlib import Path

from .model import ParsedReport, ParsedResult
from .tags import code_in_text

# Formats and JUnit writers of tools whose tests can have no file and collide across tools
# (JavaScript, TAP). Java, Go, .NET and PHP suites are qualified names already: scoping them
# by a framework would only break their existing histories.
_SCOPED_FORMATS = {"tap": "tap", "mocha-json": "mocha", "mochawesome": "mocha", "jest-json": "jest", "ctrf": "ctrf"}
_SCOPED_JUNIT_TOOLS = {"jest", "mocha", "vitest", "playwright"}
_PARAMS = re.compile(r"\[(.*)\]")
_TEST_MODULE = re.compile(r"^(test_.*|.*_test)$")  # pytest's default python_files, without .py


def find_root(explicit: str | os.PathLike | None = None, cwd: str | os.PathLike | None = None) -> Path:
    """`--root DIR`, else the top of the git checkout `cwd` is in, else `cwd` itself."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    here = Path(cwd or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():  # a folder, or a file in worktrees and submodules
            return folder
    return here


def location(path: str | None, root: Path) -> str | None:
    """`path` relative to `root`, with forward slashes; an absolute path outside `root` is
    kept as given (only made forward-slashed), a relative one is taken as relative to it."""
    return _Locator(root)(path)


class _Locator:
    """`location` for many paths of one report: plain string work, each path once (a report
    of 10,000 tests names a few hundred files; pathlib per test cost more than the ingest)."""

    def __init__(self, root: Path) -> None:
        bases = {root.as_posix(), Path(os.path.abspath(root)).as_posix()}
        # Longest first, each with one trailing slash; Windows roots compare case-insensitively.
        self.prefixes = sorted((b.rstrip("/") + "/" for b in bases), key=len, reverse=True)
        self.seen: dict[str, str | None] = {}

    def __call__(self, path: str | None) -> str | None:
        if not path:
            return None
        found = self.seen.get(path, _MISSING)
        if found is _MISSING:
            found = self.seen[path] = self._locate(path)
        return found

    def _locate(self, path: str) -> str | None:
        text = path.strip().replace("\\", "/")
        if text.startswith("file://"):
            text = text[len("file://"):]
        windows = bool(_DRIVE.match(text))
        if text.startswith("/") or windows:
            text = posixpath.normpath(text) if not windows else text
            for prefix in self.prefixes:
                if windows and text.lower().startswith(prefix.lower()):
                    return text[len(prefix):]
                if text.startswith(prefix):
                    return text[len(prefix):]
            return text
        cleaned = posixpath.normpath(text)
        return cleaned if cleaned != "." else None


_MISSING = object()
_DRIVE = re.compile(r"^[A-Za-z]:/")


def normalize(report: ParsedReport, root: Path, framework: str | None = None) -> None:
    """Rewrite each result of `report` into (location, scope, name, variant), in place."""
    # The tool behind a JUnit file, as reports/framework.py read it from the file's head.
    tool = report.framework if report.format == "junit" and report.framework != "junit" else None
    scope_label = None
    if report.format in _SCOPED_FORMATS:
        # Jest and Vitest share jest-json, CTRF names its tool: scope by the tool itself.
        named = report.framework if report.format in ("jest-json", "ctrf") else None
        scope_label = framework or named or _SCOPED_FORMATS[report.format]
    elif tool in _SCOPED_JUNIT_TOOLS:
        scope_label = framework or tool
    locate = _Locator(root)
    for result in report.results:
        _normalize(result, report.format, tool, locate, scope_label)


def _normalize(result: ParsedResult, fmt: str, tool: str | None, locate: _Locator, scope_label: str | None) -> None:
    suite = result.suite_path  # never changed in place: every step below builds a new list
    name = result.title
    variant = result.variant or ""
    where: str | None = None
    if fmt == "playwright-json" or tool == "playwright":
        # [project, file, *describes] (JSON) or [project, file] + "describe › name" (JUnit).
        file = result.file or (suite[-1] if tool == "playwright" and suite else None)
        if file and file in suite:
            at = suite.index(file)
            if at == 1:
                variant = variant or suite[0]
            suite = suite[at + 1:]
        if tool == "playwright" and " › " in name:
            *describes, name = name.split(" › ")
            suite = [*suite, *describes]
        where = file
    elif tool == "pytest":
        where, suite = _pytest_classname(suite, result.file)
    elif tool == "vitest":
        # [file] + "describe > name": the file relative to Vitest's root.
        if suite:
            where, suite = suite[0], suite[1:]
        if " > " in name:
            *describes, name = name.split(" > ")
            suite = [*suite, *describes]
    else:
        where = result.file
        if suite and where and _names_file(suite[0], where):
            suite = suite[1:]  # Jest/Vitest JSON, pytest-json-report: the file led the suite
    where = locate(where) if where else None
    if where:
        # The location is also the result's `file`: what the timings key a file by, so that
        # `qahub split` finds the files a checkout lists (not a report's absolute path).
        result.file = where
    if where and not suite and _names_file(name, where):
        name = where  # a whole file that failed to load: named by its location in every reporter
    if where is None and scope_label:
        where = f"({scope_label})"
    result.suite_path = [where, *suite] if where else suite
    result.title = name
    result.variant = variant


def _names_file(text: str, path: str) -> bool:
    """`text` names the file `path` (the whole path, or a trailing part of it)."""
    if "\\" in text or "\\" in path:
        text, path = text.replace("\\", "/"), path.replace("\\", "/")
    return bool(text) and (path == text or path.endswith("/" + text) or text.endswith("/" + path))


def _pytest_classname(suite: list[str], file: str | None) -> tuple[str | None, list[str]]:
    """pytest's JUnit: [testsuite name, "pkg.test_mod.TestClass"] -> ("pkg/test_mod.py", ["TestClass"])."""
    classname = suite[-1] if len(suite) >= 2 else ""
    if not classname:
        return file, []
    parts = classname.split(".")
    if file:
        module = file.removesuffix(".py").replace("/", ".").split(".")
        if parts[: len(module)] == module:
            return file, parts[len(module):]
    for index in range(len(parts) - 1, -1, -1):
        if _TEST_MODULE.match(parts[index]):
            return file or "/".join(parts[: index + 1]) + ".py", parts[index + 1:]
    return file, [classname]


def assign_variants(results: Sequence[ParsedResult], label: str | None = None) -> None:
    """Give every result of one upload its own identity: results that would share one (the
    same test case code, or the same suite and name, and variant) get a variant from what tells
    them apart (the parameters in `[...]`, else the name, else the suite, else their order);
    then `label` (`--variant`) is added to every variant."""
    # Most names are unique: bucket by code or name (one dict probe per result), and build the
    # full key only for the few buckets with more than one result.
    buckets: dict[str, list[ParsedResult]] = {}
    for result in results:
        code = result.test_case_code
        key = "\x00" + code if code else result.title
        bucket = buckets.get(key)
        if bucket is None:
            buckets[key] = [result]
        else:
            bucket.append(result)
    for bucket in buckets.values():
        if len(bucket) < 2:
            continue
        groups: dict[tuple, list[ParsedResult]] = {}
        for result in bucket:
            groups.setdefault(_key(result), []).append(result)
        for members in groups.values():
            if len(members) > 1:
                _derive(members)
    if label:
        for result in results:
            result.variant = f"{result.variant} / {label}" if result.variant else label


def in_several_reports(reports: Sequence[Sequence[ParsedResult]]) -> tuple[int, list[int]]:
    """How many tests are in more than one of `reports`, and the indexes of the reports that
    share them. Called before `assign_variants`: two reporters of one test run (Playwright's
    json and junit in one folder) give every test twice, and the copies would be kept apart as
    variants, so the caller says so."""
    if len(reports) < 2:
        return 0, []  # the common case costs nothing
    first: dict[tuple, int] = {}
    shared: set[tuple] = set()
    involved: set[int] = set()
    for index, results in enumerate(reports):
        for result in results:
            key = _key(result)
            at = first.setdefault(key, index)
            if at != index:
                shared.add(key)
                involved.update((at, index))
    return len(shared), sorted(involved)


def _derive(members: list[ParsedResult]) -> None:
    derived = [_distinguishing(m, members) for m in members]
    seen: dict[str, int] = {}
    for member, own in zip(members, derived):
        count = seen[own] = seen.get(own, 0) + 1
        own = own if count == 1 else f"{own} #{count}".strip()
        member.variant = " / ".join(v for v in (member.variant, own) if v)


def _key(result: ParsedResult) -> tuple:
    if result.test_case_code:
        return ("code", result.test_case_code, result.variant or "")
    return ("test", tuple(result.suite_path), result.title, result.variant or "")


def _distinguishing(member: ParsedResult, members: list[ParsedResult]) -> str:
    match = _PARAMS.search(member.title)
    if match:
        return _without_code(match.group(1))
    if len({m.title for m in members}) > 1:
        return _without_code(member.title)
    if len({tuple(m.suite_path) for m in members}) > 1:
        return " › ".join(member.suite_path)
    return ""


def _without_code(text: str) -> str:
    code = code_in_text(text)
    if not code:
        return text.strip()
    return re.sub(r"@?\bqa[-_]?hub\([^)]*\)", "", text, flags=re.IGNORECASE).strip()
