"""Fixtures shared by every test.

`loop` is parametrized: each test that takes it runs once on Treadle's loop and
once on the stdlib loop, so parity is shown, not assumed. Like uvloop's test
base, the fixture fails any test during which the loop's exception handler was
called, unless the test is marked `expect_loop_errors` (it then reads what was
reported from `loop_errors`).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

import treadle

T = TypeVar("T")

LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "treadle": treadle.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def loop_kind(request: pytest.FixtureRequest) -> str:
    """'treadle' or 'asyncio': which loop this run of the test uses."""
    return str(request.param)


@pytest.fixture
def loop_errors() -> list[dict[str, Any]]:
    """The contexts passed to the loop's exception handler during the test."""
    return []


def _finish(loop: asyncio.AbstractEventLoop) -> None:
    """What asyncio.run does on the way out: cancel leftovers, close asyncgens,
    join the executor, close the loop."""
    try:
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def make_loop(kind: str, errors: list[dict[str, Any]]) -> asyncio.AbstractEventLoop:
    loop = LOOP_FACTORIES[kind]()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    return loop


@pytest.fixture
def loop(
    loop_kind: str, loop_errors: list[dict[str, Any]], request: pytest.FixtureRequest
) -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh loop of the parametrized kind, closed and checked after the test."""
    the_loop = make_loop(loop_kind, loop_errors)
    try:
        yield the_loop
    finally:
        _finish(the_loop)
        gc.collect()  # surface "never retrieved" errors of this test, here
    if loop_errors and request.node.get_closest_marker("expect_loop_errors") is None:
        messages = [str(c.get("message")) + ": " + repr(c.get("exception")) for c in loop_errors]
        pytest.fail("the loop's exception handler was called: " + "; ".join(messages))


@pytest.fixture
def treadle_loop(
    loop_errors: list[dict[str, Any]], request: pytest.FixtureRequest
) -> Iterator[treadle.EventLoop]:
    """A Treadle loop only, for tests of Treadle's own internals and extras."""
    the_loop = make_loop("treadle", loop_errors)
    assert isinstance(the_loop, treadle.EventLoop)
    try:
        yield the_loop
    finally:
        _finish(the_loop)
        gc.collect()
    if loop_errors and request.node.get_closest_marker("expect_loop_errors") is None:
        pytest.fail(f"the loop's exception handler was called: {loop_errors!r}")


def run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
    """Run `coro` on `loop`, failing (not hanging) if it takes absurdly long."""
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))
