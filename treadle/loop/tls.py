"""TLS as a protocol layer: `ssl.SSLObject` over two `ssl.MemoryBIO`s between transports.

TLS is not a kind of socket here but a protocol that sits on any plain stream
transport, the design of asyncio's `sslproto` (3.11+, after uvloop). The
`TLSProtocol` is the plain transport's protocol: bytes from the network go into
the incoming BIO, the `SSLObject` turns them into application data, and what it
wants to send comes out of the outgoing BIO and goes to `transport.write()`. The
application sees an `SSLTransport`, a full `asyncio.Transport`. Because only the
public Transport/Protocol API is used below, the layer runs unchanged on
Treadle's socket transports, on the stdlib's, and on another `SSLTransport`
(TLS inside TLS, as `start_tls` over an `ssl=` connection does).

Wiring it into a loop (what `streams.py` and `servers.py` do)::

    server_hostname = check_ssl_args("connection", ssl, host=host, ...)  # before connecting
    protocol = protocol_factory()
    waiter = loop.create_future()
    tls = TLSProtocol(loop, protocol, make_context(ssl, False, server_hostname), waiter,
                      server_hostname=server_hostname, ssl_handshake_timeout=...,
                      ssl_shutdown_timeout=...)
    plain = SocketTransport(loop, sock, tls)        # calls tls.connection_made(plain)
    try:
        await waiter                                # the handshake; TLS errors raise here
    except BaseException:
        plain.close()
        raise
    return tls.app_transport, protocol

`start_tls()` upgrades a connected transport in place (`loop.start_tls` is a thin
call to it); `check_ssl_args()` and `check_start_tls_args()` raise asyncio's
exceptions, with asyncio's messages, for arguments that make no sense.

Behaviour is asyncio's, including where the tests of CPython probe it (the
`_ssl_protocol` and `_test__append_write_backlog` names on the transport exist
for them), with these decisions:

- The protocol is an `asyncio.BufferedProtocol`, and its receive buffer is
  one per loop, not one per connection. Per connection, asyncio's 256 KiB
  buffer is 256 KiB of memory (2000 idle connections: +533 MiB; here +21 MiB).
  Not receiving into a buffer at all (`data_received`) would cost the transport
  a 256 KiB `recv()` allocation per read, which glibc serves with mmap: 14 us
  against 2 us for `recv_into()`, and 21k against 48k TLS round trips/s on the
  stdlib loop (loopback, one core). One buffer serves every connection of a
  loop because transports fill it before `buffer_updated()` returns control
  (the stdlib's selector and proactor transports, Treadle's, uvloop's, and
  this layer as the outer one of nested TLS), and `buffer_updated()` copies it
  into the incoming BIO first thing. Likewise decrypted data for a `Protocol`
  application goes through one scratch buffer per loop into one `bytes` per
  `data_received()`; a `BufferedProtocol` application has the SSL object
  decrypt straight into the buffer it hands out.
- `pause_reading()` on the TLS transport pauses the plain transport at once
  (asyncio leaves it reading until 256 KiB of ciphertext pile up); it is resumed
  for the closing handshake, which must read the peer's close_notify.
- Write flow control counts the data the TLS layer holds: the application's
  writes not yet encrypted plus the ciphertext not yet handed to the plain
  transport. The latter only grows while the plain transport has paused this
  protocol, so the application is paused by the plain transport's back-pressure
  too, once the TLS layer has buffered the high-water mark on top of it.
- A peer's close_notify reaches the application as `eof_received()`; TLS 1.2
  has no half-close, so, as in asyncio, a true return value only logs a warning
  and the connection closes after our close_notify. A TCP EOF without
  close_notify is also reported as `eof_received()` then `connection_lost(None)`
  (asyncio's behaviour and CPython's tests expect it); debug mode logs it as a
  possible truncation. After `close()` the application gets no more data and
  no `eof_received()`, only `connection_lost()`: that is the Transport contract
  (asyncio still delivers both).
- On a fatal error the SSL object's pending output (usually an alert telling
  the peer why) is written before the plain transport is aborted, so a peer
  that fails our certificate check hears "unknown CA", not a reset. The
  plain transport is only used through its public API, so the exception reaches
  the application through this protocol's `connection_lost()`.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import warnings
import weakref
from asyncio import constants
from asyncio.log import logger
from collections.abc import Callable, Iterable
from typing import Any, Literal, cast

from .flowcontrol import buffer_limits

__all__ = [
    "SSL_HANDSHAKE_TIMEOUT",
    "SSL_SHUTDOWN_TIMEOUT",
    "SSLTransport",
    "TLSProtocol",
    "check_ssl_args",
    "check_start_tls_args",
    "make_context",
    "start_tls",
]

#: Seconds a handshake may take before the connection is aborted (asyncio's default).
SSL_HANDSHAKE_TIMEOUT = 60.0
#: Seconds to wait for the peer's close_notify after sending ours (asyncio's default).
SSL_SHUTDOWN_TIMEOUT = 30.0

#: Default high-water marks, asyncio's: ciphertext waiting in the incoming BIO
#: pauses the plain transport's reading; data held by the TLS layer for writing
#: pauses the application's writing.
READ_HIGH_WATER = 256 * 1024
WRITE_HIGH_WATER = 512 * 1024

#: The size of the loop's two shared buffers: the most ciphertext one read
#: takes in and the most decrypted data one `data_received()` gets (asyncio's
#: figure for both).
BUFFER_SIZE = 256 * 1024

#: Writes after the connection is closed are dropped; from this many on, logged.
_LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5

# "Not now, call again with more data": what the SSL object raises when the
# incoming BIO runs dry. SSLSyscallError is among them as in asyncio and uvloop:
# OpenSSL reports it while it discards application data during a shutdown.
_AGAIN = (ssl.SSLWantReadError, ssl.SSLWantWriteError, ssl.SSLSyscallError)

# The states of the TLS session (ints: compared on every read and write).
_INIT = 0  # no transport yet
_HANDSHAKE = 1
_WRAPPED = 2  # application data flows
_FLUSHING = 3  # closing: sending what the application wrote before close_notify
_SHUTDOWN = 4  # our close_notify is out; waiting for the peer's
_CLOSED = 5  # finished, failed or aborted; nothing more happens
_STATE_NAMES = ("INIT", "HANDSHAKE", "WRAPPED", "FLUSHING", "SHUTDOWN", "CLOSED")

# What the application protocol has been told.
_APP_INIT = 0  # nothing yet
_APP_CONNECTED = 1  # connection_made() (or start_tls: it already was)
_APP_EOF = 2  # eof_received()
_APP_LOST = 3  # connection_lost()

# Outcome of one pass of decrypting into one buffer.
_DRY = 0  # the SSL object needs more ciphertext
_MORE = 1  # the buffer filled up: there may be more
_EOF = 2  # the peer's close_notify
_FAILED = 3  # a fatal error was handled


_loop_buffers: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, tuple[memoryview, memoryview]
] = weakref.WeakKeyDictionary()


def _buffers_of(loop: asyncio.AbstractEventLoop) -> tuple[memoryview, memoryview]:
    """The loop's buffers for ciphertext coming in and for decrypted data on its
    way to `data_received()`, shared by all its TLS connections.

    Sharing is safe because each use is over before the loop runs anything else:
    the transport fills the receive buffer and `buffer_updated()` copies it into
    the incoming BIO at once; the SSL object decrypts into the scratch buffer and
    it is copied out before the application is called. With nested TLS the
    outer layer decrypts into the inner one's receive buffer, which the inner
    one copies before it decrypts in turn.
    """
    try:
        return _loop_buffers[loop]
    except KeyError:
        buffers = _loop_buffers[loop] = _new_buffers()
        return buffers
    except TypeError:  # a loop that cannot be weakly referenced: buffers of its own
        return _new_buffers()


def _new_buffers() -> tuple[memoryview, memoryview]:
    return memoryview(bytearray(BUFFER_SIZE)), memoryview(bytearray(BUFFER_SIZE))


def make_context(
    ssl_arg: ssl.SSLContext | bool | None, server_side: bool, server_hostname: str | None
) -> ssl.SSLContext:
    """The context for a loop method's `ssl=` argument: the context itself, or
    for `ssl=True` on a client the default context, with hostname checking
    when there is a hostname to check (asyncio's rule)."""
    if isinstance(ssl_arg, ssl.SSLContext):
        return ssl_arg
    if server_side:
        raise ValueError("Server side SSL needs a valid SSLContext")
    context = ssl.create_default_context()
    if not server_hostname:
        context.check_hostname = False
    return context


def _check_timeout(name: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{name} should be a positive number, got {value}")


def check_ssl_args(
    kind: Literal["connection", "unix_connection", "server", "accepted_socket"],
    ssl: Any,
    *,
    host: str | None = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> str | None:
    """Check the TLS arguments of a loop method as asyncio does, with its messages;
    return the `server_hostname` a client connection should verify.

    `kind` names the method: "connection" (`create_connection`: the hostname
    defaults to `host`), "unix_connection" (`create_unix_connection`: it must
    be given), "server" (`create_server`, `create_unix_server`: `ssl` must be a
    context, not a bool) or "accepted_socket" (`connect_accepted_socket`).
    Timeouts must be positive; asyncio finds that out only after connecting.
    """
    if kind == "server" and isinstance(ssl, bool):
        raise TypeError("ssl argument must be an SSLContext or None")
    if kind in ("connection", "unix_connection"):
        if server_hostname is not None and not ssl:
            raise ValueError("server_hostname is only meaningful with ssl")
        if server_hostname is None and ssl:
            # '' is the explicit way to skip the hostname check; a numeric host
            # is checked against the certificate's IP addresses.
            if kind == "unix_connection":
                raise ValueError("you have to pass server_hostname when using ssl")
            if not host:
                raise ValueError("You must set server_hostname when using ssl without a host")
            server_hostname = host
    if ssl_handshake_timeout is not None and not ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if ssl_shutdown_timeout is not None and not ssl:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
    _check_timeout("ssl_handshake_timeout", ssl_handshake_timeout)
    _check_timeout("ssl_shutdown_timeout", ssl_shutdown_timeout)
    return server_hostname if ssl and kind in ("connection", "unix_connection") else None


def check_start_tls_args(transport: object, sslcontext: object) -> None:
    """Refuse what `loop.start_tls()` cannot upgrade, with asyncio's messages."""
    if not isinstance(sslcontext, ssl.SSLContext):
        raise TypeError(
            f"sslcontext is expected to be an instance of ssl.SSLContext, got {sslcontext!r}"
        )
    # The marker asyncio's transports carry (Treadle's and SSLTransport too): a
    # stream transport whose protocol can be swapped.
    if not getattr(transport, "_start_tls_compatible", False):
        raise TypeError(f"transport {transport!r} is not supported by start_tls()")


async def start_tls(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.BaseTransport,
    protocol: asyncio.BaseProtocol,
    sslcontext: ssl.SSLContext,
    *,
    server_side: bool = False,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> SSLTransport | None:
    """Upgrade the open stream `transport` (whose protocol is `protocol`) to TLS:
    what `loop.start_tls()` does. Return the TLS transport once the handshake is
    done; `protocol` keeps its place (no second `connection_made()`) and should
    write to the returned transport from now on.

    The handshake's errors are raised here; if it fails or this call is
    cancelled, `transport` is closed, and `protocol` gets `connection_lost()`.

    A transport that was closing before the upgrade gives None, as asyncio's
    start_tls does (on 3.11 to 3.13 alike; aiohttp's client relies on it):
    once `protocol` has had its `connection_lost()`, or at once if it already
    had it (asyncio waits forever then: its handshake never starts, so its
    timeout never fires). An error the connection was lost with is raised.
    """
    check_start_tls_args(transport, sslcontext)
    if transport.is_closing():
        await _closed_before_upgrade(loop, transport, protocol)
        return None
    waiter: asyncio.Future[None] = loop.create_future()
    tls = TLSProtocol(
        loop,
        protocol,
        sslcontext,
        waiter,
        server_side,
        server_hostname,
        call_connection_made=False,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )
    app_transport = tls.app_transport
    plain: Any = transport  # a ReadTransport and a WriteTransport, checked above
    # Swap the protocol while reading is paused, so no data can reach the TLS
    # protocol before connection_made(); then read again even if the
    # application had paused the plain transport: the handshake needs it.
    plain.pause_reading()
    plain.set_protocol(tls)
    tls.connection_made(plain)
    if not plain.is_closing():
        plain.resume_reading()
    try:
        await waiter
    except BaseException:
        plain.close()
        raise
    return app_transport


async def _closed_before_upgrade(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.BaseTransport,
    protocol: asyncio.BaseProtocol,
) -> None:
    """start_tls() on a transport that is closing: nothing to upgrade. Return
    None once `protocol` has heard connection_lost(), raise what it was lost
    with, as asyncio does."""
    if transport.get_protocol() is None:
        # Lost already (transports let go of their protocol then).
        return None
    lost: asyncio.Future[None] = loop.create_future()
    transport.set_protocol(_LostRelay(protocol, lost))
    try:
        await lost
    except asyncio.CancelledError:
        if transport.get_protocol() is not None:
            transport.set_protocol(protocol)
        raise
    return None


class _LostRelay(asyncio.Protocol):
    """Stands in for a protocol on a closing transport, to learn when it is
    lost; passes everything on."""

    def __init__(self, protocol: Any, lost: asyncio.Future[None]) -> None:
        self._protocol = protocol
        self._lost = lost

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            if not self._lost.done():
                if exc is None:
                    self._lost.set_result(None)
                else:
                    self._lost.set_exception(exc)
            self._lost = None  # type: ignore[assignment]

    def pause_writing(self) -> None:
        self._protocol.pause_writing()

    def resume_writing(self) -> None:
        self._protocol.resume_writing()

    def data_received(self, data: bytes) -> None:
        self._protocol.data_received(data)

    def eof_received(self) -> bool | None:
        return self._protocol.eof_received()  # type: ignore[no-any-return]


def _flow_limits(high: int | None, low: int | None, default_high: int) -> tuple[int, int]:
    """(high, low) from optional arguments, with asyncio's defaults and check."""
    return buffer_limits(high, low, default_high)


class SSLTransport(asyncio.Transport):
    """The transport a TLS connection's application protocol talks to.

    (Named after the `ssl` module, as asyncio's is: code, CPython's tests among
    it, tells a TLS transport by 'ssl' in its class name.)

    It holds no state of its own but whether it was closed: everything is
    forwarded to its `TLSProtocol`, which it lets go of when the connection is
    lost (that breaks the reference cycle between the two).
    """

    __slots__ = ("__weakref__", "_closed", "_conn_lost_writes", "_loop", "_ssl_protocol")

    # loop.start_tls() accepts it (TLS inside TLS); loop.sendfile() falls back
    # to reading the file and writing it here.
    _start_tls_compatible = True
    _sendfile_compatible = constants._SendfileMode.FALLBACK

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: TLSProtocol) -> None:
        """Made by `TLSProtocol`; applications get it from their protocol's
        `connection_made()` or from `loop.start_tls()`."""
        # The protocol's extra-info dict, shared: the handshake fills it in and
        # it still answers after the connection is gone.
        self._extra = protocol._extra
        self._loop = loop
        self._ssl_protocol: TLSProtocol | None = protocol
        self._closed = False
        self._conn_lost_writes = 0

    def __repr__(self) -> str:
        protocol = self._ssl_protocol
        state = _STATE_NAMES[protocol._state] if protocol is not None else "CLOSED"
        closing = " closing" if self._closed else ""
        return f"<SSLTransport {state}{closing}>"

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if not getattr(self, "_closed", True):
            self._closed = True
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)

    # -- the connection --------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """TLS details ('sslcontext', 'peercert', 'cipher', 'compression',
        'ssl_object'), else the plain transport's ('socket', 'peername', ...)."""
        extra = self._extra
        if name in extra:
            return extra[name]
        protocol = self._ssl_protocol
        if protocol is not None and protocol._transport is not None:
            return protocol._transport.get_extra_info(name, default)
        return default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Hand the application side of the connection to another protocol."""
        if self._ssl_protocol is not None:
            self._ssl_protocol._set_app_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The application protocol (None, as in asyncio, once the connection is lost)."""
        protocol = self._ssl_protocol
        return protocol._app_protocol if protocol is not None else None  # type: ignore[return-value]

    def is_closing(self) -> bool:
        """True once the connection is closing or closed, whoever started it."""
        return self._closed

    def close(self) -> None:
        """Send what was written, then close_notify; the connection closes when
        the peer answers (or after the shutdown timeout). No more data is
        delivered; `connection_lost(None)` follows."""
        if not self._closed:
            self._closed = True
            protocol = self._ssl_protocol
            if protocol is not None:
                protocol._app_closed = True
                protocol._start_shutdown()

    def abort(self) -> None:
        """Close at once: buffered data is lost and no close_notify is sent."""
        self._closed = True
        protocol = self._ssl_protocol
        if protocol is not None:
            protocol._app_closed = True
            protocol._abort(None)

    # -- reading ---------------------------------------------------------------------

    def is_reading(self) -> bool:
        """False while paused by `pause_reading()` or once closing."""
        protocol = self._ssl_protocol
        return protocol is not None and not self._closed and not protocol._app_reading_paused

    def pause_reading(self) -> None:
        """Deliver no data until `resume_reading()`; the plain transport stops
        reading too."""
        if self._ssl_protocol is not None:
            self._ssl_protocol._pause_reading()

    def resume_reading(self) -> None:
        """Deliver data again, starting with what arrived while paused (from the
        next loop iteration, not from inside this call)."""
        if self._ssl_protocol is not None:
            self._ssl_protocol._resume_reading()

    def set_read_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Ciphertext waiting in the TLS layer above `high` bytes pauses the plain
        transport's reading until it is down to `low`."""
        if self._ssl_protocol is not None:
            self._ssl_protocol._set_read_limits(high, low)

    def get_read_buffer_limits(self) -> tuple[int, int]:
        """(low, high) of `set_read_buffer_limits()`."""
        protocol = self._ssl_protocol
        if protocol is None:
            return (0, 0)
        return (protocol._read_low, protocol._read_high)

    def get_read_buffer_size(self) -> int:
        """Ciphertext received and not yet decrypted."""
        protocol = self._ssl_protocol
        return protocol._incoming.pending if protocol is not None else 0

    # -- writing ---------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and send `data`; what cannot go out now is buffered."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expecting a bytes-like instance, got {type(data).__name__}")
        if not data:
            return
        protocol = self._ssl_protocol
        if protocol is None:
            self._lost_write()
            return
        protocol._write_appdata(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        """Write the buffers as one: one TLS record sequence instead of one per piece."""
        self.write(b"".join(list_of_data))

    def _lost_write(self) -> None:
        self._conn_lost_writes += 1
        if self._conn_lost_writes >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
            logger.warning("SSL connection is closed")

    def write_eof(self) -> None:
        """Not possible: TLS has no half-close (close_notify ends both directions)."""
        raise NotImplementedError

    def can_write_eof(self) -> bool:
        """False: see `write_eof()`."""
        return False

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Pause the application's writing when the TLS layer holds more than
        `high` bytes; resume at `low`. The defaults are asyncio's (512 KiB, 128 KiB)."""
        protocol = self._ssl_protocol
        if protocol is not None:
            protocol._write_high, protocol._write_low = _flow_limits(high, low, WRITE_HIGH_WATER)
            protocol._control_app_writing()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """(low, high) of `set_write_buffer_limits()`."""
        protocol = self._ssl_protocol
        if protocol is None:
            return (0, 0)
        return (protocol._write_low, protocol._write_high)

    def get_write_buffer_size(self) -> int:
        """Bytes the TLS layer holds: written and not yet encrypted, plus
        ciphertext not yet handed to the plain transport."""
        protocol = self._ssl_protocol
        return protocol._write_buffer_size() if protocol is not None else 0

    @property
    def _protocol_paused(self) -> bool:
        # Read by asyncio's sendfile fallback, as on its own transports.
        protocol = self._ssl_protocol
        return protocol is not None and protocol._app_writing_paused

    def _test__append_write_backlog(self, data: bytes) -> None:
        # CPython's test_ssl queues data behind the SSL object's back with this.
        protocol = self._ssl_protocol
        if protocol is not None:
            protocol._write_backlog.append(data)
            protocol._backlog_size += len(data)


class TLSProtocol(asyncio.BufferedProtocol):
    """The TLS session of one connection: the plain transport's protocol, and
    the engine behind the `SSLTransport` its application protocol sees.

    `waiter` (optional) gets the handshake's outcome: its result is set when
    the handshake completes, its exception when it fails (an
    `ssl.SSLCertVerificationError` when the peer's certificate is refused), times
    out (`ConnectionAbortedError`), or the connection is lost first
    (`ConnectionResetError` when the peer closed it). `call_connection_made`
    False is for `start_tls`: the application protocol is already connected.
    `sslcontext` None makes a default client context, as `ssl=True` does.
    """

    __slots__ = (
        "__weakref__",
        "_app_buffer_updated",
        "_app_closed",
        "_app_data_received",
        "_app_get_buffer",
        "_app_is_buffered",
        "_app_protocol",
        "_app_reading_paused",
        "_app_state",
        "_app_transport",
        "_app_writing_paused",
        "_backlog_size",
        "_extra",
        "_fatal_exc",
        "_handshake_done",
        "_handshake_start",
        "_handshake_timeout",
        "_handshake_timer",
        "_incoming",
        "_loop",
        "_outgoing",
        "_read_high",
        "_read_low",
        "_reading_backlogged",
        "_receive",
        "_scratch",
        "_server_side",
        "_shutdown_timeout",
        "_shutdown_timer",
        "_sslobj",
        "_state",
        "_tcp_eof",
        "_transport",
        "_transport_paused",
        "_waiter",
        "_write_backlog",
        "_write_high",
        "_write_low",
        "_writing_paused",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app_protocol: asyncio.BaseProtocol,
        sslcontext: ssl.SSLContext | None,
        waiter: asyncio.Future[None] | None,
        server_side: bool = False,
        server_hostname: str | None = None,
        call_connection_made: bool = True,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> None:
        """Set up the session; nothing happens until `connection_made()`."""
        _check_timeout("ssl_handshake_timeout", ssl_handshake_timeout)
        _check_timeout("ssl_shutdown_timeout", ssl_shutdown_timeout)
        if sslcontext is None:
            sslcontext = make_context(True, server_side, server_hostname)
        # SNI and the hostname check are the client's; '' means neither.
        hostname = server_hostname if server_hostname and not server_side else None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._sslobj = sslcontext.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side, server_hostname=hostname
        )
        self._loop = loop
        self._server_side = server_side
        self._waiter = waiter
        self._handshake_timeout = (
            SSL_HANDSHAKE_TIMEOUT if ssl_handshake_timeout is None else ssl_handshake_timeout
        )
        self._shutdown_timeout = (
            SSL_SHUTDOWN_TIMEOUT if ssl_shutdown_timeout is None else ssl_shutdown_timeout
        )
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._shutdown_timer: asyncio.TimerHandle | None = None
        self._handshake_start = 0.0
        self._receive, self._scratch = _buffers_of(loop)
        # More keys arrive with the handshake; the transport reads this dict.
        self._extra: dict[str, Any] = {"sslcontext": sslcontext}
        self._transport: Any = None  # the plain transport, once connected
        self._state = _INIT
        self._handshake_done = False
        self._tcp_eof = False
        self._fatal_exc: BaseException | None = None
        # Application data written and not yet accepted by the SSL object (before
        # the handshake, or while a renegotiation makes it wait).
        self._write_backlog: collections.deque[bytes | bytearray | memoryview] = collections.deque()
        self._backlog_size = 0
        self._writing_paused = False  # the plain transport paused us
        self._app_writing_paused = False  # we paused the application
        self._write_high, self._write_low = _flow_limits(None, None, WRITE_HIGH_WATER)
        self._app_reading_paused = False
        self._transport_paused = False  # we paused the plain transport's reading
        self._reading_backlogged = False  # ... because the incoming BIO is full
        self._read_high, self._read_low = _flow_limits(None, None, READ_HIGH_WATER)
        self._app_state = _APP_INIT if call_connection_made else _APP_CONNECTED
        self._app_closed = False  # close() or abort() on the TLS transport
        self._app_protocol: asyncio.BaseProtocol
        self._app_is_buffered = False
        self._app_data_received: Callable[[bytes], object]
        self._app_get_buffer: Callable[[int], Any]
        self._app_buffer_updated: Callable[[int], object]
        self._set_app_protocol(app_protocol)
        self._app_transport = SSLTransport(loop, self)

    def __repr__(self) -> str:
        side = "server" if self._server_side else "client"
        return f"<TLSProtocol {side} {_STATE_NAMES[self._state]}>"

    @property
    def app_transport(self) -> SSLTransport:
        """The transport the application protocol uses."""
        return self._app_transport

    def _set_app_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._app_protocol = protocol
        # Bound methods, so the read path does not look them up per chunk.
        if isinstance(protocol, asyncio.BufferedProtocol):
            self._app_is_buffered = True
            self._app_get_buffer = protocol.get_buffer
            self._app_buffer_updated = protocol.buffer_updated
        else:
            self._app_is_buffered = False
            self._app_data_received = protocol.data_received  # type: ignore[attr-defined]

    def _wake_waiter(self, exc: BaseException | None) -> None:
        waiter = self._waiter
        if waiter is None:
            return
        self._waiter = None
        if not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    # -- the plain transport's protocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The plain connection is up: start the handshake."""
        self._transport = transport
        if self._state == _CLOSED or transport.is_closing():
            # Closed before it was connected (a cancelled connect): nothing to
            # say to the peer.
            self._state = _CLOSED
            self._transport.abort()
            return
        if self._loop.get_debug():
            logger.debug("%r starts SSL handshake", self)
            self._handshake_start = self._loop.time()
        self._state = _HANDSHAKE
        self._handshake_timer = self._loop.call_later(
            self._handshake_timeout, self._check_handshake_timeout
        )
        self._do_handshake()

    def connection_lost(self, exc: BaseException | None) -> None:
        """The plain connection is gone: tell the application (if it was told of
        the connection) and the waiter (if still waiting); let go of everything."""
        if exc is None:
            exc = self._fatal_exc
        self._fatal_exc = None
        self._write_backlog.clear()
        self._backlog_size = 0
        self._transport = None
        self._cancel_timers()
        self._state = _CLOSED
        app_transport = self._app_transport
        app_transport._closed = True
        app_transport._ssl_protocol = None
        # Before the handshake is done the application knows of the connection
        # only after start_tls(): it had connection_made() on the plain one,
        # so it gets connection_lost() whatever ended it (asyncio misses it
        # when the handshake times out or the connection is reset).
        if self._app_state in (_APP_CONNECTED, _APP_EOF):
            self._app_state = _APP_LOST
            # Scheduled, as asyncio does: what is already scheduled (a resumed
            # read, the waiter's callbacks) runs first.
            self._loop.call_soon(self._app_protocol.connection_lost, cast("Exception | None", exc))
        if not self._handshake_done and exc is None:
            if self._app_closed:
                exc = ConnectionAbortedError("The TLS transport was closed during the handshake")
            else:
                exc = ConnectionResetError("Connection lost during the TLS handshake")
        self._wake_waiter(exc)

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the plain transport should receive the next ciphertext (the
        loop's receive buffer, free again by the time another connection asks)."""
        return self._receive

    def buffer_updated(self, nbytes: int) -> None:
        """`nbytes` of ciphertext arrived in the receive buffer."""
        self.data_received(self._receive[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        """Ciphertext from the network (from transports that do not receive into
        `get_buffer()` too): feed the SSL object and see what it makes of it."""
        self._incoming.write(data)
        state = self._state
        if state == _WRAPPED:
            self._do_read()
        elif state == _HANDSHAKE:
            self._do_handshake()
        elif state == _FLUSHING:
            self._do_flush()
        elif state == _SHUTDOWN:
            self._do_shutdown()
        # _CLOSED: data after the end is dropped.

    def eof_received(self) -> bool | None:
        """TCP EOF from the peer. Without its close_notify first, the data may have
        been cut short; asyncio treats it as an end of data all the same."""
        self._tcp_eof = True
        state = self._state
        if self._loop.get_debug():
            logger.debug("%r received EOF", self)
        if state == _HANDSHAKE:
            self._on_handshake_done(
                ConnectionResetError("Connection lost during the TLS handshake")
            )
        elif state == _WRAPPED:
            if self._loop.get_debug():
                logger.debug("%r: EOF without close_notify: the data may be truncated", self)
            self._state = _FLUSHING
            if self._app_reading_paused:
                # Data may be left to deliver; keep the connection (half) open
                # until the application resumes reading.
                return True
            self._do_flush()
        elif state == _FLUSHING:
            self._do_flush()
        elif state == _SHUTDOWN:
            self._do_shutdown()
        return None

    def pause_writing(self) -> None:
        """The plain transport's buffer is full: hold ciphertext back (it then
        counts against the application's write limits)."""
        self._writing_paused = True

    def resume_writing(self) -> None:
        """The plain transport's buffer drained: send what was held back."""
        self._writing_paused = False
        if self._transport is not None and self._state != _CLOSED:
            self._flush_outgoing()

    # -- handshake -----------------------------------------------------------------------

    def _do_handshake(self) -> None:
        self._advance(self._sslobj.do_handshake, self._on_handshake_done)

    def _advance(
        self, step: Callable[[], object], done: Callable[[BaseException | None], None]
    ) -> None:
        """Run a step of the handshake or the shutdown; `done` gets its outcome
        once there is one. Until then, send what the step produced and wait for
        the peer's answer."""
        try:
            step()
        except _AGAIN:
            self._flush_outgoing()
            return
        except Exception as exc:
            done(exc)
            return
        done(None)

    def _check_handshake_timeout(self) -> None:
        self._handshake_timer = None
        if self._state == _HANDSHAKE:
            self._on_handshake_done(
                ConnectionAbortedError(
                    f"SSL handshake is taking longer than {self._handshake_timeout} "
                    f"seconds: aborting the connection"
                )
            )

    def _on_handshake_done(self, exc: BaseException | None) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        sslobj = self._sslobj
        peercert = None
        if exc is None:
            try:
                peercert = sslobj.getpeercert()
            except Exception as error:
                exc = error
        if exc is not None:
            if isinstance(exc, ssl.CertificateError):
                message = "SSL handshake failed on verifying the certificate"
            else:
                message = "SSL handshake failed"
            self._fatal_error(exc, message)
            self._wake_waiter(exc)
            return
        self._handshake_done = True
        self._state = _WRAPPED
        if self._loop.get_debug():
            elapsed = self._loop.time() - self._handshake_start
            logger.debug("%r: SSL handshake took %.1f ms", self, elapsed * 1e3)
        self._extra.update(
            peercert=peercert,
            cipher=sslobj.cipher(),
            compression=sslobj.compression(),
            ssl_object=sslobj,
        )
        if self._app_state == _APP_INIT:
            self._app_state = _APP_CONNECTED
            try:
                self._app_protocol.connection_made(self._app_transport)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as error:
                self._fatal_error(error, "Fatal error: protocol.connection_made() call failed.")
                self._wake_waiter(error)
                return
        self._wake_waiter(None)
        # Application data may have come with the handshake's last flight, and
        # the application may have written before it was done.
        self._do_read()

    # -- reading -------------------------------------------------------------------------

    def _do_read(self) -> None:
        """Decrypt what can be decrypted and hand it to the application, until
        the SSL object runs dry or the application pauses; then send what the
        SSL object wants sent (post-handshake messages, backlogged writes)."""
        if not self._app_reading_paused and not self._app_closed:
            status = _DRY
            while self._state == _WRAPPED or self._state == _FLUSHING:
                status = self._read_buffered() if self._app_is_buffered else self._read_copied()
                if status != _MORE or self._app_reading_paused or self._app_closed:
                    break
            if status == _EOF:
                self._on_close_notify()
                return
            if status == _FAILED:
                return
        if self._state != _WRAPPED and self._state != _FLUSHING:
            return
        if self._write_backlog:
            self._do_write()
        else:
            self._flush_outgoing()
        self._update_reading()

    def _read_copied(self) -> int:
        return self._decrypt_into(self._scratch, buffered=False)

    def _read_buffered(self) -> int:
        # The SSL object decrypts straight into the application's buffer.
        try:
            view = memoryview(self._app_get_buffer(-1))
            if not view.nbytes:
                raise RuntimeError("get_buffer() returned an empty buffer")
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
            return _FAILED
        return self._decrypt_into(view, buffered=True)

    def _decrypt_into(self, view: memoryview, buffered: bool) -> int:
        """Decrypt into `view` until it is full or the SSL object runs dry, then
        hand what came to the application: `buffer_updated()` if `view` is its
        buffer, else `data_received()`. Returns _MORE, _DRY, _EOF or _FAILED."""
        size = view.nbytes
        read: Any = self._sslobj.read  # typeshed's read() does not know `buffer`
        offset = 0
        status = _MORE
        error: Exception | None = None
        try:
            while offset < size:
                count = read(size - offset, view[offset:] if offset else view)
                if not count:
                    status = _EOF
                    break
                offset += count
        except _AGAIN:
            status = _DRY
        except Exception as exc:
            error = exc
        if offset:
            try:
                if buffered:
                    self._app_buffer_updated(offset)
                else:
                    self._app_data_received(bytes(view[:offset]))
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                callback = "buffer_updated" if buffered else "data_received"
                self._fatal_error(exc, f"Fatal error: protocol.{callback}() call failed.")
                return _FAILED
        if error is not None:
            # Deliver what decrypted before the bad record, then fail.
            self._fatal_error(error, "SSL error in data received")
            return _FAILED
        return status

    def _on_close_notify(self) -> None:
        # The peer is done: tell the application, answer with our close_notify
        # after what it already wrote, and close.
        self._deliver_eof()
        self._start_shutdown()

    def _deliver_eof(self) -> None:
        if self._app_state != _APP_CONNECTED or self._app_closed or not self._handshake_done:
            return
        self._app_state = _APP_EOF
        try:
            keep_open = self._app_protocol.eof_received()  # type: ignore[attr-defined]
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Error calling eof_received()")
            return
        if keep_open:
            logger.warning("returning true from eof_received() has no effect when using ssl")

    # -- read flow control -------------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self._app_reading_paused:
            self._app_reading_paused = True
            self._update_reading()

    def _resume_reading(self) -> None:
        if self._app_reading_paused:
            self._app_reading_paused = False
            self._update_reading()
            self._loop.call_soon(self._deliver_after_resume)

    def _deliver_after_resume(self) -> None:
        if self._app_reading_paused:
            return
        if self._state == _WRAPPED:
            self._do_read()
        elif self._state == _FLUSHING:
            self._do_flush()

    def _set_read_limits(self, high: int | None, low: int | None) -> None:
        self._read_high, self._read_low = _flow_limits(high, low, READ_HIGH_WATER)
        self._update_reading()

    def _update_reading(self) -> None:
        """Pause or resume the plain transport's reading: paused while the
        application is (unless closing: the peer's close_notify must get in)
        or while too much ciphertext waits in the incoming BIO."""
        transport = self._transport
        if transport is None or self._tcp_eof:
            # After EOF there is nothing to read, and resuming a transport at
            # EOF could make it report the EOF twice.
            return
        pending = self._incoming.pending
        if self._reading_backlogged:
            if pending <= self._read_low:
                self._reading_backlogged = False
        elif pending > self._read_high:
            self._reading_backlogged = True
        pause = self._reading_backlogged or (self._app_reading_paused and self._state == _WRAPPED)
        if pause != self._transport_paused:
            self._transport_paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    # -- writing -------------------------------------------------------------------------

    def _write_appdata(self, data: bytes | bytearray | memoryview) -> None:
        state = self._state
        if state != _WRAPPED or self._write_backlog:
            if state >= _FLUSHING:
                # Closing or closed: dropped, as asyncio does.
                app_transport = self._app_transport
                app_transport._lost_write()
                return
            # Before the handshake is done, or behind earlier data: queue a
            # private copy (the caller may reuse a mutable buffer).
            chunk = data if type(data) is bytes else bytes(data)
            self._write_backlog.append(chunk)
            self._backlog_size += len(chunk)
            if state == _WRAPPED:
                self._do_write()
            else:
                self._control_app_writing()
            return
        try:
            count = self._sslobj.write(data)
        except _AGAIN:
            count = 0
        except Exception as exc:
            self._fatal_error(exc, "Fatal error on SSL transport")
            return
        size = len(data) if type(data) is bytes else memoryview(data).nbytes
        if count < size:
            # The SSL object wants to read first (a renegotiation): keep the rest.
            rest = bytes(memoryview(data).cast("B")[count:])
            self._write_backlog.append(rest)
            self._backlog_size += len(rest)
        self._flush_outgoing()

    def _do_write(self) -> None:
        """Feed the backlog to the SSL object, then send its output."""
        backlog = self._write_backlog
        write = self._sslobj.write
        try:
            while backlog:
                data = backlog[0]
                count = write(data)
                size = memoryview(data).nbytes
                if count < size:
                    backlog[0] = memoryview(data).cast("B")[count:]
                    self._backlog_size -= count
                else:
                    backlog.popleft()
                    self._backlog_size -= size
        except _AGAIN:
            pass
        except Exception as exc:
            self._fatal_error(exc, "Fatal error on SSL transport")
            return
        self._flush_outgoing()

    def _flush_outgoing(self) -> None:
        """Give the SSL object's output to the plain transport unless it asked us
        to wait; then settle the application's write flow control."""
        if not self._writing_paused and self._outgoing.pending:
            transport = self._transport
            if transport is not None:
                transport.write(self._outgoing.read())
        self._control_app_writing()

    def _write_buffer_size(self) -> int:
        return self._outgoing.pending + self._backlog_size

    def _control_app_writing(self) -> None:
        size = self._outgoing.pending + self._backlog_size
        if size > self._write_high:
            if not self._app_writing_paused:
                self._app_writing_paused = True
                self._call_app_flow("pause_writing")
        elif size <= self._write_low and self._app_writing_paused:
            self._app_writing_paused = False
            self._call_app_flow("resume_writing")

    def _call_app_flow(self, method: str) -> None:
        try:
            getattr(self._app_protocol, method)()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler(
                {
                    "message": f"protocol.{method}() failed",
                    "exception": exc,
                    "transport": self._app_transport,
                    "protocol": self._app_protocol,
                }
            )

    # -- closing -------------------------------------------------------------------------

    def _start_shutdown(self) -> None:
        """Begin the closing handshake (the application closed, or the peer sent
        close_notify): flush what was written, send close_notify, wait for the
        peer's, within the shutdown timeout."""
        state = self._state
        if state >= _FLUSHING:
            return
        self._app_transport._closed = True
        if state != _WRAPPED:
            # Nothing secure to close yet: just drop the connection.
            self._abort(None)
            return
        self._state = _FLUSHING
        self._shutdown_timer = self._loop.call_later(
            self._shutdown_timeout, self._check_shutdown_timeout
        )
        self._update_reading()
        self._do_flush()

    def _do_flush(self) -> None:
        # Deliver what is left if the application still reads (after a TCP EOF
        # the SSL object may hold data), then send the backlog, then close_notify.
        if not self._app_closed and self._app_state == _APP_CONNECTED:
            if self._waiting_for_app():
                return  # _deliver_after_resume() continues
            self._do_read()
            if self._state != _FLUSHING or self._waiting_for_app():
                return
        self._do_write()
        if self._state != _FLUSHING or self._write_backlog:
            return  # failed, or the SSL object must read before it takes more
        self._state = _SHUTDOWN
        self._do_shutdown()

    def _waiting_for_app(self) -> bool:
        # Data may be left for an application that paused reading before the
        # end of the data reached it: the flush waits for its resume_reading().
        return (
            self._app_reading_paused and not self._app_closed and self._app_state == _APP_CONNECTED
        )

    def _do_shutdown(self) -> None:
        if self._tcp_eof:
            # The peer ended the TCP stream: it will not answer a close_notify,
            # and it may be reading raw bytes by now (SSLSocket.shutdown() drops
            # its TLS layer), so, as asyncio, send none.
            self._finish_shutdown(None)
            return
        # Until the peer's close_notify is in, unwrap() sends ours and wants more.
        self._advance(self._sslobj.unwrap, self._finish_shutdown)

    def _check_shutdown_timeout(self) -> None:
        self._shutdown_timer = None
        if self._state == _FLUSHING or self._state == _SHUTDOWN:
            self._abort(TimeoutError("SSL shutdown timed out"))

    def _finish_shutdown(self, exc: BaseException | None) -> None:
        if self._shutdown_timer is not None:
            self._shutdown_timer.cancel()
            self._shutdown_timer = None
        if exc is not None:
            self._fatal_error(exc, "Fatal error on SSL transport")
            return
        transport = self._transport
        if transport is None:
            return
        # Everything, even if the plain transport asked us to hold back: it
        # sends its buffer before it closes.
        if self._outgoing.pending:
            transport.write(self._outgoing.read())
        # After a TCP EOF (no close_notify), the application hears of the end here.
        self._deliver_eof()
        self._state = _CLOSED
        transport.close()

    def _abort(self, exc: BaseException | None) -> None:
        """Drop the connection now; `exc` (if any) reaches `connection_lost()`."""
        self._state = _CLOSED
        self._app_transport._closed = True
        self._cancel_timers()
        transport = self._transport
        if transport is not None:
            if exc is not None and self._fatal_exc is None:
                self._fatal_exc = exc
            transport.abort()

    def _cancel_timers(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        if self._shutdown_timer is not None:
            self._shutdown_timer.cancel()
            self._shutdown_timer = None

    def _fatal_error(
        self, exc: BaseException, message: str = "Fatal error on SSL transport"
    ) -> None:
        """Abort the connection because of `exc`; report it unless it is the
        network's doing (an OSError, which includes every SSLError)."""
        transport = self._transport
        if transport is not None and self._outgoing.pending and not self._writing_paused:
            # Usually an alert that tells the peer what went wrong.
            transport.write(self._outgoing.read())
        context = {
            "message": message,
            "exception": exc,
            "transport": transport,
            "protocol": self,
        }
        self._abort(exc)
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        elif not isinstance(exc, asyncio.CancelledError):
            self._loop.call_exception_handler(context)
