"""Treadle's own guarantees beyond asyncio's contract."""

from __future__ import annotations

import asyncio
import socket

import pytest

import treadle
from tests.conftest import run


def test_cancelled_timers_do_not_stay_in_the_heap(treadle_loop: treadle.EventLoop) -> None:
    loop = treadle_loop
    keep = [loop.call_later(1000 + i, print) for i in range(10)]
    for round_ in range(50):
        handles = [loop.call_later(3600, print) for _ in range(1000)]
        for h in handles:
            h.cancel()
        # Compaction keeps cancelled entries to at most about half the heap.
        assert len(loop._timers) <= 2 * (len(keep) + 70), round_
    assert sum(1 for *_, h in loop._timers if not h.cancelled()) == len(keep)
    for h in keep:
        h.cancel()


def test_cancelled_timers_are_dropped_at_the_head(treadle_loop: treadle.EventLoop) -> None:
    loop = treadle_loop
    h = loop.call_later(0.001, print)
    h.cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.call_later(0.002, loop.stop)
    loop.run_forever()
    assert loop._timers == []
    assert loop._timers_cancelled == 0


def test_closed_loop_releases_fds(treadle_loop: treadle.EventLoop) -> None:
    loop = treadle.new_event_loop()
    wake_fd = loop._wake_r.fileno()
    loop.close()
    with pytest.raises(OSError):
        socket.socket(fileno=wake_fd).close()  # the fd number is no longer ours


def test_io_is_fair_while_callbacks_keep_coming(treadle_loop: treadle.EventLoop) -> None:
    """A task that never stops yielding must not starve a socket: with an fd
    registered, every iteration polls (only an idle fd table skips the poll)."""
    loop = treadle_loop
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    spins = 0

    async def spinner() -> None:
        nonlocal spins
        while True:
            spins += 1
            await asyncio.sleep(0)

    async def main() -> bytes:
        task = loop.create_task(spinner())
        loop.call_later(0.01, b.send, b"data")
        data = await loop.sock_recv(a, 10)
        task.cancel()
        return data

    with a, b:
        assert run(loop, main()) == b"data"
    assert spins > 0


def test_poller_names() -> None:
    names = treadle.loop.available_pollers()
    assert "select" in names
    with pytest.raises(ValueError, match="unknown poller"):
        treadle.EventLoop(poller="nope")  # type: ignore[abstract]
