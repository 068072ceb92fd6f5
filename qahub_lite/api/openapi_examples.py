"""Request-body examples for the API reference (api/openapi.py), one per operation a new team
calls first. Each is a body the server accepts: tests/test_api_reference.py decodes every one
with the operation's own Struct, so an example cannot drift from the schema it illustrates.

Keys are (method, path) as the OpenAPI document spells the path (`{run_id}`, no converter).
"""

from __future__ import annotations

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
