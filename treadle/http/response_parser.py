"""A sans-IO HTTP/1.1 response parser, for a client: bytes in, events out.

Like the request parser (`parser`), it knows no sockets, no loop and no clock.
The client tells it which request each response answers, in the order it sent
them (`expect(method)`: the method decides whether a response has a body, and a
CONNECT's 2xx ends HTTP on the connection), feeds it what it reads (`feed`,
`feed_eof`) and pulls events with `next_event()` until it returns None:

- an `InformationalResponse`: a 1xx other than 101 (100 Continue, 103 Early
  Hints...). The response to the same request is still to come; a client
  waiting to send a body after `Expect: 100-continue` sends it now.
- a `Response`: the final head (status, reason, headers, framing, whether the
  connection may carry another request after it);
- `bytes`: a piece of the body;
- an `EndOfMessage`: the body is complete (with a chunked body's trailers).

One response per expected request, in order, so pipelined and keep-alive
responses come out one after another and bytes past a response's framing are
the next response's, never part of this one. After a response that closes
the connection (`keep_alive` false), the parser is CLOSED; after a 101 or a
2xx to CONNECT it is SWITCHED and `trailing_data` holds the first bytes of the
other protocol. A broken rule raises `ResponseHeadError` or
`ResponsePayloadError` (`errors`): the parser is then dead, and the connection
must never be reused.

One grammar for both directions. The header-block validator, the framing rules
(Content-Length against Transfer-Encoding, their values, repeated fields, the
keep-alive rule) and the body decoder (Content-Length bodies; chunk lines,
extensions, the CRLF after chunk data, trailers; and the C fast path for
chunks) are the request parser's own code (`parser._MessageParser`,
`_body_framing`, `_check_field_grammar`...), called from here: a rule fixed
there is fixed here. Only the status line and what follows from a status are
this module's. Strict as the server: a Content-Length that only `int()` would
read (`+5`, `1_0`, non-ASCII digits), differing Content-Lengths, both framings,
a chunk size with junk or more than 16 hex digits, a bare CR or a NUL in the
head, a status line that is not `HTTP/1.x DDD [reason]` each fail the response.

Where RFC 9112 tells a user agent to be lenient, this parser is, and says so:

- **A bare LF ends a line in the head** (status line and header fields, and an
  LF alone ends the head), as RFC 9112 section 2.2 allows a recipient. The
  request parser refuses it, because on a server a bare LF is where a proxy
  and the server behind it frame a request differently (smuggling). A client
  is at the end of the path: a response it reads is read by nobody after it,
  and servers and devices that end lines with LF alone are real (h11, curl
  and browsers read them; llhttp's strict mode, as httptools runs
  it, refuses them). Refusing them would break clients for little safety
  gained, so they are read. A bare CR is still refused (RFC 9112 2.2
  lets a recipient refuse it, and a CR alone is not a line end anywhere).
  The chunked decoder is shared with the request parser and stays strict:
  chunk lines, the end of chunk data and trailers need CRLF, because that is
  where the body is framed.
- **obs-fold is unfolded**: a header line that begins with SP or HTAB
  continues the field before it, and the fold (with the whitespace around it)
  becomes one SP before the value is read, as RFC 9112 section 5.2 asks of a
  user agent. A continuation right after the status line, with no field to
  continue, is refused (RFC 9112 2.2).
- **A status line without the SP after the code** (`HTTP/1.1 200`) is read as
  an empty reason, as h11 and llhttp do; a client ignores the reason anyway.
- **A status of 600-999** is delivered as it is and framed as a final
  response (RFC 9110 section 15: process it as a 5xx). 000-099 is refused.

Limits (`ResponseLimits`) are counted on the head as received, each physical
line with its own line end (so a fold line counts as a line), and are checked
on every feed, so a server cannot walk around them by dribbling bytes. The
body has no size limit unless one is set.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Final

from .errors import HTTPError, ResponseError, ResponseHeadError, ResponsePayloadError
from .headers import Headers, split_list
from .parser import (
    _FIELD_BLOCK,
    _V10,
    _V11,
    _VALUE_CHARS,
    END_OF_MESSAGE,
    EndOfMessage,
    FrozenLimits,
    ParserState,
    _BlockHeaders,
    _body_framing,
    _check_field_grammar,
    _excerpt,
    _framing_fields,
    _headers_from,
    _keep_alive,
    _MessageParser,
    _new_headers,
)

__all__ = [
    "InformationalResponse",
    "Response",
    "ResponseLimits",
    "ResponseParser",
]


class ResponseLimits(FrozenLimits):
    """Size limits of the response parser, each failing the response with a
    `ResponseHeadError` (or, for the body, a `ResponsePayloadError`).

    - `max_status_line`: bytes of the status line without its line end.
    - `max_field_size`: bytes of one header (or trailer) line without its line
      end; a folded field's lines count one by one.
    - `max_header_block`: bytes of all header lines, each with its line end as
      received, not counting the status line or the final empty line. Also
      applies to the trailer section.
    - `max_headers`: number of header lines (a fold line counts), and of
      trailer lines.
    - `max_body_size`: bytes of a body (decoded from chunked); None, the
      default, for no limit. A Content-Length over it fails the response right
      after its head is delivered, before any byte of the body.
    - `max_chunk_line`: bytes of a chunk-size line with its extensions.

    Read-only: make new ResponseLimits rather than change these.
    """

    __slots__ = (
        "max_body_size",
        "max_chunk_line",
        "max_field_size",
        "max_header_block",
        "max_headers",
        "max_status_line",
    )
    max_body_size: int | None
    max_chunk_line: int
    max_field_size: int
    max_header_block: int
    max_headers: int
    max_status_line: int

    def __init__(
        self,
        *,
        max_status_line: int = 8190,
        max_field_size: int = 8190,
        max_header_block: int = 65536,
        max_headers: int = 128,
        max_body_size: int | None = None,
        max_chunk_line: int = 4096,
    ) -> None:
        """Limits like the server's, but a larger header section (responses
        carry more cookies and policies than requests) and no body limit."""
        self._freeze(
            ("max_body_size",),
            max_status_line=max_status_line,
            max_field_size=max_field_size,
            max_header_block=max_header_block,
            max_headers=max_headers,
            max_body_size=max_body_size,
            max_chunk_line=max_chunk_line,
        )


DEFAULT_RESPONSE_LIMITS: Final = ResponseLimits()

# "No body limit" for the shared decoder, which compares with an int (and
# hands it to the C fast path, which clamps what a ssize_t cannot hold).
_NO_LIMIT: Final = (1 << 63) - 1


class InformationalResponse:
    """A 1xx response other than 101 (100 Continue, 103 Early Hints...): not
    the answer yet, which follows on the same connection.

    `status`, `reason` (str, as sent), `version` ((1, 0) or (1, 1)) and
    `headers` (a `Headers`).
    """

    __slots__ = ("headers", "reason", "status", "version")

    def __init__(
        self, status: int, reason: str, version: tuple[int, int], headers: Headers
    ) -> None:
        """Usually made by the parser; public so tests and tools can build one."""
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers

    def __repr__(self) -> str:
        return f"<InformationalResponse {self.status} {self.reason}>"


class Response:
    """The head of a final response, as the parser saw it.

    - `status`: the status code (100-999; 101 switches protocols).
    - `reason`: the reason phrase as sent (latin-1; possibly empty).
    - `version`: `(1, 0)` or `(1, 1)`.
    - `headers`: a `Headers` multi-dict (obs-folds unfolded).
    - `keep_alive`: whether the connection may carry another request after
      this response: HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
      `Connection: keep-alive`, and never after a body read until the close,
      a 101 or a CONNECT's 2xx.
    - `content_length`: the body length when framed by `Content-Length`, 0
      when the response has no body (HEAD, 1xx, 204, 304, a CONNECT's 2xx, or
      `Content-Length: 0`), None when chunked or until close.
    - `chunked`: the body is `Transfer-Encoding: chunked`.
    - `until_close`: the body is everything up to the connection's close (no
      Content-Length, no Transfer-Encoding).
    """

    __slots__ = (
        "chunked",
        "content_length",
        "headers",
        "keep_alive",
        "reason",
        "status",
        "until_close",
        "version",
    )

    def __init__(
        self,
        status: int,
        reason: str,
        version: tuple[int, int],
        headers: Headers,
        keep_alive: bool = True,
        content_length: int | None = 0,
        chunked: bool = False,
        until_close: bool = False,
    ) -> None:
        """Usually made by the parser; public so tests and tools can build one."""
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.content_length = content_length
        self.chunked = chunked
        self.until_close = until_close

    @property
    def has_body(self) -> bool:
        """Whether body bytes follow the head."""
        return self.chunked or self.until_close or bool(self.content_length)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


_HEAD = ParserState.HEAD
_BODY = ParserState.BODY
_CHUNK_SIZE = ParserState.CHUNK_SIZE
_END = ParserState.END
_CLOSED = ParserState.CLOSED
_ERROR = ParserState.ERROR
_UNTIL_CLOSE = ParserState.UNTIL_CLOSE
_SWITCHED = ParserState.SWITCHED

# -- the grammar of what is a response's own (RFC 9112 section 4) ---------------

# status-line = HTTP-version SP status-code SP [ reason-phrase ]; the SP after
# the code may be missing when there is no reason (see the module docstring).
_STATUS_LINE = re.compile(rb"HTTP/([0-9])\.([0-9]) ([0-9]{3})(?: (" + _VALUE_CHARS + rb"*))?")
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
_CODE = re.compile(rb"[0-9]{3}")
# The end of a head: a line end (LF, or CRLF) followed by an empty line.
_BLANK_LINE = re.compile(rb"\n\r?\n")
# An obs-fold with the whitespace around it, in a head whose line ends are LF.
_OBS_FOLD = re.compile(rb"[ \t]*\n[ \t]+")
_HTTP_SLASH: Final = b"HTTP/"
_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_CONNECTION = b"connection"
_BODILESS = frozenset((204, 304))
_VERSIONS: Final = {b"0": _V10, b"1": _V11}

_new_response = object.__new__

# content_length, chunked, until_close, keep_alive, switched.
_Framing = tuple["int | None", bool, bool, bool, bool]

# Framing already worked out, by version, status, method and framing lines;
# bounded, and only framings that passed every rule get in (as the request
# parser's memo).
_framings: dict[tuple[tuple[int, int], int, str, bytes], _Framing] = {}
_FRAMINGS_MAX: Final = 1024

# status, reason, version, the canonical header block (each line CRLF).
_ParsedHead = tuple[int, str, tuple[int, int], bytes]


def _parse_status_line(line: bytes) -> tuple[int, str, tuple[int, int]]:
    """Status, reason and version of a status line (without its line end)."""
    m = _STATUS_LINE.fullmatch(line)
    if m is None:
        raise _diagnose_status_line(line)
    major, minor, code, reason = m.groups()
    if major != b"1" or minor not in (b"0", b"1"):
        raise HTTPError(505, f"HTTP version {major.decode()}.{minor.decode()} not supported")
    status = int(code)  # safe: proved three ASCII digits above
    if status < 100:
        raise HTTPError(400, f"invalid status code {status:03d}")
    return status, reason.decode("latin-1") if reason else "", _VERSIONS[minor]


def _diagnose_status_line(line: bytes) -> HTTPError:
    """Say precisely why a status line did not match the grammar."""
    if not line.startswith(_HTTP_SLASH):
        # The same words the partial check uses, so a split changes nothing.
        return HTTPError(400, "not an HTTP/1.x status line")
    if b"\r" in line:
        return HTTPError(400, "bare CR in status line")
    version, _, rest = line.partition(b" ")
    if _VERSION.fullmatch(version) is None:
        return HTTPError(400, f"malformed HTTP version {_excerpt(version)}")
    code, space, _ = rest.partition(b" ")
    if _CODE.fullmatch(code) is None:
        return HTTPError(400, f"malformed status code {_excerpt(code)}")
    if not space and len(rest) > 3:  # pragma: no cover (the partition makes it so)
        return HTTPError(400, f"malformed status line {_excerpt(line)}")
    return HTTPError(400, f"control character in reason phrase {_excerpt(line)}")


def _line_too_long(block: bytes, limit: int) -> bool:
    """Whether a physical line of `block` (its line end not counted) is
    longer than `limit`."""
    return any(len(line) - line.endswith(b"\r") > limit for line in block.split(b"\n"))


def _canonical_block(block: bytes) -> bytes:
    """The header lines of a head as received, every line end made CRLF and
    every obs-fold made one SP, so that the shared validator judges it; or
    the HTTPError the line ends or a misplaced fold earn."""
    if block[:1] in (b" ", b"\t"):
        raise HTTPError(400, "whitespace before the first header field")
    text = block.replace(b"\r\n", b"\n")
    if b"\r" in text:
        raise HTTPError(400, "bare CR in message head")
    return _OBS_FOLD.sub(b" ", text).replace(b"\n", b"\r\n")


def _parse_head(head: bytes, limits: ResponseLimits) -> _ParsedHead:
    """A whole head (status line and header lines, each with its line end,
    without the empty line), judged: the limits as received, the status
    line, then the header block by the shared grammar. The checks come in the
    order `_check_partial_head` makes them, so a head refused while it
    arrives is refused for the same reason when it arrives whole."""
    if not head.startswith(_HTTP_SLASH):
        raise HTTPError(400, "not an HTTP/1.x status line")
    nl = head.find(b"\n")
    line_len = nl - 1 if nl > 0 and head[nl - 1] == 0x0D else nl
    if line_len > limits.max_status_line:
        raise HTTPError(400, "status line too long")
    block = head[nl + 1 :]
    if block:
        if len(block) > limits.max_header_block:
            raise HTTPError(431, "header section too large")
        if len(block) > limits.max_field_size and _line_too_long(block, limits.max_field_size):
            raise HTTPError(431, "header line too long")
        if block.count(b"\n") > limits.max_headers:
            raise HTTPError(431, "too many header fields")
    status, reason, version = _parse_status_line(head[:line_len])
    # A block the shared grammar takes as it is has CRLF line ends only and no
    # fold (a fold line does not begin with a token): the common head, judged
    # in one match. Anything else is made canonical, then judged.
    if block and _FIELD_BLOCK.fullmatch(block) is None:
        block = _canonical_block(block)
        _check_field_grammar(block)
    return status, reason, version, block


def _response_framing(version: tuple[int, int], status: int, method: str, found: bytes) -> _Framing:
    """How the body of a response is framed, and what follows it, from its
    version, status, the request's method and its framing lines (as
    `_framing_fields` gives them): content_length, chunked, until_close,
    keep_alive, switched (HTTP ends on the connection)."""
    if status == 101 or (method == "CONNECT" and 200 <= status < 300):
        # A tunnel or another protocol follows the head. RFC 9110 9.3.6: a
        # client MUST ignore Content-Length and Transfer-Encoding in a 2xx to
        # CONNECT; a 101 has no body either (RFC 9112 6.3).
        return 0, False, False, False, True
    lengths: list[bytes] | None = None
    codings: list[bytes] | None = None
    connection: list[bytes] = []
    for line in found.split(b"\n") if found else ():
        lname, _, value = line.partition(b":")
        value = value.strip(b" \t")
        if lname == _CONTENT_LENGTH:
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
        # Host, Expect and Upgrade mean nothing to a response's framing.
    # Judged on every response, bodiless or not: a malformed length is a
    # malformed message whatever the status (as h11 does).
    content_length, chunked = _body_framing(lengths, codings, version, None, "response")
    keep_alive = _keep_alive(version, connection)
    if method == "HEAD" or status < 200 or status in _BODILESS:
        # RFC 9112 6.3 rule 1: no body, whatever the fields say.
        return 0, False, False, keep_alive, False
    if chunked or lengths is not None:
        return content_length, chunked, False, keep_alive, False
    # RFC 9112 6.3 rule 8: the body is everything up to the close.
    return None, False, True, False, False


class ResponseParser(_MessageParser[Response | InformationalResponse]):
    """Parses the responses of one connection, incrementally, in order.

    `expect(method)` for each request sent; `feed(data)` and `feed_eof()`
    with what the connection gives; `next_event()` returns the next
    `InformationalResponse`, `Response`, body `bytes` or `EndOfMessage`, or
    None when it needs more bytes (or is CLOSED or SWITCHED: see `state`).
    Any split of the same bytes gives the same events, except that body bytes
    may come in other pieces. A broken rule raises `ResponseHeadError` or
    `ResponsePayloadError` and leaves the parser in the ERROR state.
    """

    __slots__ = ("_eof", "_methods", "_oversize", "_response", "_switched")
    _limits: ResponseLimits

    def __init__(self, limits: ResponseLimits = DEFAULT_RESPONSE_LIMITS) -> None:
        """A parser expecting no response yet, applying `limits`."""
        self._limits = limits
        self._max_body = _NO_LIMIT if limits.max_body_size is None else limits.max_body_size
        self._buf = b""
        self._pos = 0
        self._state: int = _HEAD
        self._remaining = 0
        self._body_seen = 0
        self._methods: deque[str] = deque()  # the requests still to be answered
        self._response: Response | None = None  # the response whose body is read
        self._switched = False  # the current response ends HTTP on the connection
        self._oversize = False  # its Content-Length is over the body limit
        self._eof = False

    # -- input -------------------------------------------------------------------

    def expect(self, method: str) -> None:
        """Note that a request with `method` was sent: its response comes after
        those of the requests noted before it. Call it before the response
        can arrive (when the request is sent); RuntimeError once the
        connection can carry no more responses."""
        if self._state in (_CLOSED, _SWITCHED, _ERROR) or self._eof:
            raise RuntimeError("this connection carries no more responses")
        self._methods.append(method)

    def feed(self, data: bytes) -> None:
        """Add bytes read from the connection."""
        if self._eof:
            raise RuntimeError("feed() after feed_eof()")
        if not data:
            return
        pos = self._pos
        if pos >= len(self._buf):
            self._buf = data
        else:
            self._buf = self._buf[pos:] + data
        self._pos = 0

    def feed_eof(self) -> None:
        """The server closed its side. It ends a body read until the close; if
        it cut a response short, `next_event()` raises once the bytes before
        it are taken. An idle connection closing is not an error."""
        self._eof = True
        if self._state == _HEAD and not self._methods and self._pos >= len(self._buf):
            self._state = _CLOSED

    # -- introspection -------------------------------------------------------------

    @property
    def state(self) -> int:
        """One of the `ParserState` values."""
        return self._state

    @property
    def limits(self) -> ResponseLimits:
        """The limits this parser applies."""
        return self._limits

    @property
    def pending(self) -> int:
        """How many expected responses have not begun (a response whose head
        was delivered no longer counts). Once the parser is CLOSED, SWITCHED
        or in ERROR, these requests got no answer on this connection."""
        return len(self._methods)

    @property
    def reusable(self) -> bool:
        """Whether the connection may carry another request now: between
        responses, after none that closed it, with no error and no bytes
        that no request asked for."""
        if self._state != _HEAD or self._eof:
            return False
        return bool(self._methods) or self._pos >= len(self._buf)

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after the response that CLOSED or SWITCHED the
        parser: after a 101 or a CONNECT's 2xx they belong to the new protocol."""
        return self._buf[self._pos :]

    # -- output ----------------------------------------------------------------

    def next_event(self) -> Response | InformationalResponse | bytes | EndOfMessage | None:
        """The next event, or None if more bytes are needed (or parsing stopped)."""
        state = self._state
        try:
            if self._oversize:
                self._oversize = False
                raise HTTPError(413, "body over the size limit (Content-Length)")
            event = self._read_until_close() if state == _UNTIL_CLOSE else self._next_event()
            if event is None and self._eof:
                self._at_eof()
        except HTTPError as exc:
            self._state = _ERROR
            error: ResponseError
            if self._response is None:
                error = ResponseHeadError(exc.detail)
            else:
                error = ResponsePayloadError(exc.detail)
            raise error from exc
        return event

    def _at_eof(self) -> None:
        """The connection closed and no event is left: fine between
        responses, an HTTPError inside one."""
        state = self._state
        if state == _HEAD:
            if self._pos < len(self._buf):
                raise HTTPError(400, "connection closed in the middle of a response head")
            if self._methods:
                raise HTTPError(400, "connection closed before the response began")
            self._state = _CLOSED
        elif state not in (_CLOSED, _SWITCHED, _ERROR):
            raise HTTPError(400, "connection closed before the end of the body")

    def _read_until_close(self) -> bytes | EndOfMessage | None:
        buf = self._buf
        pos = self._pos
        if pos < len(buf):
            data = buf[pos:] if pos else buf
            self._pos = len(buf)
            self._body_seen += len(data)
            if self._body_seen > self._max_body:
                raise HTTPError(413, "body over the size limit")
            return data
        if self._eof:
            return self._end_message(END_OF_MESSAGE)
        return None

    def _end_message(self, event: EndOfMessage) -> EndOfMessage:
        response = self._response
        assert response is not None
        if self._switched:
            self._state = _SWITCHED
        elif not response.keep_alive:
            self._state = _CLOSED
        else:
            self._state = _HEAD
        self._response = None
        return event

    # -- the head ----------------------------------------------------------------

    def _read_head(self) -> Response | InformationalResponse | None:
        methods = self._methods
        if not methods:
            raise HTTPError(400, "bytes received with no request outstanding")
        buf = self._buf
        pos = self._pos
        m = _BLANK_LINE.search(buf, pos)
        if m is None:
            self._check_partial_head(buf, pos)
            return None
        status, reason, version, block = _parse_head(buf[pos : m.start() + 1], self._limits)
        # Framing depends on these four only; a connection's responses
        # mostly repeat them (the same server, the same few lengths).
        key = (version, status, methods[0], _framing_fields(block))
        framing = _framings.get(key)
        if framing is None:
            framing = _response_framing(*key)
            if len(_framings) < _FRAMINGS_MAX:
                _framings[key] = framing
        content_length, chunked, until_close, keep_alive, switched = framing
        headers: Headers
        if block:
            headers = _new_headers(_BlockHeaders)  # split on first use
            headers._block = block
        else:
            headers = _headers_from([])
        self._pos = m.end()
        if status < 200 and status != 101:
            # Not the answer yet: the same request's response follows.
            return InformationalResponse(status, reason, version, headers)
        methods.popleft()
        response: Response = _new_response(Response)
        response.status = status
        response.reason = reason
        response.version = version
        response.headers = headers
        response.keep_alive = keep_alive
        response.content_length = content_length
        response.chunked = chunked
        response.until_close = until_close
        self._switched = switched
        if chunked:
            self._state = _CHUNK_SIZE
            self._body_seen = 0
        elif content_length:
            self._state = _BODY
            self._remaining = content_length
            # Refused at the next event, after the client has the head.
            self._oversize = content_length > self._max_body
        elif until_close:
            self._state = _UNTIL_CLOSE
            self._body_seen = 0
        else:
            self._state = _END
        self._response = response
        return response

    def _check_partial_head(self, buf: bytes, start: int) -> None:
        """Enforce the limits on a head still arriving, counted as
        `_parse_head` counts them, so a dribbling server cannot get around
        them; and refuse at once what cannot begin a status line."""
        limits = self._limits
        end = len(buf)
        if buf[end - 1] == 0x0D:
            end -= 1  # maybe the first half of a CRLF
        if not _HTTP_SLASH.startswith(buf[start : min(start + 5, end)]):
            raise HTTPError(400, "not an HTTP/1.x status line")
        nl = buf.find(b"\n", start, end)
        if nl < 0:
            if end - start > limits.max_status_line:
                raise HTTPError(400, "status line too long")
            return
        line_len = nl - start - (1 if nl > start and buf[nl - 1] == 0x0D else 0)
        if line_len > limits.max_status_line:
            raise HTTPError(400, "status line too long")
        block_start = nl + 1
        if end - block_start > limits.max_header_block:
            raise HTTPError(431, "header section too large")
        last_line = buf.rfind(b"\n", block_start, end) + 1
        if last_line < block_start:
            last_line = block_start
        if end - last_line > limits.max_field_size or (
            last_line - block_start > limits.max_field_size
            and _line_too_long(buf[block_start : last_line - 1], limits.max_field_size)
        ):
            raise HTTPError(431, "header line too long")
        if buf.count(b"\n", block_start, end) > limits.max_headers:
            raise HTTPError(431, "too many header fields")
