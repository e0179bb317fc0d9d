"""Generated traffic against a real server, on Treadle's loop and the stdlib loop.

The requests are the differential tests' valid requests and mutations of them,
one to three to a connection. Each connection's bytes are cut at random points
and written piece by piece, then the client ends its side. Whatever was sent,
the server must:
- answer with complete, well-formed HTTP/1.1 responses, and nothing else;
- close the connection;
- never report an error to the loop (the `loop` fixture fails the test if it
  does);
- be left with no connections and no more open descriptors than it started
  with, and go on serving a plain GET;
- meanwhile answer a well-behaved client on another connection exactly (no
  other client's data lost or mixed in).

Hypothesis runs derandomized and without a database, so CI is reproducible.
"""

from __future__ import annotations

import asyncio
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.conftest import run
from tests.http.peers import parse_treadle
from tests.http.test_differential import mutations, requests
from tests.http.test_server import GET, echo, read_response, serve
from treadle.http import ServerConfig

_STATUS_LINE = re.compile(rb"HTTP/1\.1 [1-5]\d\d [^\r\n]*\r\n")


def responses_in(data: bytes, methods: list[str]) -> list[int]:
    """The statuses of the complete responses `data` is made of (the n-th
    answering a request with the n-th of `methods`, if any: a HEAD's carries
    no body); fails on anything else (a partial response, stray bytes)."""
    statuses: list[int] = []
    pos = 0
    while pos < len(data):
        m = _STATUS_LINE.match(data, pos)
        assert m is not None, f"not a status line at {pos}: {data[pos : pos + 60]!r}"
        end = data.find(b"\r\n\r\n", m.start())
        assert end >= 0, f"unterminated head: {data[pos:]!r}"
        head = data[m.end() : end + 2].decode("latin-1")
        status = int(data[m.start() + 9 : m.start() + 12])
        lengths = re.findall(r"(?im)^content-length: *(\d+)\r$", head)
        pos = end + 4
        head_request = len(statuses) < len(methods) and methods[len(statuses)] == "HEAD"
        if status < 200:
            continue  # an interim response (100 Continue): the final one follows
        if lengths and not head_request:
            pos += int(lengths[0])
            assert pos <= len(data), "a body shorter than its Content-Length"
        elif not lengths and status not in (204, 304):
            raise AssertionError(f"a final response without Content-Length: {head!r}")
        statuses.append(status)
    return statuses


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@st.composite
def connection(draw: st.DrawFn) -> list[bytes]:
    """One connection's bytes, cut into the pieces it is written in."""
    items = draw(st.lists(st.one_of(requests(), mutations()), min_size=1, max_size=3))
    data = b"".join(items)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=5)))
    pieces, last = [], 0
    for cut in [*cuts, len(data)]:
        if cut > last:
            pieces.append(data[last:cut])
        last = cut
    return pieces


async def well_behaved_client(port: int) -> None:
    """Three pipelined requests with their own bodies; each echo must be exact."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in range(3):
            body = b"bystander %d " % i * (i + 1)
            writer.write(
                b"POST /b%d HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s"
                % (i, len(body), body)
            )
            await asyncio.sleep(0)
        for i in range(3):
            resp = await read_response(reader)
            assert resp.status == 200
            assert resp.body == b"POST /b%d " % i + b"bystander %d " % i * (i + 1)
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(pieces=connection())
def test_generated_traffic_gets_clean_answers(
    loop: asyncio.AbstractEventLoop, pieces: list[bytes]
) -> None:
    async def main() -> None:
        config = ServerConfig(header_timeout=5, body_timeout=5)
        async with serve(echo, config) as (port, http):
            before = open_fds()
            bystander = asyncio.ensure_future(well_behaved_client(port))
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                try:
                    for piece in pieces:
                        writer.write(piece)
                        await writer.drain()
                        await asyncio.sleep(0)
                    writer.write_eof()
                except OSError:
                    pass  # the server refused and closed while we were still sending
                try:
                    answer = await asyncio.wait_for(reader.read(), 10)  # to the server's close
                except ConnectionResetError:
                    # The server closed with our unread bytes in its buffer, so
                    # the kernel reset the connection: its answer may be lost.
                    answer = b""
            finally:
                writer.close()
            responses_in(answer, [m.method for m in parse_treadle(pieces).messages])
            await asyncio.wait_for(bystander, 10)
            for _ in range(1000):
                if http.connections == 0:
                    break
                await asyncio.sleep(0.01)
            assert http.connections == 0
            # Still serving, and no descriptor left behind by that connection.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(GET)
            assert (await read_response(reader)).status == 200
            writer.close()
            await writer.wait_closed()
            for _ in range(100):
                if open_fds() <= before:
                    break
                await asyncio.sleep(0.01)
            assert open_fds() <= before

    run(loop, main())
