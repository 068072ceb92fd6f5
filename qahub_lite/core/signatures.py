"""Failure signatures: what broke, as a short stable key (docs/triage.md has every rule with
examples).

A failed or broken result's signature is its exception type, its message with the volatile
parts masked, and the names of the top frames of its stack (innermost first, test-runner and
standard-library frames skipped), hashed to 16 hex digits. Two failures with one signature are
one problem: "TimeoutError: waited 5003ms for #submit" and "...4999ms..." are one; an
AssertionError and a TypeError with the same words are two.

Computed at ingest (core/ingest.py) for every failing result, in bulk: `compute` is pure and
memoized on the message and stack with every digit read as 0 (exact: see `_zeroed`), frame
lines are parsed once each, and `store` upserts the project's `failure_signatures` rows, their
counts, tests and branches with a few bulk statements, never one query per row.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from ..db import failures as failures_db
from .clock import now_ms

# Only the head of a message and of a stack decides the signature: a 1 MB stack costs no more.
MESSAGE_HEAD = 600
STACK_HEAD = 4000
MESSAGE_LINES = 3  # non-empty lines of the message kept (Jest puts Expected/Received below)
TOP_FRAMES = 2
UNKNOWN_TYPE = "Failure"

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# The masks, in order. The ingest budget is a few microseconds per failure (bench/bench_triage.py):
# quoted values, temporary paths, UUIDs and dates are looked for only when a character they need
# is there, and then every token that holds a digit (numbers, durations like 5003ms, hex ids and
# addresses like 0x4f3a2c, line numbers, counters in names) becomes <n> in one pass. A
# placeholder holds no digit, quote or slash, so no later rule rewrites it.
_STR = re.compile(r"\"(?:[^\"\\\n]|\\.){0,200}\"|'(?:[^'\\\n]|\\.){0,200}'"
                  r"|`[^`\n]{0,200}`|‘[^’\n]{0,200}’|“[^”\n]{0,200}”")
_TMP = re.compile(r"(?:/tmp|/var/folders|/private/var/folders|/var/tmp)/[^\s'\"):,]*"
                  r"|[A-Za-z]:\\[^\s'\"]*\\(?:Temp|tmp)\\[^\s'\"):,]*")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_TS = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
                 r"|\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?")
_NUMBERISH = re.compile(r"\b[^\W\d]*\d(?:\w|\.\d)*")

# "pkg.Type: message", "Error: message", "System.X.FooException : message", "panic: message".
_TYPE = re.compile(
    r"^\s*(?:E\s+)?(?P<type>(?:[A-Za-z_$][\w$]*[.:]{1,2})*(?:[A-Za-z_$][\w$]*)?"
    r"(?:Error|Exception|Failure|Fault|Timeout|Panic|Exit|Interrupt|Warning)|panic)"
    r"\s?(?::|\s-\s)\s*(?P<rest>.*)$",
    re.S,
)

# Frame shapes, one per family; each yields (function, file) names without lines or folders.
# Every shape starts a line: anchoring the alternation at line starts keeps the scan of a long
# stack linear and cheap (bench/bench_triage.py).
_FRAMES = re.compile(
    r"^[ \t]*(?:"
    r"File \"(?P<pyfile>[^\"]+)\", line \d+, in (?P<pyfunc>\S+)"                # Python
    r"|at (?P<jfunc>[\w$.<>\[\]`]+)\((?P<jfile>[^():]*)(?::\d+)?\)"              # Java, Kotlin, Scala
    r"|at (?:(?:async |new )?(?P<jsfunc>[^\s(]+) \()?(?P<jsfile>[^\s()]+?):\d+:\d+\)?"  # JavaScript
    r"|at (?P<nfunc>[\w$.<>`\[\],|]+?)\(.*?\)(?: in (?P<nfile>.+?):line \d+)?[ \t]*$"  # .NET
    r"|(?P<gofile>[\w./-]+\.go):\d+"                                               # Go
    r"|(?P<pyshort>[\w./-]+\.py):\d+: "                                            # pytest --tb=short/line
    r")",
)
# Frames of runners, frameworks and standard libraries say nothing about what broke: judged by
# the file (JavaScript, Python, Go) or by the qualified function (JVM, .NET).
_NOISE_FILE = re.compile(
    r"node_modules|^node:|^internal/|<anonymous>|site-packages|dist-packages|/_pytest/|/pluggy/|/unittest/|"
    r"^/usr/lib/|/src/testing/|/src/runtime/|^testing/|^runtime/"
)
_NOISE_FUNC = re.compile(
    r"^(?:java|javax|jdk|sun|kotlin|scala|junit|org\.junit|org\.testng|org\.apache\.maven|org\.gradle|"
    r"System|Microsoft|NUnit|Xunit|xunit|reflect|testing|runtime)\.|^Promise\.|^process\.processTicksAndRejections"
)


_FILE_NAME = re.compile(r"[\w$.-]+\.\w+")


def _mask(text: str) -> str:
    if "\"" in text or "'" in text or "`" in text or "‘" in text or "“" in text:
        text = _STR.sub("<str>", text)
    if "/tmp" in text or "/var/" in text or "Temp\\" in text or "tmp\\" in text:
        text = _TMP.sub("<tmp>", text)
    dashes = text.count("-")
    if dashes >= 4:
        text = _UUID.sub("<uuid>", text)
    if dashes >= 2 or ":" in text:
        text = _TS.sub("<ts>", text)
    return _NUMBERISH.sub("<n>", text)


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def frames(stack: str, limit: int = TOP_FRAMES) -> list[str]:
    """The innermost `limit` frames of a stack that are the project's own code, as
    `function@file` (or `file` when the language gives no function): no line numbers, no folders."""
    found: list[str] = []
    python = False
    for line in stack[:STACK_HEAD].splitlines():
        # Frame lines recur and are short; a long line is one-off text a client chose, and
        # caching it would let any write key grow the cache's memory (4 KB a key).
        name, is_python = _frame_of(line) if len(line) <= _CACHED_LINE else _frame_of.__wrapped__(line)
        python = python or is_python
        if name is None:
            continue
        found.append(name)
        if not python and len(found) >= limit:
            break  # innermost first: the rest of the stack cannot change the answer
    # Python prints the innermost frame last ("most recent call last"); the others first.
    ordered = found[::-1] if python else found
    return list(dict.fromkeys(ordered))[:limit]


_CACHED_LINE = 300


@lru_cache(maxsize=65536)
def _frame_of(line: str) -> tuple[str | None, bool]:
    """(the frame's name, or None when the line is no frame or a runner's; whether it is
    Python's). Cached: the same frame lines recur in every failure of a suite."""
    m = _FRAMES.match(line)
    if m is None:
        return None, False
    python = False
    if m.group("pyfile") is not None:
        python = True
        file, func = m.group("pyfile"), m.group("pyfunc")
    elif m.group("jfunc") is not None:
        # "(Foo.java:42)" names a file; .NET's "(Int32 a, Int32 b)" names parameters.
        file, func = m.group("jfile") or "", m.group("jfunc")
        if not _FILE_NAME.fullmatch(file):
            file = ""
    elif m.group("nfunc") is not None:
        file, func = m.group("nfile") or "", m.group("nfunc").split("(", 1)[0].strip()
    elif m.group("jsfile") is not None:
        file, func = m.group("jsfile"), m.group("jsfunc") or ""
    elif m.group("gofile") is not None:
        file, func = m.group("gofile"), ""
    else:
        python = True
        file, func = m.group("pyshort"), ""
    if _NOISE_FUNC.search(func) or _NOISE_FILE.search(file.replace("\\", "/")):
        return None, python
    name = f"{func}@{_basename(file)}" if func and file else (func or _basename(file))
    return _mask_frame(name), python


_DIGITS = re.compile(r"\d+")


def _mask_frame(name: str) -> str:
    # Lambdas and generated names carry counters: Foo$1, <lambda>_12, MoveNext+d__7.
    return _DIGITS.sub("<n>", name)


def split_type(message: str) -> tuple[str, str]:
    """(exception type, the message after it); the type is '' when the message names none."""
    m = _TYPE.match(message)
    if not m:
        return "", message
    return m.group("type").rsplit(".", 1)[-1].rsplit("::", 1)[-1], m.group("rest")


_DIFF_LINE = re.compile(r"^[-+?]\s")


def _type_from_stack(stack: str) -> tuple[str, str]:
    """The exception a stack names: Python prints it last (after "Traceback ..."), the other
    languages first."""
    lines = stack.splitlines()
    if stack.lstrip().startswith("Traceback"):
        lines = lines[::-1]
    for line in lines[:200]:
        if line.strip() and not line.startswith((" ", "\t")):
            kind, rest = split_type(line)
            if kind:
                return kind, rest
    return "", ""


def _head_lines(text: str) -> str:
    # Diff lines (pytest's "- b" / "+ a", Jest's "- Expected") hold the values, not the problem.
    lines = [line.strip() for line in text.splitlines() if line.strip() and not _DIFF_LINE.match(line.strip())]
    return " | ".join(lines[:MESSAGE_LINES])


# Every rule treats all digits alike (each masks a token for holding one, whatever its value),
# so a failure's signature is the same with every digit written as 0. Computing on that form
# makes failures that differ only in numbers (line numbers, durations, counts, ports) one cache
# entry: exact, and most of a large body's failures are then looked up, not normalized.
# UTF-8 never uses the bytes of ASCII digits inside other characters, so bytes are safe to map.
_ZERO = bytes.maketrans(b"123456789", b"000000000")


def _zeroed(text: str) -> str:
    return text.encode("utf-8", "surrogatepass").translate(_ZERO).decode("utf-8", "surrogatepass")


def compute(message: str | None, stack: str | None, status: str = "FAILED",
            masks: tuple[re.Pattern, ...] = ()) -> tuple[str, str, str]:
    """(hash, exception type, normalized text) of one failure. `masks` are the project's own
    rules (applied first, on the text as reported; each match becomes <masked>)."""
    message = (message or "")[:MESSAGE_HEAD]
    stack = (stack or "")[:STACK_HEAD]
    if masks:
        message, stack = _ANSI.sub("", message), _ANSI.sub("", stack)
        for pattern in masks:
            message = pattern.sub("<masked>", message)
            stack = pattern.sub("<masked>", stack)
    return _compute(_zeroed(message), _zeroed(stack), "BROKEN" if status == "BROKEN" else "FAILED")


# Keys are a failure's masked message and stack head (up to ~4.6 KB each): 4,096 of them bound
# the cache near 20 MB whatever clients send, and still hold a suite's kinds of failure.
@lru_cache(maxsize=4096)
def _compute(message: str, stack: str, status: str) -> tuple[str, str, str]:
    if "\x1b" in message:
        message = _ANSI.sub("", message)
    if "\x1b" in stack:
        stack = _ANSI.sub("", stack)
    kind, rest = split_type(message)
    if not kind and stack:
        kind, stack_rest = _type_from_stack(stack)
        if kind and not rest.strip():
            rest = stack_rest
    if not rest.strip() and stack and not kind:
        rest = next((line for line in stack.splitlines() if line.strip()), "")
    kind = _DIGITS.sub("<n>", kind) if kind else ("Broken" if status == "BROKEN" else UNKNOWN_TYPE)
    text = " ".join(_mask(_head_lines(rest)).split())[:400]
    top = frames(stack) if stack else []
    normalized = text + ("" if not top else "\n" + " < ".join(top))
    digest = hashlib.sha256(f"{kind}\n{normalized}".encode()).hexdigest()[:16]
    return digest, kind, normalized


def compile_masks(patterns: Iterable[str]) -> tuple[re.Pattern, ...]:
    """A project's mask rules (validated when they were saved: see triage.add_rule)."""
    return tuple(re.compile(p) for p in patterns)


def project_masks(conn, project_id: str) -> tuple[re.Pattern, ...]:
    return _cached_masks(failures_db.mask_patterns(conn, project_id))


@lru_cache(maxsize=256)
def _cached_masks(patterns: tuple[str, ...]) -> tuple[re.Pattern, ...]:
    return compile_masks(patterns)


class Stored:
    """What `store` found: signature id per result, and which signatures are new to the project."""

    __slots__ = ("ids", "new", "triage")

    def __init__(self) -> None:
        self.ids: list[int | None] = []
        self.new: list[tuple[int, str, str, str]] = []  # (id, hash, type, example) first seen now
        self.triage: dict[int, tuple[str | None, str | None]] = {}  # id -> (ticket key, url) when known


def store(
    conn, project_id: str, run_id: str, branch: str | None,
    failing: Sequence[tuple[int, str, str | None, str | None]], total: int,
) -> Stored:
    """Writer step of the ingest: the signature id of each of `total` rows (None for rows not in
    `failing`), creating and counting the project's signatures.

    `failing`: (row position, status, error message, error stack) of the failed or broken rows.
    Counts: occurrences and last_seen per signature and per branch; tests in signature_tests.
    A re-sent result (an upsert of the same test in the same run) counts again: occurrences
    count what was reported, the failure groups of a run count its results.
    """
    out = Stored()
    out.ids = [None] * total
    if not failing:
        return out
    masks = project_masks(conn, project_id)
    now = now_ms()
    by_hash: dict[str, list] = {}  # hash -> [type, normalized, example, count, positions]
    for pos, status, message, stack in failing:
        digest, kind, normalized = compute(message, stack, status, masks)
        entry = by_hash.get(digest)
        if entry is None:
            by_hash[digest] = [kind, normalized, (message or stack or "")[:500], 1, [pos]]
        else:
            entry[3] += 1
            entry[4].append(pos)
    hashes = list(by_hash)
    existing = failures_db.signature_ids(conn, project_id, hashes)
    fresh = [h for h in hashes if h not in existing]
    if fresh:
        failures_db.insert_signatures(
            conn, [(project_id, h, by_hash[h][0], by_hash[h][1], by_hash[h][2], now, now, run_id) for h in fresh])
        created = failures_db.signature_ids(conn, project_id, fresh)
        existing.update(created)
        out.new = [(created[h][0], h, by_hash[h][0], by_hash[h][2]) for h in fresh if h in created]
    # A merged signature counts on the one it was merged into (one hop: merges are flattened).
    target = {h: (row[1] or row[0]) for h, row in existing.items()}
    counts: dict[int, int] = {}
    for h, entry in by_hash.items():
        sid = target[h]
        counts[sid] = counts.get(sid, 0) + entry[3]
        for pos in entry[4]:
            out.ids[pos] = sid
    failures_db.count_occurrences(conn, counts, branch or "", now)
    out.triage = failures_db.tickets(conn, list(counts))
    return out


def record_tests(conn, pairs: Iterable[tuple[int, int]]) -> None:
    """(signature id, test id) pairs seen now. Counted when read (triage.py): a count kept here
    would cost every ingest a query per signature."""
    failures_db.record_tests(conn, list(dict.fromkeys(pairs)))
