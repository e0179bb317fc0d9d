"""The benchmark app as a bare ASGI application (no framework), for uvicorn and granian.

    uvicorn bench.apps.asgi_app:app --loop uvloop --http httptools --no-access-log
    granian --interface asgi bench.apps.asgi_app:app --workers 1 --no-ws

Routing is by hand: a `{name}` is one non-empty path segment, as in the
frameworks' routers; anything else is a 404.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Awaitable, Callable
from typing import Any

from . import CONTENT_TYPE, SLEEP

__all__ = ["app"]

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_HTML = [(b"content-type", CONTENT_TYPE.encode("latin-1"))]
_NOT_FOUND = b"404: Not Found"


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    status, body = 404, _NOT_FOUND
    if path.startswith("/hello/"):
        name = path[7:]
        if name and "/" not in name:
            status, body = 200, f"<h1>hello, {html.escape(name)}!</h1>".encode()
    elif path.startswith("/sleep/"):
        name = path[7:]
        if name and "/" not in name:
            await asyncio.sleep(SLEEP)
            status, body = 200, f"<h1>hello, {html.escape(name)}!</h1>".encode()
    headers = _HTML if status == 200 else [(b"content-type", b"text/plain; charset=utf-8")]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
