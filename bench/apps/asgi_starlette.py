"""The benchmark app on Starlette, for bench/asgi.py: `GET /hello/{name}`, HTML.

    treadle run bench.apps.asgi_starlette:app --interface asgi
    uvicorn bench.apps.asgi_starlette:app --loop uvloop --http httptools --no-access-log

The same bytes as the bare ASGI app (`asgi_app`), so the two rows differ only
by what Starlette's routing, Request and Response cost on each server.
"""

from __future__ import annotations

import html

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

__all__ = ["app"]


async def hello(request: Request) -> HTMLResponse:
    name = html.escape(request.path_params["name"])
    return HTMLResponse(f"<h1>hello, {name}!</h1>")


app = Starlette(routes=[Route("/hello/{name}", hello)])
