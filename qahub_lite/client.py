"""The HTTP client shared by the CLI (upload, wait, gate), the agent and the pytest plugin.

Retries what is worth retrying: connection errors, 429 and 5xx, with exponential backoff
that honours `Retry-After` (and a body's `retry_after`). Never retries a 4xx other than 429:
those are the caller's mistake and say so in their `message`.
"""

from __future__ import annotations

import contextlib
import email.utils
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from . import __version__

RETRY_STATUSES = {429, 500, 502, 503, 504, 507}


class ApiError(Exception):
    """A non-2xx answer (after retries), with the server's `message`."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        # Status 0: no answer at all (connection refused, timeout); the message says which.
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.message = message
        self.body = body


class QahubClient:
    def __init__(
        self, url: str, token: str, *, timeout: float = 60.0, retries: int = 5, backoff_s: float = 0.5,
        max_backoff_s: float = 30.0, transport: httpx.BaseTransport | None = None,
        on_retry: Callable[[str, float], None] | None = None,
    ) -> None:
        if not url:
            raise ValueError("no server URL: pass --url or set QAHUB_URL")
        self.base_url = url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        # Told (reason, seconds) before each wait, so a CLI can say why it is pausing.
        self.on_retry = on_retry
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": f"qahub-lite/{__version__}"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "QahubClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                files: dict | Callable[[], dict] | None = None, content: bytes | None = None,
                headers: dict | None = None, ok: tuple[int, ...] = ()) -> httpx.Response:
        """Send with retries; returns the response for 2xx (and for statuses in `ok`),
        raises ApiError otherwise.

        `files` may be a function returning the files mapping: it is called for every attempt,
        so that a retry re-reads a file from its start instead of sending an exhausted stream.
        """
        attempt = 0
        while True:
            parts = None
            try:
                parts = files() if callable(files) else files
                response = self._http.request(
                    method, path, json=json, params=params, files=parts, content=content, headers=headers
                )
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise ApiError(0, f"cannot reach {self.base_url}: {exc}") from None
                self._sleep(attempt, None, f"cannot reach the server ({type(exc).__name__})")
                attempt += 1
                continue
            finally:
                if callable(files):
                    _close_files(parts)
            if response.is_success or response.status_code in ok:
                return response
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                self._sleep(attempt, _retry_after(response), f"HTTP {response.status_code}")
                attempt += 1
                continue
            raise ApiError(response.status_code, _message(response), _json_or_none(response))

    @contextlib.contextmanager
    def stream(self, path: str, *, params: dict | None = None) -> Iterator[httpx.Response]:
        """GET a large body as it arrives (exports). A refusal before the body (429: the key's
        exports are all streaming; 503) is retried as `request` does; a body cut half-way is not,
        a retry could not resume it. A non-2xx raises ApiError with the server's message."""
        attempt = 0
        try:
            while True:
                with self._http.stream("GET", path, params=params) as response:
                    if response.is_success:
                        yield response
                        return
                    response.read()
                    if response.status_code not in RETRY_STATUSES or attempt >= self.retries:
                        raise ApiError(response.status_code, _message(response), _json_or_none(response))
                self._sleep(attempt, _retry_after(response), f"HTTP {response.status_code}")
                attempt += 1
        except httpx.TransportError as exc:
            raise ApiError(0, f"cannot reach {self.base_url}: {exc}") from None

    def get(self, path: str, **kw) -> Any:
        return self.request("GET", path, **kw).json()

    def post(self, path: str, json: Any = None, **kw) -> Any:
        return self.request("POST", path, json=json, **kw).json()

    def _sleep(self, attempt: int, retry_after: float | None, reason: str) -> None:
        if retry_after is not None:
            # The server knows when it will have room; still capped, so that a bogus
            # Retry-After cannot park a CI job for hours.
            delay = min(retry_after, self.max_backoff_s * 4)
        else:
            # Full jitter on the upper half: parallel CI jobs that failed together do not
            # come back together.
            delay = min(self.backoff_s * (2**attempt), self.max_backoff_s) * (0.5 + random.random() / 2)
        if self.on_retry is not None:
            self.on_retry(reason, delay)
        time.sleep(delay)


def _close_files(parts: dict | None) -> None:
    for value in (parts or {}).values():
        handle = value[1] if isinstance(value, tuple) and len(value) > 1 else value
        if hasattr(handle, "close"):
            handle.close()


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _message(response: httpx.Response) -> str:
    body = _json_or_none(response)
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return response.reason_phrase or "request failed"


def _retry_after(response: httpx.Response) -> float | None:
    header = response.headers.get("retry-after")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
        # RFC 9110 also allows an HTTP date.
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            when = None
        if when is not None and when.tzinfo is not None:
            return max(0.0, when.timestamp() - time.time())
    body = _json_or_none(response)
    if isinstance(body, dict) and isinstance(body.get("retry_after"), (int, float)):
        return float(body["retry_after"])
    return None
