"""The server protocol over real sockets on 127.0.0.1, on Treadle's loop and the
stdlib loop: keep-alive, pipelining, 100-continue, chunked bodies both ways,
timeouts, limits, errors, back-pressure, upgrade and graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from tests.conftest import run
from treadle.http import (
    Body,
    HTTPError,
    HTTPServer,
    HTTPServerProtocol,
    Limits,
    Request,
    ResponseWriter,
    ServerConfig,
)

App = Callable[[Request, Body, ResponseWriter], Awaitable[None]]


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None


async def read_response(reader: asyncio.StreamReader, *, head: bool = False) -> Response:
    """Read one response: by Content-Length, chunked, or to EOF."""
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw[:-4].decode("latin-1").split("\r\n")
    _, status, reason = lines[0].split(" ", 2)
    headers = [tuple(line.split(": ", 1)) for line in lines[1:]]
    resp = Response(int(status), reason, headers, b"")  # type: ignore[arg-type]
    if head or resp.status < 200 or resp.status in (204, 304):
        return resp
    length = resp.header("Content-Length")
    if length is not None:
        resp.body = await reader.readexactly(int(length))
    elif resp.header("Transfer-Encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            if size == 0:
                break
            resp.body += await reader.readexactly(size)
            assert await reader.readexactly(2) == b"\r\n"
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, value = line[:-2].decode().split(": ", 1)
            resp.trailers.append((name, value))
    else:
        resp.body = await reader.read()
    return resp


@asynccontextmanager
async def serve(
    app: App, config: ServerConfig | None = None
) -> AsyncIterator[tuple[int, HTTPServer]]:
    """Serve `app` on 127.0.0.1 (a free port); shut down gracefully on the way out."""
    loop = asyncio.get_running_loop()
    http = HTTPServer(app, config or ServerConfig())
    server = await loop.create_server(http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, http
    finally:
        server.close()
        await http.shutdown(timeout=5)
        await server.wait_closed()


@asynccontextmanager
async def connect(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


async def echo(request: Request, body: Body, response: ResponseWriter) -> None:
    """Answers with the method, target and body it received."""
    data = await body.read()
    text = f"{request.method} {request.target} ".encode() + data
    await response.send(200, [("Content-Type", "text/plain")], text)
    assert response.body_bytes == (0 if request.method == "HEAD" else len(text))
    assert response.get_extra_info("peername")[0] == "127.0.0.1"


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server closed the connection (EOF or reset) within 10 s."""
    try:
        return await asyncio.wait_for(reader.read(), 10) == b""
    except ConnectionResetError:
        return True


class RawClient(asyncio.Protocol):
    """A client that keeps every byte the server sent, those that came before
    a reset too (a StreamReader raises the reset instead of giving what it
    holds; on Linux the reset reaches the client after the data sent before
    it), and how the connection ended: `ended` is None when the server
    closed, else the error (a reset)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.ended: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended.done():
            self.ended.set_result(exc)


GET = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"


async def all_closed(http: HTTPServer) -> bool:
    """Whether every connection of `http` is gone within 10 s (closing takes a
    loop iteration or two after the client sees EOF)."""
    for _ in range(1000):
        if http.connections == 0:
            return True
        await asyncio.sleep(0.01)
    return False


# -- basics -------------------------------------------------------------------------


def test_keep_alive(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        async with serve(echo) as (port, http), connect(port) as (reader, writer):
            for i in range(3):
                writer.write(b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n" % i)
                resp = await read_response(reader)
                assert resp.status == 200 and resp.body == b"GET /%d " % i
                assert resp.header("Connection") is None
                assert resp.header("Date") is not None
                assert resp.header("Content-Length") == str(len(resp.body))
            assert http.connections == 1

    run(loop, main())


def test_http_1_0_keep_alive_and_close(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        async with serve(echo) as (port, _), connect(port) as (reader, writer):
            writer.write(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            resp = await read_response(reader)
            assert resp.header("Connection") == "keep-alive" and resp.body == b"GET /a "
            writer.write(b"GET /b HTTP/1.0\r\n\r\n")
            resp = await read_response(reader)
            assert resp.header("Connection") == "close" and resp.body == b"GET /b "
            assert await closed_by_server(reader)

    run(loop, main())


def test_connection_close_is_honoured(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        async with serve(echo) as (port, _), connect(port) as (reader, writer):
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" + GET)
            resp = await read_response(reader)
            assert resp.status == 200 and resp.header("Connection") == "close"
            assert await closed_by_server(reader)  # the pipelined GET is not answered

    run(loop, main())


def test_application_asks_to_close(loop: asyncio.AbstractEventLoop) -> None:
    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        await response.send(200, [("Connection", "close")], b"bye")

    async def main() -> None:
        async with serve(app) as (port, _), connect(port) as (reader, writer):
            writer.write(GET)
            resp = await read_response(reader)
            assert resp.header("Connection") == "close" and resp.body == b"bye"
            assert await closed_by_server(reader)

    run(loop, main())


@pytest.mark.usefixtures("parser_impl")  # and without the C fast path
def test_hundred_pipelined_requests_answered_in_order(loop: asyncio.AbstractEventLoop) -> None:
    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        n = int(request.path[1:])
        if n % 3 == 0:
            await asyncio.sleep(0)  # some handlers suspend, some finish at once
        await response.send(200, [], request.path.encode() + b"|" + await body.read())

    async def main() -> None:
        config = ServerConfig(max_pipelined=8)  # the queue fills and drains many times
        async with serve(app, config) as (port, _), connect(port) as (reader, writer):
            batch = b""
            for i in range(100):
                if i % 2:
                    batch += b"POST /%d HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok" % i
                else:
                    batch += b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n" % i
            writer.write(batch)
            for i in range(100):
                resp = await read_response(reader)
                assert resp.body == b"/%d|" % i + (b"ok" if i % 2 else b"")

    run(loop, main())


def test_pipelined_requests_are_parsed_at_most_max_pipelined_ahead_cve_2026_54273(
    loop: asyncio.AbstractEventLoop,
) -> None:
    gate = asyncio.Event()  # holds the first handler
    conns: list[HTTPServerProtocol] = []
    queued: list[int] = []  # requests parsed ahead, seen by each handler once suspended

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        conn = response._conn
        if request.path == "/first":
            conns.append(conn)
            await gate.wait()
        await asyncio.sleep(0)  # the server parses ahead while the handler waits
        queued.append(len(conn._queue))
        await response.send(200, [], b"ok")

    async def main() -> None:
        config = ServerConfig(max_pipelined=4)
        async with serve(app, config) as (port, _), connect(port) as (reader, writer):
            writer.write(GET.replace(b"/x", b"/first") + GET * 500)
            # With the first handler held, the server parses ahead until its
            # queue is full, then stops reading: the queue is then exactly
            # max_pipelined long (counted here, at the pause, not after a
            # request has left the queue, so one too many shows).
            for _ in range(1000):
                if conns and conns[0]._reading_paused:
                    break
                await asyncio.sleep(0.01)
            conn = conns[0]
            assert conn._reading_paused, "reading never paused"
            assert len(conn._queue) == 4
            for _ in range(10):  # and it stays so
                await asyncio.sleep(0)
            assert conn._reading_paused and len(conn._queue) == 4
            gate.set()
            for _ in range(501):
                assert (await read_response(reader)).body == b"ok"
        assert len(queued) == 501 and max(queued) == 4

    run(loop, main())


def test_head_and_bodiless_statuses(loop: asyncio.AbstractEventLoop) -> None:
    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        status = int(request.path[1:])
        await response.send(status, [], b"" if status in (204, 304) else b"twelve bytes")

    async def main() -> None:
        async with serve(app) as (port, _), connect(port) as (reader, writer):
            writer.write(b"HEAD /200 HTTP/1.1\r\nHost: t\r\n\r\n")
            resp = await read_response(reader, head=True)
            assert resp.status == 200 and resp.header("Content-Length") == "12"
            for status in (204, 304):
                writer.write(b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n" % status)
                resp = await read_response(reader)
                assert resp.status == status and resp.header("Content-Length") is None
            writer.write(GET.replace(b"/x", b"/200"))
            resp = await read_response(reader)  # in step: no stray body bytes before
            assert resp.body == b"twelve bytes"

    run(loop, main())


def test_interim_response_before_the_final_one(loop: asyncio.AbstractEventLoop) -> None:
    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        await response.send_interim(103, [("Link", "</s.css>; rel=preload")])
        await response.send(200, [], b"final")
        with pytest.raises(RuntimeError):
            await response.send_interim(103)

    async def main() -> None:
        async with serve(app) as (port, _), connect(port) as (reader, writer):
            writer.write(GET)
            hints = await read_response(reader)
            assert hints.status == 103 and hints.header("Link") == "</s.css>; rel=preload"
            assert (await read_response(reader)).body == b"final"
            writer.write(b"GET / HTTP/1.0\r\n\r\n")  # no 1xx for an HTTP/1.0 client
            resp = await read_response(reader)
            assert resp.status == 200 and resp.body == b"final"

    run(loop, main())


def test_current_task_and_timeout_work_in_the_first_step(
    loop: asyncio.AbstractEventLoop,
) -> None:
    seen: list[object] = []

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        task = asyncio.current_task()
        seen.append(task)
        async with asyncio.timeout(5):
            assert asyncio.current_task() is task
            await response.send(200, [], b"ok")
        await asyncio.sleep(0)
        assert asyncio.current_task() is task

    async def main() -> None:
        async with serve(app) as (port, _), connect(port) as (reader, writer):
            writer.write(GET + GET)
            assert (await read_response(reader)).body == b"ok"
            assert (await read_response(reader)).body == b"ok"
        assert len(seen) == 2 and all(isinstance(t, asyncio.Task) for t in seen)
        if sys.version_info >= (3, 12):
            assert seen[0] is not seen[1]  # an eager Task per request
        else:
            assert seen[0] is seen[1]  # the connection's host task (treadle/http/eager.py)

    run(loop, main())


# -- bodies ---------------------------------------------------------------------------


def test_expect_100_continue(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        async with serve(echo) as (port, _), connect(port) as (reader, writer):
            writer.write(
                b"POST /up HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
            )
            interim = await read_response(reader)
            assert (interim.status, interim.reason) == (100, "Continue")
            writer.write(b"hello")
            resp = await read_response(reader)
            assert resp.status == 200 and resp.body == b"POST /up hello"

    run(loop, main())


def test_expect_100_continue_refused_without_reading(loop: asyncio.AbstractEventLoop) -> None:
    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        await response.send(401, [], b"no")  # never reads: no 100 is sent

    async def main() -> None:
        async with serve(app) as (port, _), connect(port) as (reader, writer):
            writer.write(
                b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
            )
            resp = await read_response(reader)
            assert resp.status == 401 and resp.header("Connection") is None
            # The client never sent its body and the server cannot know whether it
            # will: the connection is closed rather than left out of step.
            assert await closed_by_server(reader)

    run(loop, main())


def test_no_100_continue_inside_a_response_already_started(
    loop: asyncio.AbstractEventLoop,
) -> None:
    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        await response.start(200, [("Content-Type", "text/plain")])
        await response.write(b"before|")
        data = await body.read()  # the first read, after the head went out
        await response.write(data)
        await response.write_eof()

    async def main() -> None:
        async with serve(app) as (port, _), connect(port) as (reader, writer):
            writer.write(
                b"POST /up HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
            )
            # The final response's head, not a 100, is what the client waits
            # for; it answers (RFC 9110 10.1.1) by sending its body anyway.
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            raw = head + await reader.readuntil(b"before|\r\n")
            writer.write(b"hello")
            raw += await reader.readuntil(b"\r\n0\r\n\r\n")
            # A 100 written once the body was first read would sit in the
            # middle of the chunked body: the client would take it as body
            # bytes or as a broken chunk.
            assert b"100 Continue" not in raw
            whole = asyncio.StreamReader()
            whole.feed_data(raw)
            whole.feed_eof()
            resp = await read_response(whole)
            assert resp.status == 200 and resp.body == b"before|hello"
            assert await whole.read() == b""
            writer.write(GET)  # still in step
            assert (await read_response(reader)).status == 200

    run(loop, main())


@pytest.mark.usefixtures("parser_impl")  # and without the C fast path
def test_chunked_request_and_response(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[object] = []

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        seen.append(request.chunked)
        await response.start(200, [("Content-Type", "application/octet-stream")])
        async for piece in body.iter_chunked(4):
            assert len(piece) <= 4
            await response.write(piece.upper())
        await response.write_eof()
        seen.append(body.trailers.get("x-check"))

    async def main() -> None:
        async with serve(app) as (port, _), connect(port) as (reader, writer):
            writer.write(
                b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;ext=1\r\nhello\r\n"
            )
            await asyncio.sleep(0.01)
            writer.write(b"6\r\n world\r\n0\r\nX-Check: 1\r\n\r\n")
            resp = await read_response(reader)
            assert resp.header("Transfer-Encoding") == "chunked"
            assert resp.body == b"HELLO WORLD"
        assert seen == [True, "1"]

    run(loop, main())


def test_streaming_with_content_length_and_http_1_0(loop: asyncio.AbstractEventLoop) -> None:
    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        if request.path == "/known":
            await response.start(200, [], content_length=6)
        else:
            await response.start(200, [])
        await response.write(b"abc")
        await response.write_eof(b"def")

    async def main() -> None:
        async with serve(app) as (port, _), connect(port) as (reader, writer):
            writer.write(b"GET /known HTTP/1.1\r\nHost: t\r\n\r\n")
            resp = await read_response(reader)
            assert resp.header("Content-Length") == "6" and resp.body == b"abcdef"
        async with serve(app) as (port, _), connect(port) as (reader, writer):
            writer.write(b"GET /unknown HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            resp = await read_response(reader)  # no chunked for 1.0: delimited by close
            assert resp.header("Transfer-Encoding") is None
            assert resp.header("Connection") == "close" and resp.body == b"abcdef"

    run(loop, main())


def test_sendfile_under_content_length(
    loop: asyncio.AbstractEventLoop, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 1000)
    sent: list[int] = []

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        with path.open("rb") as f:
            await response.start(200, [], content_length=1000 + 256)
            await response.write(b"<" * 1000)
            sent.append(await response.sendfile(f, 256, 256))
            await response.write_eof()
        sent.append(response.body_bytes)

    async def main() -> None:
        async with serve(app) as (port, _), connect(port) as (reader, writer):
            for _ in range(2):  # the connection carries on after it
                writer.write(GET)
                resp = await read_response(reader)
                assert resp.body == b"<" * 1000 + bytes(range(256))
        assert sent == [256, 1256, 256, 1256]

    run(loop, main())


def test_oversized_body_refused_with_413_without_reading_it(
    loop: asyncio.AbstractEventLoop,
) -> None:
    called: list[Request] = []

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        called.append(request)
        await response.send(200, [], b"no")

    async def main() -> None:
        config = ServerConfig(limits=Limits(max_body_size=1000))
        async with serve(app, config) as (port, _), connect(port) as (reader, writer):
            writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n")
            writer.write(b"x" * 10000)  # a little of the 100 MB: the rest never comes
            resp = await read_response(reader)
            assert resp.status == 413 and resp.header("Connection") == "close"
            assert await closed_by_server(reader)
        assert called == []

    run(loop, main())


def test_oversized_chunked_body_gives_413_to_the_reader(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        config = ServerConfig(limits=Limits(max_body_size=10))
        async with serve(echo, config) as (port, _), connect(port) as (reader, writer):
            writer.write(
                b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"
            )
            resp = await read_response(reader)
            assert resp.status == 413 and resp.header("Connection") == "close"
            assert await closed_by_server(reader)

    run(loop, main())


@pytest.mark.usefixtures("parser_impl")  # and without the C fast path
def test_large_body_streams_through_back_pressure(loop: asyncio.AbstractEventLoop) -> None:
    total = 4 * 1024 * 1024
    max_buffered: list[int] = []

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        n = 0
        while piece := await body.readany():
            max_buffered.append(body.buffered)
            n += len(piece)
            await asyncio.sleep(0)  # a handler slower than the client
        await response.send(200, [], str(n).encode())

    async def main() -> None:
        config = ServerConfig(limits=Limits(max_body_size=total), body_buffer=64 * 1024)
        async with serve(app, config) as (port, _), connect(port) as (reader, writer):
            writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % total)
            chunk = b"z" * 65536
            for _ in range(total // len(chunk)):
                writer.write(chunk)
                await writer.drain()
            resp = await read_response(reader)
            assert resp.body == str(total).encode()

    run(loop, main())


def test_a_handler_that_drains_the_body_at_once_is_not_stalled(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # The body arrives faster than body_buffer allows, and the handler (run
    # eagerly on 3.12+) takes it all in its first step: reading must resume.
    async def main() -> None:
        config = ServerConfig(body_buffer=1024, body_timeout=5)
        async with serve(echo, config) as (port, _), connect(port) as (reader, writer):
            body = bytes(range(256)) * 400
            writer.write(b"POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
            writer.write(body)
            resp = await read_response(reader)
            assert resp.status == 200 and resp.body == b"POST /b " + body

    run(loop, main())


def test_response_back_pressure_waits_for_the_client(loop: asyncio.AbstractEventLoop) -> None:
    sizes: list[int] = []

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        await response.start(200, [], content_length=64 * 256 * 1024)
        transport = response._conn._transport
        assert transport is not None
        transport.set_write_buffer_limits(high=256 * 1024)
        for _ in range(64):
            await response.write(b"y" * 256 * 1024)
            sizes.append(transport.get_write_buffer_size())
        await response.write_eof()

    async def main() -> None:
        async with serve(app) as (port, _), connect(port) as (reader, writer):
            writer.write(GET)
            await asyncio.sleep(0.05)  # let the server fill the socket buffers
            resp = await read_response(reader)
            assert len(resp.body) == 64 * 256 * 1024
        # Every write came back with the buffer at most one piece over the mark:
        # without drain() it would have grown to the whole 16 MiB.
        assert max(sizes) <= 2 * 256 * 1024

    run(loop, main())


def test_reads_that_start_on_an_idle_connection(loop: asyncio.AbstractEventLoop) -> None:
    """Each write below reaches an idle connection as its own read: a request
    followed by half the next head, the rest of that head, a request with its
    body, a request the client wants closed. Every one is answered, in order."""

    async def main() -> None:
        async with serve(echo) as (port, _), connect(port) as (reader, writer):
            writer.write(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHo")
            assert (await read_response(reader)).body == b"GET /a "
            await asyncio.sleep(0.05)
            writer.write(b"st: t\r\n\r\n")
            assert (await read_response(reader)).body == b"GET /b "
            await asyncio.sleep(0.05)
            writer.write(b"POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz")
            assert (await read_response(reader)).body == b"POST /c xyz"
            await asyncio.sleep(0.05)
            writer.write(b"GET /d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            resp = await read_response(reader)
            assert resp.body == b"GET /d " and resp.header("Connection") == "close"
            assert await closed_by_server(reader)

    run(loop, main())


@pytest.mark.parametrize("cancel", [False, True])
def test_handler_cancellation_when_the_client_goes(
    loop: asyncio.AbstractEventLoop, cancel: bool
) -> None:
    """With `handler_cancellation`, a handler waiting when its client leaves is
    cancelled there and the connection closes; without it (the default) the
    handler runs on to its end (its late answer is lost, or its write raises
    ConnectionResetError), then the connection closes."""
    waiting = asyncio.Event()
    release = asyncio.Event()
    outcome: asyncio.Future[str] = loop.create_future()

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        waiting.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            outcome.set_result("cancelled")
            raise
        try:
            await response.send(200, [], b"late")
        except ConnectionResetError:
            pass
        outcome.set_result("ran to its end")

    async def main() -> None:
        async with serve(app, ServerConfig(handler_cancellation=cancel)) as (port, http):
            async with connect(port) as (_, writer):
                writer.write(GET)
                await waiting.wait()
            if cancel:
                assert await asyncio.wait_for(outcome, 10) == "cancelled"
            else:
                await asyncio.sleep(0.05)  # the server has seen the client go
                assert not outcome.done() and http.connections == 1
                release.set()
                assert await asyncio.wait_for(outcome, 10) == "ran to its end"
            assert await all_closed(http)

    run(loop, main())


def streaming_app(outcome: asyncio.Future[str], file: pathlib.Path | None = None) -> App:
    """An app sending 64 MiB (by write(), or by sendfile() from `file`);
    `outcome` says how its handler ended."""

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        try:
            await response.start(200, [], content_length=64 * 1024 * 1024)
            if file is not None:
                with file.open("rb") as f:
                    await response.sendfile(f, 0, 64 * 1024 * 1024)
            else:
                for _ in range(64):
                    await response.write(b"x" * (1024 * 1024))
            await response.write_eof()
            outcome.set_result("finished")
        except asyncio.CancelledError:
            outcome.set_result("cancelled")
            raise
        except ConnectionResetError as exc:
            outcome.set_result(f"refused: {exc}")
            raise

    return app


async def non_reading_client(port: int) -> socket.socket:
    """A connection that sends one GET and never reads (a small receive buffer,
    so the server's writes back up quickly)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, GET)
    return sock


def test_handler_cancellation_reaches_a_handler_stuck_in_drain(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """The client stops reading, then ends its side while the handler waits in
    drain(): the close cannot flush, so close_timeout aborts the connection
    and the handler is cancelled; no descriptor is left behind."""
    outcome: asyncio.Future[str] = loop.create_future()

    async def main() -> None:
        config = ServerConfig(handler_cancellation=True, close_timeout=0.2)
        async with serve(streaming_app(outcome), config) as (port, http):
            sock = await non_reading_client(port)
            try:
                for _ in range(1000):  # until the handler waits in drain()
                    conns = list(http._connections)
                    if conns and conns[0]._writing_paused:
                        break
                    await asyncio.sleep(0.01)
                sock.shutdown(socket.SHUT_WR)
                assert await asyncio.wait_for(outcome, 10) == "cancelled"
                assert await all_closed(http)
            finally:
                sock.close()

    run(loop, main())


@pytest.mark.parametrize("how", ["write", "sendfile"])
def test_a_client_that_never_reads_is_cut_off_by_the_send_timeout(
    loop: asyncio.AbstractEventLoop, tmp_path: pathlib.Path, how: str
) -> None:
    """A handler sending to a client that never reads waits for send_timeout
    at most (write() in drain(); sendfile() per piece it sends): then the
    connection is aborted and the send raises ConnectionResetError, so
    neither the handler nor the descriptor (nor the file) is held."""
    outcome: asyncio.Future[str] = loop.create_future()
    path = tmp_path / "big.bin"
    with path.open("wb") as f:
        f.truncate(64 * 1024 * 1024)
    app = streaming_app(outcome, path if how == "sendfile" else None)

    async def main() -> None:
        async with serve(app, ServerConfig(send_timeout=0.2)) as (port, http):
            sock = await non_reading_client(port)
            try:
                result = await asyncio.wait_for(outcome, 10)
                assert result.startswith("refused: ")
                assert await all_closed(http)
            finally:
                sock.close()

    run(loop, main())


def test_send_timeout_holds_for_two_writers_and_beside_a_body_read(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """The send deadline belongs to the pause, not to one writer, and does not
    share the connection's timer with the body deadline: with two tasks
    writing and a third waiting for body bytes that never come, a client
    that stops reading is cut off at send_timeout, and every one of them
    gets an error instead of waiting forever."""
    outcomes: list[str] = []
    done = asyncio.Event()

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        async def writer(tag: bytes) -> None:
            for _ in range(64):
                await response.write(tag * (1024 * 1024))

        async def reader() -> None:
            await body.read()

        await response.start(200, [])
        results = await asyncio.gather(writer(b"a"), writer(b"b"), reader(), return_exceptions=True)
        outcomes.extend(type(r).__name__ for r in results)
        done.set()

    async def main() -> None:
        config = ServerConfig(send_timeout=0.3, body_timeout=60)
        async with serve(app, config) as (port, http):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, ("127.0.0.1", port))
                # A body is announced and never sent; the response is never read.
                await loop.sock_sendall(
                    sock, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"
                )
                await asyncio.wait_for(done.wait(), 10)
                assert outcomes[:2] == ["ConnectionResetError", "ConnectionResetError"]
                assert outcomes[2] == "ConnectionResetError"
                assert await all_closed(http)
            finally:
                sock.close()

    run(loop, main())


def test_shutdown_during_sendfile_leaves_the_loop_serving(
    loop: asyncio.AbstractEventLoop, tmp_path: pathlib.Path
) -> None:
    """A graceful shutdown that has to cut off a handler inside sendfile()
    cancels it before aborting the connection, so the loop's registration of
    the socket goes with it: a new connection (often given the same
    descriptor) is served afterwards, with no error reported."""
    path = tmp_path / "big.bin"
    with path.open("wb") as f:
        f.truncate(64 * 1024 * 1024)
    outcome: asyncio.Future[str] = loop.create_future()

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        if request.target != "/big":
            await response.send(200, [], b"fine")
            return
        app_outcome = streaming_app(outcome, path)
        await app_outcome(request, body, response)

    async def main() -> None:
        http = HTTPServer(app, ServerConfig())
        server = await loop.create_server(http, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", port))
            await loop.sock_sendall(sock, b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            await asyncio.sleep(0.2)  # the handler is inside sendfile, blocked
            await asyncio.wait_for(http.shutdown(timeout=0.2), 10)
            assert await asyncio.wait_for(outcome, 10) == "cancelled"
            sock.close()
            async with connect(port) as (reader, writer):
                writer.write(GET)
                resp = await asyncio.wait_for(read_response(reader), 10)
                assert resp.status == 200 and resp.body == b"fine"
        finally:
            server.close()
            await server.wait_closed()

    run(loop, main())


def test_declined_upgrade_whose_body_comes_later(loop: asyncio.AbstractEventLoop) -> None:
    """An upgrade request with a body, declined before the body arrived: once
    the body ends, the next pipelined request is still answered."""

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        await response.send(200, [], f"{request.method} {request.target}".encode())

    async def main() -> None:
        async with serve(app) as (port, _), connect(port) as (reader, writer):
            writer.write(
                b"POST /u HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: x\r\n"
                b"Content-Length: 5\r\n\r\n"
            )
            assert (await read_response(reader)).body == b"POST /u"
            writer.write(b"hello" + GET)
            resp = await asyncio.wait_for(read_response(reader), 10)
            assert resp.body == b"GET /x"

    run(loop, main())


def test_send_nowait_says_when_to_drain(loop: asyncio.AbstractEventLoop) -> None:
    """`send_nowait()` writes the whole response at once and returns whether the
    transport paused writing: False for a small answer, True for one larger
    than the socket buffers take (then `drain()` waits for the client)."""
    said: list[bool] = []
    big = b"z" * (16 * 1024 * 1024)

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        if request.target == "/big":
            transport = response._conn._transport
            assert transport is not None
            transport.set_write_buffer_limits(high=64 * 1024)
            said.append(response.send_nowait(200, [], big))
            await response.drain()
        else:
            said.append(response.send_nowait(200, [("Content-Type", "text/plain")], b"small"))
        assert response.finished

    async def main() -> None:
        async with serve(app) as (port, _), connect(port) as (reader, writer):
            writer.write(GET)
            resp = await read_response(reader)
            assert resp.body == b"small" and resp.header("Content-Length") == "5"
            writer.write(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            await asyncio.sleep(0.05)  # the server's send fills the socket buffers
            resp = await read_response(reader)
            assert resp.status == 200 and resp.body == big
        assert said == [False, True]

    run(loop, main())


# -- time -------------------------------------------------------------------------------


def test_slow_loris_is_cut_off_by_the_header_timeout(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        config = ServerConfig(header_timeout=0.3)
        async with serve(echo, config) as (port, _):
            # A RawClient: a byte sent as the server closes comes to a closed
            # socket, which resets the connection, and a StreamReader would
            # then lose the 408 it had received.
            transport, client = await asyncio.get_running_loop().create_connection(
                RawClient, "127.0.0.1", port
            )
            try:
                head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 500
                sent = 0
                # A byte every 20 ms: 10 s in all.
                while sent < len(head) and not client.ended.done():
                    transport.write(head[sent : sent + 1])
                    sent += 1
                    await asyncio.sleep(0.02)
                await asyncio.wait_for(asyncio.shield(client.ended), 10)
            finally:
                transport.close()
            assert sent < len(head)  # cut off long before the head could complete
            assert client.data.startswith(b"HTTP/1.1 408 ")
            assert b"Connection: close" in client.data

    run(loop, main())


def test_silent_connection_is_closed_by_the_header_timeout(
    loop: asyncio.AbstractEventLoop,
) -> None:
    async def main() -> None:
        config = ServerConfig(header_timeout=0.2)
        async with serve(echo, config) as (port, _), connect(port) as (reader, _writer):
            assert await closed_by_server(reader)

    run(loop, main())


def test_idle_keep_alive_timeout(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        config = ServerConfig(keepalive_timeout=0.2)
        async with serve(echo, config) as (port, _), connect(port) as (reader, writer):
            writer.write(GET)
            assert (await read_response(reader)).status == 200
            assert await closed_by_server(reader)

    run(loop, main())


def test_body_read_timeout(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        config = ServerConfig(body_timeout=0.2)
        async with serve(echo, config) as (port, _), connect(port) as (reader, writer):
            writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
            resp = await read_response(reader)
            assert resp.status == 408 and resp.header("Connection") == "close"
            assert await closed_by_server(reader)

    run(loop, main())


def test_a_client_that_stops_reading_cannot_hold_the_connection(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        await response.start(200, [])
        transport = response._conn._transport
        assert transport is not None
        transport.write(b"x" * (32 * 1024 * 1024))  # far more than the socket takes
        raise RuntimeError("give up mid-response")  # the server closes the connection

    async def main() -> None:
        config = ServerConfig(close_timeout=0.2)
        async with serve(app, config) as (port, http), connect(port) as (_, writer):
            writer.write(GET)  # and never read the answer
            await asyncio.sleep(0.05)
            assert await all_closed(http)  # aborted, not waiting on the client

    with caplog.at_level(logging.CRITICAL, logger="treadle.http"):
        run(loop, main())


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400),
        (b"GET / HTTP/1.1\nHost: t\n\n", 400),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # a TLS hello
    ],
    ids=["space-before-colon", "bare-lf", "http2", "long-line", "long-field", "gzip", "tls"],
)
@pytest.mark.usefixtures("parser_impl")
def test_bad_requests_get_a_clean_answer_and_close(
    loop: asyncio.AbstractEventLoop, request_bytes: bytes, status: int
) -> None:
    async def main() -> None:
        async with serve(echo) as (port, _), connect(port) as (reader, writer):
            writer.write(GET + request_bytes + GET)
            first = await read_response(reader)
            assert first.status == 200  # the good request before it is answered
            resp = await read_response(reader)
            assert resp.status == status and resp.header("Connection") == "close"
            assert await closed_by_server(reader)  # and nothing after it

    run(loop, main())


def test_handler_exception_gives_500_and_others_are_served(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        if request.path == "/boom":
            raise RuntimeError("secret detail")
        await response.send(200, [], b"fine")

    async def main() -> None:
        async with serve(app) as (port, _):
            async with connect(port) as (reader, writer):
                writer.write(GET.replace(b"/x", b"/boom"))
                resp = await read_response(reader)
                assert resp.status == 500 and b"secret" not in resp.body
                assert resp.header("Connection") == "close"
                assert await closed_by_server(reader)
            async with connect(port) as (reader, writer):
                writer.write(GET)
                assert (await read_response(reader)).body == b"fine"

    with caplog.at_level(logging.ERROR, logger="treadle.http"):
        run(loop, main())
    logged = [r for r in caplog.records if r.exc_info and "secret detail" in str(r.exc_info[1])]
    assert logged  # the traceback went to the log


@pytest.mark.parametrize(
    "misuse",
    ["crlf-in-header", "write-after-eof", "no-response", "too-many-bytes", "body-on-204"],
)
def test_api_misuse_raises_and_the_client_gets_500(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture, misuse: str
) -> None:
    errors: list[BaseException] = []

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        try:
            if misuse == "crlf-in-header":
                await response.send(200, [("X-Evil", "a\r\nSet-Cookie: stolen=1")], b"")
            elif misuse == "write-after-eof":
                await response.start(200, [])
                await response.write_eof(b"done")
                await response.write(b"more")
            elif misuse == "too-many-bytes":
                await response.start(200, [], content_length=2)
                await response.write(b"abc")
            elif misuse == "body-on-204":
                await response.send(204, [], b"body")
        except (ValueError, RuntimeError) as exc:
            errors.append(exc)
            raise

    async def main() -> None:
        async with serve(app) as (port, _), connect(port) as (reader, writer):
            writer.write(GET)
            data = await asyncio.wait_for(reader.read(), 10)
            assert b"stolen" not in data
            if misuse in ("crlf-in-header", "no-response", "body-on-204"):
                assert data.startswith(b"HTTP/1.1 500 ")

    with caplog.at_level(logging.CRITICAL, logger="treadle.http"):
        run(loop, main())
    if misuse != "no-response":
        assert len(errors) == 1
        assert any(word in str(errors[0]) for word in ("X-Evil", "after", "more body", "204"))


def test_client_disconnects_mid_request(loop: asyncio.AbstractEventLoop) -> None:
    outcome: asyncio.Future[BaseException] = loop.create_future()

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        try:
            await body.read()
        except BaseException as exc:
            outcome.set_result(exc)
            raise

    async def main() -> None:
        async with serve(app) as (port, http):
            async with connect(port) as (_, writer):
                writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
                await writer.drain()
                await asyncio.sleep(0.05)
            exc = await asyncio.wait_for(outcome, 10)
            assert isinstance(exc, (ConnectionResetError, HTTPError))
            assert await all_closed(http)

    run(loop, main())


@pytest.mark.usefixtures("parser_impl")  # and without the C fast path
def test_garbage_never_crashes_the_server(loop: asyncio.AbstractEventLoop) -> None:
    junk = [
        b"\x00" * 100,
        b"\r\n" * 5000,
        b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200,
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nab",  # then EOF
        bytes(range(256)) * 4,
    ]

    async def main() -> None:
        async with serve(echo, ServerConfig(header_timeout=2)) as (port, http):
            for data in junk:
                async with connect(port) as (reader, writer):
                    writer.write(data)
                    writer.write_eof()
                    await asyncio.wait_for(reader.read(), 10)
            async with connect(port) as (reader, writer):
                writer.write(GET)
                assert (await read_response(reader)).status == 200
            assert await all_closed(http)

    run(loop, main())


def test_requests_then_half_close_are_all_answered(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        async with serve(echo) as (port, _), connect(port) as (reader, writer):
            writer.write(GET * 5)
            writer.write_eof()
            for _ in range(5):
                assert (await read_response(reader)).status == 200
            assert await closed_by_server(reader)

    run(loop, main())


# -- upgrade and shutdown ----------------------------------------------------------------


class Echo(asyncio.Protocol):
    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data[::-1])


def test_upgrade_hands_the_connection_over(loop: asyncio.AbstractEventLoop) -> None:
    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        if not request.upgrade:
            await response.send(426, [], b"upgrade required")
            return
        await response.send(101, [("Connection", "Upgrade"), ("Upgrade", "reverse")])
        transport, rest = response.detach()
        protocol = Echo(transport)
        transport.set_protocol(protocol)
        if rest:
            protocol.data_received(rest)

    async def main() -> None:
        async with serve(app) as (port, _), connect(port) as (reader, writer):
            writer.write(
                b"GET / HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: reverse\r\n\r\nabc"
            )
            resp = await read_response(reader)
            assert resp.status == 101 and resp.header("Upgrade") == "reverse"
            assert await reader.readexactly(3) == b"cba"
            writer.write(b"hello")
            assert await reader.readexactly(5) == b"olleh"

    run(loop, main())


def test_declined_upgrade_carries_on_with_http(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        async with serve(echo) as (port, _), connect(port) as (reader, writer):
            writer.write(
                b"GET /u HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n" + GET
            )
            assert (await read_response(reader)).body == b"GET /u "
            assert (await read_response(reader)).body == b"GET /x "

    run(loop, main())


class Pipe(asyncio.Protocol):
    """One direction of a tunnel: what arrives is written to `peer`."""

    def __init__(self, peer: asyncio.Transport) -> None:
        self.peer = peer

    def data_received(self, data: bytes) -> None:
        self.peer.write(data)

    def eof_received(self) -> bool:
        self.peer.close()
        return False


def test_connect_opens_a_tunnel(loop: asyncio.AbstractEventLoop) -> None:
    """A CONNECT answered with 200 hands the connection to a tunnel: the bytes
    the client sent after the head and everything after reach the upstream
    (a real echo server here) and come back."""

    async def upstream_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data.upper())
        writer.close()

    async def main() -> None:
        upstream = await asyncio.start_server(upstream_echo, "127.0.0.1", 0)
        upstream_port = upstream.sockets[0].getsockname()[1]

        async def proxy(request: Request, body: Body, response: ResponseWriter) -> None:
            if request.method != "CONNECT" or request.target != f"127.0.0.1:{upstream_port}":
                await response.send(403, [], b"no")
                return
            up_transport, _ = await loop.create_connection(
                asyncio.Protocol, "127.0.0.1", upstream_port
            )
            await response.send(200)
            client_transport, rest = response.detach()
            up_transport.set_protocol(Pipe(client_transport))
            client_transport.set_protocol(Pipe(up_transport))
            if rest:
                up_transport.write(rest)

        try:
            async with serve(proxy) as (port, http), connect(port) as (reader, writer):
                target = f"127.0.0.1:{upstream_port}".encode()
                writer.write(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\nearly " % (target, target))
                resp = await read_response(reader, head=True)
                assert resp.status == 200 and resp.header("Content-Length") is None
                assert await reader.readexactly(6) == b"EARLY "
                sent = b"tunnelled GET / HTTP/1.1\r\n\r\n"
                writer.write(sent)
                assert await reader.readexactly(len(sent)) == sent.upper()
                assert http.connections == 0  # detached: no longer an HTTP connection
        finally:
            upstream.close()
            await upstream.wait_closed()

    run(loop, main())


def test_declined_connect_carries_on_with_http(loop: asyncio.AbstractEventLoop) -> None:
    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        if request.method == "CONNECT":
            await response.send(403, [], b"no tunnels")
        else:
            await echo(request, body, response)

    async def main() -> None:
        async with serve(app) as (port, _), connect(port) as (reader, writer):
            writer.write(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n" + GET)
            resp = await read_response(reader)
            assert resp.status == 403 and resp.body == b"no tunnels"
            assert (await read_response(reader)).body == b"GET /x "

    run(loop, main())


@pytest.mark.parametrize("how", ["send-with-body", "start"])
def test_a_2xx_to_connect_cannot_carry_a_body(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """RFC 9110 9.3.6: the tunnel starts right after a 2xx head to CONNECT, so
    neither a body nor a streamed response can follow it; the handler's
    misuse raises (naming CONNECT) and the client gets a 500."""
    errors: list[ValueError] = []

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        try:
            if how == "start":
                await response.start(200, [])
            else:
                await response.send(200, [], b"not a tunnel")
        except ValueError as exc:
            errors.append(exc)
            raise

    async def main() -> None:
        async with serve(app) as (port, _), connect(port) as (reader, writer):
            writer.write(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), 10)
            assert data.startswith(b"HTTP/1.1 500 ")

    with caplog.at_level(logging.CRITICAL, logger="treadle.http"):
        run(loop, main())
    assert len(errors) == 1 and "CONNECT" in str(errors[0])


def test_graceful_shutdown(loop: asyncio.AbstractEventLoop) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        if request.path == "/slow":
            started.set()
            await release.wait()
        await response.send(200, [], b"done")

    async def main() -> None:
        http = HTTPServer(app)
        server = await loop.create_server(http, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with connect(port) as (idle_r, idle_w), connect(port) as (busy_r, busy_w):
            idle_w.write(GET)
            assert (await read_response(idle_r)).status == 200  # now idle, kept alive
            busy_w.write(GET.replace(b"/x", b"/slow"))
            await started.wait()
            server.close()
            shutdown = asyncio.ensure_future(http.shutdown(timeout=10))
            assert await closed_by_server(idle_r)  # the idle one goes at once
            assert not shutdown.done()
            release.set()
            resp = await read_response(busy_r)  # the in-flight one finishes
            assert resp.body == b"done" and resp.header("Connection") == "close"
            assert await closed_by_server(busy_r)
            await shutdown
            assert http.connections == 0
        await server.wait_closed()

    run(loop, main())


def test_shutdown_aborts_what_outlives_the_timeout(loop: asyncio.AbstractEventLoop) -> None:
    cancelled: list[bool] = []

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)  # the aborted connection's handler is cancelled
            raise

    async def main() -> None:
        http = HTTPServer(app)
        server = await loop.create_server(http, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with connect(port) as (reader, writer):
            writer.write(GET)
            await asyncio.sleep(0.05)
            server.close()
            await http.shutdown(timeout=0.1)
            assert await closed_by_server(reader)
        await server.wait_closed()
        await asyncio.sleep(0)

    run(loop, main())
    assert cancelled == [True]


def test_runs_with_a_plain_socket_client(loop: asyncio.AbstractEventLoop) -> None:
    # A blocking client in a thread: no asyncio on the client side at all.
    def client(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /plain HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            return data

    async def main() -> None:
        async with serve(echo) as (port, _):
            data = await loop.run_in_executor(None, client, port)
            assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"GET /plain ")

    run(loop, main())


def test_runs_on_uvloop() -> None:
    # The server knows only asyncio's public Protocol/Transport API; uvloop's
    # transports implement it without subclassing asyncio.Transport.
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        async with serve(echo) as (port, _), connect(port) as (reader, writer):
            writer.write(GET * 3 + b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
            for _ in range(3):
                assert (await read_response(reader)).body == b"GET /x "
            assert (await read_response(reader)).body == b"POST /p hi"

    the_loop = uvloop.new_event_loop()
    try:
        run(the_loop, main())
    finally:
        the_loop.close()


@pytest.mark.parametrize(
    "setting",
    [
        "header_timeout",
        "keepalive_timeout",
        "body_timeout",
        "max_pipelined",
        "body_buffer",
        "close_timeout",
        "send_timeout",
    ],
)
def test_server_config_refuses_settings_that_are_not_positive(setting: str) -> None:
    for bad in (0, -1):
        with pytest.raises(ValueError, match=f"{setting} must be positive"):
            ServerConfig(**{setting: bad})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="control character"):
        ServerConfig(server_header="treadle\r\nSet-Cookie: x=1")


def test_trailers_go_only_to_a_client_that_said_te_trailers(
    loop: asyncio.AbstractEventLoop,
) -> None:
    async def good(request: Request, body: Body, response: ResponseWriter) -> None:
        await response.start(200, [("Content-Type", "text/plain")])
        await response.write(b"data")
        await response.write_eof(trailers=[("X-Checksum", "abc")])

    async def main() -> None:
        async with serve(good) as (port, _):
            for te, expected in (
                (b"TE: trailers\r\n", b"4\r\ndata\r\n0\r\nX-Checksum: abc\r\n\r\n"),
                (b"TE: gzip, trailers\r\n", b"4\r\ndata\r\n0\r\nX-Checksum: abc\r\n\r\n"),
                (b"", b"4\r\ndata\r\n0\r\n\r\n"),
                (b"TE: gzip\r\n", b"4\r\ndata\r\n0\r\n\r\n"),
            ):
                async with connect(port) as (reader, writer):
                    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n" + te + b"\r\n")
                    await reader.readuntil(b"\r\n\r\n")
                    assert await reader.readexactly(len(expected)) == expected, te

    run(loop, main())
