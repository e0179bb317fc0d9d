"""Differential tests of the response parser: the same bytes through Treadle's
`ResponseParser`, llhttp's response parser (httptools) and h11 as a client.

As for requests (test_differential.py), each peer's verdict and parsed
messages (status, reason, version, headers, body, trailers) must agree with
Treadle's, or the disagreement must be a named rule:

- `TREADLE_STRICTER`: Treadle refuses what a peer accepts, found from
  Treadle's error detail. The numbered rules are the request parser's, the
  same code on the same bytes (the package docstring of `treadle.http`
  explains them); the R rules are the status line's and the client's own.
- `PEER_STRICTER`: a peer refuses what Treadle accepts, found from the peer's
  error: each is a place where RFC 9112 tells a user agent to be lenient (bare
  LF, obs-fold) or allows what the peer does not.

Limits of the peers, not rules: httptools cannot be told the request method,
so HEAD and CONNECT are compared with h11 only; none of the parsers is told
the connection closed, so a body read until the close is compared as far as
it went. Inputs: a hand-written corpus, then hypothesis-generated valid
responses (with 1xx before them, every framing, keep-alive pipelines),
mutations of them, each fed with random split points. Hypothesis runs
derandomized without a database, so CI is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest
from hypothesis import given, strategies as st

from tests.http.conftest import pure_python_parser, require_speedups
from tests.http.peers import (
    ResponseMessage,
    ResponseVerdict,
    parse_h11_response,
    parse_llhttp_response,
    parse_treadle_response,
)
from tests.http.test_differential import INTERESTING, _settings, names, split, values

# Treadle refuses, a peer accepts: a substring of Treadle's error detail -> the rule.
TREADLE_STRICTER: dict[str, str] = {
    "bare CR": "2. a bare CR is refused",
    "bare LF": "1. CRLF in chunked framing (the shared decoder): trailers",
    "bare CR or LF in chunk-size line": "1. CRLF in chunked framing (the shared decoder)",
    "not followed by CRLF": "3. only CRLF ends chunk data",
    "junk after chunk size": "4. chunk extensions follow the grammar, no whitespace",
    "chunk size is not hexadecimal": "4. chunk size lines follow the grammar",
    "overflows": "5. at most 16 hex digits in a chunk size",
    "not implemented": "6. only Transfer-Encoding: chunked (known codings)",
    "unknown transfer coding": "6. only Transfer-Encoding: chunked (unknown codings)",
    "more than once": "6. chunked applied once",
    "final coding is not chunked": "6. the final coding must be chunked (no read-until-close)",
    "HTTP/1.0 response": "7. no Transfer-Encoding in HTTP/1.0 (RFC 9112 6.1: faulty framing)",
    "invalid Content-Length": "8. Content-Length is plain ASCII digits, one value per field",
    "differ": "8. differing Content-Length values",
    "control character in header value": "9. no CTL but HTAB in values",
    "NUL in header value": "9. no CTL but HTAB in values",
    "not supported": "12. only HTTP/1.0 and 1.1",
    "not allowed in trailers": "13. no framing fields in trailers",
    "obs-fold) is not allowed": "obs-fold in a trailer section is refused: trailers go through "
    "the decoder both directions share (the request rules), where a fold is refused; only a "
    "response head is unfolded (RFC 9112 5.2)",
    "both Content-Length and Transfer-Encoding": "18. Content-Length with Transfer-Encoding",
    "control character in reason phrase": "R1. no CTL but HTAB in a reason phrase",
    "invalid status code": "R2. a status code is 100-999",
    "not an HTTP/1.x status line": "R3. nothing before the status line (no empty lines)",
    "no request outstanding": "R4. bytes past the last response's framing answer no request",
    "malformed status code": "R5. a status code is exactly three ASCII digits",
}

# A peer refuses, Treadle accepts: a substring of the peer's error -> the reason.
PEER_STRICTER: dict[str, dict[str, str]] = {
    "llhttp": {
        "Missing expected CR": "llhttp (strict) refuses a bare LF in the head; RFC 9112 2.2 "
        "lets a user agent read it as a line end",
        "Invalid header field char": "llhttp (strict) refuses a bare LF ending the head",
        "Missing expected LF after header value": "llhttp (strict) refuses a bare LF in the head",
        "Unexpected whitespace after header value": "llhttp refuses obs-fold; RFC 9112 5.2 "
        "tells a user agent to unfold it",
        "Invalid header value char": "llhttp (strict) refuses a bare LF or an obs-fold that "
        "ends a header value (RFC 9112 2.2, 5.2: a user agent may read and must unfold them)",
        "Duplicate Content-Length": "llhttp refuses identical repeated Content-Length fields",
        "Data after `Connection: close`": "llhttp refuses bytes after a closing response",
    },
    "h11": {},
}


def _comparable(messages: Sequence[ResponseMessage]) -> list[ResponseMessage]:
    # h11 merges repeated Content-Length fields and lower-cases
    # Transfer-Encoding; framing is compared through the body instead.
    out = []
    for m in messages:
        headers = tuple(
            (n, v) for n, v in m.headers if n not in (b"content-length", b"transfer-encoding")
        )
        out.append(replace(m, headers=headers))
    return out


def _squeezed(
    messages: list[ResponseMessage], partial: ResponseMessage | None
) -> list[ResponseMessage]:
    """Messages with every run of whitespace in a header value made one SP."""
    out = []
    for m in [*messages, *([partial] if partial else [])]:
        headers = tuple((n, b" ".join(v.split())) for n, v in m.headers)
        out.append(replace(m, headers=headers))
    return out


def _judge(
    data: bytes | list[bytes],
    methods: Sequence[str] = ("GET",),
    seen: dict[str, int] | None = None,
) -> None:
    """Fail unless each peer agrees with Treadle or a named rule explains why not."""
    treadle = parse_treadle_response(data, tuple(methods))
    if isinstance(data, list):
        # Treadle's verdict must not depend on how the bytes were split.
        whole = parse_treadle_response(b"".join(data), tuple(methods))
        assert (whole.accepted, whole.messages, whole.detail) == (
            treadle.accepted,
            treadle.messages,
            treadle.detail,
        ), data
        if whole.accepted:
            assert (whole.partial is None) == (treadle.partial is None), data
            if whole.partial is not None:
                assert treadle.partial is not None
                assert replace(whole.partial, body=b"") == replace(treadle.partial, body=b"")
    peers: list[tuple[str, ResponseVerdict]] = [("h11", parse_h11_response(data, tuple(methods)))]
    if all(m == "GET" for m in methods):
        peers.append(("llhttp", parse_llhttp_response(data)))
    for name, peer in peers:
        rule = _explain(name, treadle, peer)
        assert rule is not None, (
            f"unexplained disagreement with {name} on {data!r} ({methods}):\n"
            f"treadle: {treadle}\n{name}: {peer}"
        )
        if seen is not None:
            seen[f"{name}: {rule}"] = seen.get(f"{name}: {rule}", 0) + 1


def _explain(name: str, treadle: ResponseVerdict, peer: ResponseVerdict) -> str | None:
    """The rule explaining how `peer` differs from Treadle ('agree' if it does not)."""
    t_msgs, p_msgs = _comparable(treadle.messages), _comparable(peer.messages)
    if treadle.accepted and peer.accepted:
        t_part = _comparable([treadle.partial])[0] if treadle.partial else None
        p_part = _comparable([peer.partial])[0] if peer.partial else None
        if t_msgs == p_msgs and t_part == p_part:
            return "agree"
        if (
            t_msgs == p_msgs
            and t_part
            and p_part
            and replace(t_part, body=b"") == replace(p_part, body=b"")
            and (t_part.body.startswith(p_part.body) or p_part.body.startswith(t_part.body))
        ):
            return "agree (a body in progress, cut elsewhere)"
        if name == "h11" and _squeezed(t_msgs, t_part) == _squeezed(p_msgs, p_part):
            return (
                "obs-fold: h11 keeps the whitespace before a fold; RFC 9112 5.2's obs-fold "
                "includes it, and Treadle makes all of it one SP"
            )
        if (
            name == "h11"
            and p_part is None
            and p_msgs
            and p_msgs[-1].version == "1.0"
            and t_msgs[: len(p_msgs)] == p_msgs
        ):
            return "h11 closes after every HTTP/1.0 response, keep-alive or not"
        return None
    if not treadle.accepted and not peer.accepted:
        n = min(len(t_msgs), len(p_msgs))
        return "agree" if t_msgs[:n] == p_msgs[:n] else None
    if treadle.accepted:
        if t_msgs[: len(p_msgs)] != p_msgs:
            return None
        for key, reason in PEER_STRICTER[name].items():
            if key in peer.detail:
                return reason
        if not treadle.complete or treadle.partial is not None:
            # Treadle judges a head or a trailer section when it is whole;
            # the peer refused a part of it.
            return "(Treadle refuses later: the input ends inside a message)"
        return None
    if not peer.complete or peer.partial is not None:
        # Treadle refused at once what the peer is still reading.
        same = t_msgs == p_msgs[: len(t_msgs)]
        return "(Treadle refuses early: the peer is still waiting for bytes)" if same else None
    if t_msgs != p_msgs[: len(t_msgs)]:
        return None
    for key, rule in TREADLE_STRICTER.items():
        if key in treadle.detail:
            return rule
    return None


# -- a hand-written corpus ---------------------------------------------------------

S = b"HTTP/1.1 200 OK\r\n"
CH = S + b"Transfer-Encoding: chunked\r\n\r\n"
CORPUS: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "plain": (S + b"Content-Length: 2\r\n\r\nhi", ("GET",)),
    "no-reason": (b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nhi", ("GET",)),
    "empty-reason": (b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nhi", ("GET",)),
    "obs-text-reason": (b"HTTP/1.1 200 \xe9t\xe9\r\nContent-Length: 0\r\n\r\n", ("GET",)),
    "bare-lf": (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi", ("GET",)),
    "bare-lf-blank": (S + b"Content-Length: 2\r\n\nhi", ("GET",)),
    "bare-lf-field": (S + b"X: y\nContent-Length: 2\r\n\r\nhi", ("GET",)),
    "bare-cr": (S + b"X: a\rb\r\nContent-Length: 2\r\n\r\nhi", ("GET",)),
    "obs-fold": (S + b"X: a\r\n b\r\nContent-Length: 2\r\n\r\nhi", ("GET",)),
    "ws-first": (S + b" X: a\r\nContent-Length: 2\r\n\r\nhi", ("GET",)),
    "space-colon": (S + b"X : a\r\nContent-Length: 2\r\n\r\nhi", ("GET",)),
    "nul": (S + b"X: a\x00b\r\nContent-Length: 2\r\n\r\nhi", ("GET",)),
    "ctl": (S + b"X: a\x01b\r\nContent-Length: 2\r\n\r\nhi", ("GET",)),
    "status-2000": (b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", ("GET",)),
    "status-099": (b"HTTP/1.1 099 OK\r\nContent-Length: 0\r\n\r\n", ("GET",)),
    "status-600": (b"HTTP/1.1 600 OK\r\nContent-Length: 0\r\n\r\n", ("GET",)),
    "double-space": (b"HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n", ("GET",)),
    "reason-ctl": (b"HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n", ("GET",)),
    "http12": (b"HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n", ("GET",)),
    "http20": (b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", ("GET",)),
    "leading-crlf": (b"\r\n" + S + b"Content-Length: 2\r\n\r\nhi", ("GET",)),
    "http10-until-close": (b"HTTP/1.0 200 OK\r\n\r\nhello", ("GET",)),
    "http11-until-close": (S + b"X: y\r\n\r\nhello", ("GET",)),
    "cl-plus": (S + b"Content-Length: +2\r\n\r\nhi", ("GET",)),
    "cl-underscore": (S + b"Content-Length: 1_0\r\n\r\n0123456789", ("GET",)),
    "cl-unicode-digit": (S + b"Content-Length: \xd9\xa2\r\n\r\nhi", ("GET",)),
    "cl-differ": (S + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\nhi", ("GET",)),
    "cl-same": (S + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\nhi", ("GET",)),
    "cl-list": (S + b"Content-Length: 2, 2\r\n\r\nhi", ("GET",)),
    "cl-te": (S + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", ("GET",)),
    "te-gzip-chunked": (S + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", ("GET",)),
    "te-gzip": (S + b"Transfer-Encoding: gzip\r\n\r\nhello", ("GET",)),
    "te-http10": (b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", ("GET",)),
    "chunked": (CH + b'5;a=b;c="d"\r\nhello\r\n0\r\nT: 1\r\n\r\n', ("GET",)),
    "chunk-plus": (CH + b"+5\r\nhello\r\n0\r\n\r\n", ("GET",)),
    "chunk-junk": (CH + b"5 x\r\nhello\r\n0\r\n\r\n", ("GET",)),
    "chunk-bad-end": (CH + b"5\r\nhelloXX0\r\n\r\n", ("GET",)),
    "chunk-lf": (CH + b"5\nhello\r\n0\r\n\r\n", ("GET",)),
    "chunk-20-digits": (CH + b"00000000000000000005\r\nhello\r\n0\r\n\r\n", ("GET",)),
    "trailer-cl": (CH + b"0\r\nContent-Length: 5\r\n\r\n", ("GET",)),
    "trailer-bare-lf": (CH + b"0\r\nT: 1\n\r\n", ("GET",)),
    "100-continue": (
        b"HTTP/1.1 100 Continue\r\n\r\n" + S + b"Content-Length: 2\r\n\r\nhi",
        ("GET",),
    ),
    "103": (
        b"HTTP/1.1 103 Early\r\nLink: <a>\r\n\r\n" + S + b"Content-Length: 2\r\n\r\nhi",
        ("GET",),
    ),
    "101": (
        b"HTTP/1.1 101 Switching\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n\x00\x01",
        ("GET",),
    ),
    "204-cl": (b"HTTP/1.1 204 No\r\nContent-Length: 5\r\n\r\n", ("GET",)),
    "204-te": (b"HTTP/1.1 204 No\r\nTransfer-Encoding: chunked\r\n\r\n", ("GET",)),
    "304-cl": (b"HTTP/1.1 304 NM\r\nContent-Length: 5\r\n\r\n", ("GET",)),
    "204-with-body": (b"HTTP/1.1 204 No\r\nContent-Length: 5\r\n\r\nhello", ("GET",)),
    "close-then-junk": (S + b"Connection: close\r\nContent-Length: 2\r\n\r\nhiJUNK", ("GET",)),
    "past-framing": (S + b"Content-Length: 2\r\n\r\nhiXX", ("GET",)),
    "pipelined": (
        S
        + b"Content-Length: 2\r\n\r\nhi"
        + CH
        + b"2\r\nho\r\n0\r\n\r\n"
        + b"HTTP/1.1 304 NM\r\n\r\n",
        ("GET", "GET", "GET"),
    ),
    "http10-keep-alive": (
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx"
        b"HTTP/1.0 200 OK\r\n\r\nrest",
        ("GET", "GET"),
    ),
    "head": (
        S + b"Content-Length: 100\r\n\r\n" + S + b"Content-Length: 2\r\n\r\nhi",
        ("HEAD", "GET"),
    ),
    "head-chunked": (CH + S + b"Content-Length: 2\r\n\r\nhi", ("HEAD", "GET")),
    "connect": (S + b"\r\n\x16\x03\x01", ("CONNECT",)),
    "connect-refused": (b"HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\nno", ("CONNECT",)),
}


@pytest.mark.usefixtures("parser_impl")
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus(name: str) -> None:
    data, methods = CORPUS[name]
    _judge(data, methods)


@pytest.mark.usefixtures("parser_impl")
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_split_everywhere(name: str) -> None:
    data, methods = CORPUS[name]
    for i in range(1, len(data)):
        _judge([data[:i], data[i:]], methods)


def test_the_named_rules_are_met() -> None:
    # The corpus meets each rule it is meant to: a table of rules nobody
    # relies on would hide a rule that changed.
    seen: dict[str, int] = {}
    for data, methods in CORPUS.values():
        _judge(data, methods, seen)
    rules = {key.split(": ", 1)[1] for key in seen}
    for expected in (
        "R1. no CTL but HTAB in a reason phrase",
        "R3. nothing before the status line (no empty lines)",
        "R4. bytes past the last response's framing answer no request",
        "7. no Transfer-Encoding in HTTP/1.0 (RFC 9112 6.1: faulty framing)",
        "12. only HTTP/1.0 and 1.1",
        PEER_STRICTER["llhttp"]["Missing expected CR"],
        PEER_STRICTER["llhttp"]["Unexpected whitespace after header value"],
    ):
        assert expected in rules, sorted(rules)


# -- generated responses --------------------------------------------------------------

REASON_CHARS = [chr(c) for c in range(0x20, 0x7F)] + ["\t", "\xe9"]
STATUSES = [200, 201, 202, 204, 206, 301, 302, 304, 400, 404, 418, 500, 503, 599]


@st.composite
def responses(draw: st.DrawFn, keep_alive: bool = False, method: str = "GET") -> bytes:
    """A valid response with optional 1xx before it, random fields and
    framing (Content-Length, chunked with extensions and trailers, or until
    the close unless `keep_alive`)."""
    out = []
    for _ in range(draw(st.integers(0, 2))):
        code = draw(st.sampled_from([100, 102, 103]))
        fields = draw(st.lists(st.tuples(names, values), max_size=2))
        out.append(
            f"HTTP/1.1 {code} Info\r\n".encode()
            + b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in fields)
            + b"\r\n"
        )
    status = draw(st.sampled_from(STATUSES))
    version = draw(st.sampled_from(["1.1", "1.1", "1.0"]))
    reason = draw(st.text(REASON_CHARS, max_size=12))
    line = f"HTTP/{version} {status} {reason}".encode("latin-1")
    fields = draw(st.lists(st.tuples(names, values), max_size=6))
    body = draw(st.binary(max_size=40))
    bodiless = method == "HEAD" or status in (204, 304)
    framings = ["length"]
    if version == "1.1":
        framings.append("chunked")
    if not keep_alive and not bodiless:
        framings.append("close")
    framing = draw(st.sampled_from(framings))
    if bodiless or (framing == "close" and not body):
        body = b"" if bodiless else body
    if framing == "length":
        fields.append(("Content-Length", str(len(body))))
    elif framing == "chunked":
        fields.append(("Transfer-Encoding", "chunked"))
    if version == "1.0" and keep_alive:
        fields.append(("Connection", "keep-alive"))
    elif not keep_alive and draw(st.booleans()):
        fields.append(("Connection", "close"))
    head = line + b"\r\n"
    head += b"".join(
        f"{n}:{draw(st.sampled_from(['', ' ', '  ', chr(9)]))}{v}\r\n".encode("latin-1")
        for n, v in fields
    )
    out.append(head + b"\r\n")
    if bodiless:
        return b"".join(out)
    if framing != "chunked":
        return b"".join(out) + body
    pos = 0
    while pos < len(body):
        size = draw(st.integers(1, len(body) - pos))
        hexsize = draw(st.sampled_from(["%x", "%X", "%03x"])) % size
        ext = draw(st.sampled_from(["", ";a", ";a=b", ';q="x y"']))
        out.append(f"{hexsize}{ext}\r\n".encode() + body[pos : pos + size] + b"\r\n")
        pos += size
    out.append(b"0\r\n")
    trailers = draw(st.lists(st.tuples(names, values), max_size=2))
    out.append(b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in trailers) + b"\r\n")
    return b"".join(out)


@st.composite
def mutations(draw: st.DrawFn) -> bytes:
    """A valid response with one to three small corruptions."""
    data = draw(responses())
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["insert", "delete", "crlf", "dup-line", "case", "size"]))
        at = draw(st.integers(0, len(data)))
        if kind == "insert":
            data = data[:at] + draw(st.sampled_from(INTERESTING)) + data[at:]
        elif kind == "delete" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + data[at + 1 :]
        elif kind == "crlf":
            spots = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\r\n"]
            if spots:
                i = draw(st.sampled_from(spots))
                data = (
                    data[:i]
                    + draw(st.sampled_from([b"\n", b"\r", b"\r\r\n", b"\n\r", b"\r\n "]))
                    + data[i + 2 :]
                )
        elif kind == "dup-line":
            lines = data.split(b"\r\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            data = b"\r\n".join(lines)
        elif kind == "case":
            end = min(len(data), at + draw(st.integers(1, 8)))
            data = data[:at] + data[at:end].swapcase() + data[end:]
        else:
            odd = draw(
                st.sampled_from(
                    [b"+1", b" 1", b"1 ", b"0x1", b"1_0", b"-1", b"\xd9\xa1", b"fffffffffffffffff"]
                )
            )
            data = data[:at] + odd + data[at:]
    return data


def _events_of(pieces: list[bytes], methods: Sequence[str]) -> ResponseVerdict:
    return parse_treadle_response(pieces, tuple(methods))


@_settings(600)
@given(split(responses()))
def test_generated_valid_responses_parse_alike_whatever_the_split(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    whole = parse_treadle_response(data)
    assert whole.accepted, whole
    assert whole == parse_treadle_response(pieces) or (
        whole.partial is not None and whole.messages == parse_treadle_response(pieces).messages
    )
    # Byte by byte as well.
    one_by_one = parse_treadle_response([data[i : i + 1] for i in range(len(data))])
    assert one_by_one.messages == whole.messages
    _judge(pieces)


@_settings(200)
@given(split(responses(method="HEAD")))
def test_generated_head_responses(pieces: list[bytes]) -> None:
    assert parse_treadle_response(pieces, ("HEAD",)).accepted
    _judge(pieces, ("HEAD",))


@_settings(2000)
@given(split(mutations()))
def test_generated_mutations(pieces: list[bytes]) -> None:
    _judge(pieces)


@_settings(300)
@given(
    st.lists(responses(keep_alive=True), min_size=1, max_size=3).flatmap(
        lambda firsts: responses().map(lambda last: [*firsts, last])
    )
)
def test_generated_keep_alive_pipelines(parts: list[bytes]) -> None:
    # Each response's bytes are its own: the parts come out as they went in.
    data = b"".join(parts)
    methods = ["GET"] * len(parts)
    verdict = parse_treadle_response(data, methods)
    assert verdict.accepted, verdict
    singles = [parse_treadle_response(part) for part in parts]
    expected = [m for single in singles for m in single.messages]
    assert verdict.messages == expected
    assert verdict.partial == singles[-1].partial
    _judge(data, methods)


# -- the C fast path for chunks, shared with the request parser ----------------------

CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'5\r\nhello\r\n1A;name=value;q="a \\" b"\r\nabcdefghijklmnopqrstuvwxyz\r\n'
    b"3;x\r\nxyz\r\n0\r\n\r\n"
)


def _both_ways(data: bytes | list[bytes]) -> None:
    with_c = parse_treadle_response(data)
    with pure_python_parser():
        without = parse_treadle_response(data)
    assert with_c.accepted == without.accepted, data
    assert (with_c.messages, with_c.partial, with_c.detail) == (
        without.messages,
        without.partial,
        without.detail,
    ), data
    assert type(with_c.error) is type(without.error), data


def test_every_single_byte_change_of_a_chunked_response_both_ways() -> None:
    # scan_chunks decodes a response's chunks as it does a request's: it may
    # only accept what the Python decoder accepts, with the same result.
    require_speedups()
    start = CHUNKED.index(b"\r\n\r\n") + 4
    for i in range(start, len(CHUNKED)):
        for value in range(256):
            _both_ways(CHUNKED[:i] + bytes((value,)) + CHUNKED[i + 1 :])


def test_every_split_of_a_chunked_response_both_ways() -> None:
    require_speedups()
    for i in range(1, len(CHUNKED)):
        _both_ways([CHUNKED[:i], CHUNKED[i:]])
    with_c = parse_treadle_response(CHUNKED)
    assert with_c.messages[0].body == b"hello" + b"abcdefghijklmnopqrstuvwxyz" + b"xyz"
