"""Safe, streaming reading of XML reports (JUnit, TRX, NUnit).

Reports come from CI jobs anyone can push to, so the XML is untrusted. The parser is expat (the C
``pyexpat`` module) driven directly, hardened the way defusedxml hardens it:

* A DOCTYPE is refused as soon as expat reports its start (``StartDoctypeDeclHandler``). No test
  tool writes one, and refusing it closes entity expansion ("billion laughs", quadratic blow-up)
  and external entities/DTDs (XXE) at once: nothing inside the DTD is ever processed.
* Entity declarations and external entity references are refused too, and parameter entities
  are never parsed, should a DTD ever get past the first check (defense in depth, as defusedxml's
  ``forbid_entities``/``forbid_external``).
* Without a DTD, a reference to an undeclared entity (``&xxe;``) is a well-formedness error in
  expat itself.

Why not defusedxml any more: to install those handlers it swaps ElementTree's C parser for the
pure-Python one, which calls back into Python several times per element (name fixing, attribute
copying, event queueing). Here expat's callbacks go straight into ElementTree's C `TreeBuilder`
through two small functions: reading a 20,000-test JUnit file's XML takes ~25% fewer instructions
(the rest of the JUnit speed-up is in junit.py).

The file is fed in fixed-size chunks and events are handed over after each chunk, so callers can
drop elements as they go: a 20,000-test report is never held as a full tree.

Every failure becomes a `ReportError` naming the file and the line, because the person who reads
it is looking at a CI log and needs to open the right file at the right place.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from xml.parsers import expat

from .model import ReportError

# Big enough that per-chunk overhead vanishes, small enough to keep memory flat on any file. Also
# expat's text buffer size: a long <system-out> arrives in few pieces.
CHUNK_BYTES = 64 * 1024


class _Refused(Exception):
    """Raised from an expat handler: pyexpat stops parsing and re-raises it from ``Parse``."""


def _refuse_doctype(name, sysid, pubid, has_internal_subset):
    raise _Refused(f"DOCTYPE {name!r}")


def _refuse_entity(name, *_details):
    raise _Refused(f"entity declaration {name!r}")


def _refuse_external(context, base, sysid, pubid):
    raise _Refused(f"external entity reference {sysid!r}")


def hardened_parser() -> expat.XMLParserType:
    """An expat parser that refuses DTDs, entity declarations and external references.

    Namespaces are processed with ``}`` as separator, so a namespaced name arrives as
    ``uri}local`` (`qualify` turns it into ElementTree's ``{uri}local``). Character data is
    buffered, so a text node arrives in one call rather than one per line or entity.
    """
    parser = expat.ParserCreate(None, "}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity
    parser.UnparsedEntityDeclHandler = _refuse_entity
    parser.ExternalEntityRefHandler = _refuse_external
    parser.buffer_text = True
    parser.buffer_size = CHUNK_BYTES
    return parser


def feed(path: Path, parser: expat.XMLParserType) -> Iterator[None]:
    """Feed `path` to `parser` chunk by chunk, yielding after each chunk (and after the end).

    The caller drains whatever its handlers collected at each yield. Malformed XML and refused
    constructs raise `ReportError` with the file and line; exceptions raised by the caller's own
    handlers pass through untouched.
    """
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                parser.Parse(chunk, False)
                yield
            parser.Parse(b"", True)
            yield
    except expat.ExpatError as exc:
        reason = expat.ErrorString(exc.code)
        raise ReportError(
            f"{path}: line {exc.lineno}, column {exc.offset}: malformed XML ({reason})"
        ) from exc
    except _Refused as exc:
        raise ReportError(
            f"{path}: line {parser.CurrentLineNumber}: refused unsafe XML ({exc}: DTDs, entity "
            "declarations and external references are not accepted in reports)"
        ) from exc


def qualify(name: str) -> str:
    """expat's ``uri}local`` -> ElementTree's ``{uri}local``; names without a namespace as is."""
    return "{" + name if "}" in name else name


def local(tag: str) -> str:
    """Element name without its namespace: TRX and NUnit files are often namespaced."""
    return tag.rsplit("}", 1)[-1] if tag[:1] == "{" else tag


def iterparse(path: Path, whole: frozenset[str] = frozenset()) -> Iterator[tuple[str, ET.Element]]:
    """Yield ``("start" | "end", element)`` like `xml.etree.ElementTree.iterparse`, safely.

    Elements are built by ElementTree's C `TreeBuilder`, with namespaced tags and attribute names
    as ``{uri}local``. An element's children and text are complete only at its "end" event; the
    caller may remove it from its parent then to keep memory flat.

    Elements whose local name is in `whole` (JUnit's ``testcase``) are reported once, complete,
    as ``("whole", element)`` instead of start/end events for them and everything inside, and
    are detached from their parent, as the caller would do anyway: a big report is mostly such
    elements, and this halves the events the caller's loop goes through.

    Raises `ReportError` for malformed XML, DTDs and entity tricks, with file and line.
    """
    builder = ET.TreeBuilder()
    events: list[tuple[str, ET.Element]] = []
    append, build_start, build_end = events.append, builder.start, builder.end
    open_elements: list[ET.Element] = []  # the reported (non-whole) elements still open
    inside = 0  # depth inside a whole element, 0 outside

    def start(tag: str, attrib: dict[str, str]) -> None:
        nonlocal inside
        name = tag  # local name
        if "}" in tag:
            name = tag.rpartition("}")[2]
            tag = "{" + tag
        if attrib and "}" in "".join(attrib):  # rare: xsi:schemaLocation and the like
            attrib = {qualify(k): v for k, v in attrib.items()}
        elem = build_start(tag, attrib)
        if inside:
            inside += 1
        elif name in whole:
            inside = 1
        else:
            open_elements.append(elem)
            append(("start", elem))

    def end(tag: str) -> None:
        nonlocal inside
        elem = build_end(tag)
        if not inside:
            open_elements.pop()
            append(("end", elem))
            return
        inside -= 1
        if not inside:
            if open_elements:
                open_elements[-1].remove(elem)
            append(("whole", elem))

    parser = hardened_parser()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    for _ in feed(path, parser):
        yield from events
        events.clear()
