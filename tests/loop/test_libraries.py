"""Libraries nobody here wrote, running on Treadle's loop (and the stdlib loop)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tests.conftest import run

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402


def test_aiohttp_server_and_client(loop: asyncio.AbstractEventLoop) -> None:
    async def hello(request: web.Request) -> web.Response:
        await asyncio.sleep(0.001)
        return web.Response(text=f"hello, {request.match_info['name']}!")

    async def upload(request: web.Request) -> web.Response:
        data = await request.read()
        return web.json_response({"size": len(data)})

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for i in range(100):
            await resp.write(b"chunk %d\n" % i)
        await resp.write_eof()
        return resp

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/hello/{name}", hello)
        app.router.add_post("/upload", upload)
        app.router.add_get("/stream", stream)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/hello/world") as resp:
                    assert resp.status == 200
                    assert await resp.text() == "hello, world!"
                results = await asyncio.gather(
                    *(session.get(f"{base}/hello/{i}") for i in range(50))
                )
                for i, resp in enumerate(results):
                    assert await resp.text() == f"hello, {i}!"
                    resp.release()
                payload = b"x" * 500_000  # aiohttp warns above 1 MiB of raw bytes
                async with session.post(f"{base}/upload", data=payload) as resp:
                    assert await resp.json() == {"size": len(payload)}
                async with session.get(f"{base}/stream") as resp:
                    body = await resp.read()
                assert body.splitlines() == [b"chunk %d" % i for i in range(100)]
                async with session.get(f"{base}/missing") as resp:
                    assert resp.status == 404
        finally:
            await runner.cleanup()

    run(loop, main())


def test_subprocess_exec_through_cat(loop: asyncio.AbstractEventLoop) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: more than a pipe buffer

    async def main() -> tuple[bytes, int]:
        proc = await asyncio.create_subprocess_exec(
            "cat", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate(payload)
        return out, proc.returncode or 0

    out, code = run(loop, main())
    assert out == payload
    assert code == 0


def test_subprocess_python_child(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> tuple[bytes, bytes, int | None]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        return out, err, proc.returncode

    assert run(loop, main()) == (b"out\n", b"err\n", 3)
