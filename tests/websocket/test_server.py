"""`web.WebSocketResponse` over real sockets, on Treadle's loop and the stdlib
loop, against peers nobody here wrote (the `websockets` library's client,
aiohttp's `ws_connect`), Treadle's own test client, and raw sockets that
break the rules on purpose."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from treadle import web
from treadle.testing import TestClient, TestServer, WSServerHandshakeError

from ..conftest import run
from .wire import client_frame, close_payload, frame, unframe

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 1, 2, 8, 9, 10


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=("chat", "v2"), max_msg_size=2 * 1024 * 1024)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == web.WSMsgType.TEXT:
            if msg.data == "info":
                await ws.send_json({"compress": ws.compress, "protocol": ws.ws_protocol})
            else:
                await ws.send_str(msg.data)
        elif msg.type == web.WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


def serve(
    loop: asyncio.AbstractEventLoop,
    app: web.Application,
    scenario: Callable[[TestClient], Awaitable[Any]],
    **server_kwargs: Any,
) -> Any:
    async def main() -> Any:
        async with TestClient(TestServer(app, **server_kwargs)) as client:
            return await scenario(client)

    return run(loop, main(), timeout=60)


def echo_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/ws", echo)
    return app


MIB = b"\x5a" * (1024 * 1024)


# -- peers nobody here wrote ------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_the_websockets_librarys_client(loop: asyncio.AbstractEventLoop, compression: Any) -> None:
    async def scenario(client: TestClient) -> None:
        url = f"ws://127.0.0.1:{client.port}/ws"
        async with websockets.connect(
            url, compression=compression, subprotocols=["v2"], max_size=None
        ) as peer:
            assert peer.subprotocol == "v2"
            await peer.send("héllo")
            assert await peer.recv() == "héllo"
            await peer.send(b"\x00\xff" * 100)
            assert await peer.recv() == b"\x00\xff" * 100
            await peer.send(MIB)
            assert await peer.recv() == MIB
            await peer.send("info")
            assert await peer.recv() == (
                f'{{"compress": {str(compression is not None).lower()}, "protocol": "v2"}}'
            )
            await peer.close(4000, "done")
        # The server's answer echoes the code (RFC 6455 5.5.1), not the reason.
        assert peer.close_code == 4000
        assert peer.close_reason == ""

    serve(loop, echo_app(), scenario)


@pytest.mark.parametrize("compress", [0, 15])
def test_aiohttps_client(loop: asyncio.AbstractEventLoop, compress: int) -> None:
    async def scenario(client: TestClient) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(
                f"http://127.0.0.1:{client.port}/ws",
                compress=compress,
                protocols=("other", "chat"),
                max_msg_size=0,
            ) as peer:
                assert peer.protocol == "chat"
                await peer.send_str("text")
                assert (await peer.receive()).data == "text"
                await peer.send_bytes(MIB)
                msg = await peer.receive()
                assert msg.type == aiohttp.WSMsgType.BINARY and msg.data == MIB
                await peer.send_str("info")
                assert (await peer.receive_json()) == {
                    "compress": bool(compress),
                    "protocol": "chat",
                }
                await peer.close(code=4001, message=b"bye")
            assert peer.close_code == 4001

    serve(loop, echo_app(), scenario)


def test_treadles_test_client(loop: asyncio.AbstractEventLoop) -> None:
    async def scenario(client: TestClient) -> None:
        async with await client.ws_connect("/ws", protocols=["v2"]) as ws:
            assert ws.ws_protocol == "v2"
            await ws.send_str("one")
            assert await ws.receive_str() == "one"
            await ws.send_bytes(b"two")
            assert await ws.receive_bytes() == b"two"
            await ws.send_json({"three": 3})
            assert await ws.receive_json() == {"three": 3}
            await ws.send_str("info")
            assert (await ws.receive()).json() == {"compress": True, "protocol": "v2"}
        assert ws.closed and ws.close_code == 1000

    serve(loop, echo_app(), scenario)


# -- the handshake refused --------------------------------------------------------------------


async def raw_request(port: int, head: bytes) -> tuple[bytes, asyncio.StreamReader, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    answer = await reader.readuntil(b"\r\n\r\n")
    return answer, reader, writer


KEY = base64.b64encode(b"0123456789abcdef").decode()


def handshake(
    path: str = "/ws", *, method: str = "GET", version: str = "13", key: str = KEY
) -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n\r\n"
    ).encode()


def test_bad_handshakes_get_http_answers_and_serving_goes_on(
    loop: asyncio.AbstractEventLoop,
) -> None:
    app = echo_app()
    app.router.add_route("*", "/any", echo)

    async def scenario(client: TestClient) -> None:
        cases = [
            (handshake(version="8"), b"426", b"Sec-WebSocket-Version: 13"),
            (handshake(key="c2hvcnQ="), b"400", b""),
            (
                handshake("/any", method="POST").replace(
                    b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n"
                ),
                b"405",
                b"Allow: GET",
            ),
            (b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", b"400", b""),
        ]
        for head, status, field in cases:
            answer, _, writer = await raw_request(client.port, head)
            assert answer.startswith(b"HTTP/1.1 " + status), answer
            assert field in answer
            writer.close()
        with pytest.raises(WSServerHandshakeError) as info:
            await client.ws_connect("/nowhere")
        assert info.value.status == 404
        assert (await client.get("/ws")).status == 400
        async with await client.ws_connect("/ws") as ws:
            await ws.send_str("still serving")
            assert await ws.receive_str() == "still serving"

    serve(loop, app, scenario)


# -- the rules, over a raw socket ----------------------------------------------------------------


async def raw_ws(port: int, path: str = "/ws") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    answer, reader, writer = await raw_request(port, handshake(path))
    assert answer.startswith(b"HTTP/1.1 101 "), answer
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(2)
    n = head[1] & 0x7F
    extra = b""
    if n == 126:
        extra = await reader.readexactly(2)
        (n,) = struct.unpack("!H", extra)
    elif n == 127:
        extra = await reader.readexactly(8)
        (n,) = struct.unpack("!Q", extra)
    assert not head[1] & 0x80, "a server's frames are never masked"
    payload = await reader.readexactly(n)
    ((_, opcode, data),) = unframe(head + extra + payload)
    return opcode, data


def recording_app(seen: list[Any], **ws_kwargs: Any) -> web.Application:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(**ws_kwargs)
        await ws.prepare(request)
        async for msg in ws:
            seen.append((msg.type, msg.data))
        seen.append(("end", ws.close_code, ws.exception()))
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    return app


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        (frame(OP_TEXT, b"unmasked"), 1002),
        (client_frame(OP_TEXT, b"\xff\xfe"), 1007),
        (client_frame(3, b""), 1002),
        (client_frame(OP_TEXT, b"x", rsv=1), 1002),
        (client_frame(OP_PING, b"x" * 126), 1002),
        (client_frame(OP_CLOSE, close_payload(1005)), 1002),
        (client_frame(OP_BINARY, b"\x00" * 2000), 1009),
    ],
    ids=["unmasked", "utf8", "opcode", "rsv1", "big-ping", "close-1005", "too-big"],
)
def test_a_broken_rule_closes_with_its_code(
    loop: asyncio.AbstractEventLoop, frames: bytes, code: int
) -> None:
    seen: list[Any] = []

    async def scenario(client: TestClient) -> None:
        reader, writer = await raw_ws(client.port)
        writer.write(client_frame(OP_TEXT, b"before") + frames)
        opcode, data = await read_frame(reader)
        assert (opcode, data[:2]) == (OP_CLOSE, struct.pack("!H", code))
        assert await reader.read() == b""  # then the server closes the TCP connection
        writer.close()
        for _ in range(100):
            if seen and seen[-1][0] == "end":
                break
            await asyncio.sleep(0.01)

    serve(loop, recording_app(seen, max_msg_size=1000), scenario)
    assert seen[0] == (web.WSMsgType.TEXT, "before")
    assert seen[1][0] == web.WSMsgType.ERROR and seen[1][1].code == code
    assert seen[-1][0] == "end" and seen[-1][1] == code
    assert isinstance(seen[-1][2], web.WebSocketError)


def test_pings_are_answered_and_the_close_is_echoed(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[Any] = []

    async def scenario(client: TestClient) -> None:
        reader, writer = await raw_ws(client.port)
        writer.write(client_frame(OP_PING, b"are you there"))
        assert await read_frame(reader) == (OP_PONG, b"are you there")
        writer.write(client_frame(OP_CLOSE, close_payload(4321, b"bye")))
        assert await read_frame(reader) == (OP_CLOSE, close_payload(4321))
        assert await reader.read() == b""
        writer.close()
        while not seen or seen[-1][0] != "end":
            await asyncio.sleep(0.01)

    serve(loop, recording_app(seen), scenario)
    # autoping: the ping is not delivered; the close is, and ends the iteration.
    assert seen == [("end", 4321, None)]


def test_autoping_off_delivers_pings_and_pongs(loop: asyncio.AbstractEventLoop) -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        msg = await ws.receive()
        assert msg.type == web.WSMsgType.PING
        await ws.pong(msg.data + b"!")
        msg = await ws.receive()
        assert msg.type == web.WSMsgType.PONG
        await ws.send_str(f"pong {msg.data!r}")
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)

    async def scenario(client: TestClient) -> None:
        reader, writer = await raw_ws(client.port)
        writer.write(client_frame(OP_PING, b"p"))
        assert await read_frame(reader) == (OP_PONG, b"p!")
        writer.write(client_frame(OP_PONG, b"q"))
        assert await read_frame(reader) == (OP_TEXT, b"pong b'q'")
        assert await read_frame(reader) == (OP_CLOSE, close_payload(1000))
        writer.write(client_frame(OP_CLOSE, close_payload(1000)))
        assert await reader.read() == b""
        writer.close()

    serve(loop, app, scenario)


def test_heartbeat_closes_a_peer_that_never_pongs(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[Any] = []

    async def scenario(client: TestClient) -> None:
        reader, writer = await raw_ws(client.port)
        opcode, _ = await read_frame(reader)
        assert opcode == OP_PING  # ...which this client never answers
        assert await read_frame(reader) == (
            OP_CLOSE,
            close_payload(1011, b"keepalive ping timeout"),
        )
        assert await reader.read() == b""
        writer.close()
        while not seen or seen[-1][0] != "end":
            await asyncio.sleep(0.01)

    serve(loop, recording_app(seen, heartbeat=0.1), scenario)
    assert seen[0][0] == web.WSMsgType.ERROR and isinstance(seen[0][1], TimeoutError)
    assert seen[-1][:2] == ("end", 1011)


def test_heartbeat_keeps_a_peer_that_pongs(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[Any] = []

    async def scenario(client: TestClient) -> None:
        reader, writer = await raw_ws(client.port)
        for _ in range(3):
            opcode, payload = await read_frame(reader)
            assert opcode == OP_PING
            writer.write(client_frame(OP_PONG, payload))
        writer.write(client_frame(OP_TEXT, b"alive"))
        writer.write(client_frame(OP_CLOSE, close_payload(1000)))
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == OP_CLOSE:
                break
        writer.close()
        while not seen or seen[-1][0] != "end":
            await asyncio.sleep(0.01)

    serve(loop, recording_app(seen, heartbeat=0.05), scenario)
    assert seen == [(web.WSMsgType.TEXT, "alive"), ("end", 1000, None)]


def test_receive_timeout(loop: asyncio.AbstractEventLoop) -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(receive_timeout=0.05)
        await ws.prepare(request)
        with pytest.raises(TimeoutError):
            await ws.receive()
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.01)
        await ws.send_str("timed out twice")
        await ws.send_str(await ws.receive_str(timeout=30))  # still usable
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)

    async def scenario(client: TestClient) -> None:
        async with await client.ws_connect("/ws") as ws:
            assert await ws.receive_str() == "timed out twice"
            await ws.send_str("then a message")
            assert await ws.receive_str() == "then a message"
            msg = await ws.receive()
            assert msg.type == web.WSMsgType.CLOSE and msg.data == 1000

    serve(loop, app, scenario)


def test_reading_pauses_while_the_handler_is_behind(loop: asyncio.AbstractEventLoop) -> None:
    go = asyncio.Event()
    queued: list[int] = []
    received: list[int] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(read_limit=64 * 1024, max_msg_size=0)
        await ws.prepare(request)
        await go.wait()
        assert ws._ws is not None
        queued.append(ws._ws._queued)
        async for msg in ws:
            received.append(len(msg.data))
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    message = client_frame(OP_BINARY, b"m" * 16384)
    count = 2000  # 32 MiB: far more than the kernel's buffers hold

    async def scenario(client: TestClient) -> None:
        reader, writer = await raw_ws(client.port)
        sent = 0
        while sent < count:
            writer.write(message)
            sent += 1
            try:
                await asyncio.wait_for(writer.drain(), 0.5)
            except TimeoutError:
                break  # the server stopped reading: our writes back up
        assert sent < count, "the server kept reading while its handler read nothing"
        go.set()
        while sent < count:
            writer.write(message)
            sent += 1
            await writer.drain()
        writer.write(client_frame(OP_CLOSE, close_payload(1000)))
        assert (await read_frame(reader))[0] == OP_CLOSE
        writer.close()
        while len(received) < count:
            await asyncio.sleep(0.01)

    go_loop = loop
    serve(go_loop, app, scenario)
    # What waited in the queue was bounded by the limit plus what one read can
    # bring (the frames of a read are decoded together before reading pauses:
    # up to 256 KiB per read on both loops), not by the 32 MiB the client sent.
    assert queued and queued[0] <= 64 * 1024 + 256 * 1024 + 16384
    assert received == [16384] * count


def test_a_handler_that_returns_closes_with_1000_and_one_that_fails_with_1011(
    loop: asyncio.AbstractEventLoop,
) -> None:
    async def returns(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("bye")
        return ws

    async def fails(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("about to fail")
        raise RuntimeError("handler bug")

    app = web.Application()
    app.router.add_get("/returns", returns)
    app.router.add_get("/fails", fails)

    async def scenario(client: TestClient) -> None:
        for path, code in (("/returns", 1000), ("/fails", 1011)):
            reader, writer = await raw_ws(client.port, path)
            assert (await read_frame(reader))[0] == OP_TEXT
            assert await read_frame(reader) == (OP_CLOSE, close_payload(code))
            writer.write(client_frame(OP_CLOSE, close_payload(code)))
            assert await reader.read() == b""
            writer.close()

    serve(loop, app, scenario)


def test_middlewares_and_on_response_prepare_see_the_upgrade(
    loop: asyncio.AbstractEventLoop,
) -> None:
    seen: list[Any] = []

    @web.middleware
    async def mw(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        seen.append(("middleware", type(response).__name__, response.status))
        return response

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        seen.append(("prepare", response.status, response.headers.get("Upgrade")))
        response.headers["X-Seen"] = "yes"

    app = web.Application(middlewares=[mw])
    app.router.add_get("/ws", echo)
    app.on_response_prepare.append(on_prepare)

    async def scenario(client: TestClient) -> None:
        async with await client.ws_connect("/ws") as ws:
            assert ws.headers["X-Seen"] == "yes"
            await ws.send_str("x")
            assert await ws.receive_str() == "x"
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.01)

    serve(loop, app, scenario)
    assert seen == [("prepare", 101, "websocket"), ("middleware", "WebSocketResponse", 101)]


# -- graceful shutdown, and what is left behind --------------------------------------------------


def test_shutdown_closes_open_websockets_with_1001(loop: asyncio.AbstractEventLoop) -> None:
    ended: list[int | None] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            pass
        ended.append(ws.close_code)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)

    async def main() -> None:
        server = TestServer(app)
        await server.start()
        peers = [await websockets.connect(f"ws://127.0.0.1:{server.port}/ws") for _ in range(5)]
        await server.close()  # AppRunner.cleanup(): a graceful stop
        for peer in peers:
            with pytest.raises(ConnectionClosed):
                await peer.recv()
            assert peer.close_code == 1001
            await peer.close()

    run(loop, main())
    assert ended == [1001] * 5


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_thousand_connections_leave_nothing_behind(loop: asyncio.AbstractEventLoop) -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(timeout=0.2)
        await ws.prepare(request)
        async for msg in ws:
            if msg.data == "close":
                await ws.close()
            else:
                await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    closing = client_frame(OP_CLOSE, close_payload(1000))

    async def one(port: int, how: int) -> None:
        reader, writer = await raw_ws(port)
        writer.write(client_frame(OP_TEXT, b"hi"))
        assert await read_frame(reader) == (OP_TEXT, b"hi")
        if how == 0:  # a clean close
            writer.write(closing)
            assert (await read_frame(reader))[0] == OP_CLOSE
            assert await reader.read() == b""
        elif how == 1:  # an abrupt reset
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:  # the server closes; this client never answers its close frame
            writer.write(client_frame(OP_TEXT, b"close"))
            assert (await read_frame(reader))[0] == OP_CLOSE
            assert await reader.read() == b""  # aborted after the close timeout
        writer.close()

    async def main() -> None:
        server = TestServer(app)
        await server.start()
        before = open_fds()
        tasks_before = len(asyncio.all_tasks())
        for batch in range(10):
            await asyncio.gather(
                *(one(server.port, i % 3) for i in range(batch * 100, batch * 100 + 100))
            )
        http = server._runner.server
        assert http is not None
        for _ in range(500):
            if http.connections == 0 and len(asyncio.all_tasks()) == tasks_before:
                break
            await asyncio.sleep(0.01)
        assert http.connections == 0
        assert len(asyncio.all_tasks()) == tasks_before
        assert open_fds() <= before
        await server.close()

    run(loop, main(), timeout=120)


@pytest.mark.parametrize(
    ("last", "code"),
    [(client_frame(OP_CLOSE, close_payload(1000)), 1000), (client_frame(3, b""), 1002)],
    ids=["close", "broken-rule"],
)
def test_answers_to_messages_in_the_same_read_go_before_the_close(
    loop: asyncio.AbstractEventLoop, last: bytes, code: int
) -> None:
    async def scenario(client: TestClient) -> None:
        reader, writer = await raw_ws(client.port)
        writer.write(client_frame(OP_TEXT, b"first") + last)  # one segment
        assert await read_frame(reader) == (OP_TEXT, b"first")
        assert await read_frame(reader) == (OP_CLOSE, close_payload(code))
        assert await reader.read() == b""
        writer.close()

    serve(loop, echo_app(), scenario)
