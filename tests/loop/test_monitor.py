"""treadle.loop.monitor: loop lag, slow callbacks and the task tree, on
Treadle's loop and the stdlib loop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from treadle.loop.monitor import LoopMonitor, task_tree

from ..conftest import run


def test_loop_lag_is_measured_and_readable_while_the_loop_is_blocked(
    loop: asyncio.AbstractEventLoop,
) -> None:
    monitor = LoopMonitor(loop, interval=0.02)
    seen_from_thread: list[float] = []

    async def main() -> None:
        monitor.start()
        await asyncio.sleep(0.1)
        reader = threading.Timer(
            0.15, lambda: seen_from_thread.append(monitor.snapshot()["lag_sum"])
        )
        reader.start()
        time.sleep(0.3)  # block the loop: the probe due meanwhile runs late
        reader.join()
        await asyncio.sleep(0.1)
        monitor.stop()

    run(loop, main())
    assert seen_from_thread, "the figures did not answer while the loop was blocked"
    assert monitor.max_lag() >= 0.2
    assert monitor.lag_count >= 3
    assert sum(monitor.lag_counts) == monitor.lag_count
    assert monitor.lag_counts[-1] + sum(monitor.lag_counts[7:-1]) >= 1  # the late probe: >= 0.1 s


def test_slow_callbacks_are_counted_once_each_and_fast_ones_never(
    loop: asyncio.AbstractEventLoop, loop_kind: str
) -> None:
    if loop_kind == "asyncio":
        loop.set_debug(True)  # the stdlib loop publishes its current handle in debug mode only
        loop.slow_callback_duration = 10.0  # (and logs none of these)
    monitor = LoopMonitor(loop, slow=0.1)

    async def main() -> None:
        monitor.start()
        # Many short callbacks in one iteration, and one handle run again and
        # again (as an fd's reader is): no false positive.
        for _ in range(30):
            loop.call_soon(time.sleep, 0.01)
        await asyncio.sleep(0.05)
        for _ in range(20):
            await asyncio.sleep(0)
            time.sleep(0.01)
        assert monitor.slow_callbacks == 0
        loop.call_soon(time.sleep, 0.3)
        loop.call_soon(time.sleep, 0.3)
        await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        monitor.stop()

    run(loop, main())
    assert monitor.slow_callbacks == 2


def test_the_task_tree(loop: asyncio.AbstractEventLoop) -> None:
    async def leaf(event: asyncio.Event) -> None:
        await event.wait()

    async def middle(event: asyncio.Event) -> None:
        await asyncio.gather(leaf(event), leaf(event))

    async def main() -> None:
        event = asyncio.Event()
        parent = asyncio.ensure_future(middle(event))
        parent.set_name("parent")
        await asyncio.sleep(0.01)
        tree = {info.name: info for info in task_tree()}
        me = asyncio.current_task()
        assert me is not None
        assert tree["parent"].awaiting == "gather of 2"
        leaves = [info for info in tree.values() if info.stack and "leaf" in info.stack[0]]
        assert len(leaves) == 2
        parent_id = tree["parent"].id
        for info in leaves:
            assert info.awaited_by == [parent_id]
            assert info.state == "pending"
            assert any("Event.wait" in frame for frame in info.stack)
        assert any("middle" in frame for frame in tree["parent"].stack)
        event.set()
        await parent

    run(loop, main())


def test_a_monitor_refuses_to_start_twice(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        monitor = LoopMonitor(loop)
        monitor.start()
        with pytest.raises(RuntimeError):
            monitor.start()
        monitor.stop()

    run(loop, main())
