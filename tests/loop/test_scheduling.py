"""Scheduling and running, on Treadle's loop and the stdlib loop alike."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import logging
import sys
import threading
import time
from typing import Any
from unittest import mock

import pytest

import treadle
from tests.conftest import LOOP_FACTORIES, run


def test_call_soon_runs_in_fifo_order_with_args(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[tuple[str, int]] = []
    for i in range(5):
        loop.call_soon(lambda name, n: calls.append((name, n)), "cb", i)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == [("cb", i) for i in range(5)]


def test_callbacks_scheduled_by_callbacks_wait_for_next_iteration(
    loop: asyncio.AbstractEventLoop,
) -> None:
    order: list[str] = []

    def first() -> None:
        order.append("first")
        loop.call_soon(lambda: order.append("third"))

    loop.call_soon(first)
    loop.call_soon(lambda: order.append("second"))
    loop.call_soon(loop.stop)
    loop.run_forever()
    # stop() ends the loop after the iteration in which it was called; "third"
    # was scheduled during that iteration, so it has not run yet.
    assert order == ["first", "second"]
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == ["first", "second", "third"]


def test_stop_before_run_forever_runs_one_iteration(loop: asyncio.AbstractEventLoop) -> None:
    ran: list[int] = []
    loop.call_soon(ran.append, 1)
    loop.stop()
    loop.run_forever()
    assert ran == [1]
    assert not loop.is_running()


def test_timers_fire_in_order_and_never_early(loop: asyncio.AbstractEventLoop) -> None:
    fired: list[tuple[float, float]] = []
    delays = [0.03, 0.01, 0.02, 0.0, 0.01]
    start = loop.time()
    for d in delays:
        when = start + d
        loop.call_at(when, lambda w: fired.append((w, loop.time())), when)
    loop.call_at(start + 0.05, loop.stop)
    loop.run_forever()
    whens = [w for w, _ in fired]
    assert whens == sorted(start + d for d in delays)
    for when, at in fired:
        assert at >= when - 1e-3, "a timer ran before it was due"


def test_timers_due_at_the_same_time_keep_scheduling_order(
    loop: asyncio.AbstractEventLoop,
) -> None:
    seen: list[int] = []
    when = loop.time() + 0.01
    for i in range(20):
        loop.call_at(when, seen.append, i)
    loop.call_at(when + 0.01, loop.stop)
    loop.run_forever()
    assert sorted(seen) == list(range(20))
    if isinstance(loop, treadle.EventLoop):
        # Treadle's heap breaks ties by scheduling order; asyncio's does not promise it.
        assert seen == list(range(20))


def test_call_later_delay_is_respected(loop: asyncio.AbstractEventLoop) -> None:
    result: dict[str, float] = {}
    start = loop.time()
    handle = loop.call_later(0.05, lambda: result.setdefault("at", loop.time()))
    assert handle.when() == pytest.approx(start + 0.05, abs=0.01)
    loop.call_later(0.1, loop.stop)
    loop.run_forever()
    assert result["at"] >= handle.when() - 1e-3


def test_cancelled_handles_never_run(loop: asyncio.AbstractEventLoop) -> None:
    ran: list[str] = []
    h1 = loop.call_soon(ran.append, "soon")
    h2 = loop.call_later(0.01, ran.append, "later")
    h3 = loop.call_at(loop.time() + 0.02, ran.append, "at")
    kept = loop.call_later(0.01, ran.append, "kept")
    for h in (h1, h2, h3):
        h.cancel()
        h.cancel()  # twice is harmless
        assert h.cancelled()
    assert not kept.cancelled()
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    assert ran == ["kept"]


def test_cancel_from_an_earlier_callback_in_the_same_batch(
    loop: asyncio.AbstractEventLoop,
) -> None:
    ran: list[str] = []
    victim = loop.call_soon(ran.append, "victim")
    loop.call_soon(ran.append, "other")
    # Scheduled before the victim runs, in the same iteration.
    loop.call_soon(loop.call_soon, loop.stop)
    victim.cancel()
    loop.run_forever()
    assert ran == ["other"]


def test_handle_repr_and_context(loop: asyncio.AbstractEventLoop) -> None:
    ctx = contextvars.copy_context()
    h = loop.call_soon(print, "x", context=ctx)
    assert isinstance(h, asyncio.Handle)
    assert "print" in repr(h)
    if hasattr(h, "get_context"):  # asyncio's handles have it from Python 3.12
        assert h.get_context() is ctx
    t = loop.call_later(10, print)
    assert isinstance(t, asyncio.TimerHandle)
    assert "when=" in repr(t)
    t.cancel()
    assert "cancelled" in repr(t)
    h.cancel()


def test_context_is_respected(loop: asyncio.AbstractEventLoop) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="default")
    seen: list[str] = []
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")
    loop.call_soon(lambda: seen.append(var.get()), context=ctx)
    var.set("outside")
    # Without a context argument, the handle copies the current context.
    loop.call_soon(lambda: seen.append(var.get()))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["in ctx", "outside"]


def test_call_soon_threadsafe_wakes_a_blocked_loop(loop: asyncio.AbstractEventLoop) -> None:
    results: list[str] = []

    def from_thread() -> None:
        # Give the loop time to block in the poller with nothing scheduled.
        time.sleep(0.05)
        loop.call_soon_threadsafe(results.append, "woken")
        loop.call_soon_threadsafe(loop.stop)

    # A long safety timer: if the thread's call did not wake the loop, the test
    # fails instead of hanging.
    safety = loop.call_later(30, loop.stop)
    thread = threading.Thread(target=from_thread)
    thread.start()
    loop.run_forever()
    thread.join()
    safety.cancel()
    assert results == ["woken"]


def test_many_threads_calling_threadsafe(loop: asyncio.AbstractEventLoop) -> None:
    count = 0
    n_threads, per_thread = 8, 500
    done = asyncio.Event()

    def bump() -> None:
        nonlocal count
        count += 1
        if count == n_threads * per_thread:
            done.set()

    def worker() -> None:
        for _ in range(per_thread):
            loop.call_soon_threadsafe(bump)

    async def main() -> None:
        threads = [threading.Thread(target=worker) for _ in range(n_threads)]
        for t in threads:
            t.start()
        await done.wait()
        for t in threads:
            t.join()

    run(loop, main())
    assert count == n_threads * per_thread


def test_run_until_complete_returns_result_and_raises(loop: asyncio.AbstractEventLoop) -> None:
    async def ok() -> int:
        await asyncio.sleep(0)
        return 42

    async def bad() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    assert loop.run_until_complete(ok()) == 42
    with pytest.raises(ValueError, match="boom"):
        loop.run_until_complete(bad())
    fut = loop.create_future()
    loop.call_soon(fut.set_result, "from a future")
    assert loop.run_until_complete(fut) == "from a future"


def test_run_until_complete_stopped_early(loop: asyncio.AbstractEventLoop) -> None:
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match="stopped before Future completed"):
        loop.run_until_complete(fut)
    fut.cancel()


def test_running_twice_and_closing_while_running_are_refused(
    loop: asyncio.AbstractEventLoop,
) -> None:
    errors: list[str] = []

    def inside() -> None:
        assert loop.is_running()
        # close() first: the stdlib loop of Python 3.13.0 forgets it is running
        # after a refused nested run_forever().
        for attempt in (loop.close, loop.run_forever):
            try:
                attempt()
            except RuntimeError as exc:
                errors.append(str(exc))
        loop.stop()

    loop.call_soon(inside)
    loop.run_forever()
    assert len(errors) == 2
    assert "running event loop" in errors[0]
    assert "already running" in errors[1]


def test_another_loop_cannot_run_inside_a_running_one(loop: asyncio.AbstractEventLoop) -> None:
    other = treadle.new_event_loop()
    try:

        async def main() -> None:
            coro = asyncio.sleep(0)
            with pytest.raises(RuntimeError, match="another loop is running"):
                other.run_until_complete(coro)
            coro.close()

        run(loop, main())
    finally:
        other.close()


def test_closed_loop_refuses_work(loop_kind: str) -> None:
    from tests.conftest import LOOP_FACTORIES

    loop = LOOP_FACTORIES[loop_kind]()
    assert not loop.is_closed()
    loop.close()
    loop.close()  # idempotent
    assert loop.is_closed()
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon(print)
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_later(1, print)
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon_threadsafe(print)
    with pytest.raises(RuntimeError, match="closed"):
        loop.run_forever()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="closed"):
        loop.run_until_complete(coro)
    coro.close()


def test_none_delay_and_when_are_refused(loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(TypeError):
        loop.call_later(None, print)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        loop.call_at(None, print)  # type: ignore[arg-type]


def test_unclosed_loop_warns(loop_kind: str) -> None:
    from tests.conftest import LOOP_FACTORIES

    loop = LOOP_FACTORIES[loop_kind]()
    with pytest.warns(ResourceWarning, match="unclosed event loop"):
        del loop
        import gc

        gc.collect()


# -- debug mode -------------------------------------------------------------------


def test_debug_mode_flags(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_debug(True)
    assert loop.get_debug()
    loop.set_debug(False)
    assert not loop.get_debug()


def test_debug_mode_refuses_coroutines_as_callbacks(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_debug(True)

    async def coro_func() -> None:
        pass

    with pytest.raises(TypeError, match="coroutines cannot be used with call_soon"):
        loop.call_soon(coro_func)
    with pytest.raises(TypeError, match="coroutines cannot be used with call_"):
        loop.call_later(1, coro_func)
    with pytest.raises(TypeError, match="callable"):
        loop.call_soon(42)  # type: ignore[arg-type]


def test_debug_mode_refuses_calls_from_other_threads(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_debug(True)
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            loop.call_soon(print)
        except RuntimeError as exc:
            errors.append(exc)
        loop.call_soon_threadsafe(loop.stop)

    def start_thread() -> None:
        threading.Thread(target=other_thread).start()

    loop.call_soon(start_thread)
    safety = loop.call_later(30, loop.stop)
    loop.run_forever()
    safety.cancel()
    assert len(errors) == 1
    assert "Non-thread-safe operation" in str(errors[0])


def test_debug_mode_logs_slow_callbacks(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01

    def slow() -> None:
        time.sleep(0.05)

    loop.call_soon(slow)
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.run_forever()
    slow_logs = [r for r in caplog.records if "took" in r.getMessage()]
    assert slow_logs, caplog.text
    assert "slow" in slow_logs[0].getMessage()


def _slow_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "took" in r.getMessage()]


def test_debug_slow_task_step_names_the_task(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    # A task's step is scheduled as asyncio's internal step wrapper; the
    # warning must name the task and its coroutine, or it does not say whose
    # code was slow.
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01

    async def sluggish_step() -> None:
        time.sleep(0.05)

    async def main() -> None:
        await loop.create_task(sluggish_step(), name="the-slow-one")

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        run(loop, main())
    slow = [m for m in _slow_warnings(caplog) if "the-slow-one" in m]
    assert slow, caplog.text
    assert "sluggish_step" in slow[0]
    assert f"defined at {__file__}" in slow[0]
    assert "StepMethWrapper" not in caplog.text


def test_debug_slow_callback_says_where_it_is_defined(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01

    def sluggish() -> None:
        time.sleep(0.05)

    loop.call_soon(sluggish)
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.run_forever()
    where = f"sluggish() at {__file__}:{sluggish.__code__.co_firstlineno}"
    assert any(where in m for m in _slow_warnings(caplog)), caplog.text


@pytest.mark.expect_loop_errors
def test_callback_error_says_where_the_callback_is_defined(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    def broken(n: int) -> None:
        raise ValueError(n)

    loop.call_soon(functools.partial(broken, 7))
    loop.call_soon(loop.stop)
    loop.run_forever()
    [context] = loop_errors
    assert context["message"].startswith("Exception in callback ")
    assert context["message"].endswith(f" at {__file__}:{broken.__code__.co_firstlineno}")


@pytest.mark.expect_loop_errors
def test_debug_pending_task_destroyed_says_where_it_was_made(
    loop: asyncio.AbstractEventLoop,
    loop_errors: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop.set_debug(True)

    async def forever() -> None:
        await loop.create_future()

    async def main() -> int:
        task = loop.create_task(forever())
        line = sys._getframe().f_lineno - 1
        await asyncio.sleep(0)
        del task  # pending, and now unreachable but for its own cycle
        return line

    line = run(loop, main())
    gc.collect()
    [context] = [c for c in loop_errors if "destroyed but it is pending" in c["message"]]
    made_at = context["source_traceback"][-1]
    assert (made_at.filename, made_at.lineno) == (__file__, line)
    assert f"created at {__file__}:{line}" in repr(context["task"])
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.default_exception_handler(context)
    assert "source_traceback: Object created at (most recent call last):" in caplog.text
    assert f'File "{__file__}", line {line}' in caplog.text


def test_debug_handles_remember_where_they_were_made(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_debug(True)
    h = loop.call_soon(print)
    assert "created at" in repr(h)
    assert __file__.rstrip("c") in repr(h)
    h.cancel()


async def _iterations(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_scheduler_follows_a_patched_time(loop: asyncio.AbstractEventLoop) -> None:
    # aiohttp's tests patch loop.time; asyncio's scheduler reads self.time(),
    # so timers follow the patched clock.
    async def main() -> list[str]:
        fired: list[str] = []
        base = loop.time()
        with mock.patch.object(loop, "time", return_value=base + 1000.0):
            assert loop.time() == base + 1000.0
            handle = loop.call_later(5, fired.append, "later")
            assert handle.when() == base + 1005.0
            loop.call_at(base + 500.0, fired.append, "due")  # in the patched past
            await _iterations(3)  # a due timer runs in the next iteration
            handle.cancel()
        # The real clock is back, and timers still fire.
        assert abs(loop.time() - time.monotonic()) < 1.0
        await asyncio.sleep(0.01)
        return fired

    # Not run(): its timeout is a timer too, and the patched clock makes it due.
    assert loop.run_until_complete(main()) == ["due"]


@pytest.mark.parametrize("order", ["replace, then stop", "stop, then replace"])
def test_stop_and_a_replaced_clock_in_one_iteration(
    loop: asyncio.AbstractEventLoop, order: str
) -> None:
    def both() -> None:
        if order == "stop, then replace":
            loop.stop()
        loop.time = lambda: 0.0  # type: ignore[method-assign]
        if order == "replace, then stop":
            loop.stop()

    rescued: list[bool] = []

    def rescue() -> None:
        rescued.append(True)
        loop.stop()

    safety = threading.Timer(30, loop.call_soon_threadsafe, (rescue,))
    safety.start()
    loop.call_soon(both)
    try:
        loop.run_forever()
    finally:
        safety.cancel()
        del loop.time  # type: ignore[method-assign]
    assert not rescued  # the stop was not lost in a restart for the new clock
    assert loop.time() > 0.0


def test_a_subclass_clock_drives_the_scheduler(loop_kind: str) -> None:
    probe = LOOP_FACTORIES[loop_kind]()
    base_class = type(probe)
    probe.close()
    ahead = time.monotonic() + 1000.0

    class AheadLoop(base_class):  # type: ignore[valid-type,misc]
        def time(self) -> float:
            return ahead

    ahead_loop = AheadLoop()
    fired: list[str] = []
    try:
        handle = ahead_loop.call_later(5, fired.append, "later")
        assert handle.when() == ahead + 5
        handle.cancel()
        ahead_loop.call_at(ahead - 1, fired.append, "due")
        ahead_loop.call_at(ahead - 1, ahead_loop.stop)
        ahead_loop.run_forever()
    finally:
        ahead_loop.close()
    assert fired == ["due"]


def test_time_is_monotonic(loop: asyncio.AbstractEventLoop) -> None:
    a = loop.time()
    b = loop.time()
    assert b >= a
    assert abs(loop.time() - time.monotonic()) < 1.0
