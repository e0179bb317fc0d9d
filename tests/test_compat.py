"""The seed-era API and the entry points: coroutine, get_event_loop, wait, run, install."""

from __future__ import annotations

import asyncio
import sys
import threading
import warnings
from collections.abc import Generator, Iterator
from typing import Any

import pytest

import treadle
from tests.conftest import run


@pytest.fixture
def clean_policy() -> Iterator[None]:
    """Tests that touch the global policy or current loop restore both."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = asyncio.get_event_loop_policy()
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        current = asyncio.get_event_loop_policy()
        local = getattr(current, "_local", None)
        loop = getattr(local, "_loop", None)
        if loop is not None and not loop.is_closed():
            loop.close()
        asyncio.set_event_loop_policy(policy)
        asyncio.set_event_loop(None)


@treadle.coroutine
def old_style_add(a: int, b: int) -> Generator[Any, None, int]:
    yield from asyncio.sleep(0)
    return a + b


def test_coroutine_decorator_makes_native_coroutines(loop: asyncio.AbstractEventLoop) -> None:
    coro = old_style_add(1, 2)
    assert asyncio.iscoroutine(coro)
    assert asyncio.iscoroutinefunction(old_style_add)
    assert loop.run_until_complete(coro) == 3
    assert loop.run_until_complete(loop.create_task(old_style_add(2, 2))) == 4


def test_yield_from_every_kind_of_awaitable(loop: asyncio.AbstractEventLoop) -> None:
    @treadle.coroutine
    def inner() -> Generator[Any, None, str]:
        yield from asyncio.sleep(0)
        return "inner"

    async def native() -> str:
        await asyncio.sleep(0)
        return "native"

    @treadle.coroutine
    def outer() -> Generator[Any, None, list[Any]]:
        results: list[Any] = []
        results.append((yield from native()))  # a native coroutine
        results.append((yield from inner()))  # another old-style coroutine
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(fut.set_result, "future")
        results.append((yield from fut))  # a future
        results.append((yield from asyncio.ensure_future(native())))  # a task
        results.append((yield from asyncio.gather(native(), inner())))  # gather's future
        results.append((yield from asyncio.wait_for(native(), 5)))
        yield  # a bare yield: give the loop one turn, as old code did
        return results

    assert loop.run_until_complete(outer()) == [
        "native",
        "inner",
        "future",
        "native",
        ["native", "inner"],
        "native",
    ]


def test_await_an_old_style_coroutine_from_async_def(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> list[int]:
        one = await old_style_add(1, 1)
        both = await asyncio.gather(old_style_add(1, 2), old_style_add(2, 2))
        return [one, *both]

    assert run(loop, main()) == [2, 3, 4]


def test_coroutine_on_plain_functions_and_async_defs(loop: asyncio.AbstractEventLoop) -> None:
    @treadle.coroutine
    def plain() -> int:
        return 7

    async def already() -> int:
        return 8

    assert treadle.coroutine(already) is already
    assert loop.run_until_complete(plain()) == 7
    with pytest.raises(TypeError, match="expects a function"):
        treadle.coroutine(42)  # type: ignore[arg-type]


def test_exceptions_and_cancellation_pass_through(loop: asyncio.AbstractEventLoop) -> None:
    cleaned: list[str] = []

    @treadle.coroutine
    def failing() -> Generator[Any, None, None]:
        yield from asyncio.sleep(0)
        raise KeyError("old style")

    @treadle.coroutine
    def forever() -> Generator[Any, None, None]:
        try:
            yield from asyncio.sleep(3600)
        finally:
            cleaned.append("finally ran")

    async def main() -> None:
        with pytest.raises(KeyError):
            await failing()
        task = asyncio.ensure_future(forever())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(loop, main())
    assert cleaned == ["finally ran"]


def test_wait_accepts_bare_coroutines(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        done, pending = await treadle.wait([old_style_add(1, 1), old_style_add(2, 2)])
        assert pending == set()
        assert sorted(t.result() for t in done) == [2, 4]
        done, pending = await treadle.wait(
            [asyncio.sleep(0, "fast"), asyncio.sleep(10)],
            return_when=asyncio.FIRST_COMPLETED,
            loop=asyncio.get_running_loop(),
        )
        assert [t.result() for t in done] == ["fast"]
        for t in pending:
            t.cancel()

    run(loop, main())


def test_get_event_loop_makes_a_treadle_loop_without_warning(clean_policy: None) -> None:
    asyncio.set_event_loop(None)
    policy = asyncio.get_event_loop_policy()
    if hasattr(policy, "_local"):
        policy._local._set_called = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loop = treadle.get_event_loop()
        assert isinstance(loop, treadle.EventLoop)
        assert treadle.get_event_loop() is loop
        # asyncio's own functions see it as the current loop.
        assert asyncio.get_event_loop() is loop
        gathered = asyncio.gather(old_style_add(1, 1))
    assert loop.run_until_complete(gathered) == [2]
    loop.close()


def test_get_event_loop_returns_the_running_loop(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> asyncio.AbstractEventLoop:
        return treadle.get_event_loop()

    assert run(loop, main()) is loop


def test_get_event_loop_in_a_thread_without_a_loop(clean_policy: None) -> None:
    errors: list[BaseException] = []

    def other() -> None:
        try:
            treadle.get_event_loop()
        except RuntimeError as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errors) == 1
    assert "no current event loop" in str(errors[0])


def test_run_runs_on_treadle() -> None:
    async def main() -> type:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop())

    assert treadle.run(main()) is treadle.EventLoop
    assert treadle.run(main(), debug=True) is treadle.EventLoop


def test_runner_with_loop_factory() -> None:
    async def main() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    with asyncio.Runner(loop_factory=treadle.new_event_loop) as runner:
        assert isinstance(runner.run(main()), treadle.EventLoop)


def test_install_makes_asyncio_use_treadle(clean_policy: None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # policies, on 3.14+
        treadle.install()
        assert isinstance(asyncio.get_event_loop_policy(), treadle.EventLoopPolicy)
    with warnings.catch_warnings():
        # treadle.get_event_loop() never warns; asyncio's then finds its loop.
        warnings.simplefilter("error")
        current = treadle.get_event_loop()
        assert asyncio.get_event_loop() is current
    assert isinstance(current, treadle.EventLoop)
    current.close()

    async def main() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    assert isinstance(asyncio.run(main()), treadle.EventLoop)
    new = asyncio.new_event_loop()
    assert isinstance(new, treadle.EventLoop)
    new.close()


def test_the_policy_makes_a_loop_exactly_when_and_how_the_stdlib_policy_does(
    clean_policy: None,
) -> None:
    """Same outcome (a loop, or RuntimeError) and the same warnings as asyncio's
    own policy on this Python, only with a Treadle loop."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # policies, on 3.14+
        policies = [asyncio.DefaultEventLoopPolicy(), treadle.EventLoopPolicy()]
    outcomes = []
    for policy in policies:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            try:
                loop = policy.get_event_loop()
            except RuntimeError:
                outcome = "no loop"
            else:
                outcome = "loop"
                assert policy.get_event_loop() is loop
                assert isinstance(loop, treadle.EventLoop) == (policy is policies[1])
                loop.close()
        outcomes.append((outcome, [w.category for w in seen]))
    assert outcomes[0] == outcomes[1]


def test_asyncio_names_are_reexported() -> None:
    for name in (
        "sleep",
        "gather",
        "wait_for",
        "timeout",
        "TaskGroup",
        "Queue",
        "Lock",
        "Event",
        "Semaphore",
        "create_task",
        "ensure_future",
        "shield",
        "as_completed",
        "CancelledError",
        "TimeoutError",
        "Protocol",
        "start_server",
        "open_connection",
        "Runner",
    ):
        assert getattr(treadle, name) is getattr(asyncio, name), name
    for name in asyncio.__all__:
        if not name.startswith("_"):
            assert hasattr(treadle, name), name
            assert name in treadle.__all__
    with pytest.raises(AttributeError):
        treadle.no_such_name  # noqa: B018
    assert sys.modules["treadle"].__name__ == "treadle"
