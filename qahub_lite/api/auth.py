"""API keys on the wire: `Authorization: Bearer <key>` or `X-API-Key: <key>`.

401 for a missing, malformed, unknown or revoked key; 403 for a suspended tenant or a key
whose scope is too small. A key limited to one project sees nothing of other projects (404).
429 once a verified key is over its rate limit for the route's group (api/ratelimit.py).
`last_used_at` is recorded in batches by a background job, not written on every request.
A successful key check is remembered for a few seconds (core/key_checks.py), so that a poll
costs the read of what it asks for and nothing more.
"""

from __future__ import annotations

import time

from litestar import Request

from ..core.errors import NotFound
from ..core.tenancy import Principal, verify_key
from . import ratelimit
from .context import services
from .errors import ApiError

_PRINCIPAL = "qahub_principal"  # request.scope key of the verified caller


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    value = request.headers.get("x-api-key")
    return value.strip() if value else None


async def authenticate(request: Request, scope: str) -> Principal:
    """The caller's principal, or a 401/403/429 ApiError. Verified once per request: a handler
    that authenticates again (through visible_project, visible_run) reuses the first answer
    and only has its scope checked, so the key costs one read and counts once for the limiter."""
    known: Principal | None = request.scope.get(_PRINCIPAL)
    if known is not None:
        if not known.allows(scope):
            raise ApiError(403, f"This API key lacks the {scope} scope")
        return known
    svc = services(request)
    key = presented_key(request)
    if not key:
        raise ApiError(401, "Missing or invalid API key")
    digest = svc.key_checks.digest(key)
    principal = svc.key_checks.get(digest)
    if principal is None:
        read_at = time.monotonic()
        principal = await svc.db.read(verify_key, key)
        if principal is not None:
            svc.key_checks.put(digest, principal, read_at)
    if principal is None:
        raise ApiError(401, "Missing or invalid API key")
    if principal.tenant_suspended:
        raise ApiError(403, "Organization suspended: this tenant's keys are disabled")
    svc.key_usage.seen(principal.key_id)
    request.scope["qahub_key_id"] = principal.key_id  # for the rate limiter and logs (never the secret)
    await ratelimit.enforce(request, svc, principal.key_id)  # 429 once this key is over its window
    request.scope[_PRINCIPAL] = principal
    if not principal.allows(scope):
        raise ApiError(403, f"This API key lacks the {scope} scope")
    return principal


def check_project(principal: Principal, project_id: str) -> None:
    """A key limited to one project may not see others: answer as if they did not exist."""
    if principal.project_id is not None and principal.project_id != project_id:
        raise NotFound("Project not found")
