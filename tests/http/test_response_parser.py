"""The response parser, byte by byte: every rule, every limit at and past it,
every split point of sample responses, pipelined keep-alive responses and
where their bytes go. No loop, no sockets."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from treadle.http import (
    EndOfMessage,
    Headers,
    InformationalResponse,
    ParserState,
    Response,
    ResponseError,
    ResponseHeadError,
    ResponseLimits,
    ResponseParser,
    ResponsePayloadError,
)

# Every test runs with the C fast path for chunks and without it
# (tests/http/conftest.py).
pytestmark = pytest.mark.usefixtures("parser_impl")

Event = Response | InformationalResponse | bytes | EndOfMessage


def events(
    data: bytes | Sequence[bytes],
    methods: Sequence[str] = ("GET",),
    limits: ResponseLimits | None = None,
    eof: bool = False,
) -> list[Event]:
    """Every event the parser gives for `data` (pieces fed one at a time),
    answering requests with `methods`; then the end of the connection if
    `eof`."""
    parser = ResponseParser(limits or ResponseLimits())
    for method in methods:
        parser.expect(method)
    out: list[Event] = []
    for piece in [data] if isinstance(data, bytes) else data:
        parser.feed(piece)
        while (event := parser.next_event()) is not None:
            out.append(event)
    if eof:
        parser.feed_eof()
        while (event := parser.next_event()) is not None:
            out.append(event)
    return out


def refused(
    data: bytes | Sequence[bytes],
    methods: Sequence[str] = ("GET",),
    limits: ResponseLimits | None = None,
    eof: bool = False,
) -> ResponseError:
    """The ResponseError the parser raises for `data`."""
    with pytest.raises(ResponseError) as info:
        events(data, methods, limits, eof)
    return info.value


def summary(evs: list[Event]) -> list[tuple[object, ...]]:
    """Events reduced to comparable tuples, body pieces joined per message."""
    out: list[tuple[object, ...]] = []
    body = b""
    for ev in evs:
        if isinstance(ev, InformationalResponse):
            out.append(("1xx", ev.status, ev.reason, ev.version, tuple(ev.headers.raw)))
        elif isinstance(ev, Response):
            out.append(
                (
                    ev.status,
                    ev.reason,
                    ev.version,
                    tuple(ev.headers.raw),
                    ev.keep_alive,
                    ev.content_length,
                    ev.chunked,
                    ev.until_close,
                )
            )
            body = b""
        elif isinstance(ev, bytes):
            body += ev
        else:
            out.append(("body", body, tuple(ev.trailers.raw)))
    return out


def only_response(
    data: bytes, method: str = "GET", limits: ResponseLimits | None = None, eof: bool = False
) -> tuple[Response, bytes, Headers]:
    evs = events(data, [method], limits, eof)
    head = evs[0]
    assert isinstance(head, Response) and isinstance(evs[-1], EndOfMessage), evs
    body = b"".join(e for e in evs if isinstance(e, bytes))
    return head, body, evs[-1].trailers


OK_CL = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"
OK_CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'5;name=value\r\nhello\r\n6;q="a \\" b"\r\n world\r\n0\r\nX-Sum: abc\r\n\r\n'
)
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


# -- the status line ------------------------------------------------------------------


def test_simple_response() -> None:
    resp, body, trailers = only_response(OK_CL)
    assert (resp.status, resp.reason, resp.version) == (200, "OK", (1, 1))
    assert resp.keep_alive and resp.content_length == 11 and resp.has_body
    assert not resp.chunked and not resp.until_close
    assert resp.headers["content-type"] == "text/plain"
    assert body == b"hello world" and len(trailers) == 0


@pytest.mark.parametrize(
    ("line", "status", "reason"),
    [
        (b"HTTP/1.1 404 Not Found", 404, "Not Found"),
        (b"HTTP/1.1 200 ", 200, ""),
        (b"HTTP/1.1 200", 200, ""),  # no SP after the code: lenient, as h11 and llhttp
        (b"HTTP/1.1 200  two  spaces ", 200, " two  spaces "),  # kept as sent
        (b"HTTP/1.1 200 caf\xe9\tok", 200, "caf\xe9\tok"),  # obs-text and HTAB
        (b"HTTP/1.0 500 Oops", 500, "Oops"),
        (b"HTTP/1.1 599 X", 599, "X"),
        (b"HTTP/1.1 600 Custom", 600, "Custom"),  # RFC 9110 15: handled as a 5xx
        (b"HTTP/1.1 999 X", 999, "X"),
    ],
)
def test_status_lines(line: bytes, status: int, reason: str) -> None:
    resp, _, _ = only_response(line + b"\r\nContent-Length: 0\r\n\r\n")
    assert (resp.status, resp.reason) == (status, reason)


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        (b"HTTP/1.1 2000 OK", "malformed status code"),  # the example
        (b"HTTP/1.1 20 OK", "malformed status code"),
        (b"HTTP/1.1 2x0 OK", "malformed status code"),
        (b"HTTP/1.1 +20 OK", "malformed status code"),
        (b"HTTP/1.1 \xd9\xa2\xd9\xa0\xd9\xa0 OK", "malformed status code"),  # int() takes these
        (b"HTTP/1.1  200 OK", "malformed status code"),
        (b"HTTP/1.1 099 Low", "invalid status code"),
        (b"HTTP/1.1 000 Zero", "invalid status code"),
        (b"HTTP/1.1 200 O\x00K", "control character in reason phrase"),
        (b"HTTP/1.1 200 O\x7fK", "control character in reason phrase"),
        (b"HTTP/1.1 200 O\rK", "bare CR in status line"),
        (b"HTTP/2.0 200 OK", "version 2.0 not supported"),
        (b"HTTP/1.2 200 OK", "version 1.2 not supported"),
        (b"HTTP/0.9 200 OK", "version 0.9 not supported"),
        (b"HTTP/1.10 200 OK", "malformed HTTP version"),
        (b"HTTP/1 200 OK", "malformed HTTP version"),
        (b"HTTP/1.1\t200 OK", "malformed HTTP version"),
        (b"http/1.1 200 OK", "not an HTTP/1.x status line"),
        (b" HTTP/1.1 200 OK", "not an HTTP/1.x status line"),
        (b"ICY 200 OK", "not an HTTP/1.x status line"),
        (b"", "not an HTTP/1.x status line"),
    ],
)
def test_bad_status_lines(line: bytes, detail: str) -> None:
    err = refused(line + b"\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(err, ResponseHeadError) and err.kind == "head"
    assert detail in err.detail, err.detail


def test_a_non_http_reply_is_refused_at_once() -> None:
    # A TLS alert from a TLS port, say: no blank line will ever come, and the
    # client must not wait for its timeout to learn that.
    parser = ResponseParser()
    parser.expect("GET")
    parser.feed(b"HT")
    assert parser.next_event() is None
    parser.feed(b"X")
    with pytest.raises(ResponseHeadError, match=r"not an HTTP/1\.x status line"):
        parser.next_event()
    assert parser.state == ParserState.ERROR
    assert "not an HTTP" in refused([b"\x15", b"\x03\x03\x00\x02\x02\x28"]).detail


# -- header fields ---------------------------------------------------------------------


def test_headers_multidict_keeps_order_case_duplicates_and_raw_bytes() -> None:
    resp, _, _ = only_response(
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie:  b=2  \r\nX-Latin: caf\xe9\r\n"
        b"Empty:\r\nContent-Length: 0\r\n\r\n"
    )
    assert resp.headers.raw == [
        (b"Set-Cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"X-Latin", b"caf\xe9"),
        (b"Empty", b""),
        (b"Content-Length", b"0"),
    ]
    assert resp.headers.getall("SET-COOKIE") == ["a=1", "b=2"]


def test_no_header_fields_at_all() -> None:
    resp, body, _ = only_response(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert resp.status == 204 and len(resp.headers) == 0 and body == b""


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        (b"X : b\r\n", "whitespace between header name and colon"),
        (b"X\t: b\r\n", "whitespace between header name and colon"),
        (b"X(y): b\r\n", "invalid character in header name"),
        (b"X\xe9: b\r\n", "invalid character in header name"),
        (b": b\r\n", "empty header name"),
        (b"No colon here\r\n", "without a colon"),
        (b"X: a\x00b\r\n", "NUL in header value"),
        (b"X: a\x01b\r\n", "control character in header value"),
        (b"X: a\x7fb\r\n", "control character in header value"),
        (b"X: a\rb\r\n", "bare CR"),
        (b"X: b\r\r\n", "bare CR"),
        (b"X: b\r\nY: c\r \r\n", "bare CR"),
        (b" X: b\r\n", "whitespace before the first header field"),
        (b"\tX: b\r\n", "whitespace before the first header field"),
    ],
)
def test_bad_header_fields(fields: bytes, detail: str) -> None:
    err = refused(b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 0\r\n\r\n")
    assert isinstance(err, ResponseHeadError) and detail in err.detail, err.detail


@pytest.mark.parametrize(
    ("fields", "value"),
    [
        (b"X: a\r\n b\r\n", b"a b"),
        (b"X: a\r\n\tb\r\n", b"a b"),
        (b"X: a  \r\n  \t b  \r\n", b"a b"),
        (b"X: a\r\n b\r\n c\r\n", b"a b c"),
        (b"X:\r\n b\r\n", b"b"),
        (b"X: a\n b\n", b"a b"),  # folded with bare LF line ends
        (b"X: a\r\n \r\n", b"a"),  # a fold with nothing after it
    ],
)
def test_obs_fold_is_unfolded_into_a_space_rfc_9112_5_2(fields: bytes, value: bytes) -> None:
    # A user agent MUST replace each obs-fold with one or more SP.
    resp, body, _ = only_response(b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 2\r\n\r\nhi")
    assert resp.headers.get_raw("x") == value and body == b"hi"
    assert resp.headers.raw[-1] == (b"Content-Length", b"2")


def test_a_fold_cannot_smuggle_a_framing_value() -> None:
    # Unfolded first, judged after: "1 0" is not a length, and a folded coding
    # list is judged as the list it is.
    err = refused(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n 0\r\n\r\n0123456789")
    assert "invalid Content-Length" in err.detail
    err = refused(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,\r\n chunked\r\n\r\n0\r\n\r\n")
    assert "not implemented" in err.detail
    resp, body, _ = only_response(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    )
    assert resp.chunked and body == b"hi"


# -- line ends: bare LF read in the head, bare CR refused -------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\nContent-Length: 2\nX: y\n\nhi",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\nX: y\r\n\nhi",
        b"HTTP/1.1 200 OK\nContent-Length: 2\r\nX: y\n\r\nhi",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\n\nhi",
    ],
)
def test_bare_lf_ends_a_line_in_the_head_rfc_9112_2_2(data: bytes) -> None:
    # The documented decision: a user agent may read a bare LF as a line end
    # (h11, llhttp, curl and browsers do); the request parser does not.
    resp, body, _ = only_response(data)
    assert resp.headers.raw == [(b"Content-Length", b"2"), (b"X", b"y")]
    assert body == b"hi"


def test_a_bare_lf_alone_ends_a_head_without_fields() -> None:
    resp, body, _ = only_response(b"HTTP/1.1 204 No Content\n\n")
    assert resp.status == 204 and body == b""


def test_bare_lf_is_not_read_in_chunked_framing() -> None:
    # One chunked decoder for both parsers, and it wants CRLF: the body is
    # where framing happens.
    for body, detail in (
        (b"5\nhello\r\n0\r\n\r\n", "bare CR or LF in chunk-size line"),
        (b"5\r\nhello\n0\r\n\r\n", "not followed by CRLF"),
        (b"5\r\nhello\r\n0\r\nT: 1\n\r\n", "bare LF"),
        (b"5\r\nhello\r\n0\n\n", "bare CR or LF in chunk-size line"),
    ):
        err = refused(CHUNKED_HEAD + body)
        assert isinstance(err, ResponsePayloadError) and detail in err.detail, err.detail


def test_bare_cr_is_refused_in_the_head() -> None:
    for data in (
        b"HTTP/1.1 200 OK\rContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\rY: b\r\n\r\n",
        [b"HTTP/1.1 200 OK\r\nX: a\r", b"Y: b\r\n\r\n"],
        b"HTTP/1.1 200 OK\nX: a\rY: b\n\n",
    ):
        err = refused(data)
        assert isinstance(err, ResponseHeadError) and "bare CR" in err.detail, err.detail


# -- framing: Content-Length, Transfer-Encoding ---------------------------------------------


def test_identical_content_lengths_are_one() -> None:
    resp, body, _ = only_response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 003\r\n\r\nabc"
    )
    assert resp.content_length == 3 and body == b"abc"


@pytest.mark.parametrize(
    "value",
    [b"+3", b"-3", b"1_0", b"3 3", b"3, 3", b"0x3", b"\xd9\xa3", b"\xef\xbc\x93", b"3.0", b""],
)
def test_content_length_is_plain_ascii_digits(value: bytes) -> None:
    err = refused(b"HTTP/1.1 200 OK\r\nContent-Length: " + value + b"\r\n\r\nabc")
    assert isinstance(err, ResponseHeadError) and "Content-Length" in err.detail


def test_differing_content_lengths() -> None:
    err = refused(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")
    assert "differ" in err.detail


def test_content_length_with_transfer_encoding() -> None:
    for order in (
        b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
    ):
        err = refused(b"HTTP/1.1 200 OK\r\n" + order + b"\r\n0\r\n\r\n")
        assert "both Content-Length and Transfer-Encoding" in err.detail


def test_a_huge_content_length_is_refused_before_int() -> None:
    err = refused(b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n")
    assert isinstance(err, ResponseHeadError) and "too large" in err.detail


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (b"gzip", "final coding is not chunked"),  # RFC: until close; refused here, as h11
        (b"chunked, gzip", "final coding is not chunked"),
        (b"identity", "final coding is not chunked"),
        (b"chunked, chunked", "more than once"),
        (b"gzip, chunked", "not implemented"),
        (b"foo, chunked", "unknown transfer coding"),
    ],
)
def test_transfer_encoding_rules(value: bytes, detail: str) -> None:
    err = refused(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + value + b"\r\n\r\n0\r\n\r\n")
    assert isinstance(err, ResponseHeadError) and detail in err.detail


def test_transfer_encoding_in_http_1_0() -> None:
    err = refused(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert "HTTP/1.0 response" in err.detail


def test_chunked_body_with_extensions_and_trailers() -> None:
    resp, body, trailers = only_response(OK_CHUNKED)
    assert resp.chunked and resp.content_length is None and resp.has_body
    assert body == b"hello world" and trailers.raw == [(b"X-Sum", b"abc")]


@pytest.mark.parametrize(
    ("chunks", "detail"),
    [
        (b"+5\r\nhello\r\n0\r\n\r\n", "not hexadecimal"),
        (b"0x5\r\nhello\r\n0\r\n\r\n", "junk after chunk size"),
        (b"1_0\r\n", "junk after chunk size"),
        (b" 5\r\nhello\r\n0\r\n\r\n", "not hexadecimal"),
        (b"5 \r\nhello\r\n0\r\n\r\n", "junk after chunk size"),
        (b"\xd9\xa3\r\n", "not hexadecimal"),
        (b"5;\r\nhello\r\n0\r\n\r\n", "junk after chunk size"),
        (b"5 ;a=b\r\nhello\r\n0\r\n\r\n", "junk after chunk size"),
        (b"00000000000000005\r\n", "overflows"),
        (b"5\r\nhelloXX0\r\n\r\n", "not followed by CRLF"),
        (b"0\r\nContent-Length: 5\r\n\r\n", "not allowed in trailers"),
        (b"0\r\nX : y\r\n\r\n", "whitespace between header name and colon"),
        (b"0\r\nX: a\x00b\r\n\r\n", "NUL"),
    ],
)
def test_bad_chunked_bodies_are_payload_errors(chunks: bytes, detail: str) -> None:
    err = refused(CHUNKED_HEAD + chunks)
    assert isinstance(err, ResponsePayloadError) and err.kind == "body"
    assert detail in err.detail, err.detail


# -- responses without a body ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status_line", "method"),
    [
        (b"HTTP/1.1 200 OK", "HEAD"),
        (b"HTTP/1.1 204 No Content", "GET"),
        (b"HTTP/1.1 304 Not Modified", "GET"),
        (b"HTTP/1.1 304 Not Modified", "HEAD"),
    ],
)
def test_no_body_whatever_the_fields_say(status_line: bytes, method: str) -> None:
    # RFC 9112 6.3 rule 1: these end at the empty line.
    for framing in (b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n", b""):
        evs = events(status_line + b"\r\n" + framing + b"\r\n", [method])
        assert len(evs) == 2 and isinstance(evs[1], EndOfMessage)
        resp = evs[0]
        assert isinstance(resp, Response) and not resp.has_body
        assert resp.content_length == 0 and resp.keep_alive


def test_framing_fields_are_judged_even_without_a_body() -> None:
    for method, line in (("HEAD", b"HTTP/1.1 200 OK"), ("GET", b"HTTP/1.1 304 Not Modified")):
        err = refused(line + b"\r\nContent-Length: +5\r\n\r\n", [method])
        assert "invalid Content-Length" in err.detail
    err = refused(b"HTTP/1.1 204 No\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert "both" in err.detail


def test_bytes_past_a_bodiless_response_are_the_next_responses() -> None:
    # A 204 with a body: the body is not this response's; the next response
    # must begin there, and "hello" is no status line.
    data = b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n\r\n"
    parser = ResponseParser()
    parser.expect("GET")
    parser.expect("GET")
    parser.feed(data)
    assert isinstance(parser.next_event(), Response)
    assert isinstance(parser.next_event(), EndOfMessage)
    with pytest.raises(ResponseHeadError, match=r"not an HTTP/1\.x status line"):
        parser.next_event()
    # ... and with no second request, they answer nothing.
    err = refused(data)
    assert "no request outstanding" in err.detail


def test_head_response_with_a_length_keeps_the_connection() -> None:
    data = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    )
    out = summary(events(data, ["HEAD", "GET"]))
    assert [o[0] for o in out] == [200, "body", 200, "body"]
    assert out[1][1] == b"" and out[3][1] == b"hi"


def test_head_response_with_an_oversized_length_is_not_a_body() -> None:
    limits = ResponseLimits(max_body_size=10)
    resp, _, _ = only_response(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", "HEAD", limits)
    assert resp.content_length == 0


# -- bodies read until the close ------------------------------------------------------------


def test_a_body_until_close() -> None:
    for version in (b"1.0", b"1.1"):
        parser = ResponseParser()
        parser.expect("GET")
        parser.feed(b"HTTP/" + version + b" 200 OK\r\nX: y\r\n\r\nhel")
        resp = parser.next_event()
        assert isinstance(resp, Response) and resp.until_close and resp.has_body
        assert resp.content_length is None and not resp.keep_alive
        assert parser.state == ParserState.UNTIL_CLOSE
        assert parser.next_event() == b"hel"
        assert parser.next_event() is None
        parser.feed(b"lo")
        assert parser.next_event() == b"lo"
        parser.feed_eof()
        assert isinstance(parser.next_event(), EndOfMessage)
        assert parser.next_event() is None and parser.state == ParserState.CLOSED


def test_the_close_does_not_cut_off_what_was_read_before_it() -> None:
    # feed_eof() before the events are pulled: every byte still comes out.
    for data in (OK_CL, OK_CHUNKED, b"HTTP/1.0 200 OK\r\n\r\nhello world"):
        out = summary(events(data, eof=True))
        assert out[-1][0] == "body" and out[-1][1] == b"hello world"


@pytest.mark.parametrize(
    "data",
    [
        OK_CL[:-3],
        OK_CHUNKED[:-5],
        CHUNKED_HEAD + b"5\r\nhel",
        CHUNKED_HEAD + b"5\r\nhello",
        CHUNKED_HEAD + b"5\r\nhello\r\n",
        CHUNKED_HEAD + b"5\r\nhello\r\n0\r\n",
    ],
)
def test_a_body_cut_short_by_the_close_is_a_payload_error(data: bytes) -> None:
    err = refused(data, eof=True)
    assert isinstance(err, ResponsePayloadError) and "closed before the end" in err.detail


def test_the_close_inside_or_before_a_head() -> None:
    err = refused(b"HTTP/1.1 200 OK\r\nX: y", eof=True)
    assert isinstance(err, ResponseHeadError) and "middle of a response head" in err.detail
    err = refused(b"", eof=True)
    assert isinstance(err, ResponseHeadError) and "before the response began" in err.detail
    parser = ResponseParser()  # idle: a clean close
    parser.feed_eof()
    assert parser.state == ParserState.CLOSED and parser.next_event() is None


# -- keep-alive ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        (b"1.1", None, True),
        (b"1.1", b"close", False),
        (b"1.1", b"Close", False),
        (b"1.1", b"keep-alive, close", False),
        (b"1.1", b"keep-alive", True),
        (b"1.0", None, False),
        (b"1.0", b"keep-alive", True),
        (b"1.0", b"Keep-Alive", True),
        (b"1.0", b"keep-alive, close", False),
    ],
)
def test_keep_alive_rules(version: bytes, connection: bytes | None, keep_alive: bool) -> None:
    fields = b"Content-Length: 0\r\n"
    if connection:
        fields += b"Connection: " + connection + b"\r\n"
    parser = ResponseParser()
    parser.expect("GET")
    parser.feed(b"HTTP/" + version + b" 200 OK\r\n" + fields + b"\r\n")
    resp = parser.next_event()
    assert isinstance(resp, Response) and resp.keep_alive is keep_alive
    assert isinstance(parser.next_event(), EndOfMessage)
    assert parser.state == (ParserState.HEAD if keep_alive else ParserState.CLOSED)
    assert parser.reusable is keep_alive


def test_after_a_closing_response_nothing_more_is_parsed() -> None:
    parser = ResponseParser()
    parser.expect("GET")
    parser.expect("GET")
    parser.feed(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\n"
    )
    assert isinstance(parser.next_event(), Response)
    assert parser.next_event() == b"hi"
    assert isinstance(parser.next_event(), EndOfMessage)
    assert parser.next_event() is None and parser.state == ParserState.CLOSED
    assert parser.trailing_data == b"HTTP/1.1 200 OK\r\n" and not parser.reusable
    with pytest.raises(RuntimeError, match="no more responses"):
        parser.expect("GET")


# -- 1xx, 101 and CONNECT ---------------------------------------------------------------------


def test_100_continue_then_the_response() -> None:
    parser = ResponseParser()
    parser.expect("POST")
    parser.feed(b"HTTP/1.1 100 Continue\r\n\r\n")
    info = parser.next_event()
    assert isinstance(info, InformationalResponse) and info.status == 100
    assert info.reason == "Continue" and info.version == (1, 1)
    assert parser.next_event() is None and parser.pending == 1  # still to come
    parser.feed(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
    resp = parser.next_event()
    assert isinstance(resp, Response) and resp.status == 201 and parser.pending == 0
    assert parser.next_event() == b"ok"
    assert isinstance(parser.next_event(), EndOfMessage)


def test_several_informational_responses_and_their_headers() -> None:
    evs = events(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 102 Processing\r\nContent-Length: 5\r\n\r\n"  # no body, whatever it says
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    )
    assert [type(e).__name__ for e in evs] == [
        "InformationalResponse",
        "InformationalResponse",
        "Response",
        "EndOfMessage",
    ]
    first = evs[0]
    assert (
        isinstance(first, InformationalResponse)
        and first.headers["link"] == "</a.css>; rel=preload"
    )


def test_101_switches_protocols_and_hands_over_the_rest() -> None:
    parser = ResponseParser()
    parser.expect("GET")
    parser.feed(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Content-Length: 5\r\n\r\n\x81\x05hello"
    )
    resp = parser.next_event()
    assert isinstance(resp, Response) and resp.status == 101 and not resp.keep_alive
    assert isinstance(parser.next_event(), EndOfMessage)
    assert parser.next_event() is None and parser.state == ParserState.SWITCHED
    assert parser.trailing_data == b"\x81\x05hello" and not parser.reusable


def test_connect_2xx_is_a_tunnel_and_ignores_framing_fields() -> None:
    # RFC 9110 9.3.6: a client MUST ignore Content-Length and
    # Transfer-Encoding in a 2xx to CONNECT.
    parser = ResponseParser()
    parser.expect("CONNECT")
    parser.feed(b"HTTP/1.1 200 Connection Established\r\nContent-Length: +1\r\n\r\n\x16\x03\x01")
    resp = parser.next_event()
    assert isinstance(resp, Response) and resp.status == 200 and not resp.has_body
    assert isinstance(parser.next_event(), EndOfMessage)
    assert parser.state == ParserState.SWITCHED and parser.trailing_data == b"\x16\x03\x01"


def test_connect_refused_has_a_body_and_keeps_http() -> None:
    out = summary(
        events(
            b"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 2\r\n\r\nnoHTTP/1.1 200 OK\r\n\r\n",
            ["CONNECT", "CONNECT"],
        )
    )
    assert out[0][0] == 407 and out[1] == ("body", b"no", ())
    assert out[2][0] == 200 and out[3] == ("body", b"", ())


# -- pipelining, splits, the API ----------------------------------------------------------------

PIPELINE = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"  # HEAD: no body
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nsecond\r\n0\r\n\r\n"
    b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n"
    b"HTTP/1.0 200 OK\r\n\r\nthe rest, until the close"
)
PIPELINE_METHODS = ("GET", "HEAD", "POST", "GET", "GET")


def test_pipelined_responses_in_one_buffer() -> None:
    out = summary(events(PIPELINE, PIPELINE_METHODS, eof=True))
    bodies = [o[1] for o in out if o[0] == "body"]
    assert bodies == [b"first", b"", b"second", b"", b"the rest, until the close"]
    assert [o[1] for o in out if o[0] == "1xx"] == [100]


def test_bytes_past_a_responses_framing_never_reach_it() -> None:
    # Five body bytes framed, seven sent: the extra two begin the next response.
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloXX"
    parser = ResponseParser()
    parser.expect("GET")
    parser.expect("GET")
    parser.feed(data)
    assert isinstance(parser.next_event(), Response)
    assert parser.next_event() == b"hello"
    assert isinstance(parser.next_event(), EndOfMessage)
    parser.feed(b"HTTP/1.1 200 OK\r\n\r\n")
    with pytest.raises(ResponseHeadError, match=r"not an HTTP/1\.x status line"):
        parser.next_event()
    # Chunked: the same after the last chunk.
    err = refused(CHUNKED_HEAD + b"2\r\nhi\r\n0\r\n\r\nXX", ["GET"])
    assert "no request outstanding" in err.detail


SAMPLES = {
    "cl": (OK_CL, ("GET",)),
    "chunked": (OK_CHUNKED, ("GET",)),
    "pipeline": (PIPELINE, PIPELINE_METHODS),
    "bare-lf-fold": (b"HTTP/1.1 200 OK\nX: a\n b\r\nContent-Length: 2\n\nhi", ("GET",)),
    "http10": (
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx"
        b"HTTP/1.0 204 No\r\n\r\n",
        ("GET", "GET"),
    ),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_split_point_gives_the_same_events(name: str) -> None:
    data, methods = SAMPLES[name]
    whole = summary(events(data, methods, eof=True))
    for i in range(len(data) + 1):
        assert summary(events([data[:i], data[i:]], methods, eof=True)) == whole, i
    for i in range(1, len(data), 7):
        for j in range(i, len(data), 11):
            assert summary(events([data[:i], data[i:j], data[j:]], methods, eof=True)) == whole


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_byte_by_byte(name: str) -> None:
    data, methods = SAMPLES[name]
    pieces = [data[i : i + 1] for i in range(len(data))]
    assert summary(events(pieces, methods, eof=True)) == summary(events(data, methods, eof=True))


def test_errors_are_the_same_at_every_split_point() -> None:
    for data in (
        b"HTTP/1.1 200 OK\r\nX : y\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        CHUNKED_HEAD + b"5\r\nhelloXX0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1_0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        b"XTTP/1.1 200 OK\r\n\r\n",
    ):
        err = refused(data)
        for i in range(len(data) + 1):
            split = refused([data[:i], data[i:]])
            assert (type(split), split.detail) == (type(err), err.detail), (data, i)


def test_a_dead_parser_stays_dead() -> None:
    parser = ResponseParser()
    parser.expect("GET")
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n")
    with pytest.raises(ResponseHeadError):
        parser.next_event()
    assert parser.state == ParserState.ERROR and not parser.reusable
    parser.feed(OK_CL)
    assert parser.next_event() is None
    with pytest.raises(RuntimeError):
        parser.expect("GET")


def test_the_api_guards() -> None:
    parser = ResponseParser()
    assert parser.reusable and parser.pending == 0
    parser.feed(b"HTTP/1.1 200 OK\r\n")  # nothing asked for: not reusable
    assert not parser.reusable
    parser = ResponseParser()
    parser.feed_eof()
    with pytest.raises(RuntimeError, match="after feed_eof"):
        parser.feed(b"x")
    with pytest.raises(RuntimeError):
        parser.expect("GET")
    assert repr(Response(200, "OK", (1, 1), Headers())) == "<Response 200 OK>"
    assert "100" in repr(InformationalResponse(100, "Continue", (1, 1), Headers()))
    assert str(ResponsePayloadError("x")) == "invalid response body: x"


# -- limits: at the limit, and one past it --------------------------------------------------


def test_status_line_limit() -> None:
    limits = ResponseLimits(max_status_line=30)
    line = b"HTTP/1.1 200 " + b"r" * 17
    assert len(line) == 30
    assert only_response(line + b"\r\nContent-Length: 0\r\n\r\n", limits=limits)[0].status == 200
    assert only_response(line + b"\nContent-Length: 0\n\n", limits=limits)[0].status == 200
    err = refused(line + b"r\r\nContent-Length: 0\r\n\r\n", limits=limits)
    assert isinstance(err, ResponseHeadError) and "status line too long" in err.detail
    # Dribbled one byte at a time with no line end yet: refused one byte past.
    parser = ResponseParser(limits)
    parser.expect("GET")
    for i, byte in enumerate(line + b"rrrr"):
        parser.feed(bytes([byte]))
        if i < 30:
            assert parser.next_event() is None
        else:
            with pytest.raises(ResponseHeadError, match="status line too long"):
                parser.next_event()
            assert i == 30
            break


def _field_of(n: int, name: bytes = b"X") -> bytes:
    """A header line of exactly n bytes (without its line end)."""
    return name + b": " + b"v" * (n - len(name) - 2)


def test_field_line_limit() -> None:
    limits = ResponseLimits(max_field_size=50)
    head = b"HTTP/1.1 200 OK\r\n"
    ok = head + _field_of(50) + b"\r\nContent-Length: 0\r\n\r\n"
    assert only_response(ok, limits=limits)[0].headers["x"] == "v" * 47
    bad = head + _field_of(51) + b"\r\nContent-Length: 0\r\n\r\n"
    err = refused(bad, limits=limits)
    assert "header line too long" in err.detail
    assert "header line too long" in refused([head, _field_of(51)], limits=limits).detail
    assert (
        "header line too long" in refused([head + _field_of(51) + b"\r\nY"], limits=limits).detail
    )
    parser = ResponseParser(limits)
    parser.expect("GET")
    parser.feed(head + _field_of(50) + b"\r")
    assert parser.next_event() is None  # at the limit, still waiting


def test_header_block_limit() -> None:
    limits = ResponseLimits(max_header_block=100, max_field_size=100)
    # Content-Length: 0\r\n is 19 bytes; a field of 79 bytes + CRLF makes 100.
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
    assert only_response(head + _field_of(79) + b"\r\n\r\n", limits=limits)[0].status == 200
    err = refused(head + _field_of(80) + b"\r\n\r\n", limits=limits)
    assert "header section too large" in err.detail
    # With bare LF line ends, counted as received: one byte less per line.
    lf_head = b"HTTP/1.1 200 OK\nContent-Length: 0\n"
    assert only_response(lf_head + _field_of(81) + b"\n\n", limits=limits)[0].status == 200
    assert "too large" in refused(lf_head + _field_of(82) + b"\n\n", limits=limits).detail
    pieces = [head, _field_of(40, b"A") + b"\r\n", _field_of(40, b"B") + b"\r\n", b"C: x"]
    assert "too large" in refused(pieces, limits=limits).detail


def test_header_count_limit() -> None:
    limits = ResponseLimits(max_headers=5)
    fields = b"".join(b"X%d: v\r\n" % i for i in range(4)) + b"Content-Length: 0\r\n"
    assert (
        len(only_response(b"HTTP/1.1 200 OK\r\n" + fields + b"\r\n", limits=limits)[0].headers) == 5
    )
    fields += b"X9: v\r\n"
    err = refused(b"HTTP/1.1 200 OK\r\n" + fields + b"\r\n", limits=limits)
    assert "too many header fields" in err.detail
    assert "too many" in refused([b"HTTP/1.1 200 OK\r\n" + fields], limits=limits).detail
    # A fold line counts: five lines, four fields.
    folded = b"X: a\r\n b\r\n" + b"".join(b"X%d: v\r\n" % i for i in range(2))
    folded += b"Content-Length: 0\r\n"
    assert only_response(b"HTTP/1.1 200 OK\r\n" + folded + b"\r\n", limits=limits)[0].status == 200
    assert (
        "too many"
        in refused(b"HTTP/1.1 200 OK\r\n" + folded + b"Y: 1\r\n\r\n", limits=limits).detail
    )


def test_body_size_limit_content_length() -> None:
    limits = ResponseLimits(max_body_size=10)
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" + b"x" * 10
    assert only_response(ok, limits=limits)[1] == b"x" * 10
    # The head is delivered, then the body is refused before a byte of it.
    parser = ResponseParser(limits)
    parser.expect("GET")
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n" + b"x" * 11)
    resp = parser.next_event()
    assert isinstance(resp, Response) and resp.content_length == 11
    with pytest.raises(ResponsePayloadError, match="size limit"):
        parser.next_event()
    assert parser.state == ParserState.ERROR and parser.next_event() is None


def test_body_size_limit_chunked() -> None:
    limits = ResponseLimits(max_body_size=10)
    ok = CHUNKED_HEAD + b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"
    assert only_response(ok, limits=limits)[1] == b"helloworld"
    err = refused(CHUNKED_HEAD + b"5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", limits=limits)
    assert isinstance(err, ResponsePayloadError) and "exceeds the limit" in err.detail


def test_body_size_limit_until_close() -> None:
    limits = ResponseLimits(max_body_size=10)
    head = b"HTTP/1.1 200 OK\r\n\r\n"
    assert only_response(head + b"x" * 10, limits=limits, eof=True)[1] == b"x" * 10
    err = refused([head + b"x" * 6, b"x" * 5], limits=limits, eof=True)
    assert isinstance(err, ResponsePayloadError) and "size limit" in err.detail


def test_no_body_limit_by_default() -> None:
    assert ResponseLimits().max_body_size is None
    big = 1 << 40
    parser = ResponseParser()
    parser.expect("GET")
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nabc" % big)
    resp = parser.next_event()
    assert isinstance(resp, Response) and resp.content_length == big
    assert parser.next_event() == b"abc"
    parser = ResponseParser()
    parser.expect("GET")
    parser.feed(CHUNKED_HEAD + b"ffffffffffff\r\nabc")
    assert isinstance(parser.next_event(), Response) and parser.next_event() == b"abc"


def test_chunk_line_limit() -> None:
    limits = ResponseLimits(max_chunk_line=20)
    ext = b";" + b"a" * 18
    assert (
        only_response(CHUNKED_HEAD + b"1" + ext + b"\r\nx\r\n0\r\n\r\n", limits=limits)[1] == b"x"
    )
    err = refused(CHUNKED_HEAD + b"1" + ext + b"a\r\nx\r\n0\r\n\r\n", limits=limits)
    assert isinstance(err, ResponsePayloadError) and "too long" in err.detail
    assert "too long" in refused([CHUNKED_HEAD, b"1" + ext + b"a"], limits=limits).detail


def test_trailers_are_bounded_by_the_header_limits() -> None:
    limits = ResponseLimits(max_headers=3)
    ok = b"".join(b"T%d: v\r\n" % i for i in range(3))
    assert only_response(CHUNKED_HEAD + b"0\r\n" + ok + b"\r\n", limits=limits)[2].getall("t1") == [
        "v"
    ]
    too_many = b"".join(b"T%d: v\r\n" % i for i in range(4))
    err = refused(CHUNKED_HEAD + b"0\r\n" + too_many + b"\r\n", limits=limits)
    assert isinstance(err, ResponsePayloadError) and "too many trailer fields" in err.detail


def test_limits_validate_their_arguments_and_are_read_only() -> None:
    with pytest.raises(ValueError, match="max_headers"):
        ResponseLimits(max_headers=0)
    with pytest.raises(ValueError, match="max_body_size"):
        ResponseLimits(max_body_size=0)
    limits = ResponseLimits(max_body_size=5)
    with pytest.raises(AttributeError, match="read-only"):
        limits.max_body_size = 6
    with pytest.raises(AttributeError, match="read-only"):
        del limits.max_headers
    assert "max_body_size=None" in repr(ResponseLimits())


def test_framing_is_remembered_only_for_the_same_version_status_and_method() -> None:
    # The parser remembers framing by version, status, method and framing
    # lines: the same bytes answer HEAD without a body and GET with one.
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    out = summary(events(response + response + b"hi", ["HEAD", "GET"]))
    assert [o[-1] if o[0] == "body" else o[5] for o in out] == [0, (), 2, ()]
    assert out[3][1] == b"hi"
    # ... and the same lines under HTTP/1.0 close, and as a 204 have no body.
    for data, keep_alive, length in (
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", False, 2),
        (b"HTTP/1.1 204 No\r\nContent-Length: 2\r\n\r\n", True, 0),
    ):
        resp, _, _ = only_response(data)
        assert (resp.keep_alive, resp.content_length) == (keep_alive, length)
