"""Listening servers: accept connections and give each one a transport and a protocol.

`Server` implements `asyncio.AbstractServer` with the semantics of Python 3.12.1+
on every supported version (`wait_closed()` waits until the server is closed
*and* every connection it accepted is gone; `close_clients()`/`abort_clients()`
exist everywhere).

Accepting is done by the server itself, synchronously in the readiness callback:
no task per connection (asyncio makes one), so a burst of connections costs one
`accept()` and one transport each.

Running out of descriptors (EMFILE, ENFILE) or kernel memory (ENOBUFS, ENOMEM)
must not take a server down or make it spin. The server stops accepting,
reports once per shortage through the loop's exception handler, keeps serving the
connections it has, and tries again as soon as one of its own connections
closes (a descriptor came free), or else after a back-off that grows from
0.1 s to 1 s (descriptors freed elsewhere in the process). Pending clients wait
in the kernel's backlog meanwhile.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import weakref
from asyncio.trsock import TransportSocket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import BaseEventLoop

__all__ = ["Server"]

_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_RETRY_MIN = 0.1
_RETRY_MAX = 1.0


class Server(asyncio.AbstractServer):
    """A listening server on one or more sockets."""

    def __init__(
        self,
        loop: BaseEventLoop,
        sockets: list[socket.socket],
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        ssl_context: Any,
        backlog: int,
        ssl_handshake_timeout: float | None,
        ssl_shutdown_timeout: float | None = None,
        unix_paths: list[tuple[str, int, int]] | None = None,
    ) -> None:
        self._loop = loop
        self._sockets: list[socket.socket] | None = sockets
        self._protocol_factory = protocol_factory
        self._ssl_context = ssl_context
        self._backlog = backlog
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        # Weak, so an abandoned transport can still be collected and warn.
        self._clients: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()
        self._anonymous = 0  # connections counted by _attach() without a transport
        self._waiters: list[asyncio.Future[None]] | None = []
        self._serving = False
        self._serving_forever_fut: asyncio.Future[None] | None = None
        # Accepting is suspended after a resource error until this is None.
        self._accept_retry: asyncio.TimerHandle | None = None
        self._retry_delay = _RETRY_MIN
        # Set once a shortage is reported; cleared when the backlog is drained,
        # so one shortage is reported once, however many retries it takes.
        self._shortage_reported = False
        #: How many times accepting paused for a shortage (for tests and stats).
        self.accept_pauses = 0
        # (path, st_dev, st_ino) of Unix sockets to unlink on close.
        self._unix_paths = unix_paths or []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} sockets={self.sockets!r}>"

    # -- bookkeeping of connections ------------------------------------------------------

    def _attach(self, transport: asyncio.BaseTransport | None = None) -> None:
        # Without a transport: Python 3.12's private form (a bare count), which
        # its test suite drives directly.
        if transport is None:
            self._anonymous += 1
        else:
            self._clients.add(transport)

    def _detach(self, transport: asyncio.BaseTransport | None = None) -> None:
        if transport is None:
            self._anonymous -= 1
        else:
            self._clients.discard(transport)
        if self._accept_retry is not None:
            # A descriptor came free: try accepting again now.
            self._accept_retry.cancel()
            self._accept_retry = None
            self._loop.call_soon(self._resume_accepting)
        if len(self._clients) + self._anonymous == 0 and self._sockets is None:
            self._wakeup()

    def _wakeup(self) -> None:
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    # -- accepting --------------------------------------------------------------------

    def _start_serving(self) -> None:
        if self._serving or self._sockets is None:
            return
        self._serving = True
        for sock in self._sockets:
            sock.listen(self._backlog)
            self._loop._add_reader(sock.fileno(), self._accept_ready, (sock,))

    def _accept_ready(self, sock: socket.socket) -> None:
        loop = self._loop
        for _ in range(self._backlog):
            try:
                conn, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                self._shortage_reported = False  # caught up with the backlog
                return
            except ConnectionAbortedError:
                return  # the client gave up first
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRORS:
                    self._pause_accepting(sock, exc)
                    return
                raise
            self._retry_delay = _RETRY_MIN
            try:
                conn.setblocking(False)
                self._connection(conn, address)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                conn.close()
                loop.call_exception_handler(
                    {
                        "message": "Error on transport creation for incoming connection",
                        "exception": exc,
                        "socket": TransportSocket(sock),
                    }
                )

    def _connection(self, conn: socket.socket, address: Any) -> None:
        from .transports import SocketTransport

        protocol = self._protocol_factory()
        extra = {"peername": address}
        if self._ssl_context is None:
            SocketTransport(self._loop, conn, protocol, None, extra, server=self)
            return
        from .tls import TLSProtocol

        waiter = self._loop.create_future()
        tls = TLSProtocol(
            self._loop,
            protocol,
            self._ssl_context,
            waiter,
            server_side=True,
            ssl_handshake_timeout=self._ssl_handshake_timeout,
            ssl_shutdown_timeout=self._ssl_shutdown_timeout,
        )
        SocketTransport(self._loop, conn, tls, None, extra, server=self)
        waiter.add_done_callback(self._handshake_done)

    def _handshake_done(self, waiter: asyncio.Future[None]) -> None:
        # A failed handshake closes that connection only; it is worth a report
        # in debug mode (asyncio does the same).
        if waiter.cancelled():
            return
        exc = waiter.exception()
        if exc is not None and self._loop.get_debug():
            self._loop.call_exception_handler(
                {"message": "Error on transport creation for incoming connection", "exception": exc}
            )

    def _pause_accepting(self, sock: socket.socket, exc: OSError) -> None:
        if self._accept_retry is not None or self._sockets is None:
            return
        for listening in self._sockets:
            self._loop._remove_fd_handler(listening.fileno(), 0)
        self.accept_pauses += 1
        if not self._shortage_reported:
            self._shortage_reported = True
            self._loop.call_exception_handler(
                {
                    "message": "socket.accept() out of system resource",
                    "exception": exc,
                    "socket": TransportSocket(sock),
                }
            )
        self._accept_retry = self._loop.call_later(self._retry_delay, self._resume_accepting)
        self._retry_delay = min(self._retry_delay * 2, _RETRY_MAX)

    def _resume_accepting(self) -> None:
        if self._accept_retry is not None:
            self._accept_retry.cancel()
            self._accept_retry = None
        if self._sockets is None or not self._serving or self._loop.is_closed():
            return
        for sock in self._sockets:
            self._loop._add_reader(sock.fileno(), self._accept_ready, (sock,))
            self._accept_ready(sock)
            if self._accepting_paused():
                return  # out of resources again

    def _accepting_paused(self) -> bool:
        return self._accept_retry is not None

    # -- the public API ----------------------------------------------------------------

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    @property
    def sockets(self) -> tuple[TransportSocket, ...]:
        """The listening sockets (wrapped so they cannot be misused)."""
        if self._sockets is None:
            return ()
        return tuple(TransportSocket(s) for s in self._sockets)

    def close(self) -> None:
        """Stop listening and close the listening sockets. Open connections stay
        open; `wait_closed()` waits for them, `close_clients()` closes them."""
        sockets = self._sockets
        if sockets is None:
            return
        self._sockets = None
        if self._accept_retry is not None:
            self._accept_retry.cancel()
            self._accept_retry = None
        for sock in sockets:
            if not self._loop.is_closed():
                self._loop._remove_fd_handler(sock.fileno(), 0)
            sock.close()
        self._unlink_unix_paths()
        self._serving = False
        fut = self._serving_forever_fut
        if fut is not None and not fut.done():
            fut.cancel()
            self._serving_forever_fut = None
        if len(self._clients) + self._anonymous == 0:
            self._wakeup()

    def _unlink_unix_paths(self) -> None:
        import os

        for path, dev, ino in self._unix_paths:
            # Only if it is still our socket: another server may have bound
            # the path since.
            try:
                st = os.stat(path)
                if (st.st_dev, st.st_ino) == (dev, ino):
                    os.unlink(path)
            except OSError:
                pass
        self._unix_paths = []

    def close_clients(self) -> None:
        """Close every connection this server accepted (after their buffers flush)."""
        for transport in list(self._clients):
            transport.close()

    def abort_clients(self) -> None:
        """Abort every connection this server accepted, dropping buffered data."""
        for transport in list(self._clients):
            if isinstance(transport, asyncio.WriteTransport):
                transport.abort()
            else:
                transport.close()

    async def start_serving(self) -> None:
        """Start accepting connections (if `start_serving=False` was given)."""
        self._start_serving()
        await asyncio.sleep(0)

    async def serve_forever(self) -> None:
        """Accept connections until cancelled; then close and wait for the
        connections to finish."""
        if self._serving_forever_fut is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._sockets is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self) -> None:
        """Wait until the server is closed and all its connections are gone."""
        if self._waiters is None:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter
