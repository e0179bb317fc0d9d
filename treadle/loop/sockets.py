"""The `sock_*` coroutines: socket syscalls that wait for readiness instead of blocking.

Each one tries its syscall first and touches the poller only when the kernel says
`EWOULDBLOCK`: on a busy connection data is usually already there, so the common
case costs one syscall and no future. When it must wait, it registers a reader or
writer whose callback retries the syscall; a done-callback on the future removes
that registration however the wait ends (result, error or cancellation), so a
cancelled `sock_recv` leaves nothing behind in the poller.

Stricter than asyncio, which checks only in debug mode: a blocking socket is
always refused with `ValueError`, since it would stall the whole loop.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import socket
import stat
import sys
from asyncio.log import logger
from collections.abc import Callable
from typing import Any

from .core import BaseEventLoop

__all__ = ["AddrInfo", "SocketsMixin", "remove_stale_unix_socket", "set_reuseport"]

AddrInfo = tuple[int, int, int, str, Any]

_WOULD_BLOCK = (BlockingIOError, InterruptedError)


def set_reuseport(sock: socket.socket) -> None:
    """Set SO_REUSEPORT, or say clearly that this platform cannot."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuse_port not supported by socket module")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError:
        raise ValueError(
            "reuse_port not supported by socket module, SO_REUSEPORT defined but not implemented."
        ) from None


def remove_stale_unix_socket(path: str | bytes) -> None:
    """Remove a socket file left at `path` by a server that is gone, so a new
    one can bind there. Abstract sockets (a leading NUL) have no file; a file
    that is not a socket is left alone (bind then fails and says so)."""
    if not path or path[0] in (0, "\x00"):
        return
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        logger.error("Unable to check or remove stale UNIX socket %r: %r", path, err)


def _call_method(sock: socket.socket, name: str, *args: Any) -> Any:
    return getattr(sock, name)(*args)


def _check_socket(sock: socket.socket) -> None:
    ssl = sys.modules.get("ssl")
    if ssl is not None and isinstance(sock, ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")
    if sock.gettimeout() != 0:
        raise ValueError("the socket must be non-blocking")


class SocketsMixin(BaseEventLoop):
    """`sock_recv`, `sock_sendall`, `sock_connect`, `sock_accept` and friends."""

    async def _resolve(
        self,
        host: Any,
        port: Any,
        *,
        family: int = 0,
        type: int = socket.SOCK_STREAM,
        proto: int = 0,
        flags: int = 0,
    ) -> list[AddrInfo]:
        if host is None or isinstance(host, (str, bytes)):
            try:
                # Numeric hosts resolve without DNS: no thread needed.
                return socket.getaddrinfo(  # type: ignore[return-value]
                    host, port, family, type, proto, flags | socket.AI_NUMERICHOST
                )
            except (socket.gaierror, UnicodeError):
                pass
        return await self.getaddrinfo(
            host, port, family=family, type=type, proto=proto, flags=flags
        )

    async def _sock_wait(
        self, sock: socket.socket, writing: bool, op: Callable[..., Any] | str, *args: Any
    ) -> Any:
        """Run `op(*args)` once `sock` is ready; retry on EWOULDBLOCK. A string
        `op` names a method of `sock`, looked up at each try (so a wrapped or
        patched socket is honoured)."""
        if isinstance(op, str):
            op = functools.partial(_call_method, sock, op)
        fut = self.create_future()
        fd = sock.fileno()
        self._ensure_fd_no_transport(fd)
        if writing:
            handle = self._add_writer(fd, self._sock_retry, (fut, op, args))
        else:
            handle = self._add_reader(fd, self._sock_retry, (fut, op, args))
        fut.add_done_callback(functools.partial(self._sock_done, fd, handle, writing))
        try:
            return await fut
        finally:
            # An error raised here keeps this frame in its traceback: let the
            # frame not hold the future, which holds the error (a cycle that
            # only the garbage collector would free).
            del fut, handle

    @staticmethod
    def _sock_retry(
        fut: asyncio.Future[Any], op: Callable[..., Any], args: tuple[Any, ...]
    ) -> None:
        if fut.done():
            return
        try:
            result = op(*args)
        except _WOULD_BLOCK:
            return  # spurious wake-up: stay registered
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            del fut  # this frame is in the error's traceback (see _sock_wait)
        else:
            fut.set_result(result)

    def _sock_done(self, fd: int, handle: Any, writing: bool, fut: asyncio.Future[Any]) -> None:
        # Remove our registration only: another caller may have replaced it.
        if self._closed:
            return
        entry = self._fds.get(fd)
        if entry is not None and entry[1 if writing else 0] is handle:
            self._remove_fd_handler(fd, 1 if writing else 0)

    async def sock_recv(self, sock: socket.socket, n: int) -> bytes:
        """Receive up to `n` bytes; b'' at end of stream."""
        _check_socket(sock)
        try:
            return sock.recv(n)
        except _WOULD_BLOCK:
            pass
        return await self._sock_wait(sock, False, "recv", n)  # type: ignore[no-any-return]

    async def sock_recv_into(self, sock: socket.socket, buf: Any) -> int:
        """Receive into the writable buffer `buf`; return the byte count."""
        _check_socket(sock)
        try:
            return sock.recv_into(buf)
        except _WOULD_BLOCK:
            pass
        return await self._sock_wait(sock, False, "recv_into", buf)  # type: ignore[no-any-return]

    async def sock_recvfrom(self, sock: socket.socket, bufsize: int) -> tuple[bytes, Any]:
        """Receive a datagram of at most `bufsize` bytes: (data, address)."""
        _check_socket(sock)
        try:
            return sock.recvfrom(bufsize)
        except _WOULD_BLOCK:
            pass
        return await self._sock_wait(sock, False, "recvfrom", bufsize)  # type: ignore[no-any-return]

    async def sock_recvfrom_into(
        self, sock: socket.socket, buf: Any, nbytes: int = 0
    ) -> tuple[int, Any]:
        """Receive a datagram into `buf`: (byte count, address)."""
        _check_socket(sock)
        try:
            return sock.recvfrom_into(buf, nbytes)
        except _WOULD_BLOCK:
            pass
        return await self._sock_wait(sock, False, "recvfrom_into", buf, nbytes)  # type: ignore[no-any-return]

    async def sock_sendto(self, sock: socket.socket, data: Any, address: Any) -> int:
        """Send a datagram to `address`; return the byte count."""
        _check_socket(sock)
        try:
            return sock.sendto(data, address)
        except _WOULD_BLOCK:
            pass
        return await self._sock_wait(sock, True, "sendto", data, address)  # type: ignore[no-any-return]

    async def sock_sendall(self, sock: socket.socket, data: Any) -> None:
        """Send all of `data`, waiting for buffer space as often as needed."""
        _check_socket(sock)
        try:
            sent = sock.send(data)
        except _WOULD_BLOCK:
            sent = 0
        view = memoryview(data).cast("B")
        total = len(view)
        while sent < total:
            sent += await self._sock_wait(sock, True, self._send_some, sock, view, sent)

    @staticmethod
    def _send_some(sock: socket.socket, view: memoryview, start: int) -> int:
        return sock.send(view[start:])

    async def sock_connect(self, sock: socket.socket, address: Any) -> None:
        """Connect to `address`, resolving a host name first if needed."""
        _check_socket(sock)
        family = sock.family
        if family in (socket.AF_INET, socket.AF_INET6):
            address = await self._resolve_for(sock, address)
        try:
            sock.connect(address)
            return
        except _WOULD_BLOCK:
            pass
        await self._sock_wait(sock, True, self._connect_result, sock, address)

    @staticmethod
    def _connect_result(sock: socket.socket, address: Any) -> None:
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err in (errno.EINPROGRESS, errno.EALREADY):
            raise BlockingIOError(err, "connect still in progress")
        if err != 0:
            raise OSError(err, f"Connect call failed {address}")

    async def _resolve_for(self, sock: socket.socket, address: Any) -> Any:
        """Resolve (host, port, ...) for `sock`'s family, skipping DNS for IP literals."""
        host, port = address[0], address[1]
        if isinstance(host, bytes):
            host = host.decode("idna")
        try:
            socket.inet_pton(sock.family, host.partition("%")[0])
            return address
        except (OSError, ValueError, TypeError):
            pass
        infos = await self._resolve(
            host, port, family=sock.family, type=sock.type, proto=sock.proto
        )
        if not infos:
            raise OSError(f"getaddrinfo({host!r}) returned empty list")
        return infos[0][4]

    async def sock_accept(self, sock: socket.socket) -> tuple[socket.socket, Any]:
        """Accept a connection: (non-blocking socket, peer address)."""
        _check_socket(sock)
        try:
            conn, address = sock.accept()
        except _WOULD_BLOCK:
            conn, address = await self._sock_wait(sock, False, "accept")
        conn.setblocking(False)
        return conn, address
