"""The server with its C fast paths switched off, end to end.

`TREADLE_NO_EXTENSIONS=1` at start-up is the operator's off switch for the
optional C code: the parser's head and chunk scanners and WebSocket masking.
The parser's own tests compare its two paths verdict by verdict; here a
whole server runs without the C code, in a process of its own started with
the variable set, as `treadle run` on Treadle's loop and as a script calling
`web.run_app` on the stdlib loop. Its app reports from inside that the fast
paths are off (the names the code calls, not only the modules' flags), then
it serves a mix: GET, a chunked POST with a trailer, pipelined requests,
requests it must refuse with 400, and a WebSocket echo whose client frames
are unmasked in Python.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.conftest import run
from tests.http.test_server import closed_by_server, connect, read_response
from tests.web.test_cli import DEADLINE, Running, subprocess_env

APP = '''
"""The app tests/http/test_pure_python.py serves."""
import asyncio
import sys

import treadle.http.parser
import treadle.websocket.codec
import treadle.websocket.frames
from treadle import web


async def fast_paths(request):
    python_mask = treadle.websocket.frames.python_mask
    return web.json_response(
        {
            "scan_head": treadle.http.parser._scan_head is None,
            "scan_chunks": treadle.http.parser._scan_chunks is None,
            "frames.mask": treadle.websocket.frames.mask is python_mask,
            "codec.mask": treadle.websocket.codec.mask is python_mask,
            "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        }
    )


async def echo(request):
    data = await request.read()
    return web.Response(body=f"{request.method} {request.path_qs} ".encode() + data)


async def ws_echo(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == web.WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == web.WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


app = web.Application()
app.router.add_get("/fast-paths", fast_paths)
app.router.add_route("*", "/echo", echo)
app.router.add_get("/ws", ws_echo)

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=0, loop=asyncio.new_event_loop())
'''


@contextmanager
def serving(cwd: Path, loop_kind: str) -> Iterator[Running]:
    """The app served with TREADLE_NO_EXTENSIONS=1 on a `loop_kind` loop,
    once it has printed its banner; its whole process group is killed after."""
    if loop_kind == "treadle":
        argv = [sys.executable, "-m", "treadle", "run", "pureapp:app", "--port", "0"]
    else:
        argv = [sys.executable, "pureapp.py"]
    stderr = cwd / "stderr.txt"
    with open(stderr, "w") as err:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**subprocess_env(), "TREADLE_NO_EXTENSIONS": "1"},
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], DEADLINE)
        banner = proc.stdout.readline() if ready else ""
        if not banner.startswith("======== Running on "):
            pytest.fail(f"no banner: {banner!r}; stderr: {stderr.read_text()}")
        yield Running(proc, banner.strip(), stderr)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
def test_the_server_without_its_c_fast_paths(
    loop: asyncio.AbstractEventLoop, loop_kind: str, tmp_path: Path
) -> None:
    (tmp_path / "pureapp.py").write_text(APP)

    async def main(port: int) -> None:
        async with connect(port) as (reader, writer):
            writer.write(b"GET /fast-paths HTTP/1.1\r\nHost: t\r\n\r\n")
            resp = await read_response(reader)
            assert resp.status == 200
            assert json.loads(resp.body) == {
                "scan_head": True,
                "scan_chunks": True,
                "frames.mask": True,
                "codec.mask": True,
                "loop": "treadle" if loop_kind == "treadle" else "asyncio",
            }

            # Pipelined, in one write: a GET, a chunked POST (an extension and
            # a trailer), a POST by Content-Length, and a HEAD.
            writer.write(
                b"GET /echo?a=1 HTTP/1.1\r\nHost: t\r\n\r\n"
                b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Sum: 12\r\n\r\n"
                b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                b"HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\n"
            )
            assert (await read_response(reader)).body == b"GET /echo?a=1 "
            assert (await read_response(reader)).body == b"POST /echo hello, world"
            assert (await read_response(reader)).body == b"POST /echo abc"
            head = await read_response(reader, head=True)
            assert head.status == 200 and head.header("Content-Length") == str(len(b"HEAD /echo "))

        # Refused with 400 and closed: a broken head, after a good request
        # (answered first); a broken chunk size.
        async with connect(port) as (reader, writer):
            writer.write(
                b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"
                b"GET /echo HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n"
            )
            assert (await read_response(reader)).status == 200
            resp = await read_response(reader)
            assert resp.status == 400 and resp.header("Connection") == "close"
            assert await closed_by_server(reader)
        async with connect(port) as (reader, writer):
            writer.write(
                b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\nzz\r\n"
            )
            assert (await read_response(reader)).status == 400
            assert await closed_by_server(reader)

        # A WebSocket echo: the client's frames are masked, so the server
        # unmasks each in Python (a short one, and one of 64-bit length).
        async with ws_connect(f"ws://127.0.0.1:{port}/ws", compression=None) as ws:
            await ws.send("h\xe9llo")
            assert await asyncio.wait_for(ws.recv(), DEADLINE) == "h\xe9llo"
            big = bytes(range(256)) * 300
            await ws.send(big)
            assert await asyncio.wait_for(ws.recv(), DEADLINE) == big

    with serving(tmp_path, loop_kind) as server:
        run(loop, main(server.port))
        assert server.stop() == 0
    assert "Traceback" not in server.stderr
