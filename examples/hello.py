"""The default example app: `treadle run examples.hello:app`.

- `/`                 an HTML page
- `/hello/{name}`     `<h1>hello, NAME!</h1>` (the benchmark route)
- `/api/greeting`     JSON: `{"greeting": "hello", "name": ...}` (`?name=` optional)
- `/static/...`       files from examples/static
"""

from __future__ import annotations

import html
from pathlib import Path

from treadle import web

routes = web.RouteTableDef()


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    return web.Response(
        text=(
            "<!doctype html><title>Treadle</title>"
            '<link rel="stylesheet" href="/static/style.css">'
            "<h1>Treadle</h1><p>Try <a href='/hello/world'>/hello/world</a> or "
            "<a href='/api/greeting?name=you'>/api/greeting</a>.</p>"
        ),
        content_type="text/html",
    )


@routes.get("/hello/{name}")
async def hello(request: web.Request) -> web.Response:
    name = html.escape(request.match_info["name"])
    return web.Response(text=f"<h1>hello, {name}!</h1>", content_type="text/html")


@routes.get("/api/greeting")
async def greeting(request: web.Request) -> web.Response:
    return web.json_response({"greeting": "hello", "name": request.query.get("name", "world")})


def make_app() -> web.Application:
    """A fresh application (for `treadle run --factory examples.hello:make_app`)."""
    application = web.Application()
    application.add_routes(routes)
    application.router.add_static("/static", Path(__file__).parent / "static")
    return application


app = make_app()
