"""Serving ASGI 3 applications (FastAPI, Starlette, Django...) on Treadle's server.

    treadle run myapp:app                 # an ASGI callable is detected
    treadle run myapp:app --interface asgi --lifespan on --root-path /api

The adapter is the HTTP layer's application callable (`ASGIHandler`, one call
per request), so everything the server does holds for ASGI apps unchanged:
the parser's strictness (a request it refuses never reaches the app), the
limits, timeouts, back-pressure, graceful stop and the WebSocket codec. It
implements the `http` scope at spec version 2.4, with the
`http.response.trailers` and `http.response.pathsend` extensions, the
`websocket` scope with the `websocket.http.response` denial extension, and
`lifespan`.

Decisions, and where they differ from uvicorn:

- **The head waits for the first body message.** `http.response.start` is
  kept until the first `http.response.body`; when that is the whole body
  (`more_body` false, the common case) head and body go out in one write
  with `Content-Length`. A streamed body is framed by the app's
  `content-length` if it gave one, else chunked (HTTP/1.1) or by closing
  the connection (HTTP/1.0). An exception before the head went out is
  answered with 500 even after `http.response.start`; after, the
  connection is closed.
- **The app's framing fields are checked, not trusted**: a
  `content-length` that is not digits, or that the body does not match, is
  an error the app sees (`RuntimeError`); `transfer-encoding` from the app
  is dropped (the server frames the body). Header names and values are
  checked as the server's own are: CR, LF or a control character is a
  `ValueError` in `send()`, and the client gets a 500, never a split
  response.
- **Request bodies are streamed** as `http.request` messages as they
  arrive, and reading from the socket pauses while the app has not taken
  what came (the server's `body_buffer`). There is no size limit by
  default (as uvicorn and gunicorn); `limit_request_body` sets one: 413
  before the app runs when `Content-Length` passes it, and
  `HTTPError(413)` out of `receive()` when a chunked body does.
- `Expect: 100-continue` is answered when the app first calls `receive()`
  for the body, never before.
- `http.disconnect` comes when the client goes away, and once the response
  is complete; `send()` after the client has gone raises `OSError`
  (`ConnectionResetError`), as the spec asks from 2.4.
- Trailers (`"trailers": True` in the start) go out after the last chunk
  when the request said `TE: trailers`; otherwise they are dropped and the
  body is framed as usual.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import unquote

from .http.body import EMPTY_BODY, Body
from .http.errors import HTTPError
from .http.parser import Request
from .http.runner import NO_BODY_LIMIT, ServerRunner
from .http.server import App, ResponseWriter, ServerConfig
from .http.writer import take_framing
from .websocket.codec import Codec
from .websocket.connection import WebSocketMethods, WebSocketProtocol
from .websocket.frames import WSMsgType
from .websocket.handshake import HandshakeError, check_request, server_handshake

__all__ = [
    "ASGIApp",
    "ASGIHandler",
    "ASGIRunner",
    "Lifespan",
    "LifespanFailure",
    "WebSocketSettings",
    "is_asgi_app",
]

logger = logging.getLogger("treadle.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SPEC_VERSION: Final = "2.4"

# Response states of one HTTP request.
_IDLE, _STARTED, _STREAMING, _TRAILERS, _DONE = range(5)


def _call_of(obj: Any) -> Callable[..., Any] | None:
    """What calling `obj` runs: itself for a function or method, else its
    `__call__` (None for a class, or something that cannot be called)."""
    if inspect.isclass(obj) or not callable(obj):
        return None
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        return obj
    return obj.__call__  # type: ignore[no-any-return]


def is_asgi_app(obj: object) -> bool:
    """Whether `obj` looks like an ASGI 3 application: a coroutine function of
    three arguments, or an object whose `__call__` is one. (An ASGI 2 "double
    callable" is a class or function of one argument that returns the
    coroutine function: not one.)"""
    call = _call_of(obj)
    if call is None or not inspect.iscoroutinefunction(call):
        return False
    try:
        params = inspect.signature(call).parameters
    except (TypeError, ValueError):
        return True
    positional = [
        p
        for p in params.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return len(positional) >= 3 or any(p.kind == p.VAR_POSITIONAL for p in positional)


def asgi2_hint(obj: object) -> str | None:
    """A message saying how to serve `obj` if it is an ASGI 2 application
    (a callable of one argument, the scope), else None."""
    if not callable(obj) or is_asgi_app(obj):
        return None
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return None
    if len(params) != 1:
        return None
    return (
        "it looks like an ASGI 2 application (one argument, the scope, returning the "
        "coroutine); wrap it for ASGI 3: "
        "async def app(scope, receive, send): await Asgi2App(scope)(receive, send)"
    )


class WebSocketSettings:
    """How the `websocket` scope's connections run (uvicorn's option names):
    `max_size` bytes per message (after decompression), a ping every
    `ping_interval` seconds of silence with `ping_timeout` for the answer
    (None: no heartbeat), and whether permessage-deflate is accepted."""

    __slots__ = ("max_size", "per_message_deflate", "ping_interval", "ping_timeout")

    def __init__(
        self,
        *,
        max_size: int = 16 * 1024 * 1024,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        per_message_deflate: bool = True,
    ) -> None:
        if max_size < 0:
            raise ValueError(f"max_size must be 0 (no limit) or more, got {max_size}")
        self.max_size = max_size
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.per_message_deflate = per_message_deflate


_DEFAULT_WS: Final = WebSocketSettings()


class ASGIHandler:
    """The HTTP layer's application callable for an ASGI 3 app: one call per
    request (see the module docstring).

    - `root_path`: where the app is mounted (`scope["root_path"]`, and the
      front of `scope["path"]`, as uvicorn gives it).
    - `state`: the lifespan state; each request gets a shallow copy.
    - `limit_request_body`: the largest request body passed on (None: none).
    - `websocket`: the settings of WebSocket connections.
    """

    __slots__ = ("_app", "_limit", "_root", "_root_raw", "_state", "_ws")

    def __init__(
        self,
        app: ASGIApp,
        *,
        root_path: str = "",
        state: dict[str, Any] | None = None,
        limit_request_body: int | None = None,
        websocket: WebSocketSettings = _DEFAULT_WS,
    ) -> None:
        self._app = app
        self._root = root_path.rstrip("/")
        self._root_raw = self._root.encode("utf-8")
        self._state = state
        self._limit = limit_request_body
        self._ws = websocket

    async def __call__(self, request: Request, body: Body, writer: ResponseWriter) -> None:
        """Serve one request (or WebSocket) through the app."""
        if request.upgrade:
            upgrade = request.headers.get("upgrade") or ""
            if "websocket" in upgrade.lower():
                await self._websocket(request, writer)
                return
        limit = self._limit
        if limit is not None and request.content_length and request.content_length > limit:
            raise HTTPError(
                413, f"the body is {request.content_length} bytes; the limit is {limit}"
            )
        target = request.target
        if target[0] == "/" and "?" not in target:
            raw_path = target
            query = b""
        else:
            raw_path = request.path
            query = request.query_string.encode("latin-1")
        path = unquote(raw_path) if "%" in raw_path else raw_path
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": SPEC_VERSION},
            "http_version": "1.1" if request.version == (1, 1) else "1.0",
            "server": writer.server,
            "client": writer.client,
            "scheme": writer.scheme,
            "method": request.method,
            "root_path": self._root,
            "path": self._root + path,
            "raw_path": self._root_raw + raw_path.encode("latin-1"),
            "query_string": query,
            "headers": _headers(request, writer),
            "extensions": {
                "http.response.trailers": {},
                "http.response.pathsend": {},
            },
        }
        if self._state is not None:
            scope["state"] = self._state.copy()
        cycle = _HTTPCycle(request, body, writer, limit)
        await self._app(scope, cycle.receive, cycle.send)

    # -- the websocket scope ------------------------------------------------------------

    async def _websocket(self, request: Request, writer: ResponseWriter) -> None:
        try:
            check_request(request.method, request.version, request.headers)
        except HandshakeError as exc:
            # Not a valid handshake: the app never sees it (as uvicorn).
            pairs = [("Content-Type", "text/plain; charset=utf-8"), *exc.headers]
            await writer.send(exc.status, pairs, f"{exc.status}: {exc}\n".encode())
            return
        raw_path = request.path
        path = unquote(raw_path) if "%" in raw_path else raw_path
        subprotocols: list[str] = []
        for value in request.headers.getall("sec-websocket-protocol"):
            subprotocols.extend(p.strip() for p in value.split(",") if p.strip())
        scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": SPEC_VERSION},
            "http_version": "1.1",
            "server": writer.server,
            "client": writer.client,
            "scheme": "wss" if writer.scheme == "https" else "ws",
            "root_path": self._root,
            "path": self._root + path,
            "raw_path": self._root_raw + raw_path.encode("latin-1"),
            "query_string": request.query_string.encode("latin-1"),
            "headers": _headers(request, writer),
            "subprotocols": subprotocols,
            "extensions": {"websocket.http.response": {}},
        }
        if self._state is not None:
            scope["state"] = self._state.copy()
        session = _WebSocketSession(request, writer, self._ws)
        try:
            await self._app(scope, session.receive, session.send)
        finally:
            session.app_ended()


def _headers(request: Request, writer: ResponseWriter) -> list[tuple[bytes, bytes]]:
    """The scope's headers: lowercased names, in order; a host a trusted
    proxy forwarded replaces the `host` field (as the app would read it)."""
    headers = [(lname, value) for lname, _, value in request.headers._fields]
    config = writer._conn._config
    if config.proxy_headers and config.trusted_proxies is not None:
        forwarded = writer.forwarded
        if forwarded is not None and forwarded.host is not None:
            host = forwarded.host.encode("latin-1")
            headers = [(b"host", host) if name == b"host" else (name, v) for name, v in headers]
            if not any(name == b"host" for name, _ in headers):
                headers.append((b"host", host))
    return headers


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _HTTPCycle:
    """One request's `receive` and `send`."""

    __slots__ = (
        "_body",
        "_body_done",
        "_content_length",
        "_disconnect",
        "_gone",
        "_headers",
        "_limit",
        "_received",
        "_request",
        "_state",
        "_status",
        "_trailer_fields",
        "_trailers",
        "_trailers_announced",
        "_writer",
    )

    def __init__(
        self, request: Request, body: Body, writer: ResponseWriter, limit: int | None
    ) -> None:
        self._request = request
        self._body = body
        self._writer = writer
        self._limit = limit
        self._body_done = False
        self._received = 0
        self._state = _IDLE
        self._status = 200
        self._headers: tuple[tuple[bytes, bytes], ...] = ()
        self._content_length: int | None = None
        self._trailers = False  # trailers will go out
        self._trailers_announced = False  # the app said it would send some
        self._trailer_fields: list[tuple[bytes, bytes]] = []
        self._disconnect: asyncio.Future[None] | None = None
        self._gone = False  # the app was told the client left

    # -- receive ------------------------------------------------------------------------

    async def receive(self) -> Message:
        if not self._body_done:
            body = self._body
            if body is EMPTY_BODY:
                self._body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            try:
                chunk = await body.readany()
            except ConnectionError:
                self._body_done = True
                return {"type": "http.disconnect"}
            except HTTPError as exc:
                # The body broke a rule or a limit (bad chunking, a timeout,
                # 413): the server answers with its status, and the app hears
                # that the client is gone (an error raised through it would
                # become its framework's 500).
                return await self._refuse(exc)
            more = not body._eof or body._size > 0
            if chunk:
                self._received += len(chunk)
                if self._limit is not None and self._received > self._limit:
                    return await self._refuse(
                        HTTPError(413, f"the body passed the limit of {self._limit} bytes")
                    )
            if not more:
                self._body_done = True
            return {"type": "http.request", "body": chunk, "more_body": more}
        if self._state != _DONE:
            waiter = self._disconnect
            if waiter is None:
                waiter = self._disconnect = asyncio.get_running_loop().create_future()
                self._writer.on_disconnect(self._wake)
            # Shielded: an app that cancels a receive() (a timeout around it)
            # must be able to call receive() again and wait on.
            await asyncio.shield(waiter)
            if self._state != _DONE:
                # The client left before the response was complete: from now
                # on send() raises, as the spec asks (2.4).
                self._gone = True
        return {"type": "http.disconnect"}

    async def _refuse(self, exc: HTTPError) -> Message:
        self._body_done = True
        self._gone = True
        writer = self._writer
        if self._state == _IDLE or self._state == _STARTED:
            self._state = _DONE
            writer.force_close()
            try:
                await writer.send(
                    exc.status,
                    [("Content-Type", "text/plain; charset=utf-8")],
                    f"{exc.status} {exc.reason}: {exc.detail}\n".encode(),
                )
            except ConnectionError:
                pass
        else:
            writer.force_close()
        return {"type": "http.disconnect"}

    def _wake(self) -> None:
        waiter = self._disconnect
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- send ---------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        if self._gone:
            raise ConnectionResetError("the client has gone (http.disconnect was received)")
        kind = message["type"]
        if kind == "http.response.body":
            data = message.get("body", b"")
            more = message.get("more_body", False)
            if (
                self._state == _STARTED
                and not more
                and not self._trailers
                and (self._content_length is None or self._content_length == len(data))
            ):
                # The common response, whole in its first body message: head
                # and body in one write (_send_body's first case, inlined).
                self._state = _DONE
                writer = self._writer
                if writer.send_nowait(
                    self._status, self._headers, data if type(data) is bytes else bytes(data)
                ):
                    await writer.drain()
                self._wake()
                return
            await self._send_body(data, more)
        elif kind == "http.response.start":
            if self._state != _IDLE:
                raise RuntimeError(
                    "Unexpected ASGI message 'http.response.start': the response has started"
                )
            self._start(message)
        elif kind == "http.response.pathsend":
            await self._pathsend(message)
        elif kind == "http.response.trailers":
            await self._send_trailers(message)
        else:
            raise RuntimeError(f"Unexpected ASGI message {kind!r} in an http scope")

    def _start(self, message: Message) -> None:
        status = message["status"]
        if type(status) is not int or not 100 <= status <= 999:
            raise ValueError(f"http.response.start: status must be an int, got {status!r}")
        pairs, length = take_framing(message.get("headers", ()))
        self._status = status
        self._headers = pairs
        self._content_length = length
        if message.get("trailers", False):
            self._trailers_announced = True
            if self._writer.accepts_trailers:
                self._trailers = True
                self._content_length = None  # trailers need a chunked body
        self._state = _STARTED

    async def _send_body(self, data: bytes, more: bool) -> None:
        state = self._state
        writer = self._writer
        if state == _STARTED:
            length = self._content_length
            if not more and not self._trailers:
                head_only = self._request.method == "HEAD" and not data
                if length is not None and length != len(data) and not head_only:
                    raise RuntimeError(
                        f"the response body is {len(data)} bytes, but content-length said {length}"
                    )
                self._state = _DONE
                if length and head_only:
                    # The length of a body a HEAD response never carries.
                    await writer.start(self._status, self._headers, content_length=length)
                    await writer.write_eof()
                elif writer.send_nowait(self._status, self._headers, bytes(data)):
                    await writer.drain()
                self._wake()
                return
            self._state = _STREAMING
            await writer.start(self._status, self._headers, content_length=length)
            state = _STREAMING
        if state == _STREAMING:
            if data:
                await writer.write(bytes(data))
            if not more:
                if self._trailers:
                    self._state = _TRAILERS
                else:
                    self._state = _DONE
                    await writer.write_eof()
                    self._wake()
            return
        if state == _IDLE:
            raise RuntimeError(
                "Unexpected ASGI message 'http.response.body' before http.response.start"
            )
        raise RuntimeError(
            "Unexpected ASGI message 'http.response.body' sent, after response already completed"
        )

    async def _send_trailers(self, message: Message) -> None:
        if self._trailers_announced and not self._trailers and self._state == _DONE:
            return  # the client did not ask for trailers: dropped, the response is out
        if self._state != _TRAILERS:
            raise RuntimeError(
                "Unexpected ASGI message 'http.response.trailers': the start did not announce "
                "trailers, or the body is not finished"
            )
        self._trailer_fields.extend((name, value) for name, value in message.get("headers", ()))
        if not message.get("more_trailers", False):
            self._state = _DONE
            await self._writer.write_eof(trailers=self._trailer_fields)
            self._wake()

    async def _pathsend(self, message: Message) -> None:
        if self._state != _STARTED:
            raise RuntimeError("Unexpected ASGI message 'http.response.pathsend'")
        path = message["path"]
        writer = self._writer
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            length = self._content_length
            if length is not None and length != size:
                raise RuntimeError(f"the file is {size} bytes, but content-length said {length}")
            self._state = _STREAMING
            await writer.start(self._status, self._headers, content_length=size)
            if self._request.method != "HEAD" and size:
                await writer.sendfile(file, 0, size)
        self._state = _DONE
        await writer.write_eof()
        self._wake()


class _ASGIWebSocket(WebSocketMethods):
    __slots__ = ("_ws",)

    def __init__(self, ws: WebSocketProtocol) -> None:
        self._ws = ws


class _WebSocketSession:
    """One `websocket` scope's `receive` and `send`."""

    __slots__ = (
        "_accepted",
        "_closed",
        "_connected",
        "_denial",
        "_request",
        "_settings",
        "_socket",
        "_writer",
    )

    def __init__(
        self, request: Request, writer: ResponseWriter, settings: WebSocketSettings
    ) -> None:
        self._request = request
        self._writer = writer
        self._settings = settings
        self._connected = False  # websocket.connect delivered
        self._accepted = False
        self._closed = False  # the app closed, or the connection ended
        self._denial: _HTTPCycle | None = None
        self._socket: _ASGIWebSocket | None = None

    async def receive(self) -> Message:
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        sock = self._socket
        if sock is None:
            # Not accepted (yet, or denied): the only news is the client leaving.
            writer = self._writer
            if writer._conn._transport is not None and not self._closed:
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                writer.on_disconnect(lambda: _settle(waiter))
                await waiter
            return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        msg = await sock.receive()
        kind = msg[0]
        if kind is WSMsgType.TEXT:
            return {"type": "websocket.receive", "text": msg[1]}
        if kind is WSMsgType.BINARY:
            return {"type": "websocket.receive", "bytes": msg[1]}
        ws = sock._ws
        assert ws is not None
        self._closed = True
        code = ws.close_code if ws.close_code is not None else 1006
        reason = msg[2] if kind is WSMsgType.CLOSE and msg[2] else ""
        return {"type": "websocket.disconnect", "code": code, "reason": reason}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        sock = self._socket
        if kind == "websocket.send":
            if sock is None:
                raise RuntimeError(
                    "Unexpected ASGI message 'websocket.send' before websocket.accept"
                )
            text = message.get("text")
            if text is not None:
                await sock.send_str(text)
            else:
                data = message.get("bytes")
                if data is None:
                    raise ValueError("websocket.send needs 'bytes' or 'text'")
                await sock.send_bytes(data)
        elif kind == "websocket.accept":
            if sock is not None or self._denial is not None or self._closed:
                raise RuntimeError("Unexpected ASGI message 'websocket.accept'")
            await self._accept(message)
        elif kind == "websocket.close":
            if sock is None:
                if self._denial is not None or self._closed:
                    raise RuntimeError("Unexpected ASGI message 'websocket.close'")
                # Closing before accepting: the handshake is refused with 403.
                self._closed = True
                await self._writer.send(403, [("Content-Type", "text/plain")], b"403 Forbidden\n")
                return
            self._closed = True
            reason = message.get("reason") or ""
            await sock.close(code=message.get("code", 1000), message=reason)
        elif kind in ("websocket.http.response.start", "websocket.http.response.body"):
            if sock is not None:
                raise RuntimeError(f"Unexpected ASGI message {kind!r} after websocket.accept")
            if self._denial is None:
                if kind != "websocket.http.response.start":
                    raise RuntimeError(f"Unexpected ASGI message {kind!r} before its start")
                self._denial = _HTTPCycle(self._request, EMPTY_BODY, self._writer, None)
            await self._denial.send({**message, "type": kind.replace("websocket.", "", 1)})
        else:
            raise RuntimeError(f"Unexpected ASGI message {kind!r} in a websocket scope")

    async def _accept(self, message: Message) -> None:
        request = self._request
        settings = self._settings
        chosen = message.get("subprotocol")
        handshake = server_handshake(
            request.method,
            request.version,
            request.headers,
            protocols=(chosen,) if chosen else (),
            compress=settings.per_message_deflate,
        )
        pairs: list[tuple[str | bytes, str | bytes]] = list(handshake.headers)
        if chosen and handshake.protocol is None:
            # The app chose a subprotocol the client did not offer: send it
            # anyway, as uvicorn does; a strict client will refuse it.
            pairs.append(("Sec-WebSocket-Protocol", chosen))
        for name, value in message.get("headers", ()):
            if bytes(name).lower() in (b"sec-websocket-protocol", b"sec-websocket-accept"):
                continue
            pairs.append((name, value))
        writer = self._writer
        writer.send_nowait(101, pairs, b"")
        ws = WebSocketProtocol(
            Codec(max_msg_size=settings.max_size, deflate=handshake.deflate),
            protocol=chosen or handshake.protocol,
            heartbeat=settings.ping_interval,
            pong_timeout=settings.ping_timeout,
        )
        writer.upgrade(ws)
        self._socket = _ASGIWebSocket(ws)
        self._accepted = True

    def app_ended(self) -> None:
        """The app returned: an accepted WebSocket it left open is closed by
        the server (1000; the HTTP layer calls handler_ended)."""


class LifespanFailure(Exception):
    """The app's lifespan startup (or shutdown) failed; the message is the app's."""


class Lifespan:
    """The `lifespan` scope: `startup()` before serving, `shutdown()` after.

    `mode`: "auto" (run it; an app that raises before answering is taken
    not to support lifespan, and serving goes on), "on" (that is an error)
    or "off". `state` is the dict the app fills at startup; every request's
    scope gets a shallow copy of it.
    """

    def __init__(self, app: ASGIApp, mode: str = "auto") -> None:
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', not {mode!r}")
        self._app = app
        self._mode = mode
        self.state: dict[str, Any] = {}
        self.supported = False
        self._task: asyncio.Task[None] | None = None
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._answer: asyncio.Future[Message] | None = None

    async def startup(self) -> None:
        """Run the app's startup; raises `LifespanFailure` if it failed (or, in
        mode "on", if the app does not support lifespan)."""
        if self._mode == "off":
            return
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        self._task = loop.create_task(self._run(), name="treadle lifespan")
        await self._inbox.put({"type": "lifespan.startup"})
        answer = await self._answer
        kind = answer["type"]
        if kind == "lifespan.startup.complete":
            self.supported = True
            return
        if kind == "lifespan.startup.failed":
            raise LifespanFailure(answer.get("message") or "lifespan startup failed")
        # The app ended (or raised) without answering.
        error = answer.get("error")
        if self._mode == "on":
            raise LifespanFailure(
                f"the app does not support lifespan: {error!r}" if error else "lifespan ended"
            )
        logger.info("ASGI 'lifespan' protocol appears unsupported.")

    async def shutdown(self) -> None:
        """Run the app's shutdown (if its startup ran); raises `LifespanFailure`
        if the app says it failed."""
        if not self.supported or self._task is None or self._task.done():
            return
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        await self._inbox.put({"type": "lifespan.shutdown"})
        answer = await self._answer
        try:
            await self._task
        except Exception:
            pass  # reported through the answer already
        if answer["type"] == "lifespan.shutdown.failed":
            raise LifespanFailure(answer.get("message") or "lifespan shutdown failed")

    async def _run(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self._app(scope, self._inbox.get, self._send)
        except BaseException as exc:
            if self.supported:
                logger.error("error in the lifespan of the app", exc_info=exc)
            elif self._mode == "on":
                logger.error("error in the lifespan startup of the app", exc_info=exc)
            self._reply({"type": "lifespan.ended", "error": exc})
            if not isinstance(exc, Exception):
                raise
        else:
            self._reply({"type": "lifespan.ended"})

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind not in (
            "lifespan.startup.complete",
            "lifespan.startup.failed",
            "lifespan.shutdown.complete",
            "lifespan.shutdown.failed",
        ):
            raise RuntimeError(f"Unexpected ASGI message {kind!r} in the lifespan scope")
        self._reply(message)

    def _reply(self, message: Message) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_result(message)


class ASGIRunner(ServerRunner):
    """Runs an ASGI app on Treadle's server: lifespan startup at `setup()`,
    lifespan shutdown after the graceful stop at `cleanup()` (the sites and
    the stop are `ServerRunner`'s, shared with `web.AppRunner`).

    `lifespan`: "auto", "on" or "off". Other keywords: `root_path`,
    `limit_request_body`, `websocket` (see `ASGIHandler`), and the server's
    settings (`config=` or `ServerConfig`'s keywords) as for AppRunner.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        lifespan: str = "auto",
        root_path: str = "",
        limit_request_body: int | None = None,
        websocket: WebSocketSettings = _DEFAULT_WS,
        access_log: logging.Logger | None = None,
        shutdown_timeout: float = 60.0,
        config: ServerConfig | None = None,
        handle_signals: bool = False,
        **kwargs: Any,
    ) -> None:
        hint = asgi2_hint(app)
        if not callable(app) or hint is not None:
            raise TypeError(f"{app!r} is not an ASGI 3 application" + (f": {hint}" if hint else ""))
        super().__init__(
            access_log=access_log,
            shutdown_timeout=shutdown_timeout,
            config=config,
            handle_signals=handle_signals,
            **kwargs,
        )
        self._app = app
        self._lifespan_mode = lifespan
        self._root_path = root_path
        self._limit_request_body = limit_request_body
        self._websocket = websocket
        self._lifespan: Lifespan | None = None

    @property
    def app(self) -> ASGIApp:
        return self._app

    async def _start(self) -> App:
        lifespan = self._lifespan = Lifespan(self._app, self._lifespan_mode)
        await lifespan.startup()
        return ASGIHandler(
            self._app,
            root_path=self._root_path,
            state=lifespan.state if lifespan.supported else None,
            limit_request_body=self._limit_request_body,
            websocket=self._websocket,
        )

    def _server_config(self) -> ServerConfig:
        # The body streams to the app: the framework's 1 MiB cap is not the
        # server's (limit_request_body sets one, checked as the body flows).
        return self._with_body_limit(super()._server_config(), NO_BODY_LIMIT)

    async def _stop(self) -> None:
        if self._lifespan is not None:
            await self._lifespan.shutdown()
