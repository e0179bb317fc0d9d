"""Test an application over a real socket: `TestServer`, `TestClient`, `SyncTestClient`.

In an async test (on whatever loop runs it):

    async with TestClient(app) as client:
        resp = await client.get("/hello/world")
        assert resp.status == 200
        assert resp.text == "hello, world!"

In an ordinary synchronous pytest test, with the `treadle_client` fixture
(installing Treadle registers the plugin `treadle.pytest_plugin`; no
pytest-asyncio needed):

    from treadle import web

    async def hello(request):
        return web.json_response({"name": request.match_info["name"]})

    def test_hello(treadle_client):
        app = web.Application()
        app.router.add_get("/hello/{name}", hello)
        client = treadle_client(app)          # serving now; stopped after the test
        resp = client.get("/hello/world")
        assert resp.status == 200
        assert resp.json() == {"name": "world"}
        assert client.post("/hello/x").status == 405

Outside pytest: `with SyncTestClient(app) as client: ...`.

WebSockets, with the API of aiohttp's client WebSocket:

    async with TestClient(app) as client:
        async with await client.ws_connect("/chat") as ws:
            await ws.send_str("hello")
            msg = await ws.receive()

The server listens on 127.0.0.1 with a free port and runs the application's
full lifecycle (startup, cleanup); the client speaks HTTP/1.1 over one
keep-alive connection (a new one if the server closed it) and reads each
response whole, with `Content-Length` or chunked framing. Nothing is mocked:
what the test sees is what a browser would.

`SyncTestClient` runs the server *and* its `TestClient` on a Treadle loop in a
background thread, and each call waits for its answer. That keeps the test
body plain synchronous code, and the server keeps serving between calls, so a
test may also talk to `client.url(...)` with any other client (`urllib`,
`http.client`, a subprocess). The alternative, running the loop in the test's
own thread during each call, would leave the server deaf between calls.
Handlers therefore run in that thread, not the test's: share state through
the application, not thread-locals.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from .http.headers import Headers
from .web.app import Application
from .web.runner import AppRunner, TCPSite
from .websocket.codec import DEFAULT_MAX_MSG_SIZE, Codec
from .websocket.connection import WebSocketMethods, WebSocketProtocol
from .websocket.handshake import HandshakeError, client_check, client_request

__all__ = [
    "ClientResponse",
    "SyncTestClient",
    "TestClient",
    "TestServer",
    "TestWebSocket",
    "WSServerHandshakeError",
]

T = TypeVar("T")


class ClientResponse:
    """A response as the test client read it."""

    __slots__ = ("body", "headers", "reason", "status", "version")

    def __init__(
        self, status: int, reason: str, headers: Headers, body: bytes, version: str
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.version = version

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<ClientResponse {self.status} {self.reason} {len(self.body)} bytes>"


class TestServer:
    """Serves an application on 127.0.0.1 (a free port) while in use."""

    __test__ = False  # not a pytest test class

    def __init__(self, app: Application, *, host: str = "127.0.0.1", **runner_kwargs: Any):
        self.app = app
        self.host = host
        self.port = 0
        self._runner = AppRunner(app, **runner_kwargs)

    async def start(self) -> None:
        """Run the application's startup and listen on a free port."""
        await self._runner.setup()
        site = TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Stop gracefully and run the application's cleanup."""
        await self._runner.cleanup()

    async def __aenter__(self) -> TestServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class TestClient:
    """A small HTTP/1.1 client bound to a `TestServer` (made from an app)."""

    __test__ = False

    def __init__(self, app_or_server: Application | TestServer) -> None:
        self.server = (
            app_or_server if isinstance(app_or_server, TestServer) else TestServer(app_or_server)
        )
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def port(self) -> int:
        """The server's port."""
        return self.server.port

    async def __aenter__(self) -> TestClient:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection and stop the server."""
        await self._disconnect()
        await self.server.close()

    async def _disconnect(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if (
            self._writer is None
            or self._writer.is_closing()
            or self._reader is None
            or (self._reader.at_eof())
        ):
            await self._disconnect()
            self._reader, self._writer = await asyncio.open_connection(
                self.server.host, self.server.port
            )
        return self._reader, self._writer

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes | str = b"",
        json_body: Any = None,
    ) -> ClientResponse:
        """Send one request and read its response whole."""
        if json_body is not None:
            body = json.dumps(json_body)
            headers = [*_pairs(headers), ("Content-Type", "application/json")]
        data = body.encode() if isinstance(body, str) else body
        pairs = _pairs(headers)
        names = {name.lower() for name, _ in pairs}
        lines = [f"{method} {path} HTTP/1.1"]
        if "host" not in names:
            lines.append(f"Host: {self.server.host}:{self.server.port}")
        framed = "content-length" in names or "transfer-encoding" in names
        if (data or method in ("POST", "PUT", "PATCH")) and not framed:
            lines.append(f"Content-Length: {len(data)}")
        lines += [f"{name}: {value}" for name, value in pairs]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        reader, writer = await self._connect()
        writer.write(head + data)
        await writer.drain()
        response = await read_response(reader, method)
        connection = (response.headers.get("Connection") or "").lower()
        if connection == "close":
            await self._disconnect()
        return response

    async def get(self, path: str, **kwargs: Any) -> ClientResponse:
        """A GET request."""
        return await self.request("GET", path, **kwargs)

    async def head(self, path: str, **kwargs: Any) -> ClientResponse:
        """A HEAD request."""
        return await self.request("HEAD", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> ClientResponse:
        """A POST request."""
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> ClientResponse:
        """A PUT request."""
        return await self.request("PUT", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> ClientResponse:
        """A PATCH request."""
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> ClientResponse:
        """A DELETE request."""
        return await self.request("DELETE", path, **kwargs)

    async def options(self, path: str, **kwargs: Any) -> ClientResponse:
        """An OPTIONS request."""
        return await self.request("OPTIONS", path, **kwargs)

    async def ws_connect(
        self,
        path: str,
        *,
        protocols: Iterable[str] = (),
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        compress: bool = True,
        max_msg_size: int = DEFAULT_MAX_MSG_SIZE,
        autoping: bool = True,
        autoclose: bool = True,
        heartbeat: float | None = None,
        receive_timeout: float | None = None,
        timeout: float = 10.0,
    ) -> TestWebSocket:
        """Open a WebSocket to `path` on a connection of its own; raises
        `WSServerHandshakeError` if the server does not accept it. The
        arguments mean what they do for aiohttp's `ws_connect`."""
        offered = tuple(protocols)
        key, fields = client_request(protocols=offered, compress=compress)
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.server.host}:{self.server.port}"]
        lines += [f"{name}: {value}" for name, value in [*fields, *_pairs(headers)]]
        loop = asyncio.get_running_loop()
        transport, handshake = await loop.create_connection(
            _HandshakeReader, self.server.host, self.server.port
        )
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            head, rest = await handshake.head
            status, _, _, response_headers = _parse_head(head)
            protocol, deflate = client_check(
                status, response_headers, key, protocols=offered, compress=compress
            )
        except HandshakeError as exc:
            transport.close()
            raise WSServerHandshakeError(exc.status, str(exc)) from None
        except BaseException:
            transport.close()
            raise
        ws = WebSocketProtocol(
            Codec(client=True, max_msg_size=max_msg_size, deflate=deflate),
            protocol=protocol,
            autoping=autoping,
            autoclose=autoclose,
            heartbeat=heartbeat,
            receive_timeout=receive_timeout,
            close_timeout=timeout,
        )
        transport.set_protocol(ws)
        ws.connection_made(transport)
        if rest:
            ws.data_received(rest)
        return TestWebSocket(ws, status, response_headers)


class WSServerHandshakeError(Exception):
    """The server did not accept a WebSocket handshake: `status` is what it
    answered (aiohttp's name)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class TestWebSocket(WebSocketMethods):
    """A client WebSocket made by `TestClient.ws_connect()`: `receive()`,
    `send_str()`, `close()`, `async for`... as aiohttp's client has them;
    also an async context manager that closes it."""

    __test__ = False
    __slots__ = ("_ws", "headers", "status")

    def __init__(self, ws: WebSocketProtocol, status: int, headers: Headers) -> None:
        self._ws = ws
        #: The handshake's answer: its status (101) and header fields.
        self.status = status
        self.headers = headers

    async def __aenter__(self) -> TestWebSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
        ws = self._ws
        if ws is not None and ws.transport is not None:
            ws.transport.close()  # the server closes first; do not wait on it here


class _HandshakeReader(asyncio.Protocol):
    """Reads the answer to a WebSocket handshake: the head, and whatever
    came after it (the first frames, which belong to the WebSocket)."""

    def __init__(self) -> None:
        self._buf = b""
        self.head: asyncio.Future[tuple[bytes, bytes]] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self._buf += data
        end = self._buf.find(b"\r\n\r\n")
        if end >= 0 and not self.head.done():
            self.head.set_result((self._buf[: end + 4], self._buf[end + 4 :]))
        elif len(self._buf) > 65536 and not self.head.done():
            self.head.set_exception(ValueError("the handshake's answer has no end"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head.done():
            self.head.set_exception(
                ConnectionResetError("the server closed the connection during the handshake")
            )


def _pairs(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(headers.items()) if isinstance(headers, Mapping) else list(headers)


def _parse_head(head: bytes) -> tuple[int, str, str, Headers]:
    """Status, version, reason and fields of a response head (CRLF lines,
    the blank line included or not)."""
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    raw = []
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            raw.append((name.encode("latin-1"), value.strip(" \t").encode("latin-1")))
    return int(code), version, reason, Headers(raw)


async def read_response(reader: asyncio.StreamReader, method: str = "GET") -> ClientResponse:
    """Read one HTTP/1.1 response (1xx interim responses are skipped)."""
    while True:
        status, version, reason, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
        if 100 <= status < 200 and status != 101:
            continue
        break
    if method == "HEAD" or status in (204, 304) or status < 200:
        body = b""
    elif (headers.get("Transfer-Encoding") or "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    elif headers.get("Content-Length") is not None:
        body = await reader.readexactly(int(headers["Content-Length"]))
    else:
        body = await reader.read()
    return ClientResponse(status, reason, headers, body, version)


class SyncTestClient:
    """A synchronous `TestClient`: the application is served on a Treadle loop
    in a background thread and every call waits for its response.

        with SyncTestClient(app) as client:
            assert client.get("/").status == 200

    `loop_factory` picks the loop (`asyncio.new_event_loop` for the stdlib's);
    `timeout` bounds each call, so a hung handler fails the test instead of
    hanging it; other keyword arguments go to `TestServer` (and on to
    `AppRunner`)."""

    __test__ = False

    def __init__(
        self,
        app: Application,
        *,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
        timeout: float = 60.0,
        **server_kwargs: Any,
    ) -> None:
        if loop_factory is None:
            from .runners import new_event_loop

            loop_factory = new_event_loop
        self.app = app
        self.timeout = timeout
        self._loop_factory = loop_factory
        self._server_kwargs = server_kwargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: TestClient | None = None

    @property
    def host(self) -> str:
        """The address the server listens on (127.0.0.1)."""
        return self._started().server.host

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self._started().server.port

    def url(self, path: str = "/") -> str:
        """`http://127.0.0.1:PORT` + `path`, for other clients."""
        return f"http://{self.host}:{self.port}{path}"

    def start(self) -> None:
        """Start the loop thread and serve the application (startup signals run)."""
        if self._thread is not None:
            raise RuntimeError("SyncTestClient.start() was already called")
        loop = self._loop_factory()
        thread = threading.Thread(
            target=_run_loop, args=(loop,), name="treadle-test-server", daemon=True
        )
        self._loop, self._thread = loop, thread
        thread.start()
        client = TestClient(TestServer(self.app, **self._server_kwargs))
        try:
            self._call(client.__aenter__())
        except BaseException:
            self._stop_loop()
            raise
        self._client = client

    def close(self) -> None:
        """Stop serving (a graceful stop; cleanup signals run), end the thread."""
        if self._thread is None:
            return
        client, self._client = self._client, None
        try:
            if client is not None:
                self._call(client.close())
        finally:
            self._stop_loop()

    def __enter__(self) -> SyncTestClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _started(self) -> TestClient:
        if self._client is None:
            raise RuntimeError("the SyncTestClient is not serving: call start() first")
        return self._client

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(self.timeout)
        except TimeoutError:
            future.cancel()
            if self._client is not None:
                # The late answer would arrive on this connection, in place of
                # the next one's: start the next request on a fresh connection.
                disconnect = self._client._disconnect()
                asyncio.run_coroutine_threadsafe(disconnect, self._loop).result(self.timeout)
            raise TimeoutError(f"no answer from the test server in {self.timeout:g} s") from None

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes | str = b"",
        json_body: Any = None,
    ) -> ClientResponse:
        """Send one request and read its response whole (see `TestClient.request`)."""
        client = self._started()
        return self._call(
            client.request(method, path, headers=headers, body=body, json_body=json_body)
        )

    def get(self, path: str, **kwargs: Any) -> ClientResponse:
        """A GET request."""
        return self.request("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> ClientResponse:
        """A HEAD request."""
        return self.request("HEAD", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> ClientResponse:
        """A POST request."""
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> ClientResponse:
        """A PUT request."""
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> ClientResponse:
        """A PATCH request."""
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> ClientResponse:
        """A DELETE request."""
        return self.request("DELETE", path, **kwargs)

    def options(self, path: str, **kwargs: Any) -> ClientResponse:
        """An OPTIONS request."""
        return self.request("OPTIONS", path, **kwargs)


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The background thread: run the loop until stopped, then close it as
    `asyncio.run` does (`asyncio.Runner` in a thread leaves signals alone)."""
    with asyncio.Runner(loop_factory=lambda: loop) as runner:
        runner.get_loop().run_forever()
