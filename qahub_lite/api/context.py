"""The API's name for the services every handler needs (they live in http/services.py, shared
with the dashboard)."""

from __future__ import annotations

from ..http.services import KeyUsage, Services, services  # noqa: F401 - re-exported for api/
