"""ASGI 3 conformance of Treadle's server, written against the ASGI spec text
(HTTP and WebSocket spec 2.4, lifespan 2.0, the trailers, pathsend and
websocket.http.response extensions): every scope field, every message and
its ordering rule, disconnects, streaming both ways, back-pressure, and
misbehaving apps, over real sockets, on Treadle's loop and the stdlib loop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from treadle.asgi import ASGIRunner, LifespanFailure
from treadle.http.runner import TCPSite
from treadle.testing import read_response

from ..conftest import run

Scope = dict[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


async def serve(app: App, **kwargs: Any) -> tuple[ASGIRunner, int]:
    runner = ASGIRunner(app, **kwargs)
    await runner.setup()
    await TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


def scenario(loop: asyncio.AbstractEventLoop, app: App, body: Any, **kwargs: Any) -> Any:
    async def main() -> Any:
        runner, port = await serve(app, **kwargs)
        try:
            return await body(port)
        finally:
            await runner.cleanup()

    return run(loop, main())


async def exchange(port: int, raw: bytes, method: str = "GET") -> Any:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        return await read_response(reader, method)
    finally:
        writer.close()


async def read_all(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def respond(send: Any, status: int = 200, body: bytes = b"ok", headers: Any = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


# -- the scope ----------------------------------------------------------------------------------


def test_every_http_scope_field(loop: asyncio.AbstractEventLoop) -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    scope["state"]["db"] = "connected"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        scopes.append(scope)
        scope["state"]["mutated"] = True  # must not reach the next request
        await respond(send)

    async def body(port: int) -> None:
        raw = (
            b"GET /caf%C3%A9/a%2Fb?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\n"
            b"X-Dup: one\r\nX-DUP: two\r\nContent-Type: text/plain\r\n\r\n"
        )
        assert (await exchange(port, raw)).status == 200
        assert (await exchange(port, b"GET / HTTP/1.0\r\n\r\n")).status == 200

    scenario(loop, app, body, root_path="/mount")
    first, second = scopes
    assert first["type"] == "http"
    assert first["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert first["http_version"] == "1.1" and second["http_version"] == "1.0"
    assert first["method"] == "GET"
    assert first["scheme"] == "http"
    assert first["root_path"] == "/mount"
    assert first["path"] == "/mount/café/a/b"  # decoded, root_path in front (as uvicorn)
    assert first["raw_path"] == b"/mount/caf%C3%A9/a%2Fb"
    assert first["query_string"] == b"x=1&y=%20"
    assert first["headers"] == [
        (b"host", b"example.com"),
        (b"x-dup", b"one"),
        (b"x-dup", b"two"),
        (b"content-type", b"text/plain"),
    ]
    host, port = first["client"]
    assert host == "127.0.0.1" and isinstance(port, int)
    assert first["server"][0] == "127.0.0.1" and isinstance(first["server"][1], int)
    assert first["state"] == {"db": "connected", "mutated": True}
    assert second["state"] == {"db": "connected", "mutated": True}
    assert second["state"] is not first["state"]  # a shallow copy per request
    assert "http.response.trailers" in first["extensions"]
    assert "http.response.pathsend" in first["extensions"]


def test_a_request_the_parser_refuses_never_reaches_the_app(
    loop: asyncio.AbstractEventLoop,
) -> None:
    calls: list[Scope] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            calls.append(scope)
            await respond(send)

    async def body(port: int) -> None:
        smuggle = (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
        assert (await exchange(port, smuggle)).status == 400
        assert (await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n")).status == 400
        assert (await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")).status == 200

    scenario(loop, app, body)
    assert len(calls) == 1


# -- request bodies -------------------------------------------------------------------------------


def test_a_body_streams_as_http_request_messages(loop: asyncio.AbstractEventLoop) -> None:
    got: list[Any] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while True:
            msg = await receive()
            got.append((msg["type"], msg.get("body"), msg.get("more_body")))
            if not msg.get("more_body"):
                break
        await respond(send, body=b"%d" % sum(len(b or b"") for _, b, _ in got))

    async def body(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        )
        await writer.drain()
        while not got:
            await asyncio.sleep(0.01)
        writer.write(b"6\r\n world\r\n0\r\n\r\n")
        response = await read_response(reader)
        assert response.body == b"11"
        writer.close()

    scenario(loop, app, body)
    assert got[0] == ("http.request", b"hello", True)
    assert got[-1][2] is False
    assert b"".join(b for _, b, _ in got) == b"hello world"


def test_a_bodiless_request_gets_one_empty_http_request(loop: asyncio.AbstractEventLoop) -> None:
    got: list[Any] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            got.append(await receive())
            await respond(send)

    async def body(port: int) -> None:
        assert (await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")).status == 200

    scenario(loop, app, body)
    assert got == [{"type": "http.request", "body": b"", "more_body": False}]


def test_reading_pauses_while_the_app_does_not_receive(loop: asyncio.AbstractEventLoop) -> None:
    release = asyncio.Event()
    total: list[int] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await release.wait()
        size = 0
        while True:
            msg = await receive()
            size += len(msg["body"])
            if not msg["more_body"]:
                break
        total.append(size)
        await respond(send)

    size = 64 * 1024 * 1024

    async def body(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        piece = b"b" * 65536
        sent = 0
        while sent < size:
            writer.write(piece)
            sent += len(piece)
            try:
                await asyncio.wait_for(writer.drain(), 0.5)
            except TimeoutError:
                break
        assert sent < size, "the server kept reading a body its app did not ask for"
        release.set()
        while sent < size:
            writer.write(piece)
            sent += len(piece)
            await writer.drain()
        assert (await read_response(reader)).status == 200
        writer.close()

    scenario(loop, app, body)
    assert total == [size]


def test_100_continue_only_when_the_app_reads(loop: asyncio.AbstractEventLoop) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/read":
            msg = await receive()
            await respond(send, body=msg["body"])
        else:
            await respond(send, status=413, body=b"too big")

    async def body(port: int) -> None:
        head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head % b"/read")
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"data")
        response = await read_response(reader)
        assert response.status == 200 and response.body == b"data"
        writer.close()
        # The app answers without reading: no 100 Continue before the answer.
        answer = await read_all(port, head % b"/refuse")
        assert answer.startswith(b"HTTP/1.1 413 "), answer

    scenario(loop, app, body)


def test_limit_request_body(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[str] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        calls.append(scope["path"])
        while (await receive()).get("more_body"):
            pass
        await respond(send)

    async def body(port: int) -> None:
        big = b"POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
        assert (await exchange(port, big)).status == 413
        chunked = (
            b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"
        )
        assert (await exchange(port, chunked)).status == 413
        ok = b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"
        assert (await exchange(port, ok)).status == 200

    scenario(loop, app, body, limit_request_body=10)
    assert calls == ["/chunked", "/ok"]  # the Content-Length one was refused before the app


def test_no_body_limit_by_default(loop: asyncio.AbstractEventLoop) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        size = 0
        while True:
            msg = await receive()
            size += len(msg["body"])
            if not msg["more_body"]:
                break
        await respond(send, body=b"%d" % size)

    size = 5 * 1024 * 1024  # past treadle.web's 1 MiB client_max_size

    async def body(port: int) -> None:
        raw = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size + b"z" * size
        assert (await exchange(port, raw)).body == b"%d" % size

    scenario(loop, app, body)


# -- disconnects --------------------------------------------------------------------------------


def test_http_disconnect_after_the_response_and_when_the_client_leaves(
    loop: asyncio.AbstractEventLoop,
) -> None:
    seen: list[str] = []
    send_errors: list[BaseException] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()  # the (empty) body
        if scope["path"] == "/after":
            await respond(send)
            seen.append((await receive())["type"])
            return
        # /leave: the client goes away while the app waits
        seen.append((await receive())["type"])
        try:
            await respond(send)
        except OSError as exc:
            send_errors.append(exc)

    async def body(port: int) -> None:
        assert (await exchange(port, b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")).status == 200
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /leave HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        for _ in range(500):
            if send_errors:
                break
            await asyncio.sleep(0.01)

    scenario(loop, app, body)
    assert seen == ["http.disconnect", "http.disconnect"]
    assert len(send_errors) == 1  # send() after the client has gone: OSError (spec 2.4)


# -- responses ----------------------------------------------------------------------------------


def test_response_framing(loop: asyncio.AbstractEventLoop) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        headers = [(b"content-type", b"text/plain")]
        if path == "/whole":
            await respond(send, body=b"whole", headers=headers)
        elif path in ("/stream", "/stream10"):
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            for part in (b"one ", b"two ", b"three"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif path == "/length":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [*headers, (b"content-length", b"8")],
                }
            )
            await send({"type": "http.response.body", "body": b"1234", "more_body": True})
            await send({"type": "http.response.body", "body": b"5678"})

    async def body(port: int) -> None:
        whole = await read_all(port, b"GET /whole HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"\r\nContent-Length: 5\r\n" in whole and whole.endswith(b"\r\n\r\nwhole")
        stream = await exchange(port, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        assert stream.headers["Transfer-Encoding"] == "chunked"
        assert stream.body == b"one two three"
        length = await exchange(port, b"GET /length HTTP/1.1\r\nHost: x\r\n\r\n")
        assert length.headers["Content-Length"] == "8" and length.body == b"12345678"
        old = await read_all(port, b"GET /stream10 HTTP/1.0\r\n\r\n")
        assert b"chunked" not in old.lower() and old.endswith(b"\r\n\r\none two three")
        head = await exchange(port, b"HEAD /whole HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD")
        assert head.headers["Content-Length"] == "5" and head.body == b""

    scenario(loop, app, body)


def test_misbehaving_apps_get_a_500_or_a_closed_connection(
    loop: asyncio.AbstractEventLoop,
) -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/raise":
            raise RuntimeError("before the start")
        if path == "/raise-after-start":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise RuntimeError("after the start, before any body: still a 500")
        if path == "/raise-mid-body":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
            raise RuntimeError("mid-body")
        if path == "/nothing":
            return
        if path == "/crlf":
            await respond(send, headers=[(b"x-evil", b"a\r\nSet-Cookie: pwned")])
        if path == "/bad-name":
            await respond(send, headers=[(b"bad name", b"v")])
        if path == "/twice":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            try:
                await send({"type": "http.response.start", "status": 201, "headers": []})
            except RuntimeError as exc:
                seen.append(str(exc))
            await send({"type": "http.response.body", "body": b"first start wins"})
        if path == "/short":
            await respond(send, headers=[(b"content-length", b"10")], body=b"short")
        if path == "/after-done":
            await respond(send)
            try:
                await send({"type": "http.response.body", "body": b"more"})
            except RuntimeError as exc:
                seen.append(str(exc))

    async def body(port: int) -> None:
        for path in (
            b"/raise",
            b"/raise-after-start",
            b"/nothing",
            b"/crlf",
            b"/bad-name",
            b"/short",
        ):
            answer = await read_all(port, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
            assert answer.startswith(b"HTTP/1.1 500 "), (path, answer)
            assert b"pwned" not in answer
        mid = await read_all(port, b"GET /raise-mid-body HTTP/1.1\r\nHost: x\r\n\r\n")
        assert mid.startswith(b"HTTP/1.1 200 ") and not mid.endswith(b"0\r\n\r\n")
        twice = await exchange(port, b"GET /twice HTTP/1.1\r\nHost: x\r\n\r\n")
        assert twice.status == 200 and twice.body == b"first start wins"
        assert (await exchange(port, b"GET /after-done HTTP/1.1\r\nHost: x\r\n\r\n")).status == 200

    scenario(loop, app, body)
    assert len(seen) == 2 and "http.response.start" in seen[0] and "completed" in seen[1]


def test_pathsend(loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    (tmp_path / "f.bin").write_bytes(data)

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(tmp_path / "f.bin")})

    async def body(port: int) -> None:
        got = await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert got.headers["Content-Length"] == "300000" and got.body == data
        head = await exchange(port, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD")
        assert head.headers["Content-Length"] == "300000" and head.body == b""

    scenario(loop, app, body)


def test_trailers_only_to_a_client_that_asked(loop: asyncio.AbstractEventLoop) -> None:
    completed: list[str] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"data"})
        completed.append("body")
        await send(
            {
                "type": "http.response.trailers",
                "headers": [(b"x-checksum", b"abc")],
                "more_trailers": False,
            }
        )
        completed.append("trailers")

    async def body(port: int) -> None:
        asked = await read_all(
            port, b"GET / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n"
        )
        assert b"Transfer-Encoding: chunked" in asked
        assert asked.endswith(b"4\r\ndata\r\n0\r\nx-checksum: abc\r\n\r\n")
        plain = await read_all(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"x-checksum" not in plain and plain.endswith(b"data")

    scenario(loop, app, body)
    # Both apps got through their trailers message: dropped for the second
    # client, not refused.
    assert completed == ["body", "trailers", "body", "trailers"]


# -- lifespan ----------------------------------------------------------------------------------


def lifespan_app(events: list[str], fail: str | None = None, raise_at: str | None = None) -> App:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            if raise_at == "start":
                raise RuntimeError("lifespan not supported")
            while True:
                msg = await receive()
                events.append(msg["type"])
                if msg["type"] == "lifespan.startup":
                    if fail == "startup":
                        await send({"type": "lifespan.startup.failed", "message": "no database"})
                        return
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        else:
            await respond(send, body=b"state" if "state" in scope else b"no state")

    return app


def test_lifespan_startup_and_shutdown_around_serving(loop: asyncio.AbstractEventLoop) -> None:
    events: list[str] = []

    async def body(port: int) -> None:
        assert events == ["lifespan.startup"]
        assert (await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")).body == b"state"

    scenario(loop, lifespan_app(events), body)
    assert events == ["lifespan.startup", "lifespan.shutdown"]


def test_a_failed_startup_stops_the_server_with_the_apps_message(
    loop: asyncio.AbstractEventLoop,
) -> None:
    async def main() -> None:
        with pytest.raises(LifespanFailure, match="no database"):
            await serve(lifespan_app([], fail="startup"))

    run(loop, main())


@pytest.mark.parametrize("mode", ["auto", "on", "off"])
def test_an_app_without_lifespan(loop: asyncio.AbstractEventLoop, mode: str) -> None:
    async def main() -> None:
        if mode == "on":
            with pytest.raises(LifespanFailure):
                await serve(lifespan_app([], raise_at="start"), lifespan=mode)
            return
        runner, port = await serve(lifespan_app([], raise_at="start"), lifespan=mode)
        try:
            response = await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert response.body == b"no state"  # no lifespan, no state in the scope
        finally:
            await runner.cleanup()

    run(loop, main())


# -- websocket ----------------------------------------------------------------------------------


def ws_app(log: list[Any]) -> App:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            if scope["type"] == "http":
                await respond(send)
            return
        log.append(("scope", scope["path"], scope["subprotocols"], scope["scheme"]))
        log.append(await receive())  # websocket.connect
        if scope["path"] == "/deny":
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Token")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": b"who are you?"})
            return
        if scope["path"] == "/refuse":
            await send({"type": "websocket.close"})
            return
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": "v2" if "v2" in scope["subprotocols"] else None,
                "headers": [(b"x-extra", b"1")],
            }
        )
        while True:
            msg = await receive()
            log.append(msg)
            if msg["type"] == "websocket.disconnect":
                return
            if msg.get("text") == "close":
                await send({"type": "websocket.close", "code": 4005, "reason": "asked to"})
                log.append(await receive())
                return
            if msg.get("text") is not None:
                await send({"type": "websocket.send", "text": msg["text"].upper()})
            else:
                await send({"type": "websocket.send", "bytes": msg["bytes"][::-1]})

    return app


def test_the_websocket_scope(loop: asyncio.AbstractEventLoop) -> None:
    log: list[Any] = []

    async def body(port: int) -> None:
        url = f"ws://127.0.0.1:{port}"
        async with websockets.connect(url + "/chat", subprotocols=["v1", "v2"]) as peer:
            assert peer.subprotocol == "v2"
            assert peer.response.headers["x-extra"] == "1"
            await peer.send("hello")
            assert await peer.recv() == "HELLO"
            await peer.send(b"\x01\x02\x03")
            assert await peer.recv() == b"\x03\x02\x01"
            await peer.close(4001, "bye")
        async with websockets.connect(url + "/chat") as peer:
            await peer.send("close")
            await peer.wait_closed()
            assert peer.close_code == 4005 and peer.close_reason == "asked to"
        with pytest.raises(InvalidStatus) as denied:
            async with websockets.connect(url + "/deny"):
                pass
        assert denied.value.response.status_code == 401
        assert denied.value.response.body == b"who are you?"
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(url + "/refuse"):
                pass
        assert refused.value.response.status_code == 403
        for _ in range(200):
            if (
                len([e for e in log if isinstance(e, dict) and e["type"] == "websocket.disconnect"])
                == 2
            ):
                break
            await asyncio.sleep(0.01)

    scenario(loop, ws_app(log), body)
    assert log[0] == ("scope", "/chat", ["v1", "v2"], "ws")
    assert log[1] == {"type": "websocket.connect"}
    assert log[2] == {"type": "websocket.receive", "text": "hello"}
    assert log[3] == {"type": "websocket.receive", "bytes": b"\x01\x02\x03"}
    assert log[4] == {"type": "websocket.disconnect", "code": 4001, "reason": "bye"}
    disconnects = [e for e in log if isinstance(e, dict) and e["type"] == "websocket.disconnect"]
    assert disconnects[1]["code"] == 4005


def test_an_invalid_websocket_handshake_never_reaches_the_app(
    loop: asyncio.AbstractEventLoop,
) -> None:
    log: list[Any] = []

    async def body(port: int) -> None:
        bad = (
            b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert (await exchange(port, bad)).status == 400

    scenario(loop, ws_app(log), body)
    assert log == []


def test_shutdown_closes_accepted_websockets_with_1001(loop: asyncio.AbstractEventLoop) -> None:
    log: list[Any] = []

    async def main() -> None:
        runner, port = await serve(ws_app(log))
        peer = await websockets.connect(f"ws://127.0.0.1:{port}/chat")
        await peer.send("x")
        assert await peer.recv() == "X"
        await runner.cleanup()
        await peer.wait_closed()
        assert peer.close_code == 1001

    run(loop, main())
    assert log[-1]["type"] == "websocket.disconnect" and log[-1]["code"] == 1001
