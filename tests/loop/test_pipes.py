"""connect_read_pipe and connect_write_pipe over real pipes, sockets and ptys, on both loops."""

from __future__ import annotations

import array
import asyncio
import gc
import io
import os
import socket
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

import treadle
from tests.conftest import LOOP_FACTORIES, run


class ReadProto(asyncio.Protocol):
    """Records what a read pipe delivers, and checks the order of events."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.events: list[str] = []
        self.data = bytearray()
        self.transport: asyncio.ReadTransport | None = None
        self.lost_exc: Exception | None = None
        self.done = loop.create_future()
        self.got_data = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert self.events == []
        assert isinstance(transport, asyncio.ReadTransport)
        self.transport = transport
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        assert self.events[-1] in ("made", "data")
        if self.events[-1] != "data":
            self.events.append("data")
        self.data += data
        self.got_data.set()

    def eof_received(self) -> None:
        assert self.events[-1] in ("made", "data")
        self.events.append("eof")

    def connection_lost(self, exc: Exception | None) -> None:
        assert "lost" not in self.events
        self.events.append("lost")
        self.lost_exc = exc
        self.done.set_result(None)


class WriteProto(asyncio.BaseProtocol):
    """Records flow control and the end of a write pipe."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.events: list[str] = []
        self.transport: asyncio.WriteTransport | None = None
        self.lost_exc: Exception | None = None
        self.done = loop.create_future()
        self.resumed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert self.events == []
        assert isinstance(transport, asyncio.WriteTransport)
        self.transport = transport
        self.events.append("made")

    def pause_writing(self) -> None:
        self.events.append("pause")
        self.resumed.clear()

    def resume_writing(self) -> None:
        self.events.append("resume")
        self.resumed.set()

    def connection_lost(self, exc: Exception | None) -> None:
        assert "lost" not in self.events
        self.events.append("lost")
        self.lost_exc = exc
        self.done.set_result(None)


@pytest.fixture
def pipe_fds() -> Iterator[list[int]]:
    """os.pipe() (read end, write end); whichever the test did not hand over
    to a transport (or close itself) is closed afterwards."""
    fds = list(os.pipe())
    yield fds
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _handed_over(fds: list[int], index: int, mode: str) -> Any:
    """Wrap fds[index] in a file object the transport will own."""
    fd = fds[index]
    fds[index] = -1
    return open(fd, mode, buffering=0)  # the transport closes it


async def _spin(n: int = 5) -> None:
    """Let the loop run a few full iterations (each polls for IO)."""
    for _ in range(n):
        await asyncio.sleep(0)


# -- reading --------------------------------------------------------------------------


def test_read_pipe_delivers_data_then_eof(
    loop: asyncio.AbstractEventLoop, pipe_fds: list[int]
) -> None:
    async def main() -> None:
        pipe = _handed_over(pipe_fds, 0, "rb")
        transport, proto = await loop.connect_read_pipe(lambda: ReadProto(loop), pipe)
        assert proto.transport is transport
        assert proto.events == ["made"]
        assert transport.get_extra_info("pipe") is pipe
        assert transport.is_reading() and not transport.is_closing()

        os.write(pipe_fds[1], b"1")
        await proto.got_data.wait()
        os.write(pipe_fds[1], b"2345")
        while len(proto.data) < 5:
            proto.got_data.clear()
            await proto.got_data.wait()
        assert bytes(proto.data) == b"12345"

        os.close(pipe_fds[1])
        pipe_fds[1] = -1
        await proto.done
        assert proto.events == ["made", "data", "eof", "lost"]
        assert proto.lost_exc is None
        assert transport.is_closing()
        assert pipe.closed
        assert transport.get_extra_info("pipe") is pipe

    run(loop, main())


def test_read_pipe_large_payload(loop: asyncio.AbstractEventLoop, pipe_fds: list[int]) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)

    async def main() -> None:
        pipe = _handed_over(pipe_fds, 0, "rb")
        _, proto = await loop.connect_read_pipe(lambda: ReadProto(loop), pipe)
        wpipe = _handed_over(pipe_fds, 1, "wb")
        wtransport, wproto = await loop.connect_write_pipe(lambda: WriteProto(loop), wpipe)
        wtransport.write(payload)
        wtransport.close()
        await proto.done
        await wproto.done
        assert bytes(proto.data) == payload
        assert proto.events == ["made", "data", "eof", "lost"]
        assert wproto.lost_exc is None

    run(loop, main())


def test_pause_and_resume_reading(loop: asyncio.AbstractEventLoop, pipe_fds: list[int]) -> None:
    async def main() -> None:
        pipe = _handed_over(pipe_fds, 0, "rb")
        transport, proto = await loop.connect_read_pipe(lambda: ReadProto(loop), pipe)
        transport.pause_reading()
        assert not transport.is_reading()
        transport.pause_reading()  # idempotent

        os.write(pipe_fds[1], b"while paused")
        await _spin()
        assert proto.data == b""

        transport.resume_reading()
        assert transport.is_reading()
        transport.resume_reading()  # idempotent
        await proto.got_data.wait()
        assert proto.data == b"while paused"

        transport.close()
        assert not transport.is_reading()
        transport.resume_reading()  # no effect once closing
        assert not transport.is_reading()
        await proto.done
        assert proto.lost_exc is None

    run(loop, main())


def test_paused_in_connection_made_reads_nothing(
    loop: asyncio.AbstractEventLoop, pipe_fds: list[int]
) -> None:
    class PausingProto(ReadProto):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            assert isinstance(transport, asyncio.ReadTransport)
            transport.pause_reading()

    async def main() -> None:
        os.write(pipe_fds[1], b"early")
        pipe = _handed_over(pipe_fds, 0, "rb")
        transport, proto = await loop.connect_read_pipe(lambda: PausingProto(loop), pipe)
        await _spin()
        assert proto.data == b""
        transport.resume_reading()
        await proto.got_data.wait()
        assert proto.data == b"early"
        transport.close()
        await proto.done

    run(loop, main())


def test_close_read_pipe_before_eof(loop: asyncio.AbstractEventLoop, pipe_fds: list[int]) -> None:
    async def main() -> None:
        pipe = _handed_over(pipe_fds, 0, "rb")
        transport, proto = await loop.connect_read_pipe(lambda: ReadProto(loop), pipe)
        transport.close()
        transport.close()  # idempotent
        assert transport.is_closing()
        await proto.done
        assert proto.events == ["made", "lost"]
        assert proto.lost_exc is None
        assert pipe.closed

    run(loop, main())


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs os.openpty()")
def test_read_pty_output(loop: asyncio.AbstractEventLoop) -> None:
    master, slave = os.openpty()

    async def main() -> None:
        pipe = open(master, "rb", buffering=0)  # noqa: SIM115 - the transport closes it
        transport, proto = await loop.connect_read_pipe(lambda: ReadProto(loop), pipe)
        os.write(slave, b"tty")
        await proto.got_data.wait()
        assert proto.data == b"tty"
        os.close(slave)
        # Reading the master of a pty whose slave is gone fails with EIO: a
        # routine end, not an error for the exception handler.
        await proto.done
        transport.close()

    run(loop, main())


# -- writing --------------------------------------------------------------------------


def test_write_pipe_writes_through(loop: asyncio.AbstractEventLoop, pipe_fds: list[int]) -> None:
    async def main() -> None:
        pipe = _handed_over(pipe_fds, 1, "wb")
        transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), pipe)
        assert proto.transport is transport
        assert transport.get_extra_info("pipe") is pipe
        assert transport.can_write_eof()
        transport.write(b"1")
        transport.write(bytearray(b"23"))
        transport.write(memoryview(b"45"))
        transport.writelines([b"6", b"78"])
        transport.write(b"")
        assert transport.get_write_buffer_size() == 0
        assert os.read(pipe_fds[0], 100) == b"12345678"
        with pytest.raises((TypeError, AssertionError)):  # asyncio asserts
            transport.write("text")  # type: ignore[arg-type]
        transport.close()
        await proto.done
        assert proto.events == ["made", "lost"]
        assert proto.lost_exc is None
        assert pipe.closed
        assert os.read(pipe_fds[0], 100) == b""  # EOF: the write end is closed

    run(loop, main())


def test_write_memoryview_counts_bytes(
    treadle_loop: treadle.EventLoop, pipe_fds: list[int]
) -> None:
    """A memoryview whose items are wider than a byte is written whole. (asyncio's
    pipe transport mixes up item and byte offsets after a partial write.)"""
    loop = treadle_loop

    async def main() -> None:
        pipe = _handed_over(pipe_fds, 1, "wb")
        transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), pipe)
        numbers = array.array("i", range(40000))  # 160 kB: more than a pipe holds
        transport.write(memoryview(numbers))
        assert transport.get_write_buffer_size() > 0
        rpipe = _handed_over(pipe_fds, 0, "rb")
        _, reader = await loop.connect_read_pipe(lambda: ReadProto(loop), rpipe)
        transport.close()
        await reader.done
        await proto.done
        assert bytes(reader.data) == numbers.tobytes()

    run(loop, main())


def test_write_buffering_and_back_pressure(
    loop: asyncio.AbstractEventLoop, pipe_fds: list[int]
) -> None:
    chunk = b"x" * 4096

    async def main() -> None:
        pipe = _handed_over(pipe_fds, 1, "wb")
        transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), pipe)
        assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        transport.set_write_buffer_limits(high=32 * 1024)
        assert transport.get_write_buffer_limits() == (8 * 1024, 32 * 1024)

        # Fill the pipe (nobody reads it) until the protocol is told to pause.
        written = 0
        while "pause" not in proto.events:
            transport.write(chunk)
            written += len(chunk)
            assert written < 64 * 1024 * 1024, "pause_writing() never came"
        assert transport.get_write_buffer_size() > 32 * 1024
        assert proto.events == ["made", "pause"]

        # Drain the pipe from the other end: the buffer empties, the protocol resumes.
        rpipe = _handed_over(pipe_fds, 0, "rb")
        _, reader = await loop.connect_read_pipe(lambda: ReadProto(loop), rpipe)
        await proto.resumed.wait()
        assert proto.events == ["made", "pause", "resume"]
        assert transport.get_write_buffer_size() == 0
        transport.close()
        await proto.done
        await reader.done
        assert proto.lost_exc is None
        assert len(reader.data) == written

    run(loop, main())


def test_set_write_buffer_limits(loop: asyncio.AbstractEventLoop, pipe_fds: list[int]) -> None:
    async def main() -> None:
        pipe = _handed_over(pipe_fds, 1, "wb")
        transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), pipe)
        transport.set_write_buffer_limits(low=100)
        assert transport.get_write_buffer_limits() == (100, 400)
        transport.set_write_buffer_limits(high=10, low=10)
        assert transport.get_write_buffer_limits() == (10, 10)
        transport.set_write_buffer_limits(high=0)
        assert transport.get_write_buffer_limits() == (0, 0)
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=1, low=2)
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=-1)
        transport.close()
        await proto.done

    run(loop, main())


def test_close_flushes_the_buffer_first(
    loop: asyncio.AbstractEventLoop, pipe_fds: list[int]
) -> None:
    payload = os.urandom(1024 * 1024)

    async def main() -> None:
        pipe = _handed_over(pipe_fds, 1, "wb")
        transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), pipe)
        transport.write(payload)
        assert transport.get_write_buffer_size() > 0
        transport.write_eof()
        assert transport.is_closing()
        transport.write(b"dropped after write_eof")  # silently ignored, as in asyncio
        transport.close()  # already closing: nothing more
        rpipe = _handed_over(pipe_fds, 0, "rb")
        _, reader = await loop.connect_read_pipe(lambda: ReadProto(loop), rpipe)
        await reader.done
        await proto.done
        assert bytes(reader.data) == payload
        assert proto.lost_exc is None
        assert proto.events == ["made", "pause", "resume", "lost"]

    run(loop, main())


def test_abort_drops_the_buffer(loop: asyncio.AbstractEventLoop, pipe_fds: list[int]) -> None:
    async def main() -> None:
        pipe = _handed_over(pipe_fds, 1, "wb")
        transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), pipe)
        transport.write(b"y" * (1024 * 1024))
        assert transport.get_write_buffer_size() > 0
        transport.abort()
        assert transport.get_write_buffer_size() == 0
        assert transport.is_closing()
        await proto.done
        assert proto.lost_exc is None
        assert pipe.closed

    run(loop, main())


def test_reader_closing_is_noticed_without_writing(
    loop: asyncio.AbstractEventLoop, pipe_fds: list[int]
) -> None:
    async def main() -> None:
        pipe = _handed_over(pipe_fds, 1, "wb")
        transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), pipe)
        transport.write(b"unread")
        os.close(pipe_fds[0])
        pipe_fds[0] = -1
        await proto.done
        assert proto.lost_exc is None  # nothing was left to write
        assert transport.is_closing()
        transport.write(b"dropped")  # after the loss: ignored, no exception

    run(loop, main())


def test_reader_closing_with_data_buffered_is_a_broken_pipe(
    loop: asyncio.AbstractEventLoop, pipe_fds: list[int]
) -> None:
    async def main() -> None:
        pipe = _handed_over(pipe_fds, 1, "wb")
        transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), pipe)
        transport.write(b"z" * (1024 * 1024))
        assert transport.get_write_buffer_size() > 0
        os.close(pipe_fds[0])
        pipe_fds[0] = -1
        await proto.done
        assert isinstance(proto.lost_exc, BrokenPipeError)
        assert transport.get_write_buffer_size() == 0

    run(loop, main())


def test_write_with_no_reader_is_a_broken_pipe(
    loop: asyncio.AbstractEventLoop, pipe_fds: list[int]
) -> None:
    async def main() -> None:
        pipe = _handed_over(pipe_fds, 1, "wb")
        transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), pipe)
        os.close(pipe_fds[0])
        pipe_fds[0] = -1
        transport.write(b"into the void")  # EPIPE at once (Python ignores SIGPIPE)
        await proto.done
        assert isinstance(proto.lost_exc, BrokenPipeError)

    run(loop, main())


def test_write_pipe_on_a_socket_notices_the_peer_closing(
    loop: asyncio.AbstractEventLoop,
) -> None:
    rsock, wsock = socket.socketpair()

    async def main() -> None:
        rsock.setblocking(False)
        pipe = open(wsock.detach(), "wb", buffering=0)  # noqa: SIM115
        transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), pipe)
        transport.write(b"1")
        assert await loop.sock_recv(rsock, 1024) == b"1"
        rsock.close()
        await proto.done
        assert proto.lost_exc is None

    try:
        run(loop, main())
    finally:
        rsock.close()


def test_pause_writing_failure_is_reported(
    loop: asyncio.AbstractEventLoop, pipe_fds: list[int], loop_errors: list[dict[str, Any]]
) -> None:
    class Failing(WriteProto):
        def pause_writing(self) -> None:
            raise ZeroDivisionError

    async def main() -> None:
        pipe = _handed_over(pipe_fds, 1, "wb")
        transport, proto = await loop.connect_write_pipe(lambda: Failing(loop), pipe)
        transport.write(b"w" * (1024 * 1024))
        assert len(loop_errors) == 1
        assert loop_errors[0]["message"] == "protocol.pause_writing() failed"
        assert isinstance(loop_errors[0]["exception"], ZeroDivisionError)
        loop_errors.clear()
        transport.abort()
        await proto.done

    run(loop, main())


# -- what is refused -------------------------------------------------------------------


def test_regular_files_are_refused(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        with tempfile.TemporaryFile() as f:
            with pytest.raises(ValueError, match="Pipe transport"):
                await loop.connect_read_pipe(lambda: ReadProto(loop), f)
            with pytest.raises(ValueError, match="Pipe transport"):
                await loop.connect_write_pipe(lambda: WriteProto(loop), f)
            assert not f.closed

    run(loop, main())


def test_character_device_is_accepted_for_writing(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        pipe = open(os.devnull, "wb", buffering=0)  # noqa: SIM115
        transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), pipe)
        transport.write(b"into /dev/null")
        transport.close()
        await proto.done
        assert pipe.closed

    run(loop, main())


def test_transport_owns_its_fd(treadle_loop: treadle.EventLoop, pipe_fds: list[int]) -> None:
    loop = treadle_loop
    fd = pipe_fds[0]

    async def main() -> None:
        pipe = _handed_over(pipe_fds, 0, "rb")
        transport, proto = await loop.connect_read_pipe(lambda: ReadProto(loop), pipe)
        with pytest.raises(RuntimeError, match="used by transport"):
            loop.add_reader(fd, lambda: None)
        same_fd = open(fd, "rb", buffering=0, closefd=False)  # noqa: SIM115
        with pytest.raises(RuntimeError, match="used by transport"):
            await loop.connect_read_pipe(lambda: ReadProto(loop), same_fd)
        transport.close()
        await proto.done
        assert fd not in loop._transports

    run(loop, main())


# -- leaks and warnings ---------------------------------------------------------------


def test_unclosed_transport_warns(loop: asyncio.AbstractEventLoop, pipe_fds: list[int]) -> None:
    pipe = _handed_over(pipe_fds, 0, "rb")

    async def main() -> asyncio.ReadTransport:
        transport, _ = await loop.connect_read_pipe(asyncio.Protocol, pipe)
        transport.pause_reading()  # now nothing on the loop refers to it
        return transport

    transports = [run(loop, main())]
    with pytest.warns(ResourceWarning, match="unclosed transport"):
        transports.clear()
        gc.collect()
    assert pipe.closed


@pytest.mark.parametrize("kind", sorted(LOOP_FACTORIES))
def test_transports_outliving_their_loop(kind: str) -> None:
    """The loop closes without closing pipe transports (as asyncio's does);
    their repr still works and says they are open."""
    loop = LOOP_FACTORIES[kind]()
    rfd, wfd = os.pipe()
    rpipe = open(rfd, "rb", buffering=0)  # noqa: SIM115
    wpipe = io.open(wfd, "w", 1024, encoding="utf-8")  # noqa: SIM115, UP020

    async def connect() -> tuple[asyncio.ReadTransport, asyncio.WriteTransport]:
        rt, _ = await loop.connect_read_pipe(asyncio.Protocol, rpipe)
        wt, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, wpipe)
        return rt, wt

    read_transport, write_transport = loop.run_until_complete(connect())
    loop.close()
    assert "open" in repr(read_transport)
    assert "open" in repr(write_transport)
    with pytest.warns(ResourceWarning, match="unclosed transport"):
        del read_transport, write_transport
        gc.collect()
    assert rpipe.closed and wpipe.closed


def test_no_fd_leaks(loop: asyncio.AbstractEventLoop) -> None:
    async def one_round() -> None:
        fds = list(os.pipe())
        rpipe, wpipe = _handed_over(fds, 0, "rb"), _handed_over(fds, 1, "wb")
        _, reader = await loop.connect_read_pipe(lambda: ReadProto(loop), rpipe)
        writer_transport, writer = await loop.connect_write_pipe(lambda: WriteProto(loop), wpipe)
        writer_transport.write(b"a" * 200_000)
        writer_transport.close()
        await reader.done
        await writer.done
        assert len(reader.data) == 200_000

    async def main() -> None:
        await one_round()  # let lazily made resources (executor, ...) appear
        before = sorted(os.listdir("/proc/self/fd"))
        for _ in range(20):
            await one_round()
        assert sorted(os.listdir("/proc/self/fd")) == before

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    run(loop, main())
