"""WSGI (PEP 3333) on Treadle's server, over real sockets, on Treadle's loop and
the stdlib loop: the environ, `wsgi.input` streaming with back-pressure,
`start_response` with `exc_info`, streamed iterables and `close()`,
`wsgi.file_wrapper`, the thread pool's bound, and a slow app that does not
hold up the loop."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from treadle.http.runner import TCPSite
from treadle.testing import read_response
from treadle.wsgi import WSGIRunner

from ..conftest import run

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


async def serve(app: Any, **kwargs: Any) -> tuple[WSGIRunner, int]:
    runner = WSGIRunner(app, **kwargs)
    await runner.setup()
    await TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


def scenario(loop: asyncio.AbstractEventLoop, app: Any, body: Any, **kwargs: Any) -> Any:
    async def main() -> Any:
        runner, port = await serve(app, **kwargs)
        try:
            return await body(port)
        finally:
            await runner.cleanup()

    return run(loop, main(), timeout=60)


async def exchange(port: int, raw: bytes, method: str = "GET") -> Any:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        return await read_response(reader, method)
    finally:
        writer.close()


def test_the_environ(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[Environ] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(dict(environ))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["wsgi.input"].read()]

    async def body(port: int) -> None:
        raw = (
            b"POST /app/caf%C3%A9/x%2Fy?q=1 HTTP/1.1\r\nHost: example.com\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 5\r\nX-Dup: one\r\nX-Dup: two\r\n"
            b"X_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 1.2.3.4\r\n\r\nhello"
        )
        response = await exchange(port, raw)
        assert response.status == 200 and response.body == b"hello"

    scenario(loop, app, body, root_path="/app")
    (environ,) = seen
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["SCRIPT_NAME"] == "/app"
    # Percent-decoded, then the bytes as latin-1 characters (PEP 3333).
    assert environ["PATH_INFO"] == "/caf\xc3\xa9/x/y"
    assert environ["QUERY_STRING"] == "q=1"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["SERVER_NAME"] == "127.0.0.1" and environ["SERVER_PORT"].isdigit()
    assert environ["REMOTE_ADDR"] == "127.0.0.1" and environ["REMOTE_PORT"].isdigit()
    assert environ["CONTENT_TYPE"] == "text/plain" and environ["CONTENT_LENGTH"] == "5"
    assert environ["HTTP_HOST"] == "example.com"
    assert environ["HTTP_X_DUP"] == "one, two"
    # The underscore spelling is dropped: it cannot spoof the dashed one.
    assert environ["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"
    assert "HTTP_CONTENT_TYPE" not in environ and "HTTP_CONTENT_LENGTH" not in environ
    assert environ["wsgi.version"] == (1, 0)
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.multithread"] is True and environ["wsgi.run_once"] is False
    assert environ["wsgi.input_terminated"] is True
    assert callable(environ["wsgi.file_wrapper"])
    assert hasattr(environ["wsgi.errors"], "write")


def test_wsgi_input_reads_a_chunked_body_in_every_way(loop: asyncio.AbstractEventLoop) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        mode = environ["PATH_INFO"]
        if mode == "/read":
            data = stream.read(3) + b"|" + stream.read()
        elif mode == "/readline":
            data = b"|".join([stream.readline(), stream.readline(2), stream.readline()])
        elif mode == "/readlines":
            data = b"|".join(stream.readlines())
        else:
            data = b"|".join(line for line in stream)
        assert "CONTENT_LENGTH" not in environ
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [data]

    async def body(port: int) -> None:
        chunked = (
            b"Transfer-Encoding: chunked\r\n\r\n"
            b"4\r\nab\nc\r\n5\r\nd\nefg\r\n2\r\nh\n\r\n0\r\n\r\n"
        )  # the body: "ab\ncd\nefgh\n"
        for path, expected in (
            (b"/read", b"ab\n|cd\nefgh\n"),
            (b"/readline", b"ab\n|cd|\n"),
            (b"/readlines", b"ab\n|cd\n|efgh\n"),
            (b"/iter", b"ab\n|cd\n|efgh\n"),
        ):
            raw = b"POST %s HTTP/1.1\r\nHost: x\r\n" % path + chunked
            assert (await exchange(port, raw)).body == expected, path

    scenario(loop, app, body)


def test_a_large_upload_streams_with_back_pressure(loop: asyncio.AbstractEventLoop) -> None:
    release = threading.Event()
    sizes: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        release.wait(30)
        total = 0
        while piece := environ["wsgi.input"].read(65536):
            total += len(piece)
        sizes.append(total)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d" % total]

    size = 64 * 1024 * 1024

    async def body(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        piece = b"u" * 65536
        sent = 0
        while sent < size:
            writer.write(piece)
            sent += len(piece)
            try:
                await asyncio.wait_for(writer.drain(), 0.5)
            except TimeoutError:
                break
        assert sent < size, "the server read a body its app was not reading"
        release.set()
        while sent < size:
            writer.write(piece)
            sent += len(piece)
            await writer.drain()
        assert (await read_response(reader)).body == b"%d" % size
        writer.close()

    scenario(loop, app, body)
    assert sizes == [size]


class Tracked:
    """An iterable that records that close() was called."""

    def __init__(self, parts: list[bytes], closed: list[str], fail: bool = False) -> None:
        self.parts = parts
        self.closed = closed
        self.fail = fail

    def __iter__(self) -> Iterator[bytes]:
        yield from self.parts
        if self.fail:
            raise RuntimeError("failed while iterating")

    def close(self) -> None:
        self.closed.append("closed")


def test_streamed_iterables_and_close_always_called(loop: asyncio.AbstractEventLoop) -> None:
    closed: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> Any:
        path = environ["PATH_INFO"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        if path == "/stream":
            return Tracked([b"one ", b"", b"two"], closed)
        if path == "/fails":
            return Tracked([b"partial"], closed, fail=True)
        return [b"x"]

    async def body(port: int) -> None:
        stream = await exchange(port, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        assert stream.headers["Transfer-Encoding"] == "chunked" and stream.body == b"one two"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /fails HTTP/1.1\r\nHost: x\r\n\r\n")
        got = await asyncio.wait_for(reader.read(), 10)
        assert got.startswith(b"HTTP/1.1 200 ") and not got.endswith(b"0\r\n\r\n")
        writer.close()

    scenario(loop, app, body)
    assert closed == ["closed", "closed"]


def test_the_write_callable_and_exc_info(loop: asyncio.AbstractEventLoop) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/write":
            write = start_response("200 OK", [("Content-Type", "text/plain")])
            write(b"written, ")
            return [b"then returned"]
        if path == "/replace":
            start_response("200 OK", [("Content-Type", "text/plain")])
            try:
                raise ValueError("changed my mind")
            except ValueError:
                start_response("500 Internal Server Error", [("X-Error", "1")], sys.exc_info())
            return [b"error page"]
        if path == "/twice":
            start_response("200 OK", [])
            start_response("200 OK", [])  # no exc_info: an error
            return [b"never"]
        return []

    async def body(port: int) -> None:
        written = await exchange(port, b"GET /write HTTP/1.1\r\nHost: x\r\n\r\n")
        assert written.body == b"written, then returned"
        replaced = await exchange(port, b"GET /replace HTTP/1.1\r\nHost: x\r\n\r\n")
        assert replaced.status == 500 and replaced.headers["X-Error"] == "1"
        assert replaced.body == b"error page"
        twice = await exchange(port, b"GET /twice HTTP/1.1\r\nHost: x\r\n\r\n")
        assert twice.status == 500 and twice.body != b"never"

    scenario(loop, app, body)


def test_file_wrapper_goes_out_with_sendfile(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    data = os.urandom(200_000)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    opened: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        file = open(path, "rb")  # noqa: SIM115 (the server closes it)
        opened.append(file)
        return environ["wsgi.file_wrapper"](file, 8192)

    async def body(port: int) -> None:
        got = await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert got.headers["Content-Length"] == "200000" and got.body == data
        head = await exchange(port, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD")
        assert head.headers["Content-Length"] == "200000" and head.body == b""

    scenario(loop, app, body)
    assert len(opened) == 2 and all(f.closed for f in opened)


def test_a_slow_request_does_not_hold_up_the_others(loop: asyncio.AbstractEventLoop) -> None:
    release = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        if environ["PATH_INFO"] == "/slow":
            release.wait(30)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    async def body(port: int) -> None:
        slow = asyncio.ensure_future(exchange(port, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"))
        await asyncio.sleep(0.05)
        for _ in range(5):
            assert (await exchange(port, b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")).body == b"/fast"
        assert not slow.done()
        release.set()
        assert (await slow).body == b"/slow"

    scenario(loop, app, body, threads=2)


def test_a_full_pool_answers_503_past_its_queue(loop: asyncio.AbstractEventLoop) -> None:
    release = threading.Event()
    started = threading.Semaphore(0)

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        started.release()
        release.wait(30)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    async def body(port: int) -> None:
        # 1 thread + a queue of 2: three requests are taken, the fourth refused.
        held = [
            asyncio.ensure_future(exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
            for _ in range(3)
        ]
        await asyncio.get_running_loop().run_in_executor(None, started.acquire)
        await asyncio.sleep(0.1)
        refused = await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert refused.status == 503 and refused.headers["Retry-After"] == "1"
        release.set()
        assert [r.body for r in await asyncio.gather(*held)] == [b"done"] * 3

    scenario(loop, app, body, threads=1, queue=2)


def test_errors_become_500_and_serving_goes_on(loop: asyncio.AbstractEventLoop) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/raise":
            raise RuntimeError("app bug")
        if path == "/crlf":
            start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: pwned")])
            return [b"x"]
        if path == "/length":
            start_response("200 OK", [("Content-Length", "10")])
            return [b"short"]
        if path == "/none":
            return [b"no start_response"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"fine"]

    async def body(port: int) -> None:
        for path in (b"/raise", b"/crlf", b"/length", b"/none"):
            response = await exchange(port, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
            assert response.status == 500, path
            assert b"pwned" not in response.body
        assert (await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")).body == b"fine"

    scenario(loop, app, body)


def test_limit_request_body(loop: asyncio.AbstractEventLoop) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        data = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d" % len(data)]

    async def body(port: int) -> None:
        over = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
        assert (await exchange(port, over)).status == 413
        ok = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"
        assert (await exchange(port, ok)).body == b"10"

    scenario(loop, app, body, limit_request_body=10)
