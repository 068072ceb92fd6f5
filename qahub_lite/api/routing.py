"""Declaring API routes: one decorator that registers a Litestar handler and records what the
OpenAPI document needs (request and response Structs, query Struct, scope).

Bodies are read raw and decoded once by a msgspec Decoder built at import (DESIGN.md measured
Litestar's typed `data:` decoding twice); bulk bodies keep their items as `msgspec.Raw` so that
each item is validated on its own. Query strings are converted into a Struct the same way, so
a wrong parameter is a 400 that names it.
"""

from __future__ import annotations

import functools

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import msgspec
from litestar import Request, route

from .errors import ApiError

S = TypeVar("S")

# Bulk bodies keep their `results` items as msgspec.Raw (validated one by one); this says
# which Struct each such body's items are, so the OpenAPI document can describe them.
RAW_ITEMS: dict[Any, Any] = {}


def raw_items(container: Any, item: Any) -> None:
    """Declare that `container.results` holds `item`s (for the OpenAPI document)."""
    RAW_ITEMS[container] = item


class Endpoint(msgspec.Struct):
    method: str
    path: str
    summary: str
    tags: list[str]
    scope: str | None
    body: Any = None
    query: Any = None
    responses: dict[int, Any] = {}
    body_media: str = "application/json"
    description: str = ""


def endpoint(
    method: str,
    path: str,
    *,
    summary: str,
    tags: list[str],
    scope: str | None,
    responses: dict[int, Any],
    body: Any = None,
    query: Any = None,
    body_media: str = "application/json",
    description: str = "",
) -> Callable:
    """Register `fn` as `method path`. The first status in `responses` is the default."""
    info = Endpoint(method, path, summary, tags, scope, body, query, responses, body_media, description)

    def decorate(fn: Callable) -> Any:
        return route(
            path,
            http_method=[method],
            status_code=next(iter(responses)),
            include_in_schema=False,  # our own document (api/openapi.py) describes it
            opt={"endpoint": info},
            name=f"{method.lower()}:{path}",
        )(fn)

    return decorate


def endpoints(handlers: Iterable[Any]) -> list[Endpoint]:
    """The endpoints among route `handlers` (those declared with `endpoint`), in their order.
    What the app serves is the list: an endpoint exists because a handler of the app has it, not
    because its module was imported."""
    found: dict[int, Endpoint] = {}
    for handler in handlers:
        info = (getattr(handler, "opt", None) or {}).get("endpoint")
        if info is not None:
            found.setdefault(id(info), info)
    return list(found.values())


def app_endpoints(app: Any) -> list[Endpoint]:
    """The endpoints a built Litestar app serves (read from its routes)."""
    return endpoints(handler for route in app.routes for handler in getattr(route, "route_handlers", ()))


_decoders: dict[Any, msgspec.json.Decoder] = {}


def _decoder(kind: Any) -> msgspec.json.Decoder:
    if kind not in _decoders:
        _decoders[kind] = msgspec.json.Decoder(kind)
    return _decoders[kind]


def describe_validation(exc: msgspec.DecodeError) -> str:
    """msgspec's message, reworded for people: 'Object missing required field `results`'
    stays, the JSON path is kept ('at `$.results[2].status`')."""
    text = str(exc)
    if text.startswith("JSON is malformed") or text.startswith("Input data was truncated"):
        return f"Request body is not valid JSON: {text}"
    return text


async def read_body(request: Request, kind: type[S]) -> S:
    raw = await request.body()
    if not raw.strip():
        raise ApiError(400, "Request body is empty: send a JSON object")
    try:
        return _decoder(kind).decode(raw)
    except msgspec.DecodeError as exc:
        raise ApiError(400, describe_validation(exc)) from None
    except RecursionError:
        # msgspec decodes nested containers recursively; `[[[[...` thousands deep ends here.
        raise ApiError(400, TOO_DEEP) from None
    except UnicodeDecodeError:
        # msgspec hands invalid UTF-8 inside strings to Python's decoder, which raises this.
        raise ApiError(400, NOT_UTF8) from None


TOO_DEEP = "Request body is not valid JSON: it is nested too deeply"
NOT_UTF8 = "Request body is not valid JSON: it is not UTF-8"


def decode_item(raw: msgspec.Raw, kind: type[S]) -> S:
    """Decode one item of a bulk body; raises msgspec.DecodeError for the caller to record."""
    try:
        return _decoder(kind).decode(raw)
    except RecursionError:
        raise msgspec.DecodeError("JSON is nested too deeply") from None
    except UnicodeDecodeError:
        raise msgspec.DecodeError("a string is not UTF-8") from None




@functools.lru_cache(maxsize=None)  # one entry per query Struct of the app: a fixed, small set
def _query_fields(kind: type) -> dict[str, msgspec.structs.FieldInfo]:
    # msgspec.structs.fields resolves the class' annotations on every call: a fifth of a
    # QA.tech poll's time on the event loop before it was remembered (bench/bench_poll.py).
    return {f.encode_name: f for f in msgspec.structs.fields(kind)}


def read_query(request: Request, kind: type[S]) -> S:
    params: dict[str, Any] = {}
    fields = _query_fields(kind)
    for name, value in request.query_params.multi_items():
        field = fields.get(name)
        if field is None:
            raise ApiError(400, f"unknown query parameter {name!r}")
        params[name] = value
    try:
        return msgspec.convert(params, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise ApiError(400, f"invalid query parameter: {exc}".replace("`$.", "`")) from None
