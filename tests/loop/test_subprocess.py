"""Subprocesses on both loops: asyncio's Process API and the low-level transport.

Real children (`cat`, `sh`, this Python) over real pipes. A few tests look at
Treadle's own machinery (pidfds, no thread per child, the thread fallback,
closing the loop under a live child) and run on Treadle's loop only.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import treadle
import treadle.loop.subprocess as treadle_subprocess
from tests.conftest import run

PIPE = asyncio.subprocess.PIPE
CAT = ["cat"]
BLOCKED = [sys.executable, "-c", "import time; time.sleep(3600)"]


def _open_fds() -> list[str]:
    return sorted(os.listdir("/proc/self/fd"))


needs_proc_fd = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
needs_pidfd = pytest.mark.skipif(
    not hasattr(os, "pidfd_open"), reason="needs os.pidfd_open (Linux 5.3+)"
)


# -- asyncio's Process API ------------------------------------------------------------


def test_cat_large_payload_both_directions_at_once(loop: asyncio.AbstractEventLoop) -> None:
    payload = os.urandom(4 * 1024 * 1024 + 3)  # far more than a pipe holds

    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(*CAT, stdin=PIPE, stdout=PIPE)
        assert proc.stdin is not None and proc.stdout is not None

        async def feed() -> None:
            assert proc.stdin is not None
            for i in range(0, len(payload), 256 * 1024):
                proc.stdin.write(payload[i : i + 256 * 1024])
                await proc.stdin.drain()
            proc.stdin.close()
            await proc.stdin.wait_closed()

        _, echoed = await asyncio.gather(feed(), proc.stdout.read())
        assert echoed == payload
        assert await proc.wait() == 0

    run(loop, main())


def test_communicate(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(*CAT, stdin=PIPE, stdout=PIPE)
        out, err = await proc.communicate(b"some data")
        assert (out, err) == (b"some data", None)
        assert proc.returncode == 0
        # Once communicate() is done the exit is known: wait() answers at once.
        assert await proc.wait() == 0

    run(loop, main())


def test_communicate_with_stderr_and_large_output(loop: asyncio.AbstractEventLoop) -> None:
    code = (
        "import sys; data = sys.stdin.buffer.read(); "
        "sys.stdout.buffer.write(data * 3); sys.stderr.buffer.write(b'err:%d' % len(data))"
    )

    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, stdin=PIPE, stdout=PIPE, stderr=PIPE
        )
        data = b"0123456789" * 50_000
        out, err = await proc.communicate(data)
        assert out == data * 3
        assert err == b"err:%d" % len(data)
        assert proc.returncode == 0

    run(loop, main())


@pytest.mark.parametrize("code", [0, 3, 255])
def test_exit_codes(loop: asyncio.AbstractEventLoop, code: int) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", f"raise SystemExit({code})"
        )
        assert await proc.wait() == code
        assert proc.returncode == code

    run(loop, main())


def test_killed_by_a_signal_is_negative(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_shell("kill -9 $$")
        assert await proc.wait() == -signal.SIGKILL

    run(loop, main())


@pytest.mark.parametrize(
    ("method", "signum"), [("terminate", signal.SIGTERM), ("kill", signal.SIGKILL)]
)
def test_terminate_and_kill(loop: asyncio.AbstractEventLoop, method: str, signum: int) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(*BLOCKED)
        assert proc.returncode is None
        getattr(proc, method)()
        assert await proc.wait() == -signum

    run(loop, main())


def test_send_signal(loop: asyncio.AbstractEventLoop) -> None:
    code = "import time; print('ready', flush=True); time.sleep(3600)"

    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=PIPE)
        assert proc.stdout is not None
        assert await proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGHUP)
        assert await proc.wait() == -signal.SIGHUP

    # The child must not inherit an ignored SIGHUP from whoever runs the tests.
    previous = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        run(loop, main())
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_signal_after_exit_is_harmless(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_exec("true")
        assert await proc.wait() == 0
        try:
            proc.send_signal(signal.SIGUSR1)
        except ProcessLookupError:
            pass  # what both loops may answer once the process is gone
        assert proc.returncode == 0

    run(loop, main())


def test_stderr_to_stdout(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_shell(
            "echo out; echo err >&2", stdout=PIPE, stderr=asyncio.subprocess.STDOUT
        )
        assert proc.stderr is None
        out, err = await proc.communicate()
        assert out == b"out\nerr\n"
        assert err is None

    run(loop, main())


def test_devnull(loop: asyncio.AbstractEventLoop) -> None:
    code = "import sys; print(len(sys.stdin.read())); print('hidden', file=sys.stderr)"

    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert proc.stdin is None and proc.stderr is None
        out, err = await proc.communicate()
        assert (out, err) == (b"0\n", None)
        assert proc.returncode == 0

    run(loop, main())


def test_shell(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_shell("echo $((6 * 7)); exit 7", stdout=PIPE)
        out, _ = await proc.communicate()
        assert out == b"42\n"
        assert proc.returncode == 7

    run(loop, main())


def test_existing_fds_and_file_objects(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        rfd, wfd = os.pipe()
        try:
            with open(wfd, "wb", closefd=False) as out_file:
                proc = await asyncio.create_subprocess_shell(
                    "echo to-file; echo to-fd >&2", stdout=out_file, stderr=wfd
                )
                assert proc.stdout is None and proc.stderr is None
                assert await proc.wait() == 0
            assert sorted(os.read(rfd, 100).splitlines()) == [b"to-fd", b"to-file"]
        finally:
            os.close(rfd)
            os.close(wfd)

    run(loop, main())


def test_env_cwd_pass_fds_and_new_session(loop: asyncio.AbstractEventLoop, tmp_path: Any) -> None:
    code = (
        "import os; "
        "os.write(int(os.environ['FD']), b'via pass_fds'); "
        "print(os.environ['GREETING'], os.getcwd(), os.getsid(0) == os.getpid())"
    )

    async def main() -> None:
        rfd, wfd = os.pipe()
        try:
            env = dict(os.environ, GREETING="hello", FD=str(wfd))
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                code,
                stdout=PIPE,
                env=env,
                cwd=tmp_path,
                pass_fds=(wfd,),
                start_new_session=True,
            )
            out, _ = await proc.communicate()
            assert proc.returncode == 0
            assert out.decode().split() == ["hello", str(tmp_path), "True"]
            assert os.read(rfd, 100) == b"via pass_fds"
        finally:
            os.close(rfd)
            os.close(wfd)

    run(loop, main())


def test_stdin_broken_pipe_surfaces_in_drain(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        rfd, wfd = os.pipe()
        try:
            # The child exits without reading stdin, once told to go.
            code = f"import os; os.read({rfd}, 1)"
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", code, stdin=PIPE, pass_fds=(rfd,)
            )
            assert proc.stdin is not None
            proc.stdin.write(b"x" * (4 * 1024 * 1024))  # more than the pipe takes
            os.write(wfd, b"go")
            with pytest.raises((BrokenPipeError, ConnectionResetError)):
                await proc.stdin.drain()
            assert await proc.wait() == 0
        finally:
            os.close(rfd)
            os.close(wfd)

    run(loop, main())


def test_read_after_exit(loop: asyncio.AbstractEventLoop) -> None:
    code = "import sys; sys.stdout.write('x' * 300000); sys.exit(1)"

    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=PIPE)
        assert proc.stdout is not None
        received = 0
        while chunk := await proc.stdout.read(65536):
            received += len(chunk)
        assert received == 300000
        assert await proc.wait() == 1

    run(loop, main())


def test_fifty_concurrent_subprocesses(loop: asyncio.AbstractEventLoop) -> None:
    async def one(i: int) -> tuple[bytes, int]:
        proc = await asyncio.create_subprocess_exec(*CAT, stdin=PIPE, stdout=PIPE)
        out, _ = await proc.communicate(b"child %d" % i)
        assert proc.returncode is not None
        return out, proc.returncode

    async def main() -> None:
        results = await asyncio.gather(*(one(i) for i in range(50)))
        assert results == [(b"child %d" % i, 0) for i in range(50)]

    run(loop, main())


def test_concurrent_waits(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(*BLOCKED)
        waits = [asyncio.ensure_future(proc.wait()) for _ in range(5)]
        await asyncio.sleep(0)
        waits[0].cancel()  # a cancelled wait does not disturb the others
        proc.kill()
        results = await asyncio.gather(*waits, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        assert results[1:] == [-signal.SIGKILL] * 4

    run(loop, main())


@needs_proc_fd
def test_no_fd_leaks(loop: asyncio.AbstractEventLoop) -> None:
    async def a_round() -> None:
        proc = await asyncio.create_subprocess_exec(*CAT, stdin=PIPE, stdout=PIPE, stderr=PIPE)
        assert (await proc.communicate(b"abc"))[0] == b"abc"
        proc = await asyncio.create_subprocess_exec(*BLOCKED, stdout=PIPE)
        proc.kill()
        await proc.wait()
        transport, proto = await loop.subprocess_exec(lambda: RecordingProtocol(loop), "true")
        await proto.done
        transport.close()

    async def main() -> None:
        await a_round()  # lazily made resources (if any) appear here
        before = _open_fds()
        for _ in range(5):
            await a_round()
        await asyncio.sleep(0)
        assert _open_fds() == before

    run(loop, main())


# -- the low-level transport and protocol ---------------------------------------------


class RecordingProtocol(asyncio.SubprocessProtocol):
    """Records every callback, checking asyncio's ordering rules as it goes."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.events: list[Any] = []
        self.transport: asyncio.SubprocessTransport | None = None
        self.data: dict[int, bytes] = {1: b"", 2: b""}
        self.done = loop.create_future()
        self.got_data = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert self.events == []
        assert isinstance(transport, asyncio.SubprocessTransport)
        self.transport = transport
        self.events.append("connection_made")

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        assert "connection_made" in self.events
        assert ("pipe_connection_lost", fd) not in self.events
        assert "connection_lost" not in self.events
        self.events.append(("pipe_data_received", fd))
        self.data[fd] += data
        self.got_data.set()

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        assert "connection_made" in self.events
        assert "connection_lost" not in self.events
        self.events.append(("pipe_connection_lost", fd))

    def process_exited(self) -> None:
        assert "connection_made" in self.events
        assert "process_exited" not in self.events
        assert self.transport is not None
        assert self.transport.get_returncode() is not None
        self.events.append("process_exited")

    def connection_lost(self, exc: Exception | None) -> None:
        assert exc is None
        assert "process_exited" in self.events
        self.events.append("connection_lost")
        self.done.set_result(None)


def test_protocol_callback_order(loop: asyncio.AbstractEventLoop) -> None:
    code = "import sys; sys.stdout.write('out'); sys.stdout.flush(); sys.stderr.write('err')"

    async def main() -> None:
        transport, proto = await loop.subprocess_exec(
            lambda: RecordingProtocol(loop), sys.executable, "-c", code, stdin=None
        )
        assert transport.get_pipe_transport(0) is None
        assert isinstance(transport.get_pipe_transport(1), asyncio.ReadTransport)
        assert isinstance(transport.get_pipe_transport(2), asyncio.ReadTransport)
        await proto.done
        assert proto.data == {1: b"out", 2: b"err"}
        assert transport.get_returncode() == 0
        events = proto.events
        assert events[0] == "connection_made"
        assert events[-1] == "connection_lost"
        for fd in (1, 2):
            per_fd = [e[0] for e in events if isinstance(e, tuple) and e[1] == fd]
            assert per_fd[0] == "pipe_data_received"
            assert per_fd[-1] == "pipe_connection_lost"
        assert events.count("process_exited") == 1
        assert not transport.is_closing()
        transport.close()
        assert transport.is_closing()

    run(loop, main())


def test_transport_accessors(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        transport, proto = await loop.subprocess_exec(lambda: RecordingProtocol(loop), *CAT)
        popen = transport.get_extra_info("subprocess")
        assert isinstance(popen, subprocess.Popen)
        assert transport.get_pid() == popen.pid
        assert transport.get_protocol() is proto
        assert transport.get_returncode() is None
        stdin = transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        assert transport.get_pipe_transport(3) is None
        stdin.write(b"echo")
        await proto.got_data.wait()
        assert proto.data[1] == b"echo"
        stdin.close()  # cat sees EOF and exits 0
        await proto.done
        assert transport.get_returncode() == 0
        assert ("pipe_connection_lost", 0) in proto.events
        transport.close()

    run(loop, main())


def test_stdin_transport_refuses_reading_as_asyncio_does(loop: asyncio.AbstractEventLoop) -> None:
    # asyncio's write-pipe transport is a full Transport whose reading methods
    # raise NotImplementedError; code that catches that must keep working.
    async def main() -> None:
        transport, proto = await loop.subprocess_exec(lambda: RecordingProtocol(loop), *CAT)
        stdin = transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.Transport)
        for method in (stdin.pause_reading, stdin.resume_reading, stdin.is_reading):
            with pytest.raises(NotImplementedError):
                method()
        stdin.write(b"still writable")
        await proto.got_data.wait()
        stdin.close()
        await proto.done
        transport.close()

    run(loop, main())


def test_close_kills_a_running_child(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        transport, proto = await loop.subprocess_exec(lambda: RecordingProtocol(loop), *BLOCKED)
        assert transport.get_returncode() is None
        transport.close()
        await proto.done  # process_exited and connection_lost still come
        assert transport.get_returncode() == -signal.SIGKILL
        assert "process_exited" in proto.events
        assert proto.events[-1] == "connection_lost"

    run(loop, main())


def test_no_pipes_at_all(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        transport, proto = await loop.subprocess_shell(
            lambda: RecordingProtocol(loop), "exit 7", stdin=None, stdout=None, stderr=None
        )
        for fd in (0, 1, 2):
            assert transport.get_pipe_transport(fd) is None
        await proto.done
        assert proto.events == ["connection_made", "process_exited", "connection_lost"]
        assert transport.get_returncode() == 7
        transport.close()

    run(loop, main())


def test_invalid_arguments(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        factory = asyncio.SubprocessProtocol
        not_bytes: list[dict[str, Any]] = [
            {"universal_newlines": True},
            {"text": True},
            {"encoding": "utf-8"},
            {"errors": "strict"},
            {"bufsize": 4096},
        ]
        for bad in [*not_bytes, {"shell": True}]:
            with pytest.raises(ValueError):
                await loop.subprocess_exec(factory, "true", **bad)
        for bad in [*not_bytes, {"shell": False}]:
            with pytest.raises(ValueError):
                await loop.subprocess_shell(factory, "true", **bad)
        with pytest.raises(ValueError, match="cmd must be a string"):
            await loop.subprocess_shell(factory, ["ls", "-l"])  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await asyncio.create_subprocess_exec("true", text=True)
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec("/nonexistent/program")

    run(loop, main())


@needs_proc_fd
def test_cancelled_creation_leaves_nothing_behind(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        before = _open_fds()
        for _ in range(3):
            task = asyncio.ensure_future(asyncio.create_subprocess_exec(*BLOCKED, stdout=PIPE))
            loop.call_soon(task.cancel)
            with pytest.raises(asyncio.CancelledError):
                await task
        # The children were killed and reaped; give their pipes a moment to close.
        for _ in range(100):
            if _open_fds() == before:
                break
            await asyncio.sleep(0.01)
        assert _open_fds() == before

    run(loop, main())


def test_unclosed_transport_warns(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> asyncio.SubprocessTransport:
        transport, proto = await loop.subprocess_exec(
            lambda: RecordingProtocol(loop), "true", stdin=None, stdout=None, stderr=None
        )
        await proto.done
        return transport

    transports = [run(loop, main())]
    # The stdlib's threaded child watcher (Python 3.11) holds the transport
    # until its thread ends, a moment after reporting the exit.
    for thread in threading.enumerate():
        if thread.name.startswith("asyncio-waitpid-"):
            thread.join()
    with pytest.warns(ResourceWarning, match="unclosed transport"):
        transports.clear()
        gc.collect()


# -- Treadle's own machinery ----------------------------------------------------------


@needs_pidfd
def test_no_thread_per_child(treadle_loop: treadle.EventLoop) -> None:
    loop = treadle_loop

    async def main() -> None:
        # Threads of earlier tests (the stdlib loop's watcher threads) may still
        # be finishing: the count may drop, it must not grow.
        before = threading.active_count()
        procs = [
            await asyncio.create_subprocess_exec(*CAT, stdin=PIPE, stdout=PIPE) for _ in range(10)
        ]
        assert threading.active_count() <= before
        # One pidfd per child, registered with the loop like any reader.
        assert len(loop._subprocesses) == 10
        assert all(t._pidfd in loop._fds for t in loop._subprocesses.values())
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()
        assert [await proc.wait() for proc in procs] == [0] * 10
        assert threading.active_count() <= before
        assert loop._subprocesses == {}

    run(loop, main())


def test_thread_fallback_without_pidfd(
    treadle_loop: treadle.EventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where pidfd_open is missing (macOS, old kernels) a thread per child waits."""
    loop = treadle_loop
    monkeypatch.setattr(treadle_subprocess, "_pidfd_open", None)

    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(*CAT, stdin=PIPE, stdout=PIPE)
        assert any(t.name.startswith("treadle-waitpid-") for t in threading.enumerate())
        out, _ = await proc.communicate(b"threaded")
        assert (out, proc.returncode) == (b"threaded", 0)
        proc = await asyncio.create_subprocess_exec(*BLOCKED)
        proc.terminate()  # os.kill, as there is no pidfd to signal through
        assert await proc.wait() == -signal.SIGTERM

    run(loop, main())


def test_pidfd_unusable_falls_back_to_a_thread(
    treadle_loop: treadle.EventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = treadle_loop

    def refused(pid: int) -> int:
        raise PermissionError("seccomp says no")

    monkeypatch.setattr(treadle_subprocess, "_pidfd_open", refused)

    async def main() -> None:
        proc = await asyncio.create_subprocess_exec("sh", "-c", "exit 5")
        assert await proc.wait() == 5

    run(loop, main())


def test_child_reaped_before_its_pidfd_is_opened(
    treadle_loop: treadle.EventLoop,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """pidfd_open of a reaped pid fails with ProcessLookupError: the exit is
    reported at once (with asyncio's 255 when the status is lost)."""
    loop = treadle_loop

    def too_late(pid: int) -> int:
        os.waitpid(pid, 0)  # a stray reaper got there first
        raise ProcessLookupError

    monkeypatch.setattr(treadle_subprocess, "_pidfd_open", too_late)

    async def main() -> None:
        proc = await asyncio.create_subprocess_exec("true")
        assert await proc.wait() == 255

    run(loop, main())
    assert "exit status already read" in caplog.text


def test_child_reaped_through_popen_keeps_its_code(treadle_loop: treadle.EventLoop) -> None:
    """Popen.wait() (on get_extra_info('subprocess')) consumes the status; the
    transport then takes the code Popen recorded."""
    loop = treadle_loop

    async def main() -> None:
        transport, proto = await loop.subprocess_shell(
            lambda: RecordingProtocol(loop), "exit 9", stdin=None, stdout=None, stderr=None
        )
        popen = transport.get_extra_info("subprocess")
        assert popen.wait() == 9
        await proto.done
        assert transport.get_returncode() == 9
        transport.close()

    run(loop, main())


@needs_proc_fd
@pytest.mark.parametrize("watcher", ["pidfd", "thread"])
def test_closing_the_loop_under_a_live_child(watcher: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if watcher == "pidfd" and not hasattr(os, "pidfd_open"):
        pytest.skip("needs os.pidfd_open (Linux 5.3+)")
    if watcher == "thread":
        monkeypatch.setattr(treadle_subprocess, "_pidfd_open", None)
    before = _open_fds()
    loop = treadle.new_event_loop()

    async def start() -> tuple[asyncio.SubprocessTransport, asyncio.SubprocessProtocol]:
        return await loop.subprocess_exec(asyncio.SubprocessProtocol, *BLOCKED)

    transport, _ = run(loop, start())
    popen = transport.get_extra_info("subprocess")
    waiters = [t for t in threading.enumerate() if t.name == f"treadle-waitpid-{popen.pid}"]
    assert len(waiters) == (watcher == "thread")
    loop.close()  # must not wait for the child
    assert popen.poll() is None
    pipes = [transport.get_pipe_transport(fd) for fd in (0, 1, 2)]
    assert all(p is not None and "open" in repr(p) for p in pipes)
    # Nothing keeps the transport alive now (the waiting thread holds it
    # weakly): collected unclosed, it warns, closes its pipes, kills the child.
    with pytest.warns(ResourceWarning, match="unclosed transport"):
        del transport, pipes
        gc.collect()
    for thread in waiters:
        thread.join()  # it reaped the child, and had nobody to tell
    assert popen.wait(timeout=30) == -signal.SIGKILL
    assert _open_fds() == before


@needs_proc_fd
def test_failed_pipe_connection_cleans_up(
    treadle_loop: treadle.EventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If wrapping a pipe fails, subprocess_exec raises, and the child, its
    pipes and its pidfd are all gone by then. (asyncio's loop waits forever here.)"""
    loop = treadle_loop
    made: list[RecordingProtocol] = []

    async def broken(*args: Any) -> Any:
        raise OSError("no pipes today")

    def factory() -> RecordingProtocol:
        made.append(RecordingProtocol(loop))
        return made[-1]

    async def main() -> None:
        before = _open_fds()
        monkeypatch.setattr(loop, "connect_read_pipe", broken)
        with pytest.raises(OSError, match="no pipes today"):
            await loop.subprocess_exec(factory, *BLOCKED)
        assert _open_fds() == before
        assert loop._subprocesses == {}
        await asyncio.sleep(0)
        assert made[0].events == []  # the protocol never heard of the process

    run(loop, main())


@needs_pidfd
def test_signals_go_through_the_pidfd(
    treadle_loop: treadle.EventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = treadle_loop
    sent: list[tuple[int, int]] = []
    real = treadle_subprocess._pidfd_send_signal
    assert real is not None

    def recording(pidfd: int, signum: int) -> None:
        sent.append((pidfd, signum))
        assert real is not None
        real(pidfd, signum)

    monkeypatch.setattr(treadle_subprocess, "_pidfd_send_signal", recording)

    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(*BLOCKED)
        proc.terminate()
        assert await proc.wait() == -signal.SIGTERM
        assert [signum for _, signum in sent] == [signal.SIGTERM]

    run(loop, main())


@pytest.fixture(autouse=True)
def _no_zombies() -> Iterator[None]:
    """Every test reaps what it spawned (a zombie here would be a leak)."""
    yield
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return
    assert pid == 0, f"child {pid} was left unreaped"
