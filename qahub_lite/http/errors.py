"""The one error shape of every non-2xx answer, and the exception handlers raise to give one.

Here, not in api/, because the dashboard answers the same shape to a client that asks for JSON
(web/render.py) and raises the same ApiError from its forms; web must not import api.
"""

from __future__ import annotations

from http import HTTPStatus

import msgspec
from litestar import MediaType, Response


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """The body of every error answer."""

    error: str
    message: str
    retry_after: int | None = None


class ApiError(Exception):
    """Raised by handlers to answer with `status` and `message` (plus optional headers)."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None, **extra) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra


def error_response(status: int, message: str, headers: dict[str, str] | None = None, **extra) -> Response:
    body = {"error": HTTPStatus(status).phrase, "message": message, **extra}
    return Response(content=body, status_code=status, media_type=MediaType.JSON, headers=headers)
