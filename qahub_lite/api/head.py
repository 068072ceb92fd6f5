"""HEAD on every GET route (RFC 9110 9.3.2): monitoring tools and link checkers send `HEAD /`,
and Litestar answers 405 to HEAD on a route declared with GET only.

The request is handled as the GET it stands for, so its status, headers and Content-Length
are the GET's own (authentication, rate limits and errors included); only the body is held
back. A route that answers GET with 405 answers HEAD with 405 too.
"""

from __future__ import annotations


def head_as_get(app):
    async def middleware(scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await app(scope, receive, send)
            return

        async def without_body(message):
            if message["type"] == "http.response.body":
                message = {"type": "http.response.body", "body": b"", "more_body": message.get("more_body", False)}
            await send(message)

        await app({**scope, "method": "GET"}, receive, without_body)

    return middleware
