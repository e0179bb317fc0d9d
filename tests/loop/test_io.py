"""File-descriptor readiness and the sock_* coroutines, over real sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

import treadle
from tests.conftest import run


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(100)
    sock.setblocking(False)
    yield sock
    sock.close()


def test_add_reader_fires_when_readable(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    received: list[bytes] = []

    def on_readable() -> None:
        received.append(a.recv(100))
        assert loop.remove_reader(a)
        loop.stop()

    loop.add_reader(a, on_readable)
    loop.call_later(0.01, b.send, b"ping")
    safety = loop.call_later(30, loop.stop)
    loop.run_forever()
    safety.cancel()
    assert received == [b"ping"]
    assert not loop.remove_reader(a)


def test_add_writer_fires_when_writable(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    fired: list[int] = []

    def on_writable(tag: int) -> None:
        fired.append(tag)
        loop.remove_writer(a.fileno())
        loop.stop()

    loop.add_writer(a.fileno(), on_writable, 7)
    loop.run_forever()
    assert fired == [7]
    assert not loop.remove_writer(a.fileno())


def test_reader_and_writer_on_one_fd(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    events: list[str] = []

    def on_write() -> None:
        events.append("w")
        loop.remove_writer(a)
        b.send(b"x")

    def on_read() -> None:
        events.append("r:" + a.recv(10).decode())
        loop.remove_reader(a)
        loop.stop()

    loop.add_reader(a, on_read)
    loop.add_writer(a, on_write)
    safety = loop.call_later(30, loop.stop)
    loop.run_forever()
    safety.cancel()
    assert events == ["w", "r:x"]


def test_replacing_a_reader_cancels_the_old_one(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    seen: list[str] = []
    loop.add_reader(a, seen.append, "old")

    def new() -> None:
        seen.append("new")
        a.recv(10)
        loop.remove_reader(a)
        loop.stop()

    loop.add_reader(a, new)
    b.send(b"x")
    safety = loop.call_later(30, loop.stop)
    loop.run_forever()
    safety.cancel()
    assert seen == ["new"]


def test_invalid_file_objects(loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(ValueError):
        loop.add_reader(-1, print)
    with pytest.raises((ValueError, TypeError)):
        loop.add_reader("not a file", print)  # type: ignore[arg-type]


async def _one_full_poll(loop: asyncio.AbstractEventLoop) -> None:
    """Return once the loop has polled since this call began: by then every
    callback of a file that was ready before that poll has run (no timing)."""
    r, w = socket.socketpair()
    with r, w:
        w.send(b"x")
        polled = loop.create_future()
        loop.add_reader(r, lambda: polled.done() or polled.set_result(None))
        try:
            await polled
        finally:
            loop.remove_reader(r)


def _pair_reusing(fd: int) -> tuple[socket.socket, socket.socket]:
    """A socket pair whose first socket has the number `fd` (free again)."""
    c, d = socket.socketpair()
    if d.fileno() == fd:
        c, d = d, c
    assert c.fileno() == fd  # POSIX hands out the lowest free number
    return c, d


@pytest.mark.parametrize("direction", ["reader", "writer"])
def test_removing_a_socket_closed_while_registered(
    loop: asyncio.AbstractEventLoop, direction: str
) -> None:
    # The stdlib finds the registration by the object (selectors does), so it
    # goes, and a new socket given the same number is watched as it should be.
    add = loop.add_reader if direction == "reader" else loop.add_writer
    remove = loop.remove_reader if direction == "reader" else loop.remove_writer

    async def main() -> list[str]:
        a, b = socket.socketpair()
        fd = a.fileno()
        with b:
            add(a, print)
            a.close()
            assert remove(a) is True
            with pytest.raises(ValueError):
                remove(a)  # gone now, and a closed socket names no fd
        c, d = _pair_reusing(fd)
        fired: list[str] = []
        with c, d:
            add(c, fired.append, "c")
            d.send(b"x")
            await _one_full_poll(loop)
            assert remove(c)
        return fired

    assert run(loop, main())[:1] == ["c"]


def test_a_reused_fd_number_is_watched_afresh(
    loop: asyncio.AbstractEventLoop, loop_kind: str, request: pytest.FixtureRequest
) -> None:
    # A socket closed without remove_reader(), its number reused by a new one:
    # the poller forgot the closed file, so the new reader must be registered
    # again, not just swapped in, or it never fires (a silent hang).
    if loop_kind == "asyncio":
        request.applymarker(
            pytest.mark.xfail(
                reason="the stdlib loop keeps the stale key and never registers the new socket",
                strict=True,
            )
        )

    async def main() -> list[str]:
        a, b = socket.socketpair()
        fd = a.fileno()
        loop.add_reader(a, print)
        a.close()
        b.close()
        c, d = _pair_reusing(fd)
        fired: list[str] = []
        with c, d:
            loop.add_reader(c, fired.append, "c")
            d.send(b"x")
            await _one_full_poll(loop)
            loop.remove_reader(c)
        return fired

    assert run(loop, main()) == ["c"]


def test_sock_echo_over_tcp(loop: asyncio.AbstractEventLoop, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    payload = b"x" * 3_000_000  # more than a socket buffer: sendall must wait

    async def serve() -> None:
        conn, _ = await loop.sock_accept(listener)
        with conn:
            assert conn.gettimeout() == 0
            while True:
                data = await loop.sock_recv(conn, 65536)
                if not data:
                    break
                await loop.sock_sendall(conn, data)

    async def main() -> bytes:
        server = loop.create_task(serve())
        client = socket.socket()
        client.setblocking(False)
        with client:
            await loop.sock_connect(client, ("127.0.0.1", port))
            send = loop.create_task(loop.sock_sendall(client, payload))
            received = bytearray()
            buf = bytearray(65536)
            while len(received) < len(payload):
                n = await loop.sock_recv_into(client, buf)
                assert n > 0
                received += buf[:n]
            await send
            client.shutdown(socket.SHUT_WR)
            assert await loop.sock_recv(client, 10) == b""
        await server
        return bytes(received)

    assert run(loop, main()) == payload


def test_sock_connect_resolves_names_and_reports_refusal(
    loop: asyncio.AbstractEventLoop, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]

    async def main() -> None:
        client = socket.socket()
        client.setblocking(False)
        with client:
            await loop.sock_connect(client, ("localhost", port))
            conn, addr = await loop.sock_accept(listener)
            conn.close()
            assert addr[0] == "127.0.0.1"
        # A port nobody listens on: connection refused, as an OSError.
        spare = socket.socket()
        spare.bind(("127.0.0.1", 0))
        dead_port = spare.getsockname()[1]
        spare.close()
        client = socket.socket()
        client.setblocking(False)
        with client, pytest.raises(ConnectionRefusedError):
            await loop.sock_connect(client, ("127.0.0.1", dead_port))

    run(loop, main())


def test_sock_udp_sendto_recvfrom(loop: asyncio.AbstractEventLoop) -> None:
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (a, b):
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)

    async def main() -> None:
        if not hasattr(loop, "sock_sendto"):
            pytest.skip("no sock_sendto on this Python")
        receive = loop.create_task(loop.sock_recvfrom(b, 100))
        await asyncio.sleep(0)
        sent = await loop.sock_sendto(a, b"datagram", b.getsockname())
        assert sent == 8
        data, addr = await receive
        assert data == b"datagram"
        assert addr == a.getsockname()
        buf = bytearray(100)
        await loop.sock_sendto(b, b"reply", a.getsockname())
        n, addr = await loop.sock_recvfrom_into(a, buf)
        assert buf[:n] == b"reply"
        assert addr == b.getsockname()

    with a, b:
        run(loop, main())


def test_cancelled_sock_recv_leaves_no_registration(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair

    async def main() -> bytes:
        waiter = loop.create_task(loop.sock_recv(a, 100))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        # Nothing is left watching `a`: removing a reader finds none.
        assert not loop.remove_reader(a)
        b.send(b"after")
        return await loop.sock_recv(a, 100)

    assert run(loop, main()) == b"after"


def test_cancelled_sock_accept_leaves_no_registration(
    loop: asyncio.AbstractEventLoop, listener: socket.socket
) -> None:
    async def main() -> None:
        waiter = loop.create_task(loop.sock_accept(listener))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert not loop.remove_reader(listener)

    run(loop, main())


def test_blocking_sockets_are_refused(loop: asyncio.AbstractEventLoop) -> None:
    # asyncio checks only in debug mode; Treadle always does.
    if not isinstance(loop, treadle.EventLoop):
        loop.set_debug(True)
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(True)

        async def main() -> None:
            with pytest.raises(ValueError, match="non-blocking"):
                await loop.sock_recv(a, 10)
            with pytest.raises(ValueError, match="non-blocking"):
                await loop.sock_sendall(a, b"x")

        run(loop, main())


@pytest.mark.parametrize("poller", treadle.loop.available_pollers())
def test_every_poller_serves_an_echo(poller: str) -> None:
    loop = treadle.EventLoop(poller=poller)  # type: ignore[abstract]
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)

    async def echo() -> None:
        while data := await loop.sock_recv(a, 1000):
            await loop.sock_sendall(a, data)

    async def main() -> list[bytes]:
        task = loop.create_task(echo())
        replies = []
        for i in range(50):
            await loop.sock_sendall(b, b"msg%d" % i)
            replies.append(await loop.sock_recv(b, 1000))
            await asyncio.sleep(0.001 if i % 10 == 0 else 0)
        b.shutdown(socket.SHUT_WR)
        await task
        return replies

    try:
        assert run(loop, main()) == [b"msg%d" % i for i in range(50)]
    finally:
        a.close()
        b.close()
        loop.close()
