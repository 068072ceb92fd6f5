"""TAP 12/13/14: node:test (Node 20), prove/Test::More, pytest-tap 3.5, mocha's ``tap``.

Counting rules (INDEX.md, checked against each tool's own summary):

* A test point ``ok``/``not ok`` is a result: ok -> PASSED, not ok -> FAILED,
  ``# SKIP`` -> SKIPPED.
* ``# TODO`` follows TAP: ``not ok # TODO`` is an expected failure -> SKIPPED; ``ok # TODO``
  is a TODO that unexpectedly passed -> PASSED (prove reports "TODO passed", pytest-tap writes
  non-strict XPASS that way). node:test is the exception: its todo tests are declarations
  ("not implemented yet") that node itself counts as *todo*, whatever their outcome -> SKIPPED.
* Subtests (indented streams, ``# Subtest: name``): node:test counts every test at every level
  (a parent test too) but not ``describe`` suites, which its YAML marks ``type: 'suite'``. Other
  producers (Test::More ``subtest``) count only top-level points, as prove does; failing child
  points are listed in the parent's message.
* The plan may come first or last (mocha). Fewer or more top-level points than planned is a bad
  plan (the script died): one BROKEN result. ``1..0 # SKIP reason`` is a skipped file: no results.
  ``Bail out!`` is one BROKEN result.
* Test numbers are not trusted (mocha repeats them); points are kept in stream order.
* YAML diagnostics (TAP 13) give message/stack/duration; ``#`` comment lines right after a
  failing point (pytest-tap, Test::More) become its message when there is no YAML.
"""

from __future__ import annotations

import re
from pathlib import Path

from .model import ParsedResult
from .normalize import BROKEN, FAILED, PASSED, SKIPPED, attempt, build, first_line, ms

_POINT = re.compile(r"^(?P<ok>not ok|ok)\b\s*(?P<num>\d+)?\s*(?:-\s+)?(?P<desc>.*)$")
_DIRECTIVE = re.compile(r"(?:^|\s)#\s*(?P<kind>skip|todo)\S*(?:\s+(?P<reason>.*))?$", re.IGNORECASE)
_PLAN = re.compile(r"^1\.\.(?P<n>\d+)(?:\s*#\s*(?P<reason>.*))?$")
_SUBTEST = re.compile(r"^#\s*Subtest:\s*(?P<name>.*)$")
_YAML_KEY = re.compile(r"^(?P<key>[A-Za-z_][\w-]*):\s?(?P<value>.*)$")


class _Point:
    __slots__ = ("depth", "ok", "desc", "directive", "reason", "yaml", "comments", "path", "children_failed")

    def __init__(self, depth: int, ok: bool, desc: str, directive: str | None, reason: str | None, path: list[str]):
        self.depth, self.ok, self.desc = depth, ok, desc
        self.directive, self.reason, self.path = directive, reason, path
        self.yaml: dict[str, str] = {}
        self.comments: list[str] = []
        self.children_failed: list[str] = []


def parse(path: Path) -> list[ParsedResult]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    points: list[_Point] = []
    names: dict[int, str] = {}  # indent -> name of the subtest opened at that indent
    top_plan: tuple[int, str | None] | None = None
    bail: str | None = None
    node_style = False
    i = 0
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        indent = len(raw) - len(raw.lstrip(" "))
        i += 1
        if not stripped:
            continue
        if stripped == "---" and points:
            block, i = _yaml_block(lines, i, indent)
            points[-1].yaml.update(block)
            node_style = node_style or "duration_ms" in block
            continue
        match = _POINT.match(stripped)
        if match:
            desc = match.group("desc")
            directive = reason = None
            dmatch = _DIRECTIVE.search(desc)
            if dmatch:
                directive = dmatch.group("kind").upper()
                reason = (dmatch.group("reason") or "").strip() or None
                desc = desc[: dmatch.start()].rstrip()
            for deeper in [k for k in names if k > indent]:
                del names[deeper]
            enclosing = [names[k] for k in sorted(names) if k < indent]
            points.append(_Point(indent, match.group("ok") == "ok", desc.replace("\\#", "#"),
                                 directive, reason, enclosing))
            continue
        plan = _PLAN.match(stripped)
        if plan:
            if indent == 0:
                top_plan = (int(plan.group("n")), plan.group("reason"))
            continue
        sub = _SUBTEST.match(stripped)
        if sub:
            for deeper in [k for k in names if k >= indent]:
                del names[deeper]
            names[indent] = sub.group("name").strip()
            continue
        if stripped.startswith("Bail out!"):
            bail = stripped[len("Bail out!"):].strip() or "bailed out"
            continue
        if stripped.startswith("#") and points and points[-1].depth == indent and not points[-1].ok:
            points[-1].comments.append(stripped[1:].strip() if stripped != "#" else "")
    return _results(path, points, top_plan, bail, node_style)


def _yaml_block(lines: list[str], i: int, indent: int) -> tuple[dict[str, str], int]:
    """Read a TAP 13 YAML block up to ``...``: top-level scalars and ``|`` block scalars."""
    block: dict[str, str] = {}
    key: str | None = None
    key_indent = None
    buffer: list[str] = []
    while i < len(lines):
        raw = lines[i]
        i += 1
        if raw.strip() == "...":
            break
        here = len(raw) - len(raw.lstrip(" "))
        match = _YAML_KEY.match(raw.strip())
        if match and (key_indent is None or here <= key_indent):
            if key is not None:
                block[key] = "\n".join(buffer).strip("\n")
            key_indent = here
            key, value = match.group("key"), match.group("value").strip()
            buffer = [] if value[:1] in ("|", ">") else [_unquote(value)]
            if value[:1] not in ("|", ">") and value == "":
                buffer = []
        elif key is not None:
            buffer.append(raw[(key_indent or 0) + 2:] if len(raw) > (key_indent or 0) else raw.strip())
    if key is not None:
        block[key] = "\n".join(buffer).strip("\n")
    return block, i


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1].replace("''", "'") if value[0] == "'" else value[1:-1]
    return value


def _status(point: _Point, node_style: bool) -> str:
    if point.directive == "SKIP":
        return SKIPPED
    if point.directive == "TODO":
        if node_style or not point.ok:
            return SKIPPED
        return PASSED
    return PASSED if point.ok else FAILED


def _results(path: Path, points: list[_Point], top_plan, bail, node_style: bool) -> list[ParsedResult]:
    results: list[ParsedResult] = []
    if not node_style:
        # Fold nested points into their parent (the next point at a shallower depth).
        pending: list[_Point] = []
        for point in points:
            if point.depth > 0:
                pending.append(point)
                continue
            point.children_failed = [p.desc for p in pending if not p.ok and p.directive is None]
            pending = []
        points = [p for p in points if p.depth == 0]
    for point in points:
        if node_style and point.yaml.get("type") == "suite":
            continue
        status = _status(point, node_style)
        yaml = point.yaml
        message = yaml.get("error") or yaml.get("message")
        stack = yaml.get("stack")
        if status == FAILED and not message:
            details = "\n".join(point.comments).strip()
            if point.children_failed:
                message = "failed subtests: " + ", ".join(point.children_failed)
            message = message or first_line(details)
            stack = stack or details or None
        elif status == SKIPPED:
            message = point.reason or message
        location = yaml.get("location") or ""
        file, line = _location(location)
        results.append(build(
            point.desc or "(unnamed test point)",
            [attempt(status, ms(yaml.get("duration_ms")), message, stack)],
            suite_path=point.path,
            file=file,
            line=line,
        ))
    top_level = sum(1 for p in points if p.depth == 0) if node_style else len(points)
    if top_plan is not None:
        planned, reason = top_plan
        skipped_file = planned == 0 and reason and reason.lower().startswith("skip")
        if not skipped_file and planned != top_level:
            results.append(build(f"{path.name} (bad plan)", [attempt(
                BROKEN, None, f"planned {planned} tests but {top_level} ran (the script died or exited early)")]))
    if bail:
        results.append(build(f"{path.name} (bail out)", [attempt(BROKEN, None, f"Bail out! {bail}")]))
    return results


def _location(location: str) -> tuple[str | None, int | None]:
    # node: '/abs/file.mjs:14:3'
    match = re.match(r"^(.*?):(\d+)(?::\d+)?$", location.strip())
    if not match:
        return None, None
    file = match.group(1)
    if file.startswith("file://"):
        file = file[len("file://"):]
    return file, int(match.group(2))
