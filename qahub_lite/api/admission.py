"""Admission: what one client may hold of the server at once (issue 12, item 1).

granian serves a bounded number of connections (`server.max_connections`, its backpressure);
past that, new ones wait in the listen backlog, health probes included. Before this module,
about 1,024 open requests from one client filled it: request bodies trickled one byte every
few seconds stayed open for ever, and a thousand agent long-polls with one key did the same.
Three rules, applied around the whole app (outside Litestar's routing, so unknown paths and
the dashboard are covered too):

- A request body must keep coming: a pause longer than `server.body_idle_timeout_s` between
  two chunks, or a body not complete `server.body_timeout_s` after it was first read, is
  answered 408 and its connection closed.
- One client address holds at most `server.max_requests_per_client` requests in progress;
  the next is answered 429 at once (with `retry_after`) and its connection closed, so it gives
  its slot back instead of waiting for one. 0 turns the cap off (behind a reverse proxy every
  client has the proxy's address: let the proxy do it).
- `/healthz` and `/readyz` are never capped: they cost nothing, and the probes that restart
  or route around a server must see the truth while it is attacked.

Connections that never finish their headers do not reach the app: granian drops them after
`server.header_timeout_s`, and `max_connections` is far above what one client may hold here.
Agent long-polls have their own budget per key (api/agent_api.py).
"""

from __future__ import annotations

import asyncio

import msgspec

from ..config import ServerConfig
from .errors import ApiError, ErrorBody

PROBES = frozenset({"/healthz", "/readyz"})
_encode = msgspec.json.Encoder().encode


class BodyTimeout(ApiError):
    """Raised from `receive` inside a handler; the one error handler answers it (408)."""

    def __init__(self, message: str) -> None:
        super().__init__(408, message)


class Admission:
    def __init__(self, app, cfg: ServerConfig) -> None:
        self.app = app
        self.idle_s = float(cfg.body_idle_timeout_s)
        self.total_s = float(cfg.body_timeout_s)
        self.per_client = cfg.max_requests_per_client
        self.active: dict[str, int] = {}  # client address -> requests in progress

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path") in PROBES:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else ""
        held = self.active.get(address, 0)
        if self.per_client and held >= self.per_client:
            await _refuse(send, self.per_client)
            return
        self.active[address] = held + 1
        if scope.get("http_version") in ("1.0", "1.1") and not _has_body(scope):
            # HTTP/1.x: no Content-Length and no Transfer-Encoding means no body (RFC 9112 6.3),
            # so there is nothing to time; a poll skips the two wrappers below. HTTP/2 may send a
            # body without either header: its requests are always timed.
            try:
                await self.app(scope, receive, send)
            finally:
                self._leave(address)
            return
        timed_out: list[bool] = []

        async def closing_send(message):
            # The rest of a body that timed out will not be read: the connection cannot carry
            # another request, whichever handler (API or dashboard) wrote the 408.
            if timed_out and message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, self._timed(receive, timed_out), closing_send)
        finally:
            self._leave(address)

    def _leave(self, address: str) -> None:
        left = self.active[address] - 1
        if left:
            self.active[address] = left
        else:
            del self.active[address]

    def _timed(self, receive, timed_out: list[bool]):
        """`receive` that gives up on a body that pauses or drags. Once the body is complete it
        passes through untimed: a handler may wait on it for a disconnect."""
        loop = asyncio.get_running_loop()
        state = {"deadline": None, "done": False}

        async def timed():
            if state["done"]:
                return await receive()
            now = loop.time()
            if state["deadline"] is None:
                state["deadline"] = now + self.total_s
            wait = min(self.idle_s, state["deadline"] - now)
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait, 0.001))
            except TimeoutError:
                timed_out.append(True)
                if wait < self.idle_s:
                    raise BodyTimeout(f"The request body did not arrive within {self.total_s:g} s "
                                      "(server.body_timeout_s)") from None
                raise BodyTimeout(f"The request body paused for more than {self.idle_s:g} s "
                                  "(server.body_idle_timeout_s)") from None
            if message.get("type") != "http.request" or not message.get("more_body", False):
                state["done"] = True
            return message

        return timed


def _has_body(scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False


async def _refuse(send, cap: int) -> None:
    body = _encode(ErrorBody(
        error="Too Many Requests",
        message=f"This address already has {cap} requests in progress (server.max_requests_per_client): "
        "wait for some to finish",
        retry_after=1,
    ))
    await send({"type": "http.response.start", "status": 429, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"), (b"connection", b"close"),
    ]})
    await send({"type": "http.response.body", "body": body})
