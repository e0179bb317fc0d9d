"""Starting request handlers eagerly: the first step runs inside `data_received`.

A Task per request is the largest single cost a server adds (ARCHITECTURE.md),
and most handlers finish without ever suspending. So a handler's first step
runs at once, where its request was parsed, while `asyncio.current_task()`
names a real, live Task (so `asyncio.timeout()`, `TaskGroup` and friends work
in handlers), and only a handler that suspends costs a loop iteration.

`handler_starter(loop)` gives each connection one of two starters; both have
`start(coro)`, which returns None when the handler returned, the exception when
it raised (a `CancelledError` when it was cancelled), or, when it suspended, a
Future settled when it ends, whose `cancel()` cancels the handler.

- **Python 3.12+: `EagerTaskStarter`**, an `asyncio.Task` per request made with
  `eager_start=True`. A task that finishes in its first step is never
  scheduled nor put in the weak set of all tasks, so this costs about 0.4 us
  over calling the coroutine by hand.
- **Python 3.11: `HostTaskStarter`**, one long-lived host Task per connection
  (the model aiohttp uses). 3.11's Task cannot start eagerly, and making one per
  request cost 1.2 us over the bare coroutine, a tenth of a whole hello request
  (weak set registration and a scheduled first step, all of which 3.12 skips).
  The host is entered as the current task while the handler's first step runs
  here; if the handler suspends, the host takes it over and drives it to its
  end, so whatever captured `current_task()` in that first step (a timeout, a
  TaskGroup) holds the task that runs the rest. Each request still runs in a
  context of its own (a copy, as a Task would take), so context variables do not
  leak from one request to the next on a connection. What differs from a Task
  per request: `current_task()` is the same object for the requests of a
  connection (until a cancellation retires it), a handler that cancels its own
  task and returns anyway is not counted as cancelled, and an idle keep-alive
  connection has a pending task (its host) in `asyncio.all_tasks()`.

The host is not a generator but an object with `send()` and `throw()` (the
coroutine protocol a Task drives), so a cancellation that reaches it before
its first step still finds the handler it must go to. A handler's first step
runs outside the host's own steps, so `start()` does at once what a Task's
step does with an awaited future (takes its blocking flag, so that others may
await it in the same iteration) and the host gives it back when it takes over.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine, Generator
from typing import Any, Final, Union

__all__ = ["EagerTaskStarter", "HostTaskStarter", "Started", "handler_starter"]

# Private in asyncio, public in effect: how a Task marks itself current.
_enter_task: Final = asyncio.tasks._enter_task
_leave_task: Final = asyncio.tasks._leave_task
_current_tasks: Final[dict[Any, Any]] = asyncio.tasks._current_tasks  # type: ignore[attr-defined]
_copy_context: Final = contextvars.copy_context

#: What `start()` returns: None (returned), the exception (raised or
#: cancelled), or a Future for a handler still running.
Started = Union[None, BaseException, "asyncio.Future[None]"]

_NOT_STARTED: Final = object()  # a handed-over coroutine that has not run yet


def handler_starter(loop: asyncio.AbstractEventLoop) -> EagerTaskStarter | HostTaskStarter:
    """The starter for one connection's handlers on `loop`."""
    if sys.version_info >= (3, 12):
        return EagerTaskStarter(loop)
    else:
        return HostTaskStarter(loop)


class EagerTaskStarter:
    """An eager Task per handler (Python 3.12+)."""

    __slots__ = ("_loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def start(self, coro: Coroutine[Any, Any, None]) -> Started:
        """Run `coro`'s first step now; see the module docstring for the result."""
        task: asyncio.Task[None] = asyncio.Task(  # type: ignore[call-arg,unused-ignore]
            coro, loop=self._loop, eager_start=True
        )
        if not task.done():
            return task
        if task.cancelled():
            return asyncio.CancelledError()
        return task.exception()

    def close(self) -> None:
        """Nothing to release: each task ends with its handler."""


class HandlerRun(asyncio.Future[None]):
    """A handler that suspended under a host task: done when the handler ends;
    `cancel()` cancels the handler, as `Task.cancel()` would."""

    # Made as `HandlerRun(loop=loop)` (Future's own __init__), then given its host.
    _host: asyncio.Task[None]

    def cancel(self, msg: Any = None) -> bool:
        if self.done():
            return False
        # The host drives this handler or has it queued: either way the
        # CancelledError reaches the handler (see HostTaskStarter.throw).
        return self._host.cancel(msg)

    def _settle(self, exc: BaseException | None) -> None:
        if exc is None:
            self.set_result(None)
        elif isinstance(exc, asyncio.CancelledError):
            super().cancel(exc.args[0] if exc.args else None)
        else:
            self.set_exception(exc)


class HostTaskStarter:
    """One host Task per connection runs its handlers (Python 3.11).

    The starter is also the host task's coroutine: the Task calls `send()` and
    `throw()`, which resume the handler being driven or park on a future until
    the next handler that suspends is handed over.

    A host that was cancelled is retired rather than reused, and `start()`
    makes a new one: a cancellation meant for one handler must not reach the
    next, and a host cancelled by the loop's shutdown must end, not park. So a
    host is retired when a handler ends while the host has a cancellation
    counted or pending (one the handler swallowed, or a handler that cancelled
    its own task and returned); an idle host that is cancelled simply ends.
    """

    __slots__ = ("_closed", "_coro", "_ctx", "_host", "_loop", "_run", "_wake", "_work")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._host: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None  # what the idle host waits on
        # Handed over, not yet taken: the coroutine, its context, what it
        # yielded, its run, and whether the yielded future's blocking flag was
        # taken (as a Task's step takes it, so that others may await it too).
        self._work: (
            tuple[Coroutine[Any, Any, None], contextvars.Context, Any, HandlerRun, bool] | None
        ) = None
        # Being driven by the host: the handler, its context and its run.
        self._coro: Coroutine[Any, Any, None] | None = None
        self._ctx: contextvars.Context | None = None
        self._run: HandlerRun | None = None
        self._closed = False

    # -- the server's side --------------------------------------------------------------

    def start(self, coro: Coroutine[Any, Any, None]) -> Started:
        """Run `coro`'s first step now; see the module docstring for the result."""
        if self._closed:
            coro.close()
            raise RuntimeError("the connection's handler starter is closed")
        if self._work is not None:
            coro.close()
            raise RuntimeError("one handler at a time: the last one was not taken over yet")
        loop = self._loop
        host = self._host
        wake = self._wake
        if (
            host is None
            or host.done()
            # A cancellation is pending: a parked host has its wake future
            # cancelled, one not started yet has _must_cancel. It was meant for
            # an earlier handler (or it is a stray one): this host is retired.
            or (wake.cancelled() if wake is not None else host._must_cancel)  # type: ignore[attr-defined]
        ):
            host = self._new_host()
        ctx = _copy_context()
        if _current_tasks.get(loop) is None:
            _enter_task(loop, host)
            try:
                yielded = ctx.run(coro.send, None)
            except StopIteration:
                return None
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                return exc
            finally:
                _leave_task(loop, host)
            # Suspended. A cancellation of the host now is this handler's.
            blocking = getattr(yielded, "_asyncio_future_blocking", False) is True
            if blocking:
                yielded._asyncio_future_blocking = False
        else:
            # Called from inside a task (not from a transport's callback): the
            # host runs the handler from its start.
            yielded = _NOT_STARTED
            blocking = False
        run = HandlerRun(loop=loop)
        run._host = host
        self._work = (coro, ctx, yielded, run, blocking)
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)
        return run

    def close(self) -> None:
        """The connection is gone: the host ends once its handler (if any) has.
        (Also the coroutine protocol's `close()`.)"""
        self._closed = True
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _new_host(self) -> asyncio.Task[None]:
        self._wake = None  # the last host's, if any: it ends on its own
        host = self._host = self._loop.create_task(self)
        host.add_done_callback(self._host_done)
        return host

    def _host_done(self, host: asyncio.Task[None]) -> None:
        if host.cancelled() or host is not self._host:
            return  # cancelled while idle, or retired: it left nothing behind
        exc = host.exception()
        if exc is None or isinstance(exc, (KeyboardInterrupt, SystemExit)):
            return  # ended, or an interrupt that went on to the loop (and to its run)
        # A bug in the host itself: fail what it was running rather than leave
        # the server waiting on it forever, and have the loop report it.
        for run in (self._run, self._work[3] if self._work is not None else None):
            if run is not None and not run.done():
                run.set_exception(exc)
        self._coro = self._ctx = self._run = self._work = None
        self._loop.call_exception_handler(
            {"message": "request handler host failed", "exception": exc, "task": host}
        )

    # -- the host task's coroutine --------------------------------------------------------

    def send(self, value: Any) -> Any:
        """The host task resumes: step the handler it drives, or take the next."""
        if self._coro is not None:
            return self._step(None)
        return self._take()

    def throw(self, exc: Any, *args: Any) -> Any:
        """A cancellation (or a bad-yield error) reaches the host: it belongs to
        the handler being driven, or queued; with none, the host ends."""
        if not isinstance(exc, BaseException):  # the old (type, value, tb) form
            exc = exc(*args[:1])
        if _current_tasks.get(self._loop) is not self._host:
            raise exc  # a retired host
        if self._coro is None and self._work is not None:
            coro, yielded, blocking = self._adopt()
            if yielded is _NOT_STARTED:
                coro.close()  # cancelled before it ran: it never starts
                return self._ended(exc)
            if (
                blocking
                and isinstance(exc, asyncio.CancelledError)
                and yielded.cancel(exc.args[0] if exc.args else None)
            ):
                # What Task.cancel() does with the future awaited: cancel it,
                # then wait for it to end (a task or gather() may take a while
                # to, or refuse), and resume the handler with its outcome.
                yielded._asyncio_future_blocking = True
                return yielded
        if self._coro is not None:
            return self._step(exc)
        raise exc  # idle: a stray cancellation, or the loop shutting down

    def _step(self, exc: BaseException | None) -> Any:
        coro = self._coro
        ctx = self._ctx
        assert coro is not None and ctx is not None
        try:
            if exc is None:
                return ctx.run(coro.send, None)
            return ctx.run(coro.throw, exc)
        except StopIteration:
            return self._ended(None)
        except (KeyboardInterrupt, SystemExit) as error:
            self._ended(error, reraise=True)
            raise
        except BaseException as error:
            return self._ended(error)

    def _ended(self, exc: BaseException | None, *, reraise: bool = False) -> Any:
        """The driven handler ended with `exc`: settle its run, then go on
        (or, retired, end the host)."""
        run = self._run
        assert run is not None
        self._coro = self._ctx = self._run = None
        host = self._host
        run._settle(exc)
        if reraise:
            return None
        if host is not None and (host.cancelling() or host._must_cancel):  # type: ignore[attr-defined]
            self._host = None
            if self._work is not None:  # handed over meanwhile: a new host takes it
                self._work[3]._host = self._new_host()
            raise StopIteration
        return self._take()

    def _adopt(self) -> tuple[Coroutine[Any, Any, None], Any, bool]:
        """Make the handed-over handler the one driven; it, what it yielded,
        and whether that future's blocking flag was taken."""
        assert self._work is not None
        coro, ctx, yielded, run, blocking = self._work
        self._work = None
        self._coro, self._ctx, self._run = coro, ctx, run
        run._host = self._host  # type: ignore[assignment]  # (changed if retired meanwhile)
        return coro, yielded, blocking

    def _take(self) -> Any:
        """Start driving the handed-over handler, or park until there is one."""
        if self._work is not None:
            _, yielded, blocking = self._adopt()
            if yielded is _NOT_STARTED:
                return self._step(None)
            if blocking:
                yielded._asyncio_future_blocking = True  # the Task's step takes it back
            return yielded  # the host waits on what the handler waits on
        if self._closed:
            raise StopIteration
        wake = self._wake = self._loop.create_future()
        wake._asyncio_future_blocking = True  # as `await wake` would mark it
        return wake

    def __await__(self) -> Generator[Any, None, None]:
        return self  # type: ignore[return-value,unused-ignore]

    def __next__(self) -> Any:
        return self.send(None)
