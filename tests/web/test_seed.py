"""The seed's program 5, its web server, run unchanged as a subprocess.

It binds 127.0.0.1:8000 itself, so the tests skip when that port is taken.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import treadle

ROOT = Path(__file__).resolve().parents[2]
HOST, PORT = "127.0.0.1", 8000
DEADLINE = 30.0


def port_taken() -> bool:
    with socket.socket() as probe:
        # As the server will: SO_REUSEADDR, so a closing connection's
        # TIME_WAIT does not count as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, PORT))
        except OSError:
            return True
    return False


@pytest.fixture(scope="module")
def seed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """examples/seed_5_web.py, serving until the module's tests are done."""
    if port_taken():
        pytest.skip(f"{HOST}:{PORT} is in use; the seed's program 5 needs it")
    stderr = tmp_path_factory.mktemp("seed") / "stderr.txt"
    with open(stderr, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-u", str(ROOT / "examples" / "seed_5_web.py")],
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], DEADLINE)
        line = proc.stdout.readline() if ready else ""
        if line != f"Server started at http://{HOST}:{PORT}...\n":
            if "Address already in use" in stderr.read_text():
                pytest.skip(f"{HOST}:{PORT} was taken just before the server bound it")
            pytest.fail(f"the server did not start: {line!r}; stderr: {stderr.read_text()}")
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(DEADLINE)
        assert proc.stdout is not None
        proc.stdout.close()


def get(path: str) -> tuple[int, str | None, bytes]:
    conn = http.client.HTTPConnection(HOST, PORT, timeout=DEADLINE)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read()
    finally:
        conn.close()


def test_index_and_hello(seed_server: None) -> None:
    assert get("/") == (200, "text/html", b"<h1>Index</h1>")
    assert get("/hello/world") == (200, "text/html", b"<h1>hello, world!</h1>")


def test_200_concurrent_clients_all_answered(seed_server: None) -> None:
    # Each handler sleeps 0.5 s. All 200 requests are sent before any answer
    # is read, so all 200 are in flight at once; served one at a time they
    # would take 100 s, and the overall bound below would fail the test.
    clients = 200

    async def main() -> list[bytes]:
        connections = await asyncio.gather(
            *(asyncio.open_connection(HOST, PORT) for _ in range(clients))
        )
        try:
            for n, (_, writer) in enumerate(connections):
                writer.write(f"GET /hello/client{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await asyncio.gather(*(writer.drain() for _, writer in connections))
            return await asyncio.gather(*(read_response(r) for r, _ in connections))
        finally:
            for _, writer in connections:
                writer.close()

    async def read_response(reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return await reader.readexactly(length)

    async def bounded() -> list[bytes]:
        return await asyncio.wait_for(main(), DEADLINE)

    bodies = treadle.run(bounded())
    assert bodies == [f"<h1>hello, client{n}!</h1>".encode() for n in range(clients)]
