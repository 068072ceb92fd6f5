"""The OpenAPI document and the reference page (issue: week one, items 1 and 7): each operation
lists only the statuses it can answer, each with a schema; request examples are bodies the
server accepts; the reference's assets are in the package and served; HEAD answers like GET;
a webhook's test delivery is documented and works."""

from __future__ import annotations

import types
import typing
from http import HTTPStatus
from pathlib import Path

import msgspec
import pytest

import qahub_lite.app
from qahub_lite.api.openapi import build_document
from qahub_lite.api.errors import ErrorBody
from qahub_lite.api.openapi_examples import ERROR_EXAMPLES, REQUEST_EXAMPLES, RESPONSE_EXAMPLES
from qahub_lite.api.routing import endpoints
from qahub_lite.app import route_handlers

ENDPOINTS = endpoints(route_handlers())  # what the app serves

STATIC = Path(qahub_lite.app.__file__).parent / "web" / "static"


def _endpoint(method: str, path: str):
    for ep in ENDPOINTS:
        if ep.method == method and ep.path.replace(":str", "").replace(":int", "") == path:
            return ep
    raise AssertionError(f"no endpoint {method} {path}")


@pytest.mark.parametrize("key", sorted(REQUEST_EXAMPLES), ids=lambda k: f"{k[0]} {k[1]}")
def test_every_example_is_a_body_the_operation_accepts(key):
    ep = _endpoint(*key)
    msgspec.json.decode(msgspec.json.encode(REQUEST_EXAMPLES[key]), type=ep.body)
    doc = build_document(ENDPOINTS)
    media = doc["paths"][key[1]][key[0].lower()]["requestBody"]["content"]["application/json"]
    assert media["example"] == REQUEST_EXAMPLES[key]


@pytest.mark.parametrize("key", sorted(RESPONSE_EXAMPLES), ids=lambda k: f"{k[0]} {k[1]} {k[2]}")
def test_every_answer_example_fits_the_operation_s_answer(key):
    method, path, status = key
    kind = _endpoint(method, path).responses[status]
    members = typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
    example = RESPONSE_EXAMPLES[key]
    fits = []
    for member in members:  # a union answers in one of its shapes
        try:
            msgspec.convert(example, member, strict=True)
            fits.append(member)
        except msgspec.ValidationError:
            pass
    assert fits, f"{method} {path} {status}: the example fits none of {members}"
    doc = build_document(ENDPOINTS)
    answer = doc["paths"][path][method.lower()]["responses"][str(status)]
    assert answer["content"]["application/json"]["example"] == example


def test_error_examples_are_error_bodies():
    for status, example in ERROR_EXAMPLES.items():
        body = msgspec.convert(example, ErrorBody, strict=True)
        assert body.error == HTTPStatus(status).phrase


def test_each_operation_lists_only_what_it_can_answer():
    doc = build_document(ENDPOINTS)
    paths = doc["paths"]
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for path, methods in paths.items():
        for method, op in methods.items():
            for code, answer in op["responses"].items():
                assert answer["content"], (method, path, code)  # every status has its schema
                if code == "default" or int(code) >= 400:
                    assert answer["content"]["application/json"]["schema"] == error
    # A listing without ids cannot be 404 or 409, and a read never meets a full disk.
    assert set(paths["/api/v1/projects"]["get"]["responses"]) == {"200", "400", "401", "403", "429", "503", "default"}
    assert set(paths["/api/v1/agents"]["get"]["responses"]) == {"200", "401", "403", "429", "503", "default"}
    # 409 where a conflict exists, and nowhere else.
    assert "409" in paths["/api/v1/runs/{run_id}/finish"]["post"]["responses"]
    assert "409" in paths["/api/v1/projects/{project_id}/test-cases"]["post"]["responses"]
    assert "409" not in paths["/api/v1/ingest"]["post"]["responses"]
    assert "409" not in paths["/api/v1/runs/{run_id}"]["get"]["responses"]
    # Writes can meet a full disk; the upload of a file is the one multipart body.
    assert "507" in paths["/api/v1/ingest"]["post"]["responses"]
    assert "multipart/form-data" in paths["/api/v1/results/{result_id}/attachments"]["post"]["requestBody"]["content"]
    test_delivery = paths["/api/v1/webhooks/{webhook_id}/test"]["post"]
    assert set(test_delivery["responses"]) >= {"202", "404", "409"} and test_delivery["x-scope"] == "admin"


def test_the_reference_page_is_swagger_ui_from_the_package(api):
    page = api.client.get("/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "unsafe-eval" not in policy
    assert "<script>" not in page.text  # no inline script: the initializer is a static file
    for asset in ("swagger-ui/swagger-ui-bundle.js", "swagger-ui/swagger-ui.css", "api-reference.js"):
        assert f"/static/{asset}?v=" in page.text
        served = api.client.get(f"/static/{asset}")
        assert served.status_code == 200 and len(served.content) == (STATIC / asset).stat().st_size
    # The vendored files carry their licence and version.
    assert "Apache License" in (STATIC / "swagger-ui" / "LICENSE").read_text()
    assert "swagger-ui-dist 5.35.0" in (STATIC / "swagger-ui" / "VERSION").read_text()


def test_head_answers_as_get_does_without_a_body(api):
    for path in ("/", "/healthz", "/api/docs", "/api/v1/openapi.json", "/login", "/static/dashboard.css"):
        get, head = api.client.get(path, follow_redirects=False), api.client.head(path, follow_redirects=False)
        assert head.status_code == get.status_code != 405, path
        assert head.content == b"", path
        assert head.headers.get("content-type") == get.headers.get("content-type"), path
    # With a key, as the GET; without one, the GET's 401.
    assert api.client.head("/api/v1/projects", headers=api.h()).status_code == 200
    assert api.client.head("/api/v1/projects").status_code == 401
    # A route with no GET still refuses HEAD.
    assert api.client.head("/api/v1/ingest", headers=api.h()).status_code == 405
