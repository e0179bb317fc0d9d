"""The parser's optional C fast path (treadle/http/_speedups.c) against the
parser's own Python code.

The contract under test: for any bytes, `scan_head` either accepts them with
exactly the result the Python code gives (`RequestParser._scan_head_py`), says
the head is incomplete exactly when the Python code does, or defers (False).
It never accepts what the Python code refuses. Checked on every single-byte
change of sample heads, on each limit at and one past it, and on generated
requests and mutations whole-parser against whole-parser (error statuses and
details included). The rest of the parser suite runs both ways through the
`parser_impl` fixture.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

from tests.http.conftest import SCAN_CHUNKS, SCAN_HEAD, pure_python_parser, require_speedups
from tests.http.peers import parse_treadle
from tests.http.test_differential import CORPUS, _settings, mutations, requests, split
from treadle.http import EndOfMessage, HTTPError, Limits, RequestParser

pytestmark = pytest.mark.usefixtures("speedups")


@pytest.fixture
def speedups() -> None:
    require_speedups()


def scan_c(data: bytes, limits: Limits, last: bytes | None = None, pos: int = 0) -> object:
    assert SCAN_HEAD is not None
    limit_tuple = (
        limits.max_request_line,
        limits.max_field_size,
        limits.max_header_block,
        limits.max_headers,
    )
    return SCAN_HEAD(data, pos, last, limit_tuple)


def scan_py(data: bytes, limits: Limits, pos: int = 0) -> object:
    """The Python code's answer in the same shape: a tuple, None (incomplete)
    or the HTTPError it raises."""
    parser = RequestParser(limits)
    try:
        return parser._scan_head_py(data, pos, data.find(b"\r\n\r\n", pos) < 0)
    except HTTPError as exc:
        return exc


def agree(data: bytes, limits: Limits | None = None) -> object:
    """Assert the contract for `data`; return the C answer."""
    limits = limits or Limits()
    c = scan_c(data, limits)
    py = scan_py(data, limits)
    if c is None:
        # Incomplete: the parser then runs the same partial-head checks either way.
        assert data.find(b"\r\n\r\n") < 0, data
    elif isinstance(c, tuple):
        assert c == py, (data, c, py)
    else:
        assert c is False, (data, c)
        assert py is not None, data  # a deferral is for a complete head only
    return c


GET = (
    b"GET /hello/world?q=1 HTTP/1.1\r\n"
    b"Host: localhost:8080\r\n"
    b"User-Agent: curl/8.5.0\r\n"
    b"Accept: */*\r\n"
    b"Connection: Keep-Alive\r\n"
    b"\r\n"
)
POST = (
    b"POST /upload HTTP/1.0\r\n"
    b"host: a\r\n"
    b"Content-Length:\t12 \r\n"
    b"transfer-ENCODING: chunked\r\n"
    b"Expect: 100-continue\r\n"
    b"X-Empty:\r\n"
    b"Upgrade: websocket\r\n"
    b"\r\n"
)
MINIMAL = b"GET / HTTP/1.0\r\n\r\n"
SAMPLES = {"get": GET, "post": POST, "minimal": MINIMAL}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_the_common_heads_take_the_fast_path(name: str) -> None:
    # A fast path that always defers would pass every other test here.
    result = agree(SAMPLES[name])
    assert isinstance(result, tuple)
    assert result[0] == SAMPLES[name].split(b" ")[0].decode()  # the method
    assert result[5] == len(SAMPLES[name])  # the end of the head


def test_the_framing_lines_are_lowered_and_kept_whole() -> None:
    result = scan_c(POST, Limits())
    assert isinstance(result, tuple)
    assert result[4] == (
        b"host: a\ncontent-length:\t12 \ntransfer-encoding: chunked\n"
        b"expect: 100-continue\nupgrade: websocket"
    )
    assert result[2] == 0  # HTTP/1.0


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_single_byte_change(name: str) -> None:
    # Every byte of the head replaced by each of the 256 values: the C answer
    # and the Python answer agree (accepted alike, or deferred to Python).
    data = SAMPLES[name]
    accepted = 0
    for i in range(len(data)):
        for value in range(256):
            mutated = data[:i] + bytes((value,)) + data[i + 1 :]
            if isinstance(agree(mutated), tuple):
                accepted += 1
    assert accepted > len(data)  # many changes keep the head valid


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_single_byte_inserted_or_deleted(name: str) -> None:
    data = SAMPLES[name]
    for i in range(len(data) + 1):
        agree(data[:i] + data[i + 1 :])
        for value in range(256):
            agree(data[:i] + bytes((value,)) + data[i:])


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_prefix(name: str) -> None:
    # A head cut anywhere is incomplete for both (None), never half-accepted.
    data = SAMPLES[name]
    for i in range(len(data)):
        assert agree(data[:i]) is None


@pytest.mark.parametrize(
    ("field", "at_limit"),
    [
        ("max_request_line", len(b"GET /hello/world?q=1 HTTP/1.1")),
        ("max_field_size", len(b"User-Agent: curl/8.5.0")),
        ("max_header_block", len(GET) - len(b"GET /hello/world?q=1 HTTP/1.1\r\n") - 2),
        ("max_headers", 4),
    ],
)
def test_each_limit_at_and_one_past(field: str, at_limit: int) -> None:
    at = agree(GET, Limits(**{field: at_limit}))
    assert isinstance(at, tuple)
    past = Limits(**{field: at_limit - 1})
    assert agree(GET, past) is False
    error = scan_py(GET, past)
    assert isinstance(error, HTTPError) and error.status in (414, 431)


def test_the_previous_block_is_reused_not_copied() -> None:
    first = scan_c(GET, Limits())
    assert isinstance(first, tuple)
    block = first[3]
    again = scan_c(GET.replace(b"/hello/world?q=1", b"/other"), Limits(), last=block)
    assert isinstance(again, tuple)
    assert again[3] is block and again[4] is None
    # Same length, other bytes: judged afresh.
    other = GET.replace(b"curl/8.5.0", b"curl/8.6.0")
    fresh = scan_c(other, Limits(), last=block)
    assert isinstance(fresh, tuple) and fresh[3] is not block and fresh[4] is not None


def test_a_position_inside_the_buffer() -> None:
    data = b"junk" + GET + MINIMAL
    first = scan_c(data, Limits(), pos=4)
    assert isinstance(first, tuple) and first == scan_py(data, Limits(), pos=4)
    second = scan_c(data, Limits(), pos=first[5])
    assert isinstance(second, tuple) and second[5] == len(data)


@pytest.mark.parametrize(
    "head",
    [
        b"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n",  # refused by Python: 400
        b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",  # authority-form
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",  # asterisk-form
        b"GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n",  # absolute-form
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",  # 505
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\x00\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\nb\r\n\r\n",
        b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
    ],
)
def test_the_rare_and_the_bad_are_deferred(head: bytes) -> None:
    assert agree(head) is False


def test_misuse_raises() -> None:
    assert SCAN_HEAD is not None
    limits = (1, 2, 3, 4)
    with pytest.raises(TypeError, match="4 limits"):
        SCAN_HEAD(GET, 0, None, (1, 2, 3))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SCAN_HEAD(GET, 0, None, (1, 2, 3, "4"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out of range"):
        SCAN_HEAD(GET, len(GET) + 1, None, limits)
    with pytest.raises(TypeError, match="4 arguments"):
        SCAN_HEAD(GET, 0, None)  # type: ignore[call-arg]


def test_other_buffers_are_deferred() -> None:
    # A bytes subclass or a bytearray is the Python code's to judge, not an error.
    class Bytes(bytes):
        pass

    assert SCAN_HEAD is not None and SCAN_CHUNKS is not None
    limits = (8190, 8190, 32768, 100)
    assert SCAN_HEAD(bytearray(GET), 0, None, limits) is False  # type: ignore[arg-type]
    assert SCAN_HEAD(Bytes(GET), 0, None, limits) is False
    assert SCAN_CHUNKS(Bytes(CHUNKED_BODY), 0, 100, 100) == (b"", 0, False)
    both_ways([Bytes(GET), Bytes(CHUNKED_HEAD + CHUNKED_BODY)])


@pytest.mark.parametrize(
    "field",
    [
        "max_request_line",
        "max_field_size",
        "max_header_block",
        "max_headers",
        "max_body_size",
        "max_chunk_line",
    ],
)
def test_limits_too_large_for_c_are_no_limit(field: str) -> None:
    # "No limit" written as a huge int: the C side clamps it, and parses as
    # the Python code does (it raised OverflowError before).
    for huge in (2**63 - 1, 2**63, 2**64, 10**30):
        limits = Limits(**{field: huge})
        data = GET + CHUNKED_HEAD + CHUNKED_BODY
        with_c = parse_treadle(data, limits)
        with pure_python_parser():
            without = parse_treadle(data, limits)
        assert with_c.accepted and with_c == without
    assert SCAN_CHUNKS is not None
    assert SCAN_CHUNKS(CHUNKED_BODY, 0, -(2**70), 2**70) == (b"", 0, False)


# -- the whole parser, with and without the fast path --------------------------------


def both_ways(data: bytes | list[bytes]) -> None:
    """The whole parser gives the same verdict, messages and error with the C
    fast path as without it."""
    with_c = parse_treadle(data)
    with pure_python_parser():
        without = parse_treadle(data)
    assert with_c.accepted == without.accepted, (data, with_c, without)
    assert with_c.messages == without.messages, data
    assert with_c.complete == without.complete, data
    assert with_c.detail == without.detail, data
    if with_c.error is not None:
        assert isinstance(without.error, HTTPError) and isinstance(with_c.error, HTTPError)
        assert with_c.error.status == without.error.status


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_both_ways(name: str) -> None:
    both_ways(CORPUS[name])
    data = CORPUS[name]
    both_ways([data[:-3], data[-3:]])


@_settings(600)
@given(split(requests()))
def test_generated_requests_both_ways(pieces: list[bytes]) -> None:
    both_ways(pieces)


@_settings(1500)
@given(split(mutations()))
def test_generated_mutations_both_ways(pieces: list[bytes]) -> None:
    both_ways(pieces)


@_settings(300)
@given(st.lists(requests(), min_size=2, max_size=4).map(b"".join))
def test_generated_pipelines_both_ways(data: bytes) -> None:
    # Pipelined requests exercise the repeated-block memo across messages.
    both_ways(data)


def test_the_same_block_under_another_version() -> None:
    # The memo reuses a block's framing only under the same version: HTTP/1.0
    # without keep-alive closes, where the same block in 1.1 keeps alive.
    block = b"Host: a\r\nConnection: x\r\n\r\n"
    data = b"GET /1 HTTP/1.1\r\n" + block + b"GET /2 HTTP/1.0\r\n" + block
    both_ways(data)
    verdict = parse_treadle(data)
    assert [m.version for m in verdict.messages] == ["1.1", "1.0"]


# -- chunked bodies --------------------------------------------------------------------

CHUNKED_HEAD = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
CHUNKED_BODY = (
    b"5\r\nhello\r\n"
    b'1A;name=value;q="a \\" b"\r\nabcdefghijklmnopqrstuvwxyz\r\n'
    b"3;x\r\nxyz\r\n"
    b"0\r\n\r\n"
)


def scan_chunks(data: bytes, pos: int = 0, budget: int = 1 << 20, line: int = 4096) -> object:
    assert SCAN_CHUNKS is not None
    return SCAN_CHUNKS(data, pos, budget, line)


def test_whole_chunks_come_in_one_piece() -> None:
    data, end, ended = scan_chunks(CHUNKED_BODY)  # type: ignore[misc]
    assert data == b"hello" + b"abcdefghijklmnopqrstuvwxyz" + b"xyz"
    assert end == len(CHUNKED_BODY) and ended is True
    # Through the parser: one piece, then the end.
    parser = RequestParser()
    parser.feed(CHUNKED_HEAD + CHUNKED_BODY)
    assert parser.next_head() is not None
    assert parser.next_event() == data
    assert isinstance(parser.next_event(), EndOfMessage)


@pytest.mark.parametrize(
    ("body", "data", "stop"),
    [
        (b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", b"hello", 10),  # trailers: Python's
        (b"5\r\nhel", b"", 0),  # an incomplete chunk: streamed by Python
        (b"5\r\nhello\r\n5\r\nwor", b"hello", 10),
        (b"5\r\nhelloXX3\r\nabc\r\n", b"", 0),  # no CRLF after the data
        (b"5 \r\nhello\r\n", b"", 0),  # whitespace
        (b"+5\r\nhello\r\n", b"", 0),
        (b"5;\r\nhello\r\n", b"", 0),
        (b"5;a=\r\nhello\r\n", b"", 0),
        (b'5;a="x\r\nhello\r\n', b"", 0),
        (b"5\nhello\r\n", b"", 0),
        (b"00000000000000005\r\nhello\r\n", b"", 0),  # 17 digits
        (b"0000000000000005\r\nhello\r\n0\r\n\r\n", b"hello", 30),  # 16 digits
    ],
)
def test_it_stops_where_python_must_judge(body: bytes, data: bytes, stop: int) -> None:
    got, end, ended = scan_chunks(body)  # type: ignore[misc]
    assert (got, end) == (data, stop)
    assert ended is (end == len(body) and body.endswith(b"0\r\n\r\n"))
    both_ways(CHUNKED_HEAD + body)


def test_the_budget_and_the_line_limit() -> None:
    body = b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"
    assert scan_chunks(body, budget=10)[:2] == (b"helloworld", len(body))  # type: ignore[index]
    assert scan_chunks(body, budget=9)[:2] == (b"hello", 10)  # type: ignore[index]
    assert scan_chunks(body, budget=-5)[:2] == (b"", 0)  # type: ignore[index]
    assert scan_chunks(b"5;a=b\r\nhello\r\n", line=5)[:2] == (b"hello", 14)  # type: ignore[index]
    assert scan_chunks(b"5;a=b\r\nhello\r\n", line=4)[:2] == (b"", 0)  # type: ignore[index]
    # Through the parser: 413 at the chunk past the limit, with or without C.
    both_ways(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    small = Limits(max_body_size=9, max_chunk_line=4)
    for limits in (small, Limits(max_body_size=10)):
        with_c = parse_treadle(CHUNKED_HEAD + body, limits)
        with pure_python_parser():
            without = parse_treadle(CHUNKED_HEAD + body, limits)
        assert (with_c.accepted, with_c.detail) == (without.accepted, without.detail)


def test_every_single_byte_change_of_a_chunked_body() -> None:
    for i in range(len(CHUNKED_BODY)):
        for value in range(256):
            body = CHUNKED_BODY[:i] + bytes((value,)) + CHUNKED_BODY[i + 1 :]
            both_ways(CHUNKED_HEAD + body)


def test_every_split_of_a_chunked_body() -> None:
    data = CHUNKED_HEAD + CHUNKED_BODY
    for i in range(len(CHUNKED_HEAD), len(data)):
        both_ways([data[:i], data[i:]])


def test_the_off_switch() -> None:
    # TREADLE_NO_EXTENSIONS=1 at start-up runs the parser without the C fast path.
    code = "from treadle.http import parser; print(parser._scan_head is None)"
    for env, expected in (({"TREADLE_NO_EXTENSIONS": "1"}, "True"), ({}, "False")):
        environ = {k: v for k, v in os.environ.items() if k != "TREADLE_NO_EXTENSIONS"}
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == expected
