"""TCP and Unix stream transports, servers and connections, on both loops."""

from __future__ import annotations

import asyncio
import gc
import io
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

import treadle
from tests.conftest import run


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Recorder(asyncio.Protocol):
    """Records every callback, in order, with the data it got."""

    def __init__(self, *, keep_open_on_eof: bool = False, reply: bytes = b"") -> None:
        self.reply = reply
        self.events: list[Any] = []
        self.data = bytearray()
        self.transport: asyncio.Transport | None = None
        self.keep_open_on_eof = keep_open_on_eof
        self.made = asyncio.get_running_loop().create_future()
        self.lost = asyncio.get_running_loop().create_future()
        self.got_eof = asyncio.get_running_loop().create_future()
        self.got_data = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.events.append("made")
        self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += data
        self.got_data.set()
        if self.reply and self.transport is not None:
            self.transport.write(self.reply)
            self.reply = b""

    def eof_received(self) -> bool:
        self.events.append("eof")
        self.got_eof.set_result(None)
        return self.keep_open_on_eof

    def pause_writing(self) -> None:
        self.events.append("pause_writing")

    def resume_writing(self) -> None:
        self.events.append("resume_writing")

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(("lost", exc))
        self.lost.set_result(exc)


async def serve(
    loop: asyncio.AbstractEventLoop, factory: Any, **kwargs: Any
) -> tuple[asyncio.AbstractServer, int]:
    server = await loop.create_server(factory, "127.0.0.1", 0, **kwargs)
    return server, server.sockets[0].getsockname()[1]


def test_streams_echo(loop: asyncio.AbstractEventLoop) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main() -> list[bytes]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        replies = []
        for word in (b"one\n", b"two\n", b"three\n"):
            writer.write(word)
            replies.append(await reader.readline())
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return replies

    assert run(loop, main()) == [b"ONE\n", b"TWO\n", b"THREE\n"]


def test_protocol_callbacks_in_order(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> tuple[list[Any], list[Any]]:
        server_proto: list[Recorder] = []

        def factory() -> Recorder:
            server_proto.append(Recorder(reply=b"bye"))
            return server_proto[-1]

        server, port = await serve(loop, factory)
        transport, client = await loop.create_connection(Recorder, "127.0.0.1", port)
        assert isinstance(client, Recorder)
        assert client.events == ["made"]  # connection_made ran before we got here
        transport.write(b"hello")
        await client.got_data.wait()
        transport.write_eof()
        await server_proto[0].got_eof
        assert server_proto[0].data == b"hello"
        await client.lost
        await server_proto[0].lost
        server.close()
        await server.wait_closed()
        assert client.data == b"bye"
        return client.events, server_proto[0].events

    client_events, server_events = run(loop, main())
    # The server's eof_received returned False: it closed after its write, and
    # the client saw the data, then EOF, then the loss.
    assert server_events == ["made", "data", "eof", ("lost", None)]
    assert client_events == ["made", "data", "eof", ("lost", None)]


def test_half_close_keeps_the_transport_open(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> bytes:
        protos: list[Recorder] = []

        def factory() -> Recorder:
            protos.append(Recorder(keep_open_on_eof=True))
            return protos[-1]

        server, port = await serve(loop, factory)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"request")
        writer.write_eof()
        await protos[0].got_eof
        # eof_received returned True: the server can still answer.
        t = protos[0].transport
        assert t is not None and not t.is_closing()
        t.write(b"answer after EOF")
        t.close()
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return data

    assert run(loop, main()) == b"answer after EOF"


def test_write_buffer_flow_control(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> tuple[list[Any], int]:
        protos: list[Recorder] = []

        def factory() -> Recorder:
            protos.append(Recorder())
            return protos[-1]

        server, port = await serve(loop, factory)
        transport, client = await loop.create_connection(Recorder, "127.0.0.1", port)
        assert isinstance(client, Recorder)
        await asyncio.sleep(0.01)
        server_side = protos[0]
        assert server_side.transport is not None
        server_side.transport.pause_reading()
        assert not server_side.transport.is_reading()
        transport.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
        assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        chunk = b"x" * 65536
        sent = 0
        while "pause_writing" not in client.events:
            transport.write(chunk)
            sent += len(chunk)
            assert sent < 200 * 1024 * 1024, "pause_writing never came"
        assert transport.get_write_buffer_size() > 64 * 1024
        server_side.transport.resume_reading()
        assert server_side.transport.is_reading()
        while len(server_side.data) < sent:
            server_side.got_data.clear()
            await server_side.got_data.wait()
        assert "resume_writing" in client.events
        assert transport.get_write_buffer_size() == 0
        transport.close()
        await client.lost
        await server_side.lost
        server.close()
        await server.wait_closed()
        return client.events, len(server_side.data)

    events, received = run(loop, main())
    assert events[:3] == ["made", "pause_writing", "resume_writing"]
    assert received > 0


def test_write_buffer_limits_validation(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        server, port = await serve(loop, Recorder)
        transport, client = await loop.create_connection(Recorder, "127.0.0.1", port)
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=1, low=2)
        with pytest.raises(TypeError):
            transport.write("not bytes")  # type: ignore[arg-type]
        transport.write_eof()
        with pytest.raises(RuntimeError):
            transport.write(b"after eof")
        transport.close()
        await client.lost  # type: ignore[attr-defined]
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_close_flushes_and_abort_drops(loop: asyncio.AbstractEventLoop) -> None:
    payload = os.urandom(4 * 1024 * 1024)

    async def main() -> tuple[int, Any]:
        protos: list[Recorder] = []

        def factory() -> Recorder:
            protos.append(Recorder())
            return protos[-1]

        server, port = await serve(loop, factory)
        # close(): everything buffered still arrives.
        transport, _client = await loop.create_connection(Recorder, "127.0.0.1", port)
        transport.write(payload)
        transport.close()
        assert transport.is_closing()
        await protos[0].lost
        flushed = len(protos[0].data)
        # abort(): the connection goes at once; the protocol hears of it.
        transport2, client2 = await loop.create_connection(Recorder, "127.0.0.1", port)
        transport2.write(payload)
        transport2.abort()
        lost = await client2.lost  # type: ignore[attr-defined]
        await protos[1].lost
        server.close()
        await server.wait_closed()
        return flushed, lost

    flushed, lost = run(loop, main())
    assert flushed == len(payload)
    assert lost is None


def test_buffered_protocol(loop: asyncio.AbstractEventLoop) -> None:
    class Collector(asyncio.BufferedProtocol):
        def __init__(self) -> None:
            self.buf = bytearray(1000)  # small: many get_buffer calls
            self.data = bytearray()
            self.done = asyncio.get_running_loop().create_future()

        def get_buffer(self, sizehint: int) -> bytearray:
            return self.buf

        def buffer_updated(self, nbytes: int) -> None:
            self.data += self.buf[:nbytes]

        def eof_received(self) -> bool:
            return False

        def connection_lost(self, exc: Exception | None) -> None:
            self.done.set_result(bytes(self.data))

    payload = os.urandom(300_000)

    async def main() -> bytes:
        protos: list[Collector] = []

        def factory() -> Collector:
            protos.append(Collector())
            return protos[-1]

        server, port = await serve(loop, factory)
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        result = await protos[0].done
        server.close()
        await server.wait_closed()
        return result

    assert run(loop, main()) == payload


def test_extra_info(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        server, port = await serve(loop, Recorder)
        transport, client = await loop.create_connection(Recorder, "127.0.0.1", port)
        sock = transport.get_extra_info("socket")
        assert sock.family == socket.AF_INET
        assert transport.get_extra_info("peername") == ("127.0.0.1", port)
        assert transport.get_extra_info("sockname")[0] == "127.0.0.1"
        assert transport.get_extra_info("nonexistent", "default") == "default"
        assert transport.get_protocol() is client
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert "fd=" in repr(transport)
        transport.close()
        await client.lost  # type: ignore[attr-defined]
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_server_lifecycle(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        server = await loop.create_server(Recorder, "127.0.0.1", 0, start_serving=False)
        assert not server.is_serving()
        assert server.get_loop() is loop
        await server.start_serving()
        assert server.is_serving()
        port = server.sockets[0].getsockname()[1]
        transport, client = await loop.create_connection(Recorder, "127.0.0.1", port)
        server.close()
        assert not server.is_serving()
        assert server.sockets == ()
        # wait_closed waits for the open connection (3.12.1+ semantics).
        waiter = asyncio.ensure_future(server.wait_closed())
        await asyncio.sleep(0.02)
        if isinstance(loop, treadle.EventLoop) or sys_version() >= (3, 12, 1):
            assert not waiter.done()
        transport.close()
        await client.lost  # type: ignore[attr-defined]
        await asyncio.wait_for(waiter, 10)
        with pytest.raises(OSError):
            await loop.create_connection(Recorder, "127.0.0.1", port)

    run(loop, main())


def sys_version() -> tuple[int, int, int]:
    import sys

    return sys.version_info[:3]


def test_serve_forever_and_async_with(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        server = await loop.create_server(Recorder, "127.0.0.1", 0)
        async with server:
            task = asyncio.ensure_future(server.serve_forever())
            await asyncio.sleep(0.01)
            with pytest.raises(RuntimeError, match="already being awaited"):
                await server.serve_forever()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not server.is_serving()
        with pytest.raises(RuntimeError, match="closed"):
            await server.serve_forever()

    run(loop, main())


def test_close_clients_and_abort_clients(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        server, port = await serve(loop, Recorder)
        if not hasattr(server, "close_clients"):
            server.close()
            await server.wait_closed()
            pytest.skip("this Python's stdlib Server has no close_clients")
        clients = [await loop.create_connection(Recorder, "127.0.0.1", port) for _ in range(3)]
        await asyncio.sleep(0.01)
        server.close()
        server.close_clients()
        for _, proto in clients:
            await proto.got_eof  # type: ignore[attr-defined]
            await proto.lost  # type: ignore[attr-defined]
        await server.wait_closed()
        server2, port2 = await serve(loop, Recorder)
        _t, p = await loop.create_connection(Recorder, "127.0.0.1", port2)
        await asyncio.sleep(0.01)
        server2.close()
        server2.abort_clients()
        await p.lost  # type: ignore[attr-defined]
        await server2.wait_closed()

    run(loop, main())


def test_server_on_several_hosts(loop: asyncio.AbstractEventLoop) -> None:
    has_ipv6 = socket.has_ipv6
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        has_ipv6 = False

    async def main() -> None:
        hosts = ["127.0.0.1", "::1"] if has_ipv6 else ["127.0.0.1", "127.0.0.1"]
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        server = await loop.create_server(Recorder, hosts, port, reuse_address=True)
        families = {s.family for s in server.sockets}
        assert socket.AF_INET in families
        if has_ipv6:
            assert socket.AF_INET6 in families
            t, p = await loop.create_connection(Recorder, "::1", port)
            t.close()
            await p.lost  # type: ignore[attr-defined]
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_bind_errors_are_clear(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        server, port = await serve(loop, Recorder)
        with pytest.raises(OSError, match="error while attempting to bind"):
            await loop.create_server(Recorder, "127.0.0.1", port, reuse_address=False)
        server.close()
        await server.wait_closed()
        with socket.socket() as s, pytest.raises(ValueError, match="host/port and sock"):
            await loop.create_server(Recorder, "127.0.0.1", 0, sock=s)
        with pytest.raises(TypeError, match="ssl argument"):
            await loop.create_server(Recorder, "127.0.0.1", 0, ssl=True)
        with pytest.raises(ValueError, match="server_hostname is only meaningful"):
            await loop.create_connection(Recorder, "127.0.0.1", 1, server_hostname="x")

    run(loop, main())


def test_create_connection_with_sock_and_local_addr(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        server, port = await serve(loop, Recorder)
        sock = socket.socket()
        sock.connect(("127.0.0.1", port))
        t, p = await loop.create_connection(Recorder, sock=sock)
        assert t.get_extra_info("peername") == ("127.0.0.1", port)
        t.close()
        await p.lost  # type: ignore[attr-defined]
        t, p = await loop.create_connection(
            Recorder, "127.0.0.1", port, local_addr=("127.0.0.1", 0)
        )
        assert t.get_extra_info("sockname")[0] == "127.0.0.1"
        t.close()
        await p.lost  # type: ignore[attr-defined]
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_connection_refused_and_happy_eyeballs(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        spare = socket.socket()
        spare.bind(("127.0.0.1", 0))
        dead = spare.getsockname()[1]
        spare.close()
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(Recorder, "127.0.0.1", dead)
        # "localhost" may resolve to ::1 and 127.0.0.1; the server listens on
        # IPv4 only, so a failing IPv6 attempt must give way to IPv4.
        server, port = await serve(loop, Recorder)
        for delay in (None, 0.05):
            t, p = await loop.create_connection(
                Recorder, "localhost", port, happy_eyeballs_delay=delay
            )
            assert t.get_extra_info("peername")[0] == "127.0.0.1"
            t.close()
            await p.lost  # type: ignore[attr-defined]
        server.close()
        await server.wait_closed()

    run(loop, main())


_STDLIB_CONNECT_CYCLES_FIXED = sys.version_info >= (3, 13, 1) or (
    (3, 12, 8) <= sys.version_info < (3, 13)
)


def _among(obj: object, objects: list[Any]) -> bool:
    return any(obj is o for o in objects)


@pytest.mark.parametrize(
    "how",
    [
        pytest.param({}, id="in-turn"),
        pytest.param({"happy_eyeballs_delay": 0.25}, id="happy-eyeballs"),
        pytest.param({"all_errors": True}, id="all-errors"),
        pytest.param({"local_addr": "busy"}, id="local-addr-in-use"),
    ],
)
def test_failed_connect_leaves_no_reference_cycle(
    loop: asyncio.AbstractEventLoop,
    loop_kind: str,
    how: dict[str, Any],
    request: pytest.FixtureRequest,
) -> None:
    # Every failed connect must be freed by reference counting alone: the
    # error must not stay referenced from the loop's own frames (a list of
    # errors, a future) that its traceback keeps alive, a cycle that only the
    # garbage collector frees (CPython gh-124859; anyio tests for it).
    if loop_kind == "asyncio" and ("all_errors" in how or "happy_eyeballs_delay" in how):
        if "all_errors" in how and sys.version_info < (3, 12):
            pytest.skip("the stdlib loop has all_errors from Python 3.12")
        if not _STDLIB_CONNECT_CYCLES_FIXED:
            request.applymarker(
                pytest.mark.xfail(
                    reason="the stdlib loop left these cycles until 3.12.8 and 3.13.1 (gh-124859)",
                    strict=True,
                )
            )
    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))
    dead = spare.getsockname()[1]
    expected: type[OSError] = ConnectionRefusedError
    if how.get("local_addr") == "busy":
        how = {"local_addr": spare.getsockname()}  # bound and kept: EADDRINUSE
        expected = OSError
    else:
        spare.close()

    async def main() -> list[BaseException]:
        try:
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", dead, **how)
        except (OSError, ExceptionGroup) as exc:
            return [exc]
        finally:
            spare.close()
        raise AssertionError("connected to a closed port")

    _assert_freed_by_refcount(loop, main, expected)


def test_failed_datagram_endpoint_leaves_no_reference_cycle(
    loop: asyncio.AbstractEventLoop, loop_kind: str, request: pytest.FixtureRequest
) -> None:
    if loop_kind == "asyncio":
        request.applymarker(
            pytest.mark.xfail(
                reason="the stdlib loop keeps a failed bind's error in a cycle "
                "(seen on 3.11.7, 3.12.1 and 3.13.0)",
                strict=False,
            )
        )
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))

    async def main() -> list[BaseException]:
        try:
            await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=busy.getsockname()
            )
        except OSError as exc:
            return [exc]
        finally:
            busy.close()
        raise AssertionError("bound a port in use")

    _assert_freed_by_refcount(loop, main, OSError)


def _assert_freed_by_refcount(
    loop: asyncio.AbstractEventLoop,
    fail: Callable[[], Coroutine[Any, Any, list[BaseException]]],
    expected: type[OSError],
) -> None:
    """Run `fail()`, which returns the error it caught, with the garbage
    collector off, and check that nothing but the test holds the error."""
    gc.collect()
    gc.disable()  # a collection would hide the cycle by freeing it
    try:
        box = run(loop, fail())
        failure = box[0]
        errors = list(failure.exceptions) if isinstance(failure, ExceptionGroup) else [failure]
        assert all(isinstance(e, expected) for e in errors), errors
        # What this test holds them by (no comprehension names `failure`: on
        # 3.11 that would make a closure cell that refers to it).
        ours = [box, errors, getattr(failure, "exceptions", None)]
        for error in errors:
            others = [type(r).__name__ for r in gc.get_referrers(error) if not _among(r, ours)]
            assert others == []
        del failure, errors, box, ours
    finally:
        gc.enable()


@pytest.fixture
def sock_path() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as d:
        yield os.path.join(d, "sock")


def test_unix_server_and_connection(loop: asyncio.AbstractEventLoop, sock_path: str) -> None:
    async def main() -> bytes:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read())
            writer.close()

        # A stale socket file from a dead server is replaced.
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(sock_path)
        stale.close()
        server = await asyncio.start_unix_server(handle, sock_path)
        reader, writer = await asyncio.open_unix_connection(sock_path)
        writer.write(b"over unix")
        writer.write_eof()
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return data

    assert run(loop, main()) == b"over unix"
    if isinstance(loop, treadle.EventLoop):
        assert not Path(sock_path).exists()  # cleanup_socket


def test_closing_a_unix_server_removes_its_socket_file(
    loop: asyncio.AbstractEventLoop, loop_kind: str, sock_path: str
) -> None:
    # Python 3.13's behaviour (cleanup_socket=True by default). Treadle has
    # it on every version, a deliberate difference on 3.11 and 3.12, where
    # the stdlib loop leaves the file (docs/compatibility.md says why).
    removes = loop_kind == "treadle" or sys.version_info >= (3, 13)

    async def main() -> tuple[bool, bool]:
        server = await loop.create_unix_server(asyncio.Protocol, sock_path)
        server.close()
        await server.wait_closed()
        left = Path(sock_path).exists()
        kept = True
        if removes:  # the stdlib loop knows cleanup_socket from 3.13
            server = await loop.create_unix_server(  # type: ignore[call-arg]
                asyncio.Protocol, sock_path, cleanup_socket=False
            )
            server.close()
            await server.wait_closed()
            kept = Path(sock_path).exists()
        return left, kept

    assert run(loop, main()) == (not removes, True)


def test_unix_errors(loop: asyncio.AbstractEventLoop, sock_path: str) -> None:
    async def main() -> None:
        with socket.socket(socket.AF_UNIX) as s, pytest.raises(ValueError, match="path and sock"):
            await loop.create_unix_server(Recorder, sock_path, sock=s)
        with pytest.raises(ValueError, match="UNIX Domain Stream Socket"):
            s = socket.socket()
            try:
                await loop.create_unix_server(Recorder, sock=s)
            finally:
                s.close()
        with pytest.raises((FileNotFoundError, ConnectionRefusedError)):
            await loop.create_unix_connection(Recorder, sock_path)

    run(loop, main())


def test_connect_accepted_socket(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> bytes:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.socket()
        client.connect(listener.getsockname())
        accepted, _ = listener.accept()
        listener.close()
        _t, p = await loop.connect_accepted_socket(Recorder, accepted)
        client.sendall(b"accepted elsewhere")
        client.shutdown(socket.SHUT_WR)
        await p.lost  # type: ignore[attr-defined]
        client.close()
        return bytes(p.data)  # type: ignore[attr-defined]

    assert run(loop, main()) == b"accepted elsewhere"


def test_datagram_endpoints(loop: asyncio.AbstractEventLoop) -> None:
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.transport.sendto(data.upper(), addr)  # type: ignore[attr-defined]

    class Client(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.got: asyncio.Queue[bytes] = asyncio.Queue()
            self.errors: list[Exception] = []

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.got.put_nowait(data)

        def error_received(self, exc: Exception) -> None:
            self.errors.append(exc)

    async def main() -> list[bytes]:
        server_t, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        addr = server_t.get_extra_info("sockname")
        client_t, client = await loop.create_datagram_endpoint(Client, remote_addr=addr)
        assert isinstance(client, Client)
        replies = []
        for word in (b"a", b"bb", b"ccc"):
            client_t.sendto(word)
            replies.append(await client.got.get())
        with pytest.raises(ValueError, match="Invalid address"):
            client_t.sendto(b"x", ("127.0.0.1", 1))
        # An unconnected endpoint names the address on each send.
        free_t, free = await loop.create_datagram_endpoint(Client, local_addr=("127.0.0.1", 0))
        free_t.sendto(b"free", addr)
        replies.append(await free.got.get())  # type: ignore[attr-defined]
        for t in (server_t, client_t, free_t):
            t.close()
        await asyncio.sleep(0.01)
        # The stdlib loop no longer knows the argument (TypeError); Treadle
        # names the reason (ValueError).
        with pytest.raises((TypeError, ValueError), match="reuse_address"):
            await loop.create_datagram_endpoint(
                Client, local_addr=("127.0.0.1", 0), reuse_address=True
            )
        return replies

    assert run(loop, main()) == [b"A", b"BB", b"CCC", b"FREE"]


def test_unix_datagram(loop: asyncio.AbstractEventLoop, sock_path: str) -> None:
    class Sink(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.got = asyncio.get_running_loop().create_future()

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.got.set_result(data)

    async def main() -> bytes:
        rt, sink = await loop.create_datagram_endpoint(
            Sink, local_addr=sock_path, family=socket.AF_UNIX
        )
        st, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=sock_path, family=socket.AF_UNIX
        )
        st.sendto(b"unix datagram")
        data = await sink.got  # type: ignore[attr-defined]
        st.close()
        rt.close()
        await asyncio.sleep(0)
        return data  # type: ignore[no-any-return]

    assert run(loop, main()) == b"unix datagram"


@pytest.mark.expect_loop_errors
def test_datagram_endpoint_over_a_connected_unnamed_socket(
    loop: asyncio.AbstractEventLoop,
    loop_kind: str,
    loop_errors: list[dict[str, Any]],
    request: pytest.FixtureRequest,
) -> None:
    # One end of a Unix datagram socketpair is connected, but its peer's name
    # is '': a transport must send() on it, not sendto(data, None).
    if loop_kind == "asyncio":
        request.applymarker(
            pytest.mark.xfail(
                reason="the stdlib loop takes a peer named '' for no peer: sendto(data, None) "
                "fails with TypeError and closes the transport (uvloop sends)",
                strict=True,
            )
        )

    class Sink(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.got: asyncio.Queue[bytes] = asyncio.Queue()

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.got.put_nowait(data)

    async def main() -> list[bytes]:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        with theirs:
            transport, sink = await loop.create_datagram_endpoint(Sink, sock=mine)
            transport.sendto(b"out")
            # A local datagram is in the peer's queue once send() returns.
            theirs.setblocking(False)
            out = theirs.recv(100)
            theirs.send(b"in")
            back = await sink.got.get()  # type: ignore[attr-defined]
            assert not transport.is_closing()
            transport.close()
            return [out, back]

    assert run(loop, main()) == [b"out", b"in"]
    assert loop_errors == []


def test_sendfile(loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "data.bin"
    path.write_bytes(content)

    async def main() -> tuple[bytes, bytes, bytes, int]:
        protos: list[Recorder] = []

        def factory() -> Recorder:
            protos.append(Recorder())
            return protos[-1]

        server, port = await serve(loop, factory)
        # loop.sendfile over a transport: zero-copy where possible.
        t, _ = await loop.create_connection(Recorder, "127.0.0.1", port)
        with open(path, "rb") as f:
            sent = await loop.sendfile(t, f, offset=10, count=1_000_000)
            assert f.tell() == 10 + 1_000_000
        t.close()
        await protos[0].lost
        # sock_sendfile on a raw socket.
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        with open(path, "rb") as f:
            await loop.sock_sendfile(sock, f)
        sock.close()
        await protos[1].lost
        # A file object without a descriptor takes the fallback path.
        t, _p = await loop.create_connection(Recorder, "127.0.0.1", port)
        await loop.sendfile(t, io.BytesIO(b"in memory"))
        t.close()
        await protos[2].lost
        server.close()
        await server.wait_closed()
        return bytes(protos[0].data), bytes(protos[1].data), bytes(protos[2].data), sent

    first, second, third, sent = run(loop, main())
    assert sent == 1_000_000
    assert first == content[10 : 10 + 1_000_000]
    assert second == content
    assert third == b"in memory"


def test_many_connections_leave_no_fds_behind(loop: asyncio.AbstractEventLoop) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def client(port: int, i: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"%d\n" % i)
        line = await reader.readline()
        writer.close()
        await writer.wait_closed()
        return line

    async def main() -> list[bytes]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        results = await asyncio.gather(*(client(port, i) for i in range(200)))
        server.close()
        await server.wait_closed()
        return results

    run(loop, asyncio.sleep(0))  # the loop's own fds exist before we count
    before = open_fds()
    assert run(loop, main()) == [b"%d\n" % i for i in range(200)]
    import gc

    gc.collect()
    assert open_fds() == before


def test_transport_owns_its_fd(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        server, port = await serve(loop, Recorder)
        t, p = await loop.create_connection(Recorder, "127.0.0.1", port)
        fd = t.get_extra_info("socket").fileno()
        with pytest.raises(RuntimeError, match="is used by transport"):
            loop.add_reader(fd, print)
        t.close()
        await p.lost  # type: ignore[attr-defined]
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_bad_tls_arguments_are_refused_before_connecting(treadle_loop: Any) -> None:
    """asyncio connects first and leaks the socket when ssl_handshake_timeout
    is not positive; Treadle checks the arguments before it connects."""
    import ssl

    loop = treadle_loop

    async def main() -> None:
        server, port = await serve(loop, Recorder)
        before = open_fds()
        context = ssl.create_default_context()
        for timeout in (0, -1):
            with pytest.raises(ValueError, match="ssl_handshake_timeout"):
                await loop.create_connection(
                    Recorder, "127.0.0.1", port, ssl=context, ssl_handshake_timeout=timeout
                )
        assert open_fds() == before
        server.close()
        await server.wait_closed()

    run(loop, main())
