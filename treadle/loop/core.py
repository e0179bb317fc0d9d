"""The heart of Treadle's event loop: the ready queue, the timer heap and the run loop.

`BaseEventLoop` implements the part of `asyncio.AbstractEventLoop` that every other
part builds on: scheduling (`call_soon`, `call_later`, `call_at`, the thread-safe
variant), running and stopping, futures and tasks (asyncio's own, C-accelerated),
error reporting, readiness callbacks on file descriptors, the default executor and
async-generator finalization. Sockets, signals and transports are mixins in their
own modules, each built on this class.

Where the speed comes from, each measured against the stdlib loop (`bench/loop.py`):

- The run loop is one function with its hot attributes bound to locals; it runs a
  ready handle by reading its slots directly instead of calling `handle._run()`.
- Timers sit in the heap as `(when, seq, handle)` tuples, compared in C.
- The poller is epoll (or kqueue, poll, select) used directly, not `selectors`.
- When callbacks are ready and no file descriptor but the loop's own wake-up
  socket is registered, the loop skips the zero-timeout poll entirely: there is
  nothing it could learn from it.
- `call_soon_threadsafe` writes to the wake-up socket only when the loop is (about
  to be) blocked in the poller, so a busy loop fed by threads costs no syscalls.
- Debug-mode checks live on a separate path and cost nothing when debug is off.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import heapq
import itertools
import os
import socket
import sys
import threading
import time
import traceback
import warnings
import weakref
from asyncio.log import logger
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, TypeVar, TypeVarTuple, Unpack, cast

from .handles import DEBUG_STACK_DEPTH, Handle, TimerHandle, format_callback
from .poller import READ, WRITE, Poller, make_poller

__all__ = ["BaseEventLoop"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
_ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]

#: Cancelled timers are swept out of the heap once there are more than this many
#: and they make up more than half of it, so a program that keeps scheduling and
#: cancelling timeouts does not grow the heap forever.
_COMPACT_MIN_CANCELLED = 64

_monotonic = time.monotonic
_copy_context = contextvars.copy_context
_new_handle = object.__new__
_heappush = heapq.heappush


def _env_debug() -> bool:
    """Debug mode from the environment, as asyncio reads it."""
    if sys.flags.dev_mode:
        return True
    return not sys.flags.ignore_environment and bool(os.environ.get("PYTHONASYNCIODEBUG"))


def _interest(entry: list[Any]) -> int:
    return (READ if entry[0] is not None else 0) | (WRITE if entry[1] is not None else 0)


def _fd_was_reused(old: Any, fd: int) -> bool:
    """Whether `old`, registered under `fd`, no longer owns that number."""
    if isinstance(old, int):
        return False
    try:
        return bool(old.fileno() != fd)
    except (AttributeError, TypeError, ValueError, OSError):
        return True


def _describe_handle(handle: Handle) -> str:
    """What the slow-callback warning names: for a step of a task, the task
    (its coroutine and where it is defined), not the step wrapper that
    asyncio's Task schedules, which says nothing about whose code was slow."""
    owner = getattr(handle._callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return repr(owner)
    return repr(handle)


def _stop_when_done(fut: asyncio.Future[Any]) -> None:
    # SystemExit and KeyboardInterrupt already unwind run_forever on their own.
    if not fut.cancelled() and isinstance(fut.exception(), (SystemExit, KeyboardInterrupt)):
        return
    fut.get_loop().stop()


class _Clock:
    """`loop.time`: the loop's clock, `time.monotonic` unless replaced.

    Tests replace it on a loop (`mock.patch.object(loop, "time", ...)`, as
    aiohttp's do) and expect the scheduler to follow, as asyncio's does: it
    calls `self.time()` for every timer. Treadle's run loop holds the clock in
    a local, so this descriptor catches the replacement instead: setting or
    deleting `loop.time` swaps `loop._clock`, which `call_later()` and the run
    loop use, and a running loop starts its run over to bind the new one. The
    common case pays nothing: no check per iteration, and `loop.time()` is
    one Python call, as it was.
    """

    def __get__(self, loop: BaseEventLoop | None, owner: type | None = None) -> Any:
        if loop is None:
            return self
        return loop._clock

    def __set__(self, loop: BaseEventLoop, clock: Callable[[], float]) -> None:
        loop._set_clock(clock)

    def __delete__(self, loop: BaseEventLoop) -> None:
        loop._set_clock(None)


def _set_result_unless_cancelled(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.set_result(None)


class BaseEventLoop(asyncio.AbstractEventLoop):
    """Scheduling, running, errors and fd readiness; see the module docstring."""

    #: Callbacks that run longer than this (seconds) are logged in debug mode.
    slow_callback_duration: float = 0.1

    def __init__(self, *, poller: str | None = None) -> None:
        """Make a loop. `poller` picks the readiness API by name ('epoll',
        'kqueue', 'poll' or 'select'); by default the best this platform has."""
        # Closed until every resource below is acquired: __del__ and close()
        # then have nothing to release if construction fails half-way.
        self._closed = True
        self._stopping = False
        # The clock `time` returns (see _Clock); a subclass's own time() wins.
        self._clock: Callable[[], float] = (
            _monotonic if isinstance(type(self).time, _Clock) else self.time
        )
        # Set when the clock is replaced while running: the run starts over.
        self._clock_changed = False
        self._debug = _env_debug()
        self._thread_id: int | None = None
        self._ready: collections.deque[Handle] = collections.deque()
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._timers_cancelled = 0
        self._timer_seq = itertools.count()
        self._clock_resolution = time.get_clock_info("monotonic").resolution
        self._current_handle: Handle | None = None
        # Watched (a LoopMonitor is counting slow callbacks): each callback
        # is published in _current_handle and each iteration counted.
        self._watched = False
        self._iterations = 0
        self._exception_handler: _ExceptionHandler | None = None
        self._task_factory: Any = None
        self._default_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._executor_shutdown_called = False
        self._asyncgens: weakref.WeakSet[Any] = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._coroutine_origin_depth: int | None = None
        self._signal_handlers: dict[int, Handle] = {}
        # fd -> [reader, writer, file object]; the poller holds the same
        # interest. The file object (None for a bare fd) is what add_reader()
        # was given: once it is closed its fileno() no longer names the fd, and
        # remove_reader() finds the registration by the object instead.
        self._fds: dict[int, list[Any]] = {}
        # fd -> the transport that owns it: add_reader and sock_* refuse those fds.
        self._transports: weakref.WeakValueDictionary[int, asyncio.BaseTransport] = (
            weakref.WeakValueDictionary()
        )
        # One receive buffer for every socket transport of the loop: callbacks
        # run one at a time, and each read is copied out before the next.
        self._read_buffer = bytearray(256 * 1024)
        self._read_view = memoryview(self._read_buffer)
        # True while the loop is (about to be) blocked in the poller: only then must
        # another thread wake it through the socket pair.
        self._polling = False
        self._poller: Poller = make_poller(poller)
        try:
            self._wake_r, self._wake_w = socket.socketpair()
        except BaseException:
            self._poller.close()
            raise
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._add_reader(self._wake_r.fileno(), self._read_wakeups, ())
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} running={self.is_running()} "
            f"closed={self.is_closed()} debug={self.get_debug()}>"
        )

    # -- time and scheduling -------------------------------------------------------

    #: The loop's clock: `loop.time()` is `time.monotonic()` unless replaced
    #: (see `_Clock`).
    time = _Clock()

    def _set_clock(self, clock: Callable[[], float] | None) -> None:
        self._clock = _monotonic if clock is None else clock
        if self._thread_id is not None and not self._stopping:
            # The run loop holds the clock in a local: end this run after the
            # current iteration and start another with the new clock.
            self._stopping = True
            self._clock_changed = True

    def call_soon(
        self,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> Handle:
        """Run `callback(*args)` on the next iteration, after the callbacks
        already scheduled (FIFO)."""
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            self._check_thread()
            self._check_callback(callback, "call_soon")
            handle = Handle(callback, args, self, context)
        else:
            # Handle.__init__ inlined: the hottest allocation of the loop.
            handle = _new_handle(Handle)
            handle._callback = callback
            handle._args = args
            handle._loop = self
            handle._cancelled = False
            handle._repr = None
            handle._context = _copy_context() if context is None else context
            handle._source_traceback = None
        self._ready.append(handle)
        return handle

    def call_later(
        self,
        delay: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> TimerHandle:
        """Run `callback(*args)` after `delay` seconds (never before)."""
        if delay is None:
            raise TypeError("delay must not be None")
        return self._schedule_at(self._clock() + delay, callback, args, context)

    def call_at(
        self,
        when: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> TimerHandle:
        """Run `callback(*args)` once the loop's clock reaches `when`."""
        if when is None:
            raise TypeError("when cannot be None")
        return self._schedule_at(when, callback, args, context)

    def _schedule_at(
        self,
        when: float,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        context: contextvars.Context | None,
    ) -> TimerHandle:
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            self._check_thread()
            self._check_callback(callback, "call_at")
            timer = TimerHandle(when, callback, args, self, context)
        else:
            # TimerHandle.__init__ inlined, as in call_soon.
            timer = _new_handle(TimerHandle)
            timer._callback = callback
            timer._args = args
            timer._loop = self
            timer._cancelled = False
            timer._repr = None
            timer._context = _copy_context() if context is None else context
            timer._source_traceback = None
            timer._when = when
        _heappush(self._timers, (when, next(self._timer_seq), timer))
        timer._scheduled = True
        return timer

    def call_soon_threadsafe(
        self,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> Handle:
        """Like `call_soon`, from any thread: wakes the loop if it is waiting."""
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            self._check_callback(callback, "call_soon_threadsafe")
        handle = Handle(callback, args, self, context)
        self._ready.append(handle)
        # The append happens before this read. If the loop had not yet published
        # `_polling`, it re-checks the ready queue after publishing and sees ours.
        if self._polling:
            self._wake()
        return handle

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            # Full (a wake-up is pending anyway) or closed (nothing to wake).
            pass

    def _read_wakeups(self) -> None:
        while True:
            try:
                data = self._wake_r.recv(4096)
            except InterruptedError:
                continue
            except OSError:
                return
            if not data:
                return
            # Signal numbers arrive here too, written by the C signal handler
            # through `signal.set_wakeup_fd`; thread wake-ups are zero bytes.
            for signum in data:
                if signum:
                    self._dispatch_signal(signum)

    def _dispatch_signal(self, signum: int) -> None:
        handle = self._signal_handlers.get(signum)
        if handle is not None and not handle._cancelled:
            self._ready.append(handle)

    def _timer_handle_cancelled(self, handle: TimerHandle) -> None:
        self._timers_cancelled += 1
        if self._timers_cancelled > _COMPACT_MIN_CANCELLED and self._timers_cancelled * 2 > len(
            self._timers
        ):
            self._compact_timers()

    def _compact_timers(self) -> None:
        """Drop cancelled timers from the heap, in place (the run loop holds it)."""
        live = []
        for entry in self._timers:
            if entry[2]._cancelled:
                entry[2]._scheduled = False
            else:
                live.append(entry)
        heapq.heapify(live)
        self._timers[:] = live
        self._timers_cancelled = 0

    # -- running -------------------------------------------------------------------

    def run_forever(self) -> None:
        """Run until `stop()` is called."""
        self._check_closed()
        self._check_running()
        old_hooks = sys.get_asyncgen_hooks()
        self._thread_id = threading.get_ident()
        sys.set_asyncgen_hooks(
            firstiter=self._asyncgen_firstiter_hook, finalizer=self._asyncgen_finalizer_hook
        )
        asyncio.events._set_running_loop(self)
        try:
            self._set_coroutine_origin_tracking(self._debug)
            while True:
                self._run()
                if not self._clock_changed:
                    break
                # Only the clock changed (see _set_clock): run on with it.
                self._clock_changed = False
                self._stopping = False
        finally:
            self._stopping = False
            self._polling = False
            self._thread_id = None
            asyncio.events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_hooks)

    def _run(self) -> None:
        """Iterate until stopped: poll, move due timers to the ready queue, run it.

        Everything the iteration touches is bound to a local once; `_timers` is
        only ever changed in place so the local stays valid.
        """
        ready = self._ready
        popleft = ready.popleft
        append = ready.append
        timers = self._timers
        heappop = heapq.heappop
        fds = self._fds
        poller = self._poller
        poll = poller.poll
        ready_read = poller.READY_READ
        ready_write = poller.READY_WRITE
        resolution = self._clock_resolution
        signal_handlers = self._signal_handlers
        monotonic = self._clock  # bound per run: see _Clock
        handle: Handle | None = None

        while True:
            # 1. How long may we block?
            timeout: float | None
            if ready or self._stopping:
                timeout = 0.0
            else:
                self._polling = True
                while timers and timers[0][2]._cancelled:
                    heappop(timers)[2]._scheduled = False
                    self._timers_cancelled -= 1
                if ready:
                    timeout = 0.0
                elif timers:
                    timeout = timers[0][0] - monotonic()
                    if timeout < 0.0:
                        timeout = 0.0
                else:
                    timeout = None

            # 2. Poll, unless only our own wake-up socket is registered and we
            # would not wait: then no event could be waiting for us.
            if timeout == 0.0 and len(fds) == 1 and not signal_handlers:
                pass
            else:
                for fd, bits in poll(timeout):
                    entry = fds.get(fd)
                    if entry is None:
                        continue
                    if bits & ready_read:
                        handle = entry[0]
                        if handle is not None:
                            append(handle)
                    if bits & ready_write:
                        handle = entry[1]
                        if handle is not None:
                            append(handle)
            self._polling = False

            # 3. Timers that are due.
            if timers:
                end = monotonic() + resolution
                while timers:
                    when, _, timer = timers[0]
                    if timer._cancelled:
                        heappop(timers)
                        timer._scheduled = False
                        self._timers_cancelled -= 1
                    elif when < end:
                        heappop(timers)
                        timer._scheduled = False
                        append(timer)
                    else:
                        break
                timer = None  # type: ignore[assignment]

            # 4. Run what was ready when we got here; what those callbacks
            # schedule waits for the next iteration, after another poll.
            ntodo = len(ready)
            if self._debug:
                self._run_ready_debug(ntodo)
            elif self._watched:
                self._run_ready_watched(ntodo)
            else:
                while ntodo:
                    ntodo -= 1
                    handle = popleft()
                    if handle._cancelled:
                        continue
                    try:
                        handle._context.run(handle._callback, *handle._args)
                    except (SystemExit, KeyboardInterrupt):
                        raise
                    except BaseException as exc:
                        self._report_callback_error(handle, exc)
            handle = None  # drop the reference while we sleep

            if self._stopping:
                break

    def _run_ready_watched(self, ntodo: int) -> None:
        """Step 4 while a `LoopMonitor` watches: each callback is published in
        `_current_handle` (one store) and each iteration counted, so its
        watchdog thread can tell one callback running long from many short
        ones (the same handle can run once per iteration: an fd's reader)."""
        self._iterations += 1
        popleft = self._ready.popleft
        try:
            for _ in range(ntodo):
                handle = popleft()
                if handle._cancelled:
                    continue
                self._current_handle = handle
                try:
                    handle._context.run(handle._callback, *handle._args)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._report_callback_error(handle, exc)
        finally:
            self._current_handle = None

    def _run_ready_debug(self, ntodo: int) -> None:
        """The debug-mode variant of step 4: records the current handle and logs
        callbacks slower than `slow_callback_duration`."""
        self._iterations += 1
        popleft = self._ready.popleft
        for _ in range(ntodo):
            handle = popleft()
            if handle._cancelled:
                continue
            self._current_handle = handle
            try:
                t0 = _monotonic()
                handle._run()
                dt = _monotonic() - t0
                if dt >= self.slow_callback_duration:
                    logger.warning("Executing %s took %.3f seconds", _describe_handle(handle), dt)
            finally:
                self._current_handle = None

    def _report_callback_error(self, handle: Handle, exc: BaseException) -> None:
        context: dict[str, Any] = {
            "message": f"Exception in callback {format_callback(handle._callback, handle._args)}",
            "exception": exc,
            "handle": handle,
        }
        if handle._source_traceback:
            context["source_traceback"] = handle._source_traceback
        self.call_exception_handler(context)

    def run_until_complete(self, future: Generator[Any, None, _T] | Awaitable[_T]) -> _T:
        """Run until `future` (a future, task or coroutine) is done; return its result."""
        self._check_closed()
        self._check_running()
        new_task = not asyncio.isfuture(future)
        fut: asyncio.Future[_T] = asyncio.ensure_future(cast(Awaitable[_T], future), loop=self)
        if new_task:
            # A task we made ourselves: its "destroyed but pending" warning would
            # only repeat the error the caller is about to see.
            fut._log_destroy_pending = False  # type: ignore[attr-defined]
        fut.add_done_callback(_stop_when_done)
        try:
            self.run_forever()
        except BaseException:
            if new_task and fut.done() and not fut.cancelled():
                # The exception propagates from here; don't log it again as never retrieved.
                fut.exception()
            raise
        finally:
            fut.remove_done_callback(_stop_when_done)
        if not fut.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return fut.result()

    def stop(self) -> None:
        """Stop after the current iteration (or after one iteration, if not running)."""
        self._stopping = True
        self._clock_changed = False  # a real stop, not a restart for a new clock

    def is_running(self) -> bool:
        return self._thread_id is not None

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the loop: drop pending callbacks, shut the executor down without
        waiting, release the poller and the wake-up socket. Idempotent."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self._closed:
            return
        if self._debug:
            logger.debug("Close %r", self)
        self._close_signal_handlers()
        self._closed = True
        self._ready.clear()
        for entry in self._timers:
            entry[2]._scheduled = False
        self._timers.clear()
        self._timers_cancelled = 0
        self._executor_shutdown_called = True
        executor, self._default_executor = self._default_executor, None
        if executor is not None:
            executor.shutdown(wait=False)
        self._fds.clear()
        self._poller.close()
        self._wake_r.close()
        self._wake_w.close()

    def _close_signal_handlers(self) -> None:
        """Hook for the signals mixin: restore signal dispositions on close."""

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "_closed", True):
            return
        _warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
        if not self.is_running():
            self.close()

    def _check_closed(self) -> None:
        if self._closed:
            raise RuntimeError("Event loop is closed")

    def _check_running(self) -> None:
        if self.is_running():
            raise RuntimeError("This event loop is already running")
        if asyncio.events._get_running_loop() is not None:
            raise RuntimeError("Cannot run the event loop while another loop is running")

    def _check_thread(self) -> None:
        """Debug mode: refuse non-thread-safe calls from a thread not running the loop."""
        if self._thread_id is None:
            return
        if threading.get_ident() != self._thread_id:
            raise RuntimeError(
                "Non-thread-safe operation invoked on an event loop other than the current one"
            )

    @staticmethod
    def _check_callback(callback: object, method: str) -> None:
        if asyncio.iscoroutine(callback) or asyncio.iscoroutinefunction(callback):
            raise TypeError(f"coroutines cannot be used with {method}()")
        if not callable(callback):
            raise TypeError(f"a callable object was expected by {method}(), got {callback!r}")

    # -- debug mode ----------------------------------------------------------------

    def get_debug(self) -> bool:
        return self._debug

    def set_debug(self, enabled: bool) -> None:
        """Turn debug mode on or off: thread checks, slow-callback warnings,
        creation tracebacks on handles and coroutines."""
        self._debug = enabled
        if self.is_running():
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking, enabled)

    def _set_coroutine_origin_tracking(self, enabled: bool) -> None:
        if enabled == (self._coroutine_origin_depth is not None):
            return
        if enabled:
            self._coroutine_origin_depth = sys.get_coroutine_origin_tracking_depth()
            sys.set_coroutine_origin_tracking_depth(DEBUG_STACK_DEPTH)
        else:
            assert self._coroutine_origin_depth is not None
            sys.set_coroutine_origin_tracking_depth(self._coroutine_origin_depth)
            self._coroutine_origin_depth = None

    # -- futures and tasks ---------------------------------------------------------

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(
        self,
        coro: Coroutine[Any, Any, _T] | Generator[Any, None, _T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[_T]:
        """Wrap a coroutine in a Task (or whatever the task factory makes)."""
        self._check_closed()
        if self._task_factory is None:
            task = asyncio.Task(coro, loop=self, name=name, context=context)
            if self._debug and task._source_traceback:  # type: ignore[attr-defined]
                # Where the task was made is the caller's line, not this one:
                # "Task was destroyed but it is pending" and the task's repr
                # point there (asyncio drops its own frame too).
                del task._source_traceback[-1]  # type: ignore[attr-defined]
            return task
        if context is None:
            task = self._task_factory(self, coro)
        else:
            task = self._task_factory(self, coro, context=context)
        if name is not None:
            task.set_name(name)
        return task  # type: ignore[no-any-return]

    def set_task_factory(self, factory: Any) -> None:
        """Use `factory(loop, coro, [context=])` to make tasks; None restores the default."""
        if factory is not None and not callable(factory):
            raise TypeError("task factory must be a callable or None")
        self._task_factory = factory

    def get_task_factory(self) -> Any:
        return self._task_factory

    # -- errors --------------------------------------------------------------------

    def get_exception_handler(self) -> _ExceptionHandler | None:
        return self._exception_handler

    def set_exception_handler(self, handler: _ExceptionHandler | None) -> None:
        """Route errors to `handler(loop, context)`; None restores the default."""
        if handler is not None and not callable(handler):
            raise TypeError(f"A callable object or None is expected, got {handler!r}")
        self._exception_handler = handler

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        """Log an error context to the `asyncio` logger, as the stdlib loop does:
        the message, the exception with its traceback, then every other key."""
        message = context.get("message") or "Unhandled exception in event loop"
        exception = context.get("exception")
        exc_info: Any = (
            (type(exception), exception, exception.__traceback__)
            if exception is not None
            else False
        )
        current = self._current_handle
        if "source_traceback" not in context and current is not None and current._source_traceback:
            context = dict(context, handle_traceback=current._source_traceback)
        lines = [message]
        for key in sorted(context):
            if key in ("message", "exception"):
                continue
            value = context[key]
            if key == "source_traceback":
                text = "".join(traceback.format_list(value)).rstrip()
                lines.append(f"{key}: Object created at (most recent call last):\n{text}")
            elif key == "handle_traceback":
                text = "".join(traceback.format_list(value)).rstrip()
                lines.append(f"{key}: Handle created at (most recent call last):\n{text}")
            else:
                lines.append(f"{key}: {value!r}")
        logger.error("\n".join(lines), exc_info=exc_info)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        """Report an error: to the handler set with `set_exception_handler`, run in
        the context of the task or handle involved, else to the default handler."""
        handler = self._exception_handler
        if handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error("Exception in default exception handler", exc_info=True)
            return
        try:
            source = context.get("task") or context.get("future") or context.get("handle")
            get_context = getattr(source, "get_context", None)
            ctx = get_context() if get_context is not None else None
            if isinstance(ctx, contextvars.Context):
                ctx.run(handler, self, context)
            else:
                handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler(
                    {
                        "message": "Unhandled error in exception handler",
                        "exception": exc,
                        "context": context,
                    }
                )
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error(
                    "Exception in default exception handler while handling an "
                    "unexpected error in custom exception handler",
                    exc_info=True,
                )

    # -- file descriptor readiness -------------------------------------------------

    @staticmethod
    def _fileno(fileobj: Any) -> int:
        if isinstance(fileobj, int):
            fd = fileobj
        else:
            try:
                fd = int(fileobj.fileno())
            except (AttributeError, TypeError, ValueError):
                raise ValueError(f"Invalid file object: {fileobj!r}") from None
        if fd < 0:
            raise ValueError(f"Invalid file descriptor: {fd}")
        return fd

    def _ensure_fd_no_transport(self, fd: int) -> None:
        """Refuse direct use of an fd that an open transport owns: a second
        reader would silently steal the transport's data."""
        transport = self._transports.get(fd)
        if transport is not None and not transport.is_closing():
            raise RuntimeError(f"File descriptor {fd!r} is used by transport {transport!r}")

    def _set_fd_handler(
        self, fd: int, slot: int, handle: Handle | None, fileobj: Any = None
    ) -> Handle | None:
        """Install (or with None, remove) the reader (slot 0) or writer (slot 1)
        of `fd`, keep the poller's interest in step, return the previous handle.
        `fileobj` is what add_reader()/add_writer() were given (None from
        inside the loop, which registers bare fds)."""
        entry = self._fds.get(fd)
        if entry is None:
            if handle is None:
                return None
            entry = [None, None, fileobj]
            entry[slot] = handle
            self._poller.register(fd, READ if slot == 0 else WRITE)
            self._fds[fd] = entry
            return None
        if fileobj is not None and fileobj is not entry[2]:
            old, entry[2] = entry[2], fileobj
            if old is not None and _fd_was_reused(old, fd):
                # The first object was closed without remove_reader() and its
                # number reused by this one: the poller dropped the closed
                # file, so register the new one afresh, or it would never be
                # reported (the stdlib loop hangs here).
                interest = _interest(entry)
                self._poller.unregister(fd, interest)
                self._poller.register(fd, interest)
        old_interest = _interest(entry)
        previous: Handle | None = entry[slot]
        entry[slot] = handle
        new_interest = _interest(entry)
        if new_interest == 0:
            del self._fds[fd]
            self._poller.unregister(fd, old_interest)
        elif new_interest != old_interest:
            self._poller.modify(fd, old_interest, new_interest)
        return previous

    def _add_reader(
        self, fd: int, callback: Callable[..., object], args: tuple[Any, ...]
    ) -> Handle:
        handle = Handle(callback, args, self, None)
        previous = self._set_fd_handler(fd, 0, handle)
        if previous is not None:
            previous.cancel()
        return handle

    def _add_writer(
        self, fd: int, callback: Callable[..., object], args: tuple[Any, ...]
    ) -> Handle:
        handle = Handle(callback, args, self, None)
        previous = self._set_fd_handler(fd, 1, handle)
        if previous is not None:
            previous.cancel()
        return handle

    def _remove_fd_handler(self, fd: int, slot: int) -> bool:
        if self._closed:
            return False
        previous = self._set_fd_handler(fd, slot, None)
        if previous is None:
            return False
        previous.cancel()
        return True

    def _registered_fd(self, fileobj: Any) -> int | None:
        """The fd a file object is registered under, for one whose fileno()
        no longer says (a socket closed while registered says -1): found by
        the object, as `selectors` does, so the registration can be removed
        and a new file given the same number can be watched. None if the loop
        is closed; ValueError if the object is not registered."""
        for fd, entry in self._fds.items():
            if entry[2] is fileobj:
                return fd
        if self._closed:
            return None
        raise ValueError(f"Invalid file object: {fileobj!r}")

    def add_reader(self, fd: Any, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> None:
        """Call `callback(*args)` whenever `fd` (an int or an object with
        `fileno()`) is readable; replaces a previous reader of the same fd."""
        self._check_closed()
        if self._debug:
            self._check_callback(callback, "add_reader")
        fileobj = fd
        fd = self._fileno(fd)
        self._ensure_fd_no_transport(fd)
        previous = self._set_fd_handler(fd, 0, Handle(callback, args, self, None), fileobj)
        if previous is not None:
            previous.cancel()

    def remove_reader(self, fd: Any) -> bool:
        """Stop watching `fd` for reading; True if a reader was removed. A
        file object closed since add_reader() is found by the object."""
        try:
            fd = self._fileno(fd)
        except ValueError:
            fd = self._registered_fd(fd)
            if fd is None:
                return False
        self._ensure_fd_no_transport(fd)
        return self._remove_fd_handler(fd, 0)

    def add_writer(self, fd: Any, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> None:
        """Call `callback(*args)` whenever `fd` is writable."""
        self._check_closed()
        if self._debug:
            self._check_callback(callback, "add_writer")
        fileobj = fd
        fd = self._fileno(fd)
        self._ensure_fd_no_transport(fd)
        previous = self._set_fd_handler(fd, 1, Handle(callback, args, self, None), fileobj)
        if previous is not None:
            previous.cancel()

    def remove_writer(self, fd: Any) -> bool:
        """Stop watching `fd` for writing; True if a writer was removed. A
        file object closed since add_writer() is found by the object."""
        try:
            fd = self._fileno(fd)
        except ValueError:
            fd = self._registered_fd(fd)
            if fd is None:
                return False
        self._ensure_fd_no_transport(fd)
        return self._remove_fd_handler(fd, 1)

    # -- threads ---------------------------------------------------------------------

    def run_in_executor(
        self,
        executor: concurrent.futures.Executor | None,
        func: Callable[[Unpack[_Ts]], _T],
        *args: *_Ts,
    ) -> asyncio.Future[_T]:
        """Run `func(*args)` in `executor` (default: a thread pool); await the result."""
        self._check_closed()
        if self._debug:
            self._check_callback(func, "run_in_executor")
        if executor is None:
            executor = self._default_executor
            if executor is None:
                if self._executor_shutdown_called:
                    raise RuntimeError("Executor shutdown has been called")
                executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="treadle")
                self._default_executor = executor
        return asyncio.wrap_future(executor.submit(func, *args), loop=self)

    def set_default_executor(self, executor: Any) -> None:
        """Use `executor` (a ThreadPoolExecutor) for `run_in_executor(None, ...)`."""
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError("executor must be ThreadPoolExecutor")
        self._default_executor = executor

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        """Wait for the default executor's threads to finish (at most `timeout`
        seconds), without blocking the loop; later `run_in_executor` calls fail."""
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is None:
            return
        done = self.create_future()
        thread = threading.Thread(target=self._join_executor, args=(executor, done))
        thread.start()
        try:
            async with asyncio.timeout(timeout):
                await done
        except TimeoutError:
            warnings.warn(
                f"The executor did not finishing joining its threads within {timeout} seconds.",
                RuntimeWarning,
                stacklevel=2,
            )
            executor.shutdown(wait=False)
        else:
            thread.join()

    def _join_executor(
        self, executor: concurrent.futures.ThreadPoolExecutor, done: asyncio.Future[None]
    ) -> None:
        try:
            executor.shutdown(wait=True)
        except Exception as exc:
            if not self._closed and not done.cancelled():
                self.call_soon_threadsafe(done.set_exception, exc)
        else:
            if not self._closed:
                self.call_soon_threadsafe(_set_result_unless_cancelled, done)

    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[Any, ...]]:
        """`socket.getaddrinfo` in the default executor."""
        return await self.run_in_executor(
            None, socket.getaddrinfo, host, port, family, type, proto, flags
        )

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
        """`socket.getnameinfo` in the default executor."""
        return await self.run_in_executor(None, socket.getnameinfo, sockaddr, flags)

    # -- asynchronous generators -------------------------------------------------------

    def _asyncgen_firstiter_hook(self, agen: Any) -> None:
        if self._asyncgens_shutdown_called:
            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                "loop.shutdown_asyncgens() call",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )
        self._asyncgens.add(agen)

    def _asyncgen_finalizer_hook(self, agen: Any) -> None:
        # Called by the garbage collector, possibly from another thread.
        self._asyncgens.discard(agen)
        if not self._closed:
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    async def shutdown_asyncgens(self) -> None:
        """Close every asynchronous generator still open on this loop."""
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        closing = list(self._asyncgens)
        self._asyncgens.clear()
        results = await asyncio.gather(*[ag.aclose() for ag in closing], return_exceptions=True)
        for result, agen in zip(results, closing, strict=True):
            if isinstance(result, Exception):
                self.call_exception_handler(
                    {
                        "message": f"an error occurred during closing of "
                        f"asynchronous generator {agen!r}",
                        "exception": result,
                        "asyncgen": agen,
                    }
                )
