"""Differential tests: the same bytes through Treadle's parser, llhttp and h11.

For every input, Treadle's verdict (accept or refuse) and parsed messages
(method, target, version, headers, body, trailers) are compared with each
peer's. Where they disagree the disagreement must be a named, deliberate rule:

- `TREADLE_STRICTER`: Treadle refuses what a peer accepts. The rule is found from
  Treadle's own error detail, so the test names the rule it relies on (the
  package docstring of `treadle.http` explains each).
- `PEER_STRICTER`: a peer refuses what Treadle accepts, found from the peer's
  error message: each is a place where the RFC allows what that peer does not.

Anything else fails the test, printing the input. Inputs are a hand-written
corpus of tricky requests and hypothesis-generated ones: valid requests, then
mutations of them (inserted whitespace and odd bytes, line endings changed,
duplicated lines, case changes, odd chunk sizes), fed with random split points.
Hypothesis runs derandomized without a database, so CI is reproducible.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.http.peers import Message, Verdict, parse_h11, parse_llhttp, parse_treadle

# Treadle refuses, a peer accepts: a substring of Treadle's error detail -> the rule.
TREADLE_STRICTER: dict[str, str] = {
    "bare LF": "1. bare LF line endings are refused",
    "bare CR": "2. a bare CR is refused",
    "not followed by CRLF": "3. only CRLF ends chunk data",
    "junk after chunk size": "4. chunk extensions follow the grammar, no whitespace",
    "chunk size is not hexadecimal": "4. chunk size lines follow the grammar",
    "overflows": "5. at most 16 hex digits in a chunk size",
    "not implemented": "6. only Transfer-Encoding: chunked (known codings: 501)",
    "unknown transfer coding": "6. only Transfer-Encoding: chunked (unknown codings)",
    "more than once": "6. chunked applied once",
    "final coding is not chunked": "6. the final coding must be chunked",
    "HTTP/1.0 request": "7. no Transfer-Encoding in HTTP/1.0",
    "invalid Content-Length": "8. Content-Length is plain ASCII digits",
    "differ": "8. differing Content-Length values",
    "control character in header value": "9. no CTL but HTAB in values",
    "NUL in header value": "9. no CTL but HTAB in values",
    "more than one Host": "10. exactly one Host",
    "missing Host": "10. Host required in HTTP/1.1",
    "invalid Host": "10. a Host value must be a host[:port]",
    "asterisk-form": "11. asterisk-form only for OPTIONS",
    "authority-form": "11. authority-form only and always for CONNECT",
    "invalid request target": "11. the target is one of the four forms",
    "invalid character in request target": "11. the target is printable ASCII",
    "not supported": "12. only HTTP/1.0 and 1.1 (505)",
    "not allowed in trailers": "13. no framing fields in trailers",
    "malformed request line": "16. one SP between the parts of the request line",
    "malformed HTTP version": "12. the version is HTTP/DIGIT.DIGIT",
    "obs-fold": "17. obs-fold is refused",
    "both Content-Length and Transfer-Encoding": "18. Content-Length with Transfer-Encoding",
    "closed in the middle": "(not a rule: the input ends inside a message)",
}

# A peer refuses, Treadle accepts: a substring of the peer's error -> the reason.
PEER_STRICTER: dict[str, dict[str, str]] = {
    "llhttp": {
        "Invalid method encountered": "llhttp knows a fixed list of methods; any token is one",
        "Expected space after method": "llhttp knows a fixed list of methods; any token is one",
        "Duplicate Content-Length": "llhttp refuses identical repeated Content-Length fields",
        "Data after `Connection: close`": "llhttp refuses bytes after a closing request",
    },
    "h11": {
        "no request line received": "h11 refuses the empty lines RFC 9112 2.2 says to skip",
    },
}


def _comparable(messages: list[Message]) -> list[Message]:
    # h11 merges repeated Content-Length fields and lower-cases
    # Transfer-Encoding; framing is compared through the body instead.
    out = []
    for m in messages:
        headers = tuple(
            (n, v) for n, v in m.headers if n not in (b"content-length", b"transfer-encoding")
        )
        out.append(replace(m, headers=headers))
    return out


def _judge(data: bytes | list[bytes], seen: Counter[str] | None = None) -> None:
    """Fail unless each peer agrees with Treadle or a named rule explains why not."""
    treadle = parse_treadle(data)
    # Treadle's verdict must not depend on how the bytes were split.
    if isinstance(data, list):
        whole = parse_treadle(b"".join(data))
        assert (whole.accepted, whole.messages, whole.complete) == (
            treadle.accepted,
            treadle.messages,
            treadle.complete,
        ), data
    for name, peer in (("llhttp", parse_llhttp(data)), ("h11", parse_h11(data))):
        joined = data if isinstance(data, bytes) else b"".join(data)
        rule = _explain(name, treadle, peer, joined)
        assert rule is not None, (
            f"unexplained disagreement with {name} on {data!r}:\ntreadle: {treadle}\n{name}: {peer}"
        )
        if seen is not None:
            seen[f"{name}: {rule}"] += 1


def _explain(name: str, treadle: Verdict, peer: Verdict, data: bytes) -> str | None:
    """The rule explaining how `peer` differs from Treadle ('agree' if it does not)."""
    if treadle.accepted and peer.accepted:
        t_msgs, p_msgs = _comparable(treadle.messages), _comparable(peer.messages)
        if name == "h11" and len(p_msgs) < len(t_msgs) and p_msgs and p_msgs[-1].version == "1.0":
            # h11 closes after every HTTP/1.0 request, keep-alive or not.
            t_msgs = t_msgs[: len(p_msgs)]
        if t_msgs == p_msgs and treadle.complete == peer.complete:
            return "agree"
        return None
    if treadle.accepted and not treadle.complete and not peer.accepted:
        # Treadle waits for more bytes where the peer refused already: it will
        # refuse too, at the end of input or at the header timeout.
        n = len(peer.messages)
        same = _comparable(treadle.messages)[:n] == _comparable(peer.messages)
        return "(Treadle refuses later: the input ends inside a message)" if same else None
    if not treadle.accepted and peer.accepted and not peer.complete:
        # Treadle judged a line as soon as it had it; the peer waits for more.
        n = len(treadle.messages)
        same = _comparable(treadle.messages) == _comparable(peer.messages)[:n]
        return "(Treadle refuses early: the peer is still waiting for bytes)" if same else None
    if not treadle.accepted and not peer.accepted:
        # Both refuse. The messages before the refused one must match.
        n = min(len(treadle.messages), len(peer.messages))
        same = _comparable(treadle.messages)[:n] == _comparable(peer.messages)[:n]
        return "agree" if same else None
    if not treadle.accepted:
        if _comparable(treadle.messages) != _comparable(peer.messages)[: len(treadle.messages)]:
            return None
        for key, rule in TREADLE_STRICTER.items():
            if key in treadle.detail:
                return rule
        return None
    for key, reason in PEER_STRICTER[name].items():
        if key in peer.detail:
            return reason
    if name == "h11" and (data.startswith(b"\r\n") or b"\r\n\r\n\r\n" in data):
        # h11 says 'illegal request line' when the CRLF arrives split.
        return PEER_STRICTER["h11"]["no request line received"]
    return None


# -- a hand-written corpus ---------------------------------------------------------

H = b"Host: a\r\n"
CH = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
CORPUS: dict[str, bytes] = {
    "plain": b"GET / HTTP/1.1\r\n" + H + b"\r\n",
    "bare-lf": b"GET / HTTP/1.1\n" + b"Host: a\n\n",
    "bare-cr": b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
    "leading-crlf": b"\r\nGET / HTTP/1.1\r\n" + H + b"\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\n" + H + b"X: b\r\n c\r\n\r\n",
    "cl-and-te": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "cl-repeated": b"POST / HTTP/1.1\r\n"
    + H
    + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "cl-list": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\nabc",
    "cl-differ": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "cl-plus": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\nabc",
    "cl-underscore": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1_0\r\n\r\n0123456789",
    "cl-unicode-digit": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: \xd9\xa3\r\n\r\nabc",
    "te-gzip-chunked": b"POST / HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "te-http10": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-identity": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n",
    "te-chunked-twice": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n",
    "chunk-ext": CH + b'3;a=b;c="d\\"e"\r\nabc\r\n0\r\n\r\n',
    "chunk-ext-bws": CH + b"3 ; a = b\r\nabc\r\n0\r\n\r\n",
    "chunk-ext-lf": CH + b"3;a\nb\r\nabc\r\n0\r\n\r\n",
    "chunk-bad-end": CH + b"3\r\nabcXX0\r\n\r\n",
    "chunk-lf-end": CH + b"3\r\nabc\n0\r\n\r\n",
    "chunk-20-digits": CH + b"00000000000000000003\r\nabc\r\n0\r\n\r\n",
    "chunk-size-space": CH + b"3 \r\nabc\r\n0\r\n\r\n",
    "chunk-size-plus": CH + b"+3\r\nabc\r\n0\r\n\r\n",
    "chunk-size-0x": CH + b"0x3\r\nabc\r\n0\r\n\r\n",
    "trailers": CH + b"3\r\nabc\r\n0\r\nT: 1\r\nU: 2\r\n\r\n",
    "trailer-cl": CH + b"3\r\nabc\r\n0\r\nContent-Length: 1\r\n\r\n",
    "trailer-bare-lf": CH + b"3\r\nabc\r\n0\r\nT: 1\n\r\n",
    "no-host": b"GET / HTTP/1.1\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "host-userinfo": b"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n",
    "http12": b"GET / HTTP/1.2\r\n" + H + b"\r\n",
    "http20": b"GET / HTTP/2.0\r\n" + H + b"\r\n",
    "nul-value": b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n",
    "ctl-value": b"GET / HTTP/1.1\r\n" + H + b"X: a\x01b\r\n\r\n",
    "obs-text-value": b"GET / HTTP/1.1\r\n" + H + b"X: caf\xe9\r\n\r\n",
    "non-ascii-target": b"GET /\xe9 HTTP/1.1\r\n" + H + b"\r\n",
    "asterisk-get": b"GET * HTTP/1.1\r\n" + H + b"\r\n",
    "asterisk-options": b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n",
    "connect": b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
    "connect-path": b"CONNECT / HTTP/1.1\r\n" + H + b"\r\n",
    "absolute-form": b"GET http://a.example/x?y HTTP/1.1\r\nHost: a.example\r\n\r\n",
    "lower-method": b"get / HTTP/1.1\r\n" + H + b"\r\n",
    "double-space": b"GET  / HTTP/1.1\r\n" + H + b"\r\n",
    "pipelined": (b"GET / HTTP/1.1\r\n" + H + b"\r\n") * 3,
    "pipelined-bodies": b"POST / HTTP/1.1\r\n"
    + H
    + b"Content-Length: 3\r\n\r\nabc"
    + CH
    + b"3\r\nabc\r\n0\r\n\r\nGET /x HTTP/1.1\r\n"
    + H
    + b"\r\n",
    "upgrade": b"GET / HTTP/1.1\r\n"
    + H
    + b"Connection: upgrade\r\nUpgrade: websocket\r\n\r\n\x00\x01",
    "http10-keep-alive": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
    "close-then-junk": b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\nJUNK",
    "empty-host": b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
    "whitespace-value": b"GET / HTTP/1.1\r\n" + H + b"X: \t a b \t\r\n\r\n",
    "expect": b"POST / HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 1\r\n\r\na",
    "smuggle-cl-te-chunked-body": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 6\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nX",
    "smuggle-te-space": b"POST / HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "smuggle-te-tab-value": b"POST / HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
    "smuggle-te-xchunked": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n",
    "smuggle-te-vtab": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: \x0bchunked\r\n\r\n",
    "fragment": b"GET /a#b HTTP/1.1\r\n" + H + b"\r\n",
}


@pytest.mark.usefixtures("parser_impl")
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus(name: str) -> None:
    _judge(CORPUS[name])


@pytest.mark.usefixtures("parser_impl")
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_split_everywhere(name: str) -> None:
    data = CORPUS[name]
    for i in range(1, len(data)):
        _judge([data[:i], data[i:]])


# -- generated requests -------------------------------------------------------------

TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PATH_CHARS = "abcXYZ0123456789-._~/%=&+:@!$'()*,;"
VALUE_CHARS = [chr(c) for c in range(0x21, 0x7F)] + [" ", "\t", "\xe9", "\xff"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
INTERESTING = [
    b" ",
    b"\t",
    b"\r",
    b"\n",
    b"\r\n",
    b"\x00",
    b"\x0b",
    b",",
    b";",
    b":",
    b'"',
    b"\xe9",
]

names = st.text(TCHARS, min_size=1, max_size=12).filter(
    lambda n: n.lower() not in ("host", "content-length", "transfer-encoding", "connection")
)
values = st.text(VALUE_CHARS, max_size=20).map(lambda v: v.strip(" \t"))


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """A valid HTTP/1.1 request with a random method, target, fields and body."""
    method = draw(st.sampled_from(METHODS))
    target = "/" + draw(st.text(PATH_CHARS, max_size=20))
    if draw(st.booleans()):
        target += "?" + draw(st.text(PATH_CHARS + "?", max_size=10))
    fields = draw(st.lists(st.tuples(names, values), max_size=6))
    host_at = draw(st.integers(0, len(fields)))
    fields.insert(host_at, ("Host", draw(st.sampled_from(["a", "example.com:80", "[::1]"]))))
    if draw(st.booleans()):
        fields.append(("Connection", draw(st.sampled_from(["keep-alive", "close", "x, close"]))))
    body = draw(st.binary(max_size=40))
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    if framing == "none":
        body = b""
    head = f"{method} {target} HTTP/1.1\r\n".encode()
    if framing == "length":
        fields.append(("Content-Length", str(len(body))))
    elif framing == "chunked":
        fields.append(("Transfer-Encoding", "chunked"))
    head += b"".join(
        f"{n}:{draw(st.sampled_from(['', ' ', '  ', chr(9)]))}{v}\r\n".encode("latin-1")
        for n, v in fields
    )
    head += b"\r\n"
    if framing != "chunked":
        return head + body
    out = [head]
    pos = 0
    while pos < len(body):
        size = draw(st.integers(1, len(body) - pos))
        hexsize = draw(st.sampled_from(["%x", "%X", "%03x"])) % size
        ext = draw(st.sampled_from(["", ";a", ";a=b", ';q="x y"', ";a=1;b"]))
        out.append(f"{hexsize}{ext}\r\n".encode() + body[pos : pos + size] + b"\r\n")
        pos += size
    out.append(b"0\r\n")
    trailers = draw(st.lists(st.tuples(names, values), max_size=2))
    out.append(b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in trailers) + b"\r\n")
    return b"".join(out)


@st.composite
def mutations(draw: st.DrawFn) -> bytes:
    """A valid request with one to three small corruptions."""
    data = draw(requests())
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
                    + draw(st.sampled_from([b"\n", b"\r", b"\r\r\n", b"\n\r"]))
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
        else:  # an odd chunk size or length in front of the next CRLF
            odd = draw(
                st.sampled_from(
                    [b"+1", b" 1", b"1 ", b"0x1", b"1_0", b"-1", b"\xd9\xa1", b"fffffffffffffffff"]
                )
            )
            data = data[:at] + odd + data[at:]
    return data


@st.composite
def split(draw: st.DrawFn, inner: st.SearchStrategy[bytes]) -> list[bytes]:
    data = draw(inner)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
    pieces, last = [], 0
    for cut in [*cuts, len(data)]:
        pieces.append(data[last:cut])
        last = cut
    return pieces


def _settings(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@_settings(600)
@given(split(requests()))
def test_generated_valid_requests(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    treadle = parse_treadle(data)
    assert treadle.accepted and treadle.complete and len(treadle.messages) == 1, treadle
    _judge(pieces)


@_settings(2000)
@given(split(mutations()))
def test_generated_mutations(pieces: list[bytes]) -> None:
    _judge(pieces)


@_settings(300)
@given(st.lists(requests(), min_size=2, max_size=4).map(b"".join))
def test_generated_pipelines(data: bytes) -> None:
    _judge(data)
