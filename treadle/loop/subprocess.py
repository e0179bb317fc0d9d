"""Subprocesses on Treadle's loop: `subprocess_exec`, `subprocess_shell` and their transport.

A child is started with `subprocess.Popen` (as asyncio does: it knows every
platform's spawning quirks; the fork/exec blocks the loop only briefly) and its
stdin, stdout and stderr pipes become the pipe transports of `pipes.py`. The
`SubprocessTransport` multiplexes them onto one `asyncio.SubprocessProtocol`
with asyncio's ordering: `connection_made` first (events that happen earlier
wait for it), `pipe_data_received`/`pipe_connection_lost` per pipe,
`process_exited` once the exit is noticed, and `connection_lost` only when the
process has exited *and* every pipe is closed. That is what asyncio's Process
API (`asyncio.create_subprocess_exec`, which calls `loop.subprocess_exec`)
expects, so it runs here unchanged.

How a child's exit is noticed is the design decision. There is no global
SIGCHLD handler (it would fight other libraries and other loops for the
signal). On Linux each child gets a pidfd (`os.pidfd_open`), registered as an
ordinary reader: it becomes readable when the child exits, and the loop then
reaps it with `waitpid(pid, WNOHANG)`; no thread, no signal, and signals are
sent through the pidfd so they cannot reach a stranger that reused the pid.
Where pidfds are unavailable (macOS, kernels before 5.3, seccomp filters) a
small daemon thread per child blocks in `waitpid` and reports back with
`call_soon_threadsafe`, as asyncio's `ThreadedChildWatcher` does. Either way
asyncio's child watchers are not consulted, not even an inactive one.

Closing the loop does not wait for children: it closes the pidfds it holds,
reaps children that have already exited, and leaves running ones to their
transports, which warn (`ResourceWarning`) and kill the child if they are
collected unclosed, like asyncio's.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import warnings
import weakref
from asyncio.log import logger
from collections import deque
from collections.abc import Callable
from typing import IO, Any, TypeVar, cast

from .pipes import PipesMixin

__all__ = ["SubprocessMixin", "SubprocessTransport"]

_ProtocolT = TypeVar("_ProtocolT", bound=asyncio.BaseProtocol)
_Stdio = int | IO[Any] | None

#: The return code reported when a child's exit status was consumed elsewhere
#: (someone else called waitpid), as asyncio's watchers report it.
_UNKNOWN_RETURNCODE = 255

_pidfd_open: Callable[[int], int] | None = getattr(os, "pidfd_open", None)
_pidfd_send_signal: Callable[[int, int], None] | None = getattr(signal, "pidfd_send_signal", None)


def _check_popen_args(
    want_shell: bool,
    shell: object,
    universal_newlines: object,
    bufsize: object,
    text: object,
    encoding: object,
    errors: object,
) -> None:
    """Refuse what a byte-stream subprocess cannot honour, in asyncio's order
    and with its messages."""
    if universal_newlines:
        raise ValueError("universal_newlines must be False")
    if want_shell and not shell:
        raise ValueError("shell must be True")
    if shell and not want_shell:
        raise ValueError("shell must be False")
    if bufsize != 0:
        raise ValueError("bufsize must be 0")
    if text:
        raise ValueError("text must be False")
    if encoding is not None:
        raise ValueError("encoding must be None")
    if errors is not None:
        raise ValueError("errors must be None")


def _reap(proc: subprocess.Popen[bytes], *, blocking: bool = False) -> int | None:
    """Collect a child's exit status: its return code, or None if it is still
    running (only when not `blocking`)."""
    try:
        pid, status = os.waitpid(proc.pid, 0 if blocking else os.WNOHANG)
    except ChildProcessError:
        # Reaped behind our back: by Popen.poll()/wait() (which recorded the
        # code) or by a stray waitpid(-1) (which did not).
        if proc.returncode is not None:
            return proc.returncode
        logger.warning(
            "child process pid %d exit status already read: will report returncode %d",
            proc.pid,
            _UNKNOWN_RETURNCODE,
        )
        return _UNKNOWN_RETURNCODE
    if pid == 0:
        return None
    return os.waitstatus_to_exitcode(status)


def _wait_in_thread(
    transport_ref: weakref.ref[SubprocessTransport], proc: subprocess.Popen[bytes]
) -> None:
    """The fallback watcher, on its own thread: block in waitpid until the
    child exits, then report to its transport on the loop, if both still exist."""
    returncode = _reap(proc, blocking=True)
    if returncode is None:  # never, when blocking; for the type checker
        returncode = _UNKNOWN_RETURNCODE
    if proc.returncode is None:
        # At once, so that Popen.poll() on the loop's thread need not waitpid.
        proc.returncode = returncode
    transport = transport_ref()
    if transport is None:
        return
    try:
        transport._loop.call_soon_threadsafe(transport._process_exited, returncode)
    except RuntimeError:
        pass  # the loop is closed: nobody is left to tell


class _PipeProtocol(asyncio.Protocol):
    """Forwards one standard stream's events to the subprocess transport."""

    def __init__(self, owner: SubprocessTransport, fd: int) -> None:
        self.owner = owner
        self.fd = fd
        self.pipe: asyncio.BaseTransport | None = None
        self.disconnected = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} fd={self.fd} pipe={self.pipe!r}>"

    def itself(self) -> _PipeProtocol:
        """The protocol factory handed to connect_*_pipe."""
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.pipe = transport

    def data_received(self, data: bytes) -> None:
        self.owner._pipe_data_received(self.fd, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.disconnected = True
        self.owner._pipe_connection_lost(self.fd, exc)

    # Flow control of stdin is the subprocess protocol's business.
    def pause_writing(self) -> None:
        self.owner._protocol.pause_writing()

    def resume_writing(self) -> None:
        self.owner._protocol.resume_writing()


class SubprocessTransport(asyncio.SubprocessTransport):
    """A child process and its pipes, as `subprocess_exec` returns them."""

    def __init__(
        self,
        loop: SubprocessMixin,
        protocol: asyncio.SubprocessProtocol,
        proc: subprocess.Popen[bytes],
        pipes: dict[int, Any],
    ) -> None:
        self._closed = False
        super().__init__({"subprocess": proc})
        self._loop = loop
        self._protocol = protocol
        self._proc = proc
        self._pid: int = proc.pid
        self._returncode: int | None = None
        # The pidfd watching the child, or -1 (thread fallback, or done).
        self._pidfd = -1
        # fd (0, 1, 2) -> the protocol of that pipe; the raw pipe file objects
        # wait here until they are handed to a pipe transport.
        self._pipes = {fd: _PipeProtocol(self, fd) for fd in pipes}
        self._raw_pipes = dict(pipes)
        # Protocol callbacks due before connection_made() was delivered; None
        # once it was (or once connecting failed and the protocol is never told).
        self._pending: deque[tuple[Callable[..., object], tuple[Any, ...]]] | None = deque()
        self._connect_failed = False
        self._finished = False
        self._exit_waiters: list[asyncio.Future[int]] = []

    def __repr__(self) -> str:
        info = [type(self).__name__]
        if self._closed:
            info.append("closed")
        info.append(f"pid={self._pid}")
        if self._returncode is not None:
            info.append(f"returncode={self._returncode}")
        else:
            info.append("running")
        names = {0: "stdin", 1: "stdout", 2: "stderr"}
        for fd, proto in self._pipes.items():
            if proto.pipe is not None:
                info.append(f"{names[fd]}={proto.pipe!r}")
        return "<{}>".format(" ".join(info))

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if not getattr(self, "_closed", True):
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self.close()

    # -- the public contract ----------------------------------------------------------

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The SubprocessProtocol this transport delivers events to."""
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Deliver later events to `protocol` (a SubprocessProtocol) instead."""
        self._protocol = cast(asyncio.SubprocessProtocol, protocol)

    def is_closing(self) -> bool:
        """True once `close()` was called."""
        return self._closed

    def get_pid(self) -> int:
        """The child's process id."""
        return self._pid

    def get_returncode(self) -> int | None:
        """The child's exit code once its exit was noticed (negative: killed by
        that signal), else None."""
        return self._returncode

    def get_pipe_transport(self, fd: int) -> asyncio.BaseTransport | None:
        """The transport of the child's stdin (0), stdout (1) or stderr (2), or
        None if that stream is not a pipe."""
        proto = self._pipes.get(fd)
        return None if proto is None else proto.pipe

    def send_signal(self, signal: int) -> None:
        """Send `signal` to the child. Does nothing once its exit is noticed
        (the pid may already belong to another process); raises
        ProcessLookupError once the transport is finished, as asyncio does."""
        if self._finished:
            raise ProcessLookupError()
        if self._returncode is not None:
            return
        try:
            if self._pidfd >= 0 and _pidfd_send_signal is not None:
                _pidfd_send_signal(self._pidfd, signal)
            else:
                os.kill(self._pid, signal)
        except ProcessLookupError:
            pass

    def terminate(self) -> None:
        """Send SIGTERM."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """Send SIGKILL."""
        self.send_signal(signal.SIGKILL)

    def close(self) -> None:
        """Close the pipes and kill the child if it is still running. The
        protocol still hears `process_exited` and `connection_lost`."""
        if self._closed:
            return
        self._closed = True
        for proto in self._pipes.values():
            if proto.pipe is not None:
                proto.pipe.close()
        if self._loop.is_closed():
            # _connect_pipes() will never run: close what it would have adopted.
            for pipe in self._raw_pipes.values():
                pipe.close()
            self._raw_pipes.clear()
        # poll(): the child may have exited without our having noticed yet.
        if self._returncode is None and self._proc.poll() is None:
            if self._loop.get_debug():
                logger.warning("Close running child process: kill %r", self)
            try:
                self._proc.kill()
            except (ProcessLookupError, PermissionError):
                pass

    # -- start-up -----------------------------------------------------------------------

    async def _connect_pipes(self, waiter: asyncio.Future[None]) -> None:
        """Wrap each pipe in a transport, then deliver connection_made() and
        whatever happened meanwhile. Runs as its own task, so that a cancelled
        `subprocess_exec` still leaves every pipe owned by a transport."""
        loop = self._loop
        try:
            for fd in (0, 1, 2):
                pipe = self._raw_pipes.get(fd)
                if pipe is None:
                    continue
                proto = self._pipes[fd]
                # Looked up on the loop each time, as asyncio does (tests wrap them).
                if fd == 0:
                    await loop.connect_write_pipe(proto.itself, pipe)
                else:
                    await loop.connect_read_pipe(proto.itself, pipe)
                del self._raw_pipes[fd]
                if self._closed and proto.pipe is not None:
                    proto.pipe.close()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._abandon_connecting()
            if isinstance(exc, asyncio.CancelledError):
                waiter.cancel()
                raise
            if not waiter.done():
                waiter.set_exception(exc)
            return
        pending, self._pending = self._pending, None
        loop.call_soon(self._protocol.connection_made, self)
        assert pending is not None
        for callback, args in pending:
            loop.call_soon(callback, *args)
        if not waiter.done():
            waiter.set_result(None)

    def _abandon_connecting(self) -> None:
        """Connecting failed: the protocol never hears of this process. Close
        the pipes no transport took, and still let `_wait()` finish."""
        self._pending = None
        self._connect_failed = True
        for fd, pipe in self._raw_pipes.items():
            proto = self._pipes[fd]
            # A transport that was made owns its pipe (connect_*_pipe closed it
            # on failure, and will report it lost); the rest are ours to close.
            if proto.pipe is None:
                pipe.close()
                proto.disconnected = True
        self._raw_pipes.clear()
        if self._finished:
            self._loop.call_soon(self._wake_exit_waiters)
        else:
            self._try_finish()

    # -- watching the child -------------------------------------------------------------

    def _watch_exit(self) -> None:
        """Start noticing the child's exit: a pidfd reader, or a thread."""
        if _pidfd_open is not None:
            try:
                pidfd = _pidfd_open(self._pid)
            except ProcessLookupError:
                # Already reaped by someone else: nothing left to wait for.
                self._loop.call_soon(self._reap_now)
                return
            except OSError:
                pass  # ENOSYS, EPERM (seccomp), EMFILE: use a thread instead
            else:
                self._pidfd = pidfd
                self._loop._add_reader(pidfd, self._pidfd_ready, ())
                return
        # The thread holds the transport weakly: once the loop is closed,
        # nothing else may keep it alive, and collecting it kills the child.
        thread = threading.Thread(
            target=_wait_in_thread,
            args=(weakref.ref(self), self._proc),
            name=f"treadle-waitpid-{self._pid}",
            daemon=True,
        )
        thread.start()

    def _pidfd_ready(self) -> None:
        returncode = _reap(self._proc)
        if returncode is not None:
            self._process_exited(returncode)

    def _reap_now(self) -> None:
        returncode = _reap(self._proc)
        self._process_exited(_UNKNOWN_RETURNCODE if returncode is None else returncode)

    def _stop_watching(self) -> None:
        if self._pidfd >= 0:
            self._loop._remove_fd_handler(self._pidfd, 0)
            os.close(self._pidfd)
            self._pidfd = -1
        self._loop._subprocesses.pop(self._pid, None)

    def _loop_closed(self) -> None:
        """The loop closed under a live child: release the pidfd and reap the
        child if it has already exited (a waiting thread reaps it anyway). The
        protocol hears nothing more."""
        had_pidfd = self._pidfd >= 0
        self._stop_watching()
        if had_pidfd:
            self._proc.poll()

    # -- events, in asyncio's order ------------------------------------------------------

    def _call(self, callback: Callable[..., object], *args: Any) -> None:
        if self._pending is not None:
            self._pending.append((callback, args))
        elif not self._connect_failed:
            self._loop.call_soon(callback, *args)

    def _pipe_data_received(self, fd: int, data: bytes) -> None:
        self._call(self._protocol.pipe_data_received, fd, data)

    def _pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._call(self._protocol.pipe_connection_lost, fd, exc)
        self._try_finish()

    def _process_exited(self, returncode: int) -> None:
        if self._returncode is not None:
            return
        self._stop_watching()
        self._returncode = returncode
        if self._proc.returncode is None:
            # Keep Popen in step: it would otherwise warn that the child is
            # still running when it is collected.
            self._proc.returncode = returncode
        if self._loop.get_debug():
            logger.info("%r exited with return code %r", self, returncode)
        self._call(self._protocol.process_exited)
        self._try_finish()

    def _try_finish(self) -> None:
        if self._finished or self._returncode is None:
            return
        if not all(proto.disconnected for proto in self._pipes.values()):
            return
        self._finished = True
        if self._connect_failed:
            self._loop.call_soon(self._wake_exit_waiters)
        else:
            self._call(self._call_connection_lost)

    def _call_connection_lost(self) -> None:
        try:
            self._protocol.connection_lost(None)
        finally:
            self._wake_exit_waiters()

    def _wake_exit_waiters(self) -> None:
        returncode = self._returncode
        assert returncode is not None, "woken before the exit was noticed"
        waiters, self._exit_waiters = self._exit_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(returncode)

    async def _wait(self) -> int:
        """Wait for the child to exit and its pipes to close; return its code.

        Private, but asyncio's `Process.wait()` calls it by this name."""
        if self._returncode is not None:
            return self._returncode
        waiter: asyncio.Future[int] = self._loop.create_future()
        self._exit_waiters.append(waiter)
        return await waiter


class SubprocessMixin(PipesMixin):
    """Pipe transports, subprocess transports and child-exit watching."""

    def __init__(self, *, poller: str | None = None) -> None:
        """See `BaseEventLoop`."""
        # Before the base initializer: close() may run if that one fails.
        self._subprocesses: dict[int, SubprocessTransport] = {}
        super().__init__(poller=poller)

    async def subprocess_shell(
        self,
        protocol_factory: Callable[[], _ProtocolT],
        cmd: bytes | str,
        *,
        stdin: _Stdio = subprocess.PIPE,
        stdout: _Stdio = subprocess.PIPE,
        stderr: _Stdio = subprocess.PIPE,
        universal_newlines: bool = False,
        shell: bool = True,
        bufsize: int = 0,
        encoding: str | None = None,
        errors: str | None = None,
        text: bool | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.SubprocessTransport, _ProtocolT]:
        """Run `cmd` through the shell; other keyword arguments go to
        `subprocess.Popen`. Returns (transport, protocol) once the pipes are
        connected."""
        if not isinstance(cmd, (bytes, str)):
            raise ValueError("cmd must be a string")
        _check_popen_args(True, shell, universal_newlines, bufsize, text, encoding, errors)
        return await self._spawn(protocol_factory, cmd, True, stdin, stdout, stderr, kwargs)

    async def subprocess_exec(
        self,
        protocol_factory: Callable[[], _ProtocolT],
        program: Any,
        *args: Any,
        stdin: _Stdio = subprocess.PIPE,
        stdout: _Stdio = subprocess.PIPE,
        stderr: _Stdio = subprocess.PIPE,
        universal_newlines: bool = False,
        shell: bool = False,
        bufsize: int = 0,
        encoding: str | None = None,
        errors: str | None = None,
        text: bool | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.SubprocessTransport, _ProtocolT]:
        """Run `program` with `args`, no shell; other keyword arguments go to
        `subprocess.Popen`. Returns (transport, protocol) once the pipes are
        connected."""
        _check_popen_args(False, shell, universal_newlines, bufsize, text, encoding, errors)
        argv = (program, *args)
        return await self._spawn(protocol_factory, argv, False, stdin, stdout, stderr, kwargs)

    async def _spawn(
        self,
        protocol_factory: Callable[[], _ProtocolT],
        args: Any,
        shell: bool,
        stdin: _Stdio,
        stdout: _Stdio,
        stderr: _Stdio,
        kwargs: dict[str, Any],
    ) -> tuple[asyncio.SubprocessTransport, _ProtocolT]:
        protocol = protocol_factory()
        if self._debug:
            # The program only, not its arguments: they may hold secrets.
            program = args if shell else args[0]
            logger.debug("%s %r", "run shell command" if shell else "execute program", program)
        transport = await self._make_subprocess_transport(
            protocol, args, shell, stdin, stdout, stderr, kwargs
        )
        return transport, protocol

    async def _make_subprocess_transport(
        self,
        protocol: asyncio.BaseProtocol,
        args: Any,
        shell: bool,
        stdin: _Stdio,
        stdout: _Stdio,
        stderr: _Stdio,
        kwargs: dict[str, Any],
    ) -> SubprocessTransport:
        self._check_closed()
        # Looked up at call time: tests patch subprocess.Popen.
        proc = subprocess.Popen(
            args,
            shell=shell,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            universal_newlines=False,
            bufsize=0,
            **kwargs,
        )
        pipes = {
            fd: pipe
            for fd, pipe in enumerate((proc.stdin, proc.stdout, proc.stderr))
            if pipe is not None
        }
        transport = SubprocessTransport(
            self, cast(asyncio.SubprocessProtocol, protocol), proc, pipes
        )
        if self._debug:
            logger.debug("process %r created: pid %s", args, proc.pid)
        self._subprocesses[proc.pid] = transport
        transport._watch_exit()
        waiter = self.create_future()
        self.create_task(transport._connect_pipes(waiter))
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            # Cancelled or failed: kill the child and wait for it, so that
            # nothing (process, pipe, pidfd) outlives this call.
            transport.close()
            await transport._wait()
            raise
        return transport

    def close(self) -> None:
        """Close the loop (see `BaseEventLoop.close`) and stop watching children."""
        super().close()
        live = list(self._subprocesses.values())
        self._subprocesses.clear()
        for transport in live:
            transport._loop_closed()
