"""A streaming reader for one file field of a multipart/form-data body.

Litestar's form parser reads the whole body into memory first; an attachment must instead be
streamed to disk and refused with 413 as soon as it passes the limit, without reading the
rest. This reader yields the bytes of the part named `file` (seed 001: `curl -F file=@path`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from .errors import ApiError

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.I)
_NAME = re.compile(r'\bname="([^"]*)"', re.I)
_FILENAME = re.compile(r'\bfilename\*?="?([^";\r\n]*)"?', re.I)
_MAX_HEADER = 16 * 1024


class FilePart:
    def __init__(self) -> None:
        self.field_name: str | None = None
        self.file_name: str | None = None
        self.content_type: str | None = None


def boundary_of(content_type: str) -> bytes:
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(400, "Send the file as multipart/form-data with a field named 'file' (curl -F file=@path)")
    match = _BOUNDARY.search(content_type)
    if not match:
        raise ApiError(400, "multipart/form-data body without a boundary")
    return match.group(1).encode("latin-1")


async def file_chunks(stream: AsyncIterator[bytes], content_type: str, part: FilePart) -> AsyncIterator[bytes]:
    """Yield the content of the part named `file`; `part` is filled in once its headers are
    read. A second file part after it is refused (400) rather than dropped."""
    delimiter = b"--" + boundary_of(content_type)
    buffer = b""
    it = stream.__aiter__()

    async def more() -> bool:
        nonlocal buffer
        try:
            buffer += await it.__anext__()
            return True
        except StopAsyncIteration:
            return False

    while True:
        # Find the next part's headers, looking at each byte once: a search from the start on
        # every chunk made a never-ending part header cost quadratic time (~31 s of CPU for a
        # 64 MB body), and the headers are refused as soon as they pass _MAX_HEADER.
        start, scanned = -1, 0
        while True:
            if start == -1:
                start = buffer.find(delimiter, scanned)
                if start == -1:
                    # Preamble or an ignored field's content: keep only what could begin a delimiter.
                    if len(buffer) > _MAX_HEADER * 4:
                        buffer = buffer[-(len(delimiter) - 1) :]
                    scanned = max(len(buffer) - len(delimiter) + 1, 0)
                else:
                    scanned = start + len(delimiter)
            if start != -1:
                header_end = buffer.find(b"\r\n\r\n", scanned)
                if header_end != -1:
                    break
                if len(buffer) - start > _MAX_HEADER:
                    raise ApiError(400, f"a multipart part's headers are longer than {_MAX_HEADER} bytes")
                scanned = max(len(buffer) - 3, scanned)
            if not await more():
                raise ApiError(400, "multipart body has no field named 'file'")
        if header_end - start > _MAX_HEADER:
            raise ApiError(400, f"a multipart part's headers are longer than {_MAX_HEADER} bytes")
        headers = buffer[start + len(delimiter) : header_end].decode("utf-8", "replace")
        if headers.startswith("--"):
            raise ApiError(400, "multipart body has no field named 'file'")
        buffer = buffer[header_end + 4 :]
        name = _NAME.search(headers)
        filename = _FILENAME.search(headers)
        if name and name.group(1) == "file":
            part.field_name = name.group(1) if name else None
            part.file_name = filename.group(1) if filename else None
            for line in headers.split("\r\n"):
                if line.lower().startswith("content-type:"):
                    part.content_type = line.split(":", 1)[1].strip()
            break
        # Not the file: skip to the next delimiter.
    end_marker = b"\r\n" + delimiter
    while True:
        end = buffer.find(end_marker)
        if end != -1:
            if buffer[:end]:
                yield buffer[:end]
            buffer = buffer[end + len(end_marker) :]
            # Seed 001 uploads one file per request; a second file must not vanish silently.
            while not buffer.startswith(b"--") and b"\r\n\r\n" not in buffer and len(buffer) < _MAX_HEADER:
                if not await more():
                    return
            if not buffer.startswith(b"--") and _FILENAME.search(buffer.split(b"\r\n\r\n", 1)[0].decode(
                    "utf-8", "replace")):
                raise ApiError(400, "one file per request: send each attachment in its own request")
            return
        # Keep a tail that could hold the start of the delimiter.
        keep = len(end_marker)
        if len(buffer) > keep:
            yield buffer[:-keep]
            buffer = buffer[-keep:]
        if not await more():
            raise ApiError(400, "multipart body ended before the file's closing boundary")
