"""Reading JSON and NDJSON reports with errors that name the file and the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from .model import ReportError


def load(path: Path) -> Any:
    """Decode a whole JSON document (msgspec: about 3x faster and leaner than `json`)."""
    data = path.read_bytes()
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise ReportError(f"{path}: {_located(data, str(exc))}") from exc


def _located(data: bytes, message: str) -> str:
    # msgspec reports "... - at `$...`" or "(at byte 1234)"; turn a byte offset into a line.
    marker = "byte "
    if marker in message:
        tail = message.rsplit(marker, 1)[1]
        digits = "".join(ch for ch in tail if ch.isdigit())
        if digits:
            line = data.count(b"\n", 0, int(digits)) + 1
            return f"line {line}: malformed JSON ({message})"
    return f"malformed JSON ({message})"


def ndjson(path: Path):
    """Yield ``(line_number, object_or_None, raw_line)`` for each non-blank line.

    Lines that are not JSON objects are passed through with ``None`` so callers can decide:
    ``go test -json`` before Go 1.24 prints build failures as plain text between JSON events.
    """
    decoder = msgspec.json.Decoder()
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            stripped = raw.strip()
            if not stripped:
                continue
            obj = None
            if stripped[:1] == b"{":
                try:
                    obj = decoder.decode(stripped)
                except msgspec.DecodeError:
                    obj = None
            yield number, obj if isinstance(obj, dict) else None, raw.decode("utf-8", "replace").rstrip("\r\n")
