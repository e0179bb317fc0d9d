"""Entry points: make a Treadle loop, run a coroutine on one, or make asyncio use them.

The recommended ways are `treadle.run(main())` and
`asyncio.Runner(loop_factory=treadle.new_event_loop)`: both name the loop
explicitly. `install()` sets an event loop policy, which Python 3.14 deprecates
(removal is planned for 3.16); it remains for code that calls `asyncio.run` or
`asyncio.get_event_loop()` and cannot be changed.
"""

from __future__ import annotations

import asyncio
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

    Everything else is the stdlib policy's, version for version: on Python
    3.12 and 3.13 its `get_event_loop()` warns when it has to make a loop, as
    asyncio's does (a drop-in policy must not hide what asyncio reports). Old
    code that calls `get_event_loop()` at module level uses
    `treadle.get_event_loop()`, which never warns.
    """

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return new_event_loop()


def install() -> None:
    """Make asyncio use Treadle loops: `asyncio.run`, `asyncio.new_event_loop`
    and `asyncio.get_event_loop` then give `treadle.EventLoop` instances.

    This sets an event loop policy; Python 3.14 deprecates policies (removal
    planned for 3.16). Prefer `treadle.run(main())` or
    `asyncio.Runner(loop_factory=treadle.new_event_loop)`.
    """
    asyncio.set_event_loop_policy(EventLoopPolicy())
