"""Stream networking on Treadle's loop: connect, serve, upgrade to TLS, sendfile.

`StreamsMixin` implements `create_connection` (with Happy Eyeballs),
`create_server`, their Unix-socket twins, `connect_accepted_socket`,
`start_tls`, `sendfile` and `sock_sendfile`. The transports are in
`transports.py`, listening servers in `servers.py`, TLS in `tls.py`.

Name resolution skips the thread pool when it can: a numeric host (an IP
literal, or None for a passive socket) is resolved inline with
`AI_NUMERICHOST`, which never touches DNS; only real names go to
`getaddrinfo` in the executor. Argument checking and error messages follow
asyncio's, so code that tests for them keeps working.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import io
import itertools
import os
import socket
import stat
import sys
from asyncio.constants import _SendfileMode
from asyncio.log import logger
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from . import tls
from .servers import Server
from .sockets import AddrInfo, SocketsMixin, remove_stale_unix_socket, set_reuseport
from .transports import SocketTransport

__all__ = ["StreamsMixin"]


_ProtocolFactory = Callable[[], asyncio.BaseProtocol]

#: Bytes per `os.sendfile()` call, and per read in the fallback paths.
_SENDFILE_BLOCK = 1024 * 1024
_FALLBACK_BLOCK = 256 * 1024


def _interleave(infos: Sequence[AddrInfo], first_family_count: int) -> list[AddrInfo]:
    """Reorder addresses so families alternate (RFC 8305), keeping
    `first_family_count` of the first family at the front."""
    by_family: dict[int, list[AddrInfo]] = collections.defaultdict(list)
    for info in infos:
        by_family[info[0]].append(info)
    groups = list(by_family.values())
    head: list[AddrInfo] = []
    if first_family_count > 1 and groups:
        head = groups[0][: first_family_count - 1]
        del groups[0][: first_family_count - 1]
    mixed = [a for a in itertools.chain.from_iterable(itertools.zip_longest(*groups)) if a]
    return head + mixed


def _check_ssl_socket(sock: socket.socket) -> None:
    ssl = sys.modules.get("ssl")
    if ssl is not None and isinstance(sock, ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def _connect_error(errors: list[OSError], all_errors: bool) -> Exception:
    """What a failed create_connection raises, made from its attempts' errors.
    Returned, not raised: a frame of this function in the traceback would
    hold `errors`, and so the errors, in a cycle with their tracebacks."""
    if all_errors:
        return ExceptionGroup("create_connection failed", errors)
    if len(errors) == 1:
        return errors[0]
    model = str(errors[0])
    if all(str(exc) == model for exc in errors):
        return errors[0]
    return OSError("Multiple exceptions: {}".format(", ".join(str(exc) for exc in errors)))


class _SendfileFallbackProtocol(asyncio.Protocol):
    """Stands in for a transport's protocol while the fallback sendfile writes
    through it, so the copy loop can wait on the transport's flow control."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._saved = transport.get_protocol()
        self._resume_reading = transport.is_reading()
        self._resume_writing = bool(getattr(transport, "_protocol_paused", False))
        transport.pause_reading()
        transport.set_protocol(self)
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._writable: asyncio.Future[None] | None = (
            loop.create_future() if self._resume_writing else None
        )

    async def drain(self) -> None:
        if self._transport.is_closing():
            raise ConnectionError("Connection closed by peer")
        if self._writable is not None:
            await self._writable

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raise RuntimeError("Invalid state: connection should have been established already.")

    def connection_lost(self, exc: Exception | None) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(exc or ConnectionError("Connection is closed by peer"))
        self._saved.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None:
            if not self._writable.done():
                self._writable.set_result(None)
            self._writable = None

    def data_received(self, data: bytes) -> None:
        raise RuntimeError("Invalid state: reading should be paused")

    def eof_received(self) -> bool | None:
        raise RuntimeError("Invalid state: reading should be paused")

    def restore(self) -> None:
        self._transport.set_protocol(self._saved)
        if self._resume_reading:
            self._transport.resume_reading()
        if self._writable is not None:
            self._writable.cancel()
        if self._resume_writing:
            self._saved.resume_writing()


class StreamsMixin(SocketsMixin):
    """TCP and Unix stream connections and servers."""

    # -- connecting -------------------------------------------------------------------

    async def create_connection(  # type: ignore[override]
        self,
        protocol_factory: _ProtocolFactory,
        host: str | None = None,
        port: int | str | None = None,
        *,
        ssl: Any = None,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        sock: socket.socket | None = None,
        local_addr: tuple[str, int] | None = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        happy_eyeballs_delay: float | None = None,
        interleave: int | None = None,
        all_errors: bool = False,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        """Open a TCP connection (TLS with `ssl=`); return (transport, protocol).

        With several addresses for the host, they are tried in turn; with
        `happy_eyeballs_delay`, the next attempt starts after that delay even
        if the previous one is still pending (RFC 8305), and the first to
        connect wins.
        """
        # Before connecting: a bad argument must not cost a connection (or leak it).
        server_hostname = tls.check_ssl_args(
            "connection",
            ssl,
            host=host,
            server_hostname=server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )
        if sock is not None:
            _check_ssl_socket(sock)
        if happy_eyeballs_delay is not None and interleave is None:
            interleave = 1
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            infos = await self._resolve(host, port, family=family, proto=proto, flags=flags)
            if not infos:
                raise OSError("getaddrinfo() returned empty list")
            local_infos = None
            if local_addr is not None:
                local_infos = await self._resolve(
                    local_addr[0], local_addr[1], family=family, proto=proto, flags=flags
                )
                if not local_infos:
                    raise OSError("getaddrinfo() returned empty list")
            if interleave:
                infos = _interleave(infos, interleave)
            errors: list[OSError] = []
            attempts = [self._attempt_connect(info, local_infos, errors) for info in infos]
            if happy_eyeballs_delay is None:
                sock = None
                for attempt in attempts:
                    try:
                        sock = await attempt()
                        break
                    except OSError:
                        continue
            else:
                sock = await self._race(attempts, happy_eyeballs_delay)
            if sock is None:
                try:
                    raise _connect_error(errors, all_errors)
                finally:
                    # This frame (and the attempts' closures) stay in the
                    # error's traceback: let them not hold the errors, which
                    # would make a cycle that only the garbage collector frees.
                    errors.clear()
        else:
            if sock is None:
                raise ValueError("host and port was not specified and no sock specified")
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        transport, protocol = await self._make_connection(
            sock,
            protocol_factory,
            ssl,
            server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )
        if self._debug:
            logger.debug("connected to %s:%r: (%r, %r)", host, port, transport, protocol)
        return transport, protocol

    def _attempt_connect(
        self,
        info: AddrInfo,
        local_infos: list[AddrInfo] | None,
        errors: list[OSError],
    ) -> Callable[[], Awaitable[socket.socket]]:
        """One connection attempt to one address, as a coroutine function;
        its errors are added to `errors`."""

        async def attempt() -> socket.socket:
            family, type_, proto, _, address = info
            sock = None
            try:
                sock = socket.socket(family, type_, proto)
                sock.setblocking(False)
                if local_infos is not None:
                    self._bind_local(sock, family, local_infos, errors)
                await self.sock_connect(sock, address)
                return sock
            except OSError as exc:
                errors.append(exc)
                if sock is not None:
                    sock.close()
                raise
            except BaseException:
                if sock is not None:
                    sock.close()
                raise

        return attempt

    @staticmethod
    def _bind_local(
        sock: socket.socket, family: int, local_infos: list[AddrInfo], errors: list[OSError]
    ) -> None:
        bind_errors: list[OSError] = []
        for lfamily, _, _, _, laddr in local_infos:
            if lfamily != family:
                continue
            try:
                sock.bind(laddr)
                return
            except OSError as exc:
                msg = (
                    f"error while attempting to bind on address {laddr!r}: "
                    f"{str(exc.strerror).lower()}"
                )
                bind_errors.append(OSError(exc.errno, msg))
        if bind_errors:
            errors.extend(bind_errors[:-1])
            try:
                raise bind_errors[-1]
            finally:
                bind_errors.clear()  # no cycle through this frame (see create_connection)
        raise OSError(f"no matching local address with family={family} found")

    async def _race(
        self, attempts: list[Callable[[], Awaitable[socket.socket]]], delay: float
    ) -> socket.socket | None:
        """Happy Eyeballs: start attempts `delay` apart (at once when one fails);
        return the first socket that connects, closing any later winners."""
        pending = iter(attempts)
        running: set[asyncio.Task[socket.socket]] = set()
        started_all = False
        try:
            while True:
                if not started_all:
                    attempt = next(pending, None)
                    if attempt is None:
                        started_all = True
                    else:
                        running.add(self.create_task(attempt()))  # type: ignore[arg-type]
                if not running:
                    return None
                done, _ = await asyncio.wait(
                    running,
                    timeout=None if started_all else delay,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for task in done:
                    running.discard(task)
                    if not task.cancelled() and task.exception() is None:
                        return task.result()
        finally:
            for task in running:
                task.cancel()
            if running:
                results = await asyncio.gather(*running, return_exceptions=True)
                for result in results:
                    if isinstance(result, socket.socket):
                        result.close()

    async def _make_connection(
        self,
        sock: socket.socket,
        protocol_factory: _ProtocolFactory,
        ssl: Any,
        server_hostname: str | None,
        server_side: bool = False,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        """Give a connected socket a transport and a protocol; for TLS, return
        once the handshake is done."""
        sock.setblocking(False)
        protocol = protocol_factory()
        waiter: asyncio.Future[None] = self.create_future()
        if ssl:
            context = tls.make_context(ssl, server_side, server_hostname)
            tls_protocol = tls.TLSProtocol(
                self,
                protocol,
                context,
                waiter,
                server_side=server_side,
                server_hostname=server_hostname,
                ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout,
            )
            plain = SocketTransport(self, sock, tls_protocol)
            transport: asyncio.Transport = tls_protocol.app_transport
        else:
            plain = SocketTransport(self, sock, protocol, waiter)
            transport = plain
        try:
            await waiter
        except BaseException:
            plain.close()
            raise
        return transport, protocol

    async def create_unix_connection(  # type: ignore[override]
        self,
        protocol_factory: _ProtocolFactory,
        path: str | bytes | os.PathLike[str] | None = None,
        *,
        ssl: Any = None,
        sock: socket.socket | None = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        """Open a Unix stream connection to `path` (or use a connected `sock`)."""
        server_hostname = tls.check_ssl_args(
            "unix_connection",
            ssl,
            server_hostname=server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            target = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
            try:
                sock.setblocking(False)
                await self.sock_connect(sock, target)
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError("no path and sock were specified")
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
        return await self._make_connection(
            sock,
            protocol_factory,
            ssl,
            server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )

    async def connect_accepted_socket(  # type: ignore[override]
        self,
        protocol_factory: _ProtocolFactory,
        sock: socket.socket,
        *,
        ssl: Any = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        """Wrap a socket accepted elsewhere (the server side of a connection)."""
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        tls.check_ssl_args(
            "accepted_socket",
            ssl,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )
        _check_ssl_socket(sock)
        return await self._make_connection(
            sock,
            protocol_factory,
            ssl,
            "",
            server_side=True,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )

    async def start_tls(
        self,
        transport: asyncio.BaseTransport,
        protocol: asyncio.BaseProtocol,
        sslcontext: Any,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> asyncio.Transport | None:
        """Upgrade an open connection to TLS; return the new (TLS) transport,
        or None if `transport` was closing before the upgrade (as asyncio)."""
        transport_: asyncio.Transport | None = await tls.start_tls(
            self,
            transport,
            protocol,
            sslcontext,
            server_side=server_side,
            server_hostname=server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )
        return transport_

    # -- serving ------------------------------------------------------------------------

    async def create_server(  # type: ignore[override]
        self,
        protocol_factory: _ProtocolFactory,
        host: str | Sequence[str] | None = None,
        port: int | str | None = None,
        *,
        family: int = socket.AF_UNSPEC,
        flags: int = socket.AI_PASSIVE,
        sock: socket.socket | None = None,
        backlog: int = 100,
        ssl: Any = None,
        reuse_address: bool | None = None,
        reuse_port: bool | None = None,
        keep_alive: bool | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        start_serving: bool = True,
    ) -> Server:
        """Listen on every address of `host` (a name, a list of names, or None
        for all interfaces) at `port`, or on `sock`; return the Server."""
        tls.check_ssl_args(
            "server",
            ssl,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )
        if sock is not None:
            _check_ssl_socket(sock)
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            if reuse_address is None:
                reuse_address = os.name == "posix" and sys.platform != "cygwin"
            hosts: Iterable[str | None]
            if host == "":
                hosts = [None]
            elif isinstance(host, str) or not isinstance(host, Iterable):
                hosts = [host]
            else:
                hosts = host
            resolved = await asyncio.gather(
                *(self._resolve(h, port, family=family, flags=flags) for h in hosts)
            )
            infos = list(dict.fromkeys(itertools.chain.from_iterable(resolved)))
            sockets = self._bind_all(infos, reuse_address, reuse_port, keep_alive)
            if not sockets and infos:
                raise OSError(f"could not bind on any address out of {infos!r}")
        else:
            if sock is None:
                raise ValueError("Neither host/port nor sock were specified")
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A Stream Socket was expected, got {sock!r}")
            sockets = [sock]
        for s in sockets:
            s.setblocking(False)
        server = Server(
            self,
            sockets,
            protocol_factory,
            ssl,
            backlog,
            ssl_handshake_timeout,
            ssl_shutdown_timeout,
        )
        if start_serving:
            server._start_serving()
            await asyncio.sleep(0)
        if self._debug:
            logger.info("%r is serving", server)
        return server

    def _bind_all(
        self,
        infos: list[AddrInfo],
        reuse_address: bool,
        reuse_port: bool | None,
        keep_alive: bool | None,
    ) -> list[socket.socket]:
        sockets: list[socket.socket] = []
        completed = False
        try:
            for af, socktype, proto, _, address in infos:
                try:
                    sock = socket.socket(af, socktype, proto)
                except OSError:
                    # A family this host cannot do (IPv6 disabled, say): skip it.
                    if self._debug:
                        logger.warning(
                            "create_server() failed to create socket.socket(%r, %r, %r)",
                            af,
                            socktype,
                            proto,
                            exc_info=True,
                        )
                    continue
                sockets.append(sock)
                if reuse_address:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    set_reuseport(sock)
                if keep_alive:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                if af == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                    # One socket per family: the IPv4 addresses get their own.
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    sock.bind(address)
                except OSError as err:
                    msg = (
                        f"error while attempting to bind on address {address!r}: "
                        f"{str(err.strerror).lower()}"
                    )
                    if err.errno == errno.EADDRNOTAVAIL:
                        msg += " (hint: the address is not assigned to any interface)"
                    raise OSError(err.errno, msg) from None
            completed = True
        finally:
            if not completed:
                for sock in sockets:
                    sock.close()
        return sockets

    async def create_unix_server(  # type: ignore[override]
        self,
        protocol_factory: _ProtocolFactory,
        path: str | bytes | os.PathLike[str] | None = None,
        *,
        sock: socket.socket | None = None,
        backlog: int = 100,
        ssl: Any = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        start_serving: bool = True,
        cleanup_socket: bool = True,
    ) -> Server:
        """Listen on the Unix socket `path` (a stale socket file there is
        replaced) or on `sock`. With `cleanup_socket`, closing the server
        removes the socket file if it is still ours."""
        tls.check_ssl_args(
            "server",
            ssl,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            target = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            remove_stale_unix_socket(target)
            try:
                sock.bind(target)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    raise OSError(
                        errno.EADDRINUSE, f"Address {target!r} is already in use"
                    ) from None
                raise
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError("path was not specified, and no sock specified")
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
        cleanup: list[tuple[str, int, int]] = []
        if cleanup_socket:
            name = sock.getsockname()
            if isinstance(name, str) and name and name[0] != "\x00":
                try:
                    st = os.stat(name)
                    cleanup.append((name, st.st_dev, st.st_ino))
                except OSError:
                    pass
        sock.setblocking(False)
        server = Server(
            self,
            [sock],
            protocol_factory,
            ssl,
            backlog,
            ssl_handshake_timeout,
            ssl_shutdown_timeout,
            unix_paths=cleanup,
        )
        if start_serving:
            server._start_serving()
            await asyncio.sleep(0)
        return server

    # -- sendfile --------------------------------------------------------------------

    async def sock_sendfile(
        self,
        sock: socket.socket,
        file: Any,
        offset: int = 0,
        count: int | None = None,
        *,
        fallback: bool | None = True,
    ) -> int:
        """Send a file over a connected stream socket with `os.sendfile`
        (zero-copy), or by reading and sending when that is not possible and
        `fallback` is true. Returns the number of bytes sent."""
        if sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        _check_sendfile_params(sock, file, offset, count)
        try:
            return await self._sock_sendfile_native(sock, file, offset, count)
        except asyncio.SendfileNotAvailableError:
            if not fallback:
                raise
        return await self._sock_sendfile_fallback(sock, file, offset, count)

    async def _sock_sendfile_native(
        self, sock: socket.socket, file: Any, offset: int, count: int | None
    ) -> int:
        if not hasattr(os, "sendfile"):
            raise asyncio.SendfileNotAvailableError("os.sendfile() is not available")
        try:
            fileno = file.fileno()
        except (AttributeError, io.UnsupportedOperation) as err:
            raise asyncio.SendfileNotAvailableError("not a regular file") from err
        try:
            size = os.fstat(fileno).st_size
        except OSError:
            raise asyncio.SendfileNotAvailableError("not a regular file") from None
        if not stat.S_ISREG(os.fstat(fileno).st_mode):
            raise asyncio.SendfileNotAvailableError("not a regular file")
        total = count if count else size
        if not total:
            return 0
        sent = 0
        try:
            while sent < total:
                block = min(total - sent, _SENDFILE_BLOCK)
                try:
                    n = os.sendfile(sock.fileno(), fileno, offset + sent, block)
                except (BlockingIOError, InterruptedError):
                    await self._wait_writable(sock)
                    continue
                except OSError as exc:
                    if sent == 0 and exc.errno in (errno.ENOTSOCK, errno.EINVAL, errno.ENOSYS):
                        raise asyncio.SendfileNotAvailableError("os.sendfile call failed") from exc
                    raise
                if n == 0:
                    break  # end of file
                sent += n
            return sent
        finally:
            if sent > 0:
                file.seek(offset + sent)

    async def _wait_writable(self, sock: socket.socket) -> None:
        await self._sock_wait(sock, True, lambda: None)

    async def _sock_sendfile_fallback(
        self, sock: socket.socket, file: Any, offset: int, count: int | None
    ) -> int:
        if offset:
            file.seek(offset)
        block = min(count, _FALLBACK_BLOCK) if count else _FALLBACK_BLOCK
        buf = bytearray(block)
        sent = 0
        try:
            while True:
                if count:
                    block = min(count - sent, block)
                    if block <= 0:
                        break
                view = memoryview(buf)[:block]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    break
                await self.sock_sendall(sock, view[:read])
                sent += read
            return sent
        finally:
            if sent > 0 and hasattr(file, "seek"):
                file.seek(offset + sent)

    async def sendfile(
        self,
        transport: asyncio.WriteTransport,
        file: Any,
        offset: int = 0,
        count: int | None = None,
        *,
        fallback: bool = True,
    ) -> int:
        """Send a file over a transport: zero-copy on a plain socket transport,
        else (TLS, or `os.sendfile` unavailable) by reading and writing."""
        if transport.is_closing():
            raise RuntimeError("Transport is closing")
        mode = getattr(transport, "_sendfile_compatible", _SendfileMode.UNSUPPORTED)
        if isinstance(transport, SocketTransport):
            mode = _SendfileMode.TRY_NATIVE
        if mode is _SendfileMode.UNSUPPORTED:
            raise RuntimeError(f"sendfile is not supported for transport {transport!r}")
        if mode is _SendfileMode.TRY_NATIVE and isinstance(transport, SocketTransport):
            try:
                return await self._sendfile_native(transport, file, offset, count)
            except asyncio.SendfileNotAvailableError:
                if not fallback:
                    raise
        if not fallback:
            raise RuntimeError(
                f"fallback is disabled and native sendfile is not supported for transport "
                f"{transport!r}"
            )
        return await self._sendfile_fallback(transport, file, offset, count)

    async def _sendfile_native(
        self, transport: SocketTransport, file: Any, offset: int, count: int | None
    ) -> int:
        sock = transport._sock
        assert sock is not None
        fd = transport._fd
        # The socket is borrowed from the transport for the duration.
        self._transports.pop(fd, None)
        resume = transport.is_reading()
        transport.pause_reading()
        await transport._make_empty_waiter()
        try:
            return await self.sock_sendfile(sock, file, offset, count, fallback=False)
        finally:
            transport._reset_empty_waiter()
            if resume:
                transport.resume_reading()
            self._transports[fd] = transport

    async def _sendfile_fallback(
        self, transport: asyncio.WriteTransport, file: Any, offset: int, count: int | None
    ) -> int:
        if offset:
            file.seek(offset)
        block = min(count, 16384) if count else 16384
        buf = bytearray(block)
        sent = 0
        proto = _SendfileFallbackProtocol(transport)
        try:
            while True:
                if count:
                    block = min(count - sent, block)
                    if block <= 0:
                        return sent
                view = memoryview(buf)[:block]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    return sent
                await proto.drain()
                transport.write(bytes(view[:read]))
                sent += read
        finally:
            if sent > 0 and hasattr(file, "seek"):
                file.seek(offset + sent)
            proto.restore()


def _check_sendfile_params(sock: socket.socket, file: Any, offset: int, count: int | None) -> None:
    if "b" not in getattr(file, "mode", "b"):
        raise ValueError("file should be opened in binary mode")
    if not sock.type == socket.SOCK_STREAM:
        raise ValueError("only SOCK_STREAM type sockets are supported")
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f"count must be a positive integer (got {count!r})")
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
    if not isinstance(offset, int):
        raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
    if offset < 0:
        raise ValueError(f"offset must be a non-negative integer (got {offset!r})")
