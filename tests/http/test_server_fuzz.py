"""Generated traffic against a real server, on Treadle's loop and the stdlib loop.

The requests are the differential tests' valid requests and mutations of them,
one to three to a connection. Each connection's bytes are cut at random points
and written piece by piece, then the client ends its side. Whatever was sent,
the server must:
- answer with complete, well-formed HTTP/1.1 responses, and nothing else:
  one per request, as many as `expected()` works out with the parser the
  server uses (the echo of each complete request, then the status of the
  error, if the bytes break a rule or end inside a request), each the right
  status and echo;
- close the connection; it may reset it instead (closing with bytes of the
  client's unread) only after an error, or after a request that closes the
  connection with more bytes behind it, and even then the answer must be
  whole (on Linux a reset comes after the data sent before it, and the
  client, a RawClient, keeps that data, where a StreamReader would drop it);
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
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from tests.conftest import run
from tests.http.test_differential import mutations, requests
from tests.http.test_server import GET, RawClient, echo, read_response, serve
from treadle.http import HTTPError, Limits, ParserState, Request, RequestParser, ServerConfig

_STATUS_LINE = re.compile(rb"HTTP/1\.1 [1-5]\d\d [^\r\n]*\r\n")


@dataclass
class Expected:
    """What the server owes one connection's bytes: its answers in order, each
    a status and the method of the request it answers (a HEAD's answer has no
    body) with the body `echo` sends (None: not checked, an error's text); and
    whether the server may close while some of the client's bytes are unread
    (after an error, or after a request that closes the connection), in which
    case the kernel resets the connection (after the answer)."""

    answers: list[tuple[int, str, bytes | None]] = field(default_factory=list)
    may_reset: bool = False


def expected(data: bytes, limits: Limits) -> Expected:
    """The server's answers to `data`, worked out with the parser it uses:
    a 200 echoing each complete request (an upgrade is declined: parsing goes
    on), then, if the bytes break a rule or end inside a request, that error's
    status, answered in place of the request it was found in. Nothing else:
    after a request that closes the connection, the rest is not read."""
    parser = RequestParser(limits)
    parser.feed(data)
    out = Expected()
    head: Request | None = None
    body: list[bytes] = []
    at_eof = False
    try:
        while True:
            event = parser.next_event()
            if event is None:
                if parser.state == ParserState.PAUSED:
                    parser.resume()  # `echo` answers 200, not 101: HTTP goes on
                    continue
                if parser.state == ParserState.CLOSED:
                    out.may_reset = bool(parser.trailing_data)
                    return out
                at_eof = True
                parser.feed_eof()  # raises if the client's EOF cut a request short
                return out
            if isinstance(event, Request):
                assert event.method != "CONNECT", "not modelled: echo's 200 would open a tunnel"
                head, body = event, []
            elif isinstance(event, bytes):
                body.append(event)
            else:
                assert head is not None
                text = f"{head.method} {head.target} ".encode() + b"".join(body)
                if head.method == "HEAD":
                    text = b""  # the length of that, and no body
                out.answers.append((200, head.method, text))
                head = None
    except HTTPError as exc:
        # The server stops reading at a broken rule, maybe with bytes of ours
        # unread; a request cut short by our EOF is judged once all is read.
        out.may_reset = not at_eof
        out.answers.append((exc.status, "", None))
        return out


def responses_in(data: bytes, methods: list[str]) -> list[tuple[int, bytes]]:
    """The (status, body) of each complete response `data` is made of (the n-th
    answering a request with the n-th of `methods`, if any: a HEAD's carries
    no body); fails on anything else (a partial response, stray bytes)."""
    found: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        m = _STATUS_LINE.match(data, pos)
        assert m is not None, f"not a status line at {pos}: {data[pos : pos + 60]!r}"
        assert end >= 0, f"unterminated head: {data[pos:]!r}"
        head = data[m.end() : end + 2].decode("latin-1")
        status = int(data[m.start() + 9 : m.start() + 12])
        lengths = re.findall(r"(?im)^content-length: *(\d+)\r$", head)
        pos = end + 4
        head_request = len(found) < len(methods) and methods[len(found)] == "HEAD"
        if status < 200:
            continue  # an interim response (100 Continue): the final one follows
        body = b""
        if lengths and not head_request:
            body = data[pos : pos + int(lengths[0])]
            pos += int(lengths[0])
            assert pos <= len(data), "a body shorter than its Content-Length"
        elif not lengths and status not in (204, 304):
            raise AssertionError(f"a final response without Content-Length: {head!r}")
        found.append((status, body))
    return found


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
# The cases that matter most, whatever is generated: pipelined requests in one
# piece; a head, and a body, cut short by the client's EOF (answered 400);
# a request that closes the connection with another behind it.
@example(pieces=[b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok" + GET])
@example(pieces=[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"GET / HTTP/1.1\r\nHo"])
@example(pieces=[b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab"])
@example(pieces=[b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + GET])
def test_generated_traffic_gets_clean_answers(
    loop: asyncio.AbstractEventLoop, pieces: list[bytes]
) -> None:
    async def main() -> None:
        config = ServerConfig(header_timeout=5, body_timeout=5)
        async with serve(echo, config) as (port, http):
            before = open_fds()
            bystander = asyncio.ensure_future(well_behaved_client(port))
            loop = asyncio.get_running_loop()
            transport, client = await loop.create_connection(RawClient, "127.0.0.1", port)
            try:
                for piece in pieces:
                    if transport.is_closing():
                        break  # the server refused and closed while we were still sending
                    transport.write(piece)
                    await asyncio.sleep(0)
                if not transport.is_closing():
                    try:
                        transport.write_eof()
                    except OSError:
                        pass  # reset already: the read side reports it
                exc = await asyncio.wait_for(asyncio.shield(client.ended), 10)
            finally:
                transport.close()
            owed = expected(b"".join(pieces), config.limits)
            # A reset means the server closed with bytes of ours unread: only
            # after an error or a request that closes the connection may it.
            # Either way what it sent before is all there, the last answer too.
            assert exc is None or owed.may_reset, f"{exc!r}, though all was read"
            got = responses_in(bytes(client.data), [method for _, method, _ in owed.answers])
            want = [(status, text) for status, _, text in owed.answers]
            assert [status for status, _ in got] == [status for status, _ in want]
            for (_, body), (_, text) in zip(got, want, strict=True):
                assert text is None or body == text
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
