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
- sock_echo: 100-byte round trips over a socketpair with sock_sendall/sock_recv.
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


BENCHMARKS: dict[str, Callable[[asyncio.AbstractEventLoop, float], tuple[int, float]]] = {
    "call_soon": bench_call_soon,
    "tasks": bench_tasks,
    "sleep0": bench_sleep0,
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


def measure(name: str, kind: str, seconds: float, repeat: int, cpu: int | None) -> float:
    best = 0.0
    for _ in range(repeat):
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
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS))
    parser.add_argument("--cpu", type=int, default=0, help="pin to this CPU (-1: no pinning)")
    parser.add_argument("--child", nargs=2, metavar=("BENCH", "LOOP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.seconds)
        return
    cpu = None if args.cpu < 0 or not hasattr(os, "sched_setaffinity") else args.cpu
    kinds = available_loops()
    names = args.only or list(BENCHMARKS)
    print(
        f"Python {sys.version.split()[0]}, {args.seconds}s x best of {args.repeat}, "
        f"pinned to CPU {cpu}"
    )
    header = f"{'benchmark':<11}" + "".join(f"{k + ' ops/s':>16}" for k in kinds)
    header += "".join(f"{k + '/asyncio':>18}" for k in kinds if k != "asyncio")
    print(header)
    for name in names:
        results = {k: measure(name, k, args.seconds, args.repeat, cpu) for k in kinds}
        row = f"{name:<11}" + "".join(f"{results[k]:>16,.0f}" for k in kinds)
        row += "".join(
            f"{results[k] / results['asyncio']:>17.2f}x" for k in kinds if k != "asyncio"
        )
        print(row, flush=True)


if __name__ == "__main__":
    main()
