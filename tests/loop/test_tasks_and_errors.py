"""Futures, tasks, task factories and error reporting, on both loops."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
from typing import Any

import pytest

from tests.conftest import run


def test_create_future_and_task(loop: asyncio.AbstractEventLoop) -> None:
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future)
    assert fut.get_loop() is loop

    async def work() -> str:
        await asyncio.sleep(0)
        return "ok"

    task = loop.create_task(work(), name="worker")
    assert isinstance(task, asyncio.Task)
    assert task.get_name() == "worker"
    assert loop.run_until_complete(task) == "ok"
    fut.cancel()


def test_create_task_with_context(loop: asyncio.AbstractEventLoop) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="none")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "given")

    async def read() -> str:
        return var.get()

    assert loop.run_until_complete(loop.create_task(read(), context=ctx)) == "given"
    assert loop.run_until_complete(loop.create_task(read())) == "none"


def test_task_factory(loop: asyncio.AbstractEventLoop) -> None:
    made: list[asyncio.Task[Any]] = []

    def factory(lp: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=lp, **kwargs)
        made.append(task)
        return task

    assert loop.get_task_factory() is None
    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory

    async def one() -> int:
        return 1

    task = loop.create_task(one(), name="named")
    assert made == [task]
    assert task.get_name() == "named"
    assert loop.run_until_complete(task) == 1
    loop.set_task_factory(None)
    assert loop.get_task_factory() is None
    with pytest.raises(TypeError):
        loop.set_task_factory(42)  # type: ignore[arg-type]


def test_ten_thousand_tasks_sleep_concurrently(loop: asyncio.AbstractEventLoop) -> None:
    # How fast they go is the benchmark's business (no timing here); that
    # they all sleep at once, and each gets its own result, is this test's.
    asleep = 0
    most_asleep = 0

    async def sleeper(i: int) -> int:
        nonlocal asleep, most_asleep
        asleep += 1
        most_asleep = max(most_asleep, asleep)
        await asyncio.sleep(0.1)
        asleep -= 1
        return i

    async def main() -> list[int]:
        return await asyncio.gather(*(sleeper(i) for i in range(10_000)))

    assert run(loop, main()) == list(range(10_000))
    assert most_asleep == 10_000 and asleep == 0


@pytest.mark.expect_loop_errors
def test_callback_exceptions_reach_the_handler(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    def bad() -> None:
        raise ZeroDivisionError("in a callback")

    after: list[str] = []
    loop.call_soon(bad)
    loop.call_soon(after.append, "still running")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert after == ["still running"]
    assert len(loop_errors) == 1
    context = loop_errors[0]
    assert isinstance(context["exception"], ZeroDivisionError)
    assert "Exception in callback" in context["message"]
    assert isinstance(context["handle"], asyncio.Handle)


def test_keyboard_interrupt_propagates_out_of_run_forever(
    loop: asyncio.AbstractEventLoop,
) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    later: list[str] = []
    loop.call_soon(interrupt)
    loop.call_soon(later.append, "left for the next run")
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert not loop.is_running()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert later == ["left for the next run"]


@pytest.mark.expect_loop_errors
@pytest.mark.parametrize("task_class", ["C", "Python"])
def test_a_dropped_failed_task_is_reported_at_once_in_debug_mode(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]], task_class: str
) -> None:
    """No reference cycle keeps a failed task alive after its step, in debug
    mode too: it is reported before the next callback runs, without waiting
    for the garbage collector."""
    make = asyncio.tasks._CTask if task_class == "C" else asyncio.tasks._PyTask  # type: ignore[attr-defined]
    loop.set_debug(True)

    async def fail() -> None:
        raise RuntimeError("dropped")

    async def main() -> int:
        make(fail(), loop=loop)
        await asyncio.sleep(0)  # the task's step runs first, then this one
        return len(loop_errors)

    assert run(loop, main()) == 1
    assert "never retrieved" in loop_errors[0]["message"]


@pytest.mark.expect_loop_errors
def test_unretrieved_task_exception_is_reported(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    import gc

    async def fail() -> None:
        raise RuntimeError("nobody awaited me")

    async def main() -> None:
        loop.create_task(fail())
        await asyncio.sleep(0.01)

    run(loop, main())
    gc.collect()
    assert any(
        isinstance(c.get("exception"), RuntimeError) and "never retrieved" in c["message"]
        for c in loop_errors
    )


def test_exception_handler_get_set(loop: asyncio.AbstractEventLoop) -> None:
    def handler(lp: asyncio.AbstractEventLoop, ctx: dict[str, Any]) -> None:
        pass

    old = loop.get_exception_handler()
    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    with pytest.raises(TypeError, match="callable"):
        loop.set_exception_handler("not callable")  # type: ignore[arg-type]
    loop.set_exception_handler(old)


def test_default_exception_handler_logs_the_context(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        raise ValueError("logged")
    except ValueError as exc:
        error = exc
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.default_exception_handler(
            {"message": "Something broke", "exception": error, "peer": ("1.2.3.4", 5)}
        )
    assert len(caplog.records) == 1
    record = caplog.records[0]
    assert record.getMessage().startswith("Something broke")
    assert "peer: ('1.2.3.4', 5)" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[1] is error


def test_default_handler_used_when_none_set(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    loop.set_exception_handler(None)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_exception_handler({"message": "reported"})
    assert [r.getMessage() for r in caplog.records] == ["reported"]


def test_failing_custom_handler_falls_back_to_default(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(lp: asyncio.AbstractEventLoop, ctx: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    loop.set_exception_handler(broken)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_exception_handler({"message": "original"})
    assert "Unhandled error in exception handler" in caplog.text
    assert "handler bug" in caplog.text
    loop.set_exception_handler(None)


def test_custom_handler_runs_in_the_handle_context(
    loop: asyncio.AbstractEventLoop, loop_kind: str
) -> None:
    if loop_kind == "asyncio" and sys.version_info < (3, 12):
        pytest.skip("the stdlib loop does this from Python 3.12")
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="loop")
    seen: list[str] = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(var.get()))
    ctx = contextvars.copy_context()
    ctx.run(var.set, "callback's")

    def bad() -> None:
        raise ValueError

    loop.call_soon(bad, context=ctx)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["callback's"]
