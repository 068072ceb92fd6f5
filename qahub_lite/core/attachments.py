"""Attachment files: files first, rows second (STYLE.md habit 7).

A file is streamed to a temporary file in the attachments folder and fsynced (`stage`); then,
inside the writer's transaction, it is renamed to its SHA-256 (the name on disk never comes
from the client) and its row inserted (`insert_attachment`). Files are removed only after the
delete of their last row has committed (`remove_unreferenced`, also run by the writer).
Identical files share one file on disk. Renames and removals both happen on the writer
thread, so a removal can never race an upload of the same content.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import msgspec

from ..db import results as results_db
from .clock import new_id, now_ms, row_id, to_iso
from .errors import Invalid, NotFound

# Seed 001: PNG, JPG, GIF, WebP, SVG, PDF, TXT, JSON, ZIP, MP4, WebM.
ALLOWED = {
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml", "application/pdf", "text/plain",
    "application/json", "application/zip", "video/mp4", "video/webm",
}
# Types a browser could run script from when shown inline; always served as downloads.
ACTIVE_TYPES = {"image/svg+xml", "application/pdf", "application/json", "text/plain"}


class Attachment(msgspec.Struct, rename="camel"):
    """Seed 001's shape: id, fileName, mimeType, size, createdAt."""

    id: str
    file_name: str
    mime_type: str
    size: int
    created_at: str | None


class AttachmentList(msgspec.Struct):
    data: list[Attachment]


class TooLarge(Exception):
    pass


def sniff(head: bytes) -> str | None:
    """The content type from the first bytes, or None when it is none of the allowed types."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "application/zip"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return None


def sniff_text(path: Path, head: bytes) -> str | None:
    """SVG, JSON or plain text: valid UTF-8 without NUL bytes, told apart by content."""
    if b"\x00" in head:
        return None
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return None
    stripped = text.lstrip("\ufeff \t\r\n")
    lowered = stripped[:2048].lower()
    if lowered.startswith(("<svg", "<?xml")) and "<svg" in lowered:
        return "image/svg+xml"
    if stripped[:1] in ("{", "["):
        try:
            json.loads(text)
            return "application/json"
        except ValueError:
            pass
    return "text/plain"


class StagedFile(msgspec.Struct):
    tmp_path: str  # fsynced, not yet renamed to its hash name
    sha256: str
    size: int
    mime_type: str


def blob_path(attachments_dir: Path, sha256: str) -> Path:
    return attachments_dir / sha256[:2] / sha256


async def stage(attachments_dir: Path, chunks, max_bytes: int) -> StagedFile:
    """Stream `chunks` (an async iterator of bytes) to disk under its hash name.

    Raises TooLarge past `max_bytes` (the partial file is removed) and Invalid when the
    content is not an allowed type."""
    tmp_dir = attachments_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    digest, size, head = hashlib.sha256(), 0, b""
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge()
                if len(head) < 4096:
                    head += chunk[: 4096 - len(head)]
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise Invalid("the file is empty")
        mime = sniff(head) or sniff_text(tmp, head)
        if mime is None or mime not in ALLOWED:
            raise Invalid(
                "file type not allowed: the content is not PNG, JPG, GIF, WebP, SVG, PDF, TXT, JSON, ZIP, MP4 or WebM"
            )
        return StagedFile(str(tmp), digest.hexdigest(), size, mime)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def safe_file_name(name: str | None) -> str:
    """A display name only: path parts, control characters and NULs removed."""
    name = (name or "file").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '"')
    return name[:255] or "file"


def discard(staged: StagedFile) -> None:
    Path(staged.tmp_path).unlink(missing_ok=True)


def insert_attachment(
    conn, attachments_dir: Path, tenant_id: str, result_id: str, staged: StagedFile,
    file_name: str,
) -> Attachment:
    """Writer operation: move the staged file to its hash name, then insert its row."""
    key = row_id(result_id)
    if key is None or not results_db.result_in_tenant(conn, tenant_id, key):
        discard(staged)
        raise NotFound("Result not found")
    final = blob_path(attachments_dir, staged.sha256)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged.tmp_path, final)
    _fsync_dir(final.parent)
    attachment_id, now = new_id(), now_ms()
    results_db.insert_attachment(conn, {
        "id": attachment_id, "tenant_id": tenant_id, "result_id": key, "file_name": file_name,
        "mime_type": staged.mime_type, "size": staged.size, "sha256": staged.sha256, "created_at": now,
    })
    return Attachment(attachment_id, file_name, staged.mime_type, staged.size, to_iso(now))


def _attachment(r) -> Attachment:
    return Attachment(r["id"], r["file_name"], r["mime_type"], r["size"], to_iso(r["created_at"]))


def list_attachments(conn, result_id: int) -> list[Attachment]:
    return [_attachment(r) for r in results_db.list_attachments(conn, result_id)]


def get_attachment(conn, tenant_id: str, attachment_id: str, project_id: str | None = None) -> tuple[Attachment, str]:
    """An attachment of the tenant (and of `project_id`, when the caller is limited to one: a
    key limited to one project gets the same 404 for another project's file as for an id that
    does not exist), and its file's hash."""
    row = results_db.find_attachment(conn, tenant_id, attachment_id, project_id)
    if row is None:
        raise NotFound("Attachment not found")
    return _attachment(row), row["sha256"]


def delete_attachment(conn, tenant_id: str, attachment_id: str, project_id: str | None = None) -> list[str]:
    _, sha = get_attachment(conn, tenant_id, attachment_id, project_id)
    results_db.delete_attachment(conn, attachment_id)
    return [sha]


def remove_unreferenced(conn, attachments_dir: Path, hashes: list[str]) -> int:
    """Writer operation, run after the delete of rows has committed: remove the files of
    `hashes` that no attachment row points at any more. Returns how many files went."""
    removed = 0
    for sha in set(hashes):
        if not results_db.hash_in_use(conn, sha):
            try:
                blob_path(attachments_dir, sha).unlink()
                removed += 1
            except FileNotFoundError:
                pass
    return removed
