"""The request parser, byte by byte: every rule, every limit at and past it,
every split point of sample requests. No loop, no sockets."""

from __future__ import annotations

import pytest

from treadle.http import (
    EndOfMessage,
    Headers,
    HTTPError,
    Limits,
    ParserState,
    Request,
    RequestParser,
)

# Every test runs with the C fast path and without it (tests/http/conftest.py).
pytestmark = pytest.mark.usefixtures("parser_impl")

Event = Request | bytes | EndOfMessage


def events(data: bytes | list[bytes], limits: Limits | None = None) -> list[Event]:
    """Every event the parser gives for `data` (pieces fed one at a time)."""
    parser = RequestParser(limits or Limits())
    out: list[Event] = []
    for piece in [data] if isinstance(data, bytes) else data:
        parser.feed(piece)
        while (event := parser.next_event()) is not None:
            out.append(event)
    return out


def refused(data: bytes | list[bytes], limits: Limits | None = None) -> HTTPError:
    """The HTTPError the parser raises for `data`."""
    with pytest.raises(HTTPError) as info:
        events(data, limits)
    return info.value


def summary(evs: list[Event]) -> list[tuple[object, ...]]:
    """Events reduced to comparable tuples, body pieces joined per message."""
    out: list[tuple[object, ...]] = []
    body = b""
    for ev in evs:
        if isinstance(ev, Request):
            out.append(
                (
                    ev.method,
                    ev.target,
                    ev.version,
                    tuple(ev.headers.raw),
                    ev.keep_alive,
                    ev.expect_continue,
                    ev.upgrade,
                    ev.content_length,
                    ev.chunked,
                )
            )
            body = b""
        elif isinstance(ev, bytes):
            body += ev
        else:
            out.append(("body", body, tuple(ev.trailers.raw)))
    return out


def only_request(data: bytes, limits: Limits | None = None) -> tuple[Request, bytes, Headers]:
    evs = events(data, limits)
    assert isinstance(evs[0], Request) and isinstance(evs[-1], EndOfMessage)
    body = b"".join(e for e in evs if isinstance(e, bytes))
    return evs[0], body, evs[-1].trailers


GET = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n"
POST_CL = b"POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
POST_CHUNKED = (
    b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'5;name=value\r\nhello\r\n6;q="a \\" b"\r\n world\r\n0\r\nX-Sum: abc\r\n\r\n'
)


# -- the request line ---------------------------------------------------------------


def test_simple_get() -> None:
    req, body, trailers = only_request(GET)
    assert (req.method, req.target, req.version) == ("GET", "/index.html?q=1", (1, 1))
    assert (req.path, req.query_string) == ("/index.html", "q=1")
    assert req.keep_alive and not req.expect_continue and not req.upgrade
    assert req.content_length == 0 and not req.chunked and not req.has_body
    assert body == b"" and len(trailers) == 0


@pytest.mark.parametrize(
    ("line", "path", "query"),
    [
        (b"GET /a/b%20c?x=1&y HTTP/1.1", "/a/b%20c", "x=1&y"),
        (b"GET http://example.com HTTP/1.1", "/", ""),
        (b"GET http://example.com/p?q HTTP/1.1", "/p", "q"),
        (b"GET https://example.com:8443?q HTTP/1.1", "/", "q"),
        (b"OPTIONS * HTTP/1.1", "*", ""),
        (b"CONNECT example.com:443 HTTP/1.1", "", ""),
        (b"CONNECT [::1]:443 HTTP/1.1", "", ""),
        (b"GET /a/b%20c HTTP/1.1", "/a/b%20c", ""),
        (b"GET /a? HTTP/1.1", "/a", ""),
    ],
    ids=[
        "origin",
        "absolute",
        "absolute-path",
        "absolute-port",
        "asterisk",
        "authority",
        "ipv6",
        "origin-no-query",
        "origin-empty-query",
    ],
)
def test_target_forms(line: bytes, path: str, query: str) -> None:
    req = events(line + b"\r\nHost: example.com\r\n\r\n")[0]
    assert isinstance(req, Request)
    assert req.target == line.split(b" ")[1].decode()
    assert (req.path, req.query_string) == (path, query)


@pytest.mark.parametrize(
    ("line", "status", "detail"),
    [
        (b"GET * HTTP/1.1", 400, "asterisk-form"),
        (b"CONNECT / HTTP/1.1", 400, "authority-form"),
        (b"CONNECT example.com HTTP/1.1", 400, "authority-form"),
        (b"CONNECT http://a:1/ HTTP/1.1", 400, "authority-form"),
        (b"GET example.com HTTP/1.1", 400, "invalid request target"),
        (b"GET /\xc3\xa9 HTTP/1.1", 400, "target"),
        (b"GET /a\x7f HTTP/1.1", 400, "target"),
        (b"GET  / HTTP/1.1", 400, "malformed request line"),
        (b"GET / HTTP/1.1 ", 400, "malformed request line"),
        (b"GET\t/ HTTP/1.1", 400, "malformed request line"),
        (b"GET /", 400, "malformed request line"),
        (b"G(T / HTTP/1.1", 400, "invalid character in method"),
        (b"GE\x00T / HTTP/1.1", 400, "invalid character in method"),
        (b"GET / http/1.1", 400, "malformed HTTP version"),
        (b"GET / HTTP/1.10", 400, "malformed HTTP version"),
        (b"GET / HTTP/1", 400, "malformed HTTP version"),
        (b"GET / HTTP/2.0", 505, "version 2.0"),
        (b"GET / HTTP/1.2", 505, "version 1.2"),
        (b"GET / HTTP/0.9", 505, "version 0.9"),
        (b"GET / HTTP/3.0", 505, "version 3.0"),
    ],
)
def test_bad_request_lines(line: bytes, status: int, detail: str) -> None:
    err = refused(line + b"\r\nHost: a\r\n\r\n")
    assert err.status == status
    assert detail in err.detail


def test_any_token_is_a_method_and_case_is_kept() -> None:
    for method in (b"PROPFIND", b"get", b"X-Custom!"):
        req = events(method + b" / HTTP/1.1\r\nHost: a\r\n\r\n")[0]
        assert isinstance(req, Request) and req.method == method.decode()


def test_http_1_0_needs_no_host() -> None:
    req, _, _ = only_request(b"GET / HTTP/1.0\r\n\r\n")
    assert req.version == (1, 0) and not req.keep_alive


def test_empty_lines_before_the_request_line_are_skipped() -> None:
    # RFC 9112 2.2: SHOULD ignore at least one empty line before a request line.
    req, _, _ = only_request(b"\r\n\r\n" + GET)
    assert req.target == "/index.html?q=1"


# -- header fields -----------------------------------------------------------------


def test_headers_multidict_keeps_order_case_duplicates_and_raw_bytes() -> None:
    req, _, _ = only_request(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Dup: one\r\nx-dup:  two  \r\nX-Latin: caf\xe9\r\n"
        b"Empty:\r\nTab:\tin\tside\t\r\n\r\n"
    )
    h = req.headers
    assert h.raw == [
        (b"Host", b"a"),
        (b"X-Dup", b"one"),
        (b"x-dup", b"two"),
        (b"X-Latin", b"caf\xe9"),
        (b"Empty", b""),
        (b"Tab", b"in\tside"),
    ]
    assert h["X-DUP"] == "one" and h.get(b"x-dup") == "one"
    assert h.getall("x-Dup") == ["one", "two"]
    assert h.getall_raw("x-latin") == [b"caf\xe9"] and h["x-latin"] == "café"
    assert h.get_raw("missing") is None and h.get("missing", "d") == "d"
    assert "HOST" in h and b"host" in h and "nope" not in h and 3 not in h
    assert len(h) == 6 and list(h) == ["Host", "X-Dup", "x-dup", "X-Latin", "Empty", "Tab"]
    assert h.keys() == list(h) and h.values()[1:3] == ["one", "two"]
    assert h.items()[0] == ("Host", "a")
    with pytest.raises(KeyError):
        h["missing"]
    assert h == Headers(h.raw) and h != Headers()


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        (b"Host: a\r\nX : b\r\n", "whitespace between header name and colon"),
        (b"Host: a\r\nX\t: b\r\n", "whitespace between header name and colon"),
        (b"Host: a\r\nX: b\r\n c\r\n", "obs-fold"),
        (b"Host: a\r\nX: b\r\n\tc\r\n", "obs-fold"),
        (b" Host: a\r\n", "obs-fold"),
        (b"Host: a\r\nX(y): b\r\n", "invalid character in header name"),
        (b"Host: a\r\nX\xe9: b\r\n", "invalid character in header name"),
        (b"Host: a\r\n: b\r\n", "empty header name"),
        (b"Host: a\r\nNo colon here\r\n", "without a colon"),
        (b"Host: a\r\nX: a\x00b\r\n", "NUL in header value"),
        (b"Host: a\r\nX: a\x01b\r\n", "control character in header value"),
        (b"Host: a\r\nX: a\x7fb\r\n", "control character in header value"),
        (b"Host: a\r\nX: a\rb\r\n", "bare CR"),
        (b"Host: a\r\nX: a\nb\r\n", "bare LF"),
        (b"Host: a\nX: b\r\n", "bare LF"),
    ],
)
def test_bad_header_fields(fields: bytes, detail: str) -> None:
    err = refused(b"GET / HTTP/1.1\r\n" + fields + b"\r\n")
    assert err.status == 400 and detail in err.detail


def test_bare_lf_line_endings_are_refused_even_when_consistent() -> None:
    # The decision: CRLF only. RFC 9112 2.2 lets a recipient accept a bare LF;
    # h11 does. A server that does frames differently from one that does not.
    err = refused(b"GET / HTTP/1.1\nHost: a\n\n")
    assert err.status == 400 and "bare LF" in err.detail


def test_bare_lf_is_refused_before_the_head_completes() -> None:
    # No CRLFCRLF will ever come: the parser must not wait for the timeout.
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\nHost: a\n")
    with pytest.raises(HTTPError, match="bare LF"):
        parser.next_event()
    assert parser.state == ParserState.ERROR


def test_bare_cr_cve_2023_37276_and_cve_2023_30589() -> None:
    # aiohttp and llhttp once accepted a lone CR as a line ending.
    for data in (
        b"GET / HTTP/1.1\rHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n",
        [b"GET / HTTP/1.1\r\nHost: a\r", b"X: y\r\n\r\n"],
    ):
        err = refused(data)
        assert err.status == 400 and "bare CR" in err.detail


def test_space_before_colon_cve_2021_22959() -> None:
    err = refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello")
    assert "whitespace between header name and colon" in err.detail


# -- Host ----------------------------------------------------------------------------


def test_missing_host_in_http_1_1() -> None:
    assert "missing Host" in refused(b"GET / HTTP/1.1\r\nX: y\r\n\r\n").detail


def test_duplicate_host_cve_2026_34525() -> None:
    for version in (b"1.1", b"1.0"):
        err = refused(b"GET / HTTP/" + version + b"\r\nHost: a\r\nHost: b\r\n\r\n")
        assert "more than one Host" in err.detail


@pytest.mark.parametrize("value", [b"a@b", b"a/b", b"a b", b"a?b", b"a#b", b"[::1"])
def test_invalid_host_values(value: bytes) -> None:
    assert "invalid Host" in refused(b"GET / HTTP/1.1\r\nHost: " + value + b"\r\n\r\n").detail


@pytest.mark.parametrize(
    "value", [b"", b"example.com", b"example.com:8080", b"[::1]:80", b"1.2.3.4"]
)
def test_valid_host_values(value: bytes) -> None:
    req, _, _ = only_request(b"GET / HTTP/1.1\r\nHost: " + value + b"\r\n\r\n")
    assert req.headers.get_raw("host") == value


# -- Content-Length --------------------------------------------------------------------


def test_content_length_body() -> None:
    req, body, _ = only_request(POST_CL)
    assert req.content_length == 11 and body == b"hello world" and req.has_body


def test_identical_content_lengths_are_one() -> None:
    req, body, _ = only_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
    )
    assert req.content_length == 3 and body == b"abc"


def test_leading_zeros_and_ows_are_fine() -> None:
    req, body, _ = only_request(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  003 \r\n\r\nabc")
    assert req.content_length == 3 and body == b"abc"


@pytest.mark.parametrize(
    "value",
    [
        b"+3",  # int() takes a sign
        b"-3",
        b"1_0",  # int() takes underscores
        b"3 3",
        b"3, 3",  # a list in one field
        b"0x3",
        b"\xd9\xa3",  # ARABIC-INDIC DIGIT THREE: int() takes it (CVE-2025-69224)
        b"\xef\xbc\x93",  # FULLWIDTH DIGIT THREE
        b"3.0",
        b"",
        b"3e0",
    ],
)
def test_content_length_is_plain_ascii_digits_cve_2025_69224(value: bytes) -> None:
    err = refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + value + b"\r\n\r\nabc")
    assert err.status == 400 and "Content-Length" in err.detail


def test_differing_content_lengths() -> None:
    err = refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n")
    assert err.status == 400 and "differ" in err.detail


def test_content_length_with_transfer_encoding_cve_2023_47641() -> None:
    # aiohttp's two parsers once disagreed on which of the two wins.
    for order in (
        b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
    ):
        err = refused(b"POST / HTTP/1.1\r\nHost: a\r\n" + order + b"\r\n0\r\n\r\n")
        assert "both Content-Length and Transfer-Encoding" in err.detail


def test_huge_content_length_is_413_before_int() -> None:
    err = refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n")
    assert err.status == 413


# -- Transfer-Encoding and chunked bodies ---------------------------------------------


def test_chunked_body_with_extensions_and_trailers() -> None:
    req, body, trailers = only_request(POST_CHUNKED)
    assert req.chunked and req.content_length is None and req.has_body
    assert body == b"hello world"
    assert trailers.raw == [(b"X-Sum", b"abc")]


def test_chunked_is_case_insensitive_and_may_span_fields() -> None:
    req, body, _ = only_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n1\r\nx\r\n0\r\n\r\n"
    )
    assert req.chunked and body == b"x"


@pytest.mark.parametrize(
    ("value", "status", "detail"),
    [
        (b"gzip", 400, "final coding is not chunked"),
        (b"chunked, gzip", 400, "final coding is not chunked"),
        (b"identity", 400, "final coding is not chunked"),
        (b"", 400, "final coding is not chunked"),
        (b"chunked, chunked", 400, "more than once"),
        (b"gzip, chunked", 501, "not implemented"),
        (b"deflate, chunked", 501, "not implemented"),
        (b"foo, chunked", 400, "unknown transfer coding"),
        (b"chunked;q=1", 400, "final coding is not chunked"),
    ],
)
def test_transfer_encoding_rules(value: bytes, status: int, detail: str) -> None:
    err = refused(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + value + b"\r\n\r\n")
    assert err.status == status and detail in err.detail


def test_chunked_twice_across_fields() -> None:
    err = refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert "more than once" in err.detail


def test_transfer_encoding_in_http_1_0() -> None:
    err = refused(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert "HTTP/1.0" in err.detail


CHUNKED_HEAD = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    ("chunks", "detail"),
    [
        (b"g\r\n", "not hexadecimal"),
        (b"+5\r\nhello\r\n0\r\n\r\n", "not hexadecimal"),  # int(x, 16) takes '+'
        (b"0x5\r\nhello\r\n0\r\n\r\n", "junk after chunk size"),  # int(x, 0) takes '0x'
        (b"1_0\r\n", "junk after chunk size"),  # int() takes '_'
        (b" 5\r\nhello\r\n0\r\n\r\n", "not hexadecimal"),  # int() strips spaces
        (b"5 \r\nhello\r\n0\r\n\r\n", "junk after chunk size"),
        (b"\xd9\xa3\r\n", "not hexadecimal"),
        (b"5;\r\nhello\r\n0\r\n\r\n", "junk after chunk size"),
        (b"5 ;a=b\r\nhello\r\n0\r\n\r\n", "junk after chunk size"),
        (b"5;a=\r\nhello\r\n0\r\n\r\n", "junk after chunk size"),
        (b'5;a="b\r\nhello\r\n0\r\n\r\n', "junk after chunk size"),
        (b"5;a=b c\r\nhello\r\n0\r\n\r\n", "junk after chunk size"),
        (b"\r\nhello\r\n", "not hexadecimal"),
        (b"10000000000000000\r\n", "overflows"),  # 17 hex digits
        (b"00000000000000005\r\n", "overflows"),
    ],
)
def test_bad_chunk_size_lines(chunks: bytes, detail: str) -> None:
    err = refused(CHUNKED_HEAD + chunks)
    assert err.status == 400 and detail in err.detail


def test_lf_inside_chunk_extension_cve_2024_52304() -> None:
    for data in (
        CHUNKED_HEAD + b"5;a\nb\r\nhello\r\n0\r\n\r\n",
        [CHUNKED_HEAD + b"5;a\n", b"b\r\nhello\r\n0\r\n\r\n"],
        CHUNKED_HEAD + b"5\nhello\r\n0\r\n\r\n",
        CHUNKED_HEAD + b"5\r\nhello\r\n0\n\r\n",
    ):
        err = refused(data)
        assert err.status == 400 and ("bare CR or LF" in err.detail or "bare LF" in err.detail)


@pytest.mark.parametrize(
    "after", [b"XX", b"\n0", b"\r0", b"\rX", b" \r\n", b"\n\r", b"hello"], ids=repr
)
def test_chunk_data_must_end_in_crlf_cve_2025_43859(after: bytes) -> None:
    # h11 accepted any two bytes after a chunk's data.
    err = refused(CHUNKED_HEAD + b"5\r\nhello" + after + b"0\r\n\r\n")
    assert "not followed by CRLF" in err.detail


def test_sixteen_hex_digits_are_fine() -> None:
    _, body, _ = only_request(CHUNKED_HEAD + b"0000000000000005\r\nhello\r\n0\r\n\r\n")
    assert body == b"hello"


@pytest.mark.parametrize(
    ("trailers", "status", "detail"),
    [
        (b"Content-Length: 5\r\n", 400, "not allowed in trailers"),
        (b"Transfer-Encoding: chunked\r\n", 400, "not allowed in trailers"),
        (b"Host: b\r\n", 400, "not allowed in trailers"),
        (b"X : y\r\n", 400, "whitespace between header name and colon"),
        (b"X: y\r\n z\r\n", 400, "obs-fold"),
        (b"X: a\x00b\r\n", 400, "NUL"),
        (b"X: y\n", 400, "bare LF"),
        (b"X: y\ry\r\n", 400, "bare CR"),
    ],
)
def test_trailers_are_parsed_strictly_cve_2025_53643(
    trailers: bytes, status: int, detail: str
) -> None:
    err = refused(CHUNKED_HEAD + b"0\r\n" + trailers + b"\r\n")
    assert err.status == status and detail in err.detail


def test_trailers_are_bounded_cve_2026_22815() -> None:
    limits = Limits(max_headers=3, max_header_block=100, max_field_size=50)
    ok = b"".join(b"T%d: v\r\n" % i for i in range(3))
    assert only_request(CHUNKED_HEAD + b"0\r\n" + ok + b"\r\n", limits)[2].getall("t1") == ["v"]
    too_many = b"".join(b"T%d: v\r\n" % i for i in range(4))
    assert refused(CHUNKED_HEAD + b"0\r\n" + too_many + b"\r\n", limits).status == 431
    # ... and bounded while they arrive, not only once they are complete.
    assert refused([CHUNKED_HEAD + b"0\r\n", too_many], limits).status == 431
    long_line = b"T: " + b"v" * 60 + b"\r\n"
    assert refused(CHUNKED_HEAD + b"0\r\n" + long_line + b"\r\n", limits).status == 431
    assert refused([CHUNKED_HEAD + b"0\r\n", long_line[:-2]], limits).status == 431
    big = b"".join(b"T%d: %s\r\n" % (i, b"v" * 40) for i in range(3))
    assert refused([CHUNKED_HEAD + b"0\r\n", big], limits).status == 431


# -- connection semantics -----------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        (b"1.1", None, True),
        (b"1.1", b"close", False),
        (b"1.1", b"Close", False),
        (b"1.1", b"keep-alive, close", False),
        (b"1.1", b"keep-alive", True),
        (b"1.1", b"foo, , bar", True),
        (b"1.0", None, False),
        (b"1.0", b"keep-alive", True),
        (b"1.0", b"Keep-Alive", True),
        (b"1.0", b"keep-alive, close", False),
    ],
)
def test_keep_alive_rules(version: bytes, connection: bytes | None, keep_alive: bool) -> None:
    fields = b"Host: a\r\n" + (b"Connection: " + connection + b"\r\n" if connection else b"")
    req, _, _ = only_request(b"GET / HTTP/" + version + b"\r\n" + fields + b"\r\n")
    assert req.keep_alive is keep_alive


def test_after_a_closing_request_nothing_more_is_parsed() -> None:
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\n")
    assert isinstance(parser.next_event(), Request)
    assert isinstance(parser.next_event(), EndOfMessage)
    assert parser.next_event() is None and parser.state == ParserState.CLOSED
    parser.feed(b"garbage\r\n\r\n")
    assert parser.next_event() is None


@pytest.mark.parametrize(
    ("version", "value", "expected"),
    [
        (b"1.1", b"100-continue", True),
        (b"1.1", b"100-Continue", True),
        (b"1.1", b"something-else", False),
        (b"1.0", b"100-continue", False),  # RFC 9110 10.1.1: ignore it from a 1.0 client
    ],
)
def test_expect_continue(version: bytes, value: bytes, expected: bool) -> None:
    data = b"POST / HTTP/" + version + b"\r\nHost: a\r\nExpect: " + value
    req, _, _ = only_request(data + b"\r\nContent-Length: 1\r\n\r\nx")
    assert req.expect_continue is expected


def test_upgrade_pauses_and_hands_over_trailing_bytes() -> None:
    parser = RequestParser()
    parser.feed(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
        b"Upgrade: websocket\r\n\r\n\x81\x05hello"
    )
    req = parser.next_event()
    assert isinstance(req, Request) and req.upgrade
    assert isinstance(parser.next_event(), EndOfMessage)
    assert parser.next_event() is None and parser.state == ParserState.PAUSED
    assert parser.trailing_data == b"\x81\x05hello"


def test_declined_upgrade_resumes_http() -> None:
    parser = RequestParser()
    parser.feed(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    assert isinstance(parser.next_event(), Request)
    assert isinstance(parser.next_event(), EndOfMessage)
    assert parser.next_event() is None
    parser.resume()
    req = parser.next_event()
    assert isinstance(req, Request) and req.target == "/next"
    with pytest.raises(RuntimeError, match="PAUSED"):
        parser.resume()


@pytest.mark.parametrize(
    "fields",
    [
        b"Upgrade: websocket\r\n",  # no Connection: upgrade
        b"Connection: upgrade\r\n",  # no Upgrade
    ],
)
def test_upgrade_needs_both_fields(fields: bytes) -> None:
    req, _, _ = only_request(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n")
    assert not req.upgrade


def test_upgrade_is_ignored_in_http_1_0() -> None:
    req, _, _ = only_request(b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n")
    assert not req.upgrade


def test_connect_pauses() -> None:
    parser = RequestParser()
    parser.feed(b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n\x16\x03")
    assert isinstance(parser.next_event(), Request)
    assert isinstance(parser.next_event(), EndOfMessage)
    assert parser.state == ParserState.PAUSED and parser.trailing_data == b"\x16\x03"


# -- pipelining and splits ------------------------------------------------------------

SAMPLES = {
    "get": GET,
    "post-cl": POST_CL,
    "post-chunked": POST_CHUNKED,
    "pipelined": GET + POST_CHUNKED + POST_CL + b"\r\n" + GET,
    "http10": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nHEAD /x HTTP/1.0\r\n\r\n",
}


def test_pipelined_requests_in_one_buffer() -> None:
    out = summary(events(SAMPLES["pipelined"]))
    assert [o[1] for o in out[::2]] == ["/index.html?q=1", "/up", "/submit", "/index.html?q=1"]
    assert [o[1] for o in out[1::2]] == [b"", b"hello world", b"hello world", b""]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_split_point_gives_the_same_events(name: str) -> None:
    data = SAMPLES[name]
    whole = summary(events(data))
    for i in range(len(data) + 1):
        assert summary(events([data[:i], data[i:]])) == whole, i
    for i in range(1, len(data), 7):
        for j in range(i, len(data), 13):
            assert summary(events([data[:i], data[i:j], data[j:]])) == whole, (i, j)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_byte_by_byte(name: str) -> None:
    data = SAMPLES[name]
    assert summary(events([data[i : i + 1] for i in range(len(data))])) == summary(events(data))


def test_errors_are_the_same_at_every_split_point() -> None:
    for data in (
        b"GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n",
        CHUNKED_HEAD + b"5\r\nhelloXX0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n",
    ):
        status = refused(data).status
        for i in range(len(data) + 1):
            assert refused([data[:i], data[i:]]).status == status, (data, i)


def test_feed_eof() -> None:
    parser = RequestParser()
    parser.feed_eof()  # idle: a clean close
    assert parser.state == ParserState.CLOSED
    for partial in (b"GET / HT", POST_CL[:-3], CHUNKED_HEAD + b"5\r\nhel", b"\r\n"):
        parser = RequestParser()
        parser.feed(partial)
        while parser.next_event() is not None:
            pass
        with pytest.raises(HTTPError) as info:
            parser.feed_eof()
        assert info.value.status == 400 and parser.state == ParserState.ERROR


def test_a_dead_parser_stays_dead() -> None:
    parser = RequestParser()
    parser.feed(b"BAD\r\n\r\n")
    with pytest.raises(HTTPError):
        parser.next_event()
    parser.feed(GET)
    assert parser.next_event() is None and parser.state == ParserState.ERROR


# -- limits: at the limit, and one past it ---------------------------------------------


def _line_of(n: int) -> bytes:
    """A request line of exactly n bytes."""
    head = b"GET /"
    tail = b" HTTP/1.1"
    return head + b"a" * (n - len(head) - len(tail)) + tail


def test_request_line_limit() -> None:
    limits = Limits(max_request_line=100)
    assert len(_line_of(100)) == 100
    assert only_request(_line_of(100) + b"\r\nHost: a\r\n\r\n", limits)[0].method == "GET"
    assert refused(_line_of(101) + b"\r\nHost: a\r\n\r\n", limits).status == 414


def test_request_line_limit_across_segments_cve_2026_54277() -> None:
    # Dribbled one byte at a time, with no CRLF yet: refused as soon as the line
    # is one byte past the limit, not when (if ever) it completes.
    limits = Limits(max_request_line=100)
    parser = RequestParser(limits)
    line = _line_of(200)
    for i, byte in enumerate(line):
        parser.feed(bytes([byte]))
        if i < 100:
            assert parser.next_event() is None
        else:
            with pytest.raises(HTTPError) as info:
                parser.next_event()
            assert info.value.status == 414 and i == 100
            break


def test_empty_lines_count_towards_the_request_line_limit() -> None:
    limits = Limits(max_request_line=100)
    assert refused(b"\r\n" * 51 + GET, limits).status == 414
    assert only_request(b"\r\n" * 50 + GET, limits)[0].method == "GET"


def _field_of(n: int, name: bytes = b"X") -> bytes:
    """A header line of exactly n bytes (without CRLF)."""
    return name + b": " + b"v" * (n - len(name) - 2)


def test_field_line_limit() -> None:
    limits = Limits(max_field_size=50)
    ok = b"GET / HTTP/1.1\r\nHost: a\r\n" + _field_of(50) + b"\r\n\r\n"
    assert only_request(ok, limits)[0].headers["x"] == "v" * 47
    bad = b"GET / HTTP/1.1\r\nHost: a\r\n" + _field_of(51) + b"\r\n\r\n"
    err = refused(bad, limits)
    assert err.status == 431 and "line too long" in err.detail
    # Across segments, before the line completes:
    err = refused([b"GET / HTTP/1.1\r\nHost: a\r\n", _field_of(51)], limits)
    assert err.status == 431
    parser = RequestParser(limits)
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n" + _field_of(50))
    assert parser.next_event() is None  # at the limit, still waiting


def test_header_block_limit() -> None:
    limits = Limits(max_header_block=100, max_field_size=100)
    # Host: a\r\n is 9 bytes; one field of 89 bytes + CRLF makes exactly 100.
    ok = b"GET / HTTP/1.1\r\nHost: a\r\n" + _field_of(89) + b"\r\n\r\n"
    assert only_request(ok, limits)[0].method == "GET"
    bad = b"GET / HTTP/1.1\r\nHost: a\r\n" + _field_of(90) + b"\r\n\r\n"
    err = refused(bad, limits)
    assert err.status == 431 and "section too large" in err.detail
    # Split so that no single piece is over any limit:
    pieces = [b"GET / HTTP/1.1\r\nHost: a\r\n", _field_of(45, b"A") + b"\r\n"]
    pieces += [_field_of(45, b"B") + b"\r\n", b"C: x"]
    err = refused(pieces, limits)
    assert err.status == 431


def test_header_count_limit() -> None:
    limits = Limits(max_headers=5)
    fields = b"".join(b"X%d: v\r\n" % i for i in range(4))
    assert (
        len(only_request(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n", limits)[0].headers)
        == 5
    )
    fields += b"X9: v\r\n"
    err = refused(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n", limits)
    assert err.status == 431 and "too many header fields" in err.detail
    assert refused([b"GET / HTTP/1.1\r\nHost: a\r\n" + fields], limits).status == 431


def test_body_size_limit_content_length() -> None:
    limits = Limits(max_body_size=10)
    ok = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n" + b"x" * 10
    assert only_request(ok, limits)[1] == b"x" * 10
    # Refused from the head alone, before a byte of the body is read.
    parser = RequestParser(limits)
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n")
    with pytest.raises(HTTPError) as info:
        parser.next_event()
    assert info.value.status == 413


def test_body_size_limit_chunked() -> None:
    limits = Limits(max_body_size=10)
    ok = CHUNKED_HEAD + b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"
    assert only_request(ok, limits)[1] == b"helloworld"
    bad = CHUNKED_HEAD + b"5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n"
    evs: list[Event] = []
    parser = RequestParser(limits)
    parser.feed(bad)
    with pytest.raises(HTTPError) as info:
        while (ev := parser.next_event()) is not None:
            evs.append(ev)
    assert info.value.status == 413
    assert b"".join(e for e in evs if isinstance(e, bytes)) == b"hello"  # refused at the size line


def test_default_body_limit_is_one_mebibyte() -> None:
    assert Limits().max_body_size == 1024 * 1024
    head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
    assert refused(head % (1024 * 1024 + 1)).status == 413
    assert isinstance(events(head % (1024 * 1024))[0], Request)


def test_chunk_line_limit() -> None:
    limits = Limits(max_chunk_line=20)
    ext = b";" + b"a" * 18  # 1 + 19 = 20 bytes with the size digit
    ok = CHUNKED_HEAD + b"1" + ext + b"\r\nx\r\n0\r\n\r\n"
    assert only_request(ok, limits)[1] == b"x"
    bad = CHUNKED_HEAD + b"1" + ext + b"a\r\nx\r\n0\r\n\r\n"
    assert "too long" in refused(bad, limits).detail
    assert "too long" in refused([CHUNKED_HEAD, b"1" + ext + b"a"], limits).detail


def test_limits_validate_their_arguments() -> None:
    with pytest.raises(ValueError, match="max_headers"):
        Limits(max_headers=0)
    assert "max_body_size=1048576" in repr(Limits())


def test_http_error_reason_and_str() -> None:
    err = HTTPError(431, "too many")
    assert err.reason == "Request Header Fields Too Large"
    assert str(err) == "431 Request Header Fields Too Large: too many"
    assert HTTPError(599, "x").reason == "Error"


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",  # junk after the version
        b"GET / HTTP/1.1\x00\r\nHost: a\r\n\r\n",
        b"GET / HTTP/\xef\xbc\x91.\xef\xbc\x91\r\nHost: a\r\n\r\n",  # fullwidth digits
        b"GET / HTTP/1.1\xc3\x84\r\nHost: a\r\n\r\n",
        b"G\xc3\x84T / HTTP/1.1\r\nHost: a\r\n\r\n",  # non-ASCII method
        b"GET / HTTP/1.1\r\nHost: a\r\nX\x00Y: z\r\n\r\n",  # NUL in a name
        b'GET / HTTP/1.1\r\nHost: a\r\n"X": z\r\n\r\n',  # a separator in a name
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x00\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\x00\r\n\r\nx",
    ],
)
def test_lenient_parsing_cve_2023_47627_cve_2024_23829(data: bytes) -> None:
    # aiohttp's pure-Python parser accepted all of these at some point.
    assert refused(data).status in (400, 505)


def test_a_repeated_header_block_is_reused_only_when_identical() -> None:
    """The parser remembers the last header block it validated: the same bytes
    (and version) give the same fields and framing without parsing them again.
    Any difference, however small, is parsed afresh."""
    p = RequestParser()
    head = b"Host: a\r\nContent-Length: 3\r\n\r\n"
    p.feed(b"POST /1 HTTP/1.1\r\n" + head + b"abc" + b"POST /2 HTTP/1.1\r\n" + head + b"xyz")
    first = p.next_event()
    assert isinstance(first, Request) and first.content_length == 3
    assert p.next_event() == b"abc"
    assert isinstance(p.next_event(), EndOfMessage)
    second = p.next_event()
    assert isinstance(second, Request) and second is not first
    assert (second.target, second.content_length) == ("/2", 3)
    assert second.headers == first.headers
    assert p.next_event() == b"xyz"
    assert isinstance(p.next_event(), EndOfMessage)
    # One byte different: Content-Length 4 now, and its body.
    p.feed(b"POST /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nwxyz")
    third = p.next_event()
    assert isinstance(third, Request) and third.content_length == 4
    assert p.next_event() == b"wxyz"
    assert isinstance(p.next_event(), EndOfMessage)
    # Same block, other version: framing is judged again (no Host needed in 1.0,
    # keep-alive differs).
    p.feed(b"GET /4 HTTP/1.0\r\nHost: a\r\nContent-Length: 4\r\n\r\nwxyz")
    fourth = p.next_event()
    assert isinstance(fourth, Request) and fourth.version == (1, 0)
    assert not fourth.keep_alive


def test_framing_is_reused_only_for_the_same_framing_lines_and_version() -> None:
    """A block that differs from the last only outside its framing lines (a
    cookie) reuses the last framing; other framing lines, or another version
    with the same lines, are judged again."""
    p = RequestParser()
    heads = [
        (b"GET /1 HTTP/1.1\r\nHost: a\r\nCookie: 1\r\n\r\n", (1, 1), True),
        (b"GET /2 HTTP/1.1\r\nHost: a\r\nCookie: 2\r\n\r\n", (1, 1), True),
        (b"GET /3 HTTP/1.1\r\nHost: a\r\nCookie: 3\r\nConnection: close\r\n\r\n", (1, 1), False),
    ]
    for data, version, keep_alive in heads:
        p.feed(data)
        request = p.next_head()
        assert request is not None
        assert (request.version, request.keep_alive) == (version, keep_alive)
    # Same framing lines as /1 and /2 (Host only), under HTTP/1.0: it closes.
    p = RequestParser()
    p.feed(b"GET /1 HTTP/1.1\r\nHost: a\r\nCookie: 1\r\n\r\n")
    assert p.next_head() is not None
    p.feed(b"GET /2 HTTP/1.0\r\nHost: a\r\nCookie: 2\r\n\r\n")
    request = p.next_head()
    assert request is not None and request.version == (1, 0) and not request.keep_alive
    assert p.state == ParserState.CLOSED
    # And the other way: 1.0 first, then 1.1 with the same lines keeps alive.
    p = RequestParser()
    p.feed(b"GET /1 HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nCookie: 1\r\n\r\n")
    assert p.next_head() is not None and p.state == ParserState.HEAD
    p.feed(b"GET /2 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nCookie: 2\r\n\r\n")
    request = p.next_head()
    assert request is not None and request.version == (1, 1) and request.keep_alive


def test_headers_split_on_first_use_and_shared_by_a_repeated_block() -> None:
    """The parser validates a block at once but splits it into fields only when
    the headers are first read; two requests with the same block share them."""
    block = b"Host: a\r\nX-A: 1\r\nx-a:\t2\t\r\n\r\n"
    evs = events(b"GET /1 HTTP/1.1\r\n" + block + b"GET /2 HTTP/1.1\r\n" + block)
    first, second = (e for e in evs if isinstance(e, Request))
    assert second.headers is first.headers and isinstance(first.headers, Headers)
    assert first.headers.getall("X-A") == ["1", "2"] and len(second.headers) == 3
    with pytest.raises(AttributeError):
        first.headers.no_such_attribute  # type: ignore[attr-defined]  # noqa: B018


def test_framing_fields_with_trailing_whitespace_and_any_case() -> None:
    req, body, _ = only_request(
        b"POST / HTTP/1.1\r\nhOsT: a\t\r\nCONTENT-length: 3 \t\r\n"
        b"Connection:  Close \r\nExpect: 100-Continue\r\n\r\nabc"
    )
    assert (req.content_length, body, req.keep_alive, req.expect_continue) == (
        3,
        b"abc",
        False,
        True,
    )


def test_framing_worked_out_once_is_not_reused_under_other_limits() -> None:
    """Framing is remembered across connections (keyed by version, limits and
    the framing fields); a parser with a smaller body limit still refuses."""
    data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + b"x" * 100
    req, body, _ = only_request(data)
    assert req.content_length == 100 and len(body) == 100
    assert refused(data, Limits(max_body_size=99)).status == 413
    assert only_request(data)[0].content_length == 100


def test_framing_that_was_refused_is_refused_again() -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nX: 1\r\n\r\n"
    for _ in range(3):
        assert "more than one Host" in refused(data).detail


def test_a_bad_block_is_refused_every_time() -> None:
    for _ in range(2):
        p = RequestParser()
        p.feed(b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n")
        with pytest.raises(HTTPError):
            p.next_event()


# -- next_head(): the server's one-call head ------------------------------------------


def test_next_head_ends_a_bodiless_request_and_gives_the_same_request() -> None:
    parser = RequestParser()
    parser.feed(GET + GET)
    first = parser.next_head()
    assert first is not None and not first.has_body
    assert parser.state == ParserState.HEAD  # no EndOfMessage to take
    assert summary([first, EndOfMessage()]) == summary(events(GET))
    second = parser.next_event()  # the event API goes on as usual
    assert isinstance(second, Request) and second.target == first.target
    assert isinstance(parser.next_event(), EndOfMessage)
    assert parser.next_event() is None


def test_next_head_leaves_a_body_to_next_event() -> None:
    parser = RequestParser()
    parser.feed(POST_CL)
    request = parser.next_head()
    assert request is not None and request.content_length == 11
    assert parser.state == ParserState.BODY
    assert parser.next_event() == b"hello world"
    assert isinstance(parser.next_event(), EndOfMessage)


@pytest.mark.parametrize(
    ("data", "state"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", ParserState.CLOSED),
        (b"GET / HTTP/1.0\r\n\r\n", ParserState.CLOSED),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            ParserState.PAUSED,
        ),
        (b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", ParserState.PAUSED),
    ],
)
def test_next_head_ends_in_the_state_next_event_would(data: bytes, state: int) -> None:
    parser = RequestParser()
    parser.feed(data)
    assert parser.next_head() is not None
    assert parser.state == state
    other = RequestParser()
    other.feed(data)
    assert isinstance(other.next_event(), Request)
    assert isinstance(other.next_event(), EndOfMessage)
    assert other.state == state


def test_next_head_waits_for_a_whole_head_and_raises_like_next_event() -> None:
    parser = RequestParser()
    parser.feed(GET[:-2])
    assert parser.next_head() is None
    parser.feed(GET[-2:])
    assert parser.next_head() is not None
    bad = RequestParser()
    bad.feed(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n")
    with pytest.raises(HTTPError) as info:
        bad.next_head()
    assert info.value.status == 400 and bad.state == ParserState.ERROR
    body = RequestParser()
    body.feed(POST_CL[:-3])
    assert body.next_head() is not None
    with pytest.raises(RuntimeError, match="waiting for a request head"):
        body.next_head()


def test_limits_are_read_only() -> None:
    # Parsers copy limits and remember framing by them: a change afterwards
    # would reach some checks and not others, so there is none.
    limits = Limits(max_body_size=10)
    with pytest.raises(AttributeError, match="read-only"):
        limits.max_body_size = 5
    with pytest.raises(AttributeError, match="read-only"):
        del limits.max_headers
    with pytest.raises(AttributeError, match="read-only"):
        limits.other = 1  # type: ignore[attr-defined]
    assert limits.max_body_size == 10
