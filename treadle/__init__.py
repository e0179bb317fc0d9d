"""Treadle: an asynchronous IO system for Python.

- `treadle.run(main())` runs a coroutine on Treadle's own event loop;
  `asyncio.Runner(loop_factory=treadle.new_event_loop)` does the same through
  asyncio. `treadle.EventLoop` implements `asyncio.AbstractEventLoop`, so asyncio
  programs and libraries run on it unchanged.
- `import treadle as asyncio` runs code written for the asyncio of 2015-2019:
  `@asyncio.coroutine` with `yield from`, `asyncio.get_event_loop()`,
  `asyncio.wait([coroutines])`. Every public name of asyncio is available here.
"""

from __future__ import annotations

import asyncio as _asyncio
from asyncio import (
    ALL_COMPLETED as ALL_COMPLETED,
    FIRST_COMPLETED as FIRST_COMPLETED,
    FIRST_EXCEPTION as FIRST_EXCEPTION,
    AbstractEventLoop as AbstractEventLoop,
    AbstractServer as AbstractServer,
    Barrier as Barrier,
    BaseProtocol as BaseProtocol,
    BaseTransport as BaseTransport,
    BoundedSemaphore as BoundedSemaphore,
    BufferedProtocol as BufferedProtocol,
    CancelledError as CancelledError,
    Condition as Condition,
    DatagramProtocol as DatagramProtocol,
    DatagramTransport as DatagramTransport,
    Event as Event,
    Future as Future,
    Handle as Handle,
    IncompleteReadError as IncompleteReadError,
    InvalidStateError as InvalidStateError,
    LifoQueue as LifoQueue,
    LimitOverrunError as LimitOverrunError,
    Lock as Lock,
    PriorityQueue as PriorityQueue,
    Protocol as Protocol,
    Queue as Queue,
    QueueEmpty as QueueEmpty,
    QueueFull as QueueFull,
    ReadTransport as ReadTransport,
    Runner as Runner,
    Semaphore as Semaphore,
    Server as Server,
    StreamReader as StreamReader,
    StreamWriter as StreamWriter,
    SubprocessProtocol as SubprocessProtocol,
    SubprocessTransport as SubprocessTransport,
    Task as Task,
    TaskGroup as TaskGroup,
    TimeoutError as TimeoutError,
    TimerHandle as TimerHandle,
    Transport as Transport,
    WriteTransport as WriteTransport,
    all_tasks as all_tasks,
    as_completed as as_completed,
    create_subprocess_exec as create_subprocess_exec,
    create_subprocess_shell as create_subprocess_shell,
    create_task as create_task,
    current_task as current_task,
    ensure_future as ensure_future,
    gather as gather,
    get_event_loop_policy as get_event_loop_policy,
    get_running_loop as get_running_loop,
    iscoroutine as iscoroutine,
    iscoroutinefunction as iscoroutinefunction,
    isfuture as isfuture,
    open_connection as open_connection,
    open_unix_connection as open_unix_connection,
    run_coroutine_threadsafe as run_coroutine_threadsafe,
    set_event_loop as set_event_loop,
    set_event_loop_policy as set_event_loop_policy,
    shield as shield,
    sleep as sleep,
    start_server as start_server,
    start_unix_server as start_unix_server,
    timeout as timeout,
    timeout_at as timeout_at,
    to_thread as to_thread,
    wait_for as wait_for,
    wrap_future as wrap_future,
)
from typing import Any as _Any

from .compat import (
    coroutine as coroutine,
    get_event_loop as get_event_loop,
    wait as wait,
)
from .loop import EventLoop as EventLoop
from .runners import (
    EventLoopPolicy as EventLoopPolicy,
    install as install,
    new_event_loop as new_event_loop,
    run as run,
)

__version__ = "0.1.0"

_OWN = [
    "run_server",
    "EventLoop",
    "EventLoopPolicy",
    "coroutine",
    "get_event_loop",
    "install",
    "new_event_loop",
    "run",
    "wait",
]

# Python 3.11 leaves TaskGroup out of asyncio.__all__; it is public all the same.
__all__ = sorted(set(_OWN) | {"TaskGroup"} | {n for n in _asyncio.__all__ if not n.startswith("_")})


def run_server(app: _Any, **options: _Any) -> int:
    """Serve a `web.Application`, an ASGI 3 app or (with `interface="wsgi"`) a
    WSGI app as `treadle run` does, until SIGINT or SIGTERM: the
    programmatic entry point (`uvicorn.run`'s counterpart). See
    `treadle.workers.run_server` for the options."""
    from .workers import run_server as _run_server

    return _run_server(app, **options)


def __getattr__(name: str) -> _Any:
    # The rest of asyncio's public names (they vary by Python version).
    if name in _asyncio.__all__ and not name.startswith("_"):
        return getattr(_asyncio, name)
    raise AttributeError(f"module 'treadle' has no attribute {name!r}")
