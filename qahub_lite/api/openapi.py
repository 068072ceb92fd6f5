"""The OpenAPI 3.1 document at /api/v1/openapi.json, built from the endpoints declared with
`routing.endpoint` and their msgspec Structs, and the interactive reference page at /api/docs
(Swagger UI, vendored: it needs no internet).

Built here rather than by Litestar because handlers read raw bodies (see routing.py), which
Litestar's generator cannot see; this way every request and answer Struct is described, each
operation lists only the error statuses it can answer (`_error_statuses`), every error answer
points at the one error schema, and the bodies a new team sends first carry an example
(openapi_examples.py).
"""

from __future__ import annotations

import html
import re
import types
import typing
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.response import Response as LitestarResponse

from .. import __version__
from .errors import ErrorBody
from .openapi_examples import ERROR_EXAMPLES, REQUEST_EXAMPLES, RESPONSE_EXAMPLES
from .routing import RAW_ITEMS, Endpoint, app_endpoints

_PATH_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
_ERROR_TEXT = {
    400: "The request is malformed; `message` names the field",
    401: "Missing or invalid API key",
    403: "Suspended tenant, or the key lacks the scope (or is limited to another project)",
    404: "Not found (or belongs to another tenant)",
    408: "The request body paused or dragged past server.body_idle_timeout_s / body_timeout_s",
    409: "Conflicts with the resource's current state (a finished run, a taken code)",
    413: "Body larger than the limit",
    429: "Rate limit exceeded; wait `retry_after` seconds",
    503: "Shutting down, or storage could not be written; nothing was stored (see Retry-After)",
    507: "The server's disk is full; nothing was stored (see Retry-After)",
}
# The operations that can answer 409, and why: the storage layer raises Conflict only here
# (core/errors.Conflict is mapped to 409 in api/errors.py). A route added later that can
# conflict must be named here; the fuzz test (tests/test_proof_fuzz.py) fails on a 409 a
# route does not document.
_CONFLICTS = {
    ("POST", "/api/v1/projects"): "A project with this slug or repo exists already",
    ("PATCH", "/api/v1/projects/{project_id}"): "Another project has this repo already",
    ("POST", "/api/v1/projects/{project_id}/test-cases"): "The test case code is taken in this project",
    ("PATCH", "/api/v1/test-cases/{case_id}"): "The test case code is taken in this project",
    ("POST", "/api/v1/runs/{run_id}/finish"): "The run has finished already with another status",
    ("POST", "/api/v1/runs/{run_id}/cancel"): "The run has finished already",
    ("GET", "/api/v1/projects/{project_id}/gate"): "The run has not finished: the gate judges finished runs",
    ("POST", "/api/v1/agent/jobs/{job_id}/heartbeat"): "The job is not leased to the caller",
    ("POST", "/api/v1/agent/jobs/{job_id}/results"): "The job is not leased to the caller, or has ended",
    ("POST", "/api/v1/agent/jobs/{job_id}/complete"): "The job is not leased to the caller, or has ended",
    ("POST", "/api/v1/deliveries/{delivery_id}/redeliver"): "The delivery is still being retried",
    ("POST", "/api/v1/webhooks/{webhook_id}/test"): "The webhook is paused (inactive)",
}
_SUCCESS_TEXT = {
    202: "Accepted: queued, the work happens in the background",
    207: "Stored in part: `errors` lists each rejected item with its index and reason",
}


def build_document(endpoints: list[Endpoint]) -> dict[str, Any]:
    """The document describing `endpoints` (routing.app_endpoints: what the app serves)."""
    structs: list[Any] = [ErrorBody]
    raw_items = RAW_ITEMS
    for ep in endpoints:
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
    for ep in endpoints:
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
            media: dict[str, Any] = {"schema": schema_of(ep.body)}
            if (ep.method, path) in REQUEST_EXAMPLES:
                media["example"] = REQUEST_EXAMPLES[(ep.method, path)]
            op["requestBody"] = {"required": True, "content": {ep.body_media: media}}
        for status, kind in ep.responses.items():
            if kind == "binary":
                # A file is served with its own type (image/png, application/pdf, ...).
                content = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
            elif kind == "text":
                content = {"text/plain": {"schema": {"type": "string"}}}
            elif isinstance(kind, dict):  # media type -> schema: an answer whose type depends on the query
                content = {media_type: {"schema": schema} for media_type, schema in kind.items()}
            else:
                content = {"application/json": {"schema": schema_of(kind)}}
                if (ep.method, path, status) in RESPONSE_EXAMPLES:
                    content["application/json"]["example"] = RESPONSE_EXAMPLES[(ep.method, path, status)]
            op["responses"][str(status)] = {"description": _SUCCESS_TEXT.get(status, HTTPStatus(status).phrase),
                                            "content": content}
        for status in _error_statuses(ep, path):
            text = _CONFLICTS.get((ep.method, path), _ERROR_TEXT[409]) if status == 409 else _ERROR_TEXT[status]
            op["responses"].setdefault(str(status), {
                "description": text,
                "content": {"application/json": {"schema": ref_of[ErrorBody], "example": ERROR_EXAMPLES[status]}},
            })
        # A 500 is a bug, never a contract: described once, as what any operation might answer.
        op["responses"]["default"] = {
            "description": "Unexpected error (500); the body never carries a traceback",
            "content": {"application/json": {"schema": ref_of[ErrorBody]}},
        }
        paths.setdefault(path, {})[ep.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "qahub-lite",
            "version": __version__,
            "description": "Self-hosted test-results hub speaking the QA Hub, QualityPilot, QA.tech and Qualigate "
            "APIs.",
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


def _error_statuses(ep: Endpoint, path: str) -> list[int]:
    """The error answers this operation can give, from what it declares: a body, a query or a
    typed path parameter can be malformed (400), a body too large (413) or too slow (408); a
    key is checked (401/403); any client is counted (429); an id in the path, body or query can
    name nothing (404); a write can meet a full or failing disk (507/503); any request can meet
    a shutdown (503)."""
    has_ids = bool(_PATH_PARAM.search(ep.path))
    statuses = []
    if ep.body is not None or ep.query is not None or ":int}" in ep.path:
        statuses.append(400)
    if ep.scope:
        statuses += [401, 403]
    if has_ids or _names_a_resource(ep.body) or _names_a_resource(ep.query):
        statuses.append(404)
    if (ep.method, path) in _CONFLICTS:
        statuses.append(409)
    if ep.body is not None:
        statuses += [408, 413]  # a body that pauses or drags (api/admission.py), or too large
    # Keys are rate limited, and every client address has a cap on requests in progress
    # (api/admission.py), so any operation can answer 429; the probes alone are exempt.
    if ep.path not in ("/healthz", "/readyz"):
        statuses.append(429)
    statuses.append(503)
    if ep.method != "GET":
        statuses.append(507)
    return statuses


_REFERENCE_FIELD = re.compile(r"(^project$|^run$|_ids?$|[a-z]Ids?$)")


def _names_a_resource(kind: Any) -> bool:
    """Whether a body or query Struct has a field that names another resource (`project_id`,
    `test_run_ids`, `testCaseIds`), which can name one that does not exist."""
    if kind == "multipart":
        return False
    return any(
        _REFERENCE_FIELD.search(f.encode_name)
        for member in _members(kind) if isinstance(member, type) and issubclass(member, msgspec.Struct)
        for f in msgspec.structs.fields(member)
    )


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


def document_bytes(app: Any) -> bytes:
    """The encoded document of `app`, built on the first request and kept on the app (its routes
    do not change once it is built)."""
    doc = getattr(app.state, "openapi_document", None)
    if doc is None:
        doc = app.state.openapi_document = msgspec.json.encode(build_document(app_endpoints(app)))
    return doc


@get("/api/v1/openapi.json", include_in_schema=False)
async def openapi_json(request: Request) -> LitestarResponse:
    # CORS allowed (seed 002): tools in a browser may read the schema from anywhere.
    return Response(
        content=document_bytes(request.app), media_type="application/json",
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"},
    )


# The reference page is Swagger UI (docs/api-reference.md says why), its files vendored in
# web/static/swagger-ui/ with their licence and version, so it works air-gapped. The page is a
# shell: no inline script (the initializer is a static file too), and a policy that lets it
# reach nothing but this server.
_REFERENCE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@get("/api/docs", include_in_schema=False)
async def api_docs() -> LitestarResponse:
    v = html.escape(__version__)
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>qahub-lite API {v}</title>"
        f"<link rel=icon href='/static/favicon.svg?v={v}'>"
        f"<link rel=stylesheet href='/static/swagger-ui/swagger-ui.css?v={v}'>"
        f"<link rel=stylesheet href='/static/api-reference.css?v={v}'>"
        "</head><body>"
        "<noscript><p>This reference needs JavaScript. The document itself: "
        "<a href='/api/v1/openapi.json'>/api/v1/openapi.json</a>.</p></noscript>"
        "<div id=swagger-ui></div>"
        f"<script src='/static/swagger-ui/swagger-ui-bundle.js?v={v}'></script>"
        f"<script src='/static/api-reference.js?v={v}'></script>"
        "</body></html>"
    )
    return Response(content=page, media_type="text/html", headers={
        "Content-Security-Policy": _REFERENCE_POLICY, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache",
    })
