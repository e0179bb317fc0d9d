"""The small apps `bench/http.py` serves, one module per server, all answering the same bytes.

- `GET /hello/{name}` -> 200, `Content-Type: text/html; charset=utf-8`,
  body `<h1>hello, NAME!</h1>` (NAME HTML-escaped), as in examples/hello.py.
- `GET /sleep/{name}` -> the same answer after `await asyncio.sleep(0.5)`: the
  seed's scenario (examples/seed_5_web.py), where what counts is how many
  sleeping requests one process keeps in flight.

Modules: `treadle_app` (Treadle's web framework), `aiohttp_app` (aiohttp, on the
stdlib loop or uvloop), `asgi_app` (a bare ASGI app for uvicorn and granian) and
`protocol_app` (a bare `asyncio.Protocol`, no framework: the reference ceiling).
The ones without a server command of their own run as
`python -m bench.apps.NAME --port PORT [--backlog N]` from the repository root.

The WebSocket echo apps of `bench/ws.py` (`ws_treadle_app`, `ws_aiohttp_app`,
`ws_websockets_app`, `ws_picows_app`) echo every text and binary message at
`GET /ws` (the websockets and picows ones at any path), compression off.
"""

from __future__ import annotations

import argparse
import asyncio
import html
from typing import Any

__all__ = ["CONTENT_TYPE", "SLEEP", "WS_PATH", "launcher_args", "routes_for", "ws_routes_for"]

SLEEP = 0.5
WS_PATH = "/ws"
CONTENT_TYPE = "text/html; charset=utf-8"


def routes_for(web: Any) -> Any:
    """The two routes, written once against the API `treadle.web` and `aiohttp.web`
    share: pass either module and get its `RouteTableDef`. The hello handler is
    examples/hello.py's."""
    routes = web.RouteTableDef()

    @routes.get("/hello/{name}")
    async def hello(request: Any) -> Any:
        name = html.escape(request.match_info["name"])
        return web.Response(text=f"<h1>hello, {name}!</h1>", content_type="text/html")

    @routes.get("/sleep/{name}")
    async def sleep(request: Any) -> Any:
        await asyncio.sleep(SLEEP)
        return await hello(request)

    return routes


def ws_routes_for(web: Any) -> Any:
    """The WebSocket echo route, written once against the API `treadle.web`
    and `aiohttp.web` share: `GET /ws` echoes each text and binary message,
    permessage-deflate declined (`compress=False`), no heartbeat."""
    routes = web.RouteTableDef()
    text, binary = web.WSMsgType.TEXT, web.WSMsgType.BINARY

    @routes.get(WS_PATH)
    async def echo(request: Any) -> Any:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == text:
                await ws.send_str(msg.data)
            elif msg.type == binary:
                await ws.send_bytes(msg.data)
        return ws

    return routes


def launcher_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    """The command line every launcher here takes: where to listen, and the backlog."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--backlog", type=int, default=128, help="listen backlog")
    parser.add_argument(
        "--uvloop", action="store_true", help="run on uvloop (aiohttp and picows only)"
    )
    return parser.parse_args(argv)
