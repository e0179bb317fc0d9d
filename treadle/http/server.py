"""The HTTP/1.1 server protocol: the glue between transport, parser and application.

`HTTPServer(app, config)` is a protocol factory for `loop.create_server()`; each
connection gets an `HTTPServerProtocol`. It uses asyncio's public
`Protocol`/`Transport` API only, so it runs on Treadle's loop, the stdlib loop
and uvloop alike. The application is one coroutine function called per request:

    async def app(request: Request, body: Body, response: ResponseWriter) -> None:
        await response.send(200, [("Content-Type", "text/plain")], b"hello")

Design decisions:

- **Eager handlers.** A new Task per request is the largest cost a framework
  adds (ARCHITECTURE.md). Each handler's first step runs right inside
  `data_received`, and a handler that never suspends finishes there without
  ever being scheduled, yet `asyncio.current_task()` is a live Task
  throughout, so `asyncio.timeout()` works. On Python 3.12+ that is an
  `asyncio.Task(..., eager_start=True)` per request; on 3.11, whose Task
  cannot start eagerly, one host task per connection runs its handlers, each
  in a context of its own (treadle/http/eager.py says why and what differs).
  Either way a task factory set on the loop is not used for handlers.
- **A short path for the common request.** A request without a body whose
  handler sends a whole response and returns without suspending is settled
  in `_dispatch` itself (no done-callback, no general bookkeeping), and a
  bodiless request's end-of-message is taken with its head. Everything else
  (bodies, errors, upgrades, closing) goes the general way.
- **One handler at a time per connection.** Pipelined requests are parsed ahead
  and queued (at most `max_pipelined`), then handled in order, so responses go
  out in order with no buffering of responses.
- **Back-pressure both ways.** Reading pauses while the queue is full or the
  body being received has `body_buffer` bytes the handler has not read; it
  resumes as they drain. Writers await `drain()` while the transport has called
  `pause_writing`, and a handler blocked there stops taking new requests, so a
  client that never reads its responses stops being read.
- **One timer per connection.** Header, idle and body timeouts share one
  `call_at` handle that moves a deadline rather than being cancelled and
  re-armed per request; the fast path (a whole request in one read) touches no
  timer at all.
- **Errors.** A parse error is answered with its status and `Connection: close`
  after the responses to the requests before it, then the connection closes. An
  exception in the handler is logged with its traceback (logger
  `treadle.http`) and answered with a bare 500 if nothing was sent yet; the
  connection then closes, and the server goes on serving the others.
- **Handlers are not cancelled when their client disconnects**: reads of the
  body raise `ConnectionResetError`, writes raise it too, and the handler ends
  on its own terms.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, BinaryIO, Final, Protocol, cast

from .body import EMPTY_BODY, Body
from .eager import EagerTaskStarter, HostTaskStarter, handler_starter
from .errors import HTTPError
from .headers import split_list
from .parser import DEFAULT_LIMITS, EndOfMessage, Limits, ParserState, Request, RequestParser
from .proxy import Forwarded, TrustedProxies, read_proxy_header, resolve
from .writer import (
    HAS_DATE,
    LAST_CHUNK,
    WANTS_CLOSE,
    DateCache,
    HeaderPairs,
    _status_lines as _STATUS_LINES,  # filled by status_line()
    block_cache as _block_cache,  # filled by encode_block()
    encode_block,
    encode_chunk,
    encode_fields,
    status_line,
)

__all__ = [
    "App",
    "HTTPServer",
    "HTTPServerProtocol",
    "ResponseWriter",
    "ServerConfig",
    "Upgraded",
]

logger = logging.getLogger("treadle.http")

#: The application callback: called once per request, in order, per connection;
#: it returns a coroutine (an `async def` function), which runs as the handler.
App = Callable[[Request, Body, "ResponseWriter"], Coroutine[Any, Any, None]]


class Upgraded(Protocol):
    """What `ResponseWriter.upgrade()` hands a connection to (a WebSocket, say):
    an `asyncio.Protocol` with two more methods, so that the server can still
    stop it gracefully and close it when its handler ends."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...
    def data_received(self, data: bytes) -> None: ...
    def eof_received(self) -> bool | None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...

    def shutdown(self) -> None:
        """The server is stopping: end the connection gracefully, soon (it
        is aborted after the server's shutdown timeout)."""

    def handler_ended(self, exc: BaseException | None) -> None:
        """The handler of the request that upgraded returned (or raised)."""


class ServerConfig:
    """Settings of an HTTP server; every argument is keyword-only.

    - `limits`: the parser's `Limits` (sizes and their statuses).
    - `header_timeout`: seconds a client has to send a whole request head once
      it started one (or after connecting): the slow-loris guard. 408, close.
    - `keepalive_timeout`: seconds an idle keep-alive connection stays open.
    - `body_timeout`: seconds a handler waits for the next body bytes before its
      read raises `HTTPError(408)`.
    - `max_pipelined`: parsed requests queued behind the one being handled
      before reading pauses.
    - `body_buffer`: received body bytes not yet read by the handler before
      reading pauses.
    - `server_header`: a `Server` field value to send, or None for none.
    - `close_timeout`: seconds a closing connection has to flush its last
      response before it is aborted (a client that stops reading cannot keep a
      file descriptor open).
    - `send_timeout`: seconds a handler may wait in `drain()` for the client
      to take the response (to read the transport's buffer down to its low
      mark) before the connection is aborted and the wait raises
      `ConnectionResetError`: a client that stops reading cannot hold a
      handler and a descriptor forever (nginx's `send_timeout`, also 60 s).
    - `trusted_proxies`: the peers (a `TrustedProxies`) whose forwarding
      information is believed; None trusts no one.
    - `proxy_headers`: read `Forwarded` / `X-Forwarded-*` from trusted peers
      (`ResponseWriter.client`, `.scheme` and `.host` report what they say).
    - `proxy_protocol`: trusted peers start each connection with a PROXY
      protocol header (v1 or v2), which says who the client is; a malformed
      one closes the connection. Other peers speak plain HTTP.
    - `limit_concurrency`: past this many requests in flight on the server
      (an upgraded WebSocket counts while its handler runs; idle keep-alive
      connections do not), a request is answered 503 with `Retry-After` at
      once, without calling the application. None: no limit.
    - `max_connections`: past this many open connections, a new one is
      closed as soon as it is accepted. None: no limit.
    - `handler_cancellation`: cancel the handler's task when its client goes
      away (off by default, as in aiohttp since 3.9: a handler then runs on,
      its body reads raise `ConnectionResetError`, and so do its writes once
      the connection is known to be gone). On, a handler suspended in any
      await gets `CancelledError` there when the connection is lost or the
      client ends its side while the handler waits; as in aiohttp, a client
      that half-closes and waits for its answer then gets none.
    """

    __slots__ = (
        "body_buffer",
        "body_timeout",
        "close_timeout",
        "handler_cancellation",
        "header_timeout",
        "keepalive_timeout",
        "limit_concurrency",
        "limits",
        "max_connections",
        "max_pipelined",
        "proxy_headers",
        "proxy_protocol",
        "send_timeout",
        "server_header",
        "trusted_proxies",
    )

    def __init__(
        self,
        *,
        limits: Limits = DEFAULT_LIMITS,
        header_timeout: float = 10.0,
        keepalive_timeout: float = 75.0,
        body_timeout: float = 60.0,
        max_pipelined: int = 64,
        body_buffer: int = 256 * 1024,
        server_header: str | None = None,
        close_timeout: float = 10.0,
        handler_cancellation: bool = False,
        send_timeout: float = 60.0,
        trusted_proxies: TrustedProxies | None = None,
        proxy_headers: bool = False,
        proxy_protocol: bool = False,
        limit_concurrency: int | None = None,
        max_connections: int | None = None,
    ) -> None:
        """Settings with production defaults."""
        for name, limit in (
            ("limit_concurrency", limit_concurrency),
            ("max_connections", max_connections),
        ):
            if limit is not None and limit < 1:
                raise ValueError(f"{name} must be at least 1 (or None), not {limit!r}")
        for name, value in (
            ("header_timeout", header_timeout),
            ("keepalive_timeout", keepalive_timeout),
            ("body_timeout", body_timeout),
            ("max_pipelined", max_pipelined),
            ("body_buffer", body_buffer),
            ("close_timeout", close_timeout),
            ("send_timeout", send_timeout),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be positive, not {value!r}")
        self.limits = limits
        self.header_timeout = header_timeout
        self.keepalive_timeout = keepalive_timeout
        self.body_timeout = body_timeout
        self.max_pipelined = max_pipelined
        self.body_buffer = body_buffer
        self.server_header = server_header
        self.close_timeout = close_timeout
        self.handler_cancellation = bool(handler_cancellation)
        self.send_timeout = send_timeout
        self.trusted_proxies = trusted_proxies
        self.proxy_headers = bool(proxy_headers)
        self.proxy_protocol = bool(proxy_protocol)
        self.limit_concurrency = limit_concurrency
        self.max_connections = max_connections
        if server_header is not None:
            encode_fields([("Server", server_header)])  # refuse CR/LF now, not per request


DEFAULT_CONFIG: Final = ServerConfig()

# Response states.
_IDLE: Final = 0  # nothing sent
_STREAMING: Final = 1  # head sent, body going out
_DONE: Final = 2  # complete

# What the connection's one timer is guarding.
_NO_DEADLINE: Final = 0
_HEAD_DEADLINE: Final = 1
_IDLE_DEADLINE: Final = 2
_BODY_DEADLINE: Final = 3
_CLOSE_DEADLINE: Final = 4

# Parser states, bound once: the pipeline checks them per request.
_P_HEAD: Final = ParserState.HEAD
_P_CLOSED: Final = ParserState.CLOSED
_P_PAUSED: Final = ParserState.PAUSED

_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_CLOSE_LINE: Final = b"Connection: close\r\n"
_KEEP_ALIVE_LINE: Final = b"Connection: keep-alive\r\n"
_SMALL_BODY: Final = 16384  # bodies below this are copied into the head's write
_SENDFILE_PIECE: Final = 256 * 1024  # sendfile() goes out in pieces of this under send_timeout


def _bodiless(status: int) -> bool:
    return status < 200 or status == 204 or status == 304


class ResponseWriter:
    """Writes the response to one request.

    Either `await send(status, headers, body)` once (the fast path: the whole
    response in one `transport.write`; `send_nowait()` is the same without
    the drain, for frameworks that await `drain()` only when it returns
    True), or `await start(status, headers)`, then
    `await write(data)` any number of times, then `await write_eof()`: the body
    is then framed by `Content-Length` if `content_length` was given, else
    chunked (or, for an HTTP/1.0 client, delimited by closing the connection).
    Under `Content-Length`, `await sendfile(file, offset, count)` sends a piece
    of the body straight from a file.

    `send_interim()` sends a 1xx (e.g. 103 Early Hints) first; `force_close()`
    ends the connection after this response; `detach()` hands the transport
    over after a 101; `get_extra_info()` reads the transport's ('peername'...);
    `status` and `body_bytes` say what was sent (for access logs).

    The writer owns framing (`Content-Length`, `Transfer-Encoding`), `Date` and
    `Connection`. Responses to HEAD carry the length of `body` but not the body;
    1xx, 204 and 304 responses carry neither. Misuse raises `RuntimeError` (a
    second head, writing after `write_eof`, more bytes than `content_length`) or
    `ValueError` (a header with CR/LF, a body on a 204). Writing after the peer
    went away raises `ConnectionResetError`.
    """

    __slots__ = (
        "_chunked",
        "_close",
        "_conn",
        "_forwarded",
        "_head_only",
        "_on_lost",
        "_remaining",
        "_request",
        "_state",
        "body_bytes",
        "continue_sent",
        "status",
    )

    def __init__(self, conn: HTTPServerProtocol, request: Request) -> None:
        """A writer for `request` on `conn`; made by the server, one per request."""
        self._conn = conn
        self._request = request
        self._state = _IDLE
        self._chunked = False
        self._close = not request.keep_alive
        self._head_only = request.method == "HEAD"
        self._remaining = -1  # bytes still owed under Content-Length, -1 if none
        self._on_lost: list[Callable[[], None]] | None = None  # see on_disconnect()
        self._forwarded: Forwarded | bool | None = False  # False: not resolved yet
        #: Whether `100 Continue` was sent for this request.
        self.continue_sent = False
        #: The status sent, once the head is out (0 before).
        self.status = 0
        #: Body bytes sent so far (for access logs; 0 for HEAD).
        self.body_bytes = 0

    @property
    def started(self) -> bool:
        """Whether the head has been sent."""
        return self._state != _IDLE

    @property
    def finished(self) -> bool:
        """Whether the whole response has been sent."""
        return self._state == _DONE

    @property
    def keep_alive(self) -> bool:
        """Whether the connection will carry another request after this one (as
        far as is known now: the head says `Connection: close` when it will not)."""
        return not self._close and not self._conn._closing

    def force_close(self) -> None:
        """Close the connection after this response (`Connection: close` is sent
        if the head has not gone out yet)."""
        self._close = True

    @property
    def forwarded(self) -> Forwarded | None:
        """What trusted proxies say about this request (`proxy_headers`), or
        None. Read from the headers on first use."""
        found = self._forwarded
        if found is False:
            conn = self._conn
            config = conn._config
            found = None
            if config.proxy_headers and config.trusted_proxies is not None:
                client = conn._client
                if client is not None:
                    found = resolve(client[0], self._request.headers, config.trusted_proxies)
            self._forwarded = found
        return found  # type: ignore[return-value]

    @property
    def server(self) -> tuple[str, int] | None:
        """The local address and port the request came to (None for a Unix
        socket); read once per connection."""
        conn = self._conn
        local = conn._local
        if local is False:
            name = self.get_extra_info("sockname")
            local = (str(name[0]), int(name[1])) if isinstance(name, tuple) else None
            conn._local = local
        return local  # type: ignore[return-value]

    @property
    def client(self) -> tuple[str, int] | None:
        """The client's address and port as the server believes them: what
        trusted proxies say (headers, or the PROXY protocol), else the
        peer's; None for a Unix socket (or once the connection is gone)."""
        forwarded = self.forwarded
        if forwarded is not None and forwarded.client is not None:
            return (forwarded.client, forwarded.port or 0)
        return self._conn._client

    @property
    def scheme(self) -> str:
        """ "https" or "http": what a trusted proxy says the client used, else
        whether this connection is TLS."""
        forwarded = self.forwarded
        if forwarded is not None and forwarded.scheme is not None:
            return "https" if forwarded.scheme in ("https", "wss") else "http"
        return "https" if self.get_extra_info("sslcontext") is not None else "http"

    @property
    def host(self) -> str | None:
        """The host the client asked for: what a trusted proxy says, else the
        request's `Host` field (None if it had none)."""
        forwarded = self.forwarded
        if forwarded is not None and forwarded.host is not None:
            return forwarded.host
        return self._request.headers.get("host")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The connection's transport information (`peername`, `sockname`,
        `sslcontext`, ...; `transport` gives the transport itself), or
        `default` once the connection is gone."""
        transport = self._conn._transport
        if transport is None:
            return default
        if name == "transport":
            return transport
        return transport.get_extra_info(name, default)

    def _head(self, status: int, headers: HeaderPairs, reason: str | None, framing: bytes) -> bytes:
        if self._state != _IDLE:
            raise RuntimeError("the response head was already sent")
        conn = self._conn
        if headers:
            block = None
            if type(headers) is tuple and status != 101:
                try:
                    block = _block_cache.get(headers)
                except TypeError:  # unhashable pairs: encode_block says what is wrong
                    pass
            if block is None:
                block = encode_block(headers, pass_connection=status == 101)
            fields, flags = block
            if flags & WANTS_CLOSE:
                self._close = True
            date = b"" if flags & HAS_DATE else conn._date.line()
        else:
            fields = b""
            date = conn._date.line()
        line = _STATUS_LINES.get(status) if reason is None else None
        if line is None:
            line = status_line(status, reason)
        connection = b""
        if status != 101:
            if self._close or conn._closing:
                self._close = True
                connection = _CLOSE_LINE
            elif self._request.version == (1, 0):
                connection = _KEEP_ALIVE_LINE
        self.status = status
        return b"".join((line, fields, date, conn._server_line, framing, connection, b"\r\n"))

    async def send(
        self,
        status: int = 200,
        headers: HeaderPairs = (),
        body: bytes = b"",
        *,
        reason: str | None = None,
    ) -> None:
        """Send a whole response: head and `body` in one write, then drain."""
        self.send_nowait(status, headers, body, reason)
        if self._conn._writing_paused:
            await self._conn._drain()

    def send_nowait(
        self,
        status: int = 200,
        headers: HeaderPairs = (),
        body: bytes = b"",
        reason: str | None = None,
    ) -> bool:
        """`send()` without the drain: write the whole response now. Returns
        whether the transport asked writers to wait (`await drain()` then);
        frameworks use this to spare a coroutine per response."""
        conn = self._conn
        if status < 200 or status == 204 or status == 304:
            if body:
                raise ValueError(f"a {status} response cannot have a body")
            if status == 100:
                raise ValueError("100 Continue is sent by the body stream, not by send()")
            head = self._head(status, headers, reason, b"")
        elif status < 300 and self._request.method == "CONNECT":
            # RFC 9110 9.3.6: the tunnel starts right after the head, which
            # must carry no Content-Length or Transfer-Encoding.
            if body:
                raise ValueError(
                    f"a {status} response to CONNECT cannot have a body: the tunnel starts "
                    "after the head (write to the transport from detach() instead)"
                )
            head = self._head(status, headers, reason, b"")
        else:
            head = self._head(status, headers, reason, b"Content-Length: %d\r\n" % len(body))
            if self._head_only:
                body = b""
        transport = conn._transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the connection is closed")
        self.body_bytes = size = len(body)
        if not size:
            transport.write(head)
        elif size < _SMALL_BODY:
            transport.write(head + body)
        else:
            transport.write(head)
            transport.write(body)
        self._state = _DONE
        return conn._writing_paused

    async def send_interim(self, status: int, headers: HeaderPairs = ()) -> None:
        """Send an interim (1xx) response such as 103 Early Hints before the
        final one. Not sent to an HTTP/1.0 client, which would not expect it
        (RFC 9110 15.2). 100 Continue is the body stream's job and 101 is a
        final response: both raise `ValueError`."""
        if not 102 <= status <= 199:
            raise ValueError(f"{status} is not an interim status (102-199)")
        if self._state != _IDLE:
            raise RuntimeError("an interim response must come before the final one")
        if self._request.version == (1, 0):
            return
        fields, _ = encode_fields(headers)
        conn = self._conn
        conn._live_transport().write(status_line(status) + fields.encode("latin-1") + b"\r\n")
        if conn._writing_paused:
            await conn._drain()

    async def start(
        self,
        status: int = 200,
        headers: HeaderPairs = (),
        *,
        reason: str | None = None,
        content_length: int | None = None,
    ) -> None:
        """Send the head of a streamed response; the body follows with `write()`."""
        if content_length is not None and content_length < 0:
            raise ValueError(f"content_length must not be negative, not {content_length}")
        if _bodiless(status):
            framing = b""
            self._head_only = True
        elif status < 300 and self._request.method == "CONNECT":
            raise ValueError(
                f"a {status} response to CONNECT has no body to stream: send() it, "
                "then detach() the tunnel"
            )
        elif content_length is not None:
            framing = b"Content-Length: %d\r\n" % content_length
            self._remaining = content_length
        elif self._request.version == (1, 0):
            framing = b""  # no chunked for 1.0: the body ends when the connection does
            self._close = True
        elif self._head_only:
            framing = b""
        else:
            framing = b"Transfer-Encoding: chunked\r\n"
            self._chunked = True
        head = self._head(status, headers, reason, framing)
        self._conn._live_transport().write(head)
        self._state = _STREAMING
        if self._conn._writing_paused:
            await self._conn._drain()

    async def write(self, data: bytes) -> None:
        """Send a piece of the body (after `start()`), then drain."""
        if self._state != _STREAMING:
            raise RuntimeError(
                "write() before start()" if self._state == _IDLE else "write() after write_eof()"
            )
        if not data:
            return
        if self._remaining >= 0:
            if len(data) > self._remaining:
                raise RuntimeError("more body bytes than the content_length given to start()")
            self._remaining -= len(data)
        if not self._head_only:
            self._conn._live_transport().write(encode_chunk(data) if self._chunked else data)
            self.body_bytes += len(data)
        if self._conn._writing_paused:
            await self._conn._drain()

    async def sendfile(self, file: BinaryIO, offset: int, count: int) -> int:
        """Send `count` bytes of `file` from `offset` as the next piece of the
        body, through `loop.sendfile`: zero-copy `os.sendfile` on a plain
        socket, read-and-write where the loop cannot (TLS). Only after
        `start(..., content_length=...)`: the length must be known up front
        (a chunked body would need the file's size anyway).

        Returns the bytes sent. Fewer than `count` means the file ended early
        (it shrank after its size was taken): the body can no longer match
        its Content-Length, so the response ends there and the connection
        closes, and the client sees a short body instead of waiting for bytes
        that never come. If sending fails (the client went away), the response
        is over as well and the connection closes; the error is raised.
        Raises `NotImplementedError`, having sent nothing, when the loop has
        no `sendfile` (uvloop): `write()` the bytes instead.
        """
        if self._state != _STREAMING:
            raise RuntimeError(
                "sendfile() before start()"
                if self._state == _IDLE
                else "sendfile() after write_eof()"
            )
        if self._remaining < 0:
            raise RuntimeError("sendfile() needs a response started with a content_length")
        if offset < 0 or count < 0:
            raise ValueError(f"offset and count must not be negative, not {offset}, {count}")
        if count > self._remaining:
            raise RuntimeError("more body bytes than the content_length given to start()")
        if count == 0:
            return 0
        if self._head_only:
            self._remaining -= count  # accounted as write() does; nothing goes out
            return count
        conn = self._conn
        transport = conn._live_transport()
        loop = conn._loop
        assert loop is not None
        # In pieces, each under send_timeout: a client that stops reading is
        # cut off, one that reads slowly (a piece per send_timeout) is not.
        # (The loop's sendfile borrows the socket, so the timer's abort could
        # not interrupt it: the piece itself is timed out.)
        sent = 0
        try:
            while sent < count:
                piece = min(count - sent, _SENDFILE_PIECE)
                try:
                    async with asyncio.timeout(conn._config.send_timeout):
                        n = await loop.sendfile(transport, file, offset + sent, piece)
                except TimeoutError:
                    logger.debug("aborting %s: it did not read its response in time", conn._peer())
                    conn._closing = True
                    transport.abort()
                    raise ConnectionResetError(
                        "the client did not read the response within send_timeout"
                    ) from None
                sent += n
                if n < piece:
                    break  # the file ended early
                if conn._transport is None or transport.is_closing():
                    raise ConnectionResetError("the connection is closed")
        except NotImplementedError:
            if sent:
                self._state = _DONE
                self._close = True
            raise
        except BaseException:
            # Some of the body may be out: nothing can follow it on this connection.
            self._state = _DONE
            self._close = True
            raise
        self._remaining -= sent
        self.body_bytes += sent
        if sent < count:
            self._state = _DONE
            self._close = True
        return sent

    async def write_eof(self, data: bytes = b"", *, trailers: HeaderPairs = ()) -> None:
        """Send the last piece of the body, if any, and end the response.

        `trailers` are sent as trailer fields after the last chunk, and only
        then: a chunked body to a client that said `TE: trailers` (RFC 9110
        6.5: a client that did not may drop them, or fail on them).
        Otherwise they are dropped. They are checked as header fields are
        (`ValueError` for CR/LF, a bad name, a framing field)."""
        if data:
            await self.write(data)
        if self._state != _STREAMING:
            raise RuntimeError(
                "write_eof() before start()" if self._state == _IDLE else "write_eof() twice"
            )
        self._state = _DONE
        if self._remaining > 0 and not self._head_only:
            # (A HEAD response carries the length of a body it never sends.)
            self._close = True  # the peer would wait for bytes that never come
            raise RuntimeError(f"response ended {self._remaining} bytes short of content_length")
        if self._chunked:
            last = LAST_CHUNK
            if trailers and self.accepts_trailers:
                fields, _ = encode_fields(trailers)
                last = b"0\r\n" + fields.encode("latin-1") + b"\r\n"
            self._conn._live_transport().write(last)
            if self._conn._writing_paused:
                await self._conn._drain()

    @property
    def accepts_trailers(self) -> bool:
        """Whether the request said `TE: trailers` (HTTP/1.1): trailer fields
        would reach it after a chunked body."""
        request = self._request
        if request.version != (1, 1):
            return False
        return any(b"trailers" in split_list(value) for value in request.headers.getall_raw("TE"))

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """Call `callback` once when the connection is lost or the client ends
        its side (at once if either happened already): for interfaces that
        must tell their application, as ASGI's `http.disconnect` does. (A
        client that half-closes and waits for its answer cannot be told from
        one that left until a write fails; uvicorn, too, takes the end of
        its input as a disconnect.)"""
        if self._conn._transport is None or self._conn._peer_eof:
            callback()
        elif self._on_lost is None:
            self._on_lost = [callback]
        else:
            self._on_lost.append(callback)

    async def drain(self) -> None:
        """Wait until the transport accepts more data (after `pause_writing`)."""
        if self._conn._writing_paused:
            await self._conn._drain()

    def detach(self) -> tuple[asyncio.Transport, bytes]:
        """Hand the connection over after a 101 (or a 2xx to CONNECT).

        Returns the transport and the bytes the client sent after the request
        head. The caller must install its own protocol at once with
        `transport.set_protocol(...)`: this one stops reading HTTP.
        """
        accepted = self.status == 101 or (
            self._request.method == "CONNECT" and 200 <= self.status < 300
        )
        if not accepted or self._state == _IDLE:
            raise RuntimeError("detach() needs a sent 101 response (or a 2xx to CONNECT)")
        return self._conn._detach()

    def upgrade(self, protocol: Upgraded) -> None:
        """Hand the connection to `protocol` after a sent 101.

        Unlike `detach()`, the server keeps the connection: `protocol` gets
        `connection_made()` at once, then the bytes the client sent after
        the request head, then every later event of the transport; the
        server's shutdown calls its `shutdown()` (and aborts it after the
        shutdown timeout), and the end of the handler its `handler_ended()`.
        """
        if self.status != 101 or self._state == _IDLE:
            raise RuntimeError("upgrade() needs a sent 101 response")
        self._conn._upgrade(protocol)


def _echoes_a_disconnect(exc: BaseException) -> bool:
    """Whether a handler's exception is the echo of its client going away: a
    ConnectionError or a cancellation, or an exception raised while handling
    one (frameworks turn the OSError of a write to a gone client into their
    own, as Starlette's ClientDisconnect)."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, (ConnectionError, asyncio.CancelledError)):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


class HTTPServerProtocol(asyncio.Protocol):
    """Serves HTTP/1.1 on one connection by calling `app` for each request.

    Usually made by `HTTPServer`; can be made directly with `app` and `config`
    (`server` is the `HTTPServer` that tracks connections for shutdown).
    """

    __slots__ = (
        "_app",
        "_body_satisfied",
        "_client",
        "_closing",
        "_config",
        "_counted",
        "_current",
        "_date",
        "_deadline",
        "_deadline_kind",
        "_drain_waiter",
        "_inner",
        "_local",
        "_loop",
        "_parse_failed",
        "_parser",
        "_parsing",
        "_peer_eof",
        "_pumping",
        "_queue",
        "_reading_paused",
        "_resumed",
        "_send_timer",
        "_server",
        "_server_line",
        "_start",
        "_starter",
        "_task",
        "_timer",
        "_timer_when",
        "_transport",
        "_upgraded",
        "_writing_paused",
    )

    def __init__(
        self,
        app: App,
        config: ServerConfig = DEFAULT_CONFIG,
        server: HTTPServer | None = None,
        date: DateCache | None = None,
    ) -> None:
        """A protocol for one connection, calling `app` per request."""
        self._app = app
        self._config = config
        self._server = server
        self._date = date if date is not None else DateCache()
        self._server_line = (
            b"Server: " + config.server_header.encode("latin-1") + b"\r\n"
            if config.server_header
            else b""
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.Transport | None = None
        self._parser = RequestParser(config.limits)
        # Requests parsed but not yet handled (or a parse error to answer).
        self._queue: deque[tuple[Request, Body] | HTTPError] = deque()
        # The body the parser is filling; EMPTY_BODY when none (a sentinel that
        # spares the per-event None checks).
        self._parsing: Body = EMPTY_BODY
        self._current: tuple[Request, Body, ResponseWriter] | None = None
        self._task: asyncio.Future[None] | None = None  # a handler still running
        self._starter: EagerTaskStarter | HostTaskStarter | None = None
        self._pumping = False
        self._resumed = False  # a declined upgrade let the parser go on
        self._closing = False  # no further requests: close once the current one is done
        self._parse_failed = False
        self._peer_eof = False
        self._upgraded = False
        self._inner: Upgraded | None = None  # the protocol upgrade() handed over to
        # The client's address: the peer's, or a trusted proxy's PROXY header's.
        self._client: tuple[str, int] | None = None
        self._counted = False  # the request in flight counts against limit_concurrency
        self._local: tuple[str, int] | bool | None = False  # see ResponseWriter.server
        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._body_satisfied = True
        self._deadline = 0.0
        self._deadline_kind = _NO_DEADLINE
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._send_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start waiting for the first request head (under the header timeout)."""
        # Duck-typed: uvloop's transports have the Transport API without being
        # subclasses of asyncio.Transport.
        self._transport = transport = cast(asyncio.Transport, transport)
        self._loop = loop = asyncio.get_running_loop()
        self._starter = starter = handler_starter(loop)
        self._start = starter.start
        config = self._config
        server = self._server
        if server is not None:
            if (
                config.max_connections is not None
                and len(server._connections) >= config.max_connections
            ):
                server.refused_connections += 1
                self._parse_failed = True  # nothing it sends is read
                transport.close()
                return
            server._connections.add(self)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._client = (str(peer[0]), int(peer[1]))
        if (
            config.proxy_protocol
            and config.trusted_proxies is not None
            and self._client is not None
            and self._client[0] in config.trusted_proxies
        ):
            transport.set_protocol(_ProxyHeaderReader(self))
        self._set_deadline(_HEAD_DEADLINE, config.header_timeout)

    def data_received(self, data: bytes) -> None:
        """Feed the parser and serve whatever requests are now complete."""
        if self._parse_failed or self._upgraded:
            if self._inner is not None:
                self._inner.data_received(data)
            return
        parser = self._parser
        parser.feed(data)
        if self._pumping:
            return
        if (
            self._current is None
            and not self._queue
            and not self._closing
            and not self._reading_paused
            and not self._peer_eof
            and parser._state == _P_HEAD
        ):
            # The common read on an idle connection: it starts with a whole
            # request head. A bodiless request is started here, without the
            # pump's loops; whatever else the bytes hold (pipelined requests,
            # a body, half a head, an error) goes to the pump as usual.
            try:
                event = parser.next_head()  # a bodiless request comes ended
            except HTTPError as exc:
                self._on_parse_error(exc)
                self._pump()
                return
            if event is None:
                pass
            elif not (event.chunked or event.content_length):
                self._start_request(event, EMPTY_BODY)
                if (
                    self._current is None
                    and parser._state == _P_HEAD
                    and parser._pos >= len(parser._buf)
                    and not self._closing
                ):
                    return  # answered, and nothing else is buffered
            else:
                self._queue_with_body(event)
        self._pump()

    def _queue_with_body(self, request: Request) -> None:
        """Queue a request whose body follows; the parser now fills its Body."""
        if self._deadline_kind == _HEAD_DEADLINE:
            self._deadline_kind = _NO_DEADLINE
        body = Body(self)
        self._parsing = body
        self._queue.append((request, body))

    def eof_received(self) -> bool:
        """The client finished sending: answer what it sent, then close. With
        `handler_cancellation`, a client that leaves while its handler waits
        is taken as gone (a half-closed client cannot be told from a closed
        one until a write fails): the connection closes and the handler is
        cancelled."""
        if self._inner is not None:
            return bool(self._inner.eof_received())
        self._peer_eof = True
        self._notify_lost()
        task = self._task
        if (
            self._config.handler_cancellation
            and task is not None
            and not task.done()
            and not self._upgraded
        ):
            # Close (flushing, under close_timeout: a client that no longer
            # reads gets aborted); connection_lost then cancels the task.
            self._close_transport()
            return False
        if not self._pumping and not self._upgraded:
            self._pump()
        # Keep the write side open while requests remain to be answered.
        return self._transport is not None and not self._transport.is_closing()

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail whatever waits on this connection; the handler finishes on its own."""
        if self._inner is not None:
            self._inner.connection_lost(exc)
        self._transport = None
        self._closing = True
        starter = self._starter
        if starter is not None:
            starter.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        lost = ConnectionResetError("the client closed the connection")
        if self._current is not None:
            self._current[1].set_exception(lost)
            task = self._task
            if task is not None and self._config.handler_cancellation and not task.done():
                task.cancel("the client closed the connection")
        for item in self._queue:
            if not isinstance(item, HTTPError):
                item[1].set_exception(lost)
        self._queue.clear()
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_exception(lost)
                # Its writers may all have been cancelled (shutdown) and gone.
                waiter.exception()
        if self._server is not None:
            self._server._forget(self)
        self._notify_lost()

    def _notify_lost(self) -> None:
        """Tell whoever asked (`ResponseWriter.on_disconnect`) that the client
        of the request in flight has gone or ended its side."""
        current = self._current
        if current is not None and current[2]._on_lost is not None:
            callbacks, current[2]._on_lost = current[2]._on_lost, None
            for callback in callbacks:
                callback()

    def pause_writing(self) -> None:
        """The transport's buffer is full: writers wait in `drain()`."""
        self._writing_paused = True
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        """The transport's buffer drained: wake writers."""
        self._writing_paused = False
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if self._inner is not None:
            self._inner.resume_writing()

    # -- the request pipeline ------------------------------------------------------

    def _pump(self) -> None:
        """Parse what is buffered and run handlers, until a handler suspends or
        the parser needs bytes; then pause or resume reading to match."""
        self._pumping = True
        try:
            while True:
                self._resumed = False
                capped = self._pull()
                self._dispatch()
                if self._transport is None or self._upgraded:
                    break
                # Go round again if the parser stopped for us, not for want of
                # bytes, and that reason is gone: a handler (run eagerly) made
                # room in the queue or drained the body buffer, or a declined
                # upgrade resumed the parser.
                if capped and not self._full():
                    continue
                if self._resumed and self._current is None:
                    continue
                break
        finally:
            self._pumping = False
        if (
            self._reading_paused
            or self._queue
            or self._parsing is not EMPTY_BODY
            or self._parse_failed
            or self._parser._state != _P_HEAD
        ):
            self._update_reading(self._full())
        # (Otherwise reading is on and nothing caps it: nothing to change.)
        if self._current is None and not self._queue:
            if self._peer_eof:
                self._close_transport()  # everything the client sent is answered
            elif self._deadline_kind != _HEAD_DEADLINE and (
                # parser.head_pending, inlined: this runs per read
                (parser := self._parser)._state == _P_HEAD
                and (parser._pos < len(parser._buf) or parser._skipped > 0)
            ):
                # A new head has started: from now on it has header_timeout to
                # arrive whole, however it dribbles in.
                self._set_deadline(_HEAD_DEADLINE, self._config.header_timeout)

    def _full(self) -> bool:
        """Whether parsing must wait: the queue is full, or the body being
        received has as many unread bytes as the handler may fall behind by
        (and the handler is not waiting for more, as `read()` to EOF does)."""
        if len(self._queue) >= self._config.max_pipelined:
            return True
        parsing = self._parsing
        return parsing._size >= self._config.body_buffer and parsing._waiter is None

    def _pull(self) -> bool:
        """Turn parser events into queued requests and body bytes. Returns True if
        it stopped because the queue or a body buffer is full."""
        parser = self._parser
        queue = self._queue
        limit = self._config.max_pipelined
        body_buffer = self._config.body_buffer
        while True:
            if len(queue) >= limit:
                return True
            parsing = self._parsing
            if parsing._size >= body_buffer and parsing._waiter is None:
                return True
            try:
                event = parser.next_event()
            except HTTPError as exc:
                self._on_parse_error(exc)
                return False
            if event is None:
                if self._peer_eof:
                    # Only now, with everything buffered parsed, can the end of
                    # input be judged: between requests, or inside one?
                    try:
                        parser.feed_eof()
                    except HTTPError as exc:
                        self._on_parse_error(exc)
                return False
            if type(event) is bytes:
                parsing.feed_data(event)
            elif type(event) is Request:
                if event.chunked or event.content_length:
                    self._queue_with_body(event)
                    continue
                if self._deadline_kind == _HEAD_DEADLINE:
                    self._deadline_kind = _NO_DEADLINE
                # No body: its EndOfMessage is next; take it now (one call
                # less per request), and stop if the parser's buffer is empty.
                queue.append((event, EMPTY_BODY))
                parser.next_event()
                if parser._state != _P_HEAD:
                    return False  # CLOSED, or PAUSED for an upgrade: wait and see
                if parser._pos >= len(parser._buf) and not self._peer_eof:
                    return False
            else:  # EndOfMessage
                if parsing is not EMPTY_BODY:
                    parsing.feed_eof(cast(EndOfMessage, event).trailers)
                self._parsing = EMPTY_BODY
                if parser._state == _P_PAUSED and parsing._discard:
                    # An upgrade (or CONNECT) whose handler already finished
                    # without taking the connection: its body ended only now,
                    # so _finish_request could not resume the parser then.
                    parser.resume()
                    continue
                if parser._state != _P_HEAD:
                    return False  # CLOSED, or PAUSED for an upgrade: wait and see

    def _dispatch(self) -> None:
        """Start queued requests in order while no handler is running."""
        queue = self._queue
        # Once closing (a handler failed, the client asked, or shutdown), no
        # queued request is started: the response said `Connection: close`.
        while self._current is None and queue and not self._closing and self._transport:
            item = queue.popleft()
            if isinstance(item, HTTPError):
                self._answer_error(item)
                return
            request, body = item
            self._start_request(request, body)

    def _start_request(self, request: Request, body: Body) -> None:
        """Run the handler of `request` (eagerly: it may finish right here)."""
        writer = ResponseWriter(self, request)
        self._current = (request, body, writer)
        if self._deadline_kind != _NO_DEADLINE:
            self._deadline_kind = _NO_DEADLINE
        app = self._app
        limit = self._config.limit_concurrency
        if limit is not None and self._server is not None:
            server = self._server
            if server._in_flight >= limit:
                server.shed_requests += 1
                app = _shed
            else:
                server._in_flight += 1
                self._counted = True
        try:
            started = self._start(app(request, body, writer))
        except Exception as exc:  # the app callable itself failed
            logger.error("error starting the request handler", exc_info=exc)
            self._finish_request(exc)
            return
        if started is None:
            if (
                # The common end, settled here: the handler returned after
                # sending a whole response, with no body left unread and no
                # reason to close. Anything else goes through _finish_request.
                writer._state == _DONE
                and not writer._close
                and body._eof
                and not self._closing
                and self._parser._state == _P_HEAD
                and writer.status != 101
                and request.method != "CONNECT"
            ):
                self._current = None
                if self._counted:
                    self._uncount()
                if not self._queue:
                    parser = self._parser
                    if parser._pos < len(parser._buf) or parser._skipped > 0:  # head_pending
                        self._set_deadline(_HEAD_DEADLINE, self._config.header_timeout)
                    else:
                        self._set_deadline(_IDLE_DEADLINE, self._config.keepalive_timeout)
            else:
                self._finish_request(None)
        elif isinstance(started, BaseException):
            self._finish_request(started)
        else:
            self._task = started
            started.add_done_callback(self._on_task_done)

    def _uncount(self) -> None:
        self._counted = False
        if self._server is not None:
            self._server._in_flight -= 1

    def _on_task_done(self, task: asyncio.Future[None]) -> None:
        self._task = None
        self._finish_task(task)
        if not self._pumping and self._transport is not None and not self._upgraded:
            self._pump()

    def _finish_task(self, task: asyncio.Future[None]) -> None:
        exc = asyncio.CancelledError() if task.cancelled() else task.exception()
        self._finish_request(exc)

    def _finish_request(self, exc: BaseException | None) -> None:
        """The handler returned (or raised): settle the response and the body,
        then decide whether the connection goes on."""
        current = self._current
        assert current is not None
        request, body, writer = current
        self._current = None
        if self._counted:
            self._uncount()
        if self._upgraded:
            if self._inner is not None:
                self._inner.handler_ended(exc)
            return
        if writer.status == 101 or (request.method == "CONNECT" and 200 <= writer.status < 300):
            logger.error("handler for %r switched protocols without detach()", request)
            self._closing = True
        transport = self._transport
        if transport is None:
            if exc is not None and not _echoes_a_disconnect(exc):
                logger.error("error handling %r (client gone)", request, exc_info=exc)
            return
        if exc is not None:
            if isinstance(exc, HTTPError):
                logger.debug("request %r refused: %s", request, exc)
                status, detail = exc.status, f"{exc.status} {exc.reason}: {exc.detail}"
            elif isinstance(exc, (ConnectionError, asyncio.CancelledError)) and (
                self._closing or transport.is_closing()
            ):
                # The connection was given up (send timeout, shutdown, the
                # client went away): the handler's failure is its echo.
                logger.debug("handler for %r ended by the closing connection: %r", request, exc)
                status, detail = 500, "500 Internal Server Error"
            else:
                logger.error("error handling %r", request, exc_info=exc)
                status, detail = 500, "500 Internal Server Error"
            if writer._state == _IDLE:
                self._write_error(status, detail)
            self._closing = True
        elif writer._state != _DONE:
            if writer._state == _IDLE:
                logger.error("handler for %r returned without a response", request)
                self._write_error(500, "500 Internal Server Error")
            else:
                logger.error("handler for %r returned before write_eof()", request)
            self._closing = True
        elif writer._close:
            self._closing = True

        if not body._eof:
            # The handler left body bytes unread. A client still waiting for
            # 100 Continue, or one whose body failed, cannot be kept in step.
            if (request.expect_continue and not writer.continue_sent) or body._exc is not None:
                self._closing = True
            body.discard()

        if self._parser._state == _P_PAUSED:
            self._parser.resume()  # an upgrade or CONNECT declined: carry on with HTTP
            self._resumed = True

        if self._closing:
            self._close_transport()
        elif not self._queue and not self._parser.head_pending:
            self._set_deadline(_IDLE_DEADLINE, self._config.keepalive_timeout)
        elif not self._queue:
            self._set_deadline(_HEAD_DEADLINE, self._config.header_timeout)

    def _on_parse_error(self, exc: HTTPError) -> None:
        logger.debug("bad request from %s: %s", self._peer(), exc)
        self._parse_failed = True
        parsing = self._parsing
        if parsing is not EMPTY_BODY:
            # The error is in a body the handler is (or will be) reading; the
            # connection closes after that request (see _finish_request).
            parsing.set_exception(exc)
            self._parsing = EMPTY_BODY
            if self._current is None and not self._queue:
                self._close_transport()
        else:
            self._queue.append(exc)

    def _answer_error(self, exc: HTTPError) -> None:
        self._write_error(exc.status, f"{exc.status} {exc.reason}: {exc.detail}")
        self._close_transport()

    def _write_error(self, status: int, text: str) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        body = text.encode("ascii", "backslashreplace") + b"\n"
        transport.write(
            b"".join(
                (
                    status_line(status),
                    self._date.line(),
                    self._server_line,
                    b"Content-Type: text/plain; charset=utf-8\r\n",
                    b"Content-Length: %d\r\n" % len(body),
                    _CLOSE_LINE,
                    b"\r\n",
                    body,
                )
            )
        )

    def _close_transport(self) -> None:
        self._closing = True
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()  # flushes what is buffered first...
            # ... unless the client stops reading: then it is aborted, so no
            # client can hold a file descriptor open by not reading.
            self._set_deadline(_CLOSE_DEADLINE, self._config.close_timeout)

    def _update_reading(self, capped: bool) -> None:
        transport = self._transport
        if transport is None or self._upgraded:
            return
        state = self._parser._state
        if self._parse_failed or state in (_P_CLOSED, _P_PAUSED):
            # Nothing more will be parsed (or not until an upgrade is settled):
            # stop reading rather than buffer what the client keeps sending.
            capped = True
        if capped and not self._reading_paused:
            self._reading_paused = True
            transport.pause_reading()
        elif not capped and self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    # -- what Body and ResponseWriter call ---------------------------------------

    def body_wanted(self, body: Body) -> None:
        """A handler waits for body bytes: send 100 Continue if the client waits
        for it, make sure the socket is read, and start the body timeout."""
        current = self._current
        if current is not None and current[1] is body:
            request, _, writer = current
            if request.expect_continue and not writer.continue_sent and not writer.started:
                writer.continue_sent = True
                transport = self._transport
                if transport is not None:
                    transport.write(_CONTINUE)
        self._body_satisfied = False
        self._set_deadline(_BODY_DEADLINE, self._config.body_timeout)
        if self._reading_paused and not self._pumping:
            self._pump()

    def body_satisfied(self, body: Body) -> None:
        """The wait for body bytes ended."""
        if self._deadline_kind == _BODY_DEADLINE:
            self._deadline_kind = _NO_DEADLINE

    def body_consumed(self, body: Body) -> None:
        """A handler read body bytes: resume reading if the buffer was full."""
        if self._reading_paused and not self._pumping and self._transport is not None:
            self._pump()

    def _live_transport(self) -> asyncio.Transport:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the connection is closed")
        return transport

    async def _drain(self) -> None:
        if self._transport is None:
            raise ConnectionResetError("the connection is closed")
        waiter = self._drain_waiter
        if waiter is None:
            assert self._loop is not None
            waiter = self._drain_waiter = self._loop.create_future()
            # One send deadline per pause, shared by every writer waiting in
            # it, apart from the connection's timer (whose header, idle and
            # body deadlines a duplex handler may need at the same time).
            self._send_timer = self._loop.call_later(
                self._config.send_timeout, self._on_send_timeout
            )
        await asyncio.shield(waiter)

    def _detach(self) -> tuple[asyncio.Transport, bytes]:
        transport = self._live_transport()
        self._upgraded = True
        if self._starter is not None:
            self._starter.close()  # no more requests: its host ends with this handler
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        if self._server is not None:
            self._server._forget(self)
        return transport, self._parser.trailing_data

    def _upgrade(self, protocol: Upgraded) -> None:
        transport = self._live_transport()
        self._upgraded = True
        self._inner = protocol
        if self._starter is not None:
            self._starter.close()  # no more requests: its host ends with this handler
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        protocol.connection_made(transport)
        if self._writing_paused:
            protocol.pause_writing()
        trailing = self._parser.trailing_data
        if trailing and self._transport is not None:
            protocol.data_received(trailing)

    def _peer(self) -> object:
        transport = self._transport
        return transport.get_extra_info("peername") if transport is not None else None

    # -- time ------------------------------------------------------------------

    def _set_deadline(self, kind: int, delay: float) -> None:
        loop = self._loop
        if loop is None or self._deadline_kind == _CLOSE_DEADLINE:
            return  # closing: only the abort is left to guard
        when = loop.time() + delay
        self._deadline = when
        self._deadline_kind = kind
        timer = self._timer
        if timer is None or when < self._timer_when:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(when, self._on_timer)
            self._timer_when = when

    def _on_send_timeout(self) -> None:
        """A pause in writing outlasted send_timeout: the client does not read."""
        self._send_timer = None
        transport = self._transport
        if transport is not None:
            logger.debug("aborting %s: it did not read its response in time", self._peer())
            self._closing = True
            transport.abort()  # writers waiting in drain() get ConnectionResetError

    def _on_timer(self) -> None:
        self._timer = None
        kind = self._deadline_kind
        if kind == _NO_DEADLINE or self._transport is None:
            return
        assert self._loop is not None
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._on_timer)
            self._timer_when = self._deadline
            return
        self._deadline_kind = _NO_DEADLINE
        if kind == _BODY_DEADLINE:
            if self._current is not None:
                self._closing = True
                self._current[1].set_exception(HTTPError(408, "timed out reading the body"))
        elif kind == _HEAD_DEADLINE:
            logger.debug("header timeout for %s", self._peer())
            self._parse_failed = True
            if self._parser.head_pending:
                self._write_error(408, "408 Request Timeout: timed out reading the request head")
            self._close_transport()
        elif kind == _CLOSE_DEADLINE:
            logger.debug("aborting %s: its last response was not read in time", self._peer())
            self._abort()
        else:  # idle keep-alive
            self._close_transport()

    # -- shutdown ----------------------------------------------------------------

    def _shutdown(self) -> None:
        """Finish the request in flight (if any) and close; close now if idle."""
        if self._inner is not None:
            self._inner.shutdown()
            return
        self._closing = True
        if self._current is None and not self._queue:
            self._close_transport()

    def _abort(self) -> None:
        """Shutdown ran out of time: drop the connection and cancel its handler
        (left running, it would wait on a connection that is gone, and be
        destroyed pending when the loop closes)."""
        # The task first: a handler in the loop's sendfile has the socket
        # registered for writing, and its cancellation unregisters it; aborted
        # first, the socket would be closed under that registration.
        task = self._task
        if task is not None and not task.done():
            task.cancel()
        transport = self._transport
        if transport is not None:
            transport.abort()


_SHED_HEADERS: Final = (
    ("Content-Type", "text/plain; charset=utf-8"),
    ("Retry-After", "1"),
)


async def _shed(request: Request, body: Body, writer: ResponseWriter) -> None:
    """The answer past `limit_concurrency`: the application is not called."""
    await writer.send(503, _SHED_HEADERS, b"503 Service Unavailable: the server is busy\n")


class _ProxyHeaderReader(asyncio.Protocol):
    """Reads the PROXY protocol header a trusted proxy sends before HTTP, then
    hands the connection back to its HTTP protocol (the header timeout that
    guards a slow request head guards this too)."""

    __slots__ = ("_buf", "_conn")

    def __init__(self, conn: HTTPServerProtocol) -> None:
        self._conn = conn
        self._buf = b""

    def data_received(self, data: bytes) -> None:
        conn = self._conn
        self._buf += data
        try:
            found = read_proxy_header(self._buf)
        except ValueError as exc:
            logger.info("closing the connection from %s: %s", conn._peer(), exc)
            conn._parse_failed = True
            if conn._transport is not None:
                conn._transport.close()
            return
        if found is None:
            return
        header, used = found
        if header.client is not None:
            conn._client = (header.client, header.port or 0)
        rest = self._buf[used:]
        self._buf = b""
        if conn._transport is not None:
            conn._transport.set_protocol(conn)
            if rest:
                conn.data_received(rest)

    def eof_received(self) -> bool | None:
        return self._conn.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._conn.connection_lost(exc)

    def pause_writing(self) -> None:
        self._conn.pause_writing()

    def resume_writing(self) -> None:
        self._conn.resume_writing()


class HTTPServer:
    """A protocol factory for `loop.create_server()` that also tracks its
    connections, so `shutdown()` can finish them gracefully.

        http = HTTPServer(app, ServerConfig(...))
        server = await loop.create_server(http, "127.0.0.1", 8080)
        ...
        server.close()                 # stop accepting
        await http.shutdown(timeout=10) # finish in-flight requests, close idle ones
        await server.wait_closed()
    """

    __slots__ = (
        "_app",
        "_config",
        "_connections",
        "_date",
        "_empty",
        "_in_flight",
        "refused_connections",
        "shed_requests",
    )

    def __init__(self, app: App, config: ServerConfig = DEFAULT_CONFIG) -> None:
        """A factory serving `app` with `config`."""
        self._app = app
        self._config = config
        self._connections: set[HTTPServerProtocol] = set()
        self._date = DateCache()
        self._empty: asyncio.Future[None] | None = None
        self._in_flight = 0  # requests counted against limit_concurrency
        #: Requests answered 503 by `limit_concurrency`.
        self.shed_requests = 0
        #: Connections closed at once by `max_connections`.
        self.refused_connections = 0

    def __call__(self) -> HTTPServerProtocol:
        """A protocol for a new connection."""
        return HTTPServerProtocol(self._app, self._config, self, self._date)

    @property
    def connections(self) -> int:
        """How many connections are open."""
        return len(self._connections)

    @property
    def in_flight(self) -> int:
        """Requests being handled (counted when `limit_concurrency` is set)."""
        return self._in_flight

    def _forget(self, conn: HTTPServerProtocol) -> None:
        self._connections.discard(conn)
        if not self._connections and self._empty is not None and not self._empty.done():
            self._empty.set_result(None)

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Close idle connections now, let in-flight requests finish (their
        responses say `Connection: close`), and abort whatever is still open
        after `timeout` seconds."""
        for conn in list(self._connections):
            conn._shutdown()
        if not self._connections:
            return
        self._empty = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._empty), timeout)
        except TimeoutError:
            for conn in list(self._connections):
                conn._abort()
