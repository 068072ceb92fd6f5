"""Examples for the API reference (api/openapi.py): request bodies of the operations a new team
calls first, some of their answers, and one answer per error status. Each request is a body the
server accepts and each answer fits its schema: tests/test_api_reference.py decodes every one
with the operation's own Structs, so an example cannot drift from the schema it illustrates.

Keys are (method, path) as the OpenAPI document spells the path (`{run_id}`, no converter).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

_CI = {"branch": "main", "commit": "9fceb02", "repository": "acme/shop", "provider": "github-actions",
       "build_url": "https://ci.example.com/acme/shop/runs/812"}

REQUEST_EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/ingest"): {
        "project_id": "shop", "run_name": "nightly", "environment": "staging", "framework": "pytest", "ci": _CI,
        "results": [
            {"test_case_code": "TC-001", "status": "PASSED", "duration_ms": 412},
            {"title": "test_checkout_total", "suite": "tests/test_cart.py › Cart", "status": "FAILED",
             "duration_ms": 88, "error_message": "AssertionError: 41 != 42",
             "error_stack": "tests/test_cart.py:17: in test_checkout_total\n    assert total == 42",
             "attempts": 2, "previous_attempts": [{"status": "FAILED", "duration_ms": 90}]},
        ],
    },
    ("POST", "/api/v1/runs/{run_id}/results"): {
        "results": [{"test_case_code": "TC-002", "status": "SKIPPED", "comment": "needs a payment sandbox"}],
    },
    ("POST", "/api/v1/runs"): {"project_id": "shop", "name": "smoke", "environment": "staging", "ci": _CI},
    ("POST", "/api/v1/runs/{run_id}/finish"): {"status": "COMPLETED"},
    ("POST", "/api/v1/projects"): {"name": "Shop", "repo": "acme/shop", "default_branch": "main"},
    ("POST", "/api/v1/projects/{project_id}/suites"): {"name": "Checkout", "description": "Cart and payment"},
    ("POST", "/api/v1/projects/{project_id}/test-cases"): {
        "title": "A guest can pay by card", "code": "TC-042",
        "automation": {"framework": "pytest", "grep": "test_guest_pays_by_card"},
    },
    ("POST", "/api/v1/test-runs"): {
        "repo": "acme/shop", "commit": "9fceb02", "branch": "main", "framework": "jest", "ciProvider": "github",
        "summary": {"total": 3, "passed": 1, "failed": 1, "skipped": 0, "flaky": 1, "durationMs": 5120},
        "cases": [
            {"name": "adds to cart", "suite": "cart", "status": "passed", "durationMs": 120},
            {"name": "applies coupon", "suite": "cart", "status": "flaky", "durationMs": 340, "attempts": 2},
            {"name": "pays", "suite": "checkout", "status": "failed", "durationMs": 4660,
             "errorMessage": "Timeout 4000ms exceeded"},
        ],
    },
    ("POST", "/api/v1/trigger"): {"test_suite_id": "S-1", "browserType": "chromium", "viewportPreset": "desktop"},
    ("POST", "/v1/run"): {"testCaseIds": ["TC-042"]},
    ("POST", "/v1/run/{short_id}"): {"failedOnly": True},
    ("POST", "/api/v1/projects/{project_id}/webhooks"): {
        "url": "https://hooks.example.com/qahub", "events": ["run.completed", "run.regressed"], "format": "json",
        "description": "release channel",
    },
    ("PUT", "/api/v1/projects/{project_id}/tests/{test_id}/quarantine"): {"reason": "flaky on CI, see SHOP-311"},
}

_RUN = "3f6c1e2a-8d7b-4c59-9a0e-5b1d2c3e4f60"
_URL = f"http://127.0.0.1:8080/runs/{_RUN}"

# Answers, keyed like the requests plus the status; tests/test_api_reference.py converts each
# into the operation's declared answer type for that status.
RESPONSE_EXAMPLES: dict[tuple[str, str, int], dict[str, Any]] = {
    ("POST", "/api/v1/ingest", 201): {
        "run_id": _RUN, "short_id": "k3v9q2xa", "accepted": 2, "rejected": 0, "errors": [], "url": _URL,
    },
    ("POST", "/api/v1/ingest", 207): {
        "run_id": _RUN, "short_id": "k3v9q2xa", "accepted": 1, "rejected": 1, "url": _URL,
        "errors": [{"index": 0, "error": "test case TC-001 does not exist in this project"}],
    },
    ("POST", "/api/v1/test-runs", 202): {"id": _RUN, "accepted": True, "casesStored": 3, "casesDropped": 0},
    ("POST", "/api/v1/trigger", 201): {
        "success": True, "test_run_ids": ["0b7e4f0e-1f7c-4c1e-9a57-2d8f5b6c7a10"], "test_count": 1,
        "status": "pending", "message": "1 test queued successfully",
    },
    ("POST", "/api/v1/webhooks/{webhook_id}/test", 202): {
        "id": "6d0f9a4e-2b1c-4e7a-8f3d-1c2b3a4d5e6f", "webhook_id": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "event": "webhook.test", "state": "pending",
    },
}

# One example per error status: what a client sees most often with it. `error` is the reason
# phrase of the running Python, as api/errors.py answers it (413's changed name in 3.13).
_ERROR_MESSAGES: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("Object missing required field `results`", {}),
    401: ("Missing or invalid API key", {}),
    403: ("This API key lacks the write scope", {}),
    404: ("Run not found", {}),
    408: ("The request body paused for more than 10 s (server.body_idle_timeout_s)", {}),
    409: ("run is COMPLETED already", {}),
    413: ("Request body is too large", {}),
    429: ("Rate limit exceeded. Please try again later.", {"retry_after": 42}),
    503: ("The server is shutting down; try again shortly.", {}),
    507: ("The server's disk is full; nothing was stored. Try again later.", {}),
}
ERROR_EXAMPLES: dict[int, dict[str, Any]] = {
    status: {"error": HTTPStatus(status).phrase, "message": message, **extra}
    for status, (message, extra) in _ERROR_MESSAGES.items()
}
