"""The web framework over real sockets, on Treadle's loop and the stdlib loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import run
from treadle import web
from treadle.testing import TestClient


def serve(loop: asyncio.AbstractEventLoop, app: web.Application, scenario: Any) -> Any:
    """Run `scenario(client)` against `app` served on a free port."""

    async def main() -> Any:
        async with TestClient(app) as client:
            return await scenario(client)

    return run(loop, main())


async def hello(request: web.Request) -> web.Response:
    return web.Response(text=f"hello, {request.match_info['name']}!")


def test_routes_and_match_info(loop: asyncio.AbstractEventLoop) -> None:
    app = web.Application()
    app.router.add_get("/hello/{name}", hello)
    app.router.add_get("/num/{n:\\d+}", lambda r: web.Response(text=r.match_info["n"]))

    async def scenario(client: TestClient) -> None:
        resp = await client.get("/hello/world")
        assert (resp.status, resp.text) == (200, "hello, world!")
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        resp = await client.get("/hello/caf%C3%A9%20au%20lait")
        assert resp.text == "hello, café au lait!"
        resp = await client.get("/hello/a%2Fb")  # an encoded slash stays in the value
        assert resp.text == "hello, a/b!"
        assert (await client.get("/hello/a/b")).status == 404
        assert (await client.get("/num/42")).text == "42"
        assert (await client.get("/num/x")).status == 404
        resp = await client.get("/hello/%zz")
        assert resp.status == 400

    serve(loop, app, scenario)


def test_404_405_and_head(loop: asyncio.AbstractEventLoop) -> None:
    app = web.Application()
    app.router.add_get("/thing", lambda r: web.Response(text="thing"))
    app.router.add_post("/thing", lambda r: web.Response(text="posted"))
    app.router.add_route("*", "/any", lambda r: web.Response(text=r.method))

    async def scenario(client: TestClient) -> None:
        resp = await client.get("/missing")
        assert (resp.status, resp.text) == (404, "404: Not Found")
        resp = await client.delete("/thing")
        assert resp.status == 405
        assert resp.headers["Allow"] == "GET, HEAD, POST"
        resp = await client.head("/thing")
        assert resp.status == 200
        assert resp.headers["Content-Length"] == "5"
        assert resp.body == b""
        assert (await client.post("/thing")).text == "posted"
        for method in ("GET", "PUT", "PATCH", "OPTIONS"):
            assert (await client.request(method, "/any")).text == method

    serve(loop, app, scenario)


def test_route_table_and_views(loop: asyncio.AbstractEventLoop) -> None:
    routes = web.RouteTableDef()

    @routes.get("/r/{x}", name="r")
    async def r(request: web.Request) -> web.Response:
        url = request.app.router["r"].url_for(x="a b")
        return web.Response(text=str(url.with_query(q="1")))

    @routes.view("/view")
    class Things(web.View):
        async def get(self) -> web.Response:
            return web.Response(text="view get")

        async def post(self) -> web.Response:
            return web.json_response({"posted": await self.request.json()})

    app = web.Application()
    app.add_routes(routes)
    app.add_routes([web.get("/fn", lambda r: web.Response(text="fn"))])

    async def scenario(client: TestClient) -> None:
        assert (await client.get("/r/1")).text == "/r/a%20b?q=1"
        assert (await client.get("/view")).text == "view get"
        resp = await client.post("/view", json_body={"a": 1})
        assert resp.json() == {"posted": {"a": 1}}
        resp = await client.delete("/view")
        assert resp.status == 405
        assert resp.headers["Allow"] == "GET, POST"
        assert (await client.get("/fn")).text == "fn"

    serve(loop, app, scenario)


def test_middlewares_see_everything_in_order(loop: asyncio.AbstractEventLoop) -> None:
    order: list[str] = []

    @web.middleware
    async def outer(request: web.Request, handler: Any) -> web.StreamResponse:
        order.append("outer in")
        try:
            resp = await handler(request)
        except web.HTTPNotFound:
            order.append("outer caught 404")
            return web.Response(status=404, text="custom not found")
        order.append("outer out")
        resp.headers["X-Outer"] = "1"
        return resp

    async def inner(request: web.Request, handler: Any) -> web.StreamResponse:
        order.append("inner in")
        request["user"] = "alice"
        return await handler(request)

    async def who(request: web.Request) -> web.Response:
        order.append("handler")
        return web.Response(text=request["user"])

    app = web.Application(middlewares=[outer, inner])
    app.router.add_get("/who", who)

    async def scenario(client: TestClient) -> None:
        resp = await client.get("/who")
        assert (resp.text, resp.headers["X-Outer"]) == ("alice", "1")
        resp = await client.get("/nowhere")
        assert (resp.status, resp.text) == (404, "custom not found")

    serve(loop, app, scenario)
    assert order == [
        "outer in",
        "inner in",
        "handler",
        "outer out",
        "outer in",
        "inner in",
        "outer caught 404",
    ]


@pytest.mark.expect_loop_errors
def test_handler_errors_become_500_and_serving_goes_on(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(request: web.Request) -> web.Response:
        raise ZeroDivisionError("secret detail")

    async def nothing(request: web.Request) -> Any:
        return None

    async def teapot(request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    app = web.Application()
    app.router.add_get("/boom", boom)
    app.router.add_get("/nothing", nothing)
    app.router.add_get("/redirect", teapot)
    app.router.add_get("/hello/{name}", hello)

    async def scenario(client: TestClient) -> None:
        resp = await client.get("/boom")
        assert resp.status == 500
        assert b"secret" not in resp.body  # the traceback goes to the log only
        assert (await client.get("/nothing")).status == 500
        resp = await client.get("/redirect")
        assert (resp.status, resp.headers["Location"]) == (302, "/elsewhere")
        assert (await client.get("/hello/again")).status == 200

    with caplog.at_level(logging.ERROR):
        serve(loop, app, scenario)
    assert "secret detail" in caplog.text


def test_request_properties(loop: asyncio.AbstractEventLoop) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "method": request.method,
                "path": request.path,
                "raw_path": request.raw_path,
                "query": request.query.getall("tag", []),
                "q1": request.query.get("q1"),
                "cookies": dict(request.cookies),
                "content_type": request.content_type,
                "charset": request.charset,
                "content_length": request.content_length,
                "host": request.host,
                "remote": request.remote,
                "scheme": request.scheme,
                "keep_alive": request.keep_alive,
                "version": list(request.version),
                "body": await request.text(),
                "range": [request.http_range.start, request.http_range.stop],
                "if_none_match": [t.value for t in request.if_none_match or ()],
            }
        )

    app = web.Application()
    app.router.add_route("*", "/echo/{rest:.*}", echo)

    async def scenario(client: TestClient) -> None:
        resp = await client.post(
            "/echo/a%20b?tag=x&tag=y&q1=",
            headers={
                "Cookie": "sid=abc; theme=dark",
                "Content-Type": "text/plain; charset=latin-1",
                "Range": "bytes=10-19",
                "If-None-Match": '"v1", W/"v2"',
            },
            body="café".encode("latin-1"),
        )
        data = resp.json()
        assert data == {
            "method": "POST",
            "path": "/echo/a b",
            "raw_path": "/echo/a%20b?tag=x&tag=y&q1=",
            "query": ["x", "y"],
            "q1": "",
            "cookies": {"sid": "abc", "theme": "dark"},
            "content_type": "text/plain",
            "charset": "latin-1",
            "content_length": 4,
            "host": f"127.0.0.1:{client.port}",
            "remote": "127.0.0.1",
            "scheme": "http",
            "keep_alive": True,
            "version": [1, 1],
            "body": "café",
            "range": [10, 20],
            "if_none_match": ["v1", "v2"],
        }

    serve(loop, app, scenario)


def test_body_limits_and_bad_json(loop: asyncio.AbstractEventLoop) -> None:
    async def size(request: web.Request) -> web.Response:
        return web.Response(text=str(len(await request.read())))

    async def parse(request: web.Request) -> web.Response:
        return web.json_response(await request.json())

    app = web.Application(client_max_size=1000)
    app.router.add_post("/size", size)
    app.router.add_post("/json", parse)

    async def scenario(client: TestClient) -> None:
        assert (await client.post("/size", body=b"x" * 1000)).text == "1000"
        resp = await client.post("/size", body=b"x" * 1001)
        assert resp.status == 413
        resp = await client.post("/json", body="{not json")
        assert resp.status == 400
        assert "invalid JSON" in resp.text
        assert (await client.post("/json", body='{"ok": true}')).json() == {"ok": True}

    serve(loop, app, scenario)


def test_forms(loop: asyncio.AbstractEventLoop) -> None:
    async def form(request: web.Request) -> web.Response:
        data = await request.post()
        return web.json_response({k: data.getall(k) for k in set(data.keys())})

    app = web.Application()
    app.router.add_post("/form", form)

    async def scenario(client: TestClient) -> None:
        resp = await client.post(
            "/form",
            body="a=1&a=2&b=caf%C3%A9",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert resp.json() == {"a": ["1", "2"], "b": ["café"]}

    serve(loop, app, scenario)


def test_stream_response_chunked_and_cookies(loop: asyncio.AbstractEventLoop) -> None:
    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"X-Stream": "yes"})
        resp.content_type = "text/plain"
        resp.set_cookie("plain", "1")
        resp.set_secure_cookie("session", "s3cret")
        resp.del_cookie("old")
        await resp.prepare(request)
        for i in range(5):
            await resp.write(b"line %d\n" % i)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/stream", stream)

    async def scenario(client: TestClient) -> None:
        resp = await client.get("/stream")
        assert resp.status == 200
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert resp.body == b"".join(b"line %d\n" % i for i in range(5))
        cookies = resp.headers.getall("Set-Cookie")
        assert any(c.startswith("plain=1; Path=/") for c in cookies)
        secure = next(c for c in cookies if c.startswith("session="))
        assert "Secure" in secure and "HttpOnly" in secure and "SameSite=Lax" in secure
        assert any(c.startswith('old=""') and "Max-Age=0" in c for c in cookies)

    serve(loop, app, scenario)


def test_compression(loop: asyncio.AbstractEventLoop) -> None:
    import gzip
    import zlib

    text = "compress me " * 1000

    async def big(request: web.Request) -> web.Response:
        resp = web.Response(text=text)
        resp.enable_compression()
        return resp

    app = web.Application()
    app.router.add_get("/big", big)

    async def scenario(client: TestClient) -> None:
        resp = await client.get("/big", headers={"Accept-Encoding": "gzip, deflate"})
        assert resp.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(resp.body).decode() == text
        resp = await client.get("/big", headers={"Accept-Encoding": "deflate"})
        assert resp.headers["Content-Encoding"] == "deflate"
        assert zlib.decompress(resp.body).decode() == text
        resp = await client.get("/big")
        assert "Content-Encoding" not in resp.headers
        assert resp.text == text

    serve(loop, app, scenario)


def test_lifecycle_signals_state_and_freezing(loop: asyncio.AbstractEventLoop) -> None:
    events: list[str] = []
    DB = web.AppKey("db", dict)

    async def on_startup(app: web.Application) -> None:
        events.append("startup")
        app[DB] = {"connected": True}

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        events.append("ctx setup")
        yield
        events.append("ctx teardown")

    async def on_shutdown(app: web.Application) -> None:
        events.append("shutdown")

    async def on_cleanup(app: web.Application) -> None:
        events.append("cleanup")

    async def state(request: web.Request) -> web.Response:
        with pytest.raises(RuntimeError, match="running application"):
            request.app["late"] = 1
        with pytest.raises(RuntimeError, match="frozen router"):
            request.app.router.add_get("/late", state)
        with pytest.raises(RuntimeError, match="middlewares"):
            request.app.middlewares.append(state)  # type: ignore[arg-type]
        return web.json_response(request.app[DB])

    app = web.Application(loop=object())  # `loop` is accepted and ignored
    app.on_startup.append(on_startup)
    app.cleanup_ctx.append(ctx)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get("/state", state)

    async def scenario(client: TestClient) -> None:
        assert (await client.get("/state")).json() == {"connected": True}

    serve(loop, app, scenario)
    assert events == ["ctx setup", "startup", "shutdown", "ctx teardown", "cleanup"]


def test_subapps(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[str] = []

    async def mw(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append(f"sub mw {request.path}")
        return await handler(request)

    sub = web.Application(middlewares=[mw])
    sub.router.add_get(
        "/items/{id}",
        lambda r: web.Response(text=f"item {r.match_info['id']} of {len(r.match_info.apps)} apps"),
    )
    app = web.Application()
    app.router.add_get("/", lambda r: web.Response(text="root"))
    app.add_subapp("/api", sub)
    with pytest.raises(RuntimeError):
        app.add_subapp("/again", sub)

    async def scenario(client: TestClient) -> None:
        assert (await client.get("/api/items/7")).text == "item 7 of 2 apps"
        assert (await client.get("/")).text == "root"
        assert (await client.get("/api/nothing")).status == 404

    serve(loop, app, scenario)
    assert seen == ["sub mw /api/items/7", "sub mw /api/nothing"]


def test_api_misuse_is_named() -> None:
    app = web.Application()
    with pytest.raises(ValueError, match="started with /"):
        app.router.add_get("no-slash", hello)
    with pytest.raises(ValueError, match="unbalanced"):
        app.router.add_get("/{oops", hello)
    with pytest.raises(TypeError, match="callable"):
        app.router.add_get("/x", "not a handler")
    app.router.add_get("/dup", hello)
    with pytest.raises(RuntimeError, match="already registered"):
        app.router.add_get("/dup", hello)
    with pytest.raises(ValueError, match="location"):
        web.HTTPFound("")
    with pytest.raises(ValueError, match="CR"):
        web.HTTPFound("/x\r\nSet-Cookie: evil=1")
    with pytest.raises(ValueError, match="body and text"):
        web.Response(body=b"x", text="y")
    with pytest.raises(TypeError, match="abstract"):
        web.HTTPException()
    with pytest.raises(KeyError, match="name"):
        app.router.add_get("/u/{name}", hello, name="u")
        app.router["u"].url_for()


def test_client_max_size_raises_the_http_limit_too(loop: asyncio.AbstractEventLoop) -> None:
    async def size(request: web.Request) -> web.Response:
        return web.Response(text=str(len(await request.read())))

    app = web.Application(client_max_size=3 * 1024 * 1024)
    app.router.add_post("/size", size)

    async def scenario(client: TestClient) -> None:
        # Above the HTTP layer's default 1 MiB cap, within the app's: accepted.
        assert (await client.post("/size", body=b"x" * (2 * 1024 * 1024))).text == "2097152"
        resp = await client.post("/size", body=b"x" * (3 * 1024 * 1024 + 1))
        assert resp.status == 413

    serve(loop, app, scenario)


def test_body_errors_from_the_http_layer_keep_their_status(
    loop: asyncio.AbstractEventLoop,
) -> None:
    async def size(request: web.Request) -> web.Response:
        return web.Response(text=str(len(await request.read())))

    app = web.Application(client_max_size=100_000_000)
    app.router.add_post("/size", size)

    async def scenario(client: TestClient) -> None:
        # A chunk-size line that is not hex: the HTTP layer refuses it while the
        # handler reads; the answer is 400, not a 500 from the handler.
        resp = await client.post(
            "/size", headers={"Transfer-Encoding": "chunked"}, body=b"5\r\nhello\r\nzz\r\n"
        )
        assert resp.status == 400

    serve(loop, app, scenario)


@pytest.mark.expect_loop_errors
def test_error_after_the_head_closes_the_connection(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    async def half(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"partial")
        raise RuntimeError("broke mid-stream")

    seen: list[str] = []

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        seen.append(request.path)
        response.headers["X-Prepared"] = "1"

    app = web.Application()
    app.router.add_get("/half", half)
    app.router.add_get("/hello/{name}", hello)
    app.on_response_prepare.append(on_prepare)

    async def scenario(client: TestClient) -> None:
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            await client.get("/half")
        resp = await client.get("/hello/you")  # a new connection, served
        assert resp.status == 200
        assert resp.headers["X-Prepared"] == "1"

    with caplog.at_level(logging.ERROR):
        serve(loop, app, scenario)
    assert caplog.text.count("RuntimeError: broke mid-stream") == 1  # logged once
    assert seen == ["/half", "/hello/you"]


def test_handlers_run_inside_their_task_from_the_first_step(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Handlers start eagerly (no loop iteration before their first step), yet
    `current_task()` is theirs from the start, so `asyncio.timeout` works."""

    async def timed(request: web.Request) -> web.Response:
        task = asyncio.current_task()
        assert task is not None
        async with asyncio.timeout(5):
            await asyncio.sleep(0)
        assert asyncio.current_task() is task
        return web.Response(text="ok")

    async def instant(request: web.Request) -> web.Response:
        assert asyncio.current_task() is not None
        return web.Response(text="instant")

    app = web.Application()
    app.router.add_get("/timed", timed)
    app.router.add_get("/instant", instant)

    async def scenario(client: TestClient) -> None:
        for _ in range(3):
            assert (await client.get("/timed")).text == "ok"
            assert (await client.get("/instant")).text == "instant"

    serve(loop, app, scenario)


def test_gc_tuning_for_serving_is_undone() -> None:
    import gc

    from treadle.web.runner import SERVING_GC_THRESHOLDS, tune_gc_for_serving

    before = gc.get_threshold()
    restore = tune_gc_for_serving()
    try:
        assert gc.get_threshold() == SERVING_GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        restore()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_stream_response_with_length_answers_head(loop: asyncio.AbstractEventLoop) -> None:
    async def sized(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 5
        await resp.prepare(request)
        if request.method != "HEAD":
            await resp.write(b"hello")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/sized", sized)

    async def scenario(client: TestClient) -> None:
        resp = await client.head("/sized")
        assert (resp.status, resp.headers["Content-Length"], resp.body) == (200, "5", b"")
        assert (await client.get("/sized")).body == b"hello"

    serve(loop, app, scenario)


def test_runner_handler_cancellation_and_settings_misuse(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """`AppRunner(app, handler_cancellation=True)` reaches the server: a
    handler whose client left is cancelled. Settings given both ways, or
    unknown ones, are refused when the runner is made."""
    from treadle.http import ServerConfig

    waiting = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        waiting.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return web.Response(text="late")

    with pytest.raises(TypeError, match="keepalive_timeout"):
        web.AppRunner(web.Application(), config=ServerConfig(), keepalive_timeout=5)
    with pytest.raises(TypeError, match="no_such_setting"):
        web.AppRunner(web.Application(), no_such_setting=1)
    with pytest.raises(ValueError, match="handler_cancellation"):
        web.run_app(web.Application(), config=ServerConfig(), handler_cancellation=True)

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/slow", slow)
        runner = web.AppRunner(app, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            await asyncio.wait_for(waiting.wait(), 10)
            writer.close()
            await writer.wait_closed()
            await asyncio.wait_for(cancelled.wait(), 10)
        finally:
            await runner.cleanup()

    run(loop, main())


def test_http_exceptions_default_bodies_and_content_types() -> None:
    """The plain default body `STATUS: REASON` in UTF-8 text, whichever way the
    exception is made; a given content type gets the charset the text needs
    (as aiohttp does); empty-bodied statuses stay empty."""
    cases: list[tuple[web.HTTPException, bytes | None, str]] = [
        (web.HTTPNotFound(), b"404: Not Found", "text/plain; charset=utf-8"),
        (
            web.HTTPNotFound(reason="Gone fishing"),
            b"404: Gone fishing",
            "text/plain; charset=utf-8",
        ),
        (
            web.HTTPForbidden(content_type="text/html"),
            b"403: Forbidden",
            "text/html; charset=utf-8",
        ),
        (
            web.HTTPGone(content_type="text/plain; charset=latin-1", reason="Gon\xe9"),
            b"410: Gon\xe9",
            "text/plain; charset=latin-1",
        ),
        (web.HTTPNotFound(headers={"X": "1"}), b"404: Not Found", "text/plain; charset=utf-8"),
        (web.HTTPNotFound(text="nope"), b"nope", "text/plain; charset=utf-8"),
        (web.HTTPBadRequest(body=b"\x00raw"), b"\x00raw", "application/octet-stream"),
    ]
    for exc, body, ctype in cases:
        assert exc.body == body, exc
        assert exc.headers["Content-Type"] == ctype, exc
        assert str(exc) == exc.reason
    assert web.HTTPNotFound(headers={"X": "1"}).headers["X"] == "1"
    assert web.HTTPNoContent().body is None
    assert "Content-Type" not in web.HTTPNoContent().headers
