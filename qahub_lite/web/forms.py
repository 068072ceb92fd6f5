"""Dashboard input at the edge: HTML form posts and page query strings, decoded into msgspec
Structs exactly like the API's JSON bodies (api/routing.py), so a page trusts its types.

Browsers send every field of a form, empty ones as "". An empty field means "not given":
it is dropped before validation, so optional Struct fields take their defaults and a filter
left blank filters nothing.

Every form carries `csrf`; `read_form` checks it against the session's token before the
handler sees any field (the check a handler could forget is not left to it).
"""

from __future__ import annotations

import hmac
import types
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin
from urllib.parse import parse_qsl

import msgspec
from litestar import Request

from ..http.errors import ApiError

S = TypeVar("S")

# No dashboard form is anywhere near this; a larger body is not a form a person filled in.
MAX_FORM_BYTES = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"
CSRF_REFUSED = "The form's security token is missing or out of date. Reload the page and try again."


def decode_pairs(pairs: list[tuple[str, str]], kind: type[S], what: str, ignore: tuple[str, ...] = ()) -> S:
    fields = {f.encode_name: f for f in msgspec.structs.fields(kind)}
    values: dict[str, Any] = {}
    for name, value in pairs:
        if name in ignore:
            continue
        field = fields.get(name)
        if field is None:
            raise ApiError(400, f"unknown {what} field {name!r}")
        value = value.strip() if name != "password" else value
        if value == "":
            continue
        if _is_list(field.type):
            values.setdefault(name, []).append(value)
        else:
            values[name] = value
    try:
        return msgspec.convert(values, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise ApiError(400, f"invalid {what} field: {exc}".replace("`$.", "`")) from None


def _is_list(annotation: Any) -> bool:
    """Does a field take repeated values (`list[...]`, possibly optional or annotated)?"""
    origin = get_origin(annotation)
    if origin is list:
        return True
    if origin in (Union, types.UnionType, Annotated):
        return any(_is_list(arg) for arg in get_args(annotation))
    return False


def read_query(request: Request, kind: type[S]) -> S:
    """The page's query string as `kind`; unknown or invalid parameters are a 400 naming them."""
    return decode_pairs(list(request.query_params.multi_items()), kind, "query")


async def read_raw_form(request: Request) -> list[tuple[str, str]]:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != FORM_TYPE:
        raise ApiError(415, f"a dashboard form is sent as {FORM_TYPE}")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_FORM_BYTES:
        raise ApiError(413, "Request body is too large")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ApiError(413, "Request body is too large")
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "the form could not be read") from None


def check_token(expected: str, presented: str | None) -> None:
    """Constant-time comparison of a CSRF token; a mismatch is a 403 in the one error shape."""
    if not expected or not presented or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise ApiError(403, CSRF_REFUSED)


async def read_form(request: Request, kind: type[S], *, csrf: str) -> S:
    """A posted form as `kind`, after its `csrf` field matched `csrf` (the session's token)."""
    pairs = await read_raw_form(request)
    presented = next((v for k, v in pairs if k == "csrf"), None)
    check_token(csrf, presented)
    return decode_pairs(pairs, kind, "form", ignore=("csrf",))
