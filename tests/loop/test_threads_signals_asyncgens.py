"""Executor work, signals and async-generator finalization, on both loops."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import signal
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import run


def test_run_in_executor_returns_work_done_in_a_thread(loop: asyncio.AbstractEventLoop) -> None:
    main_thread = threading.get_ident()

    def work(a: int, b: int) -> tuple[int, int]:
        return a + b, threading.get_ident()

    async def main() -> None:
        total, thread = await loop.run_in_executor(None, work, 2, 3)
        assert total == 5
        assert thread != main_thread
        results = await asyncio.gather(*(loop.run_in_executor(None, pow, 2, i) for i in range(20)))
        assert results == [2**i for i in range(20)]

    run(loop, main())


def test_run_in_executor_propagates_exceptions(loop: asyncio.AbstractEventLoop) -> None:
    def fail() -> None:
        raise LookupError("from the thread")

    async def main() -> None:
        with pytest.raises(LookupError, match="from the thread"):
            await loop.run_in_executor(None, fail)

    run(loop, main())


def test_set_default_executor(loop: asyncio.AbstractEventLoop) -> None:
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mine")
    loop.set_default_executor(executor)

    async def main() -> str:
        return await loop.run_in_executor(None, lambda: threading.current_thread().name)

    assert run(loop, main()).startswith("mine")
    with pytest.raises(TypeError):
        loop.set_default_executor(object())  # type: ignore[arg-type]


def test_explicit_executor(loop: asyncio.AbstractEventLoop) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:

        async def main() -> int:
            return await loop.run_in_executor(executor, sum, [1, 2, 3])

        assert run(loop, main()) == 6


def test_shutdown_default_executor_then_refuse_new_work(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        await loop.run_in_executor(None, int)
        await loop.shutdown_default_executor()
        with pytest.raises(RuntimeError, match="shutdown"):
            loop.run_in_executor(None, int)

    run(loop, main())


def test_getaddrinfo_and_getnameinfo(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        infos = await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
        assert infos[0][4] == ("127.0.0.1", 80)
        host, port = await loop.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST)
        assert host == "127.0.0.1"
        assert port in ("80", "http")

    run(loop, main())


# -- signals ------------------------------------------------------------------------


def test_signal_handler_runs_on_the_loop(loop: asyncio.AbstractEventLoop) -> None:
    got: list[tuple[str, int]] = []

    def on_signal(tag: str) -> None:
        got.append((tag, threading.get_ident()))
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, on_signal, "usr1")
    try:
        # Sent while the loop is blocked in the poller with nothing else to do:
        # the signal must wake it.
        loop.call_later(0.01, os.kill, os.getpid(), signal.SIGUSR1)
        safety = loop.call_later(30, loop.stop)
        loop.run_forever()
        safety.cancel()
    finally:
        assert loop.remove_signal_handler(signal.SIGUSR1)
    assert got == [("usr1", threading.get_ident())]
    assert not loop.remove_signal_handler(signal.SIGUSR1)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_signal_from_another_thread_wakes_the_loop(loop: asyncio.AbstractEventLoop) -> None:
    got: list[int] = []
    loop.add_signal_handler(signal.SIGUSR2, lambda: (got.append(1), loop.stop()))
    try:
        timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR2))
        timer.start()
        safety = loop.call_later(30, loop.stop)
        loop.run_forever()
        safety.cancel()
        timer.join()
    finally:
        loop.remove_signal_handler(signal.SIGUSR2)
    assert got == [1]


def test_bad_signals_are_refused(loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(RuntimeError):
        loop.add_signal_handler(signal.SIGKILL, print)
    with pytest.raises((ValueError, RuntimeError)):
        loop.add_signal_handler(100_000, print)
    with pytest.raises(TypeError):
        loop.add_signal_handler(signal.SIGUSR1, asyncio.sleep)  # a coroutine function


def test_signal_handlers_only_from_the_main_thread(loop: asyncio.AbstractEventLoop) -> None:
    errors: list[BaseException] = []

    def other() -> None:
        try:
            loop.add_signal_handler(signal.SIGUSR1, print)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)


def test_close_removes_signal_handlers(loop_kind: str) -> None:
    from tests.conftest import LOOP_FACTORIES

    loop = LOOP_FACTORIES[loop_kind]()
    loop.add_signal_handler(signal.SIGUSR1, print)
    assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, None)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


# -- asynchronous generators ----------------------------------------------------------


def test_shutdown_asyncgens_finalizes_open_generators(loop: asyncio.AbstractEventLoop) -> None:
    finalized: list[str] = []
    kept: list[Any] = []

    async def agen() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            finalized.append("closed")

    async def main() -> None:
        gen = agen()
        kept.append(gen)  # keep it alive: only shutdown_asyncgens may close it
        assert await gen.__anext__() == 1

    run(loop, main())
    assert finalized == []
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert finalized == ["closed"]


def test_garbage_collected_asyncgen_is_finalized_on_the_loop(
    loop: asyncio.AbstractEventLoop,
) -> None:
    finalized: list[int] = []

    async def agen() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)  # finalization itself needs the loop
            finalized.append(threading.get_ident())

    async def main() -> None:
        gen = agen()
        assert await gen.__anext__() == 1
        del gen
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)

    run(loop, main())
    assert finalized == [threading.get_ident()]


@pytest.mark.expect_loop_errors
def test_asyncgen_errors_on_shutdown_reach_the_handler(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    kept: list[Any] = []

    async def agen() -> AsyncIterator[int]:
        try:
            yield 1
        finally:
            raise ValueError("in finally")

    async def main() -> None:
        gen = agen()
        kept.append(gen)
        await gen.__anext__()

    run(loop, main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert any(isinstance(c.get("exception"), ValueError) for c in loop_errors)
