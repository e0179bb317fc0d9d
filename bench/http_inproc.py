"""The web server's own cost per request, without sockets: microseconds per hello.

    taskset -c 0 .venv/bin/python bench/http_inproc.py
    taskset -c 0 .venv/bin/python bench/http_inproc.py --requests 20000 --repeat 15
    taskset -c 0 .venv/bin/python bench/http_inproc.py --profile   # cProfile, by own time

One connection of the benchmark app (bench/apps/treadle_app.py, the handlers
bench/http.py serves) gets `GET /hello/world`, the bytes wrk sends, through
`data_received` again and again, from a plain loop callback as a transport
would call it. The transport is a stand-in that only keeps what is written, so
what is timed is Treadle's share: parsing, the handler's Task, routing, the
handler, the response head. `bench/http.py` measures the whole, kernel
included; this one is for seeing what a change to that share is worth, with
less noise than a wrk run. Prints the best of `--repeat` batches.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from pathlib import Path
from typing import Any

# bench/http.py would hide the stdlib's `http` package: put the repository
# root first instead of this folder.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import treadle  # noqa: E402
from bench.apps import routes_for  # noqa: E402
from treadle import web  # noqa: E402

REQUEST = b"GET /hello/world HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
EXPECTED = b"<h1>hello, world!</h1>"


class KeepingTransport(asyncio.Transport):
    """Takes every write and keeps the last; never pauses, never closes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.last = b""

    def write(self, data: Any) -> None:
        self.writes += 1
        self.last = bytes(data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


def measure(feed: Any, transport: KeepingTransport, args: argparse.Namespace) -> str:
    for _ in range(2000):  # warm up: caches, the interpreter's specializations
        feed(REQUEST)
    if not transport.last.endswith(EXPECTED):
        raise SystemExit(f"unexpected response: {transport.last!r}")
    before = transport.writes
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.requests):
            feed(REQUEST)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return ""
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        for _ in range(args.requests):
            feed(REQUEST)
        best = min(best, (time.perf_counter() - start) / args.requests)
    answered = transport.writes - before
    if answered != args.requests * args.repeat:
        raise SystemExit(f"{answered} responses for {args.requests * args.repeat} requests")
    return f"hello in-process: {best * 1e6:.2f} us per request (Python {sys.version.split()[0]})"


async def main(args: argparse.Namespace) -> None:
    app = web.Application()
    app.add_routes(routes_for(web))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        factory = runner.server
        assert factory is not None
        protocol = factory()
        transport = KeepingTransport()
        protocol.connection_made(transport)
        # Run from a plain callback, as a transport calls data_received: inside
        # this coroutine's Task, Python 3.11 could not start handlers eagerly.
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()
        loop.call_soon(lambda: done.set_result(measure(protocol.data_received, transport, args)))
        print(await done)
        protocol.connection_lost(None)
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests per batch")
    parser.add_argument("--repeat", type=int, default=15, help="batches (the best counts)")
    parser.add_argument("--profile", action="store_true", help="cProfile one batch instead")
    treadle.run(main(parser.parse_args()))
