"""A sans-IO HTTP/1.1 request parser: bytes in, events out.

The parser knows no sockets, no loop and no clock (a test keeps it that way): the
server protocol calls `feed(data)` with whatever a read returned and then pulls
events with `next_event()` until it returns None ("need more bytes"):

- a `Request`: the head of a request (method, target, version, headers and what
  they imply: keep-alive, `Expect: 100-continue`, upgrade, body framing);
- `bytes`: a piece of the body, as soon as it is available;
- an `EndOfMessage`: the body is complete (carries a chunked body's trailers).

Pulling one event at a time (h11's design) is what lets the server apply
back-pressure: it can stop pulling when the application is behind, and the bytes
stay here, bounded by one read, instead of turning into a queue of parsed
requests.

Why strict: request smuggling lives in the gaps between two parsers that frame
the same bytes differently. So every rule below rejects what RFC 9110/9112 does
not allow, including what the RFC lets a recipient tolerate, whenever another
parser on the path could read it otherwise. Each rule is a named check in one
obvious place: `_parse_request_line`, `_check_fields` and `_framing` for the head,
`_CHUNK_LINE` and `_read_chunk_end` for chunked bodies. An error is an
`HTTPError` carrying the status to answer (400, 413, 414, 431, 501, 505); after
one the parser is dead and the connection must close.

The response parser (`response_parser`) shares this module's grammar rather
than having its own: the header-block validator (`_FIELD_BLOCK`,
`_check_fields`), the framing rules of both kinds of message
(`_body_framing`: Content-Length against Transfer-Encoding, their values;
`_keep_alive`) and the body decoder, Content-Length and chunked with its
trailers, in `_MessageParser`, the base class of both parsers, with the C
fast path for chunks. Only the start line and what follows from it (a
request's Host, Expect and Upgrade; a response's status) are each parser's own.

Decisions worth knowing (the package docstring lists every rule where Treadle is
stricter than llhttp, h11 or aiohttp):

- Lines end in CRLF. A bare LF or a bare CR anywhere in the head, a chunk line or
  the trailers is rejected (400), not tolerated as RFC 9112 section 2.2 would
  allow: tolerating it is exactly what CVE-2023-37276 and CVE-2023-30589 were.
- Empty lines (CRLF) before a request line are skipped, as RFC 9112 section 2.2
  asks, counted against the request-line limit.
- Numbers are parsed only after a regular expression has proved them to be plain
  ASCII digits (or hex digits), because `int()` accepts `+5`, ` 5 `, `1_0` and
  non-ASCII digits.
- Limits are checked on every feed, not only once a line is complete, so a limit
  cannot be walked around by splitting a line across TCP segments.

Speed (bench/http_parse.py; numbers in docs/benchmarks.md): the common case, a
whole head in the buffer, is one `find` for the blank line, a request line split
without a regex when its method is a common one, one `fullmatch` over the whole
field block to validate it, and one `findall` over the lowered block for the
few fields that frame the message. The block is split into fields only when a
handler first reads a header (`_BlockHeaders`). Two memos skip the rest: a
header block identical to the connection's previous one (keep-alive clients
repeat theirs) reuses its headers and framing, and framing already worked out
for the same framing fields is reused across connections. The incremental
checks run only while a head is incomplete.

When it is built, an optional C function (`_speedups.scan_head`) does the
grammar part of the common head in one pass: an origin-form request line and a
valid header block within the limits. It may only accept what the code here
accepts, with the same result, or defer to it; it never refuses, so every
error and every rule that spans fields stays here, in one place (two parsers
that disagree are how CVE-2023-47641 happened). The tests run the parser with
and without it and compare the two on every single-byte change of sample heads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, Generic, Literal, Protocol, TypeVar

from .errors import HTTPError
from .headers import Headers, split_list

_ScanHead = Callable[
    [bytes, int, "bytes | None", tuple[int, int, int, int]],
    "tuple[str, str, int, bytes, bytes | None, int] | Literal[False] | None",
]
_ScanChunks = Callable[[bytes, int, int, int], tuple[bytes, int, bool]]
_scan_head: _ScanHead | None
_scan_chunks: _ScanChunks | None
try:
    # The optional C fast path for the common head and chunks (see
    # _speedups.c); the tests run the parser with and without it.
    from ._speedups import scan_chunks as _scan_chunks, scan_head as _scan_head
except ImportError:  # built without a C compiler: the parser's own code does all
    _scan_head = _scan_chunks = None

__all__ = [
    "END_OF_MESSAGE",
    "EndOfMessage",
    "FrozenLimits",
    "Limits",
    "ParserState",
    "Request",
    "RequestParser",
]


class FrozenLimits:
    """A set of size limits, checked and then read-only: parsers copy them
    (for the C fast path) and remember framing by them, so a change later
    would reach some checks and not others. `Limits` (requests) and
    `ResponseLimits` (responses) are its two kinds."""

    __slots__ = ()

    def _freeze(self, optional: tuple[str, ...] = (), **values: int | None) -> None:
        """Check and set `values`: each a positive int, or None for the
        names in `optional` (where None means no limit)."""
        for name, value in values.items():
            if value is None and name in optional:
                pass
            elif not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, not {value!r}")
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        kind = type(self).__name__
        raise AttributeError(f"{kind} are read-only; make new {kind} to set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} are read-only; {name} cannot be deleted")

    def __repr__(self) -> str:
        names: tuple[str, ...] = type(self).__slots__
        fields = ", ".join(f"{name}={getattr(self, name)}" for name in names)
        return f"{type(self).__name__}({fields})"


class Limits(FrozenLimits):
    """Size limits of the parser, each answered with its own status.

    - `max_request_line` (414): bytes of the request line without its CRLF,
      including empty lines skipped before it.
    - `max_field_size` (431): bytes of one header (or trailer) line without CRLF.
    - `max_header_block` (431): bytes of all header lines together, each with its
      CRLF, not counting the request line or the final empty line. Also applies
      to the trailer section.
    - `max_headers` (431): number of header lines (and of trailer lines).
    - `max_body_size` (413): bytes of a request body (decoded from chunked);
      1 MiB by default, like aiohttp's `client_max_size`.
    - `max_chunk_line` (400): bytes of a chunk-size line with its extensions.

    Read-only: make new Limits rather than change these.
    """

    __slots__ = (
        "max_body_size",
        "max_chunk_line",
        "max_field_size",
        "max_header_block",
        "max_headers",
        "max_request_line",
    )
    max_body_size: int
    max_chunk_line: int
    max_field_size: int
    max_header_block: int
    max_headers: int
    max_request_line: int

    def __init__(
        self,
        *,
        max_request_line: int = 8190,
        max_field_size: int = 8190,
        max_header_block: int = 32768,
        max_headers: int = 100,
        max_body_size: int = 1024 * 1024,
        max_chunk_line: int = 4096,
    ) -> None:
        """Limits with aiohttp-like defaults; every argument is keyword-only."""
        self._freeze(
            max_request_line=max_request_line,
            max_field_size=max_field_size,
            max_header_block=max_header_block,
            max_headers=max_headers,
            max_body_size=max_body_size,
            max_chunk_line=max_chunk_line,
        )


DEFAULT_LIMITS: Final = Limits()


class _FieldLimits(Protocol):
    """The limits the shared grammar reads (field blocks, trailers, chunk
    lines): `Limits` and the response parser's `ResponseLimits` both have them."""

    @property
    def max_field_size(self) -> int: ...
    @property
    def max_header_block(self) -> int: ...
    @property
    def max_headers(self) -> int: ...
    @property
    def max_chunk_line(self) -> int: ...


_V10: Final = (1, 0)
_V11: Final = (1, 1)


class Request:
    """The head of one request, as the parser saw it.

    - `method`: the method token, e.g. 'GET' (case is kept: methods are
      case-sensitive).
    - `target`: the request-target exactly as sent (ASCII; not percent-decoded).
      `path` and `query_string` split it; for absolute-form they are the URI's
      path and query, for asterisk-form `path` is '*', for authority-form
      (CONNECT) `path` is ''.
    - `version`: `(1, 0)` or `(1, 1)`.
    - `headers`: a `Headers` multi-dict.
    - `keep_alive`: whether the client lets the connection carry another request
      after this one (HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
      `Connection: keep-alive`).
    - `expect_continue`: HTTP/1.1 `Expect: 100-continue`; the client waits for
      `100 Continue` before sending the body.
    - `upgrade`: `Connection: upgrade` with an `Upgrade` field (HTTP/1.1 only);
      the parser pauses after this message so the layer above can switch
      protocols or decline (see `RequestParser.resume`). CONNECT pauses too.
    - `content_length`: the body length when framed by `Content-Length` (0 when
      there is no body), None when `chunked`.
    - `chunked`: the body is `Transfer-Encoding: chunked`.
    """

    __slots__ = (
        "chunked",
        "content_length",
        "expect_continue",
        "headers",
        "keep_alive",
        "method",
        "target",
        "upgrade",
        "version",
    )

    def __init__(
        self,
        method: str,
        target: str,
        version: tuple[int, int],
        headers: Headers,
        keep_alive: bool = True,
        expect_continue: bool = False,
        upgrade: bool = False,
        content_length: int | None = 0,
        chunked: bool = False,
    ) -> None:
        """Usually made by the parser; public so tests and tools can build one."""
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.upgrade = upgrade
        self.content_length = content_length
        self.chunked = chunked

    @property
    def has_body(self) -> bool:
        """Whether body bytes follow the head."""
        return self.chunked or bool(self.content_length)

    def _path_and_query(self) -> tuple[str, str]:
        target = self.target
        if target.startswith("/"):
            path, _, query = target.partition("?")
            return path, query
        if target == "*":
            return "*", ""
        scheme_end = target.find("://")
        if scheme_end < 0:  # authority-form
            return "", ""
        rest = target[scheme_end + 3 :]
        cut = len(rest)
        for sep in "/?":
            i = rest.find(sep)
            if 0 <= i < cut:
                cut = i
        path, _, query = rest[cut:].partition("?")
        return path or "/", query

    @property
    def path(self) -> str:
        """The target's path, not percent-decoded ('/a%20b' stays as sent)."""
        target = self.target
        if target.startswith("/") and "?" not in target:  # the common origin-form
            return target
        return self._path_and_query()[0]

    @property
    def query_string(self) -> str:
        """The target's query, without '?', not decoded ('' when there is none)."""
        return self._path_and_query()[1]

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target} HTTP/{self.version[0]}.{self.version[1]}>"


class EndOfMessage:
    """The request body is complete. `trailers` holds a chunked body's trailer
    fields (an empty `Headers` otherwise)."""

    __slots__ = ("trailers",)

    def __init__(self, trailers: Headers | None = None) -> None:
        """`trailers` defaults to an empty `Headers`."""
        self.trailers = trailers if trailers is not None else Headers()

    def __repr__(self) -> str:
        return f"EndOfMessage(trailers={self.trailers!r})"


#: The end of a message without trailers; shared, since it carries nothing.
END_OF_MESSAGE: Final = EndOfMessage()


class ParserState:
    """What a parser is waiting for (the values of `RequestParser.state` and
    `ResponseParser.state`; the last two are the response parser's only)."""

    HEAD: Final = 0  #: a start line and headers (or nothing: idle)
    BODY: Final = 1  #: `Content-Length` body bytes
    CHUNK_SIZE: Final = 2  #: a chunk-size line
    CHUNK_DATA: Final = 3  #: chunk data bytes
    CHUNK_END: Final = 4  #: the CRLF after chunk data
    TRAILERS: Final = 5  #: the trailer section of a chunked body
    END: Final = 6  #: nothing: the next event is EndOfMessage
    PAUSED: Final = 7  #: after an upgrade or CONNECT request: see `resume()`
    CLOSED: Final = 8  #: after a request that does not keep the connection alive
    ERROR: Final = 9  #: after an HTTPError; the connection must close
    UNTIL_CLOSE: Final = 10  #: a response body that ends when the connection closes
    SWITCHED: Final = 11  #: after a 101 or a CONNECT's 2xx: HTTP is over on the connection


_HEAD = ParserState.HEAD
_BODY = ParserState.BODY
_CHUNK_SIZE = ParserState.CHUNK_SIZE
_CHUNK_DATA = ParserState.CHUNK_DATA
_CHUNK_END = ParserState.CHUNK_END
_TRAILERS = ParserState.TRAILERS
_END = ParserState.END
_PAUSED = ParserState.PAUSED
_CLOSED = ParserState.CLOSED
_ERROR = ParserState.ERROR

# -- the grammar (RFC 9110 section 5.6.2, RFC 9112 sections 3, 5, 7) -----------

_TCHAR = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]"
# field-vchar / SP / HTAB: a value may hold obs-text (0x80-0xFF) but no CTL
# (NUL, CR, LF, DEL, ...). HTAB is the only control character allowed.
_VALUE_CHARS = rb"[\t\x20-\x7e\x80-\xff]"
# request-line = method SP request-target SP HTTP-version, one SP each. The target
# is printable ASCII: RFC 3986 has no place for raw non-ASCII or whitespace.
_REQUEST_LINE = re.compile(rb"(" + _TCHAR + rb"+) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])")
# A whole field block, every line `name:value CRLF`: a space before the colon or
# at the start of a line (obs-fold) does not match, nor does any CTL in a value.
_FIELD_BLOCK = re.compile(rb"(?:" + _TCHAR + rb"+:" + _VALUE_CHARS + rb"*\r\n)*")
_TOKEN = re.compile(_TCHAR + rb"+")
_ORIGIN_FORM = re.compile(rb"/[\x21-\x7e]*")
_ABSOLUTE_FORM = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://[\x21-\x7e]*")
# authority-form for CONNECT: host:port, where host is a reg-name or an IP
# literal; no userinfo, no path.
_AUTHORITY_FORM = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[-A-Za-z0-9._~%!$&'()*+,;=]+):[0-9]+")
# Host = uri-host [ ":" port ]: no '@', '/', '?', '#' or whitespace.
_HOST_VALUE = re.compile(rb"(?:\[[0-9A-Fa-f:.vV]+\]|[-A-Za-z0-9._~%!$&'()*+,;=]*)(?::[0-9]*)?")
_DIGITS = re.compile(rb"[0-9]+")
# chunk = chunk-size [ chunk-ext ] CRLF; chunk-ext = *( ";" ext-name [ "=" ext-val ] );
# ext-val = token / quoted-string (RFC 9112 7.1.1). RFC 9112 allows BWS around
# ";" and "=", which no client sends and llhttp and h11 both refuse: so do we,
# rather than be the one parser on a path that reads such a line.
# At most 16 hex digits: anything longer is an overflow, rejected as one.
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})((?:;" + _TCHAR + rb"+(?:=(?:" + _TCHAR + rb"+|" + _QUOTED + rb"))?)*)"
)
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_HEX_BYTES: Final = b"0123456789ABCDEFabcdef"

# Fields the parser interprets; the rest pass through untouched.
_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_HOST = b"host"
_CONNECTION = b"connection"
_EXPECT = b"expect"
_UPGRADE = b"upgrade"
# The framing lines of a valid header block, lowered, with "\n" put first so
# every name follows a LF: one findall finds them all without splitting the
# block.
_FRAMING_LINE = re.compile(
    rb"\n((?:host|content-length|transfer-encoding|connection|expect|upgrade):[^\r]*)"
)
# A trailer must not carry what frames or routes the message (RFC 9110 6.5.1).
_FORBIDDEN_TRAILERS = frozenset((_CONTENT_LENGTH, _TRANSFER_ENCODING, _HOST, _CONNECTION))
# Transfer codings we know but do not decode: 501, not 400 (RFC 9112 6.1).
_KNOWN_CODINGS = frozenset((b"gzip", b"x-gzip", b"deflate", b"compress", b"x-compress"))

_VERSIONS: Final = {b"HTTP/1.1": _V11, b"HTTP/1.0": _V10}
_TARGET_BYTES: Final = bytes(range(0x21, 0x7F))
_COMMON_METHODS = {
    m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
}

# Host values already proved valid: a server sees the same few over and over.
# Bounded, so a stream of distinct hosts cannot grow it.
_valid_hosts: set[bytes] = set()
_VALID_HOSTS_MAX: Final = 256

# A valid head: method, target, minor version, header block, its framing
# fields (or None: see RequestParser._read_head), the end of the head.
_Scanned = tuple[str, str, int, bytes, "bytes | None", int]

# keep_alive, expect_continue, upgrade, content_length, chunked (see _framing).
_Framing = tuple[bool, bool, bool, "int | None", bool]

# Framing already worked out, by version, limits and framing fields: blocks
# differ (a cookie, a user agent) far more often than their framing fields do.
# Bounded like _valid_hosts; only framings that passed every rule get in.
_framings: dict[tuple[object, ...], _Framing] = {}
_FRAMINGS_MAX: Final = 1024

_new_headers = object.__new__
_new_request = object.__new__


def _headers_from(fields: list[tuple[bytes, bytes, bytes]]) -> Headers:
    # The parser already lowered the names; skip Headers.__init__ doing it again.
    headers: Headers = _new_headers(Headers)
    headers._fields = fields
    return headers


def _split_fields(block: bytes) -> list[tuple[bytes, bytes, bytes]]:
    """`(lower_name, name, value)` triples of a field block already validated
    by `_check_fields` (so every line is `name:value`)."""
    lines = block.split(b"\r\n")
    lines.pop()  # the empty string after the last CRLF
    fields = []
    for line in lines:
        name, _, value = line.partition(b":")
        fields.append((name.lower(), name, value.strip(b" \t")))
    return fields


class _BlockHeaders(Headers):
    """`Headers` over a validated header block, split into fields on first use.

    Splitting a block into fields is most of the cost of parsing a head, and many
    handlers read no header at all: the parser validates the whole block and
    reads the framing fields with one regex, and leaves the split to the first
    look-up. `_fields` is an unset slot until then, so reading it falls through
    to `__getattr__` exactly once; afterwards this is a plain `Headers`.
    """

    __slots__ = ("_block",)
    _block: bytes

    def __getattr__(self, name: str) -> list[tuple[bytes, bytes, bytes]]:
        if name != "_fields":
            raise AttributeError(name)
        fields = self._fields = _split_fields(self._block)
        return fields


# A digit string longer than this is more than any sane limit; we refuse it
# before int() sees it (int() of thousands of digits is itself a CPU sink).
_MAX_LENGTH_DIGITS = 18


def _excerpt(data: bytes, limit: int = 40) -> str:
    """A short, escaped piece of peer bytes, safe to put in a log line."""
    text = repr(data[:limit])
    return text + ("..." if len(data) > limit else "")


def _bad_line_endings(data: bytes) -> HTTPError | None:
    """An error if `data` holds a bare CR or bare LF (one not part of CRLF)."""
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf:
        return HTTPError(400, "bare LF line ending (CRLF required)")
    if data.count(b"\r") != crlf:
        return HTTPError(400, "bare CR in message head")
    return None


def _parse_request_line(line: bytes, limits: Limits) -> tuple[bytes, bytes, tuple[int, int]]:
    """Method, target and version of a request line, or the HTTPError it earns."""
    if len(line) > limits.max_request_line:
        raise HTTPError(414, "request line too long")
    # The common case without a regex: a known method, one SP, a printable ASCII
    # target, one SP, HTTP/1.1. Anything else takes the grammar's long way.
    method, _, rest = line.partition(b" ")
    target, _, version_bytes = rest.partition(b" ")
    version = _VERSIONS.get(version_bytes)
    if (
        version is None
        or method not in _COMMON_METHODS
        or not target
        or target.translate(None, _TARGET_BYTES)  # leaves what is not printable ASCII
    ):
        m = _REQUEST_LINE.fullmatch(line)
        if m is None:
            raise _diagnose_request_line(line)
        method, target, major, minor = m.groups()
        if major != b"1" or minor not in b"01":
            raise HTTPError(505, f"HTTP version {major.decode()}.{minor.decode()} not supported")
        version = _V11 if minor == b"1" else _V10
    # The four forms of request-target (RFC 9112 3.2), each only where it belongs.
    if target[0] == 0x2F:  # '/'
        if method == b"CONNECT":
            raise HTTPError(400, "CONNECT needs an authority-form target (host:port)")
    elif method == b"CONNECT":
        if _AUTHORITY_FORM.fullmatch(target) is None:
            raise HTTPError(400, "CONNECT needs an authority-form target (host:port)")
    elif target == b"*":
        if method != b"OPTIONS":
            raise HTTPError(400, "asterisk-form target is only for OPTIONS")
    elif _ABSOLUTE_FORM.fullmatch(target) is None:
        raise HTTPError(400, f"invalid request target {_excerpt(target)}")
    return method, target, version


def _diagnose_request_line(line: bytes) -> HTTPError:
    """Say precisely why a request line did not match the grammar."""
    if b"\r" in line or b"\n" in line:
        return _bad_line_endings(line + b"\r\n") or HTTPError(400, "bare CR in request line")
    parts = line.split(b" ")
    if len(parts) != 3 or not all(parts):
        return HTTPError(400, f"malformed request line {_excerpt(line)}")
    method, target, version = parts
    if _TOKEN.fullmatch(method) is None:
        return HTTPError(400, f"invalid character in method {_excerpt(method)}")
    if re.fullmatch(rb"HTTP/[0-9]\.[0-9]", version) is None:
        return HTTPError(400, f"malformed HTTP version {_excerpt(version)}")
    return HTTPError(400, f"invalid character in request target {_excerpt(target)}")


def _check_fields(block: bytes, limits: _FieldLimits, what: str) -> None:
    """Validate a field block (header or trailer lines, each ending in CRLF)
    against the grammar and the limits; raise the HTTPError it earns. The
    grammar is `_FIELD_BLOCK` and `_diagnose_fields`, as in
    `_check_field_grammar` (inlined here: request heads and trailers of both
    parsers come through this)."""
    if len(block) > limits.max_header_block:
        raise HTTPError(431, f"{what} section too large")
    if _FIELD_BLOCK.fullmatch(block) is None:
        raise _diagnose_fields(block)
    # Valid, so every LF ends a line: counting the one byte is counting lines.
    if block.count(b"\n") > limits.max_headers:
        raise HTTPError(431, f"too many {what} fields")
    if len(block) > limits.max_field_size:
        # Only a block longer than the line limit can hold a line that is.
        limit = limits.max_field_size
        if any(len(line) > limit for line in block.split(b"\r\n")):
            raise HTTPError(431, f"{what} line too long")


def _check_field_grammar(block: bytes) -> None:
    """The grammar of `_check_fields` without its limits, for the response
    parser, which counts its limits on the head as received (bare LF line
    ends and obs-folds included) before it makes the block canonical."""
    if _FIELD_BLOCK.fullmatch(block) is None:
        raise _diagnose_fields(block)


def _diagnose_fields(block: bytes) -> HTTPError:
    """Say precisely which rule a field block broke (the slow path of errors)."""
    error = _bad_line_endings(block)
    if error is not None:
        return error
    for line in block.split(b"\r\n")[:-1]:
        if _FIELD_BLOCK.fullmatch(line + b"\r\n") is not None:
            continue
        if line[:1] in (b" ", b"\t"):
            return HTTPError(400, "obsolete line folding (obs-fold) is not allowed")
        name, colon, value = line.partition(b":")
        if not colon:
            return HTTPError(400, f"header line without a colon {_excerpt(line)}")
        if not name:
            return HTTPError(400, "empty header name")
        if name[-1:] in (b" ", b"\t"):
            return HTTPError(400, "whitespace between header name and colon")
        if _TOKEN.fullmatch(name) is None:
            return HTTPError(400, f"invalid character in header name {_excerpt(name)}")
        if b"\x00" in value:
            return HTTPError(400, "NUL in header value")
        return HTTPError(400, f"control character in header value of {_excerpt(name)}")
    return HTTPError(400, "malformed header section")  # pragma: no cover


def _content_length(values: list[bytes], max_body: int | None) -> int:
    """The body length from every `Content-Length` value, strictly.

    Each value must be plain ASCII digits (no sign, space, underscore, comma
    list or non-ASCII digit); several values must all agree (RFC 9112 6.3).
    A length over `max_body` (None: no limit) is refused with 413.
    """
    length = -1
    for value in values:
        if _DIGITS.fullmatch(value) is None:
            raise HTTPError(400, f"invalid Content-Length {_excerpt(value)}")
        digits = value.lstrip(b"0") or b"0"
        if len(digits) > _MAX_LENGTH_DIGITS:
            raise HTTPError(413, "Content-Length too large")
        n = int(digits)  # safe: proved plain ASCII digits above
        if length >= 0 and n != length:
            raise HTTPError(400, "several Content-Length values that differ")
        length = n
    if max_body is not None and length > max_body:
        raise HTTPError(413, f"body of {length} bytes exceeds the limit")
    return length


def _transfer_coding(values: list[bytes], version: tuple[int, int], what: str) -> None:
    """Accept exactly one `chunked` as the only coding; reject the rest.
    `what` ('request', 'response') names the message in the error."""
    if version == _V10:
        # RFC 9112 6.1: framing of an HTTP/1.0 message with Transfer-Encoding
        # is faulty; a 1.0 peer cannot send chunked.
        raise HTTPError(400, f"Transfer-Encoding in an HTTP/1.0 {what}")
    codings = split_list(b",".join(values))
    if not codings or codings[-1] != b"chunked":
        raise HTTPError(400, "Transfer-Encoding whose final coding is not chunked")
    for coding in codings[:-1]:
        if coding == b"chunked":
            raise HTTPError(400, "chunked applied more than once")
        if coding in _KNOWN_CODINGS:
            raise HTTPError(501, f"transfer coding {_excerpt(coding)} not implemented")
        raise HTTPError(400, f"unknown transfer coding {_excerpt(coding)}")


def _framing_fields(block: bytes) -> bytes:
    """The framing lines of a valid header block (`name:value`, lowered, as
    sent, without CRLF), in order, joined by LF: one bytes object, cheap to
    make, hash and compare (it keys the framing memo). b"" when none."""
    return b"\n".join(_FRAMING_LINE.findall(b"\n" + block.lower())) if block else b""


def _body_framing(
    lengths: list[bytes] | None,
    codings: list[bytes] | None,
    version: tuple[int, int],
    max_body: int | None,
    what: str,
) -> tuple[int | None, bool]:
    """(content_length, chunked) from the values of every `Content-Length`
    and `Transfer-Encoding` field of a message (None: no such field), by the
    rules both parsers apply: never both, Transfer-Encoding exactly
    `chunked` and not in HTTP/1.0, Content-Length plain digits that agree.
    (0, False) when there is neither."""
    if codings is not None:
        if lengths is not None:
            raise HTTPError(400, "both Content-Length and Transfer-Encoding")
        _transfer_coding(codings, version, what)
        return None, True
    if lengths is not None:
        return _content_length(lengths, max_body), False
    return 0, False


def _keep_alive(version: tuple[int, int], connection: list[bytes]) -> bool:
    """Whether a message lets its connection carry another one, from its
    version and its `Connection` members (lowered): HTTP/1.1 unless `close`,
    HTTP/1.0 only with `keep-alive` (RFC 9112 9.3)."""
    if version is _V11:  # versions are always the two constants
        return b"close" not in connection
    return b"keep-alive" in connection and b"close" not in connection


def _framing(version: tuple[int, int], found: bytes, limits: Limits) -> _Framing:
    """Apply the rules that span fields (Host, Content-Length against
    Transfer-Encoding, Connection...): keep_alive, expect_continue, upgrade,
    content_length, chunked. They depend on the version and on the framing
    fields only: `found` holds them as `_framing_fields` gives them."""
    lengths: list[bytes] | None = None
    codings: list[bytes] | None = None
    host_count = 0
    host_value = b""
    connection: list[bytes] = []
    expect = b""
    upgrade = False
    for line in found.split(b"\n") if found else ():
        lname, _, value = line.partition(b":")
        value = value.strip(b" \t")
        if lname == _HOST:
            host_count += 1
            host_value = value
        elif lname == _CONTENT_LENGTH:
            if lengths is None:
                lengths = [value]
            else:
                lengths.append(value)
        elif lname == _TRANSFER_ENCODING:
            if codings is None:
                codings = [value]
            else:
                codings.append(value)
        elif lname == _CONNECTION:
            connection.extend(split_list(value))
        elif lname == _EXPECT:
            expect = value
        else:  # Upgrade
            upgrade = True

    if host_count > 1:
        raise HTTPError(400, "more than one Host header")
    if host_count == 0:
        if version is _V11:
            raise HTTPError(400, "missing Host header (required in HTTP/1.1)")
    elif host_value not in _valid_hosts:
        if _HOST_VALUE.fullmatch(host_value) is None:
            raise HTTPError(400, f"invalid Host header {_excerpt(host_value)}")
        if len(_valid_hosts) < _VALID_HOSTS_MAX:
            _valid_hosts.add(host_value)

    content_length, chunked = _body_framing(
        lengths, codings, version, limits.max_body_size, "request"
    )
    keep_alive = _keep_alive(version, connection)
    if version is _V11:  # versions are always the two constants
        upgrade = upgrade and b"upgrade" in connection
        expect_continue = expect.lower() == b"100-continue"
    else:
        upgrade = False  # RFC 9110 7.8: ignore Upgrade in an HTTP/1.0 request
        expect_continue = False

    return keep_alive, expect_continue, upgrade, content_length, chunked


_Head = TypeVar("_Head")


class _MessageParser(Generic[_Head]):
    """What the request and the response parser share, so each rule of a
    message body has one implementation: the buffer, a body framed by
    Content-Length, and the chunked decoder (chunk-size lines and their
    extensions, the CRLF after chunk data, trailers checked like a header
    block), with its C fast path (`_speedups.scan_chunks`).

    A subclass reads heads (`_read_head`, returning its head event) and says
    what follows the end of a message (`_end_message`). Shared rules raise
    `HTTPError`; the request parser passes it on, the response parser makes
    it a `ResponseError`.
    """

    __slots__ = ("_body_seen", "_buf", "_limits", "_max_body", "_pos", "_remaining", "_state")
    _body_seen: int  # chunked body bytes so far, for _max_body
    _buf: bytes
    _limits: _FieldLimits
    _max_body: int  # the body size limit (a huge int for none)
    _pos: int
    _remaining: int  # bytes left in the body or in the current chunk
    _state: int

    def _read_head(self) -> _Head | None:
        raise NotImplementedError

    def _end_message(self, event: EndOfMessage) -> EndOfMessage:
        raise NotImplementedError

    def next_event(self) -> _Head | bytes | EndOfMessage | None:
        """The next event, or None if more bytes are needed (or parsing stopped)."""
        state = self._state
        try:
            while True:
                if state == _HEAD:
                    if self._pos >= len(self._buf):
                        return None  # idle: the common answer after a message
                    return self._read_head()
                if state in (_BODY, _CHUNK_DATA):
                    buf = self._buf
                    pos = self._pos
                    available = len(buf) - pos
                    if available <= 0:
                        return None
                    n = self._remaining
                    if available <= n:
                        data = buf[pos:] if pos else buf
                        self._pos = len(buf)
                        n = available
                    else:
                        data = buf[pos : pos + n]
                        self._pos = pos + n
                    self._remaining -= n
                    if self._remaining == 0:
                        self._state = _END if state == _BODY else _CHUNK_END
                    return data
                if state == _END:
                    return self._end_message(END_OF_MESSAGE)
                if state == _CHUNK_SIZE:
                    if _scan_chunks is not None:
                        # The C fast path takes the whole, valid chunks here in
                        # one piece, and a last-chunk without trailers after
                        # them; whatever it stops at is read below.
                        pos = self._pos
                        data, end, ended = _scan_chunks(
                            self._buf,
                            pos,
                            self._max_body - self._body_seen,
                            self._limits.max_chunk_line,
                        )
                        if end != pos:
                            self._pos = end
                            if ended:
                                self._state = _END
                            if data:
                                self._body_seen += len(data)
                                return data
                            return self._end_message(END_OF_MESSAGE)
                    if not self._read_chunk_size():
                        return None
                elif state == _CHUNK_END:
                    if not self._read_chunk_end():
                        return None
                elif state == _TRAILERS:
                    return self._read_trailers()
                else:  # PAUSED, CLOSED, ERROR
                    return None
                state = self._state
        except HTTPError:
            self._state = _ERROR
            raise

    # The response parser wraps next_event(); this name reaches the shared one.
    _next_event = next_event

    # -- chunked bodies ------------------------------------------------------------

    def _read_chunk_size(self) -> bool:
        buf = self._buf
        pos = self._pos
        limits = self._limits
        end = buf.find(b"\r\n", pos)
        if end < 0:
            pending = buf[pos:]
            if b"\n" in pending or b"\r" in pending[:-1]:
                raise HTTPError(400, "bare CR or LF in chunk-size line")
            if len(pending) > limits.max_chunk_line:
                raise HTTPError(400, "chunk-size line too long")
            return False
        line = buf[pos:end]
        if len(line) > limits.max_chunk_line:
            raise HTTPError(400, "chunk-size line too long")
        if 0 < len(line) <= 16 and not line.translate(None, _HEX_BYTES):
            # The common line: bare hex digits, no extension, no regex needed.
            size = int(line, 16)  # safe: proved 1-16 ASCII hex digits
        else:
            m = _CHUNK_LINE.fullmatch(line)
            if m is None:
                raise _diagnose_chunk_line(line)
            size = int(m.group(1), 16)  # safe: proved 1-16 ASCII hex digits above
        self._pos = end + 2
        if size == 0:
            self._state = _TRAILERS
            return True
        self._body_seen += size
        if self._body_seen > self._max_body:
            raise HTTPError(413, "chunked body exceeds the limit")
        self._remaining = size
        self._state = _CHUNK_DATA
        return True

    def _read_chunk_end(self) -> bool:
        # Exactly CRLF after chunk data: not any two bytes (CVE-2025-43859), not LF.
        buf = self._buf
        pos = self._pos
        got = buf[pos : pos + 2]
        if got == b"\r\n":
            self._pos = pos + 2
            self._state = _CHUNK_SIZE
            return True
        if got == b"" or got == b"\r":
            return False
        raise HTTPError(400, "chunk data not followed by CRLF")

    def _read_trailers(self) -> EndOfMessage | None:
        buf = self._buf
        pos = self._pos
        if buf.startswith(b"\r\n", pos):
            self._pos = pos + 2
            return self._end_message(END_OF_MESSAGE)
        end = buf.find(b"\r\n\r\n", pos)
        limits = self._limits
        if end < 0:
            pending = buf[pos:]
            if pending == b"\r":
                return None
            checked = pending[:-1] if pending.endswith(b"\r") else pending
            error = _bad_line_endings(checked)
            if error is not None:
                raise error
            if len(checked) > limits.max_header_block:
                raise HTTPError(431, "trailer section too large")
            last_line = checked.rfind(b"\r\n") + 2
            if len(checked) - last_line > limits.max_field_size:
                raise HTTPError(431, "trailer line too long")
            if checked.count(b"\r\n") > limits.max_headers:
                raise HTTPError(431, "too many trailer fields")
            return None
        block = buf[pos : end + 2]
        _check_fields(block, limits, "trailer")
        fields = _split_fields(block)
        for lname, _, _ in fields:
            if lname in _FORBIDDEN_TRAILERS:
                raise HTTPError(400, f"{lname.decode()} is not allowed in trailers")
        self._pos = end + 4
        return self._end_message(EndOfMessage(_headers_from(fields)))


class RequestParser(_MessageParser[Request]):
    """Parses the requests of one connection, incrementally, in order.

    `feed(data)` buffers bytes; `next_event()` returns the next `Request`,
    body `bytes` or `EndOfMessage`, or None when it needs more bytes (or is
    PAUSED, CLOSED or in ERROR: see `state`). Any split of the same bytes across
    `feed` calls gives the same events, except that body bytes may come in
    different pieces. A broken rule raises `HTTPError` and leaves the parser in
    the ERROR state. Pipelined requests in one buffer come out one after another.
    """

    __slots__ = (
        "_last_block",
        "_last_found",
        "_last_framing",
        "_last_headers",
        "_last_version",
        "_lines_checked",
        "_request",
        "_scan",
        "_scan_limits",
        "_skipped",
    )
    _limits: Limits

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        """A parser waiting for the first request, applying `limits`."""
        self._limits = limits
        self._max_body = limits.max_body_size
        # The limits the C fast path checks, in the order it takes them.
        self._scan_limits = (
            limits.max_request_line,
            limits.max_field_size,
            limits.max_header_block,
            limits.max_headers,
        )
        self._buf = b""
        self._pos = 0
        self._state: int = _HEAD
        self._remaining = 0  # bytes left in the body or in the current chunk
        self._body_seen = 0  # chunked body bytes so far, for max_body_size
        self._request: Request | None = None  # the message being parsed
        self._scan = 0  # where incremental checks of an incomplete head resume
        self._lines_checked = 0  # end of the field lines of that head already judged
        self._skipped = 0  # empty lines skipped before this request line
        # The last header block parsed, with its version, fields and framing
        # (see _read_head). The empty block never matches: it is not b"".
        self._last_block: bytes | None = None
        self._last_version = _V11
        self._last_headers: Headers = _headers_from([])
        self._last_framing: _Framing = (True, False, False, 0, False)
        self._last_found: bytes | None = None  # the framing lines of _last_block

    # -- input -------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Add bytes read from the connection."""
        if not data:
            return
        pos = self._pos
        if pos >= len(self._buf):
            self._buf = data  # the common case: nothing left over, no copy
        else:
            self._buf = self._buf[pos:] + data
            self._scan -= pos
            self._lines_checked -= pos
        self._pos = 0

    def feed_eof(self) -> None:
        """The peer closed its side. Raises HTTPError(400) if that cut a request
        short; an idle connection closing is not an error."""
        if self._state == _HEAD and self._pos >= len(self._buf) and self._skipped == 0:
            self._state = _CLOSED
            return
        if self._state in (_CLOSED, _PAUSED, _ERROR, _END):
            return
        self._state = _ERROR
        raise HTTPError(400, "connection closed in the middle of a request")

    # -- introspection -------------------------------------------------------------

    @property
    def state(self) -> int:
        """One of the `ParserState` values."""
        return self._state

    @property
    def limits(self) -> Limits:
        """The limits this parser applies."""
        return self._limits

    @property
    def head_pending(self) -> bool:
        """Whether bytes of an incomplete request head are buffered (the server
        times these out: a client dribbling a head is a slow-loris)."""
        return self._state == _HEAD and (self._pos < len(self._buf) or self._skipped > 0)

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after the message that PAUSED or CLOSED the parser: after
        an accepted upgrade they belong to the new protocol."""
        return self._buf[self._pos :]

    def resume(self) -> None:
        """Continue parsing HTTP after an upgrade or CONNECT request was declined
        (answered with anything but 101, or a non-2xx for CONNECT)."""
        if self._state != _PAUSED:
            raise RuntimeError("resume() is only for a parser PAUSED after an upgrade")
        self._state = _HEAD

    # -- output ----------------------------------------------------------------

    def next_head(self) -> Request | None:
        """The next request head, for a parser waiting for one (`state` is
        HEAD): the Request, or None while the head is incomplete. A request
        without a body (`has_body` false) is also ended: no EndOfMessage
        follows it. What `next_event()` gives in two calls, for a server's
        common case; errors are raised the same way."""
        if self._state != _HEAD:
            raise RuntimeError("next_head() is for a parser waiting for a request head")
        try:
            return self._read_head(True)
        except HTTPError:
            self._state = _ERROR
            raise

    def _end_message(self, event: EndOfMessage) -> EndOfMessage:
        request = self._request
        assert request is not None
        if not request.keep_alive:
            self._state = _CLOSED
        elif request.upgrade or request.method == "CONNECT":
            self._state = _PAUSED
        else:
            self._state = _HEAD
        self._request = None
        return event

    # -- the head ----------------------------------------------------------------

    def _read_head(self, end_bodiless: bool = False) -> Request | None:
        """The next request head, or None while it is incomplete. With
        `end_bodiless`, a request without a body is ended at once (next_head)."""
        buf = self._buf
        pos = self._pos
        # RFC 9112 2.2: ignore empty lines received before a request line.
        if buf.startswith(b"\r\n", pos):
            pos = self._skip_empty_lines(buf, pos)
        scanned = _scan_head(buf, pos, self._last_block, self._scan_limits) if _scan_head else False
        # The C fast path accepted the head with the result _scan_head_py
        # would give (a tuple), found it incomplete (None), or defers (False).
        if not scanned:
            scanned = self._scan_head_py(buf, pos, scanned is None)
            if scanned is None:
                return None
        method, target, minor, block, found, end = scanned
        version = _V11 if minor else _V10
        if block is self._last_block and version is self._last_version:
            # A keep-alive client usually repeats its header block verbatim
            # (only the request line changes): the same bytes and version give
            # the same fields and framing, so reuse them. `Headers` is
            # read-only, so one object can serve every such request.
            headers = self._last_headers
            framing = self._last_framing
        else:
            if found is None:
                found = _framing_fields(block)
            if block:
                headers = _new_headers(_BlockHeaders)  # no __init__: see _BlockHeaders
                headers._block = block
            else:
                headers = _headers_from([])
            # Framing depends on the version, the limits and these fields only:
            # the same as the last block's when its framing lines are (another
            # cookie, the same Host and Connection), else maybe known already.
            if found == self._last_found and version is self._last_version:
                framing = self._last_framing
            else:
                key = (version, self._limits, found)
                known = _framings.get(key)
                if known is None:
                    framing = _framing(version, found, self._limits)
                    if len(_framings) < _FRAMINGS_MAX:
                        _framings[key] = framing
                else:
                    framing = known
                self._last_found = found
            self._last_block = block
            self._last_version = version
            self._last_headers = headers
            self._last_framing = framing
        # Request.__init__ inlined (the parser makes one per request).
        request: Request = _new_request(Request)
        request.method = method
        request.target = target
        request.version = version
        request.headers = headers
        (
            keep_alive,
            request.expect_continue,
            upgrade,
            content_length,
            chunked,
        ) = framing
        request.keep_alive = keep_alive
        request.upgrade = upgrade
        request.content_length = content_length
        request.chunked = chunked
        self._pos = end
        self._scan = 0
        self._lines_checked = 0
        self._skipped = 0
        if chunked:
            self._state = _CHUNK_SIZE
            self._body_seen = 0
        elif content_length:
            self._state = _BODY
            self._remaining = content_length
        elif end_bodiless and keep_alive and not upgrade and method != "CONNECT":
            return request  # ended: the state stays HEAD (_end_message, inlined)
        else:
            self._state = _END
        self._request = request
        if end_bodiless and self._state == _END:
            self._end_message(END_OF_MESSAGE)
        return request

    def _skip_empty_lines(self, buf: bytes, pos: int) -> int:
        """Skip the empty lines (CRLF) at buf[pos:], counted against the
        request-line limit; the position after them."""
        while buf.startswith(b"\r\n", pos):
            pos += 2
            self._skipped += 2
        self._pos = pos
        if self._skipped > self._limits.max_request_line:
            raise HTTPError(414, "too many empty lines before the request line")
        return pos

    def _scan_head_py(self, buf: bytes, pos: int, incomplete: bool) -> _Scanned | None:
        """What the C fast path (_speedups.scan_head) gives for a valid head at
        buf[pos:], judged by the grammar here: the fast path defers to this for
        everything it does not accept, so every error is raised here. None
        while the head is incomplete (`incomplete`: the fast path found no
        blank line already)."""
        end = -1 if incomplete else buf.find(b"\r\n\r\n", pos)
        if end < 0:
            if pos < len(buf):
                self._check_partial_head(buf, pos)
            return None
        line_end = buf.find(b"\r\n", pos)
        method, target, version = _parse_request_line(buf[pos:line_end], self._limits)
        block = buf[line_end + 2 : end + 2]
        found: bytes | None
        if block == self._last_block:
            block = self._last_block  # valid already: the memo in _read_head
            found = None
        else:
            if block:
                _check_fields(block, self._limits, "header")
            found = _framing_fields(block)
        return (
            _COMMON_METHODS.get(method) or method.decode("ascii"),
            target.decode("ascii"),
            version[1],
            block,
            found,
            end + 4,
        )

    def _check_partial_head(self, buf: bytes, start: int) -> None:
        """Enforce limits and line endings on a head still arriving, so neither a
        dribbling client nor a split across segments gets around them."""
        limits = self._limits
        scan = max(self._scan, start)
        end = len(buf)
        line_end = buf.find(b"\r\n", start)
        request_line_done = line_end >= 0
        # Bare CR or LF anywhere so far (a lone CR at the very end may still be
        # the first half of a CRLF).
        checked_to = end - 1 if buf[end - 1] == 0x0D else end
        if scan < checked_to:
            # What was checked ends after a LF or an ordinary byte, never inside
            # a CRLF, so the new region can be judged on its own.
            error = _bad_line_endings(buf[scan:checked_to])
            if error is not None:
                raise error
            self._scan = checked_to
        if not request_line_done:
            if checked_to - start > limits.max_request_line:
                raise HTTPError(414, "request line too long")
            # A method is a token followed by SP: garbage is refused at once.
            m = _TOKEN.match(buf, start, checked_to)
            if checked_to > start and (
                m is None or (m.end() < checked_to and buf[m.end()] != 0x20)
            ):
                raise _diagnose_request_line(buf[start:checked_to])
            return
        # The request line is complete: judge it now rather than after the headers.
        _parse_request_line(buf[start:line_end], limits)
        block_start = line_end + 2
        if checked_to - block_start > limits.max_header_block:
            raise HTTPError(431, "header section too large")
        last_line = buf.rfind(b"\r\n", block_start) + 2
        if last_line < block_start:
            last_line = block_start
        if checked_to - last_line > limits.max_field_size:
            raise HTTPError(431, "header line too long")
        # Judge field lines as they complete, so a broken one is refused now and
        # not after the client has finished (or never finishes) the head.
        first = max(self._lines_checked, block_start)
        if last_line > first:
            if _FIELD_BLOCK.fullmatch(buf, first, last_line) is None:
                raise _diagnose_fields(buf[first:last_line])
            self._lines_checked = last_line
        if buf.count(b"\r\n", block_start, end) > limits.max_headers:
            raise HTTPError(431, "too many header fields")


def _diagnose_chunk_line(line: bytes) -> HTTPError:
    """Say precisely why a chunk-size line was refused."""
    if b"\n" in line or b"\r" in line:
        return HTTPError(400, "bare CR or LF in chunk-size line")
    m = _HEX.match(line)
    if m is None:
        return HTTPError(400, f"chunk size is not hexadecimal {_excerpt(line)}")
    if m.end() > 16:
        return HTTPError(400, "chunk size overflows 64 bits")
    return HTTPError(400, f"junk after chunk size {_excerpt(line[m.end() :])}")
