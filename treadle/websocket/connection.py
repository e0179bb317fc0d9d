"""One WebSocket connection on asyncio, shared by the server and the client.

`WebSocketProtocol` is an `asyncio.Protocol` around a `Codec`: it feeds the
codec what the transport reads, answers pings, runs the close handshake and
the heartbeat, and queues messages for the application. It uses asyncio's
public Protocol/Transport API only, so it runs on Treadle's loop, the stdlib
loop and uvloop. `WebSocketMethods` is the application's side, with
aiohttp's names (`receive()`, `send_str()`, `close()`, `async for`...); the
server's `web.WebSocketResponse` and the client's WebSocket both take it, so
their behaviour cannot drift apart.

Decisions:

- **Back-pressure on receiving.** Messages the application has not read are
  queued; past `read_limit` bytes of them, reading from the socket pauses
  until the application catches up. A peer cannot grow our memory by
  sending faster than the handler reads.
- **A message goes straight to a waiting `receive()`**: the future the
  application awaits gets it, with no queue in between.
- **The close handshake is the protocol's.** With `autoclose` (the default)
  the peer's close frame is answered soon after the read that brought it
  (once a handler woken by the messages before it has taken its step, so its
  answers go first), with the peer's code (or none, if it sent none), even
  while the application is busy; the application still reads the messages
  before it and then the CLOSE message. A close we start (`close()`, the end of the
  handler, a server shutdown with 1001) waits `close_timeout` seconds for
  the peer's close frame, then gives up on it and aborts. Once both frames
  have passed, the server closes the TCP connection at once; the client
  waits up to `close_timeout` for the server to do it (RFC 6455 7.1.1).
- **Failing the connection** (the peer broke a rule, RFC 6455 7.1.7): a
  close frame with the code the rule earns, then the TCP close; the
  application reads an ERROR message (its data the `WebSocketError`) and
  `exception()` returns it.
- **Heartbeat**: with `heartbeat=N`, a ping goes out after N seconds without
  a frame from the peer; if nothing (a pong or anything else) arrives within
  `pong_timeout` (N/2 by default, as aiohttp), the connection is closed
  with 1011 and aborted (a peer that does not answer may not read our close
  either), and the application reads an ERROR message with a TimeoutError.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Final, cast

from .codec import Codec
from .frames import OP_BINARY, OP_TEXT, WebSocketError, WSMessage, WSMsgType, message

__all__ = ["WebSocketMethods", "WebSocketProtocol"]

logger = logging.getLogger("treadle.websocket")

_TEXT: Final = WSMsgType.TEXT
_BINARY: Final = WSMsgType.BINARY
_PING: Final = WSMsgType.PING
_PONG: Final = WSMsgType.PONG
_CLOSE: Final = WSMsgType.CLOSE
_ERROR: Final = WSMsgType.ERROR

CLOSED_MESSAGE: Final = message(WSMsgType.CLOSED, None)
CLOSING_MESSAGE: Final = message(WSMsgType.CLOSING, None)

_ABNORMAL: Final = 1006
_NO_STATUS: Final = 1005
_INTERNAL_ERROR: Final = 1011

DEFAULT_READ_LIMIT: Final = 64 * 1024


class WebSocketProtocol(asyncio.Protocol):
    """The asyncio side of one WebSocket connection (see the module docstring).

    Made after a successful opening handshake with the codec it agreed;
    `connection_made()` hands it the transport (the HTTP server calls it
    when a handler upgrades, the client after reading the 101).
    """

    __slots__ = (
        "_autoclose",
        "_autoping",
        "_close_timer",
        "_closing_waiter",
        "_drain_waiter",
        "_heartbeat",
        "_heartbeat_timer",
        "_last_seen",
        "_loop",
        "_lost_waiter",
        "_ping_sent",
        "_pong_timeout",
        "_queue",
        "_queued",
        "_read_limit",
        "_reading_paused",
        "_writing_paused",
        "close_code",
        "close_timeout",
        "closed",
        "codec",
        "exception",
        "lost",
        "on_lost",
        "protocol",
        "receive_timeout",
        "transport",
        "waiter",
    )

    def __init__(
        self,
        codec: Codec,
        *,
        protocol: str | None = None,
        autoping: bool = True,
        autoclose: bool = True,
        heartbeat: float | None = None,
        pong_timeout: float | None = None,
        receive_timeout: float | None = None,
        close_timeout: float = 10.0,
        read_limit: int = DEFAULT_READ_LIMIT,
    ) -> None:
        """A connection speaking through `codec` (see the module docstring
        for the settings)."""
        if heartbeat is not None and heartbeat <= 0:
            raise ValueError(f"heartbeat must be positive seconds or None, got {heartbeat!r}")
        if close_timeout <= 0:
            raise ValueError(f"the close timeout must be positive seconds, got {close_timeout!r}")
        if read_limit <= 0:
            raise ValueError(f"read_limit must be positive, got {read_limit!r}")
        self.codec = codec
        #: The subprotocol agreed in the handshake, or None.
        self.protocol = protocol
        self._autoping = autoping
        self._autoclose = autoclose
        self._heartbeat = heartbeat
        self._pong_timeout = pong_timeout if pong_timeout is not None else (heartbeat or 0) / 2
        #: Seconds `receive()` waits by default (None: no limit).
        self.receive_timeout = receive_timeout
        #: Seconds a close waits for the peer's close frame.
        self.close_timeout = close_timeout
        self._read_limit = read_limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self.transport: asyncio.Transport | None = None
        self._queue: deque[WSMessage] = deque()
        self._queued = 0  # bytes of data in the queue
        #: The future a `receive()` awaits, if one does.
        self.waiter: asyncio.Future[WSMessage] | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._heartbeat_timer: asyncio.TimerHandle | None = None
        self._last_seen = 0.0
        self._ping_sent = 0.0
        # Set when the peer's close frame arrives (or the connection is lost).
        self._closing_waiter: asyncio.Future[None] | None = None
        self._lost_waiter: asyncio.Future[None] | None = None
        #: Our close frame has been sent (or the connection is gone).
        self.closed = False
        #: The transport is gone.
        self.lost = False
        #: The peer's close code, or the code of the failure that ended the
        #: connection (1006 when it ended without a close frame); None while open.
        self.close_code: int | None = None
        #: What ended the connection, if it failed.
        self.exception: BaseException | None = None
        #: Called once when the transport is lost (the server counts connections).
        self.on_lost: Callable[[], None] | None = None

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start: the transport carries WebSocket frames from now on."""
        self.transport = cast(asyncio.Transport, transport)
        self._loop = loop = asyncio.get_running_loop()
        if self._heartbeat is not None:
            self._last_seen = loop.time()
            self._heartbeat_timer = loop.call_at(
                self._last_seen + self._heartbeat, self._on_heartbeat
            )

    def data_received(self, data: bytes) -> None:
        """Decode what arrived; deliver messages, answer pings and closes."""
        if self._heartbeat is not None:
            assert self._loop is not None
            self._last_seen = self._loop.time()
        for msg in self.codec.feed(data):
            kind = msg[0]
            if kind is _TEXT or kind is _BINARY:
                self._deliver(msg)
            elif kind is _PING:
                if self._autoping:
                    if not self.closed:
                        self._write(self.codec.encode_pong(msg[1]))
                else:
                    self._deliver(msg)
            elif kind is _PONG:
                if not self._autoping:
                    self._deliver(msg)
            else:
                # A close frame, or an ERROR for a broken rule: both end the
                # input. They are acted on once the messages this read
                # delivered have had their turn (call_soon runs in order, and
                # a receive() woken by one was scheduled first), so a handler's
                # answers to them go out before our close frame.
                assert self._loop is not None
                if kind is _CLOSE:
                    self._loop.call_soon(self._on_close_frame, msg)
                else:
                    self._loop.call_soon(self._fail, msg[1])

    def eof_received(self) -> bool:
        """The peer ended its side: without a close frame, an abnormal closure."""
        if self.close_code is None:
            self.close_code = _ABNORMAL
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        """Wake everything that waits on this connection."""
        self.lost = True
        self.closed = True
        self.transport = None
        if self.close_code is None:
            self.close_code = _ABNORMAL
        for timer in (self._close_timer, self._heartbeat_timer):
            if timer is not None:
                timer.cancel()
        self._close_timer = self._heartbeat_timer = None
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self.waiter = None
            waiter.set_result(CLOSED_MESSAGE)
        gone = ConnectionResetError("the WebSocket connection is closed")
        drain = self._drain_waiter
        if drain is not None:
            self._drain_waiter = None
            if not drain.done():
                drain.set_exception(gone)
                drain.exception()  # its writers may have been cancelled
        for future in (self._closing_waiter, self._lost_waiter):
            if future is not None and not future.done():
                future.set_result(None)
        if self.on_lost is not None:
            callback, self.on_lost = self.on_lost, None
            callback()

    def pause_writing(self) -> None:
        """The transport's buffer is full: senders wait in `drain()`."""
        self._writing_paused = True

    def resume_writing(self) -> None:
        """The transport's buffer drained: wake the senders."""
        self._writing_paused = False
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- what the HTTP server asks of an upgraded connection -------------------------

    def shutdown(self) -> None:
        """The server is stopping: close with 1001 (going away)."""
        self.start_close(1001, "server shutdown")

    def handler_ended(self, exc: BaseException | None) -> None:
        """The handler that upgraded returned (or raised): close if it did not."""
        if exc is not None and not isinstance(exc, asyncio.CancelledError):
            self.start_close(_INTERNAL_ERROR, "")
        else:
            self.start_close(1000, "")

    # -- receiving -------------------------------------------------------------------

    def _deliver(self, msg: WSMessage) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():  # (not cancelled, nor timed out)
                waiter.set_result(msg)
                return
        self._queue.append(msg)
        data = msg[1]
        if type(data) is str or type(data) is bytes:
            self._queued += len(data)
            if self._queued > self._read_limit and not self._reading_paused:
                transport = self.transport
                if transport is not None:
                    self._reading_paused = True
                    transport.pause_reading()

    def next_message(self) -> WSMessage | None:
        """A queued message, or None if none is queued."""
        queue = self._queue
        if not queue:
            return None
        msg = queue.popleft()
        data = msg[1]
        if type(data) is str or type(data) is bytes:
            self._queued -= len(data)
            if self._reading_paused and self._queued <= self._read_limit // 2:
                self._reading_paused = False
                if self.transport is not None:
                    self.transport.resume_reading()
        return msg

    def take(self, timeout: float | None) -> WSMessage | asyncio.Future[WSMessage]:
        """What `receive()` returns: a queued message (or CLOSED once nothing
        more can come) at once, else a future for the next one, failing with
        TimeoutError after `timeout` seconds (None: `receive_timeout`)."""
        if self._queue:
            msg = self.next_message()
            if msg is not None:
                return msg
        if self.lost or (self.closed and self.codec.close_received):
            return CLOSED_MESSAGE
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            raise RuntimeError("Concurrent call to receive() is not allowed")
        loop = self._loop
        assert loop is not None
        waiter = self.waiter = loop.create_future()
        if timeout is None:
            timeout = self.receive_timeout
        if timeout is not None:
            timer = loop.call_later(timeout, _time_out, waiter)
            waiter.add_done_callback(lambda _: timer.cancel())
        return waiter

    def discard_queue(self) -> None:
        """Forget the messages the application did not read (it closed)."""
        while self.next_message() is not None:
            pass

    def _on_close_frame(self, msg: WSMessage) -> None:
        code = msg[1]
        self.close_code = code
        if not self.closed:
            if self._autoclose:
                # Answer with the peer's code: 1005 (none) means an empty frame.
                self._send_close(None if code == _NO_STATUS else code, "")
                self._after_handshake()
        else:
            self._after_handshake()
        waiter = self._closing_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._deliver(msg)

    def _after_handshake(self) -> None:
        """Both close frames have passed: close the TCP connection (the server
        at once; the client once the server has, or after close_timeout)."""
        transport = self.transport
        if transport is None:
            return
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if not self.codec._client:
            transport.close()
        else:
            assert self._loop is not None
            self._close_timer = self._loop.call_later(self.close_timeout, transport.close)

    def _fail(self, exc: WebSocketError) -> None:
        """The peer broke a rule: close with its code, then the TCP connection."""
        self.exception = exc
        self.close_code = exc.code
        logger.debug("failing the WebSocket connection: %s (%d)", exc, exc.code)
        if not self.closed:
            self._send_close(exc.code, "")
        if self.transport is not None:
            self.transport.close()
        self._deliver(message(_ERROR, exc))

    # -- sending ---------------------------------------------------------------------

    def _write(self, frame: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(frame)

    def send_frame(self, frame: bytes) -> bool:
        """Write one encoded frame; True if the sender should `drain()`.
        Raises ConnectionResetError once the connection is closing."""
        # (`closed` covers every way the transport comes to close but an
        # abort from outside, after which the transport drops the write.)
        transport = self.transport
        if transport is None or self.closed:
            raise ConnectionResetError("Cannot write to closing transport")
        transport.write(frame)
        return self._writing_paused

    async def drain(self) -> None:
        """Wait until the transport takes more data."""
        if not self._writing_paused:
            return
        if self.transport is None:
            raise ConnectionResetError("the WebSocket connection is closed")
        waiter = self._drain_waiter
        if waiter is None:
            assert self._loop is not None
            waiter = self._drain_waiter = self._loop.create_future()
        await asyncio.shield(waiter)

    def _send_close(self, code: int | None, reason: str | bytes) -> None:
        self.closed = True
        frame = self.codec.encode_close(code, reason)
        self._write(frame)

    def start_close(self, code: int = 1000, reason: str | bytes = "") -> bool:
        """Send our close frame (if not yet sent) and give the peer
        `close_timeout` seconds to answer before aborting. False if the
        close had already begun. Raises ValueError for a code or reason the
        codec refuses."""
        if self.closed:
            return False
        self._send_close(code, reason)
        if self.codec.close_received:
            self._after_handshake()
        elif self._loop is not None and self.transport is not None:
            self._close_timer = self._loop.call_later(self.close_timeout, self._on_close_timeout)
        return True

    def _on_close_timeout(self) -> None:
        """The peer did not answer our close frame (or, on a client, did not
        close the TCP connection) in time."""
        self._close_timer = None
        if self.close_code is None:
            self.close_code = _ABNORMAL
        if self.transport is not None:
            self.transport.abort()

    async def wait_closing(self) -> None:
        """Wait for the peer's close frame (or the end of the connection)."""
        if self.codec.close_received or self.lost:
            return
        waiter = self._closing_waiter
        if waiter is None:
            assert self._loop is not None
            waiter = self._closing_waiter = self._loop.create_future()
        await asyncio.shield(waiter)

    async def wait_lost(self) -> None:
        """Wait until the transport is gone."""
        if self.lost:
            return
        waiter = self._lost_waiter
        if waiter is None:
            assert self._loop is not None
            waiter = self._lost_waiter = self._loop.create_future()
        await asyncio.shield(waiter)

    # -- heartbeat ---------------------------------------------------------------------

    def _on_heartbeat(self) -> None:
        self._heartbeat_timer = None
        loop = self._loop
        if self.closed or loop is None or self._heartbeat is None:
            return
        now = loop.time()
        due = self._last_seen + self._heartbeat
        if now < due:
            self._heartbeat_timer = loop.call_at(due, self._on_heartbeat)
            return
        self._ping_sent = now
        self._write(self.codec.encode_ping())
        self._heartbeat_timer = loop.call_at(now + self._pong_timeout, self._on_pong_timeout)

    def _on_pong_timeout(self) -> None:
        self._heartbeat_timer = None
        loop = self._loop
        if self.closed or loop is None or self._heartbeat is None:
            return
        if self._last_seen >= self._ping_sent:
            # The peer spoke since the ping: it is alive. Wait a heartbeat more.
            self._heartbeat_timer = loop.call_at(
                self._last_seen + self._heartbeat, self._on_heartbeat
            )
            return
        exc = TimeoutError(f"no pong received within {self._pong_timeout} seconds of a ping")
        self.exception = exc
        self.close_code = _INTERNAL_ERROR
        self._send_close(_INTERNAL_ERROR, "keepalive ping timeout")
        if self.transport is not None:
            self.transport.abort()  # a peer that does not pong may not read our close
        self._deliver(message(_ERROR, exc))


class WebSocketMethods:
    """The application's side of a WebSocket, with aiohttp's names; the server's
    `web.WebSocketResponse` and the client's WebSocket both take it. It
    needs `self._ws`, the connection (None before the handshake)."""

    __slots__ = ()

    _ws: WebSocketProtocol | None

    def _connection(self) -> WebSocketProtocol:
        ws = self._ws
        if ws is None:
            raise RuntimeError("Call .prepare() first")
        return ws

    @property
    def closed(self) -> bool:
        """Whether the close has begun (our close frame sent, or the connection gone)."""
        ws = self._ws
        return ws is not None and ws.closed

    @property
    def close_code(self) -> int | None:
        """The peer's close code (1005 if its close frame had none), the code of
        the failure that ended the connection, or None while open."""
        ws = self._ws
        return ws.close_code if ws is not None else None

    @property
    def ws_protocol(self) -> str | None:
        """The subprotocol agreed in the handshake, or None."""
        ws = self._ws
        return ws.protocol if ws is not None else None

    def exception(self) -> BaseException | None:
        """What ended the connection, if it failed (a WebSocketError, a TimeoutError...)."""
        ws = self._ws
        return ws.exception if ws is not None else None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The transport's information (`peername`, `sslcontext`...), or `default`."""
        ws = self._ws
        if ws is None or ws.transport is None:
            return default
        return ws.transport.get_extra_info(name, default)

    # -- sending ---------------------------------------------------------------------

    async def send_str(self, data: str, compress: bool | int | None = None) -> None:
        """Send a text message. `compress=False` (or 0) sends it uncompressed
        even when permessage-deflate was agreed."""
        ws = self._ws
        if ws is None:
            raise RuntimeError("Call .prepare() first")
        if type(data) is not str and not isinstance(data, str):
            raise TypeError(f"data argument must be str ({type(data)!r})")
        flag = None if compress is None else bool(compress)
        if ws.send_frame(ws.codec.encode_message(OP_TEXT, data.encode("utf-8"), flag)):
            await ws.drain()

    async def send_bytes(
        self, data: bytes | bytearray | memoryview, compress: bool | int | None = None
    ) -> None:
        """Send a binary message."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be byte-ish ({type(data)!r})")
        ws = self._connection()
        flag = None if compress is None else bool(compress)
        if ws.send_frame(ws.codec.encode_message(OP_BINARY, bytes(data), flag)):
            await ws.drain()

    async def send_json(
        self,
        data: Any,
        compress: bool | int | None = None,
        *,
        dumps: Callable[[Any], str] = json.dumps,
    ) -> None:
        """Send `dumps(data)` as a text message."""
        await self.send_str(dumps(data), compress=compress)

    async def send_frame(
        self, message: bytes, opcode: WSMsgType, compress: bool | int | None = None
    ) -> None:
        """Send a message of any data or control type (aiohttp's low-level call)."""
        ws = self._connection()
        codec = ws.codec
        if opcode in (WSMsgType.TEXT, WSMsgType.BINARY):
            flag = None if compress is None else bool(compress)
            frame = codec.encode_message(int(opcode), bytes(message), flag)
        elif opcode == WSMsgType.PING:
            frame = codec.encode_ping(bytes(message))
        elif opcode == WSMsgType.PONG:
            frame = codec.encode_pong(bytes(message))
        elif opcode == WSMsgType.CLOSE:
            code = int.from_bytes(message[:2], "big") if len(message) >= 2 else 1000
            await self.close(code=code, message=bytes(message[2:]))
            return
        else:
            raise ValueError(f"cannot send a frame of type {opcode!r}")
        if ws.send_frame(frame):
            await ws.drain()

    async def ping(self, message: bytes = b"") -> None:
        """Send a ping (its payload at most 125 bytes)."""
        ws = self._connection()
        if ws.send_frame(ws.codec.encode_ping(bytes(message))):
            await ws.drain()

    async def pong(self, message: bytes = b"") -> None:
        """Send a pong (unsolicited, or to answer a ping with `autoping=False`)."""
        ws = self._connection()
        if ws.send_frame(ws.codec.encode_pong(bytes(message))):
            await ws.drain()

    async def close(self, *, code: int = 1000, message: bytes | str = b"") -> bool:
        """Start the close handshake with `code` and `message` (the reason) and
        wait for the peer's close frame (at most the close timeout). True if
        this call closed the connection, False if it was already closing."""
        ws = self._connection()
        if not ws.start_close(code, message):
            if not ws.lost and ws.codec.close_received:
                ws.discard_queue()
            return False
        try:
            await ws.wait_closing()
        finally:
            ws.discard_queue()
        return True

    # -- receiving ---------------------------------------------------------------------

    async def receive(self, timeout: float | None = None) -> WSMessage:
        """The next message: TEXT, BINARY, CLOSE, ERROR (PING and PONG too with
        `autoping=False`); CLOSED once nothing more can come. Raises
        TimeoutError after `timeout` seconds (default: `receive_timeout`)."""
        got = self._connection().take(timeout)
        return got if got.__class__ is WSMessage else await got  # type: ignore[misc]

    async def receive_str(self, *, timeout: float | None = None) -> str:
        """The next message, which must be TEXT (else TypeError)."""
        msg = await self.receive(timeout)
        if msg[0] is not _TEXT:
            raise TypeError(f"Received message {msg[0]}:{msg[1]!r} is not WSMsgType.TEXT")
        return cast(str, msg[1])

    async def receive_bytes(self, *, timeout: float | None = None) -> bytes:
        """The next message, which must be BINARY (else TypeError)."""
        msg = await self.receive(timeout)
        if msg[0] is not _BINARY:
            raise TypeError(f"Received message {msg[0]}:{msg[1]!r} is not WSMsgType.BINARY")
        return cast(bytes, msg[1])

    async def receive_json(
        self, *, loads: Callable[[Any], Any] = json.loads, timeout: float | None = None
    ) -> Any:
        """The next TEXT message, parsed as JSON."""
        return loads(await self.receive_str(timeout=timeout))

    def __aiter__(self) -> WebSocketMethods:
        return self

    async def __anext__(self) -> WSMessage:
        """The next message; the iteration ends at CLOSE, CLOSING and CLOSED,
        as aiohttp's does (an ERROR message is yielded, then CLOSED ends it)."""
        # receive(), inlined: one coroutine less per message.
        got = self._connection().take(None)
        msg: WSMessage = got if got.__class__ is WSMessage else await got  # type: ignore[misc]
        if msg[0] in _ENDS:
            raise StopAsyncIteration
        return msg


_ENDS: Final = frozenset((WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED))


def _time_out(waiter: asyncio.Future[WSMessage]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
