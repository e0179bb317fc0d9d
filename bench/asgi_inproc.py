"""Treadle's ASGI adapter and server per request, without sockets: microseconds per hello.

    taskset -c 0 .venv/bin/python bench/asgi_inproc.py                  # the bare ASGI app
    taskset -c 0 .venv/bin/python bench/asgi_inproc.py --app starlette --app fastapi
    taskset -c 0 .venv/bin/python bench/asgi_inproc.py --profile        # cProfile, by own time
    taskset -c 0 .venv/bin/python bench/asgi_inproc.py --parts          # the adapter's pieces

bench/http_inproc.py's method for the ASGI apps of bench/asgi.py: one
connection of `ASGIRunner(app)` gets `GET /hello/world`, the bytes wrk sends,
through `data_received` again and again, from a plain loop callback as a
transport would call it; the transport is a stand-in that keeps what is
written (and answers `sockname` and `peername`, as a socket's does). What is
timed is the Python a request costs in the process: parsing, the handler
start, the scope, the app, `receive`/`send`, the response head. A request
whose app suspends is finished by the loop before the next is fed, so the
figure then includes the loop's turns. Prints the best of `--repeat` batches,
timed in the thread's CPU time (`time.thread_time()`), so that other work
taking turns on the core does not count.

`--parts` times the pieces of the adapter's share on their own (scope
construction, `get_extra_info`, the header list, `take_framing`, encoding
the head): what each would save if it went.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import pstats
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

# bench/http.py would hide the stdlib's `http` package: put the repository
# root first instead of this folder.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import treadle  # noqa: E402
from treadle.asgi import ASGIRunner  # noqa: E402

REQUEST = b"GET /hello/world HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
APPS = {
    "bare": ("bench.apps.asgi_app:app", b"<h1>hello, world!</h1>"),
    "starlette": ("bench.apps.asgi_starlette:app", b"<h1>hello, world!</h1>"),
    "fastapi": ("bench.apps.asgi_fastapi:app", b'{"message":"hello, world!"}'),
}
EXTRA = {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}


class KeepingTransport(asyncio.Transport):
    """Takes every write and keeps the last; never pauses, never closes;
    `get_extra_info` answers as a connected TCP socket's transport does."""

    def __init__(self) -> None:
        super().__init__(dict(EXTRA))
        self.writes = 0
        self.last = b""
        self.on_write: Callable[[], None] | None = None

    def write(self, data: Any) -> None:
        self.writes += 1
        self.last = bytes(data)
        if self.on_write is not None:
            self.on_write()

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class Feeder:
    """Feeds `count` requests from plain loop callbacks, one after another: a
    request answered inside `data_received` is followed at once by the next;
    one whose app suspended is followed from the callback its write makes."""

    def __init__(self, feed: Callable[[bytes], None], transport: KeepingTransport) -> None:
        self.feed = feed
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.left = 0
        self.done: asyncio.Future[None] | None = None
        self.waiting = False

    async def run(self, count: int) -> None:
        self.left = count
        self.done = self.loop.create_future()
        self.transport.on_write = self._written
        self.loop.call_soon(self._step)
        await self.done
        self.transport.on_write = None

    def _written(self) -> None:
        if self.waiting:
            self.waiting = False
            self.loop.call_soon(self._step)

    def _step(self) -> None:
        transport = self.transport
        while self.left:
            self.left -= 1
            before = transport.writes
            self.feed(REQUEST)
            if transport.writes == before:
                self.waiting = True  # the app suspended: go on when it writes
                return
        assert self.done is not None
        self.done.set_result(None)


async def measure(name: str, args: argparse.Namespace) -> str:
    target, expected = APPS[name]
    module, _, attribute = target.partition(":")
    app = getattr(importlib.import_module(module), attribute)
    runner = ASGIRunner(app, access_log=None)
    await runner.setup()
    try:
        factory = runner.server
        assert factory is not None
        protocol = factory()
        transport = KeepingTransport()
        protocol.connection_made(transport)
        feeder = Feeder(protocol.data_received, transport)
        try:
            await feeder.run(2000)  # warm up: caches, the interpreter's specializations
            if not transport.last.endswith(expected):
                raise SystemExit(f"{name}: unexpected response: {transport.last!r}")
            if args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                await feeder.run(args.requests)
                profiler.disable()
                print(f"\n{name}: cProfile of {args.requests} requests, by own time")
                pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
                return ""
            alone = AppAlone(app)
            best = best_alone = float("inf")
            before = transport.writes
            # The two alternate batch by batch, so that the machine's ups and
            # downs fall on both alike.
            for _ in range(args.repeat):
                start = time.thread_time()
                await feeder.run(args.requests)
                best = min(best, (time.thread_time() - start) / args.requests)
                best_alone = min(best_alone, alone.run(args.requests))
            answered = transport.writes - before
            if answered != args.requests * args.repeat:
                raise SystemExit(f"{answered} responses for {args.requests * args.repeat} requests")
        finally:
            protocol.connection_lost(None)
        return (
            f"{name:<10} {best * 1e6:6.2f} us per request; the app alone "
            f"{best_alone * 1e6:6.2f} us, so Treadle's share {(best - best_alone) * 1e6:5.2f} us"
        )
    finally:
        await runner.cleanup()


class AppAlone:
    """The app called with a minimal scope and a `send` that does nothing,
    its coroutine driven by hand as a server's first step does: what the
    app costs on any server."""

    SCOPE: Final = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": EXTRA["sockname"],
        "client": EXTRA["peername"],
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": "/hello/world",
        "raw_path": b"/hello/world",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8080")],
    }

    def __init__(self, app: Any) -> None:
        self.app = app

    @staticmethod
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    @staticmethod
    async def send(message: Any) -> None:
        pass

    def run(self, count: int) -> float:
        """Seconds of CPU per call, over `count` calls."""
        app, scope, receive, send = self.app, self.SCOPE, self.receive, self.send
        start = time.thread_time()
        for _ in range(count):
            coro = app({**scope, "headers": list(scope["headers"])}, receive, send)
            try:
                coro.send(None)
            except StopIteration:
                pass
            else:
                raise SystemExit("the app suspended with a send that never waits")
        return (time.thread_time() - start) / count


def parts() -> None:
    """Time the pieces of the adapter's work for one request on their own."""
    from treadle.asgi import SPEC_VERSION
    from treadle.http.parser import RequestParser
    from treadle.http.writer import encode_block, take_framing

    parser = RequestParser()
    parser.feed(REQUEST)
    request = parser.next_head()
    assert request is not None
    transport = KeepingTransport()

    def _address(value: Any) -> tuple[str, int] | None:
        # What a per-request read of the addresses would cost (Treadle reads
        # them once per connection since 2026-12-02: ResponseWriter.server/.client).
        return (str(value[0]), int(value[1])) if isinstance(value, tuple) else None

    def extra() -> None:
        _address(transport.get_extra_info("sockname"))
        _address(transport.get_extra_info("peername"))

    def header_list() -> None:
        [(lname, value) for lname, _, value in request.headers._fields]

    def scope() -> None:
        target = request.target
        raw_path = target
        {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": SPEC_VERSION},
            "http_version": "1.1" if request.version == (1, 1) else "1.0",
            "server": ("127.0.0.1", 8080),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "method": request.method,
            "root_path": "",
            "path": "" + raw_path,
            "raw_path": b"" + raw_path.encode("latin-1"),
            "query_string": b"",
            "headers": [],
            "extensions": {"http.response.trailers": {}, "http.response.pathsend": {}},
        }

    app_headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", b"22"),
    ]

    def framing() -> None:
        take_framing(app_headers)

    pairs, _ = take_framing(app_headers)

    def block() -> None:
        encode_block(pairs)

    frozen = tuple(pairs)

    def frozen_block() -> None:
        # What the writer's cache costs for a header tuple it has seen.
        hash(frozen)

    async def coroutine() -> None:
        pass

    def await_frame() -> None:
        # One `await send(...)`'s price when the coroutine never suspends.
        coro = coroutine()
        try:
            coro.send(None)
        except StopIteration:
            pass

    print("\nthe adapter's pieces, us per call (best of 7 x 200,000):")
    for label, func in (
        ("scope dict (literal, no headers, no extra info)", scope),
        ("get_extra_info x2 + _address x2", extra),
        ("header list from the parsed fields", header_list),
        ("take_framing of [content-type, content-length]", framing),
        ("encode_block of the remaining field (per request today)", block),
        ("hash of a header tuple (the block cache's lookup)", frozen_block),
        ("a coroutine call that returns at once", await_frame),
    ):
        timer = timeit.Timer(func)
        best = min(timer.repeat(7, 200_000)) / 200_000
        print(f"  {best * 1e6:6.3f}  {label}")


async def main(args: argparse.Namespace) -> None:
    print(f"Python {sys.version.split()[0]}; GET /hello/world in-process, best of {args.repeat}")
    for name in args.app or ["bare"]:
        line = await measure(name, args)
        if line:
            print(line, flush=True)
    if args.parts:
        parts()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--app", action="append", choices=list(APPS), help="repeatable")
    parser.add_argument("--requests", type=int, default=2000, help="requests per batch")
    parser.add_argument("--repeat", type=int, default=50, help="batches (the best counts)")
    parser.add_argument("--profile", action="store_true", help="cProfile one batch instead")
    parser.add_argument("--top", type=int, default=30, help="--profile: functions shown")
    parser.add_argument("--parts", action="store_true", help="also time the adapter's pieces")
    treadle.run(main(parser.parse_args()))
