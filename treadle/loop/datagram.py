"""UDP and Unix datagram endpoints: `create_datagram_endpoint` and its transport.

A datagram is sent at once when nothing is queued; if the kernel refuses it,
it is queued (copied, so the caller may reuse its buffer) and flushed when the
socket is writable. Errors the kernel reports for one datagram (ICMP port
unreachable surfaces as ECONNREFUSED on a connected socket, for instance) go
to the protocol's `error_received` and the endpoint stays open, as UDP needs.
"""

from __future__ import annotations

import asyncio
import socket
from asyncio.log import logger
from collections.abc import Callable
from typing import Any

from .core import BaseEventLoop
from .sockets import SocketsMixin, remove_stale_unix_socket, set_reuseport
from .transports import (
    LOG_THRESHOLD_FOR_CONNLOST_WRITES,
    BaseSocketTransport,
    _set_result_unless_cancelled,
)

__all__ = ["DatagramMixin", "DatagramTransport"]

_WOULD_BLOCK = (BlockingIOError, InterruptedError)


class DatagramTransport(BaseSocketTransport, asyncio.DatagramTransport):
    """A transport over a datagram socket, connected (`remote_addr`) or not."""

    def __init__(
        self,
        loop: BaseEventLoop,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        address: Any = None,
        waiter: asyncio.Future[None] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(loop, sock, protocol, extra)
        self._address = address
        self._reader_cb = self._read_datagram
        loop.call_soon(self._start, waiter)

    def _start(self, waiter: asyncio.Future[None] | None) -> None:
        try:
            self._protocol.connection_made(self)
        finally:
            if not self._closing and not self._paused and self._loop is not None:
                self._loop._add_reader(self._fd, self._reader_cb, ())
            _set_result_unless_cancelled(waiter)

    def _read_datagram(self) -> None:
        if self._conn_lost:
            return
        try:
            # Into the loop's shared buffer: recvfrom(MAX_READ) would allocate
            # MAX_READ bytes per datagram.
            n, addr = self._sock.recvfrom_into(self._loop._read_buffer)  # type: ignore[union-attr]
            data = self._loop._read_view[:n].tobytes()  # type: ignore[union-attr]
        except _WOULD_BLOCK:
            return
        except OSError as exc:
            self._protocol.error_received(exc)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on datagram transport")
        else:
            self._protocol.datagram_received(data, addr)

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        """Send one datagram to `addr` (or to the connected peer)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if self._address:
            if addr not in (None, self._address):
                raise ValueError(f"Invalid address: must be None or {self._address}")
            addr = self._address
        if self._conn_lost and self._address:
            if self._conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("socket.send() raised exception.")
            self._conn_lost += 1
            return
        if not self._buffer:
            try:
                # Connected, even if the peer's name is '' (an unnamed Unix
                # socket, as socketpair() makes): sendto() would need an
                # address (the stdlib loop fails there; uvloop sends).
                if self._extra["peername"] is not None:
                    self._sock.send(data)  # type: ignore[union-attr]
                else:
                    self._sock.sendto(data, addr)  # type: ignore[union-attr]
                return
            except _WOULD_BLOCK:
                assert self._loop is not None
                self._loop._add_writer(self._fd, self._send_queued, ())
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return
        self._buffer.append((bytes(data), addr))
        self._buffer_size += len(data) + 8  # count a header's worth per datagram
        self._maybe_pause_protocol()

    def _send_queued(self) -> None:
        buffer = self._buffer
        while buffer:
            data, addr = buffer[0]
            try:
                if self._extra["peername"] is not None:
                    self._sock.send(data)  # type: ignore[union-attr]
                else:
                    self._sock.sendto(data, addr)  # type: ignore[union-attr]
            except _WOULD_BLOCK:
                break
            except OSError as exc:
                buffer.popleft()
                self._buffer_size -= len(data) + 8
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return
            buffer.popleft()
            self._buffer_size -= len(data) + 8
        self._maybe_resume_protocol()
        if not buffer and self._loop is not None:
            self._loop._remove_fd_handler(self._fd, 1)
            if self._closing:
                self._call_connection_lost(None)


class DatagramMixin(SocketsMixin):
    """`create_datagram_endpoint`."""

    async def create_datagram_endpoint(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        local_addr: Any = None,
        remote_addr: Any = None,
        *,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        reuse_address: Any = None,
        reuse_port: bool | None = None,
        allow_broadcast: bool | None = None,
        sock: socket.socket | None = None,
    ) -> tuple[asyncio.DatagramTransport, asyncio.BaseProtocol]:
        """Open a UDP (or Unix datagram) endpoint; return (transport, protocol).

        `reuse_address` is refused: SO_REUSEADDR on UDP lets other processes
        steal the port's traffic (asyncio refuses it too since 3.11).
        """
        if reuse_address:
            raise ValueError(
                "Passing `reuse_address=True` is no longer supported, as the usage of "
                "SO_REUSEPORT in UDP poses a significant security concern."
            )
        address: Any = None
        if sock is not None:
            if sock.type == socket.SOCK_STREAM:
                raise ValueError(f"A datagram socket was expected, got {sock!r}")
            opts = {
                "local_addr": local_addr,
                "remote_addr": remote_addr,
                "family": family,
                "proto": proto,
                "flags": flags,
                "reuse_port": reuse_port,
                "allow_broadcast": allow_broadcast,
            }
            problems = ", ".join(f"{k}={v}" for k, v in opts.items() if v)
            if problems:
                raise ValueError(
                    "socket modifier keyword arguments can not be used when sock is "
                    f"specified. ({problems})"
                )
            sock.setblocking(False)
        else:
            sock, address = await self._open_datagram_socket(
                local_addr, remote_addr, family, proto, flags, reuse_port, allow_broadcast
            )
        protocol = protocol_factory()
        waiter: asyncio.Future[None] = self.create_future()
        transport = DatagramTransport(self, sock, protocol, address, waiter)
        if self._debug:
            logger.debug(
                "Datagram endpoint local_addr=%r remote_addr=%r created: (%r, %r)",
                local_addr,
                remote_addr,
                transport,
                protocol,
            )
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol

    async def _open_datagram_socket(
        self,
        local_addr: Any,
        remote_addr: Any,
        family: int,
        proto: int,
        flags: int,
        reuse_port: bool | None,
        allow_broadcast: bool | None,
    ) -> tuple[socket.socket, Any]:
        pairs: list[tuple[tuple[int, int], list[Any]]]
        if not (local_addr or remote_addr):
            if family == 0:
                raise ValueError("unexpected address family")
            pairs = [((family, proto), [None, None])]
        elif hasattr(socket, "AF_UNIX") and family == socket.AF_UNIX:
            for addr in (local_addr, remote_addr):
                if addr is not None and not isinstance(addr, str):
                    raise TypeError("string is expected")
            if local_addr:
                remove_stale_unix_socket(local_addr)
            pairs = [((family, proto), [local_addr, remote_addr])]
        else:
            by_key: dict[tuple[int, int], list[Any]] = {}
            for idx, addr in ((0, local_addr), (1, remote_addr)):
                if addr is None:
                    continue
                if not (isinstance(addr, tuple) and len(addr) == 2):
                    raise TypeError("2-tuple is expected")
                infos = await self._resolve(
                    addr[0],
                    addr[1],
                    family=family,
                    type=socket.SOCK_DGRAM,
                    proto=proto,
                    flags=flags,
                )
                if not infos:
                    raise OSError("getaddrinfo() returned empty list")
                for fam, _, pro, _, sockaddr in infos:
                    by_key.setdefault((fam, pro), [None, None])[idx] = sockaddr
            # Every address given must exist in the family we pick.
            pairs = [
                (key, pair)
                for key, pair in by_key.items()
                if not ((local_addr and pair[0] is None) or (remote_addr and pair[1] is None))
            ]
            if not pairs:
                raise ValueError("can not get address information")
        errors: list[OSError] = []
        for (fam, pro), (local, remote) in pairs:
            sock = None
            try:
                sock = socket.socket(family=fam, type=socket.SOCK_DGRAM, proto=pro)
                if reuse_port:
                    set_reuseport(sock)
                if allow_broadcast:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                sock.setblocking(False)
                if local_addr:
                    sock.bind(local)
                if remote_addr:
                    if not allow_broadcast:
                        await self.sock_connect(sock, remote)
                    return sock, remote
                return sock, None
            except OSError as exc:
                if sock is not None:
                    sock.close()
                errors.append(exc)
            except BaseException:
                if sock is not None:
                    sock.close()
                raise
        try:
            raise errors[0]
        finally:
            # This frame stays in the error's traceback: let it not hold the
            # error (a cycle that only the garbage collector would free).
            errors.clear()
