"""The Autobahn case files against Treadle, aiohttp and websockets, in one run,
for docs/compatibility.md: per section, how many cases ended OK, NON-STRICT,
INFORMATIONAL or otherwise, which failed, and how long each section took.

    .venv/bin/python tests/websocket/autobahn_compare.py                # 1-7, 9, 10
    .venv/bin/python tests/websocket/autobahn_compare.py --deflate      # 12 and 13 too
    .venv/bin/python tests/websocket/autobahn_compare.py --only treadle

Each server is an echo server in a process of its own, pinned to core 0 with
taskset when it is there (kosoku on core 1): Treadle (`treadle run
tests.websocket.autobahn_app:app`, Treadle's loop), aiohttp
(`web.WebSocketResponse(max_msg_size=0)` on the stdlib loop) and websockets
(`websockets.asyncio.server.serve`, `max_size=None`), compression accepted
where offered, as each does by default.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

AIOHTTP = """
import sys
from aiohttp import web

async def echo(request):
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == web.WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == web.WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws

app = web.Application()
app.router.add_get("/", echo)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""

WEBSOCKETS = """
import asyncio, sys
from websockets.asyncio.server import serve

async def echo(ws):
    async for msg in ws:
        await ws.send(msg)

async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1]), max_size=None):
        await asyncio.Future()

asyncio.run(main())
"""

SERVERS = {
    "treadle": lambda port: [
        sys.executable,
        "-m",
        "treadle",
        "run",
        "tests.websocket.autobahn_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ],
    "aiohttp": lambda port: [sys.executable, "-c", AIOHTTP, str(port)],
    "websockets": lambda port: [sys.executable, "-c", WEBSOCKETS, str(port)],
}
SECTIONS = ["1", "2", "3", "4", "5", "6", "7", "9", "10"]
DEFLATE_SECTIONS = ["12", "13"]
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpu: int, args: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *args] if shutil.which("taskset") else args


def run_section(name: str, section: str, kosoku: str) -> tuple[dict[str, dict[str, object]], float]:
    port = free_port()
    server = subprocess.Popen(
        pinned(0, SERVERS[name](port)),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        with tempfile.TemporaryDirectory() as out:
            started = time.monotonic()
            subprocess.run(
                pinned(
                    1, [kosoku, f"127.0.0.1:{port}", "-i", f"{section}.*", "-p", "4", "-o", out]
                ),
                timeout=3600,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            took = time.monotonic() - started
            (results,) = json.loads((Path(out) / "index.json").read_text()).values()
        return dict(results), took
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", choices=sorted(SERVERS))
    parser.add_argument("--deflate", action="store_true", help="sections 12 and 13 too")
    args = parser.parse_args()
    kosoku = shutil.which("kosoku", path=str(Path(sys.executable).parent)) or shutil.which("kosoku")
    if kosoku is None:
        sys.exit("kosoku is not installed (pip install -e '.[test]')")
    names = args.only or list(SERVERS)
    sections = SECTIONS + (DEFLATE_SECTIONS if args.deflate else [])
    print("| section | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    for section in sections:
        cells = []
        for name in names:
            results, took = run_section(name, section, kosoku)
            verdicts = Counter(
                "pass" if r["behavior"] in PASSING and r["behaviorClose"] in PASSING else "fail"
                for r in results.values()
            )
            kinds = Counter(str(r["behavior"]) for r in results.values())
            failed = sorted(
                (
                    c
                    for c, r in results.items()
                    if r["behavior"] not in PASSING or r["behaviorClose"] not in PASSING
                ),
                key=lambda c: [int(p) for p in c.split(".")],
            )
            detail = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
            cell = f"{verdicts['pass']}/{len(results)} ({detail}; {took:.1f} s)"
            if failed:
                cell += " fails: " + ", ".join(failed[:8]) + (" ..." if len(failed) > 8 else "")
            cells.append(cell)
        print(f"| {section} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
