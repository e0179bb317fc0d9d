"""Entry points: make a Treadle loop, run a coroutine on one, or make asyncio use them.

The recommended ways are `treadle.run(main())` and
`asyncio.Runner(loop_factory=treadle.new_event_loop)`: both name the loop
explicitly. `install()` sets an event loop policy, which Python 3.14 deprecates
(removal is planned for 3.16); it remains for code that calls `asyncio.run` or
`asyncio.get_event_loop()` and cannot be changed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from .loop import EventLoop

__all__ = ["EventLoopPolicy", "install", "new_event_loop", "run"]

_T = TypeVar("_T")


def new_event_loop() -> EventLoop:
    """Return a new Treadle event loop."""
    return EventLoop()


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """Run the coroutine `main` on a new Treadle loop and return its result.

    What `asyncio.run` does: cancels the tasks left over, finalizes asynchronous
    generators, shuts the default executor down and closes the loop.
    """
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """An event loop policy whose loops are Treadle loops.

    Unlike the stdlib policy on Python 3.12+, `get_event_loop()` in the main
    thread makes and sets a loop when there is none without a
    DeprecationWarning, as Python 3.11 and older did; old code relies on it.
    """

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return new_event_loop()

    def get_event_loop(self) -> asyncio.AbstractEventLoop:
        # `_local` (with `_loop` and `_set_called`) is the base class's per-thread
        # state; asyncio resets it in a forked child, so we keep using it.
        local = self._local  # type: ignore[attr-defined]
        if (
            local._loop is None
            and not local._set_called
            and threading.current_thread() is threading.main_thread()
        ):
            self.set_event_loop(self.new_event_loop())
        if local._loop is None:
            raise RuntimeError(
                f"There is no current event loop in thread {threading.current_thread().name!r}."
            )
        return local._loop  # type: ignore[no-any-return]


def install() -> None:
    """Make asyncio use Treadle loops: `asyncio.run`, `asyncio.new_event_loop`
    and `asyncio.get_event_loop` then give `treadle.EventLoop` instances.

    This sets an event loop policy; Python 3.14 deprecates policies (removal
    planned for 3.16). Prefer `treadle.run(main())` or
    `asyncio.Runner(loop_factory=treadle.new_event_loop)`.
    """
    asyncio.set_event_loop_policy(EventLoopPolicy())
