"""Unix pipe transports: what `connect_read_pipe` and `connect_write_pipe` return.

A pipe is a file descriptor with no peer address, no `shutdown()` and no message
boundaries: pipes, FIFOs, sockets and character devices (ttys) all qualify; a
regular file does not, since it is always "ready" and the poller would spin on
it, so it is refused with `ValueError`, as asyncio does.

The read side reads once per readiness event and ends at EOF (an empty read).
The write side tries `os.write` at once and buffers only what the kernel refused,
with the usual high/low water marks driving `pause_writing`/`resume_writing` on
the protocol. It learns that its reader went away the way asyncio does: it also
watches its own fd for *readability*. A pipe's write end is never readable, so
the poller reporting it means error or hang-up (EPOLLERR: no reader left); on a
socket it means EOF. Then the transport closes, with `BrokenPipeError` if data
was still waiting to be written.

Each open transport is registered in the loop's fd-ownership table
(`loop._transports`), so `add_reader` and the `sock_*` methods refuse its fd
instead of silently stealing its data.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import sys
import warnings
from asyncio.log import logger
from collections.abc import Callable
from typing import Any, TypeVar

from .core import BaseEventLoop, _set_result_unless_cancelled
from .flowcontrol import WriteFlowControl
from .transports import LOG_THRESHOLD_FOR_CONNLOST_WRITES

__all__ = ["PipesMixin", "ReadPipeTransport", "WritePipeTransport"]

_ProtocolT = TypeVar("_ProtocolT", bound=asyncio.BaseProtocol)


class _PipeTransport(asyncio.BaseTransport):
    """What both directions share: adopting the fd, ownership, closing, repr."""

    _kinds = "pipes, sockets and character devices"

    def __init__(self, loop: BaseEventLoop, pipe: Any, protocol: asyncio.BaseProtocol) -> None:
        super().__init__({"pipe": pipe})
        self._loop = loop
        # None once the pipe is closed: __del__ and repr rely on it, and so do
        # CPython's tests, which reset it to silence the unclosed warning.
        self._pipe: Any = None
        self._fileno = -1
        self._protocol = protocol
        self._closing = False
        # connection_lost has been scheduled (or the loop was gone): never twice.
        self._lost = False

        fileno = int(pipe.fileno())
        mode = os.fstat(fileno).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
            what = "a regular file" if stat.S_ISREG(mode) else f"mode {stat.filemode(mode)}"
            raise ValueError(f"Pipe transport is only for {self._kinds}, not {what} (fd {fileno})")
        loop._ensure_fd_no_transport(fileno)
        os.set_blocking(fileno, False)
        self._pipe = pipe
        self._fileno = fileno
        self._mode = mode
        loop._transports[fileno] = self

    def _describe(self, slot: int) -> list[str]:
        info = [type(self).__name__]
        if self._pipe is None:
            info.append("closed")
        elif self._closing:
            info.append("closing")
        info.append(f"fd={self._fileno}")
        if self._pipe is not None:
            if self._loop.is_closed():
                info.append("open")
            else:
                entry = self._loop._fds.get(self._fileno)
                info.append("polling" if entry is not None and entry[slot] else "idle")
        return info

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol this transport delivers events to."""
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Deliver later events to `protocol` instead."""
        self._protocol = protocol

    def is_closing(self) -> bool:
        """True once closing, closed, or (reading) at EOF."""
        return self._closing

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "_pipe", None) is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._pipe.close()
            self._pipe = None

    def _report_error(self, exc: BaseException, message: str, *, routine: bool) -> None:
        """Tell the exception handler, or only the debug log if `routine`."""
        if not routine:
            self._loop.call_exception_handler(
                {
                    "message": message,
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )
        elif self._loop.get_debug():
            logger.debug("%r: %s", self, message, exc_info=exc)

    def _schedule_connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        if self._loop.is_closed():
            # Nobody is left to run connection_lost: just let go of the fd.
            self._release()
        else:
            self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: Exception | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._release()

    def _release(self) -> None:
        if self._loop._transports.get(self._fileno) is self:
            del self._loop._transports[self._fileno]
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()


class ReadPipeTransport(_PipeTransport, asyncio.ReadTransport):
    """The read end of a pipe: `data_received` for each chunk, then
    `eof_received` and `connection_lost(None)` at EOF."""

    #: Bytes read per readiness event, at most.
    max_size = 256 * 1024

    def __init__(
        self,
        loop: BaseEventLoop,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[None] | None = None,
    ) -> None:
        super().__init__(loop, pipe, protocol)
        self._paused = False
        loop.call_soon(self._protocol.connection_made, self)
        # Read only once connection_made() has run, and tell the waiter after it.
        loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter)

    def __repr__(self) -> str:
        return "<{}>".format(" ".join(self._describe(0)))

    def _start_reading(self) -> None:
        if self.is_reading():
            self._loop._add_reader(self._fileno, self._read_ready, ())

    def _read_ready(self) -> None:
        try:
            data = os.read(self._fileno, self.max_size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fatal_error(exc, "Fatal read error on pipe transport")
            return
        # A plain local, not typing.cast: this is the hot path.
        protocol: Any = self._protocol
        if data:
            protocol.data_received(data)
            return
        if self._loop.get_debug():
            logger.info("%r was closed by peer", self)
        self._closing = True
        self._loop._remove_fd_handler(self._fileno, 0)
        self._loop.call_soon(protocol.eof_received)
        self._schedule_connection_lost(None)

    def is_reading(self) -> bool:
        """True unless paused or closing."""
        return not self._paused and not self._closing

    def pause_reading(self) -> None:
        """Stop calling `data_received` until `resume_reading()`."""
        if not self.is_reading():
            return
        self._paused = True
        self._loop._remove_fd_handler(self._fileno, 0)
        if self._loop.get_debug():
            logger.debug("%r pauses reading", self)

    def resume_reading(self) -> None:
        """Undo `pause_reading()`."""
        if self._closing or not self._paused:
            return
        self._paused = False
        self._loop._add_reader(self._fileno, self._read_ready, ())
        if self._loop.get_debug():
            logger.debug("%r resumes reading", self)

    def close(self) -> None:
        """Stop reading and close the pipe; `connection_lost(None)` follows."""
        if not self._closing:
            self._close(None)

    def _fatal_error(self, exc: OSError, message: str) -> None:
        # EIO is how a pty master reports that the other side closed: routine.
        self._report_error(exc, message, routine=exc.errno == errno.EIO)
        self._close(exc)

    def _close(self, exc: Exception | None) -> None:
        self._closing = True
        self._loop._remove_fd_handler(self._fileno, 0)
        self._schedule_connection_lost(exc)


class WritePipeTransport(WriteFlowControl, _PipeTransport, asyncio.Transport):
    """The write end of a pipe, with write buffering and flow control.

    A full `asyncio.Transport`, as asyncio's write-pipe transport is: the
    reading methods it cannot do raise `NotImplementedError` (asyncio's base
    class does that), which code written against the stdlib loop catches;
    an `AttributeError` would get past it.
    """

    def __init__(
        self,
        loop: BaseEventLoop,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[None] | None = None,
    ) -> None:
        super().__init__(loop, pipe, protocol)
        self._buffer = bytearray()
        self._conn_lost = 0
        loop.call_soon(self._protocol.connection_made, self)
        # On AIX only sockets report the reader going away; elsewhere pipes do too.
        is_socket = stat.S_ISSOCK(self._mode)
        if is_socket or (stat.S_ISFIFO(self._mode) and not sys.platform.startswith("aix")):
            loop.call_soon(self._watch_for_reader_gone)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter)

    def __repr__(self) -> str:
        info = self._describe(1)
        if self._pipe is not None and not self._loop.is_closed():
            info.append(f"bufsize={len(self._buffer)}")
        return "<{}>".format(" ".join(info))

    def _watch_for_reader_gone(self) -> None:
        if self._pipe is not None and not self._lost:
            self._loop._add_reader(self._fileno, self._read_ready, ())

    def _read_ready(self) -> None:
        # The write end became "readable": the reader closed its end.
        if self._loop.get_debug():
            logger.info("%r was closed by peer", self)
        self._close(BrokenPipeError() if self._buffer else None)

    # -- writing ---------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write `data` now if the pipe takes it, else buffer it; never blocks."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if isinstance(data, memoryview):
            # Lengths and offsets below count bytes, whatever the item format.
            data = data.cast("B")
        if not data:
            return
        if self._conn_lost or self._closing:
            if self._conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("pipe closed by peer or os.write(pipe, data) raised exception.")
            self._conn_lost += 1
            return
        if not self._buffer:
            try:
                n = os.write(self._fileno, data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except Exception as exc:
                self._conn_lost += 1
                self._fatal_error(exc, "Fatal write error on pipe transport")
                return
            if n == len(data):
                return
            data = data[n:]
            self._loop._add_writer(self._fileno, self._write_ready, ())
        self._buffer += data
        self._maybe_pause_protocol()

    def _write_ready(self) -> None:
        try:
            n = os.write(self._fileno, self._buffer)
        except (BlockingIOError, InterruptedError):
            return
        except Exception as exc:
            self._buffer.clear()
            self._conn_lost += 1
            self._loop._remove_fd_handler(self._fileno, 1)
            self._fatal_error(exc, "Fatal write error on pipe transport")
            return
        if n < len(self._buffer):
            del self._buffer[:n]
            return
        self._buffer.clear()
        self._loop._remove_fd_handler(self._fileno, 1)
        self._maybe_resume_protocol()  # may write (and buffer) again
        if self._closing and not self._buffer:
            # write_eof() or close() was waiting for the buffer to drain.
            self._loop._remove_fd_handler(self._fileno, 0)
            self._schedule_connection_lost(None)

    def can_write_eof(self) -> bool:
        """Always True: `write_eof()` closes the pipe once flushed."""
        return True

    def write_eof(self) -> None:
        """Close the pipe once the buffer is flushed: the reader then sees EOF."""
        if self._closing:
            return
        self._closing = True
        if not self._buffer:
            self._loop._remove_fd_handler(self._fileno, 0)
            self._schedule_connection_lost(None)

    def close(self) -> None:
        """Flush the buffer, then close the pipe; `connection_lost(None)` follows."""
        if self._pipe is not None and not self._closing:
            self.write_eof()

    def abort(self) -> None:
        """Close now, dropping whatever is still buffered."""
        self._close(None)

    def _fatal_error(self, exc: Exception, message: str) -> None:
        # A vanished reader (EPIPE, ECONNRESET) is routine for a pipe.
        self._report_error(exc, message, routine=isinstance(exc, OSError))
        self._close(exc)

    def _close(self, exc: Exception | None) -> None:
        self._closing = True
        if self._buffer:
            self._loop._remove_fd_handler(self._fileno, 1)
            self._buffer.clear()
        self._loop._remove_fd_handler(self._fileno, 0)
        self._schedule_connection_lost(exc)

    # -- flow control ----------------------------------------------------------------

    def get_write_buffer_size(self) -> int:
        """Bytes accepted by `write()` and not yet taken by the pipe."""
        return len(self._buffer)

    def _flow_control_failed(self, name: str, exc: BaseException) -> None:
        self._report_error(exc, f"protocol.{name}() failed", routine=False)


class PipesMixin(BaseEventLoop):
    """`connect_read_pipe` and `connect_write_pipe`."""

    async def connect_read_pipe(
        self, protocol_factory: Callable[[], _ProtocolT], pipe: Any
    ) -> tuple[asyncio.ReadTransport, _ProtocolT]:
        """Read from `pipe` (a file object with `fileno()`) into a new protocol;
        the transport owns the pipe from now on and closes it."""
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = ReadPipeTransport(self, pipe, protocol, waiter)
        await self._await_connected(transport, waiter)
        if self._debug:
            logger.debug("Read pipe %r connected: (%r, %r)", transport._fileno, transport, protocol)
        return transport, protocol

    async def connect_write_pipe(
        self, protocol_factory: Callable[[], _ProtocolT], pipe: Any
    ) -> tuple[asyncio.WriteTransport, _ProtocolT]:
        """Write to `pipe` through a new transport; the transport owns the pipe
        from now on and closes it."""
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = WritePipeTransport(self, pipe, protocol, waiter)
        await self._await_connected(transport, waiter)
        if self._debug:
            logger.debug(
                "Write pipe %r connected: (%r, %r)", transport._fileno, transport, protocol
            )
        return transport, protocol

    @staticmethod
    async def _await_connected(
        transport: asyncio.BaseTransport, waiter: asyncio.Future[None]
    ) -> None:
        try:
            await waiter
        except BaseException:
            # Cancelled before connection_made: the caller never sees the transport.
            transport.close()
            raise
