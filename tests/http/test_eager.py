"""How request handlers start (treadle/http/eager.py), on both loops.

`HostTaskStarter` (the Python 3.11 starter) runs on every version, so it is
tested everywhere; `EagerTaskStarter` needs `eager_start` (3.12+). Each test
starts handlers from a plain loop callback, as `data_received` does.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from tests.conftest import run
from treadle.http.eager import EagerTaskStarter, HostTaskStarter, Started, handler_starter

from .test_server import GET, connect, read_response, serve

STARTERS: list[Any] = [HostTaskStarter]
if sys.version_info >= (3, 12):
    STARTERS.append(EagerTaskStarter)


@pytest.fixture(params=STARTERS, ids=lambda cls: cls.__name__)
def starter_class(request: pytest.FixtureRequest) -> Any:
    return request.param


def from_callback(loop: asyncio.AbstractEventLoop, fn: Callable[[], Any]) -> asyncio.Future[Any]:
    """Call `fn` from a plain callback (no current task); its result, later."""
    fut = loop.create_future()

    def call() -> None:
        try:
            fut.set_result(fn())
        except BaseException as exc:
            fut.set_exception(exc)

    loop.call_soon(call)
    return fut


async def start(starter: Any, coro: Coroutine[Any, Any, None]) -> Started:
    return await from_callback(asyncio.get_running_loop(), lambda: starter.start(coro))  # type: ignore[no-any-return]


async def outcome(started: Started) -> str:
    """'returned', 'cancelled' or the exception's type name, once it has ended."""
    if isinstance(started, asyncio.Future):
        try:
            await asyncio.wait_for(asyncio.shield(started), 5)
        except BaseException:
            pass
        if started.cancelled():
            return "cancelled"
        started = started.exception()
    if started is None:
        return "returned"
    if isinstance(started, asyncio.CancelledError):
        return "cancelled"
    return type(started).__name__


def test_the_default_starter_matches_the_python_version(loop: asyncio.AbstractEventLoop) -> None:
    expected = EagerTaskStarter if sys.version_info >= (3, 12) else HostTaskStarter
    assert type(handler_starter(loop)) is expected


def test_a_handler_that_returns_finishes_inside_start(
    loop: asyncio.AbstractEventLoop, starter_class: Any
) -> None:
    seen: list[Any] = []

    async def handler() -> None:
        task = asyncio.current_task()
        seen.append(task)
        async with asyncio.timeout(5):  # needs a live current task
            seen.append(asyncio.current_task() is task)

    async def main() -> None:
        starter = starter_class(asyncio.get_running_loop())
        assert await start(starter, handler()) is None
        task, same = seen
        assert isinstance(task, asyncio.Task) and same is True
        assert task is not asyncio.current_task()
        starter.close()

    run(loop, main())


def test_a_handler_that_raises_gives_its_exception(
    loop: asyncio.AbstractEventLoop, starter_class: Any
) -> None:
    async def first_step() -> None:
        raise KeyError("now")

    async def later() -> None:
        await asyncio.sleep(0)
        raise LookupError("later")

    async def main() -> None:
        starter = starter_class(asyncio.get_running_loop())
        result = await start(starter, first_step())
        assert isinstance(result, KeyError)
        assert await outcome(await start(starter, later())) == "LookupError"
        starter.close()

    run(loop, main())


def test_a_suspended_handler_keeps_its_task_and_its_timeout(
    loop: asyncio.AbstractEventLoop, starter_class: Any
) -> None:
    seen: list[Any] = []

    async def handler() -> None:
        task = asyncio.current_task()
        try:
            async with asyncio.timeout(0.01):  # entered in the first step
                await asyncio.sleep(10)
        except TimeoutError:
            seen.append("timed out")
        seen.append(asyncio.current_task() is task)
        assert task is not None
        seen.append(task.cancelling())

    async def main() -> None:
        starter = starter_class(asyncio.get_running_loop())
        started = await start(starter, handler())
        assert isinstance(started, asyncio.Future) and not started.done()
        assert await outcome(started) == "returned"
        assert seen == ["timed out", True, 0]
        starter.close()

    run(loop, main())


def test_each_request_gets_its_own_context(
    loop: asyncio.AbstractEventLoop, starter_class: Any
) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    outer: contextvars.ContextVar[str] = contextvars.ContextVar("outer", default="unset")
    seen: list[str] = []

    async def sets(value: str, suspend: bool) -> None:
        assert outer.get() == "seen by every request"  # a copy of the caller's context
        seen.append(var.get())
        var.set(value)
        if suspend:
            await asyncio.sleep(0)
        seen.append(var.get())

    async def main() -> None:
        outer.set("seen by every request")
        starter = starter_class(asyncio.get_running_loop())
        assert await start(starter, sets("a", suspend=False)) is None
        assert await outcome(await start(starter, sets("b", suspend=True))) == "returned"
        assert await start(starter, sets("c", suspend=False)) is None
        assert seen == ["unset", "a", "unset", "b", "unset", "c"]
        assert var.get() == "unset"
        starter.close()

    run(loop, main())


def test_cancel_right_after_start_reaches_the_handler_and_what_it_awaits(
    loop: asyncio.AbstractEventLoop, starter_class: Any
) -> None:
    seen: list[Any] = []

    async def handler(awaited: asyncio.Future[None]) -> None:
        try:
            await awaited
        except asyncio.CancelledError as exc:
            seen.append(exc.args)
            raise

    async def main() -> None:
        starter = starter_class(asyncio.get_running_loop())
        awaited = asyncio.get_running_loop().create_future()

        def start_and_cancel() -> Started:
            started = starter.start(handler(awaited))
            assert isinstance(started, asyncio.Future)
            assert started.cancel("bye")
            return started

        started = await from_callback(asyncio.get_running_loop(), start_and_cancel)
        assert await outcome(started) == "cancelled"
        assert seen == [("bye",)]
        assert awaited.cancelled()  # as Task.cancel() cancels what the task awaits
        starter.close()

    run(loop, main())


def test_cancel_while_driven_reaches_the_awaited_task_too(
    loop: asyncio.AbstractEventLoop, starter_class: Any
) -> None:
    async def child() -> None:
        await asyncio.sleep(10)

    children: list[asyncio.Task[None]] = []

    async def handler() -> None:
        task = asyncio.create_task(child())
        children.append(task)
        await task

    async def main() -> None:
        starter = starter_class(asyncio.get_running_loop())
        started = await start(starter, handler())
        assert isinstance(started, asyncio.Future)
        for _ in range(3):
            await asyncio.sleep(0)
        assert not started.done()
        started.cancel()
        assert await outcome(started) == "cancelled"
        assert children[0].cancelled()
        starter.close()

    run(loop, main())


def test_a_handler_that_swallows_cancellation_returns_and_the_next_runs(
    loop: asyncio.AbstractEventLoop, starter_class: Any
) -> None:
    tasks: list[Any] = []

    async def stubborn() -> None:
        tasks.append(asyncio.current_task())
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass

    async def next_one() -> None:
        await asyncio.sleep(0)
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task.cancelling())

    async def main() -> None:
        starter = starter_class(asyncio.get_running_loop())
        started = await start(starter, stubborn())
        await asyncio.sleep(0)
        assert isinstance(started, asyncio.Future)
        started.cancel()
        assert await outcome(started) == "returned"
        assert await outcome(await start(starter, next_one())) == "returned"
        assert tasks[-1] == 0  # no cancellation left over
        starter.close()

    run(loop, main())


def test_host_drops_a_self_cancellation_that_outlives_its_handler(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """A handler that cancels its own (host) task and returns: the pending
    cancellation must not land on the connection's next handler."""

    async def cancels_itself() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()

    async def cancels_itself_later() -> None:
        await asyncio.sleep(0)
        task = asyncio.current_task()
        assert task is not None
        task.cancel()

    async def next_one() -> None:
        await asyncio.sleep(0.01)

    async def main() -> None:
        starter = HostTaskStarter(asyncio.get_running_loop())
        assert await start(starter, cancels_itself()) is None
        assert await outcome(await start(starter, next_one())) == "returned"
        # The next handler starts from the first one's done callback, as the
        # server starts the next request: before the host has taken the
        # cancellation that is still pending.
        started = await start(starter, cancels_itself_later())
        follow: list[Started] = []
        assert isinstance(started, asyncio.Future)
        started.add_done_callback(lambda _: follow.append(starter.start(next_one())))
        assert await outcome(started) == "returned"
        assert isinstance(follow[0], asyncio.Future)
        assert await outcome(follow[0]) == "returned"
        assert await outcome(await start(starter, next_one())) == "returned"
        starter.close()

    run(loop, main())


def test_host_cancelled_while_idle_ends_and_a_new_one_takes_over(
    loop: asyncio.AbstractEventLoop,
) -> None:
    hosts: list[Any] = []

    async def handler() -> None:
        hosts.append(asyncio.current_task())
        await asyncio.sleep(0)

    async def main() -> None:
        starter = HostTaskStarter(asyncio.get_running_loop())
        assert await outcome(await start(starter, handler())) == "returned"
        hosts[0].cancel()  # a stray cancellation (or the loop's teardown)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert hosts[0].cancelled()
        assert await outcome(await start(starter, handler())) == "returned"
        assert hosts[1] is not hosts[0] and not hosts[1].done()
        starter.close()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert hosts[1].done()

    run(loop, main())


def test_host_started_from_inside_a_task_runs_the_handler_from_its_start(
    loop: asyncio.AbstractEventLoop,
) -> None:
    seen: list[Any] = []

    async def handler() -> None:
        seen.append(asyncio.current_task())

    async def main() -> None:
        starter = HostTaskStarter(asyncio.get_running_loop())
        started = starter.start(handler())  # inside main's task
        assert isinstance(started, asyncio.Future) and not seen
        assert await outcome(started) == "returned"
        assert seen[0] is not asyncio.current_task()
        # Cancelled before it ever ran: closed, never started.
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "coroutine was never awaited"
            started = starter.start(handler())
            assert isinstance(started, asyncio.Future)
            started.cancel()
            assert await outcome(started) == "cancelled"
            gc.collect()
        assert len(seen) == 1
        starter.close()

    run(loop, main())


def test_host_ends_after_close_idle_or_once_its_handler_ends(
    loop: asyncio.AbstractEventLoop,
) -> None:
    hosts: list[Any] = []
    release: list[asyncio.Future[None]] = []

    async def handler() -> None:
        hosts.append(asyncio.current_task())
        if release:
            await release[0]

    async def main() -> None:
        starter = HostTaskStarter(asyncio.get_running_loop())
        assert await start(starter, handler()) is None
        starter.close()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert hosts[0].done() and not hosts[0].cancelled()
        with pytest.raises(RuntimeError, match="closed"):
            starter.start(handler())

        starter = HostTaskStarter(asyncio.get_running_loop())
        release.append(asyncio.get_running_loop().create_future())
        started = await start(starter, handler())
        starter.close()  # the connection went away; the handler goes on
        await asyncio.sleep(0)
        assert not hosts[1].done()
        release[0].set_result(None)
        assert await outcome(started) == "returned"
        await asyncio.sleep(0)
        assert hosts[1].done()

    run(loop, main())


def test_server_requests_on_one_connection_do_not_share_context(
    loop: asyncio.AbstractEventLoop,
) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="-")

    async def app(request: Any, body: Any, response: Any) -> None:
        before = var.get()
        var.set(request.target)
        if request.target == "/slow":
            await asyncio.sleep(0.01)
        await response.send(200, [], f"{before} {var.get()}".encode())

    async def main() -> None:
        async with serve(app) as (port, _), connect(port) as (reader, writer):
            for target in ("/a", "/slow", "/b"):
                writer.write(GET.replace(b"/x", target.encode()))
                response = await read_response(reader)
                assert response.body == f"- {target}".encode()

    run(loop, main())


def test_a_future_awaited_in_a_first_step_can_be_awaited_by_others_at_once(
    loop: asyncio.AbstractEventLoop, starter_class: Any
) -> None:
    """Two connections' handlers (and a task) await one pending future, all in
    the same loop iteration: the first step must not keep the future's
    blocking flag (a Task's step takes it at once), or the second `await`
    fails with "await wasn't used with future"."""
    got: list[object] = []

    async def handler(shared: asyncio.Future[str]) -> None:
        got.append(await shared)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        shared: asyncio.Future[str] = loop.create_future()
        starters = [starter_class(loop), starter_class(loop)]
        others: list[asyncio.Task[None]] = []

        def start_all() -> list[Started]:
            runs = [s.start(handler(shared)) for s in starters]
            others.append(asyncio.ensure_future(handler(shared)))
            return runs

        runs = await from_callback(loop, start_all)
        shared.set_result("ok")
        assert [await outcome(r) for r in runs] == ["returned", "returned"]
        await others[0]
        assert got == ["ok", "ok", "ok"]
        for s in starters:
            s.close()

    run(loop, main())


def test_host_cancelled_while_driving_ends_rather_than_parks(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """asyncio.run's teardown cancels every task: a host driving a handler
    must end with it, not park and wait for the connection to close."""
    hosts: list[Any] = []

    async def handler() -> None:
        hosts.append(asyncio.current_task())
        await asyncio.sleep(10)

    async def quick() -> None:
        hosts.append(asyncio.current_task())
        await asyncio.sleep(0)

    async def main() -> None:
        starter = HostTaskStarter(asyncio.get_running_loop())
        started = await start(starter, handler())
        await asyncio.sleep(0)
        hosts[0].cancel()
        assert await outcome(started) == "cancelled"
        await asyncio.sleep(0)
        assert hosts[0].done()
        assert hosts[0] not in asyncio.all_tasks()
        # The connection goes on with a new host.
        assert await outcome(await start(starter, quick())) == "returned"
        assert hosts[1] is not hosts[0]
        starter.close()

    run(loop, main())


def test_host_a_self_cancelling_handler_does_not_cancel_the_next_in_the_same_read(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Pipelined: the first handler cancels its own task and returns without
    suspending; the second starts in the same callback and suspends."""

    async def cancels_itself() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()

    async def slow() -> None:
        await asyncio.sleep(0.01)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        starter = HostTaskStarter(loop)
        await outcome(await start(starter, slow()))  # the host is parked now

        def both() -> Started:
            assert starter.start(cancels_itself()) is None
            return starter.start(slow())

        assert await outcome(await from_callback(loop, both)) == "returned"
        starter.close()

    run(loop, main())


def test_host_a_stray_cancellation_does_not_reach_a_handler_started_at_once(
    loop: asyncio.AbstractEventLoop,
) -> None:
    hosts: list[Any] = []

    async def slow() -> None:
        hosts.append(asyncio.current_task())
        await asyncio.sleep(0.01)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        starter = HostTaskStarter(loop)
        await outcome(await start(starter, slow()))

        def cancel_then_start() -> Started:
            hosts[0].cancel()  # someone cancels the idle host...
            return starter.start(slow())  # ...as the next request arrives

        assert await outcome(await from_callback(loop, cancel_then_start)) == "returned"
        assert hosts[1] is not hosts[0]
        starter.close()

    run(loop, main())


def test_host_keyboard_interrupt_from_a_suspended_handler_reaches_the_loop_alone(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """It stops the loop, as from a Task; nothing is reported as never
    retrieved (the `loop` fixture fails the test on any loop error)."""

    async def interrupted() -> None:
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    async def main() -> None:
        starter = HostTaskStarter(asyncio.get_running_loop())
        started = await start(starter, interrupted())
        assert isinstance(started, asyncio.Future)
        started.add_done_callback(lambda run: run.exception())  # as the server reads it
        await asyncio.sleep(1)

    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(main())
    gc.collect()


def test_a_cancellation_before_the_host_takes_over_waits_for_what_it_cancels(
    loop: asyncio.AbstractEventLoop, starter_class: Any
) -> None:
    """An expired timeout entered in the first step (on a connection's second
    request, its host parked): as with Task.cancel(), the awaited gather() is
    cancelled and waited for, so the running child finishes its cleanup
    before the handler goes on, and nothing is left unretrieved."""
    log: list[str] = []

    async def child() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)  # cleanup takes a while
            log.append("child cleaned up")
            raise

    async def handler(running: asyncio.Task[None]) -> None:
        try:
            async with asyncio.timeout(0):  # the deadline has passed already
                await asyncio.gather(running)
        except TimeoutError:
            log.append("handler timed out")

    async def main() -> None:
        starter = starter_class(asyncio.get_running_loop())
        await outcome(await start(starter, asyncio.sleep(0)))  # the host is parked now
        running = asyncio.ensure_future(child())
        await asyncio.sleep(0)  # the child is in its sleep
        assert await outcome(await start(starter, handler(running))) == "returned"
        assert log == ["child cleaned up", "handler timed out"]
        starter.close()

    run(loop, main())


def test_a_cancelled_awaited_task_that_refuses_resumes_the_handler_with_its_result(
    loop: asyncio.AbstractEventLoop, starter_class: Any
) -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0)
        return "fallback"

    got: list[str] = []

    async def handler(running: asyncio.Task[str]) -> None:
        got.append(await running)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        starter = starter_class(loop)
        await outcome(await start(starter, asyncio.sleep(0)))
        running = asyncio.ensure_future(stubborn())
        await asyncio.sleep(0)  # it is in its sleep

        def start_and_cancel() -> Started:
            started = starter.start(handler(running))
            assert isinstance(started, asyncio.Future)
            started.cancel()  # in the same iteration as start()
            return started

        assert await outcome(await from_callback(loop, start_and_cancel)) == "returned"
        assert got == ["fallback"]
        starter.close()

    run(loop, main())


def test_host_a_cancel_then_uncancel_in_a_first_step_does_not_reach_the_next(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """cancel() then uncancel() (as timeout() and TaskGroup do) leaves the
    parked host's wake future cancelled with cancelling() back at 0: the host
    is retired all the same."""

    async def cancel_uncancel() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        task.uncancel()

    async def slow() -> None:
        await asyncio.sleep(0.01)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        starter = HostTaskStarter(loop)
        await outcome(await start(starter, asyncio.sleep(0)))

        def both() -> Started:
            assert starter.start(cancel_uncancel()) is None
            return starter.start(slow())

        assert await outcome(await from_callback(loop, both)) == "returned"
        starter.close()

    run(loop, main())


def test_host_one_handler_at_a_time(loop: asyncio.AbstractEventLoop) -> None:
    async def waits() -> None:
        await asyncio.sleep(0)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        starter = HostTaskStarter(loop)

        def twice() -> None:
            assert isinstance(starter.start(waits()), asyncio.Future)
            with pytest.raises(RuntimeError, match="one handler at a time"):
                starter.start(waits())

        await from_callback(loop, twice)
        await asyncio.sleep(0.01)
        starter.close()

    run(loop, main())


@pytest.mark.expect_loop_errors
def test_host_a_bug_in_the_host_fails_its_run_and_is_reported(
    loop: asyncio.AbstractEventLoop,
    loop_errors: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not reachable without a bug; what a bug would do is fail the handler's
    run (the server answers 500) and be reported, not leave it pending."""

    async def waits() -> None:
        await asyncio.sleep(0)

    def broken_take(self: HostTaskStarter) -> Any:
        raise ZeroDivisionError("a bug")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        starter = HostTaskStarter(loop)
        await outcome(await start(starter, asyncio.sleep(0)))
        monkeypatch.setattr(HostTaskStarter, "_take", broken_take)
        assert await outcome(await start(starter, waits())) == "ZeroDivisionError"
        monkeypatch.undo()
        starter.close()

    run(loop, main())
    assert [c["message"] for c in loop_errors] == ["request handler host failed"]
