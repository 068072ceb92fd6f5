"""The OpenAPI 3.1 document at /api/v1/openapi.json, built from the endpoints declared with
`routing.endpoint` and their msgspec Structs, and a docs page that needs no internet.

Built here rather than by Litestar because handlers read raw bodies (see routing.py), which
Litestar's generator cannot see; this way every request and answer Struct is described, and
every error answer points at the one error schema.
"""

from __future__ import annotations

import html
import re
import types
import typing
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.response import Response as LitestarResponse

from .. import __version__
from .errors import ErrorBody
from .routing import ENDPOINTS, RAW_ITEMS, Endpoint

_PATH_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
_ERROR_STATUSES = {
    400: "The request is malformed; `message` names the field",
    401: "Missing or invalid API key",
    403: "Suspended tenant, or the key lacks the scope",
    404: "Not found (or belongs to another tenant)",
    408: "The request body paused or dragged past server.body_idle_timeout_s / body_timeout_s",
    409: "Conflicts with the resource's current state (a finished run, a taken code)",
    413: "Body larger than the limit",
    429: "Rate limit exceeded; wait `retry_after` seconds",
    500: "Unexpected error",
    503: "Shutting down, or storage could not be written; nothing was stored (see Retry-After)",
    507: "The server's disk is full; nothing was stored (see Retry-After)",
}
_cache: dict[str, bytes] = {}


def build_document() -> dict[str, Any]:
    structs: list[Any] = [ErrorBody]
    raw_items = RAW_ITEMS
    for ep in ENDPOINTS:
        for kind in [ep.body, *ep.responses.values()]:
            structs.extend(m for m in _members(kind) if isinstance(m, type))
        structs.extend(raw_items.values())
    structs = list(dict.fromkeys(structs))
    refs, components = msgspec.json.schema_components(structs, ref_template="#/components/schemas/{name}")
    ref_of = dict(zip(structs, refs))

    def schema_of(kind: Any) -> dict:
        if isinstance(kind, types.UnionType):
            return {"anyOf": [ref_of[m] for m in _members(kind)]}
        return ref_of[kind]

    # A bulk body's `results` items are msgspec.Raw (validated one by one): describe the item.
    for container, item in raw_items.items():
        schema = components.get(container.__name__)
        if schema and "results" in schema.get("properties", {}):
            schema["properties"]["results"] = {"type": "array", "items": ref_of[item]}

    paths: dict[str, dict] = {}
    for ep in ENDPOINTS:
        path = _PATH_PARAM.sub(r"{\1}", ep.path)
        op: dict[str, Any] = {
            "summary": ep.summary,
            "tags": ep.tags,
            "operationId": f"{ep.method.lower()}_{re.sub(r'[^a-zA-Z0-9]+', '_', path).strip('_')}",
            "parameters": _parameters(ep, path),
            "responses": {},
        }
        if ep.description:
            op["description"] = ep.description
        if ep.scope:
            op["security"] = [{"bearer": []}, {"apiKey": []}]
            op["x-scope"] = ep.scope
        if ep.body == "multipart":
            op["requestBody"] = {
                "required": True,
                "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }}},
            }
        elif ep.body is not None:
            op["requestBody"] = {"required": True, "content": {ep.body_media: {"schema": schema_of(ep.body)}}}
        for status, kind in ep.responses.items():
            if kind == "binary":
                # A file is served with its own type (image/png, application/pdf, ...).
                content = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
            elif kind == "text":
                content = {"text/plain": {"schema": {"type": "string"}}}
            else:
                content = {"application/json": {"schema": schema_of(kind)}}
            op["responses"][str(status)] = {"description": "OK" if status < 300 else "See body", "content": content}
        for status, text in _ERROR_STATUSES.items():
            if ep.scope is None and status in (401, 403):
                continue
            op["responses"].setdefault(
                str(status), {"description": text, "content": {"application/json": {"schema": ref_of[ErrorBody]}}}
            )
        paths.setdefault(path, {})[ep.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "qahub-lite",
            "version": __version__,
            "description": "Self-hosted test-results hub speaking the QA Hub, QualityPilot, QA.tech and Qualigate APIs.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


def _members(kind: Any) -> tuple:
    """A union (`A | B`: one status answered in several shapes) is described as anyOf its
    members; msgspec itself only takes unions of tagged Structs."""
    return typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)


def _parameters(ep: Endpoint, path: str) -> list[dict]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(ep.path)
    ]
    if ep.query is not None:
        schema = msgspec.json.schema(ep.query)
        defs = schema.get("$defs", {})
        if "$ref" in schema:
            schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in required, "schema": _inline(prop, defs)})
    return params


def _inline(prop: dict, defs: dict) -> dict:
    if "$ref" in prop:
        return defs[prop["$ref"].rsplit("/", 1)[-1]]
    return prop


def document_bytes() -> bytes:
    if "doc" not in _cache:
        _cache["doc"] = msgspec.json.encode(build_document())
    return _cache["doc"]


@get("/api/v1/openapi.json", include_in_schema=False)
async def openapi_json() -> LitestarResponse:
    # CORS allowed (seed 002): tools in a browser may read the schema from anywhere.
    return Response(
        content=document_bytes(), media_type="application/json",
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"},
    )


@get("/api/docs", include_in_schema=False)
async def api_docs(request: Request) -> LitestarResponse:
    """A server-rendered reference page: no script, no CDN, works air-gapped."""
    doc = build_document()
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width'>",
        "<title>qahub-lite API</title><style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem;color:#1b1f24}code,pre{font:13px ui-monospace,monospace;background:#f3f4f6;padding:.1rem .3rem;"
        "border-radius:4px}h2{margin-top:2.5rem;border-bottom:1px solid #ddd}.op{margin:1.2rem 0}.m{font-weight:700;"
        "display:inline-block;min-width:4.5rem}.scope{color:#6b7280;font-size:13px}</style></head><body>",
        f"<h1>qahub-lite API <small>{html.escape(doc['info']['version'])}</small></h1>",
        "<p>Machine-readable: <a href='/api/v1/openapi.json'>/api/v1/openapi.json</a>. Send keys as "
        "<code>Authorization: Bearer qh_…</code> or <code>X-API-Key: qh_…</code>. Every error answer is "
        "<code>{\"error\": …, \"message\": …}</code>.</p>",
    ]
    by_tag: dict[str, list] = {}
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            by_tag.setdefault(op["tags"][0] if op.get("tags") else "Other", []).append((path, method, op))
    for tag, ops in by_tag.items():
        parts.append(f"<h2>{html.escape(tag)}</h2>")
        for path, method, op in ops:
            scope = f" <span class=scope>scope: {op['x-scope']}</span>" if "x-scope" in op else ""
            parts.append(
                f"<div class=op><span class=m>{method.upper()}</span> <code>{html.escape(path)}</code>{scope}"
                f"<br>{html.escape(op['summary'])}"
            )
            params = [p for p in op.get("parameters", []) if p["in"] == "query"]
            if params:
                parts.append("<br>Query: " + ", ".join(f"<code>{html.escape(p['name'])}</code>" for p in params))
            body = op.get("requestBody", {}).get("content", {})
            for media, spec in body.items():
                ref = spec["schema"].get("$ref", "")
                parts.append(f"<br>Body ({html.escape(media)}): <code>{html.escape(ref.rsplit('/', 1)[-1] or 'file')}</code>")
            codes = ", ".join(sorted(op["responses"]))
            parts.append(f"<br><span class=scope>Answers: {codes}</span></div>")
    parts.append("</body></html>")
    return Response(content="".join(parts), media_type="text/html")
