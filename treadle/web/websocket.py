"""`web.WebSocketResponse`: the server side of a WebSocket, with aiohttp's API.

    async def handler(request):
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == web.WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

`prepare()` judges the opening handshake (treadle.websocket.handshake:
405, 400 or 426 as an `HTTPException` when it is not one), runs the
`on_response_prepare` signals with the 101 and its headers as aiohttp does,
sends the 101 and hands the connection to a `WebSocketProtocol` through the
HTTP server's `upgrade()`, so the server still counts it: a graceful
shutdown sends it a close frame with 1001 (going away) and aborts it after
the shutdown timeout. Everything after the handshake (receiving, sending,
closing) is `WebSocketMethods`, shared with the client.

When the handler returns, the framework calls `write_eof()`, which closes
the WebSocket with 1000 if the handler did not (as aiohttp does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from ..websocket.codec import DEFAULT_MAX_MSG_SIZE, Codec
from ..websocket.connection import WebSocketMethods, WebSocketProtocol
from ..websocket.handshake import HandshakeError, ServerHandshake, server_handshake
from .exceptions import HTTPException, HTTPMethodNotAllowed, exception_for_status
from .response import StreamResponse

if TYPE_CHECKING:
    from ..http import ResponseWriter
    from .request import Request

__all__ = ["WebSocketReady", "WebSocketResponse"]


class WebSocketReady(NamedTuple):
    """What `can_prepare()` says: whether the request is a valid WebSocket
    handshake, and the subprotocol that would be chosen."""

    ok: bool
    protocol: str | None

    def __bool__(self) -> bool:
        return self.ok


class WebSocketResponse(StreamResponse, WebSocketMethods):
    """A WebSocket, server side (see the module docstring).

    - `protocols`: subprotocols the server speaks; the first the client
      offers (in its order) is chosen.
    - `heartbeat`: seconds of silence before a ping; no pong within half of
      it (or `pong_timeout`) closes with 1011.
    - `autoping`: answer pings (PING and PONG messages are then not
      delivered); `autoclose`: answer the peer's close frame at once.
    - `max_msg_size`: the largest message received, after decompression
      (4 MiB; 0 for no limit): a larger one closes with 1009.
    - `compress`: accept permessage-deflate when the client offers it.
    - `receive_timeout`: the default timeout of `receive()` (None: none).
    - `timeout`: seconds a close waits for the peer's close frame.
    - `read_limit`: bytes of unread messages before reading pauses.
    """

    _ws: WebSocketProtocol | None = None

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        receive_timeout: float | None = None,
        autoclose: bool = True,
        autoping: bool = True,
        heartbeat: float | None = None,
        pong_timeout: float | None = None,
        protocols: tuple[str, ...] | list[str] = (),
        compress: bool = True,
        max_msg_size: int = DEFAULT_MAX_MSG_SIZE,
        read_limit: int = 64 * 1024,
    ) -> None:
        super().__init__(status=101)
        if heartbeat is not None and heartbeat <= 0:
            raise ValueError(f"heartbeat must be positive seconds or None, got {heartbeat!r}")
        if max_msg_size < 0:
            raise ValueError(f"max_msg_size must be 0 (no limit) or more, got {max_msg_size}")
        self._protocols = tuple(protocols)
        self._compress = compress
        self._settings: dict[str, Any] = {
            "autoping": autoping,
            "autoclose": autoclose,
            "heartbeat": heartbeat,
            "pong_timeout": pong_timeout,
            "receive_timeout": receive_timeout,
            "close_timeout": timeout,
            "read_limit": read_limit,
        }
        self._max_msg_size = max_msg_size
        self._handshake: ServerHandshake | None = None

    def _judge(self, request: Request) -> ServerHandshake:
        message = request._message
        return server_handshake(
            message.method,
            message.version,
            message.headers,
            protocols=self._protocols,
            compress=self._compress,
        )

    def can_prepare(self, request: Request) -> WebSocketReady:
        """Whether `request` is a WebSocket handshake this response accepts
        (and with which subprotocol), without answering it."""
        if self._ws is not None:
            raise RuntimeError("Already started")
        try:
            handshake = self._judge(request)
        except HandshakeError:
            return WebSocketReady(False, None)
        return WebSocketReady(True, handshake.protocol)

    @property
    def compress(self) -> bool:
        """Whether permessage-deflate is in use on this connection."""
        return self._ws is not None and self._ws.codec.compressing

    async def prepare(self, request: Request) -> ResponseWriter | None:
        """Answer the handshake with 101 and start the WebSocket; raises an
        `HTTPException` (405, 400, 426) if the request is not a valid one."""
        if self._writer is not None:
            return self._writer
        try:
            handshake = self._judge(request)
        except HandshakeError as exc:
            raise _refusal(request, exc) from None
        self._handshake = handshake
        headers = self.headers
        for name, value in handshake.headers:
            headers[name] = value
        self._request = request
        if request._app._any_prepare_hooks:
            await request._prepare_hook(self)
        pairs, _ = self._header_pairs()
        writer = request._writer
        writer.send_nowait(101, pairs, b"", self._reason)
        self._writer = writer
        ws = WebSocketProtocol(
            Codec(max_msg_size=self._max_msg_size, deflate=handshake.deflate),
            protocol=handshake.protocol,
            **self._settings,
        )
        self._ws = ws
        writer.upgrade(ws)
        if writer._conn._writing_paused:  # the 101 filled the buffer: rare
            await ws.drain()
        return writer

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Not for a WebSocket: use `send_str()`/`send_bytes()`."""
        raise RuntimeError("Cannot call .write() for websocket")

    async def write_eof(self, data: bytes = b"") -> None:
        """The handler is done: close the WebSocket (1000) if it is open."""
        if self._eof_sent:
            return
        if self._ws is None:
            raise RuntimeError("Response has not been started")
        self._eof_sent = True
        await self.close()

    def __repr__(self) -> str:
        state = "not prepared" if self._ws is None else ("closed" if self.closed else "open")
        return f"<WebSocketResponse {state}>"


def _refusal(request: Request, exc: HandshakeError) -> HTTPException:
    """The HTTP answer to a request that is not a valid handshake."""
    if exc.status == 405:
        return HTTPMethodNotAllowed(request.method, ["GET"], text=f"405: {exc}")
    refusal = exception_for_status(exc.status, f"{exc.status}: {exc}")
    for name, value in exc.headers:
        refusal.headers[name] = value
    return refusal
