"""Safe, streaming reading of XML reports (JUnit, TRX, NUnit).

Reports come from CI jobs anyone can push to, so the XML is untrusted:

* DTDs are refused outright (``forbid_dtd``). No test tool writes one, and refusing them closes
  entity expansion ("billion laughs", quadratic blow-up) and external entities/XXE at once;
  defusedxml also refuses entity declarations and external references should a DTD slip by.
* The document is read with ``iterparse`` so callers can clear elements as they go: a
  20,000-test report is never held as a full tree.

Every failure becomes a `ReportError` naming the file and the line, because the person who reads
it is looking at a CI log and needs to open the right file at the right place.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from .model import ReportError


def local(tag: str) -> str:
    """Element name without its namespace: TRX and NUnit files are often namespaced."""
    return tag.rsplit("}", 1)[-1] if tag[:1] == "{" else tag


def iterparse(path: Path, events: tuple[str, ...] = ("start", "end")) -> Iterator[tuple[str, ET.Element]]:
    """Yield ``(event, element)`` like `xml.etree.ElementTree.iterparse`, safely.

    Raises `ReportError` for malformed XML, DTDs and entity tricks, with file and line.
    """
    parser = DefusedXMLParser(
        target=ET.TreeBuilder(), forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    try:
        yield from ET.iterparse(str(path), events=events, parser=parser)
    except ET.ParseError as exc:
        line, column = getattr(exc, "position", (None, None))
        reason = str(exc).split(": line", 1)[0]
        raise ReportError(f"{path}: line {line}, column {column}: malformed XML ({reason})") from exc
    except DefusedXmlException as exc:
        line = _current_line(parser)
        raise ReportError(
            f"{path}: line {line}: refused unsafe XML ({type(exc).__name__}: DTDs, entity "
            "declarations and external references are not accepted in reports)"
        ) from exc


def _current_line(parser: DefusedXMLParser) -> int | str:
    expat = getattr(parser, "parser", None) or getattr(parser, "_parser", None)
    return getattr(expat, "CurrentLineNumber", "?")
