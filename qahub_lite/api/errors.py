"""One error shape for every non-2xx answer of every dialect (STYLE.md habit 5):

    {"error": "<HTTP reason phrase>", "message": "<a sentence for a person>", ...extras}

It satisfies Qualigate (`error`, `message`, `retry_after`) and QA.tech (`message`) at once;
QA Hub's 207 bodies are not errors and keep their own shape. No traceback ever leaves here.
"""

from __future__ import annotations

import errno
import logging
from http import HTTPStatus

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException, ValidationException

from ..http.errors import ApiError, ErrorBody, error_response  # noqa: F401 - api's names for them
from ..core.errors import (
    Conflict, DomainError, Forbidden, Invalid, NotFound, OutOfRange, StorageFailed, StorageFull, Unavailable,
)

log = logging.getLogger("qahub.api")


_DOMAIN_STATUS = {NotFound: 404, Invalid: 400, Conflict: 409, Forbidden: 403}


# errno values that mean "no room": the file system is full, a quota is used up, or the
# process's file-size limit (RLIMIT_FSIZE) was reached.
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def storage_failure(exc: BaseException) -> int | None:
    """507 when storage has no room left, 503 when it failed to write for another I/O reason,
    None when `exc` is not a storage failure. Either way the write was rolled back whole (the
    writer commits all of a request or none of it), so the answer can say nothing was stored."""
    if isinstance(exc, StorageFull):
        return 507
    if isinstance(exc, StorageFailed):
        return 503
    # Attachment files are written by core, not through the storage layer: their errno tells.
    if isinstance(exc, OSError) and exc.errno in _NO_ROOM:
        return 507
    return None


def handle_exception(request: Request, exc: Exception) -> Response:
    response = _answer(request, exc)
    if _body_left_unread(request):
        # We answer before the whole body has arrived (413, a full disk mid-upload, a bad key):
        # the server will not read the rest, so the connection cannot carry another request.
        # Saying so keeps a client from reusing it and meeting a closed socket.
        response.headers["Connection"] = "close"
    return response


def _body_left_unread(request: Request) -> bool:
    headers = request.headers
    announced = headers.get("transfer-encoding") or headers.get("content-length", "0") not in ("", "0")
    # Litestar marks the request disconnected once its body has been streamed to the end.
    return bool(announced) and request.is_connected


def _answer(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.message, exc.headers, **exc.extra)
    if isinstance(exc, DomainError):
        return error_response(_DOMAIN_STATUS.get(type(exc), 400), exc.message)
    if isinstance(exc, OutOfRange):
        # A number the request carried that no column can hold (JSON allows any size; the
        # storage 64 bits). The write was rolled back; Structs should bound such fields, and
        # this keeps one that does not from turning a client's mistake into a 500.
        return error_response(400, f"A number in the request is too large: the largest is {2**63 - 1}")
    if isinstance(exc, NotAuthorizedException):
        return error_response(401, "Missing or invalid API key")
    if isinstance(exc, PermissionDeniedException):
        return error_response(403, "You don't have access to this resource")
    if isinstance(exc, ValidationException):
        return error_response(400, _validation_message(exc))
    if isinstance(exc, HTTPException):
        status = exc.status_code
        message = exc.detail if exc.detail and exc.detail != HTTPStatus(status).phrase else _DEFAULT_MESSAGES.get(
            status, HTTPStatus(status).description or HTTPStatus(status).phrase
        )
        if status == 413:
            message = "Request body is too large"
        return error_response(status, message, dict(exc.headers or {}))
    storage = storage_failure(exc)
    if storage == 507:
        log.error("storage full while serving %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            507, "The server's disk is full; nothing was stored. Try again later.", {"Retry-After": "60"}
        )
    if storage == 503:
        log.error("storage write failed while serving %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            503, "The server could not write to its storage; nothing was stored. Try again later.",
            {"Retry-After": "60"},
        )
    if isinstance(exc, Unavailable):
        return error_response(503, "The server is shutting down; try again shortly.", {"Retry-After": "5"})
    log.exception("unexpected error serving %s %s", request.method, request.url.path)
    return error_response(500, "An unexpected error occurred. Please try again later.")


_DEFAULT_MESSAGES = {
    404: "Not found",
    405: "Method not allowed on this path",
}


def _validation_message(exc: ValidationException) -> str:
    extra = exc.extra if isinstance(exc.extra, list) else []
    parts = []
    for item in extra:
        if isinstance(item, dict):
            key = item.get("key") or ""
            parts.append(f"{key}: {item.get('message')}" if key else str(item.get("message")))
    return "; ".join(parts) or (exc.detail or "Invalid request")
