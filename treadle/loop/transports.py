"""Socket transports: the bridge between a connected socket and a protocol.

`SocketTransport` serves TCP and Unix stream sockets, for `asyncio.Protocol` and
`asyncio.BufferedProtocol` alike; `BaseSocketTransport` holds what it shares
with the datagram transport (extra info, closing, fatal errors, write-buffer
flow control).

Decisions, each for speed without changing asyncio's contract:

- `write()` sends at once when nothing is buffered, and touches the poller only
  when the kernel refuses part of the data; the buffer is a deque of chunks and
  is flushed with `sendmsg` (one syscall for many chunks).
- Data handed to `write()` is copied only when it is mutable (`bytearray`,
  `memoryview`): the caller may reuse its buffer as soon as `write()` returns.
- Starting a transport is one scheduled callback (connection_made, then start
  reading unless the protocol paused, then wake the waiter), not three.
- The read callback is chosen once per protocol (`set_protocol`), so the hot
  path does not test the protocol's type on every read.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import itertools
import os
import socket
import warnings
from asyncio.log import logger
from asyncio.trsock import TransportSocket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .flowcontrol import WriteFlowControl

if TYPE_CHECKING:
    from .core import BaseEventLoop

__all__ = ["BaseSocketTransport", "SocketTransport"]

#: How much `recv()` may return at once (asyncio uses the same figure).
MAX_READ = 256 * 1024

#: Writes to a lost connection are dropped silently; after this many, log it.
LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5

try:
    _IOV_MAX = os.sysconf("SC_IOV_MAX")
except (AttributeError, OSError, ValueError):  # pragma: no cover - non-POSIX
    _IOV_MAX = 16
_HAS_SENDMSG = hasattr(socket.socket, "sendmsg")

_WOULD_BLOCK = (BlockingIOError, InterruptedError)


def set_nodelay(sock: socket.socket) -> None:
    """Disable Nagle on TCP sockets: small writes go out without waiting for an ACK."""
    if (
        sock.family in (socket.AF_INET, socket.AF_INET6)
        and sock.type == socket.SOCK_STREAM
        and sock.proto == socket.IPPROTO_TCP
    ):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _set_result_unless_cancelled(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.cancelled():
        fut.set_result(None)


class BaseSocketTransport(WriteFlowControl, asyncio.Transport):
    """What stream and datagram socket transports share."""

    # Set before anything can fail in __init__, so __del__ always finds it.
    _sock: socket.socket | None = None
    _extra: dict[str, Any]  # set by asyncio.BaseTransport.__init__

    def __init__(
        self,
        loop: BaseEventLoop,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        extra: dict[str, Any] | None = None,
        server: Any = None,
    ) -> None:
        super().__init__(extra)
        self._extra["socket"] = TransportSocket(sock)
        try:
            self._extra["sockname"] = sock.getsockname()
        except OSError:
            self._extra["sockname"] = None
        if "peername" not in self._extra:
            try:
                self._extra["peername"] = sock.getpeername()
            except OSError:
                self._extra["peername"] = None
        self._loop: BaseEventLoop | None = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol: Any = protocol
        self._protocol_connected = True
        self._server = server
        # Chunks to send (stream) or (datagram, address) pairs (datagram).
        self._buffer: collections.deque[Any] = collections.deque()
        self._buffer_size = 0
        self._conn_lost = 0  # > 0 once connection_lost is scheduled
        self._closing = False
        self._paused = False  # reading paused by pause_reading()
        if server is not None:
            server._attach(self)
        loop._transports[self._fd] = self

    def __repr__(self) -> str:
        info = [type(self).__name__]
        if self._sock is None:
            info.append("closed")
        elif self._closing:
            info.append("closing")
        info.append(f"fd={self._fd}")
        loop = self._loop
        if loop is not None and not loop.is_closed():
            entry = loop._fds.get(self._fd)
            reading = entry is not None and entry[0] is not None
            writing = entry is not None and entry[1] is not None
            info.append("read=polling" if reading else "read=idle")
            info.append(
                f"write=<{'polling' if writing else 'idle'}, "
                f"bufsize={self.get_write_buffer_size()}>"
            )
        return "<{}>".format(" ".join(info))

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if self._sock is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._sock.close()
            self._sock = None
            if self._server is not None:
                self._server._detach(self)

    # -- protocol ---------------------------------------------------------------------

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._protocol_connected = True

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    def is_closing(self) -> bool:
        return self._closing

    # -- reading ---------------------------------------------------------------------------

    #: The reader callback registered with the loop; subclasses set it.
    _reader_cb: Callable[[], None]

    def is_reading(self) -> bool:
        return not self._closing and not self._paused

    def pause_reading(self) -> None:
        """Stop calling the protocol with data until `resume_reading()`."""
        if self._closing or self._paused:
            return
        self._paused = True
        assert self._loop is not None
        self._loop._remove_fd_handler(self._fd, 0)
        if self._loop._debug:
            logger.debug("%r pauses reading", self)

    def resume_reading(self) -> None:
        """Start delivering data again after `pause_reading()`."""
        if self._closing or not self._paused:
            return
        self._paused = False
        assert self._loop is not None
        self._loop._add_reader(self._fd, self._reader_cb, ())
        if self._loop._debug:
            logger.debug("%r resumes reading", self)

    # -- write-buffer flow control -----------------------------------------------------

    def get_write_buffer_size(self) -> int:
        return self._buffer_size

    def _flow_control_failed(self, name: str, exc: BaseException) -> None:
        self._report(f"protocol.{name}() failed", exc)

    def _report(self, message: str, exc: BaseException) -> None:
        if self._loop is not None:
            self._loop.call_exception_handler(
                {
                    "message": message,
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )

    # -- closing --------------------------------------------------------------------------

    def close(self) -> None:
        """Close after the buffered data is sent; the protocol's
        `connection_lost(None)` follows."""
        if self._closing:
            return
        self._closing = True
        loop = self._loop
        assert loop is not None
        loop._remove_fd_handler(self._fd, 0)
        if not self._buffer:
            self._conn_lost += 1
            loop._remove_fd_handler(self._fd, 1)
            loop.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        """Close at once, dropping buffered data."""
        self._force_close(None)

    def _fatal_error(self, exc: BaseException, message: str = "Fatal error on transport") -> None:
        # OS errors on a connection (reset, broken pipe...) are the peer's doing,
        # not a bug: they reach the protocol through connection_lost only.
        if isinstance(exc, OSError):
            if self._loop is not None and self._loop._debug:
                logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._report(message, exc)
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        if self._conn_lost:
            return
        loop = self._loop
        assert loop is not None
        if self._buffer:
            self._buffer.clear()
            self._buffer_size = 0
            loop._remove_fd_handler(self._fd, 1)
        if not self._closing:
            self._closing = True
            loop._remove_fd_handler(self._fd, 0)
        self._conn_lost += 1
        loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            if self._protocol_connected:
                self._protocol.connection_lost(exc)
        finally:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            self._protocol = None
            self._loop = None
            server, self._server = self._server, None
            if server is not None:
                server._detach(self)


class SocketTransport(BaseSocketTransport):
    """A transport over a connected stream socket (TCP or Unix)."""

    _start_tls_compatible = True

    def __init__(
        self,
        loop: BaseEventLoop,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[None] | None = None,
        extra: dict[str, Any] | None = None,
        server: Any = None,
    ) -> None:
        super().__init__(loop, sock, protocol, extra, server)
        self.set_protocol(protocol)
        self._eof = False  # write_eof() called
        self._empty_waiter: asyncio.Future[None] | None = None
        set_nodelay(sock)
        loop.call_soon(self._start, waiter)

    def _start(self, waiter: asyncio.Future[None] | None) -> None:
        """connection_made, then reading (unless the protocol paused it or the
        transport closed), then the waiter: the order asyncio guarantees."""
        try:
            self._protocol.connection_made(self)
        finally:
            if not self._closing and not self._paused and self._loop is not None:
                self._loop._add_reader(self._fd, self._reader_cb, ())
            _set_result_unless_cancelled(waiter)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        super().set_protocol(protocol)
        # The reader callback is registered directly (no dispatch per read), so
        # a protocol swap (start_tls does one) re-registers it.
        if isinstance(protocol, asyncio.BufferedProtocol):
            self._reader_cb = self._read_into_buffer
        else:
            self._reader_cb = self._read_data
        loop = self._loop
        if loop is not None and not self._closing:
            entry = loop._fds.get(self._fd)
            if entry is not None and entry[0] is not None:
                loop._add_reader(self._fd, self._reader_cb, ())

    def _read_data(self) -> None:
        if self._conn_lost:
            return
        try:
            # recv() into the loop's shared buffer and copy out what came:
            # `recv(MAX_READ)` allocates (and maps) MAX_READ bytes per call,
            # about 7x slower for the small reads a server mostly does.
            n = self._sock.recv_into(self._loop._read_buffer)  # type: ignore[union-attr]
            data = self._loop._read_view[:n].tobytes()  # type: ignore[union-attr]
        except _WOULD_BLOCK:
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on socket transport")
            return
        if not data:
            self._read_eof()
            return
        try:
            self._protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")

    def _read_into_buffer(self) -> None:
        if self._conn_lost:
            return
        try:
            buf = self._protocol.get_buffer(-1)
            if not len(buf):
                raise RuntimeError("get_buffer() returned an empty buffer")
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
            return
        try:
            nbytes = self._sock.recv_into(buf)  # type: ignore[union-attr]
        except _WOULD_BLOCK:
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on socket transport")
            return
        if not nbytes:
            self._read_eof()
            return
        try:
            self._protocol.buffer_updated(nbytes)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")

    def _read_eof(self) -> None:
        loop = self._loop
        assert loop is not None
        if loop._debug:
            logger.debug("%r received EOF", self)
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if keep_open:
            # Half-closed: the protocol may still write, but nothing more will
            # arrive, so stop watching for reads.
            loop._remove_fd_handler(self._fd, 0)
        else:
            self.close()

    # -- writing ------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send `data`, buffering what the kernel does not take now."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._empty_waiter is not None:
            raise RuntimeError("unable to write; sendfile is in progress")
        if not data:
            return
        if self._conn_lost:
            if self._conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("socket.send() raised exception.")
            self._conn_lost += 1
            return
        if not self._buffer:
            try:
                n = self._sock.send(data)  # type: ignore[union-attr]
            except _WOULD_BLOCK:
                n = 0
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on socket transport")
                return
            if n == len(data):
                return
            data = memoryview(data)[n:]
            assert self._loop is not None
            self._loop._add_writer(self._fd, self._write_ready, ())
        self._append(data)
        self._maybe_pause_protocol()

    def _append(self, data: bytes | bytearray | memoryview) -> None:
        # A memoryview of an immutable bytes object can be kept; anything
        # mutable is copied, since the caller may reuse it.
        if type(data) is not bytes and not (
            isinstance(data, memoryview) and isinstance(data.obj, bytes)
        ):
            data = bytes(data)
        self._buffer.append(data)
        self._buffer_size += len(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        """Send several buffers, in one syscall when possible."""
        if self._eof:
            raise RuntimeError("Cannot call writelines() after write_eof()")
        if self._empty_waiter is not None:
            raise RuntimeError("unable to writelines; sendfile is in progress")
        chunks = [d for d in list_of_data if d]
        if not chunks:
            return
        if self._conn_lost or self._buffer or len(chunks) == 1 or not _HAS_SENDMSG:
            # The common path handles lost connections and ordering.
            self.write(b"".join(chunks) if len(chunks) > 1 else chunks[0])
            return
        was_empty = not self._buffer
        for chunk in chunks:
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise TypeError(
                    f"data argument must be a bytes-like object, not {type(chunk).__name__!r}"
                )
            self._append(chunk)
        self._write_ready()
        if was_empty and self._buffer and self._loop is not None:
            self._loop._add_writer(self._fd, self._write_ready, ())
        self._maybe_pause_protocol()

    def _write_ready(self) -> None:
        if self._conn_lost or not self._buffer:
            return
        buffer = self._buffer
        try:
            if len(buffer) == 1 or not _HAS_SENDMSG:
                n = self._sock.send(buffer[0])  # type: ignore[union-attr]
            else:
                n = self._sock.sendmsg(itertools.islice(buffer, _IOV_MAX))  # type: ignore[union-attr]
        except _WOULD_BLOCK:
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            assert self._loop is not None
            self._loop._remove_fd_handler(self._fd, 1)
            buffer.clear()
            self._buffer_size = 0
            self._fatal_error(exc, "Fatal write error on socket transport")
            if self._empty_waiter is not None and not self._empty_waiter.done():
                self._empty_waiter.set_exception(exc)
            return
        self._buffer_size -= n
        while n:
            chunk = buffer[0]
            size = len(chunk)
            if size <= n:
                buffer.popleft()
                n -= size
            else:
                buffer[0] = memoryview(chunk)[n:]
                break
        self._maybe_resume_protocol()  # the protocol may write more here
        if not self._buffer and self._loop is not None:
            self._loop._remove_fd_handler(self._fd, 1)
            if self._empty_waiter is not None and not self._empty_waiter.done():
                self._empty_waiter.set_result(None)
            if self._closing:
                self._call_connection_lost(None)
            elif self._eof:
                self._shutdown_write()

    def _shutdown_write(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)  # type: ignore[union-attr]
        except OSError as exc:
            # The peer is gone already; connection_lost will tell the protocol.
            if exc.errno != errno.ENOTCONN:
                raise

    def write_eof(self) -> None:
        """Close the write side after the buffered data is sent (half-close)."""
        if self._closing or self._eof:
            return
        self._eof = True
        if not self._buffer:
            self._shutdown_write()

    def can_write_eof(self) -> bool:
        return True

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        super()._call_connection_lost(exc)
        if self._empty_waiter is not None and not self._empty_waiter.done():
            self._empty_waiter.set_exception(ConnectionError("Connection is closed by peer"))

    # -- sendfile support ----------------------------------------------------------------

    def _make_empty_waiter(self) -> asyncio.Future[None]:
        """A future done once the write buffer is empty (sendfile waits on it)."""
        if self._empty_waiter is not None:
            raise RuntimeError("Empty waiter is already set")
        assert self._loop is not None
        self._empty_waiter = self._loop.create_future()
        if not self._buffer:
            self._empty_waiter.set_result(None)
        return self._empty_waiter

    def _reset_empty_waiter(self) -> None:
        self._empty_waiter = None
