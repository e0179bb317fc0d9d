"""The asyncio of 2015-2019 on Python 3.11+: `@coroutine`, `get_event_loop()`, `wait()`.

Code of that era looks like this (the seed's programs 2 and 3)::

    @asyncio.coroutine
    def hello():
        yield from asyncio.sleep(1)

    loop = asyncio.get_event_loop()
    loop.run_until_complete(asyncio.wait([hello(), hello()]))

Python 3.11 removed `asyncio.coroutine`, made `asyncio.wait` refuse bare
coroutines, and 3.12+ warns when `get_event_loop()` has to make a loop. With
`import treadle as asyncio` all of it runs again, on a Treadle loop.

How `@coroutine` works: the generator function is flagged as an *iterable
coroutine* (what `types.coroutine` does), which lets `yield from` delegate to
native coroutines as well as futures and tasks; it is then wrapped in an
`async def`, so what it returns is a real coroutine object that every modern
API (`create_task`, `gather`, `Runner`, `TaskGroup`) accepts.

One rule of the language stays: `yield from x` needs `x` to be a coroutine, a
generator, or iterable. Futures, tasks and everything asyncio returns qualify;
a third-party object that defines only `__await__` does not, so wrap it:
`yield from treadle.ensure_future(obj)`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import types
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

from .runners import new_event_loop

__all__ = ["coroutine", "get_event_loop", "wait"]

_T = TypeVar("_T")


def coroutine(func: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
    """Decorate a generator function (or a plain one) as a coroutine function.

    Inside it, `yield from` works on coroutines, futures and tasks; calling it
    returns a native coroutine. An `async def` function is returned unchanged.
    """
    if inspect.iscoroutinefunction(func):
        return func
    if not callable(func):
        raise TypeError(f"coroutine() expects a function, got {func!r}")
    body: Callable[..., Any] = types.coroutine(func) if inspect.isgeneratorfunction(func) else func

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = body(*args, **kwargs)
        # A plain function decorated with @coroutine may return an awaitable or
        # a value; the old decorator allowed both.
        if inspect.isawaitable(result):
            return await result
        return result

    return wrapper


def get_event_loop() -> asyncio.AbstractEventLoop:
    """Return the running loop, else this thread's current loop; in the main
    thread, make a Treadle loop and set it as current if there is none.

    No DeprecationWarning, unlike `asyncio.get_event_loop()` on Python 3.12+:
    code written for the old API calls this at module level.
    """
    running = asyncio.events._get_running_loop()
    if running is not None:
        return running
    policy = asyncio.get_event_loop_policy()
    # The stdlib policy, or Treadle's (its subclass): look at its current loop
    # without letting it make one (it would warn, and the stdlib's would make
    # a stdlib loop).
    current = getattr(getattr(policy, "_local", None), "_loop", False)
    if current is None:
        if threading.current_thread() is threading.main_thread():
            loop = new_event_loop()
            policy.set_event_loop(loop)
            return loop
        raise RuntimeError(
            f"There is no current event loop in thread {threading.current_thread().name!r}."
        )
    if isinstance(current, asyncio.AbstractEventLoop):
        return current
    # A policy we know nothing about: ask it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return policy.get_event_loop()


async def wait(
    fs: Iterable[Awaitable[_T]],
    *,
    loop: object = None,
    timeout: float | None = None,
    return_when: str = asyncio.ALL_COMPLETED,
) -> tuple[set[asyncio.Future[_T]], set[asyncio.Future[_T]]]:
    """`asyncio.wait` that also takes coroutines, as it did before Python 3.11:
    each is wrapped in a task first. Returns `(done, pending)` sets of futures.

    `loop` is accepted for old code and ignored: the running loop is used.
    """
    running = asyncio.get_running_loop()
    futures = {asyncio.ensure_future(f, loop=running) for f in set(fs)}
    return await asyncio.wait(futures, timeout=timeout, return_when=return_when)
