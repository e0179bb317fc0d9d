"""Event loop micro-benchmarks: Treadle against the stdlib loop and uvloop, in one run.

    python bench/loop.py                 # every benchmark, every loop installed
    python bench/loop.py --only echo --seconds 3

Each (benchmark, loop) pair runs in a fresh interpreter pinned to one core (CPU
0 by default, `--cpu`), `--repeat` times; the best run counts (the least
disturbed by the rest of the machine). Printed: operations per second for each
loop and the ratios against the stdlib loop.

Benchmarks:
- call_soon: 100 callback chains, each callback scheduling the next one.
- tasks: spawn 1,000 trivial tasks and gather them, repeatedly (ops = tasks).
- sleep0: two tasks switching with `await asyncio.sleep(0)` (ops = switches).
- timeouts: `async with asyncio.timeout(10): await asyncio.sleep(0)` (a timer
  made and cancelled per operation).
- sock_echo: 100-byte round trips over a socketpair with sock_sendall/sock_recv.

Network benchmarks (the server alone on `--cpu`, the load generator on
`--load-cpu`, each in its own process):
- stream_echo: an `asyncio.start_server` echo server (StreamReader/StreamWriter);
  the load is 50 connections each doing 100-byte round trips, driven by a
  client on uvloop (or the stdlib loop). ops = round trips.
- http_protocol: a minimal HTTP/1.1 server on a bare `asyncio.Protocol`
  answering every request with a fixed 200; the load is `wrk -t1 -c64`.
  ops = requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "treadle":
        import treadle

        return treadle.new_event_loop()
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


# Each benchmark runs for about `seconds` on `loop` and returns (ops, elapsed).


def bench_call_soon(loop: asyncio.AbstractEventLoop, seconds: float) -> tuple[int, float]:
    count = 0
    deadline = time.perf_counter() + seconds
    chains = 100
    stopped = False

    def step() -> None:
        nonlocal count, stopped
        count += 1
        if count & 1023 == 0 and time.perf_counter() >= deadline:
            if not stopped:
                stopped = True
                loop.stop()
            return
        if not stopped:
            loop.call_soon(step)

    start = time.perf_counter()
    for _ in range(chains):
        loop.call_soon(step)
    loop.run_forever()
    return count, time.perf_counter() - start


def bench_tasks(loop: asyncio.AbstractEventLoop, seconds: float) -> tuple[int, float]:
    async def noop() -> None:
        pass

    async def main() -> int:
        count = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            await asyncio.gather(*[noop() for _ in range(1000)])
            count += 1000
        return count

    start = time.perf_counter()
    count = loop.run_until_complete(main())
    return count, time.perf_counter() - start


def bench_sleep0(loop: asyncio.AbstractEventLoop, seconds: float) -> tuple[int, float]:
    count = 0
    deadline = time.perf_counter() + seconds

    async def switcher() -> None:
        nonlocal count
        while True:
            for _ in range(1000):
                await asyncio.sleep(0)
            count += 1000
            if time.perf_counter() >= deadline:
                return

    async def main() -> None:
        await asyncio.gather(switcher(), switcher())

    start = time.perf_counter()
    loop.run_until_complete(main())
    return count, time.perf_counter() - start


def bench_timeouts(loop: asyncio.AbstractEventLoop, seconds: float) -> tuple[int, float]:
    """`asyncio.timeout()` around an await that finishes in time: a timer
    scheduled, rescheduled away and cancelled per operation."""

    async def main() -> int:
        count = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for _ in range(1000):
                async with asyncio.timeout(10):
                    await asyncio.sleep(0)
            count += 1000
        return count

    start = time.perf_counter()
    count = loop.run_until_complete(main())
    return count, time.perf_counter() - start


def bench_sock_echo(loop: asyncio.AbstractEventLoop, seconds: float) -> tuple[int, float]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    message = b"x" * 100

    async def server() -> None:
        while True:
            data = await loop.sock_recv(a, 65536)
            if not data:
                return
            await loop.sock_sendall(a, data)

    async def client() -> int:
        count = 0
        deadline = time.perf_counter() + seconds
        while True:
            for _ in range(100):
                await loop.sock_sendall(b, message)
                received = 0
                while received < len(message):
                    received += len(await loop.sock_recv(b, 65536))
            count += 100
            if time.perf_counter() >= deadline:
                b.shutdown(socket.SHUT_WR)
                return count

    async def main() -> int:
        srv = asyncio.ensure_future(server())
        count = await client()
        await srv
        return count

    start = time.perf_counter()
    try:
        count = loop.run_until_complete(main())
    finally:
        a.close()
        b.close()
    return count, time.perf_counter() - start


# -- network benchmarks: a server process and a load-generator process ---------------------


async def _stream_echo_server(loop: asyncio.AbstractEventLoop) -> asyncio.AbstractServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


_HTTP_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!"
)


class _HTTPProtocol(asyncio.Protocol):
    """Just enough HTTP/1.1 for wrk: every request head gets the same answer."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        count = buffer.count(b"\r\n\r\n")
        if count:
            self.transport.write(_HTTP_RESPONSE * count)
            buffer = buffer[buffer.rfind(b"\r\n\r\n") + 4 :]
        self.buffer = buffer


async def _http_server(loop: asyncio.AbstractEventLoop) -> asyncio.AbstractServer:
    return await loop.create_server(_HTTPProtocol, "127.0.0.1", 0)


SERVERS = {"stream_echo": _stream_echo_server, "http_protocol": _http_server}


def serve_child(name: str, kind: str) -> None:
    """Run one benchmark server until stdin closes; print its port first."""
    loop = make_loop(kind)
    server = loop.run_until_complete(SERVERS[name](loop))
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = loop.create_future()
    loop.add_reader(sys.stdin.fileno(), lambda: stop.done() or stop.set_result(None))
    loop.run_until_complete(stop)
    server.close()
    loop.close()


def echo_load_child(port: int, seconds: float, connections: int = 50) -> None:
    """Drive an echo server: `connections` clients doing 100-byte round trips."""
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    message = b"x" * 100
    count = 0

    class Client(asyncio.Protocol):
        def __init__(self, deadline: float, done: asyncio.Future[None]) -> None:
            self.deadline, self.done, self.pending = deadline, done, 0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.transport.write(message)

        def data_received(self, data: bytes) -> None:
            nonlocal count
            self.pending += len(data)
            while self.pending >= len(message):
                self.pending -= len(message)
                count += 1
                if time.perf_counter() < self.deadline:
                    self.transport.write(message)
                elif not self.done.done():
                    self.done.set_result(None)

    async def run(duration: float) -> None:
        done = loop.create_future()
        deadline = time.perf_counter() + duration
        transports = []
        for _ in range(connections):
            t, _ = await loop.create_connection(lambda: Client(deadline, done), "127.0.0.1", port)
            transports.append(t)
        await done
        for t in transports:
            t.close()

    loop.run_until_complete(run(min(0.5, seconds / 4)))  # warm-up
    count = 0
    start = time.perf_counter()
    loop.run_until_complete(run(seconds))
    elapsed = time.perf_counter() - start
    loop.close()
    print(json.dumps({"ops_per_s": count / elapsed}))


def _pin(cmd: list[str], cpu: int | None) -> list[str]:
    return cmd if cpu is None else ["taskset", "-c", str(cpu), *cmd]


def measure_network(
    name: str, kind: str, seconds: float, cpu: int | None, load_cpu: int | None
) -> float:
    server = subprocess.Popen(
        _pin([sys.executable, __file__, "--serve", name, kind], cpu),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    try:
        port = int(server.stdout.readline())
        if name == "http_protocol":
            url = f"http://127.0.0.1:{port}/"
            warm = ["wrk", "-t1", "-c64", "-d1s", url]
            subprocess.run(_pin(warm, load_cpu), capture_output=True, check=True)
            cmd = ["wrk", "-t1", "-c64", f"-d{max(1, round(seconds))}s", url]
            out = subprocess.run(
                _pin(cmd, load_cpu), capture_output=True, text=True, check=True
            ).stdout
            line = next(x for x in out.splitlines() if x.startswith("Requests/sec:"))
            return float(line.split()[1])
        cmd = [sys.executable, __file__, "--echo-load", str(port), "--seconds", str(seconds)]
        out = subprocess.run(_pin(cmd, load_cpu), capture_output=True, text=True, check=True).stdout
        return float(json.loads(out)["ops_per_s"])
    finally:
        server.stdin.close()
        server.wait(timeout=30)
        server.stdout.close()


BENCHMARKS: dict[str, Callable[[asyncio.AbstractEventLoop, float], tuple[int, float]]] = {
    "call_soon": bench_call_soon,
    "tasks": bench_tasks,
    "sleep0": bench_sleep0,
    "timeouts": bench_timeouts,
    "sock_echo": bench_sock_echo,
}


def child(name: str, kind: str, seconds: float) -> None:
    loop = make_loop(kind)
    try:
        BENCHMARKS[name](loop, min(0.3, seconds / 4))  # warm-up
        ops, elapsed = BENCHMARKS[name](loop, seconds)
    finally:
        loop.close()
    print(json.dumps({"ops_per_s": ops / elapsed}))


def available_loops() -> list[str]:
    kinds = ["asyncio", "treadle"]
    try:
        import uvloop  # noqa: F401

        kinds.append("uvloop")
    except ImportError:
        pass
    return kinds


def measure(
    name: str, kind: str, seconds: float, repeat: int, cpu: int | None, load_cpu: int | None
) -> float:
    best = 0.0
    for _ in range(repeat):
        if name in SERVERS:
            best = max(best, measure_network(name, kind, seconds, cpu, load_cpu))
            continue
        cmd = [sys.executable, __file__, "--child", name, kind, "--seconds", str(seconds)]
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        best = max(best, json.loads(out)["ops_per_s"])
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measured run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per pair; best counts")
    parser.add_argument("--only", action="append", choices=sorted([*BENCHMARKS, *SERVERS]))
    parser.add_argument("--cpu", type=int, default=0, help="pin to this CPU (-1: no pinning)")
    parser.add_argument("--load-cpu", type=int, default=1, help="the load generator's CPU")
    parser.add_argument("--child", nargs=2, metavar=("BENCH", "LOOP"), help=argparse.SUPPRESS)
    parser.add_argument("--serve", nargs=2, metavar=("BENCH", "LOOP"), help=argparse.SUPPRESS)
    parser.add_argument("--echo-load", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.seconds)
        return
    if args.serve:
        serve_child(args.serve[0], args.serve[1])
        return
    if args.echo_load:
        echo_load_child(args.echo_load, args.seconds)
        return
    pinning = args.cpu >= 0 and hasattr(os, "sched_setaffinity")
    cpu = args.cpu if pinning else None
    load_cpu = args.load_cpu if pinning else None
    kinds = available_loops()
    names = args.only or [*BENCHMARKS, *SERVERS]
    print(
        f"Python {sys.version.split()[0]}, {args.seconds}s x best of {args.repeat}, "
        f"pinned to CPU {cpu}"
    )
    header = f"{'benchmark':<14}" + "".join(f"{k + ' ops/s':>16}" for k in kinds)
    header += "".join(f"{k + '/asyncio':>18}" for k in kinds if k != "asyncio")
    print(header)
    for name in names:
        results = {k: measure(name, k, args.seconds, args.repeat, cpu, load_cpu) for k in kinds}
        row = f"{name:<14}" + "".join(f"{results[k]:>16,.0f}" for k in kinds)
        row += "".join(
            f"{results[k] / results['asyncio']:>17.2f}x" for k in kinds if k != "asyncio"
        )
        print(row, flush=True)


if __name__ == "__main__":
    main()
