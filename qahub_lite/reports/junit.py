"""JUnit XML in all the dialects we have seen (see tests/corpus and JUNIT_DIALECTS.md).

There is no specification, only Ant's original output and a dozen tools imitating it. The rules
below are the ones that held across pytest (xunit1/xunit2, rerunfailures), Surefire/Failsafe,
Ant/junitreport, Gradle, JUnit Platform console, jest-junit, mocha-junit-reporter and mocha's
``xunit``, Playwright, Vitest, node:test, gotestsum, PHPUnit, ctest, Nette Tester,
TAP::Formatter::JUnit, Catch2, nextest and marathon:

1. Root is ``<testsuites>`` or ``<testsuite>``; suites nest to any depth.
2. Counts come from elements, never from header attributes (Surefire counts reruns,
   mocha-junit-reporter counts pending tests it never writes, jest-junit omits todo).
3. A testcase's outcome: ``<error>`` > ``<failure>`` > ``<skipped>`` > passed.
4. ``<flakyFailure>``/``<flakyError>`` are failed attempts of a test that then passed;
   ``<rerunFailure>``/``<rerunError>`` are further failed attempts of one that kept failing.
5. Repeated testcases with the same identity (suite path, classname, name, file) are attempts
   of one test - last one wins - when an earlier one failed (gotestsum ``--rerun-fails``,
   web-test-runner retries), or always for pytest, whose node ids are unique by construction
   and whose rerunfailures plugin writes the reruns as passing-looking duplicates. Elsewhere
   identical names that all passed are distinct tests (jest ``it.each`` with a fixed title,
   Surefire runs of the same class in several forks) and stay separate results.
6. ``<error>`` directly under a ``<testsuite>`` (TAP::Formatter::JUnit: script died / bad plan)
   is a suite-level error, reported as one BROKEN result unless the suite's own failures already
   explain it.
7. A failing testcase that stands for a *container* rather than a test is BROKEN (the corpus
   counts "file failed to load" and "beforeAll failed" as errors): its name is its suite's or
   file's name (Vitest import failure), jest-junit's ``Test suite failed to run``, or the
   describe-path prefix of sibling tests (Vitest's ``beforeAll failure`` pseudo-test).
8. ``<skipped type="todo">`` wins over a failure (node:test): a todo test's failure is declared.
9. A testcase without a name is a test of its own, named ``(unnamed test #N)`` after its
   position N among its suite's testcases: nameless testcases are never merged as retries.
10. jest-junit writes ``test.todo`` as a bare passing testcase but leaves it out of the suite's
    ``tests`` count: where that surplus identifies the todos unambiguously they are SKIPPED
    ("todo"), as Jest counts them (`_mark_jest_todos`).

The file is streamed with iterparse, each testcase read whole and dropped once converted. What
is kept per test until the end (rules 5 and 7 need the whole file) is one `_Case` holding tuples
and strings rather than five lists: fewer containers for the garbage collector (`_gc_paused`).
"""

from __future__ import annotations

import gc
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .model import Attempt, ParsedResult, ReportAttachment
from .normalize import BROKEN, FAILED, PASSED, SKIPPED, attempt, build, seconds_to_ms
from .xmlsource import iterparse, local

_OUTCOMES = {"failure": FAILED, "error": BROKEN, "skipped": SKIPPED}
_ATTACHMENT_LINE = re.compile(r"^\s*\[\[ATTACHMENT\|(.+?)\]\]\s*$", re.MULTILINE)
# TAP::Formatter::JUnit writes non-ASCII bytes as "[\xc3][\xbc]".
_BYTE_ESCAPES = re.compile(r"(?:\[\\x[0-9a-fA-F]{2}\])+")
# Error types that are not errors in the corpus' normalisation:
#   TodoTestSucceeded (TAP::Formatter::JUnit): a TODO test that passed -> it passed;
#   UnexpectedSuccess (unittest-xml-reporting): like pytest's strict XPASS -> failed.
_ERROR_TYPE_OVERRIDES = {"TodoTestSucceeded": PASSED, "UnexpectedSuccess": FAILED}
_NOT_RUN_STATUS = {"disabled", "notrun", "skipped", "skip", "ignored", "suppressed"}
_JEST_SUITE_ERROR = "Test suite failed to run"
# jest-junit's serializer writes every <testsuite>'s attributes in this order (rule 10).
_JEST_JUNIT_SUITE_ATTRS = ["name", "errors", "failures", "skipped", "timestamp", "time", "tests"]  # jest-junit's classname for suite load errors
_DESCRIBE_SEPARATORS = (" > ", " › ")  # Vitest, Playwright/jest-junit title templates
# Read complete rather than event by event (see xmlsource.iterparse); an <error>/<failure> is
# one only outside a testcase, directly under a <testsuite> (rule 6).
_WHOLE = frozenset({"testcase", "error", "failure"})
_HAS_DESCRIBE_SEPARATOR = re.compile("|".join(map(re.escape, _DESCRIBE_SEPARATORS))).search
_RECORDED_RERUN = (
    "earlier attempt: the report lists a re-run of this test but did not record why the "
    "attempt failed (pytest-rerunfailures writes reruns without their failure)"
)


class _Case:
    """What one ``<testcase>`` element said, before duplicates are merged.

    Sequences are tuples, empty ones shared: most cases have no properties or attachments.
    """

    __slots__ = ("title", "suite_path", "file", "line", "attempts", "status", "stdout", "stderr",
                 "properties", "attachments", "duration", "container", "failing")

    title: str
    suite_path: tuple[str, ...]
    file: str | None
    line: int | None
    attempts: tuple[Attempt, ...]
    status: str | None  # set when it is not the last attempt's (Surefire reruns)
    stdout: str | None
    stderr: str | None
    properties: tuple[tuple[str, str], ...]
    attachments: tuple[ReportAttachment, ...]
    duration: int | None
    container: bool  # rule 7
    failing: bool


def _decode_byte_escapes(text: str) -> str:
    def repl(match: re.Match[str]) -> str:
        raw = bytes(int(h, 16) for h in re.findall(r"\\x([0-9a-fA-F]{2})", match.group(0)))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return match.group(0)

    return _BYTE_ESCAPES.sub(repl, text) if "[\\x" in text else text


def _text(elem: ET.Element | None) -> str | None:
    if elem is None:
        return None
    return elem.text


def _property_pairs(props: ET.Element) -> list[tuple[str, str]]:
    pairs = []
    for prop in props:
        if local(prop.tag) != "property":
            continue
        name = prop.get("name") or ""
        # Several tools write multi-line values as element text instead of value=.
        value = prop.get("value")
        if value is None:
            value = (prop.text or "").strip()
        pairs.append((name, value))
    return pairs


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.parent
        self.playwright = False
        self.pytest = False
        # Rule 5: the first case of each identity, in report order, and any later ones.
        self.cases: dict[tuple, _Case] = {}
        self.repeats: dict[tuple, list[_Case]] = {}
        self.suite_errors: list[ParsedResult] = []
        # (suite path, "describe > path") prefixes of every test title, for rule 7.
        self.prefixes: set[tuple[tuple[str, ...], str]] = set()
        # Testcases seen per suite path: a nameless testcase is named by its position.
        self.positions: dict[tuple[str, ...], int] = {}
        self.last_case: _Case | None = None  # the testcase read last, for rule 10

    def resolve(self, raw: str) -> str:
        raw = raw.strip()
        if "://" in raw or raw.startswith("data:") or os.path.isabs(raw):
            return raw
        return os.path.normpath(os.path.join(self.base, raw))

    def read(self) -> list[ParsedResult]:
        stack: list[ET.Element] = []
        # One entry per open <testsuite>: [path-for-results, had-failing-case, suite element]
        suites: list[list] = []
        todo_watch: list[list[_Case] | None] = []
        for event, elem in iterparse(self.path, _WHOLE):
            tag = elem.tag if elem.tag[:1] != "{" else local(elem.tag)
            if event == "whole":  # complete, already detached from its parent
                if tag == "testcase":
                    if suites:
                        suite = suites[-1]
                        if self._testcase(elem, suite[0], suite[2]):
                            suite[1] = True
                        if todo_watch[-1] is not None:
                            todo_watch[-1].append(self.last_case)
                    else:
                        self._testcase(elem, (), None)
                elif stack and suites and local(stack[-1].tag) == "testsuite":
                    suites[-1].append(elem)  # <error>/<failure>: decided when the suite ends
            elif event == "start":
                if tag == "testsuite":
                    path: tuple[str, ...] = suites[-1][0] if suites else ()
                    name = elem.get("name") or ""
                    if self.playwright and not suites and elem.get("hostname"):
                        path = (*path, elem.get("hostname"))  # the Playwright project
                    if name:
                        path = (*path, _decode_byte_escapes(name))
                    suites.append([path, False, elem])
                    # Rule 10: a jest-junit suite's cases are kept until its end to find todos.
                    todo_watch.append([] if list(elem.attrib)[:7] == _JEST_JUNIT_SUITE_ATTRS else None)
                    if name == "pytest" and elem.get("hostname") is not None:
                        self.pytest = True  # pytest < 5.1 wrote no <testsuites> name
                elif tag == "testsuites" and not stack:
                    # Playwright's reporter is the only one writing <testsuites id="...">. Its
                    # <error> means "threw inside the test" (TypeError, timeout, beforeAll), which
                    # the corpus normalisation counts as failed; its suite hostname is the project.
                    self.playwright = "id" in elem.attrib
                    self.pytest = elem.get("name") == "pytest tests"
                stack.append(elem)
            else:
                stack.pop()
                if tag == "testsuite":
                    path, had_failure, _suite, *errors = suites.pop()
                    watched = todo_watch.pop()
                    if watched:
                        _mark_jest_todos(watched, elem.get("tests"))
                    if errors and not had_failure:
                        self._suite_error(path, errors)
                    if stack:
                        stack[-1].remove(elem)
        results: list[ParsedResult] = []
        repeats = self.repeats
        for key, first in self.cases.items():
            if key not in repeats:
                results.append(self._merge((first,)))
                continue
            cases = [first, *repeats[key]]
            if self.pytest or any(c.failing for c in cases[:-1]):
                results.append(self._merge(cases))
            else:
                results.extend(self._merge((c,)) for c in cases)
        return results + self.suite_errors

    def _testcase(self, elem: ET.Element, suite_path: tuple[str, ...], suite: ET.Element | None) -> bool:
        get = elem.get
        name = _decode_byte_escapes(get("name") or "")
        classname = get("classname") or ""
        position = self.positions[suite_path] = self.positions.get(suite_path, 0) + 1
        if not name.strip():
            # Rule 9: nothing says two nameless testcases are one test, so the position in their
            # suite tells them apart (a retry would repeat a name; there is none to repeat).
            name = f"(unnamed test #{position})"
        title = name
        path = suite_path
        if classname and classname != name and (not path or classname != path[-1]):
            path = (*path, classname)
        case = _Case()  # no __init__: every slot is set here, one call less per test
        case.title = title
        case.attachments = case.properties = ()
        case.suite_path = path
        case.file = get("file") or (suite.get("file") if suite is not None else None)
        line = get("line")
        case.line = int(line) if line and line.isdigit() else None
        case.duration = seconds_to_ms(get("time"))
        case.stdout = case.stderr = None
        if len(elem):
            outcome, outcome_status, flaky, reruns = self._children(elem, case)
        else:  # most testcases: passed, nothing inside
            outcome, outcome_status, flaky, reruns = None, PASSED, (), ()
        not_run = get("status")
        if outcome is None and not_run and not_run.lower() in _NOT_RUN_STATUS:
            # googletest/CUnit-style status attribute; a failure element, if any, wins above.
            final = attempt(SKIPPED, case.duration, not_run)
            outcome_status = SKIPPED
        elif outcome is not None and outcome_status != PASSED:
            message = outcome.get("message")
            if outcome_status == SKIPPED:
                final = attempt(SKIPPED, case.duration, message or outcome.text)
            else:
                final = attempt(outcome_status, case.duration, message, outcome.text)
        else:
            outcome_status = PASSED
            final = Attempt(status=PASSED, duration_ms=case.duration)
        if reruns and outcome_status in (FAILED, BROKEN):
            # Surefire: the primary <failure>/<error> is the first run, reruns follow; the
            # test's category (failure vs error) is the primary element's, as in its summary.
            case.attempts = (final, *reruns)
            case.status = outcome_status
        else:
            case.attempts = (*flaky, final) if flaky else (final,)
            case.status = None
        case.failing = outcome_status in (FAILED, BROKEN)
        case.container = case.failing and (
            classname == _JEST_SUITE_ERROR
            or bool(suite_path and name == suite_path[-1])
            or bool(name and name == case.file)
        )
        if _HAS_DESCRIBE_SEPARATOR(name):
            self._remember_prefixes(path, name)
        key = (path, classname, name, case.file)
        if key not in self.cases:
            self.cases[key] = case
        elif key in self.repeats:
            self.repeats[key].append(case)
        else:
            self.repeats[key] = [case]
        self.last_case = case
        return case.failing

    def _children(self, elem: ET.Element, case: _Case) -> tuple[ET.Element | None, str, list[Attempt], list[Attempt]]:
        """Read a testcase's children: output and properties go into `case`; returns the outcome
        element (rule 3, None when passed) with its status, and the flaky and rerun attempts."""
        outcome: ET.Element | None = None
        outcome_status = PASSED
        flaky: list[Attempt] = []
        reruns: list[Attempt] = []
        for child in elem:
            ctag = child.tag if child.tag[:1] != "{" else local(child.tag)
            status = _OUTCOMES.get(ctag)
            if status is not None:
                if status == SKIPPED and child.get("type") == "todo":
                    outcome, outcome_status = child, SKIPPED
                    break  # rule 8: nothing after a todo marker changes the outcome
                if status == BROKEN:
                    status = _ERROR_TYPE_OVERRIDES.get(child.get("type") or "", status)
                    if self.playwright and status == BROKEN:
                        status = FAILED
                if outcome is None or _rank(status) > _rank(outcome_status):
                    outcome, outcome_status = child, status
            elif ctag == "system-out":
                case.stdout = self._output(child.text, case)
            elif ctag == "system-err":
                case.stderr = child.text
            elif ctag == "properties":
                for pname, pvalue in _property_pairs(child):
                    if pname.lower().startswith("attachment") and pvalue:
                        case.attachments += (
                            ReportAttachment(name=os.path.basename(pvalue.rstrip("/")) or pvalue,
                                             path=self.resolve(pvalue)),)
                    else:
                        case.properties += ((pname, pvalue),)
            elif ctag in ("flakyFailure", "flakyError", "rerunFailure", "rerunError"):
                status = FAILED if ctag.endswith("Failure") else BROKEN
                target = flaky if ctag.startswith("flaky") else reruns
                target.append(attempt(status, None, child.get("message"),
                                      _text(child.find("stackTrace")) or child.text))
        return outcome, outcome_status, flaky, reruns

    def _remember_prefixes(self, path: tuple[str, ...], name: str) -> None:
        for sep in _DESCRIBE_SEPARATORS:
            parts = name.split(sep)
            for i in range(1, len(parts)):
                self.prefixes.add((path, sep.join(parts[:i])))

    def _output(self, text: str | None, case: _Case) -> str | None:
        if not text or "[[ATTACHMENT|" not in text:
            return text
        for match in _ATTACHMENT_LINE.finditer(text):
            raw = match.group(1)
            case.attachments += (ReportAttachment(name=os.path.basename(raw), path=self.resolve(raw)),)
        return _ATTACHMENT_LINE.sub("", text).strip("\n")

    def _merge(self, cases: Sequence[_Case]) -> ParsedResult:
        last = cases[-1]
        if last.failing and (
            all(c.container for c in cases) or (last.suite_path, last.title) in self.prefixes
        ):
            # Rule 7: one BROKEN result for the container, whatever number of elements said so
            # (jest-junit writes the load error twice: as <error> and as <failure> with JSON).
            first = cases[0].attempts[-1]
            broken = Attempt(status=BROKEN, duration_ms=first.duration_ms,
                             error_message=first.error_message, error_stack=first.error_stack)
            return build(last.title, [broken], suite_path=last.suite_path, file=last.file,
                         line=last.line, stdout=last.stdout, stderr=last.stderr)
        if len(cases) == 1:
            attempts, status = last.attempts, last.status
        else:
            attempts = []
            for earlier in cases[:-1]:
                for a in earlier.attempts:
                    if a.status == PASSED and earlier.attempts[-1] is a:
                        # A runner re-executes only what failed; a rerun record that looks
                        # passed lost its failure details (pytest-rerunfailures).
                        a = Attempt(status=FAILED, duration_ms=a.duration_ms, error_message=_RECORDED_RERUN)
                    attempts.append(a)
            attempts.extend(last.attempts)
            status = last.status
        return build(
            last.title,
            attempts,
            suite_path=last.suite_path,
            file=last.file,
            line=last.line,
            stdout=last.stdout,
            stderr=last.stderr,
            properties=last.properties,
            annotations=last.properties if self.playwright else (),
            attachments=last.attachments if len(cases) == 1 else [a for c in cases for a in c.attachments],
            status=status,
        )

    def _suite_error(self, path: tuple[str, ...], errors: list[ET.Element]) -> None:
        first = errors[0]
        message = first.get("message") or first.text
        title = path[-1] if path else self.path.name
        self.suite_errors.append(
            build(f"{title} (suite error)", [attempt(BROKEN, None, message, first.text)],
                  suite_path=path[:-1])
        )


def _mark_jest_todos(cases: list[_Case], header_tests: str | None) -> None:
    """Rule 10: jest-junit writes a ``test.todo`` as a bare testcase with time 0 and leaves it out
    of its suite's ``tests`` count (failing + passing + pending). The surplus of testcases over
    that count is the number of todos; when exactly that many bare, zero-time passing cases
    exist they are the todos. When more exist the file cannot say which: they stay passed."""
    if not header_tests or not header_tests.isdigit():
        return
    surplus = len(cases) - int(header_tests)
    if surplus <= 0:
        return
    bare = [c for c in cases if not c.failing and c.duration == 0 and len(c.attempts) == 1
            and c.attempts[0].status == PASSED and c.stdout is None and c.stderr is None
            and not c.properties and not c.attachments]
    if len(bare) != surplus:
        return
    for case in bare:
        case.attempts = (Attempt(status=SKIPPED, duration_ms=0, error_message="todo"),)


def _rank(status: str) -> int:
    return {PASSED: 0, SKIPPED: 1, FAILED: 2, BROKEN: 3}[status]


def parse(path: Path) -> list[ParsedResult]:
    with _gc_paused():
        return _Reader(path).read()


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one parse, then restore it as it was.

    A 20,000-test report leaves ~120,000 live containers (each result holds four lists) and every
    few thousand new ones the collector walks all of them again: a fifth to a quarter of the parse
    time, for nothing, as no reference cycle is created here (elements, cases and results only
    point downwards; reference counting frees everything temporary). Re-enabled only when it was
    enabled, so a caller that disabled it keeps it disabled.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


